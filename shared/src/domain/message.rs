//! Messages: what a client sends, what the model replies, and how a reply's
//! life (streaming, complete, incomplete, failed) is shown.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::limits::{MAX_CLIENT_MESSAGE_ID_CHARS, MAX_MESSAGE_CHARS};
use super::tokens::TokenCalibration;
use super::{ErrorCode, Invalid, ModelOptions, Timestamp, invalid};

/// Who wrote a turn of the conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

/// What the model reported when it finished a reply.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Usage {
    /// Tokens of the prompt the model evaluated (`prompt_eval_count`).
    pub prompt_tokens: u64,
    /// Tokens generated (`eval_count`), thinking included.
    pub completion_tokens: u64,
    /// Of `completion_tokens`, those spent thinking (as the backend reports
    /// them, or one per streamed piece of thinking where it reports none).
    #[serde(default)]
    pub thinking_tokens: u64,
    /// Whole request, as the backend measured it.
    pub total_duration_ms: u64,
    /// Time spent loading the model.
    pub load_duration_ms: u64,
    pub prompt_eval_duration_ms: u64,
    pub eval_duration_ms: u64,
}

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
    /// A reply stopped by a cancel: the text so far is kept.
    Cancelled,
}

/// A message as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub id: Uuid,
    pub session_id: Uuid,
    pub seq: u64,
    pub role: Role,
    pub content: String,
    /// A reply's thinking, apart from its content (empty when the model did
    /// not think); never sent back to the model.
    pub thinking: String,
    /// The structured-output format the reply was asked for, if any.
    pub format: Option<serde_json::Value>,
    /// A reply's cost besides its tokens, once it has ended.
    pub spend: Option<super::Spend>,
    pub status: MessageStatus,
    pub created_at: Timestamp,
    pub completed_at: Option<Timestamp>,
    pub model: Option<String>,
    pub usage: Option<Usage>,
    pub done_reason: Option<String>,
    pub client_message_id: Option<String>,
    pub context_truncated: bool,
    /// A finished reply's measure of the context estimate: how many tokens
    /// the backend counted in its prompt per token estimated. The session's
    /// next sends to the same model fit their context with it.
    pub prompt_calibration: Option<TokenCalibration>,
    pub error_code: Option<ErrorCode>,
    /// While streaming: the writer renews this; past it, the writer is presumed dead.
    pub lease_until: Option<Timestamp>,
    /// While streaming: the token of the one generator allowed to write this
    /// reply. Every write of a generator is conditional on it (fencing).
    pub generation: Option<String>,
    /// While streaming: someone asked to stop this reply.
    pub cancel_requested: bool,
}

impl Message {
    /// A message the user sent, stored whole.
    pub fn user(session_id: Uuid, seq: u64, content: String, client_message_id: Option<String>, now: Timestamp) -> Self {
        Message {
            id: Uuid::new_v4(),
            session_id,
            seq,
            role: Role::User,
            content,
            thinking: String::new(),
            format: None,
            spend: None,
            status: MessageStatus::Complete,
            created_at: now,
            completed_at: Some(now),
            model: None,
            usage: None,
            done_reason: None,
            client_message_id,
            context_truncated: false,
            prompt_calibration: None,
            error_code: None,
            lease_until: None,
            generation: None,
            cancel_requested: false,
        }
    }

    /// A reply about to be written by `model`: empty, `streaming`, its writer
    /// presumed alive until `lease_until`, and holding a fresh generation token.
    pub fn pending_reply(session_id: Uuid, seq: u64, model: String, now: Timestamp, lease_until: Timestamp) -> Self {
        Message {
            role: Role::Assistant,
            status: MessageStatus::Streaming,
            completed_at: None,
            model: Some(model),
            lease_until: Some(lease_until),
            generation: Some(Uuid::new_v4().to_string()),
            ..Message::user(session_id, seq, String::new(), None, now)
        }
    }

    /// The status a reader should see: a `streaming` reply whose lease ran out
    /// was abandoned (the function died) and reads as `incomplete`.
    pub fn effective_status(&self, now: Timestamp) -> MessageStatus {
        match (self.status, self.lease_until) {
            (MessageStatus::Streaming, Some(lease)) if lease < now => MessageStatus::Incomplete,
            (status, _) => status,
        }
    }

    /// The position after the reply's last byte: positions count its
    /// thinking, then its content.
    pub fn end_position(&self) -> usize {
        self.thinking.len() + self.content.len()
    }

    /// True while another request is generating this reply.
    pub fn is_live(&self, now: Timestamp) -> bool {
        self.effective_status(now) == MessageStatus::Streaming
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
    /// Not part of this API's body: set by the OpenAI-compatible Responses
    /// surface, whose every request names its model and instructions.
    #[serde(skip)]
    pub turn: TurnOverrides,
}

/// This turn's model and instructions, over the session's.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TurnOverrides {
    pub model: Option<String>,
    pub system_prompt: Option<String>,
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
        if let Some(m) = &self.turn.model {
            super::validate_model_name(m)?;
        }
        if let Some(p) = &self.turn.system_prompt {
            super::validate_system_prompt(p)?;
        }
        Ok(())
    }
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
        let now = Timestamp::now();
        let mut reply = Message::pending_reply(Uuid::new_v4(), 2, "m".into(), now, now);
        reply.content = "partial".into();
        reply.status = status;
        reply.lease_until = lease;
        reply
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
        let long = SendMessage {
            content: "x".repeat(MAX_MESSAGE_CHARS + 1),
            client_message_id: None,
            options: None,
            turn: TurnOverrides::default(),
        };
        assert!(long.validate().is_err());
        let bad_key: SendMessage = serde_json::from_str(r#"{"content": "hi", "client_message_id": "a b"}"#).unwrap();
        assert!(bad_key.validate().is_err());
        assert!(serde_json::from_str::<SendMessage>(r#"{}"#).is_err(), "content is required");
        assert_eq!(Order::parse(Some("desc")).unwrap(), Order::Desc);
        assert!(Order::parse(Some("up")).is_err());
    }
}
