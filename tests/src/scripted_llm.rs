//! A scripted stand-in for a model server: a real HTTP server on loopback
//! whose replies are written byte by byte as a test dictates, with pauses,
//! error lines, cut connections and characters split across writes. It
//! speaks either dialect LlmChat's backends speak ([`Dialect`]): a script
//! says what happens (a token, a piece of thinking, the end, an error) and
//! the server writes it as that dialect does.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The one model the scripted server lists in `/api/tags`.
pub const MODEL: &str = "smollm2:135m";

/// The wire dialect the server speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// Ollama: `/api/chat` as NDJSON lines, `/api/tags`.
    Ollama,
    /// OpenAI chat completions: `/v1/chat/completions` as `data:` events, `/v1/models`.
    OpenAi,
}

impl Dialect {
    /// The configuration that points an app's one backend, named `llm`, at a server of this dialect.
    pub fn backend_var(self, url: &str) -> String {
        match self {
            Dialect::Ollama => format!("llm=ollama:{url}"),
            Dialect::OpenAi => format!("llm=openai:{url}/v1"),
        }
    }

    /// One token of a streamed reply, as one write.
    pub fn token(self, text: &str) -> Vec<u8> {
        match self {
            Dialect::Ollama => token_line(text),
            Dialect::OpenAi => openai_chunk(json!({"content": text}), None),
        }
    }

    /// A piece of thinking.
    pub fn thinking(self, text: &str) -> Vec<u8> {
        match self {
            Dialect::Ollama => {
                let line = json!({"model": "m", "created_at": "2026-01-01T00:00:00Z",
                    "message": {"role": "assistant", "content": "", "thinking": text}, "done": false});
                format!("{line}\n").into_bytes()
            }
            Dialect::OpenAi => openai_chunk(json!({"reasoning_content": text}), None),
        }
    }

    /// The end of a reply, with usage: 26 prompt tokens, 7 generated.
    pub fn done(self) -> Vec<u8> {
        self.done_counting(26)
    }

    /// The end of a reply whose prompt the server counted as `prompt_tokens`; 7 generated.
    pub fn done_counting(self, prompt_tokens: u64) -> Vec<u8> {
        match self {
            Dialect::Ollama => done_line_counting(prompt_tokens),
            Dialect::OpenAi => {
                let usage = json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0, "model": "m",
                    "choices": [], "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": 7, "total_tokens": prompt_tokens + 7}});
                [openai_chunk(json!({}), Some("stop")), format!("data: {usage}\n\ndata: [DONE]\n\n").into_bytes()].concat()
            }
        }
    }

    /// An error reported inside a stream that had begun.
    pub fn error_line(self, message: &str) -> Vec<u8> {
        match self {
            Dialect::Ollama => format!("{}\n", json!({"error": message})).into_bytes(),
            Dialect::OpenAi => format!("data: {}\n\n", json!({"error": {"message": message, "type": "server_error"}})).into_bytes(),
        }
    }

    /// The body of a refusal (any status but 200).
    pub fn error_body(self, message: &str) -> Vec<u8> {
        match self {
            Dialect::Ollama => json!({"error": message}).to_string().into_bytes(),
            Dialect::OpenAi => json!({"error": {"message": message, "type": "invalid_request_error", "code": null}}).to_string().into_bytes(),
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Dialect::Ollama => "application/x-ndjson",
            Dialect::OpenAi => "text/event-stream",
        }
    }
}

fn openai_chunk(delta: Value, finish: Option<&str>) -> Vec<u8> {
    let chunk = json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0, "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
    format!("data: {chunk}\n\n").into_bytes()
}

/// One step of a scripted response body.
#[derive(Clone, Debug)]
pub enum Step {
    /// A token of the reply, in the server's dialect.
    Token(String),
    /// A piece of thinking, in the server's dialect.
    Thinking(String),
    /// The end of the reply, with usage, in the server's dialect.
    Done,
    /// An error inside the stream, in the server's dialect.
    ErrorLine(String),
    /// Write these bytes as one chunk, whatever the dialect.
    Bytes(Vec<u8>),
    Sleep(Duration),
    /// Wait until this long after the response's head was written (a pace
    /// that does not drift with the timer's rounding, unlike `Sleep`).
    Until(Duration),
    /// Drop the connection without finishing the response.
    Cut,
}

impl Step {
    fn bytes(&self, dialect: Dialect) -> Option<Vec<u8>> {
        match self {
            Step::Token(t) => Some(dialect.token(t)),
            Step::Thinking(t) => Some(dialect.thinking(t)),
            Step::Done => Some(dialect.done()),
            Step::ErrorLine(m) => Some(dialect.error_line(m)),
            Step::Bytes(b) => Some(b.clone()),
            Step::Sleep(_) | Step::Until(_) | Step::Cut => None,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Script {
    pub status: u16,
    pub steps: Vec<Step>,
}

impl Script {
    /// A streamed reply of these steps.
    pub fn ok(steps: Vec<Step>) -> Self {
        Script { status: 200, steps }
    }

    /// A refusal with `status` and an error body saying `message` in the server's dialect.
    pub fn refusal(status: u16, message: &str) -> Self {
        Script { status, steps: vec![Step::ErrorLine(message.to_owned())] }
    }
}

type Handler = dyn Fn(&Value) -> Script + Send + Sync;

pub struct ScriptedLlm {
    pub url: String,
    pub dialect: Dialect,
    authorizations: Arc<Mutex<Vec<String>>>,
    requests: Arc<Mutex<Vec<Value>>>,
    tags_requests: Arc<AtomicUsize>,
    hung_up: Arc<AtomicUsize>,
}

impl ScriptedLlm {
    /// Starts an Ollama answering every `/api/chat` with `script(request body)`.
    pub async fn start(script: impl Fn(&Value) -> Script + Send + Sync + 'static) -> Self {
        Self::start_on(0, Dialect::Ollama, script).await
    }

    /// Like [`ScriptedLlm::start`], speaking `dialect`.
    pub async fn start_as(dialect: Dialect, script: impl Fn(&Value) -> Script + Send + Sync + 'static) -> Self {
        Self::start_on(0, dialect, script).await
    }

    /// Like [`ScriptedLlm::start_as`], on a given loopback port (0: any free one).
    pub async fn start_on(port: u16, dialect: Dialect, script: impl Fn(&Value) -> Script + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.expect("a free loopback port");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let tags_requests = Arc::new(AtomicUsize::new(0));
        let hung_up = Arc::new(AtomicUsize::new(0));
        let handler: Arc<Handler> = Arc::new(script);
        let authorizations = Arc::new(Mutex::new(Vec::new()));
        let counters = Counters {
            seen: requests.clone(),
            tags: tags_requests.clone(),
            hung_up: hung_up.clone(),
            authorizations: authorizations.clone(),
        };
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                // As Ollama (Go's net package) and the OpenAI-compatible servers
                // do: every write goes out at once, never held back for an ACK.
                let _ = socket.set_nodelay(true);
                tokio::spawn(serve(socket, dialect, handler.clone(), counters.clone()));
            }
        });
        ScriptedLlm { url, dialect, authorizations, requests, tags_requests, hung_up }
    }

    /// Always the same reply, token by token (an Ollama).
    pub async fn replying(tokens: &[&str]) -> Self {
        Self::replying_as(Dialect::Ollama, tokens).await
    }

    /// Always the same reply, token by token, in `dialect`.
    pub async fn replying_as(dialect: Dialect, tokens: &[&str]) -> Self {
        let steps = reply_steps(tokens, Duration::ZERO);
        Self::start_as(dialect, move |_| Script::ok(steps.clone())).await
    }

    /// The configuration that makes this server an app's one backend, named `llm`.
    pub fn backend_var(&self) -> String {
        self.dialect.backend_var(&self.url)
    }

    /// How many model-list requests (`/api/tags`, `/v1/models`) arrived.
    pub fn tags_requests(&self) -> usize {
        self.tags_requests.load(Ordering::SeqCst)
    }

    /// How many replies the client hung up on before their script ended.
    pub fn hung_up(&self) -> usize {
        self.hung_up.load(Ordering::SeqCst)
    }

    /// The `authorization` header of every request so far (empty when none was sent).
    pub fn authorizations(&self) -> Vec<String> {
        self.authorizations.lock().unwrap().clone()
    }

    /// Bodies of the `/api/chat` requests received so far.
    pub fn requests(&self) -> Vec<Value> {
        self.requests.lock().unwrap().clone()
    }
}

/// A streamed reply: one line per token (with `pause` before each), then the final line.
pub fn reply_steps(tokens: &[&str], pause: Duration) -> Vec<Step> {
    let mut steps = Vec::new();
    for token in tokens {
        if !pause.is_zero() {
            steps.push(Step::Sleep(pause));
        }
        steps.push(Step::Token(token.to_string()));
    }
    steps.push(Step::Done);
    steps
}

pub fn token_line(token: &str) -> Vec<u8> {
    let line = json!({"model": "m", "created_at": "2026-01-01T00:00:00Z", "message": {"role": "assistant", "content": token}, "done": false});
    format!("{line}\n").into_bytes()
}

pub fn done_line() -> Vec<u8> {
    done_line_counting(26)
}

/// Ollama's last line, reporting `prompt_eval_count` prompt tokens.
pub fn done_line_counting(prompt_eval_count: u64) -> Vec<u8> {
    let line = json!({
        "model": "m", "created_at": "2026-01-01T00:00:00Z", "message": {"role": "assistant", "content": ""},
        "done": true, "done_reason": "stop", "total_duration": 5_000_000_000u64, "load_duration": 1_000_000u64,
        "prompt_eval_count": prompt_eval_count, "prompt_eval_duration": 2_000_000u64, "eval_count": 7, "eval_duration": 3_000_000u64
    });
    format!("{line}\n").into_bytes()
}

/// What the server notes about the requests it serves.
#[derive(Clone)]
struct Counters {
    seen: Arc<Mutex<Vec<Value>>>,
    tags: Arc<AtomicUsize>,
    hung_up: Arc<AtomicUsize>,
    authorizations: Arc<Mutex<Vec<String>>>,
}

async fn serve(mut socket: TcpStream, dialect: Dialect, handler: Arc<Handler>, counters: Counters) {
    let Some((path, authorization, body)) = read_request(&mut socket).await else { return };
    counters.authorizations.lock().unwrap().push(authorization);
    let list = match (dialect, path.as_str()) {
        (Dialect::Ollama, "/api/tags") => Some(json!({"models": [{"name": MODEL, "size": 241000000, "modified_at": "2026-01-01T00:00:00Z",
            "details": {"family": "llama", "parameter_size": "134.52M", "quantization_level": "Q4_1"}}]})),
        (Dialect::OpenAi, "/v1/models") => {
            Some(json!({"object": "list", "data": [{"id": MODEL, "object": "model", "created": 1767225600, "owned_by": "scripted"}]}))
        }
        _ => None,
    };
    if let Some(list) = list {
        counters.tags.fetch_add(1, Ordering::SeqCst);
        let text = list.to_string();
        let head = format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n", text.len());
        let _ = socket.write_all(format!("{head}{text}").as_bytes()).await;
        return;
    }
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    counters.seen.lock().unwrap().push(request.clone());
    let script = handler(&request);
    if script.status != 200 {
        let text = match script.steps.first() {
            Some(Step::ErrorLine(m)) => String::from_utf8_lossy(&dialect.error_body(m)).into_owned(),
            Some(Step::Bytes(b)) => String::from_utf8_lossy(b).into_owned(),
            _ => "{}".to_owned(),
        };
        // A busy server says when to come back.
        let retry = if matches!(script.status, 429 | 503) { "retry-after: 7\r\n" } else { "" };
        let head = format!(
            "HTTP/1.1 {} Error\r\ncontent-type: application/json\r\n{retry}content-length: {}\r\n\r\n",
            script.status,
            text.len()
        );
        let _ = socket.write_all(format!("{head}{text}").as_bytes()).await;
        return;
    }
    let head = format!("HTTP/1.1 200 OK\r\ncontent-type: {}\r\ntransfer-encoding: chunked\r\n\r\n", dialect.content_type());
    if socket.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    let began = tokio::time::Instant::now();
    for step in script.steps {
        match step {
            Step::Sleep(d) => tokio::time::sleep(d).await,
            Step::Until(d) => tokio::time::sleep_until(began + d).await,
            Step::Cut => return,
            step => {
                let bytes = step.bytes(dialect).unwrap_or_default();
                let mut chunk = format!("{:x}\r\n", bytes.len()).into_bytes();
                chunk.extend_from_slice(&bytes);
                chunk.extend_from_slice(b"\r\n");
                if socket.write_all(&chunk).await.is_err() || socket.flush().await.is_err() {
                    counters.hung_up.fetch_add(1, Ordering::SeqCst);
                    return;
                }
            }
        }
    }
    let _ = socket.write_all(b"0\r\n\r\n").await;
}

/// The request path, `authorization` header and body (by content-length).
async fn read_request(socket: &mut TcpStream) -> Option<(String, String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 8192];
    let header_end = loop {
        let n = socket.read(&mut tmp).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&tmp[..n]);
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..header_end]).to_string();
    let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let length = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().unwrap_or(0)))
        .unwrap_or(0);
    let authorization = head
        .lines()
        .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("authorization")).map(|(_, v)| v.trim().to_owned()))
        .unwrap_or_default();
    let mut body = buf[header_end..].to_vec();
    while body.len() < length {
        let n = socket.read(&mut tmp).await.ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&tmp[..n]);
    }
    Some((path, authorization, body))
}
