//! Stable, machine-readable error codes. A failed reply stores one, and every
//! problem a client receives carries one; the HTTP layer alone decides which
//! status goes with each.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidRequest,
    Unauthorized,
    NotFound,
    MethodNotAllowed,
    PayloadTooLarge,
    ReplyInProgress,
    SessionBusy,
    ReplySuperseded,
    IdempotencyKeyReused,
    ContextOverflow,
    NotAllowed,
    QuotaExceeded,
    LlmUnavailable,
    LlmTimeout,
    LlmBusy,
    ModelNotFound,
    LlmError,
    StorageUnavailable,
    Internal,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::ReplyInProgress => "reply_in_progress",
            ErrorCode::SessionBusy => "session_busy",
            ErrorCode::ReplySuperseded => "reply_superseded",
            ErrorCode::IdempotencyKeyReused => "idempotency_key_reused",
            ErrorCode::ContextOverflow => "context_overflow",
            ErrorCode::NotAllowed => "not_allowed",
            ErrorCode::QuotaExceeded => "quota_exceeded",
            ErrorCode::LlmUnavailable => "llm_unavailable",
            ErrorCode::LlmTimeout => "llm_timeout",
            ErrorCode::LlmBusy => "llm_busy",
            ErrorCode::ModelNotFound => "model_not_found",
            ErrorCode::LlmError => "llm_error",
            ErrorCode::StorageUnavailable => "storage_unavailable",
            ErrorCode::Internal => "internal",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ErrorCode;

    #[test]
    fn the_text_form_is_the_serialized_form() {
        for code in [ErrorCode::InvalidRequest, ErrorCode::ReplyInProgress, ErrorCode::LlmError, ErrorCode::Internal] {
            assert_eq!(serde_json::to_value(code).unwrap(), code.as_str());
        }
    }
}
