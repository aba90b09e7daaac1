//! Building responses: JSON, no content, and problem+json.

use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Method, StatusCode};
use lambda_http::{Body, Response};
use serde::Serialize;

use super::ApiError;

pub const APPLICATION_JSON: &str = "application/json";
pub const PROBLEM_JSON: &str = "application/problem+json";

pub fn json<T: Serialize, B: From<String>>(status: StatusCode, value: &T) -> Result<Response<B>, ApiError> {
    let body = serde_json::to_string(value).map_err(|e| ApiError::Internal(Box::new(e)))?;
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, APPLICATION_JSON)
        .body(B::from(body))
        .map_err(|e| ApiError::Internal(Box::new(e)))
}

pub fn no_content() -> Result<Response<Body>, ApiError> {
    Response::builder().status(StatusCode::NO_CONTENT).body(Body::Empty).map_err(|e| ApiError::Internal(Box::new(e)))
}

/// The problem+json response for `err`.
pub fn problem<B: From<String>>(err: &ApiError, request_id: &str) -> Response<B> {
    let body = serde_json::to_string(&err.to_problem(request_id)).unwrap_or_else(|_| "{}".to_owned());
    let mut response = Response::new(B::from(body));
    *response.status_mut() = err.status();
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    if let ApiError::Unauthorized = err {
        response.headers_mut().insert(http::header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    with_retry_after(response, err)
}

/// The error's `Retry-After`, if it has one.
pub fn with_retry_after<B>(mut response: Response<B>, err: &ApiError) -> Response<B> {
    if let Some(secs) = err.retry_after() {
        response.headers_mut().insert(http::header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

/// 405 for a method the route does not serve.
pub fn method_not_allowed(method: &Method) -> ApiError {
    ApiError::MethodNotAllowed(method.to_string())
}
