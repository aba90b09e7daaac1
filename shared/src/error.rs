//! The one error type of the HTTP boundary and its problem+json form (RFC 9457).
//!
//! Every route returns `Result<_, ApiError>`; [`crate::http`] turns the error
//! into a response. Internal causes are logged, never put in a body.

use http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use crate::llm::LlmError;
use crate::store::StoreError;

/// Machine-readable problem codes, stable across releases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProblemCode {
    InvalidRequest,
    Unauthorized,
    NotFound,
    MethodNotAllowed,
    PayloadTooLarge,
    ReplyInProgress,
    SessionBusy,
    IdempotencyKeyReused,
    ContextOverflow,
    LlmUnavailable,
    LlmTimeout,
    ModelNotFound,
    LlmError,
    StorageUnavailable,
    Internal,
}

impl ProblemCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemCode::InvalidRequest => "invalid_request",
            ProblemCode::Unauthorized => "unauthorized",
            ProblemCode::NotFound => "not_found",
            ProblemCode::MethodNotAllowed => "method_not_allowed",
            ProblemCode::PayloadTooLarge => "payload_too_large",
            ProblemCode::ReplyInProgress => "reply_in_progress",
            ProblemCode::SessionBusy => "session_busy",
            ProblemCode::IdempotencyKeyReused => "idempotency_key_reused",
            ProblemCode::ContextOverflow => "context_overflow",
            ProblemCode::LlmUnavailable => "llm_unavailable",
            ProblemCode::LlmTimeout => "llm_timeout",
            ProblemCode::ModelNotFound => "model_not_found",
            ProblemCode::LlmError => "llm_error",
            ProblemCode::StorageUnavailable => "storage_unavailable",
            ProblemCode::Internal => "internal",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request cannot be read: malformed JSON, a bad id, query or cursor.
    #[error("{0}")]
    BadRequest(String),
    /// The request was read but a value breaks a rule or a limit.
    #[error("{0}")]
    Unprocessable(String),
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("a valid API key is required: send `Authorization: Bearer <key>`")]
    Unauthorized,
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("method {0} is not allowed on this resource")]
    MethodNotAllowed(String),
    #[error("{1}")]
    Conflict(ProblemCode, String),
    #[error("this client_message_id was already used with a different message")]
    IdempotencyKeyReused,
    #[error("{0}")]
    ContextOverflow(String),
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
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(..) => StatusCode::CONFLICT,
            ApiError::IdempotencyKeyReused | ApiError::ContextOverflow(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Llm(e) => llm_status(e),
            ApiError::StorageUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> ProblemCode {
        match self {
            ApiError::BadRequest(_) | ApiError::Unprocessable(_) => ProblemCode::InvalidRequest,
            ApiError::PayloadTooLarge { .. } => ProblemCode::PayloadTooLarge,
            ApiError::Unauthorized => ProblemCode::Unauthorized,
            ApiError::NotFound(_) => ProblemCode::NotFound,
            ApiError::MethodNotAllowed(_) => ProblemCode::MethodNotAllowed,
            ApiError::Conflict(code, _) => *code,
            ApiError::IdempotencyKeyReused => ProblemCode::IdempotencyKeyReused,
            ApiError::ContextOverflow(_) => ProblemCode::ContextOverflow,
            ApiError::Llm(e) => e.code(),
            ApiError::StorageUnavailable(_) => ProblemCode::StorageUnavailable,
            ApiError::Internal(_) => ProblemCode::Internal,
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

fn llm_status(err: &LlmError) -> StatusCode {
    match err {
        LlmError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
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
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound => ApiError::NotFound("resource"),
            other => ApiError::StorageUnavailable(other),
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
    pub code: ProblemCode,
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
    fn codes_and_statuses_agree() {
        let p = ApiError::Unprocessable("title is too long".into()).to_problem("r");
        assert_eq!((p.status, p.code, p.r#type.as_str()), (422, ProblemCode::InvalidRequest, "urn:llmchat:problem:invalid_request"));
        let p = ApiError::PayloadTooLarge { limit: 10 }.to_problem("r");
        assert_eq!((p.status, p.code), (413, ProblemCode::PayloadTooLarge));
        let json = serde_json::to_value(ApiError::Unauthorized.to_problem("r")).unwrap();
        assert_eq!(json["code"], "unauthorized");
        assert_eq!(json["request_id"], "r");
    }
}
