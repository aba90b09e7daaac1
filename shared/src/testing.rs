//! Request builders for tests (feature `mocks`): requests shaped as the
//! Lambda runtime hands them to a handler.

use std::collections::HashMap;

use http::Method;
use lambda_http::{Body, Request, RequestExt, Response};
use serde_json::Value;

/// A request for `path` (query string included), with an optional API key and JSON body.
pub fn request(method: Method, path: &str, key: Option<&str>, body: Option<&str>) -> Request {
    let mut builder = http::Request::builder().method(method).uri(path);
    if let Some(key) = key {
        builder = builder.header(http::header::AUTHORIZATION, format!("Bearer {key}"));
    }
    if body.is_some() {
        builder = builder.header(http::header::CONTENT_TYPE, "application/json");
    }
    let body = body.map(|b| Body::Text(b.to_owned())).unwrap_or(Body::Empty);
    let req = builder.body(body).expect("a valid test request");
    // lambda_http reads query parameters from the request's extensions, where
    // the Lambda event puts them; tests put them there from the URI.
    let Some((_, query)) = path.split_once('?') else { return req };
    let mut params: HashMap<String, Vec<String>> = HashMap::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        params.entry(k.to_owned()).or_default().push(v.to_owned());
    }
    req.with_query_string_parameters(params)
}

/// The response body as JSON (`Null` when empty).
pub fn json_body(response: &Response<Body>) -> Value {
    let bytes: &[u8] = response.body().as_ref();
    if bytes.is_empty() { Value::Null } else { serde_json::from_slice(bytes).expect("a JSON body") }
}

/// The response's content type.
pub fn content_type(response: &Response<Body>) -> &str {
    response.headers().get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default()
}

/// An Ollama client pointed at a port nothing listens on, with short waits.
pub fn unreachable_llm() -> crate::llm::OllamaClient {
    let short = std::time::Duration::from_millis(200);
    crate::llm::OllamaClient::new("http://127.0.0.1:9", short, short * 10, short * 10)
}

/// A new session of `owner` with default settings.
pub async fn new_session<S: crate::store::SessionRepository>(app: &crate::App<S>, owner: &str) -> crate::domain::Session {
    let owner = crate::domain::OwnerId::parse(owner).expect("valid owner");
    crate::sessions::create(&app.store, &app.config, owner, Default::default()).await.expect("session created")
}
