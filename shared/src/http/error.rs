//! The one error type of the HTTP boundary and its problem+json form (RFC 9457).
//!
//! Every route returns `Result<_, ApiError>`; [`serve`](super::serve) turns
//! the error into a response. The use cases' errors become `ApiError`s here,
//! and here alone is decided which status goes with each. Internal causes are
//! logged, never put in a body.

use http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::AuthError;
use crate::chat::ChatError;
use crate::domain::{ErrorCode, Invalid};
use crate::llm::LlmError;
use crate::sessions::SessionError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request cannot be read: malformed JSON, a bad id, query or cursor.
    #[error("{0}")]
    BadRequest(String),
    /// The request was read but a value breaks a rule or a limit.
    #[error("{0}")]
    Unprocessable(String),
    /// A named parameter is unknown, unsupported, or breaks a rule (the
    /// OpenAI-compatible routes name it in `param`).
    #[error("{detail}")]
    InvalidParam { param: String, detail: String },
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("a valid API key is required: send `Authorization: Bearer <key>`")]
    Unauthorized,
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("method {0} is not allowed on this resource")]
    MethodNotAllowed(String),
    #[error("{1}")]
    Conflict(ErrorCode, String),
    #[error("this client_message_id was already used with a different message")]
    IdempotencyKeyReused,
    #[error("{0}")]
    ContextOverflow(String),
    /// The request asks for more than this deployment offers (its allow-list
    /// and limits); the detail names the limit.
    #[error("{0}")]
    NotAllowed(String),
    /// The caller is at one of its quotas: nothing was stored.
    #[error("the {} quota is used up; try again in {retry_after} s", quota.as_str())]
    QuotaExceeded { quota: crate::domain::Quota, retry_after: u64 },
    #[error("{}", llm_detail(.0))]
    Llm(#[source] LlmError),
    #[error("storage is unavailable, try again shortly")]
    StorageUnavailable(#[source] StoreError),
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unprocessable(_) | ApiError::InvalidParam { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(..) => StatusCode::CONFLICT,
            ApiError::IdempotencyKeyReused | ApiError::ContextOverflow(_) | ApiError::NotAllowed(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::QuotaExceeded { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Llm(e) => llm_status(e),
            ApiError::StorageUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            ApiError::BadRequest(_) | ApiError::Unprocessable(_) | ApiError::InvalidParam { .. } => ErrorCode::InvalidRequest,
            ApiError::PayloadTooLarge { .. } => ErrorCode::PayloadTooLarge,
            ApiError::Unauthorized => ErrorCode::Unauthorized,
            ApiError::NotFound(_) => ErrorCode::NotFound,
            ApiError::MethodNotAllowed(_) => ErrorCode::MethodNotAllowed,
            ApiError::Conflict(code, _) => *code,
            ApiError::IdempotencyKeyReused => ErrorCode::IdempotencyKeyReused,
            ApiError::ContextOverflow(_) => ErrorCode::ContextOverflow,
            ApiError::NotAllowed(_) => ErrorCode::NotAllowed,
            ApiError::QuotaExceeded { .. } => ErrorCode::QuotaExceeded,
            ApiError::Llm(e) => e.code(),
            ApiError::StorageUnavailable(_) => ErrorCode::StorageUnavailable,
            ApiError::Internal(_) => ErrorCode::Internal,
        }
    }

    /// Seconds a client should wait before trying again (`Retry-After`), when known.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            ApiError::Llm(LlmError::Busy { retry_after, .. }) => Some(retry_after.unwrap_or(DEFAULT_BUSY_RETRY_AFTER_SECS)),
            ApiError::QuotaExceeded { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }

    /// The problem document sent to the client.
    pub fn to_problem(&self, request_id: &str) -> Problem {
        let status = self.status();
        let code = self.code();
        Problem {
            r#type: format!("urn:llmchat:problem:{}", code.as_str()),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: self.to_string(),
            code,
            request_id: request_id.to_owned(),
        }
    }
}

/// `Retry-After` sent with `llm_busy` when the backend named no wait of its own.
pub const DEFAULT_BUSY_RETRY_AFTER_SECS: u64 = 5;

fn llm_status(err: &LlmError) -> StatusCode {
    match err {
        LlmError::Unavailable(_) | LlmError::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
        LlmError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
        LlmError::ModelNotFound(_) => StatusCode::UNPROCESSABLE_ENTITY,
        LlmError::Failed(_) => StatusCode::BAD_GATEWAY,
    }
}

/// What a client is told about an LLM failure; the backend's own words go to the logs.
fn llm_detail(err: &LlmError) -> String {
    match err {
        LlmError::Unavailable(_) => "the LLM backend is unavailable; your message was saved".to_owned(),
        LlmError::Timeout(_) => "the LLM backend took too long; the reply so far was saved".to_owned(),
        LlmError::ModelNotFound(model) => format!("model `{model}` is not available on the LLM backend"),
        LlmError::Failed(_) => "the LLM backend failed while replying; the reply so far was saved".to_owned(),
        LlmError::Busy { .. } => "the LLM backend is busy; your message was saved, try again after Retry-After seconds".to_owned(),
    }
}

impl ApiError {
    /// A path or query value that cannot be read (an id, a cursor, an order).
    pub fn bad_request(err: Invalid) -> Self {
        ApiError::BadRequest(err.0)
    }
}

/// A write that met another write on the same item at the same moment and was
/// not retried to success: the session is busy, not the storage unavailable.
fn busy_session() -> ApiError {
    ApiError::Conflict(ErrorCode::SessionBusy, "the session was being changed by another request; try again".to_owned())
}

impl From<SessionError> for ApiError {
    fn from(err: SessionError) -> Self {
        match err {
            SessionError::Invalid(detail) => ApiError::Unprocessable(detail),
            SessionError::NotAllowed(detail) => ApiError::NotAllowed(detail),
            SessionError::BadCursor(detail) => ApiError::BadRequest(detail),
            SessionError::NotFound => ApiError::NotFound("session"),
            SessionError::Busy => ApiError::Conflict(ErrorCode::SessionBusy, err.to_string()),
            SessionError::Storage(StoreError::Conflict) => busy_session(),
            SessionError::Storage(e) => ApiError::StorageUnavailable(e),
        }
    }
}

impl From<ChatError> for ApiError {
    fn from(err: ChatError) -> Self {
        match err {
            ChatError::Invalid(detail) => ApiError::Unprocessable(detail),
            ChatError::NotFound(what) => ApiError::NotFound(what),
            ChatError::ReplyInProgress => ApiError::Conflict(ErrorCode::ReplyInProgress, err.to_string()),
            ChatError::IdempotencyKeyReused => ApiError::IdempotencyKeyReused,
            ChatError::ContextOverflow(detail) => ApiError::ContextOverflow(detail),
            ChatError::NotAllowed(detail) => ApiError::NotAllowed(detail),
            ChatError::QuotaExceeded { quota, retry_after } => ApiError::QuotaExceeded { quota, retry_after },
            ChatError::BadPosition(detail) => ApiError::BadRequest(detail),
            ChatError::Superseded => ApiError::Conflict(ErrorCode::ReplySuperseded, err.to_string()),
            ChatError::Llm(e) => ApiError::Llm(e),
            ChatError::Storage(StoreError::Conflict) => busy_session(),
            ChatError::Storage(e) => ApiError::StorageUnavailable(e),
        }
    }
}

impl From<crate::usage::UsageError> for ApiError {
    fn from(err: crate::usage::UsageError) -> Self {
        match err {
            crate::usage::UsageError::Invalid(detail) => ApiError::BadRequest(detail),
            crate::usage::UsageError::Storage(e) => ApiError::StorageUnavailable(e),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(err: AuthError) -> Self {
        match err {
            AuthError::Unauthenticated => ApiError::Unauthorized,
            AuthError::Storage(e) => ApiError::StorageUnavailable(e),
        }
    }
}

/// `application/problem+json` body of every error response.
#[derive(Debug, Clone, Serialize, serde::Deserialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem: `urn:llmchat:problem:<code>`.
    #[schema(example = "urn:llmchat:problem:not_found")]
    pub r#type: String,
    /// Short summary: the HTTP reason phrase.
    #[schema(example = "Not Found")]
    pub title: String,
    /// The HTTP status code.
    #[schema(example = 404)]
    pub status: u16,
    /// What went wrong, for a person.
    #[schema(example = "session not found")]
    pub detail: String,
    /// What went wrong, for a program.
    pub code: ErrorCode,
    /// The request id, to find the request in the logs.
    pub request_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problem_never_leaks_the_internal_cause() {
        let err = ApiError::Internal("secret table arn:aws:dynamodb:xyz".into());
        let p = err.to_problem("req-1");
        assert_eq!(p.status, 500);
        assert_eq!(p.detail, "internal error");
        assert!(!serde_json::to_string(&p).unwrap().contains("arn:aws"));
    }

    #[test]
    fn a_write_conflict_is_a_busy_session_not_unavailable_storage() {
        for err in [ApiError::from(SessionError::Storage(StoreError::Conflict)), ApiError::from(ChatError::Storage(StoreError::Conflict))] {
            let p = err.to_problem("r");
            assert_eq!((p.status, p.code), (409, ErrorCode::SessionBusy));
        }
        let p = ApiError::from(SessionError::Storage(StoreError::Unavailable("down".into()))).to_problem("r");
        assert_eq!((p.status, p.code), (503, ErrorCode::StorageUnavailable));
    }

    #[test]
    fn codes_and_statuses_agree() {
        let p = ApiError::Unprocessable("title is too long".into()).to_problem("r");
        assert_eq!((p.status, p.code, p.r#type.as_str()), (422, ErrorCode::InvalidRequest, "urn:llmchat:problem:invalid_request"));
        let p = ApiError::PayloadTooLarge { limit: 10 }.to_problem("r");
        assert_eq!((p.status, p.code), (413, ErrorCode::PayloadTooLarge));
        let json = serde_json::to_value(ApiError::Unauthorized.to_problem("r")).unwrap();
        assert_eq!(json["code"], "unauthorized");
        assert_eq!(json["request_id"], "r");
    }
}
