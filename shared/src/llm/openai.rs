//! The OpenAI-compatible backend: `POST {url}/chat/completions` streamed as
//! server-sent events and `GET {url}/models`, behind [`ChatModel`]; for
//! llama.cpp's server, vLLM, and hosted APIs that speak the same dialect.
//! Its wire types stay here.
//!
//! What maps onto what: `num_predict` is `max_tokens`; `num_ctx` is the
//! server's own setting and is not sent; `format` is `response_format`
//! (`json_object`, or `json_schema` named `reply`); a `think` effort is
//! `reasoning_effort` (`true`/`false` send nothing: such servers have no
//! switch); thinking arrives as `reasoning_content` (or `reasoning`) deltas.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::wire::{ModelsCache, TimedLines, busy, error_text, refused_key, request_error, retry_after};
use super::{ChatEvent, ChatModel, ChatRequest, ChatTurn, Completion, LlmError, ModelInfo, ReplyStream, TimeoutPhase};
use crate::config::{BackendConfig, Secret};
use crate::domain::{Think, Usage};

#[derive(Clone, Debug)]
pub struct OpenAiClient {
    /// The backend's name: the `backend/` prefix of its models.
    name: String,
    http: reqwest::Client,
    base_url: String,
    api_key: Option<Secret>,
    /// Send `num_predict` as `max_completion_tokens` rather than `max_tokens`.
    max_completion_tokens: bool,
    first_token_timeout: Duration,
    idle_timeout: Duration,
    models_cache: ModelsCache,
}

#[derive(Serialize)]
struct WireRequest<'a> {
    model: &'a str,
    messages: &'a [ChatTurn],
    stream: bool,
    stream_options: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_k: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    /// The same, for servers that take only this name (OpenAI's reasoning models).
    #[serde(skip_serializing_if = "Option::is_none")]
    max_completion_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    repeat_penalty: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_format: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_effort: Option<&'static str>,
}

/// One `data:` event of the stream.
#[derive(Deserialize)]
struct WireChunk {
    #[serde(default)]
    choices: Vec<WireChoice>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct WireChoice {
    #[serde(default)]
    delta: Option<WireDelta>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct WireDelta {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    reasoning_content: Option<String>,
    #[serde(default)]
    reasoning: Option<String>,
}

#[derive(Deserialize)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
    #[serde(default)]
    completion_tokens_details: Option<WireTokenDetails>,
}

#[derive(Deserialize)]
struct WireTokenDetails {
    #[serde(default)]
    reasoning_tokens: Option<u64>,
}

/// The format as `response_format`.
fn response_format(format: &Value) -> Value {
    match format {
        Value::String(_) => json!({"type": "json_object"}),
        schema => json!({"type": "json_schema", "json_schema": {"name": "reply", "schema": schema}}),
    }
}

/// The message of an error body: `{"error": {"message": …}}`, `{"error": "…"}`,
/// `{"message": …}`, `{"detail": "…"}`.
fn error_message(body: &Value) -> Option<String> {
    let error = body.get("error").filter(|e| !e.is_null()).unwrap_or(body);
    error
        .get("message")
        .or_else(|| error.get("detail"))
        .unwrap_or(error)
        .as_str()
        .map(str::to_owned)
}

impl OpenAiClient {
    pub fn from_backend(backend: &BackendConfig, api_key: Option<Secret>) -> Self {
        crate::tls::install_crypto_provider();
        let http = reqwest::Client::builder()
            .connect_timeout(backend.connect_timeout)
            .tcp_nodelay(true)
            .build()
            .unwrap_or_default();
        OpenAiClient {
            name: backend.name.clone(),
            http,
            base_url: backend.url.trim_end_matches('/').to_owned(),
            api_key,
            max_completion_tokens: backend.max_completion_tokens,
            first_token_timeout: backend.first_token_timeout,
            idle_timeout: backend.idle_timeout,
            models_cache: Default::default(),
        }
    }

    fn authorized(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.api_key {
            Some(key) => request.bearer_auth(key.expose()),
            None => request,
        }
    }

    pub(crate) async fn open_stream(&self, request: &ChatRequest) -> Result<ChatStream, LlmError> {
        let o = &request.options;
        let wire = WireRequest {
            model: &request.model,
            messages: &request.messages,
            stream: true,
            stream_options: json!({"include_usage": true}),
            temperature: o.temperature,
            top_p: o.top_p,
            top_k: o.top_k,
            max_tokens: o.num_predict.filter(|_| !self.max_completion_tokens),
            max_completion_tokens: o.num_predict.filter(|_| self.max_completion_tokens),
            seed: o.seed,
            repeat_penalty: o.repeat_penalty,
            stop: o.stop.as_deref(),
            response_format: o.format.as_ref().map(response_format),
            reasoning_effort: match o.think {
                Some(Think::Effort(effort)) => Some(effort.as_str()),
                _ => None,
            },
        };
        let started = Instant::now();
        let send = self.authorized(self.http.post(format!("{}/chat/completions", self.base_url))).json(&wire).send();
        let response = tokio::time::timeout(self.first_token_timeout, send)
            .await
            .map_err(|_| LlmError::Timeout(TimeoutPhase::FirstToken))?
            .map_err(request_error)?;
        let status = response.status();
        if !status.is_success() {
            return Err(self.refusal(request, response).await);
        }
        Ok(ChatStream {
            lines: TimedLines::new(response, started, self.first_token_timeout, self.idle_timeout),
            decoder: EventDecoder::new(started),
            finished: false,
        })
    }

    /// What a refused request means, from its status and body.
    async fn refusal(&self, request: &ChatRequest, response: reqwest::Response) -> LlmError {
        let status = response.status();
        let retry_after = retry_after(response.headers());
        let text = tokio::time::timeout(self.idle_timeout, response.text()).await.ok().and_then(Result::ok).unwrap_or_default();
        let message = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| error_message(&v))
            .unwrap_or_else(|| format!("status {status}"));
        // A 404 that is not about the model is a wrong URL (a base URL without `/v1`, say).
        if status == reqwest::StatusCode::NOT_FOUND {
            return if message.to_ascii_lowercase().contains("model") {
                LlmError::ModelNotFound(request.model.clone())
            } else {
                LlmError::Unavailable(format!("{}/chat/completions answered 404: {message}", self.base_url))
            };
        }
        if let Some(busy) = busy(status, &message, retry_after) {
            return busy;
        }
        if let Some(refused) = refused_key(status) {
            return refused;
        }
        if status.is_server_error() {
            return LlmError::Unavailable(message);
        }
        LlmError::Failed(message)
    }

    async fn read_models(&self) -> Result<Vec<ModelInfo>, LlmError> {
        #[derive(Deserialize)]
        struct List {
            #[serde(default)]
            data: Vec<Entry>,
        }
        #[derive(Deserialize)]
        struct Entry {
            id: String,
            #[serde(default)]
            created: Option<i64>,
        }
        let send = self.authorized(self.http.get(format!("{}/models", self.base_url))).send();
        let response = tokio::time::timeout(self.idle_timeout, send)
            .await
            .map_err(|_| LlmError::Timeout(TimeoutPhase::Connect))?
            .map_err(request_error)?;
        if !response.status().is_success() {
            return Err(LlmError::Unavailable(format!("/models answered {}", response.status())));
        }
        let list: List = tokio::time::timeout(self.idle_timeout, response.json())
            .await
            .map_err(|_| LlmError::Timeout(TimeoutPhase::BetweenTokens))?
            .map_err(|e| LlmError::Failed(format!("malformed /models: {}", error_text(&e))))?;
        let rfc3339 = |secs: i64| {
            time::OffsetDateTime::from_unix_timestamp(secs)
                .ok()
                .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        };
        Ok(list
            .data
            .into_iter()
            .map(|e| ModelInfo {
                name: format!("{}/{}", self.name, e.id),
                backend: self.name.clone(),
                size: 0,
                modified_at: e.created.and_then(rfc3339),
                family: None,
                parameter_size: None,
                quantization_level: None,
            })
            .collect())
    }
}

impl ChatModel for OpenAiClient {
    type Stream = ChatStream;

    fn chat_stream(&self, request: &ChatRequest) -> impl Future<Output = Result<ChatStream, LlmError>> + Send + 'static {
        let (client, request) = (self.clone(), request.clone());
        async move { client.open_stream(&request).await }
    }

    async fn models(&self) -> Result<Vec<ModelInfo>, LlmError> {
        self.models_cache.get_or_read(self.read_models()).await
    }

    async fn ping(&self) -> Vec<(String, Result<(), LlmError>)> {
        vec![(self.name.clone(), self.read_models().await.map(|_| ()))]
    }
}

/// A reply an OpenAI-compatible server is generating.
pub struct ChatStream {
    lines: TimedLines,
    decoder: EventDecoder,
    finished: bool,
}

/// Reads the event stream's lines, one at a time, into events; apart from
/// the connection, so that what a byte stream means does not depend on how
/// it was cut into reads.
struct EventDecoder {
    started: Instant,
    first_output_at: Option<Instant>,
    finish_reason: Option<String>,
    usage: Option<WireUsage>,
    /// Pieces of text and of thinking seen: about one token each, the count
    /// given when the server reports no usage (llama.cpp's server streams none).
    text_pieces: u64,
    thinking_pieces: u64,
    /// The last `event:` line named an error.
    error_event: bool,
}

impl ReplyStream for ChatStream {
    async fn next(&mut self) -> Option<Result<ChatEvent, LlmError>> {
        if self.finished {
            return None;
        }
        let result = loop {
            match self.lines.next().await {
                Ok(Some(line)) => match self.decoder.parse(&line) {
                    Ok(Some(event)) => break Ok(event),
                    Ok(None) => continue,
                    Err(e) => break Err(e),
                },
                // Once the server has said how the reply finished, the rest
                // (usage, `[DONE]`) is a courtesy: a close, a cut or a silence
                // after it still leaves a complete reply.
                Ok(None) | Err(LlmError::Failed(_) | LlmError::Timeout(_)) if self.decoder.finish_reason.is_some() => {
                    break Ok(self.decoder.done());
                }
                Ok(None) => break Err(LlmError::Failed("the stream ended before the reply was complete".to_owned())),
                Err(e) => break Err(e),
            }
        };
        if !matches!(result, Ok(ChatEvent::Delta(_) | ChatEvent::Thinking(_) | ChatEvent::Progress)) {
            self.finished = true;
        }
        Some(result)
    }
}

impl EventDecoder {
    fn new(started: Instant) -> Self {
        EventDecoder {
            started,
            first_output_at: None,
            finish_reason: None,
            usage: None,
            text_pieces: 0,
            thinking_pieces: 0,
            error_event: false,
        }
    }

    /// One line of the event stream: `None` for lines that carry no event
    /// (comments, chunks with nothing new). An `event: error` names the data
    /// that follows as an error.
    fn parse(&mut self, line: &[u8]) -> Result<Option<ChatEvent>, LlmError> {
        if let Some(name) = line.strip_prefix(b"event:") {
            self.error_event = name.trim_ascii() == b"error";
            return Ok(None);
        }
        let Some(data) = line.strip_prefix(b"data:") else { return Ok(None) };
        let data = data.strip_prefix(b" ").unwrap_or(data);
        if data == b"[DONE]" {
            return match self.finish_reason {
                Some(_) => Ok(Some(self.done())),
                None => Err(LlmError::Failed("the stream ended without saying how the reply finished".to_owned())),
            };
        }
        let value: Value =
            serde_json::from_slice(data).map_err(|e| LlmError::Failed(format!("malformed stream event: {e}")))?;
        // Errors come as `{"error": …}`, as `{"object": "error", "message": …}`, or after `event: error`.
        if self.error_event || value.get("error").is_some_and(|e| !e.is_null()) || value["object"] == "error" {
            return Err(LlmError::Failed(error_message(&value).unwrap_or_else(|| "error event".to_owned())));
        }
        let chunk: WireChunk =
            serde_json::from_value(value).map_err(|e| LlmError::Failed(format!("malformed stream event: {e}")))?;
        if chunk.usage.is_some() {
            self.usage = chunk.usage;
        }
        let mut event = None;
        for choice in chunk.choices {
            if let Some(reason) = choice.finish_reason {
                self.finish_reason = Some(reason);
            }
            let Some(delta) = choice.delta else { continue };
            if let Some(text) = delta.content.filter(|t| !t.is_empty()) {
                self.first_output_at.get_or_insert_with(Instant::now);
                self.text_pieces += 1;
                event = Some(ChatEvent::Delta(text));
            } else if let Some(text) = delta.reasoning_content.or(delta.reasoning).filter(|t| !t.is_empty()) {
                self.first_output_at.get_or_insert_with(Instant::now);
                self.thinking_pieces += 1;
                event = Some(ChatEvent::Thinking(text));
            }
        }
        Ok(Some(event.unwrap_or(ChatEvent::Progress)))
    }

    fn done(&mut self) -> ChatEvent {
        let ms = |d: Duration| d.as_millis() as u64;
        let now = Instant::now();
        let first = self.first_output_at.unwrap_or(now);
        // Without a usage report, the prompt's size is unknown (0) and the reply counts its pieces.
        let (prompt_tokens, completion_tokens, reported_thinking) = match &self.usage {
            Some(u) => (u.prompt_tokens, u.completion_tokens, u.completion_tokens_details.as_ref().and_then(|d| d.reasoning_tokens)),
            None => (0, self.text_pieces + self.thinking_pieces, None),
        };
        let thinking_tokens = reported_thinking.unwrap_or(self.thinking_pieces);
        ChatEvent::Done(Completion {
            done_reason: self.finish_reason.clone().or_else(|| Some("stop".to_owned())),
            usage: Usage {
                prompt_tokens,
                completion_tokens,
                thinking_tokens,
                total_duration_ms: ms(now - self.started),
                load_duration_ms: 0,
                prompt_eval_duration_ms: ms(first - self.started),
                eval_duration_ms: ms(now - first),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::ndjson::splits;
    use proptest::prelude::*;

    /// What a stream read in `reads` comes to, as [`ChatStream`] reads it,
    /// with the durations it measured set to zero.
    fn decode(reads: &[&[u8]]) -> Vec<Result<ChatEvent, LlmError>> {
        let mut decoder = EventDecoder::new(Instant::now());
        let mut out = Vec::new();
        for line in splits::lines_of(reads) {
            match decoder.parse(&line) {
                Ok(None) => continue,
                Ok(Some(ChatEvent::Done(done))) => {
                    out.push(Ok(ChatEvent::Done(done)));
                    break;
                }
                Ok(Some(event)) => out.push(Ok(event)),
                Err(e) => {
                    out.push(Err(e));
                    break;
                }
            }
        }
        for event in &mut out {
            if let Ok(ChatEvent::Done(done)) = event {
                let usage = &mut done.usage;
                (usage.total_duration_ms, usage.prompt_eval_duration_ms, usage.eval_duration_ms) = (0, 0, 0);
            }
        }
        out
    }

    /// One event of a reply before its end.
    #[derive(Debug, Clone)]
    enum Piece {
        Text(String),
        /// Thinking, as `reasoning_content` or as `reasoning`.
        Thinking(String, bool),
        /// A comment (`: keep-alive`) or a blank line: no event.
        Filler(&'static str),
    }

    fn piece() -> impl Strategy<Value = Piece> {
        prop_oneof![
            any::<String>().prop_map(Piece::Text),
            (any::<String>(), any::<bool>()).prop_map(|(t, named)| Piece::Thinking(t, named)),
            prop_oneof![Just(": keep-alive"), Just(""), Just(":")].prop_map(Piece::Filler),
        ]
    }

    fn chunk(delta: Value, finish: Option<&str>) -> String {
        json!({"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
            .to_string()
    }

    proptest! {
        #[test]
        fn any_split_of_a_valid_stream_gives_its_events(
            pieces in prop::collection::vec(piece(), 0..10),
            counts in (0..100_000u64, 0..100_000u64),
            spaced in any::<bool>(),
            cuts in splits::cuts(),
        ) {
            let data = if spaced { "data: " } else { "data:" };
            let mut text = String::new();
            let mut expected = Vec::new();
            let mut thinking = 0;
            for piece in &pieces {
                let line = match piece {
                    Piece::Text(t) => {
                        expected.push(if t.is_empty() { ChatEvent::Progress } else { ChatEvent::Delta(t.clone()) });
                        format!("{data}{}", chunk(json!({"content": t}), None))
                    }
                    Piece::Thinking(t, named) => {
                        thinking += u64::from(!t.is_empty());
                        expected.push(if t.is_empty() { ChatEvent::Progress } else { ChatEvent::Thinking(t.clone()) });
                        let field = if *named { "reasoning_content" } else { "reasoning" };
                        format!("{data}{}", chunk(json!({field: t}), None))
                    }
                    Piece::Filler(f) => f.to_string(),
                };
                text.push_str(&line);
                text.push_str("\n\n");
            }
            let (prompt, completion) = counts;
            let usage = json!({"id": "c", "choices": [], "usage": {"prompt_tokens": prompt, "completion_tokens": completion}});
            text.push_str(&format!("{data}{}\n\n{data}{usage}\n\n{data}[DONE]\n\n", chunk(json!({}), Some("stop"))));
            expected.push(ChatEvent::Progress);
            expected.push(ChatEvent::Progress);
            let usage = Usage { prompt_tokens: prompt, completion_tokens: completion, thinking_tokens: thinking, ..Usage::default() };
            expected.push(ChatEvent::Done(Completion { done_reason: Some("stop".to_owned()), usage }));

            let events: Vec<ChatEvent> = decode(&splits::pieces(text.as_bytes(), &cuts)).into_iter().collect::<Result<_, _>>()?;
            prop_assert_eq!(events, expected);
        }

        #[test]
        fn garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512), cuts in splits::cuts()) {
            let decoded = decode(&splits::pieces(&bytes, &cuts));
            // No `[DONE]`, no finished reply.
            if !bytes.windows(6).any(|w| w == b"[DONE]") {
                prop_assert!(!decoded.iter().any(|e| matches!(e, Ok(ChatEvent::Done(_)))), "{:?}", decoded);
            }
        }
    }
}
