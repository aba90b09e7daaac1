//! The Ollama backend: `POST /api/chat` (streamed NDJSON or one JSON object)
//! and `GET /api/tags`, behind [`ChatModel`]. Ollama's wire types stay here.
//!
//! Three separate waits are bounded: connecting, the first token (which
//! includes loading the model, so its default is generous), and the silence
//! between two tokens.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ndjson::LineBuffer;
use super::{ChatEvent, ChatModel, ChatRequest, ChatTurn, Completion, LlmError, ModelInfo, ReplyStream, TimeoutPhase};
use crate::config::Config;
use crate::telemetry::error_chain;
use crate::domain::{ModelOptions, Usage};

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

#[derive(Serialize)]
struct WireRequest<'a> {
    model: &'a str,
    messages: &'a [ChatTurn],
    stream: bool,
    #[serde(skip_serializing_if = "options_empty")]
    options: &'a ModelOptions,
    #[serde(skip_serializing_if = "Option::is_none")]
    format: Option<&'a Value>,
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

    /// Starts a streamed chat: returns once Ollama has answered with a status.
    async fn open_stream(&self, request: &ChatRequest) -> Result<ChatStream, LlmError> {
        let started = Instant::now();
        let response = self.post_chat(request, true).await?;
        Ok(ChatStream {
            response,
            lines: LineBuffer::new(),
            first_token_deadline: started + self.first_token_timeout,
            idle_timeout: self.idle_timeout,
            last_chunk_at: started,
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
    async fn models_cached(&self) -> Result<Vec<ModelInfo>, LlmError> {
        let cached = |cache: &Option<(Instant, Vec<ModelInfo>)>| {
            cache.as_ref().filter(|(at, _)| at.elapsed() < MODELS_CACHE_TTL).map(|(_, m)| m.clone())
        };
        if let Some(models) = cached(&self.models_cache.lock().unwrap_or_else(|p| p.into_inner())) {
            return Ok(models);
        }
        let models = self.read_models().await?;
        *self.models_cache.lock().unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), models.clone()));
        Ok(models)
    }

    /// Models the backend offers, read now.
    async fn read_models(&self) -> Result<Vec<ModelInfo>, LlmError> {
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
        let wire = WireRequest {
            model: &request.model,
            messages: &request.messages,
            stream,
            options: &request.options,
            format: request.format.as_ref(),
        };
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

/// A reply Ollama is generating.
pub struct ChatStream {
    response: reqwest::Response,
    lines: LineBuffer,
    first_token_deadline: Instant,
    idle_timeout: Duration,
    /// When the last bytes arrived: the silence between tokens counts from here.
    last_chunk_at: Instant,
    seen_any: bool,
    finished: bool,
}

impl ChatModel for OllamaClient {
    type Stream = ChatStream;

    async fn chat_stream(&self, request: &ChatRequest) -> Result<ChatStream, LlmError> {
        self.open_stream(request).await
    }

    async fn models(&self) -> Result<Vec<ModelInfo>, LlmError> {
        self.models_cached().await
    }

    async fn ping(&self) -> Result<(), LlmError> {
        self.read_models().await.map(|_| ())
    }
}

impl ReplyStream for ChatStream {
    async fn next(&mut self) -> Option<Result<ChatEvent, LlmError>> {
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
            // Deadlines, not fresh waits: a caller may drop this future (to do
            // something else) and call again without restarting the clock.
            let wait = if self.seen_any {
                (self.last_chunk_at + self.idle_timeout).saturating_duration_since(Instant::now())
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
                    self.last_chunk_at = Instant::now();
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

}

impl ChatStream {
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
    if err.is_connect() { format!("cannot connect: {}", error_chain(err)) } else { error_chain(err) }
}
