//! A scripted stand-in for Ollama: a real HTTP server on loopback whose
//! replies are written byte by byte as a test dictates, with pauses, error
//! lines, cut connections and characters split across writes.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The one model the scripted server lists in `/api/tags`.
pub const MODEL: &str = "gemma3:270m";

/// One step of a scripted response body.
#[derive(Clone, Debug)]
pub enum Step {
    /// Write these bytes as one chunk.
    Bytes(Vec<u8>),
    Sleep(Duration),
    /// Drop the connection without finishing the response.
    Cut,
}

#[derive(Clone, Debug)]
pub struct Script {
    pub status: u16,
    pub steps: Vec<Step>,
}

type Handler = dyn Fn(&Value) -> Script + Send + Sync;

pub struct ScriptedLlm {
    pub url: String,
    requests: Arc<Mutex<Vec<Value>>>,
    tags_requests: Arc<AtomicUsize>,
    hung_up: Arc<AtomicUsize>,
}

impl ScriptedLlm {
    /// Starts a server answering every `/api/chat` with `script(request body)`.
    pub async fn start(script: impl Fn(&Value) -> Script + Send + Sync + 'static) -> Self {
        Self::start_on(0, script).await
    }

    /// Like [`ScriptedLlm::start`], on a given loopback port (0: any free one).
    pub async fn start_on(port: u16, script: impl Fn(&Value) -> Script + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.expect("a free loopback port");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let tags_requests = Arc::new(AtomicUsize::new(0));
        let hung_up = Arc::new(AtomicUsize::new(0));
        let handler: Arc<Handler> = Arc::new(script);
        let counters = Counters { seen: requests.clone(), tags: tags_requests.clone(), hung_up: hung_up.clone() };
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(serve(socket, handler.clone(), counters.clone()));
            }
        });
        ScriptedLlm { url, requests, tags_requests, hung_up }
    }

    /// Always the same reply, token by token.
    pub async fn replying(tokens: &[&str]) -> Self {
        let steps = reply_steps(tokens, Duration::ZERO);
        Self::start(move |_| Script { status: 200, steps: steps.clone() }).await
    }

    /// How many `/api/tags` requests arrived.
    pub fn tags_requests(&self) -> usize {
        self.tags_requests.load(Ordering::SeqCst)
    }

    /// How many replies the client hung up on before their script ended.
    pub fn hung_up(&self) -> usize {
        self.hung_up.load(Ordering::SeqCst)
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
        steps.push(Step::Bytes(token_line(token)));
    }
    steps.push(Step::Bytes(done_line()));
    steps
}

pub fn token_line(token: &str) -> Vec<u8> {
    let line = json!({"model": "m", "created_at": "2026-01-01T00:00:00Z", "message": {"role": "assistant", "content": token}, "done": false});
    format!("{line}\n").into_bytes()
}

pub fn done_line() -> Vec<u8> {
    let line = json!({
        "model": "m", "created_at": "2026-01-01T00:00:00Z", "message": {"role": "assistant", "content": ""},
        "done": true, "done_reason": "stop", "total_duration": 5_000_000_000u64, "load_duration": 1_000_000u64,
        "prompt_eval_count": 26, "prompt_eval_duration": 2_000_000u64, "eval_count": 7, "eval_duration": 3_000_000u64
    });
    format!("{line}\n").into_bytes()
}

/// What the server notes about the requests it serves.
#[derive(Clone)]
struct Counters {
    seen: Arc<Mutex<Vec<Value>>>,
    tags: Arc<AtomicUsize>,
    hung_up: Arc<AtomicUsize>,
}

async fn serve(mut socket: TcpStream, handler: Arc<Handler>, counters: Counters) {
    let Some((path, body)) = read_request(&mut socket).await else { return };
    if path == "/api/tags" {
        counters.tags.fetch_add(1, Ordering::SeqCst);
        let tags = json!({"models": [{"name": MODEL, "size": 241000000, "modified_at": "2026-01-01T00:00:00Z",
            "details": {"family": "gemma3", "parameter_size": "268M", "quantization_level": "Q4_K_M"}}]});
        let text = tags.to_string();
        let head = format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n", text.len());
        let _ = socket.write_all(format!("{head}{text}").as_bytes()).await;
        return;
    }
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    counters.seen.lock().unwrap().push(request.clone());
    let script = handler(&request);
    if script.status != 200 {
        let text = match script.steps.first() {
            Some(Step::Bytes(b)) => String::from_utf8_lossy(b).into_owned(),
            _ => "{}".to_owned(),
        };
        let head = format!(
            "HTTP/1.1 {} Error\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            script.status,
            text.len()
        );
        let _ = socket.write_all(format!("{head}{text}").as_bytes()).await;
        return;
    }
    let head = "HTTP/1.1 200 OK\r\ncontent-type: application/x-ndjson\r\ntransfer-encoding: chunked\r\n\r\n";
    if socket.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    for step in script.steps {
        match step {
            Step::Bytes(bytes) => {
                let mut chunk = format!("{:x}\r\n", bytes.len()).into_bytes();
                chunk.extend_from_slice(&bytes);
                chunk.extend_from_slice(b"\r\n");
                if socket.write_all(&chunk).await.is_err() || socket.flush().await.is_err() {
                    counters.hung_up.fetch_add(1, Ordering::SeqCst);
                    return;
                }
            }
            Step::Sleep(d) => tokio::time::sleep(d).await,
            Step::Cut => return,
        }
    }
    let _ = socket.write_all(b"0\r\n\r\n").await;
}

/// The request path and body (by content-length).
async fn read_request(socket: &mut TcpStream) -> Option<(String, Vec<u8>)> {
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
    let mut body = buf[header_end..].to_vec();
    while body.len() < length {
        let n = socket.read(&mut tmp).await.ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&tmp[..n]);
    }
    Some((path, body))
}
