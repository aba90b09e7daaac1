//! Messages: what a client sends, what the model replies, and how a reply's
//! life (streaming, complete, incomplete, failed) is shown.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{Invalid, ModelOptions, Timestamp, invalid};
use crate::error::ProblemCode;
use crate::limits::{MAX_CLIENT_MESSAGE_ID_CHARS, MAX_MESSAGE_CHARS};
use crate::llm::{Role, Usage};

/// Where a message is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MessageStatus {
    /// Stored whole.
    Complete,
    /// A reply being generated right now.
    Streaming,
    /// A reply cut short (timeout, or the function stopped): the text so far is kept.
    Incomplete,
    /// A reply the model failed to produce: the text so far, if any, is kept.
    Failed,
}

/// A message as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub id: Uuid,
    pub session_id: Uuid,
    pub seq: u64,
    pub role: Role,
    pub content: String,
    pub status: MessageStatus,
    pub created_at: Timestamp,
    pub completed_at: Option<Timestamp>,
    pub model: Option<String>,
    pub usage: Option<Usage>,
    pub done_reason: Option<String>,
    pub client_message_id: Option<String>,
    pub context_truncated: bool,
    pub error_code: Option<ProblemCode>,
    /// While streaming: the writer renews this; past it, the writer is presumed dead.
    pub lease_until: Option<Timestamp>,
}

impl Message {
    /// The status a reader should see: a `streaming` reply whose lease ran out
    /// was abandoned (the function died) and reads as `incomplete`.
    pub fn effective_status(&self, now: Timestamp) -> MessageStatus {
        match (self.status, self.lease_until) {
            (MessageStatus::Streaming, Some(lease)) if lease < now => MessageStatus::Incomplete,
            (status, _) => status,
        }
    }

    /// True while another request is generating this reply.
    pub fn is_live(&self, now: Timestamp) -> bool {
        self.effective_status(now) == MessageStatus::Streaming
    }
}

/// A message as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(as = Message)]
pub struct MessageView {
    pub id: Uuid,
    pub session_id: Uuid,
    /// Position in the session, strictly increasing.
    pub seq: u64,
    pub role: Role,
    pub content: String,
    pub status: MessageStatus,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub completed_at: Option<Timestamp>,
    /// Replies: the model that wrote it.
    pub model: Option<String>,
    /// Replies: token counts and durations reported by the model.
    pub usage: Option<Usage>,
    /// Replies: why generation stopped (`stop`, `length`).
    pub done_reason: Option<String>,
    /// User messages: the idempotency key sent with it.
    pub client_message_id: Option<String>,
    /// Replies: true when older turns were left out to fit the model's context.
    pub context_truncated: bool,
    /// Replies that failed or were cut short: the problem code.
    pub error_code: Option<ProblemCode>,
}

impl MessageView {
    pub fn new(m: &Message, now: Timestamp) -> Self {
        MessageView {
            id: m.id,
            session_id: m.session_id,
            seq: m.seq,
            role: m.role,
            content: m.content.clone(),
            status: m.effective_status(now),
            created_at: m.created_at,
            completed_at: m.completed_at,
            model: m.model.clone(),
            usage: m.usage.clone(),
            done_reason: m.done_reason.clone(),
            client_message_id: m.client_message_id.clone(),
            context_truncated: m.context_truncated,
            error_code: m.error_code,
        }
    }
}

/// Body of `POST /sessions/{id}/messages` and `.../messages/stream`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendMessage {
    #[schema(min_length = 1, max_length = 32000, example = "What should I see in Lisbon?")]
    pub content: String,
    /// Idempotency key: a retry with the same key returns the original exchange.
    #[schema(max_length = 128, example = "c0a8012e-7f3b-4c1e-9a57-1d2b3c4d5e6f")]
    #[serde(default)]
    pub client_message_id: Option<String>,
    /// Options for this reply only, over the session's.
    #[serde(default)]
    pub options: Option<ModelOptions>,
}

impl SendMessage {
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.content.trim().is_empty() {
            return Err(invalid("content must not be blank"));
        }
        if self.content.chars().count() > MAX_MESSAGE_CHARS {
            return Err(invalid(format!("content is at most {MAX_MESSAGE_CHARS} characters")));
        }
        if let Some(id) = &self.client_message_id {
            let ok = !id.is_empty()
                && id.chars().count() <= MAX_CLIENT_MESSAGE_ID_CHARS
                && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':'));
            if !ok {
                return Err(invalid(format!(
                    "client_message_id is 1-{MAX_CLIENT_MESSAGE_ID_CHARS} characters of letters, digits and . _ - :"
                )));
            }
        }
        if let Some(o) = &self.options {
            o.validate()?;
        }
        Ok(())
    }
}

/// A user message and the reply to it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Exchange {
    pub user_message: MessageView,
    pub reply: MessageView,
}

/// Order of a history page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    Asc,
    Desc,
}

impl Order {
    pub fn parse(value: Option<&str>) -> Result<Self, Invalid> {
        match value {
            None | Some("asc") => Ok(Order::Asc),
            Some("desc") => Ok(Order::Desc),
            Some(_) => Err(invalid("order must be `asc` or `desc`")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(status: MessageStatus, lease: Option<Timestamp>) -> Message {
        Message {
            id: Uuid::new_v4(),
            session_id: Uuid::new_v4(),
            seq: 2,
            role: Role::Assistant,
            content: "partial".into(),
            status,
            created_at: Timestamp::now(),
            completed_at: None,
            model: None,
            usage: None,
            done_reason: None,
            client_message_id: None,
            context_truncated: false,
            error_code: None,
            lease_until: lease,
        }
    }

    #[test]
    fn a_streaming_reply_past_its_lease_reads_as_incomplete() {
        let now = Timestamp::now();
        let past = Timestamp::parse("2020-01-01T00:00:00.000Z").unwrap();
        let future = now.plus(std::time::Duration::from_secs(60));
        assert_eq!(reply(MessageStatus::Streaming, Some(past)).effective_status(now), MessageStatus::Incomplete);
        assert_eq!(reply(MessageStatus::Streaming, Some(future)).effective_status(now), MessageStatus::Streaming);
        assert!(reply(MessageStatus::Streaming, Some(future)).is_live(now));
        assert_eq!(reply(MessageStatus::Complete, Some(past)).effective_status(now), MessageStatus::Complete);
    }

    #[test]
    fn send_bodies_are_validated() {
        let ok: SendMessage = serde_json::from_str(r#"{"content": "hi", "client_message_id": "abc-1"}"#).unwrap();
        assert!(ok.validate().is_ok());
        let blank: SendMessage = serde_json::from_str(r#"{"content": "  "}"#).unwrap();
        assert!(blank.validate().is_err());
        let long = SendMessage { content: "x".repeat(MAX_MESSAGE_CHARS + 1), client_message_id: None, options: None };
        assert!(long.validate().is_err());
        let bad_key: SendMessage = serde_json::from_str(r#"{"content": "hi", "client_message_id": "a b"}"#).unwrap();
        assert!(bad_key.validate().is_err());
        assert!(serde_json::from_str::<SendMessage>(r#"{}"#).is_err(), "content is required");
        assert_eq!(Order::parse(Some("desc")).unwrap(), Order::Desc);
        assert!(Order::parse(Some("up")).is_err());
    }
}
