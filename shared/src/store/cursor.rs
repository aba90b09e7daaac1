//! Opaque list cursors. A cursor holds only where the last page ended; the
//! owner always comes from the caller, so a tampered cursor can at worst move
//! the starting point within the caller's own data.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::{Invalid, Order, Timestamp};
use crate::domain::limits::MAX_CURSOR_CHARS;

/// Where a page of sessions ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionCursor {
    #[serde(rename = "u")]
    pub updated_at: Timestamp,
    #[serde(rename = "i")]
    pub id: Uuid,
}

impl SessionCursor {
    pub fn encode(&self) -> String {
        encode(&self)
    }

    pub fn decode(text: &str) -> Result<Self, Invalid> {
        decode(text)
    }
}

/// Where a page of messages ended, and in which order it was read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageCursor {
    #[serde(rename = "s")]
    pub seq: u64,
    #[serde(rename = "o")]
    pub order: Order,
}

impl MessageCursor {
    pub fn encode(&self) -> String {
        encode(&self)
    }

    pub fn decode(text: &str) -> Result<Self, Invalid> {
        decode(text)
    }
}

fn encode<T: Serialize>(value: &T) -> String {
    // Serializing these plain structs cannot fail.
    let json = serde_json::to_vec(value).unwrap_or_default();
    URL_SAFE_NO_PAD.encode(json)
}

fn decode<T: for<'de> Deserialize<'de>>(text: &str) -> Result<T, Invalid> {
    let bad = || Invalid("cursor is not valid: pass back the `next_cursor` of the previous page".to_owned());
    if text.len() > MAX_CURSOR_CHARS {
        return Err(bad());
    }
    let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| bad())?;
    serde_json::from_slice(&bytes).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let c = SessionCursor { updated_at: Timestamp::now(), id: Uuid::new_v4() };
        assert_eq!(SessionCursor::decode(&c.encode()).unwrap(), c);
        for garbage in ["", "not base64!", "e30", &"A".repeat(MAX_CURSOR_CHARS + 1)] {
            assert!(SessionCursor::decode(garbage).is_err(), "{garbage}");
        }
        // Valid base64 and JSON, but a timestamp that is not ours.
        let forged = URL_SAFE_NO_PAD.encode(br#"{"u":"yesterday","i":"00000000-0000-0000-0000-000000000000"}"#);
        assert!(SessionCursor::decode(&forged).is_err());
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// Any moment from 1970 to the end of 9999, to the millisecond.
        fn timestamp() -> impl Strategy<Value = Timestamp> {
            (0..253_402_300_800i64, 0..1000u64).prop_map(|(secs, ms)| {
                Timestamp::from_unix_seconds(secs).unwrap().plus(std::time::Duration::from_millis(ms))
            })
        }

        fn order() -> impl Strategy<Value = Order> {
            prop_oneof![Just(Order::Asc), Just(Order::Desc)]
        }

        proptest! {
            #[test]
            fn session_cursors_round_trip(updated_at in timestamp(), id in any::<u128>()) {
                let cursor = SessionCursor { updated_at, id: Uuid::from_u128(id) };
                prop_assert!(cursor.encode().len() <= MAX_CURSOR_CHARS);
                prop_assert_eq!(SessionCursor::decode(&cursor.encode()), Ok(cursor));
            }

            #[test]
            fn message_cursors_round_trip(seq in any::<u64>(), order in order()) {
                let cursor = MessageCursor { seq, order };
                prop_assert_eq!(MessageCursor::decode(&cursor.encode()), Ok(cursor));
            }

            #[test]
            fn arbitrary_text_is_an_error_never_a_panic(text in any::<String>()) {
                prop_assert!(SessionCursor::decode(&text).is_err());
                prop_assert!(MessageCursor::decode(&text).is_err());
            }

            #[test]
            fn arbitrary_base64_is_an_error_never_a_panic(text in "[A-Za-z0-9_-]{0,600}") {
                prop_assert!(SessionCursor::decode(&text).is_err());
                prop_assert!(MessageCursor::decode(&text).is_err());
            }

            #[test]
            fn arbitrary_json_is_an_error_never_a_panic(json in any::<Vec<u8>>(), seq in 1..=u64::MAX) {
                // Bytes of any kind, and cursors' own shape with a wrong value.
                for forged in [json, format!(r#"{{"s":{seq},"o":"sideways"}}"#).into_bytes(), format!(r#"{{"s":-{seq},"o":"asc"}}"#).into_bytes()] {
                    let text = URL_SAFE_NO_PAD.encode(&forged);
                    prop_assert!(SessionCursor::decode(&text).is_err());
                    prop_assert!(MessageCursor::decode(&text).is_err(), "{}", String::from_utf8_lossy(&forged));
                }
            }

            #[test]
            fn a_damaged_cursor_never_panics(seq in any::<u64>(), at in any::<prop::sample::Index>(), byte in any::<u8>()) {
                let mut text = MessageCursor { seq, order: Order::Desc }.encode().into_bytes();
                let at = at.index(text.len());
                text[at] = byte;
                let text = String::from_utf8_lossy(&text);
                // Whatever it reads as, a page boundary or an error, reading it is safe.
                let _ = MessageCursor::decode(&text);
                let _ = SessionCursor::decode(&text);
            }
        }
    }
}
