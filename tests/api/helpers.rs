//! `spawn_app()`: a fresh table, an App over it, and an API key for a fresh owner.

use std::sync::{Arc, LazyLock};


use lambda_http::{Body, Request};
use lambda_http::http::{Method, StatusCode};
use llmchat::App;
use llmchat::http::invocation::Generations;
use llmchat::testing;
use llmchat::domain::OwnerId;
use llmchat::store::dynamo::DynamoStore;
use llmchat_tests::routes;
use serde_json::Value;

/// The workspace's router table, read once.
static ROUTES: LazyLock<Vec<routes::Route>> = LazyLock::new(routes::router);

pub struct TestApp {
    pub app: Arc<App<DynamoStore>>,
    /// A key for `owner`.
    pub key: String,
    pub owner: OwnerId,
    /// What the sessions function left running after its answers (a deleted
    /// session's purge); `idle()` waits for it, as the Lambda invocation does.
    pub background: Generations,
}

pub struct TestResponse {
    pub status: StatusCode,
    pub content_type: String,
    pub headers: lambda_http::http::HeaderMap,
    /// The JSON body (`Null` for an empty or event-stream body).
    pub body: Value,
    /// The raw body text.
    pub text: String,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// Like [`spawn_app`], with extra configuration variables.
pub async fn spawn_app_with(vars: &[(&str, &str)]) -> TestApp {
    let app = Arc::new(testing::app_on_fresh_table(vars).await);
    let mut test = TestApp { app, key: String::new(), owner: OwnerId::parse("placeholder").unwrap(), background: Generations::default() };
    let (owner, key) = test.new_owner().await;
    test.owner = owner;
    test.key = key;
    test
}

/// An app whose LLM is the server at `llm_url`, with extra configuration.
pub async fn spawn_app_for_llm(llm_url: &str, extra: &[(&str, &str)]) -> TestApp {
    let mut vars = vec![("OLLAMA_URL", llm_url)];
    vars.extend_from_slice(extra);
    spawn_app_with(&vars).await
}

/// An app whose one backend, `llm`, is the scripted server `llm` (in its dialect), with extra configuration.
pub async fn spawn_app_on(llm: &llmchat_tests::scripted_llm::ScriptedLlm, extra: &[(&str, &str)]) -> TestApp {
    let backend = llm.backend_var();
    let mut vars = vec![("LLMCHAT_BACKENDS", backend.as_str())];
    vars.extend_from_slice(extra);
    spawn_app_with(&vars).await
}

/// A URL where nothing listens.
pub fn unreachable_url() -> String {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    url
}

/// The `id` of a JSON resource.
pub fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_owned()
}

impl TestApp {
    /// Issues a key for a new owner, as `llmchat-admin issue-key` does.
    pub async fn new_owner(&self) -> (OwnerId, String) {
        let owner = OwnerId::parse(&format!("owner-{}", uuid::Uuid::new_v4())).unwrap();
        let key = testing::issue_key(&self.app.store, &owner).await;
        (owner, key)
    }

    /// Sends a request with this app's key.
    pub async fn send(&self, method: Method, path: &str, body: Option<&str>) -> TestResponse {
        self.send_as(Some(&self.key), method, path, body).await
    }

    /// Sends a request the way the router does: to the function serving `path`.
    pub async fn send_as(&self, key: Option<&str>, method: Method, path: &str, body: Option<&str>) -> TestResponse {
        self.dispatch(method.clone(), testing::request(method, path, key, body)).await
    }

    /// Routes `req` as the local runtime does, by the workspace's router table.
    pub async fn dispatch(&self, method: Method, req: Request) -> TestResponse {
        // REST API events carry the stage (`/v1` in these tests) in the path; the router sees none.
        let full = req.uri().path().to_owned();
        let staged = full.strip_prefix("/v1").unwrap_or(&full).to_owned();
        let app = &*self.app;
        let function = routes::function_for(&ROUTES, method.as_str(), &full)
            .or_else(|| routes::function_for(&ROUTES, method.as_str(), &staged))
            .or_else(|| routes::owner_of_prefix(&ROUTES, &staged).map(str::to_owned))
            .unwrap_or_else(|| panic!("no function serves {method} {full}"));
        let response = match function.as_str() {
            "create-session" => create_session::handle(app, req).await,
            "sessions" => sessions::handle(self.app.clone(), self.background.clone(), req).await,
            "send-message" => send_message::handle(app, req).await,
            "stream-reply" => Ok(whole(stream_reply::handle(self.app.clone(), Generations::default(), req).await).await),
            "openai" => Ok(whole(openai::handle(self.app.clone(), Generations::default(), req).await).await),
            "meta" => meta::handle(app, req).await,
            "docs" => docs::handle(app, req).await,
            other => panic!("the router names a function the tests do not know: {other}"),
        }
        .expect("handlers never fail the invocation");
        let status = response.status();
        let headers = response.headers().clone();
        let content_type = testing::content_type(&response).to_owned();
        let text = String::from_utf8_lossy(response.body().as_ref()).into_owned();
        let body = if content_type.contains("json") { testing::json_body(&response) } else { Value::Null };
        TestResponse { status, content_type, headers, body, text }
    }

    /// Starts a streamed reply and hands back the live response.
    pub async fn open_stream(&self, session_id: &str, body: &str) -> lambda_http::Response<lambda_runtime::streaming::Body> {
        let path = format!("/sessions/{session_id}/messages/stream");
        let req = testing::request(Method::POST, &path, Some(&self.key), Some(body));
        stream_reply::handle(self.app.clone(), Generations::default(), req).await.expect("handlers never fail the invocation")
    }

    /// The session's whole history, oldest first.
    pub async fn history(&self, session_id: &str) -> Vec<Value> {
        let r = self.send(Method::GET, &format!("/sessions/{session_id}/messages?limit=100"), None).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.body["items"].as_array().unwrap().clone()
    }

    /// Creates a session and returns its JSON.
    pub async fn create_session(&self, body: &str) -> Value {
        let r = self.send(Method::POST, "/sessions", Some(body)).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        r.body
    }

    /// Ids of the caller's sessions, following every cursor.
    pub async fn all_session_ids(&self, key: &str, page: u32) -> Vec<String> {
        let mut ids = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/sessions?limit={page}&cursor={c}"),
                None => format!("/sessions?limit={page}"),
            };
            let r = self.send_as(Some(key), Method::GET, &path, None).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            ids.extend(r.body["items"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_owned()));
            match r.body["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => return ids,
            }
        }
    }
}

/// A streamed response read to its end.
async fn whole(
    response: Result<lambda_http::Response<lambda_runtime::streaming::Body>, lambda_http::Error>,
) -> lambda_http::Response<Body> {
    let (parts, body) = response.expect("handlers never fail the invocation").into_parts();
    let bytes = body.collect().await.expect("the stream ends cleanly").to_bytes();
    lambda_http::Response::from_parts(parts, Body::from(bytes.to_vec()))
}

impl TestResponse {
    /// Asserts a problem+json response with this status and code.
    pub fn assert_problem(&self, status: u16, code: &str) {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.body);
        assert_eq!(self.content_type, "application/problem+json");
        assert_eq!(self.body["status"], status);
        assert_eq!(self.body["code"], code, "body: {}", self.body);
        assert!(self.body["detail"].as_str().is_some_and(|d| !d.is_empty()));
        assert!(self.body["request_id"].as_str().is_some_and(|d| !d.is_empty()));
    }
}

/// Log output, captured: a writer for a `tracing_subscriber` in a test.
#[derive(Clone, Default)]
pub struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl Captured {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
