//! One entry point for every request: a span carrying the request id (and
//! later the session id), an access log line, problem+json for any error, the
//! request id header, and CORS (preflights answered here, for every function).

use std::future::Future;
use std::time::Instant;

use http::Method;
use http::header::HeaderValue;
use lambda_http::{Request, RequestExt, Response};
use tracing::Instrument;

use super::cors::{self, REQUEST_ID_HEADER};
use super::{ApiError, problem};
use crate::config::Config;
use crate::telemetry::error_chain;

/// Runs one request: a span carrying the request id (and later the session
/// id), the route, an access log line, and problem+json for any error.
/// Generic over the body so that streamed responses (stream-reply) share it.
pub async fn serve<B, F, Fut>(config: &Config, req: Request, route: F) -> Result<Response<B>, lambda_http::Error>
where
    B: From<String>,
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Result<Response<B>, ApiError>>,
{
    serve_as(config, req, problem, route).await
}

/// The API's own words in paths: the fixed segments of its routes.
const PATH_WORDS: &[&str] = &[
    "sessions", "messages", "stream", "cancel", "usage", "v1", "chat", "completions", "models", "responses", "health",
    "openapi.json", "openapi-3.2.json", "docs",
];

/// `path` as logged: the API's own words and ids (UUIDs) as they are, any
/// other segment (a client's text: a model name, a file, anything mistyped)
/// as `*`, so that no client string reaches the logs through a path.
pub fn loggable_path(path: &str) -> String {
    path.split('/')
        .map(|segment| {
            let ours = segment.is_empty() || PATH_WORDS.contains(&segment) || uuid::Uuid::try_parse(segment).is_ok();
            if ours { segment } else { "*" }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// [`serve`], with errors rendered by `render` (the OpenAI-compatible routes
/// answer in OpenAI's error shape instead of problem+json).
pub async fn serve_as<B, F, Fut>(
    config: &Config,
    req: Request,
    render: fn(&ApiError, &str) -> Response<B>,
    route: F,
) -> Result<Response<B>, lambda_http::Error>
where
    B: From<String>,
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Result<Response<B>, ApiError>>,
{
    let request_id = request_id(&req);
    let request_headers = req.headers().clone();
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        method = %req.method(),
        path = %loggable_path(req.uri().path()),
        session_id = tracing::field::Empty,
        owner = tracing::field::Empty,
    );
    let started = Instant::now();
    let mut response = async {
        if req.method() == Method::OPTIONS {
            let response = cors::preflight(&config.cors_origins, &request_headers);
            tracing::info!(status = response.status().as_u16(), "preflight answered");
            return response;
        }
        let response = match route(req).await {
            Ok(response) => response,
            Err(err) => {
                log_error(&err);
                render(&err, &request_id)
            }
        };
        tracing::info!(status = response.status().as_u16(), latency_ms = started.elapsed().as_millis() as u64, "request done");
        response
    }
    .instrument(span)
    .await;
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    if response.headers().get(http::header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none() {
        cors::decorate(&config.cors_origins, &request_headers, response.headers_mut());
    }
    Ok(response)
}

fn log_error(err: &ApiError) {
    crate::metrics::problem(err.code().as_str(), err.status().as_u16());
    if err.status().is_server_error() {
        let cause = std::error::Error::source(err).map(error_chain).unwrap_or_default();
        tracing::error!(code = err.code().as_str(), cause = %cause, "request failed");
    } else {
        // A rejection's detail can quote what the client sent (a field, a
        // parameter name, a serde message): only at debug level.
        tracing::info!(code = err.code().as_str(), status = err.status().as_u16(), "request rejected");
        tracing::debug!(detail = %err, "rejection detail");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn paths_are_logged_without_client_text() {
        use super::loggable_path;
        let id = "4151696a-18a6-4408-9e88-66472e2e9a24";
        assert_eq!(loggable_path(&format!("/sessions/{id}/messages/stream")), format!("/sessions/{id}/messages/stream"));
        assert_eq!(loggable_path("/sessions/my secret"), "/sessions/*");
        assert_eq!(loggable_path("/v1/models/ollama/private-model"), "/v1/models/*/*");
        assert_eq!(loggable_path("/"), "/");
    }

    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn rejections_log_no_client_text_at_info() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            log_error(&ApiError::InvalidParam { param: "secret-param-name".into(), detail: "`secret-param-name` is not supported".into() });
            log_error(&ApiError::BadRequest("request body is not valid JSON: my private text".into()));
        });
        let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert_eq!(logs.matches("request rejected").count(), 2, "{logs}");
        assert!(!logs.contains("secret-param-name") && !logs.contains("my private text"), "{logs}");
    }

    #[test]
    fn every_problem_is_counted_by_code_and_status_class() {
        let capture = crate::metrics::capture::start();
        log_error(&ApiError::Unauthorized);
        log_error(&ApiError::NotFound("session"));
        let lines = capture.reporting("Problems");
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert_eq!((lines[0]["Code"].as_str(), lines[0]["StatusClass"].as_str()), (Some("unauthorized"), Some("4xx")));
        assert_eq!((lines[1]["Code"].as_str(), lines[1]["status"].as_u64()), (Some("not_found"), Some(404)));
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

