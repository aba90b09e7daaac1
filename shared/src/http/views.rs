//! Sessions and messages as the API shows them: one conversion from the
//! domain's types per view, at this boundary.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::domain::{
    ErrorCode, Message, MessageStatus, Metadata, ModelOptions, Role, Session, Timestamp, Usage, metadata_schema,
};

/// A session as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(as = Session)]
pub struct SessionView {
    pub id: Uuid,
    #[schema(max_length = 200, example = "Trip to Lisbon")]
    pub title: String,
    #[schema(example = "smollm2:135m")]
    pub model: String,
    #[schema(max_length = 16000)]
    pub system_prompt: Option<String>,
    pub options: ModelOptions,
    #[schema(schema_with = metadata_schema)]
    pub metadata: Metadata,
    #[schema(value_type = String, format = DateTime, example = "2026-11-24T05:00:00.000Z")]
    pub created_at: Timestamp,
    /// Time of the last change or message: lists are sorted by it, newest first.
    #[schema(value_type = String, format = DateTime, example = "2026-11-24T05:00:00.000Z")]
    pub updated_at: Timestamp,
    /// How many messages the session holds.
    pub message_count: u64,
    /// When the session expires, if the deployment sets a retention period.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Timestamp>,
}

impl From<&Session> for SessionView {
    fn from(s: &Session) -> Self {
        SessionView {
            id: s.id,
            title: s.title.clone(),
            model: s.model.clone(),
            system_prompt: s.system_prompt.clone(),
            options: s.options.clone(),
            metadata: s.metadata.clone(),
            created_at: s.created_at,
            updated_at: s.updated_at,
            message_count: s.last_seq,
            expires_at: s.expires_at,
        }
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
    /// Replies: what the model thought before it answered (never sent back
    /// to the model); `null` when it did not think.
    pub thinking: Option<String>,
    /// Replies: the structured-output format asked for (`"json"` or a JSON Schema).
    #[schema(value_type = Option<Object>)]
    pub format: Option<serde_json::Value>,
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
    pub error_code: Option<ErrorCode>,
}

impl MessageView {
    pub fn new(m: &Message, now: Timestamp) -> Self {
        MessageView {
            id: m.id,
            session_id: m.session_id,
            seq: m.seq,
            role: m.role,
            content: m.content.clone(),
            thinking: (!m.thinking.is_empty()).then(|| m.thinking.clone()),
            format: m.format.clone(),
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

/// A user message and the reply to it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Exchange {
    pub user_message: MessageView,
    pub reply: MessageView,
}

impl Exchange {
    /// The exchange as read at `now` (a reply past its lease reads as `incomplete`).
    pub fn new(user: &Message, reply: &Message, now: Timestamp) -> Self {
        Exchange { user_message: MessageView::new(user, now), reply: MessageView::new(reply, now) }
    }
}
