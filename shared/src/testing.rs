//! Test support (feature `testing`): an app over a fresh table in DynamoDB
//! Local, requests shaped as the Lambda runtime hands them to a handler, and
//! a scripted in-process [`ChatModel`].

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::Method;
use lambda_http::{Body, Request, RequestExt, Response};
use serde_json::Value;

use crate::App;
use crate::config::Config;
use crate::domain::{OwnerId, Session};
use crate::llm::backends::Backends;
use crate::llm::{ChatEvent, ChatModel, ChatRequest, LlmError, ModelInfo, ReplyStream};
use crate::store::ApiKeyRepository;
use crate::store::dynamo::{DynamoStore, schema};

/// Where the tests' DynamoDB Local listens; `make test` sets it.
pub const ENDPOINT_VAR: &str = "LLMCHAT_TEST_DYNAMODB_ENDPOINT";

/// The test DynamoDB Local endpoint, or a panic that says how to get one.
pub fn dynamodb_endpoint() -> String {
    std::env::var(ENDPOINT_VAR).unwrap_or_else(|_| {
        panic!("{ENDPOINT_VAR} is not set: run the tests with `make test`, which starts DynamoDB Local")
    })
}

/// An app over a new, empty table in the test DynamoDB Local, configured by
/// `vars` over the defaults.
pub async fn app_on_fresh_table(vars: &[(&str, &str)]) -> App {
    let table = format!("test-{}", uuid::Uuid::new_v4());
    let mut env: HashMap<String, String> =
        HashMap::from([("LLMCHAT_TABLE_NAME".to_owned(), table.clone()), ("DYNAMODB_ENDPOINT".to_owned(), dynamodb_endpoint())]);
    env.extend(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let config = Config::from_lookup(|k| env.get(k).cloned()).expect("test configuration is valid");
    let app = App::with_config(config).await.expect("backends of the test configuration");
    schema::create_table(app.store.client(), &table).await.expect("create the test table");
    app
}

/// Issues and stores a key for `owner`, as `llmchat-admin issue-key` does; returns the key.
pub async fn issue_key(store: &DynamoStore, owner: &OwnerId) -> String {
    let issued = crate::auth::issue_key(owner.clone()).expect("randomness");
    store.put_api_key(&issued.record).await.expect("store the key");
    issued.key
}

/// An app on a fresh table and a key for `owner`.
pub async fn app_with_key(owner: &str) -> (App, String) {
    let app = app_on_fresh_table(&[]).await;
    let key = issue_key(&app.store, &OwnerId::parse(owner).expect("valid owner")).await;
    (app, key)
}

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

/// The default backend pointed at a port nothing listens on, with short waits.
pub fn unreachable_llm() -> Backends {
    let vars = HashMap::from([
        ("OLLAMA_URL", "http://127.0.0.1:9"),
        ("LLMCHAT_LLM_CONNECT_TIMEOUT_MS", "200"),
        ("LLMCHAT_LLM_FIRST_TOKEN_TIMEOUT_MS", "2000"),
        ("LLMCHAT_LLM_IDLE_TIMEOUT_MS", "2000"),
    ]);
    let config = Config::from_lookup(|k| vars.get(k).map(|v| v.to_string())).expect("a valid configuration");
    Backends::without_parameters(&config)
}

/// A new session of `owner` with default settings.
pub async fn new_session<S: crate::store::SessionRepository, M>(app: &App<S, M>, owner: &str) -> Session {
    let owner = OwnerId::parse(owner).expect("valid owner");
    crate::sessions::create(&app.store, &app.config, owner, Default::default()).await.expect("session created")
}

/// One step of a [`ScriptedModel`]'s reply.
#[derive(Debug, Clone)]
pub enum Step {
    /// Wait this long, then go on.
    Pause(Duration),
    /// Hand this event to the reader.
    Event(ChatEvent),
    /// End the stream with this error.
    Fail(LlmError),
}

/// A script made from what a call asks.
type Answer = Arc<dyn Fn(&ChatRequest) -> Vec<Step> + Send + Sync>;

/// An in-process model backend that replies with a script, and records what
/// it was asked and whether its reader let go of a stream before its end.
#[derive(Clone, Default)]
pub struct ScriptedModel {
    script: Vec<Step>,
    /// When set, the script of each call, from what it asks.
    answer: Option<Answer>,
    requests: Arc<Mutex<Vec<ChatRequest>>>,
    dropped_early: Arc<Mutex<u32>>,
}

impl ScriptedModel {
    pub fn new(script: Vec<Step>) -> Self {
        ScriptedModel { script, ..Default::default() }
    }

    /// A model whose reply to each call is `answer` of what the call asks.
    pub fn answering(answer: impl Fn(&ChatRequest) -> Vec<Step> + Send + Sync + 'static) -> Self {
        ScriptedModel { answer: Some(Arc::new(answer)), ..Default::default() }
    }

    /// The requests it was sent, in order.
    pub fn requests(&self) -> Vec<ChatRequest> {
        self.requests.lock().unwrap().clone()
    }

    /// How many streams were dropped before their script ran out.
    pub fn dropped_early(&self) -> u32 {
        *self.dropped_early.lock().unwrap()
    }
}

/// A stream of a [`ScriptedModel`].
#[derive(Debug)]
pub struct ScriptedStream {
    steps: VecDeque<Step>,
    /// The end of the pause under way, kept so that a dropped `next` resumes it.
    pause_until: Option<tokio::time::Instant>,
    dropped_early: Arc<Mutex<u32>>,
}

impl ChatModel for ScriptedModel {
    type Stream = ScriptedStream;

    fn chat_stream(&self, request: &ChatRequest) -> impl Future<Output = Result<ScriptedStream, LlmError>> + Send + 'static {
        self.requests.lock().unwrap().push(request.clone());
        let steps = match &self.answer {
            Some(answer) => answer(request),
            None => self.script.clone(),
        };
        std::future::ready(Ok(ScriptedStream {
            steps: steps.into(),
            pause_until: None,
            dropped_early: self.dropped_early.clone(),
        }))
    }

    async fn models(&self) -> Result<Vec<ModelInfo>, LlmError> {
        Ok(Vec::new())
    }

    async fn ping(&self) -> Vec<(String, Result<(), LlmError>)> {
        vec![("scripted".to_owned(), Ok(()))]
    }
}

impl ReplyStream for ScriptedStream {
    async fn next(&mut self) -> Option<Result<ChatEvent, LlmError>> {
        loop {
            if let Some(until) = self.pause_until {
                tokio::time::sleep_until(until).await;
                self.pause_until = None;
            }
            match self.steps.pop_front()? {
                Step::Pause(d) => self.pause_until = Some(tokio::time::Instant::now() + d),
                Step::Event(event) => return Some(Ok(event)),
                Step::Fail(err) => {
                    self.steps.clear();
                    return Some(Err(err));
                }
            }
        }
    }
}

impl Drop for ScriptedStream {
    fn drop(&mut self) {
        if !self.steps.is_empty() {
            *self.dropped_early.lock().unwrap() += 1;
        }
    }
}

/// The DynamoDB requests a store sent: each operation's name (`Query`,
/// `GetItem`, ...) and its JSON body, as they went over the wire.
#[derive(Debug, Clone, Default)]
pub struct SentRequests(Arc<Mutex<Vec<(String, Value)>>>);

impl SentRequests {
    /// Every request of `operation` sent so far, in order.
    pub fn of(&self, operation: &str) -> Vec<Value> {
        self.0.lock().unwrap().iter().filter(|(op, _)| op == operation).map(|(_, body)| body.clone()).collect()
    }

    pub fn clear(&self) {
        self.0.lock().unwrap().clear();
    }
}

impl aws_sdk_dynamodb::config::Intercept for SentRequests {
    fn name(&self) -> &'static str {
        "SentRequests"
    }

    fn read_before_transmit(
        &self,
        context: &aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _components: &aws_sdk_dynamodb::config::RuntimeComponents,
        _config: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        let request = context.request();
        // `X-Amz-Target: DynamoDB_20120810.Query` names the operation.
        let target = request.headers().get("x-amz-target").unwrap_or_default();
        let operation = target.rsplit('.').next().unwrap_or_default().to_owned();
        let body = request.body().bytes().and_then(|b| serde_json::from_slice(b).ok()).unwrap_or(Value::Null);
        self.0.lock().unwrap().push((operation, body));
        Ok(())
    }
}

/// A store on the same table as `store` whose every request is recorded: what
/// DynamoDB Local cannot show (it is always consistent, say) can be checked in
/// what was asked of it.
pub fn recording(store: &DynamoStore) -> (DynamoStore, SentRequests) {
    let sent = SentRequests::default();
    let config = store.client().config().to_builder().interceptor(sent.clone()).build();
    (DynamoStore::new(aws_sdk_dynamodb::Client::from_conf(config), store.table()), sent)
}
