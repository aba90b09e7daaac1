//! The domain: what LlmChat stores and the rules every value must satisfy
//! before it reaches the store. It knows nothing of HTTP, DynamoDB or any
//! model backend; every other layer points down to it.
//!
//! - [`ids`]: owners and session ids;
//! - [`time`]: timestamps as the table and the API write them;
//! - [`options`]: sampling options for the model;
//! - [`session`] and [`message`]: what is stored, and what a client may send;
//! - [`error_code`]: the stable codes stored on failed replies and sent in problems;
//! - [`limits`]: every bound the API enforces;
//! - [`tokens`]: token estimates for the context budget, and their calibration.

mod error_code;
mod ids;
pub mod limits;
mod message;
mod options;
mod session;
mod time;
pub mod tokens;
mod usage;

pub use error_code::ErrorCode;
pub use ids::*;
pub use message::*;
pub use options::{ModelOptions, Think, ThinkEffort, validate_format};
pub use session::*;
pub use time::{Period, Timestamp};
pub use usage::*;

/// A rule broken by a value the client sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

fn invalid(msg: impl Into<String>) -> Invalid {
    Invalid(msg.into())
}

/// At most `max` characters of `value`, for echoing client input in an error.
fn truncate(value: &str, max: usize) -> String {
    value.chars().take(max).collect()
}

/// A page of a list: pass `next_cursor` back as `cursor` for the next one.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Opaque; `null` on the last page.
    pub next_cursor: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::limits::*;
    use super::*;

    #[test]
    fn timestamps_round_trip_and_sort_as_text() {
        let a = Timestamp::now();
        let text = a.to_string();
        assert_eq!(text.len(), "2026-11-24T05:00:00.000Z".len());
        assert_eq!(Timestamp::parse(&text).unwrap(), a);
        let b = a.plus(std::time::Duration::from_millis(1));
        assert!(a.to_string() < b.to_string());
        assert!(Timestamp::parse("2026-11-24 05:00").is_err());
    }

    #[test]
    fn patch_tells_null_from_absent() {
        let p: UpdateSession = serde_json::from_str(r#"{"system_prompt": null}"#).unwrap();
        assert_eq!(p.system_prompt, Some(None));
        let p: UpdateSession = serde_json::from_str(r#"{"title": "x"}"#).unwrap();
        assert_eq!(p.system_prompt, None);
        let p: UpdateSession = serde_json::from_str(r#"{"title": null}"#).unwrap();
        assert!(p.validate().is_err(), "a title cannot be cleared");
    }

    #[test]
    fn validation_rejects_what_breaks_a_limit() {
        let long_title = "t".repeat(MAX_TITLE_CHARS + 1);
        assert!(validate_title(&long_title).is_err());
        assert!(validate_title(&"é".repeat(MAX_TITLE_CHARS)).is_ok(), "limits count characters, not bytes");
        assert!(validate_title("   ").is_err());
        assert!(validate_model_name("llama3.2:1b").is_ok());
        assert!(validate_model_name("rm -rf").is_err());
        let opts = ModelOptions { temperature: Some(3.0), ..Default::default() };
        assert!(opts.validate().is_err());
        let many: Metadata = (0..=MAX_METADATA_ENTRIES).map(|i| (i.to_string(), String::new())).collect();
        assert!(validate_metadata(&many).is_err());
        assert!(serde_json::from_str::<CreateSession>(r#"{"titel": "typo"}"#).is_err());
    }

    #[test]
    fn request_options_override_session_options_field_by_field() {
        let session = ModelOptions { temperature: Some(0.2), seed: Some(1), ..Default::default() };
        let request = ModelOptions { temperature: Some(0.9), num_predict: Some(64), ..Default::default() };
        let merged = session.overridden_by(&request);
        assert_eq!((merged.temperature, merged.seed, merged.num_predict), (Some(0.9), Some(1), Some(64)));
    }

    #[test]
    fn owner_ids_are_restricted() {
        assert!(OwnerId::parse("alice@example.com").is_ok());
        assert!(OwnerId::parse("").is_err());
        assert!(OwnerId::parse("a#b").is_err(), "'#' would break the key layout");
    }
}
