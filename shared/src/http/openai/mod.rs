//! The OpenAI-compatible surface under `/v1`: chat completions (stateless),
//! models, and the Responses API over LlmChat's own sessions and replies (a
//! response *is* a stored reply). Errors take OpenAI's shape,
//! `{"error": {"message", "type", "param", "code"}}`, because the SDKs parse
//! it; parameters LlmChat does not support are refused by name, never
//! ignored (the supported ones are listed in each module and the README).
//!
//! Streams here carry no `id:` lines: OpenAI's Python SDK keeps the last `id`
//! across events, and would then take the blank line after a `: keep-alive`
//! comment for an empty event and fail to parse it. Resuming a response uses
//! `starting_after` with its sequence numbers instead.

use http::StatusCode;
use http::header::{CONTENT_TYPE, HeaderValue};
use lambda_http::Response;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use super::ApiError;
use crate::domain::ErrorCode;
use crate::llm::LlmError;

pub mod chat;
pub mod models;
pub mod responses;

/// The error body of every `/v1` route, as OpenAI's SDKs read it.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct OpenAiError {
    pub error: OpenAiErrorDetail,
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct OpenAiErrorDetail {
    pub message: String,
    /// `invalid_request_error` or `server_error`.
    pub r#type: String,
    /// The parameter at fault, if one is.
    pub param: Option<String>,
    /// `invalid_api_key`, `model_not_found`, `invalid_value`, `context_length_exceeded`, … or an LlmChat code.
    pub code: Option<String>,
}

/// A JSON request body as a map of its parameters, each checked against
/// `supported`: an unknown one is a 400 naming it.
pub fn params(body: &[u8], supported: &[&str]) -> Result<Map<String, Value>, ApiError> {
    if body.len() > crate::domain::limits::MAX_REQUEST_BODY_BYTES {
        return Err(ApiError::PayloadTooLarge { limit: crate::domain::limits::MAX_REQUEST_BODY_BYTES });
    }
    let value: Value =
        serde_json::from_slice(body).map_err(|e| ApiError::BadRequest(format!("the body is not valid JSON: {e}")))?;
    let Value::Object(map) = value else {
        return Err(ApiError::BadRequest("the body must be a JSON object".to_owned()));
    };
    if let Some(unknown) = map.keys().find(|k| !supported.contains(&k.as_str())) {
        return Err(invalid(unknown, &format!("`{unknown}` is not supported by LlmChat")));
    }
    Ok(map)
}

/// Parameter `name` as `T` (absent or `null`: `None`); a wrong type is a 400 naming it.
pub fn param<T: DeserializeOwned>(map: &Map<String, Value>, name: &str) -> Result<Option<T>, ApiError> {
    match map.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => serde_json::from_value(v.clone()).map(Some).map_err(|e| invalid(name, &format!("`{name}`: {e}"))),
    }
}

/// A required parameter.
pub fn required<T: DeserializeOwned>(map: &Map<String, Value>, name: &str) -> Result<T, ApiError> {
    param(map, name)?.ok_or_else(|| invalid(name, &format!("`{name}` is required")))
}

pub fn invalid(param: &str, detail: &str) -> ApiError {
    ApiError::InvalidParam { param: param.to_owned(), detail: detail.to_owned() }
}

/// A number parameter within `lo..=hi`.
pub fn ranged(map: &Map<String, Value>, name: &str, lo: f64, hi: f64) -> Result<Option<f64>, ApiError> {
    match param::<f64>(map, name)? {
        Some(v) if !(lo..=hi).contains(&v) => Err(invalid(name, &format!("`{name}` must be from {lo} to {hi}"))),
        other => Ok(other),
    }
}

/// The error document and status the OpenAI SDKs expect for `err`.
pub fn error_response<B: From<String>>(err: &ApiError, request_id: &str) -> Response<B> {
    let (status, kind, code) = classify(err);
    let param = match err {
        ApiError::InvalidParam { param, .. } => Value::String(param.clone()),
        _ => Value::Null,
    };
    let body = json!({"error": {
        "message": err.to_string(), "type": kind, "param": param, "code": code, "request_id": request_id,
    }});
    let mut response = Response::new(B::from(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(super::APPLICATION_JSON));
    if status.is_server_error() {
        // The SDKs retry a 5xx by themselves, without an idempotency key: a
        // response may already be stored, and a retry would store it twice.
        response.headers_mut().insert("x-should-retry", HeaderValue::from_static("false"));
    }
    crate::http::respond::with_retry_after(response, err)
}

/// OpenAI's status, `type` and `code` for an error: validation is a 400 (not
/// LlmChat's 422), an unknown model a 404.
fn classify(err: &ApiError) -> (StatusCode, &'static str, Value) {
    const INVALID: &str = "invalid_request_error";
    let code = |c: &str| Value::String(c.to_owned());
    match err {
        ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, INVALID, code("invalid_api_key")),
        ApiError::Llm(LlmError::ModelNotFound(_)) => (StatusCode::NOT_FOUND, INVALID, code("model_not_found")),
        ApiError::NotFound(_) => (StatusCode::NOT_FOUND, INVALID, code("not_found")),
        ApiError::ContextOverflow(_) => (StatusCode::BAD_REQUEST, INVALID, code("context_length_exceeded")),
        ApiError::NotAllowed(_) => (StatusCode::BAD_REQUEST, INVALID, code("not_allowed")),
        ApiError::QuotaExceeded { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limit_error", code("quota_exceeded")),
        ApiError::InvalidParam { .. } | ApiError::Unprocessable(_) | ApiError::IdempotencyKeyReused => {
            (StatusCode::BAD_REQUEST, INVALID, code("invalid_value"))
        }
        other => {
            let status = other.status();
            let kind = if status.is_server_error() { "server_error" } else { INVALID };
            let code = other.code();
            (status, kind, if code == ErrorCode::Internal { Value::Null } else { Value::String(code.as_str().to_owned()) })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_parameters_are_refused_by_name() {
        let err = params(br#"{"model": "m", "logit_bias": {}}"#, &["model"]).unwrap_err();
        assert!(matches!(&err, ApiError::InvalidParam { param, .. } if param == "logit_bias"));
        let response: Response<String> = error_response(&err, "r1");
        assert_eq!(response.status(), 400);
        let body: Value = serde_json::from_str(response.body()).unwrap();
        assert_eq!(body["error"]["param"], "logit_bias");
        assert_eq!(body["error"]["type"], "invalid_request_error");
    }

    #[test]
    fn statuses_follow_openai() {
        let status = |e: ApiError| error_response::<String>(&e, "r").status().as_u16();
        assert_eq!(status(ApiError::Unauthorized), 401);
        assert_eq!(status(ApiError::Llm(LlmError::ModelNotFound("x".into()))), 404);
        assert_eq!(status(ApiError::Unprocessable("bad".into())), 400);
        assert_eq!(status(ApiError::Llm(LlmError::Unavailable("down".into()))), 503);
    }
}
