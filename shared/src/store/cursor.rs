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
}
