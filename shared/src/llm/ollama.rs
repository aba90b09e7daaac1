//! Client for Ollama's HTTP API: `POST /api/chat` (streamed NDJSON or one
//! JSON object) and `GET /api/tags`.
//!
//! Three separate waits are bounded: connecting, the first token (which
//! includes loading the model, so its default is generous), and the silence
//! between two tokens.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::ndjson::LineBuffer;
use super::{ChatEvent, ChatTurn, Completion, LlmError, TimeoutPhase, Usage};
use crate::config::Config;
use crate::domain::ModelOptions;

/// Longest NDJSON line accepted from the backend; a line never ends otherwise.
pub const MAX_LINE_BYTES: usize = 1024 * 1024;

/// How long `/models` answers from the last `/api/tags` it read.
pub const MODELS_CACHE_TTL: Duration = Duration::from_secs(30);

#[derive(Clone, Debug)]
pub struct OllamaClient {
    http: reqwest::Client,
    base_url: String,
    first_token_timeout: Duration,
    idle_timeout: Duration,
    models_cache: std::sync::Arc<std::sync::Mutex<Option<(Instant, Vec<ModelInfo>)>>>,
}

/// What `/api/chat` is asked for.
#[derive(Debug, Clone)]
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<ChatTurn>,
    pub options: ModelOptions,
}

#[derive(Serialize)]
struct WireRequest<'a> {
    model: &'a str,
    messages: &'a [ChatTurn],
    stream: bool,
    #[serde(skip_serializing_if = "options_empty")]
    options: &'a ModelOptions,
}

fn options_empty(o: &&ModelOptions) -> bool {
    **o == ModelOptions::default()
}

/// One NDJSON line of `/api/chat` (or the whole body when not streaming).
#[derive(Deserialize)]
struct WireChunk {
    #[serde(default)]
    message: Option<WireMessage>,
    #[serde(default)]
    done: bool,
    #[serde(default)]
    done_reason: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    prompt_eval_count: u64,
    #[serde(default)]
    eval_count: u64,
    #[serde(default)]
    total_duration: u64,
    #[serde(default)]
    load_duration: u64,
    #[serde(default)]
    prompt_eval_duration: u64,
    #[serde(default)]
    eval_duration: u64,
}

#[derive(Deserialize)]
struct WireMessage {
    #[serde(default)]
    content: String,
}

impl WireChunk {
    fn completion(&self) -> Completion {
        let ms = |ns: u64| ns / 1_000_000;
        Completion {
            done_reason: self.done_reason.clone(),
            usage: Usage {
                prompt_tokens: self.prompt_eval_count,
                completion_tokens: self.eval_count,
                total_duration_ms: ms(self.total_duration),
                load_duration_ms: ms(self.load_duration),
                prompt_eval_duration_ms: ms(self.prompt_eval_duration),
                eval_duration_ms: ms(self.eval_duration),
            },
        }
    }
}

/// A model the backend can serve (from `/api/tags`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ModelInfo {
    #[schema(example = "gemma3:270m")]
    pub name: String,
    /// Size on disk, in bytes.
    #[serde(default)]
    pub size: u64,
    #[serde(default)]
    pub modified_at: Option<String>,
    #[serde(default)]
    pub family: Option<String>,
    #[serde(default)]
    pub parameter_size: Option<String>,
    #[serde(default)]
    pub quantization_level: Option<String>,
}

impl OllamaClient {
    pub fn from_config(config: &Config) -> Self {
        Self::new(
            &config.ollama_url,
            config.llm_connect_timeout,
            config.llm_first_token_timeout,
            config.llm_idle_timeout,
        )
    }

    pub fn new(base_url: &str, connect: Duration, first_token: Duration, idle: Duration) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(connect)
            .tcp_nodelay(true)
            .build()
            .unwrap_or_default();
        OllamaClient {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            first_token_timeout: first_token,
            idle_timeout: idle,
            models_cache: Default::default(),
        }
    }

    /// Starts a streamed chat. Returns once Ollama has answered with a status;
    /// the tokens are read from the returned stream.
    pub async fn chat_stream(&self, request: &ChatRequest) -> Result<ChatStream, LlmError> {
        let started = Instant::now();
        let response = self.post_chat(request, true).await?;
        Ok(ChatStream {
            response,
            lines: LineBuffer::new(),
            first_token_deadline: started + self.first_token_timeout,
            idle_timeout: self.idle_timeout,
            seen_any: false,
            finished: false,
        })
    }

    /// A whole reply in one response (`"stream": false`).
    pub async fn chat(&self, request: &ChatRequest) -> Result<(String, Completion), LlmError> {
        let response = self.post_chat(request, false).await?;
        let body = tokio::time::timeout(self.first_token_timeout, response.bytes())
            .await
            .map_err(|_| LlmError::Timeout(TimeoutPhase::FirstToken))?
            .map_err(|e| LlmError::Failed(format!("reading the reply: {}", error_text(&e))))?;
        let chunk: WireChunk =
            serde_json::from_slice(&body).map_err(|e| LlmError::Failed(format!("malformed reply: {e}")))?;
        if let Some(error) = chunk.error {
            return Err(classify_error(&request.model, &error));
        }
        let content = chunk.message.as_ref().map(|m| m.content.clone()).unwrap_or_default();
        Ok((content, chunk.completion()))
    }

    /// Models the backend offers, read at most once per [`MODELS_CACHE_TTL`].
    pub async fn models_cached(&self) -> Result<Vec<ModelInfo>, LlmError> {
        let cached = |cache: &Option<(Instant, Vec<ModelInfo>)>| {
            cache.as_ref().filter(|(at, _)| at.elapsed() < MODELS_CACHE_TTL).map(|(_, m)| m.clone())
        };
        if let Some(models) = cached(&self.models_cache.lock().unwrap_or_else(|p| p.into_inner())) {
            return Ok(models);
        }
        let models = self.models().await?;
        *self.models_cache.lock().unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), models.clone()));
        Ok(models)
    }

    /// A cheap round trip to the backend, for `/health`.
    pub async fn ping(&self) -> Result<(), LlmError> {
        self.models().await.map(|_| ())
    }

    /// Models the backend offers.
    pub async fn models(&self) -> Result<Vec<ModelInfo>, LlmError> {
        #[derive(Deserialize)]
        struct Tags {
            #[serde(default)]
            models: Vec<Tag>,
        }
        #[derive(Deserialize)]
        struct Tag {
            name: String,
            #[serde(default)]
            size: u64,
            #[serde(default)]
            modified_at: Option<String>,
            #[serde(default)]
            details: Option<Value>,
        }
        let response = tokio::time::timeout(self.idle_timeout, self.http.get(format!("{}/api/tags", self.base_url)).send())
            .await
            .map_err(|_| LlmError::Timeout(TimeoutPhase::Connect))?
            .map_err(request_error)?;
        if !response.status().is_success() {
            return Err(LlmError::Unavailable(format!("/api/tags answered {}", response.status())));
        }
        let tags: Tags = tokio::time::timeout(self.idle_timeout, response.json())
            .await
            .map_err(|_| LlmError::Timeout(TimeoutPhase::BetweenTokens))?
            .map_err(|e| LlmError::Failed(format!("malformed /api/tags: {}", error_text(&e))))?;
        let detail = |d: &Option<Value>, k: &str| d.as_ref().and_then(|d| d.get(k)).and_then(Value::as_str).map(str::to_owned);
        Ok(tags
            .models
            .into_iter()
            .map(|t| ModelInfo {
                family: detail(&t.details, "family"),
                parameter_size: detail(&t.details, "parameter_size"),
                quantization_level: detail(&t.details, "quantization_level"),
                name: t.name,
                size: t.size,
                modified_at: t.modified_at,
            })
            .collect())
    }

    async fn post_chat(&self, request: &ChatRequest, stream: bool) -> Result<reqwest::Response, LlmError> {
        let wire = WireRequest { model: &request.model, messages: &request.messages, stream, options: &request.options };
        let send = self.http.post(format!("{}/api/chat", self.base_url)).json(&wire).send();
        // Ollama answers once the model is loaded, so the status line falls under the first-token wait.
        let response = tokio::time::timeout(self.first_token_timeout, send)
            .await
            .map_err(|_| LlmError::Timeout(TimeoutPhase::FirstToken))?
            .map_err(request_error)?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let text = tokio::time::timeout(self.idle_timeout, response.text()).await.ok().and_then(Result::ok).unwrap_or_default();
        let message = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_owned))
            .unwrap_or_else(|| format!("status {status}"));
        if status == reqwest::StatusCode::NOT_FOUND {
            return Err(LlmError::ModelNotFound(request.model.clone()));
        }
        if status.is_server_error() {
            return Err(LlmError::Unavailable(message));
        }
        Err(classify_error(&request.model, &message))
    }
}

/// A reply being generated; call [`ChatStream::next`] until it returns `None`.
pub struct ChatStream {
    response: reqwest::Response,
    lines: LineBuffer,
    first_token_deadline: Instant,
    idle_timeout: Duration,
    seen_any: bool,
    finished: bool,
}

impl ChatStream {
    /// The next delta, then one `Done`, then `None`. An error ends the stream.
    pub async fn next(&mut self) -> Option<Result<ChatEvent, LlmError>> {
        if self.finished {
            return None;
        }
        loop {
            if let Some(line) = self.lines.next_line() {
                match self.parse(&line) {
                    Ok(Some(event)) => return Some(Ok(event)),
                    Ok(None) => continue,
                    Err(e) => return Some(Err(self.fail(e))),
                }
            }
            let wait = if self.seen_any {
                self.idle_timeout
            } else {
                self.first_token_deadline.saturating_duration_since(Instant::now())
            };
            let phase = if self.seen_any { TimeoutPhase::BetweenTokens } else { TimeoutPhase::FirstToken };
            match tokio::time::timeout(wait, self.response.chunk()).await {
                Err(_) => return Some(Err(self.fail(LlmError::Timeout(phase)))),
                Ok(Err(e)) => {
                    return Some(Err(self.fail(LlmError::Failed(format!("connection lost: {}", error_text(&e))))));
                }
                Ok(Ok(Some(bytes))) => {
                    self.lines.push(&bytes);
                    if self.lines.pending_len() > MAX_LINE_BYTES {
                        let err = LlmError::Failed(format!("a stream line is longer than {MAX_LINE_BYTES} bytes"));
                        return Some(Err(self.fail(err)));
                    }
                }
                Ok(Ok(None)) => {
                    if let Some(line) = self.lines.finish() {
                        match self.parse(&line) {
                            Ok(Some(event)) => return Some(Ok(event)),
                            Ok(None) => {}
                            Err(e) => return Some(Err(self.fail(e))),
                        }
                    }
                    let cut = LlmError::Failed("the stream ended before the reply was complete".to_owned());
                    return Some(Err(self.fail(cut)));
                }
            }
        }
    }

    fn fail(&mut self, err: LlmError) -> LlmError {
        self.finished = true;
        err
    }

    fn parse(&mut self, line: &[u8]) -> Result<Option<ChatEvent>, LlmError> {
        let chunk: WireChunk =
            serde_json::from_slice(line).map_err(|e| LlmError::Failed(format!("malformed stream line: {e}")))?;
        if let Some(error) = chunk.error {
            return Err(LlmError::Failed(error));
        }
        self.seen_any = true;
        if chunk.done {
            self.finished = true;
            return Ok(Some(ChatEvent::Done(chunk.completion())));
        }
        match chunk.message.map(|m| m.content) {
            Some(content) if !content.is_empty() => Ok(Some(ChatEvent::Delta(content))),
            _ => Ok(Some(ChatEvent::Progress)),
        }
    }
}

fn classify_error(model: &str, message: &str) -> LlmError {
    if message.contains("not found") && message.contains("model") {
        LlmError::ModelNotFound(model.to_owned())
    } else {
        LlmError::Failed(message.to_owned())
    }
}

fn request_error(err: reqwest::Error) -> LlmError {
    if err.is_timeout() {
        LlmError::Timeout(TimeoutPhase::Connect)
    } else {
        LlmError::Unavailable(error_text(&err))
    }
}

/// The error and its causes, for the logs (problem bodies never carry it).
fn error_text(err: &reqwest::Error) -> String {
    let mut text = if err.is_connect() { "cannot connect".to_owned() } else { err.to_string() };
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
