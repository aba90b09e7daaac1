//! HTTP plumbing shared by every function: one entry point that sets up the
//! request span and turns errors into problem+json, body and query parsing
//! with limits, and response builders.

use std::future::Future;
use std::time::Instant;

use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Method, StatusCode};
use lambda_http::{Body, Request, RequestExt, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::Instrument;

use crate::app::App;
use crate::error::ApiError;
use crate::limits::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, MAX_REQUEST_BODY_BYTES};

pub const APPLICATION_JSON: &str = "application/json";
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Runs one request: a span carrying the request id (and later the session
/// id), the route, an access log line, and problem+json for any error.
/// Generic over the body so that streamed responses (stream-reply) share it.
pub async fn serve<S, B, F, Fut>(app: &App<S>, req: Request, route: F) -> Result<Response<B>, lambda_http::Error>
where
    B: From<String>,
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Result<Response<B>, ApiError>>,
{
    let request_id = request_id(&req);
    let origin = req.headers().get(http::header::ORIGIN).and_then(|o| o.to_str().ok()).map(str::to_owned);
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        method = %req.method(),
        path = %req.uri().path(),
        session_id = tracing::field::Empty,
        owner = tracing::field::Empty,
    );
    let started = Instant::now();
    let mut response = async {
        let response = match route(req).await {
            Ok(response) => response,
            Err(err) => {
                log_error(&err);
                problem(&err, &request_id)
            }
        };
        tracing::info!(status = response.status().as_u16(), latency_ms = started.elapsed().as_millis() as u64, "request done");
        response
    }
    .instrument(span)
    .await;
    if let Some(allowed) = app.config.cors_origins.allow(origin.as_deref()) {
        if let Ok(value) = HeaderValue::from_str(&allowed) {
            response.headers_mut().insert(http::header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
            response.headers_mut().insert(http::header::VARY, HeaderValue::from_static("origin"));
        }
    }
    Ok(response)
}

fn log_error(err: &ApiError) {
    if err.status().is_server_error() {
        let mut chain = String::new();
        let mut source = std::error::Error::source(err);
        while let Some(s) = source {
            chain.push_str(&s.to_string());
            chain.push_str("; ");
            source = s.source();
        }
        tracing::error!(code = err.code().as_str(), cause = %chain, "request failed");
    } else {
        tracing::info!(code = err.code().as_str(), detail = %err, "request rejected");
    }
}

/// Records the session id on the request span, so every later log line carries it.
pub fn record_session(id: &uuid::Uuid) {
    tracing::Span::current().record("session_id", tracing::field::display(id));
}

/// The Lambda request id, or the API Gateway one, or a fresh one.
pub fn request_id(req: &Request) -> String {
    if let Some(ctx) = req.lambda_context_ref() {
        if !ctx.request_id.is_empty() {
            return ctx.request_id.clone();
        }
    }
    uuid::Uuid::new_v4().to_string()
}

/// The path segments after the first `anchor` segment (`/prod/sessions/x` and
/// `/sessions/x` both give `["x"]` for `sessions`), or `None` if there is none.
pub fn segments_after<'a>(req: &'a Request, anchor: &str) -> Option<Vec<&'a str>> {
    let mut segments = req.uri().path().split('/').filter(|s| !s.is_empty());
    segments.by_ref().find(|s| *s == anchor)?;
    Some(segments.collect())
}

/// The JSON body as `T`. An empty body reads as `{}`, so optional bodies work.
/// The body is read as JSON whatever its `content-type` says: clients such as
/// `curl -d` label JSON as a form, and the body is what matters.
pub fn json_body<T: DeserializeOwned>(req: &Request) -> Result<T, ApiError> {
    let bytes: &[u8] = req.body().as_ref();
    if bytes.len() > MAX_REQUEST_BODY_BYTES {
        return Err(ApiError::PayloadTooLarge { limit: MAX_REQUEST_BODY_BYTES });
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return decode(serde_json::Value::Object(Default::default()));
    }
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::BadRequest(format!("request body is not valid JSON: {e}")))?;
    if !value.is_object() {
        return Err(ApiError::Unprocessable("request body must be a JSON object".to_owned()));
    }
    decode(value)
}

/// Reads a JSON object as `T`; derived types would also accept a JSON array.
fn decode<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    serde_json::from_value(value).map_err(|e| ApiError::Unprocessable(format!("request body does not match the schema: {e}")))
}

/// A single query parameter.
pub fn query_param(req: &Request, name: &str) -> Option<String> {
    req.query_string_parameters_ref().and_then(|q| q.first(name)).map(str::to_owned)
}

/// `limit`: 1 to [`MAX_PAGE_SIZE`], default [`DEFAULT_PAGE_SIZE`].
pub fn page_limit(req: &Request) -> Result<u32, ApiError> {
    match query_param(req, "limit") {
        None => Ok(DEFAULT_PAGE_SIZE),
        Some(v) => match v.parse::<u32>() {
            Ok(n) if (1..=MAX_PAGE_SIZE).contains(&n) => Ok(n),
            _ => Err(ApiError::BadRequest(format!("limit must be a whole number from 1 to {MAX_PAGE_SIZE}"))),
        },
    }
}

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
    response
}

/// 405 for a method the route does not serve.
pub fn method_not_allowed(method: &Method) -> ApiError {
    ApiError::MethodNotAllowed(method.to_string())
}
