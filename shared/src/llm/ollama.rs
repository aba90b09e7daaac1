//! The Ollama backend: `POST /api/chat` (streamed NDJSON or one JSON object)
//! and `GET /api/tags`, behind [`ChatModel`]. Ollama's wire types stay here.
//!
//! Three separate waits are bounded: connecting, the first token (which
//! includes loading the model, so its default is generous), and the silence
//! between two tokens.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::wire::{ModelsCache, TimedLines, busy, error_text, refused_key, request_error, retry_after};
use super::{ChatEvent, ChatModel, ChatRequest, ChatTurn, Completion, LlmError, ModelInfo, ReplyStream, TimeoutPhase};
use crate::config::{BackendConfig, Secret};
use crate::domain::{ModelOptions, Think, Usage};

#[derive(Clone, Debug)]
pub struct OllamaClient {
    /// The backend's name: the `backend/` prefix of its models.
    name: String,
    http: reqwest::Client,
    /// Sent as `Authorization: Bearer` (an Ollama behind an authenticating proxy, or a hosted one).
    api_key: Option<Secret>,
    base_url: String,
    first_token_timeout: Duration,
    idle_timeout: Duration,
    models_cache: ModelsCache,
}

#[derive(Serialize)]
struct WireRequest<'a> {
    model: &'a str,
    messages: &'a [ChatTurn],
    stream: bool,
    /// The sampling options: `think` and `format` go beside them, not in them.
    #[serde(skip_serializing_if = "options_empty")]
    options: ModelOptions,
    #[serde(skip_serializing_if = "Option::is_none")]
    format: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    think: Option<Value>,
}

fn options_empty(o: &ModelOptions) -> bool {
    *o == ModelOptions::default()
}

/// Ollama's `think`: a boolean, or an effort for the models that take one.
fn wire_think(think: Think) -> Value {
    match think {
        Think::Switch(on) => Value::Bool(on),
        Think::Effort(effort) => Value::String(effort.as_str().to_owned()),
    }
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
    #[serde(default)]
    thinking: String,
}

impl WireChunk {
    /// How the reply ended; Ollama reports no thinking count, so the stream's
    /// own count of thinking pieces (one token each) is given.
    fn completion(&self, thinking_tokens: u64) -> Completion {
        let ms = |ns: u64| ns / 1_000_000;
        Completion {
            done_reason: self.done_reason.clone(),
            usage: Usage {
                prompt_tokens: self.prompt_eval_count,
                completion_tokens: self.eval_count,
                thinking_tokens: thinking_tokens.min(self.eval_count),
                total_duration_ms: ms(self.total_duration),
                load_duration_ms: ms(self.load_duration),
                prompt_eval_duration_ms: ms(self.prompt_eval_duration),
                eval_duration_ms: ms(self.eval_duration),
            },
        }
    }
}

impl OllamaClient {
    pub fn from_backend(backend: &BackendConfig, api_key: Option<Secret>) -> Self {
        let client = Self::new(&backend.name, &backend.url, backend.connect_timeout, backend.first_token_timeout, backend.idle_timeout);
        OllamaClient { api_key, ..client }
    }

    fn authorized(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.api_key {
            Some(key) => request.bearer_auth(key.expose()),
            None => request,
        }
    }

    pub fn new(name: &str, base_url: &str, connect: Duration, first_token: Duration, idle: Duration) -> Self {
        crate::tls::install_crypto_provider();
        let http = reqwest::Client::builder()
            .connect_timeout(connect)
            .tcp_nodelay(true)
            .build()
            .unwrap_or_default();
        OllamaClient {
            name: name.to_owned(),
            http,
            api_key: None,
            base_url: base_url.trim_end_matches('/').to_owned(),
            first_token_timeout: first_token,
            idle_timeout: idle,
            models_cache: Default::default(),
        }
    }

    /// Starts a streamed chat: returns once Ollama has answered with a status.
    pub(crate) async fn open_stream(&self, request: &ChatRequest) -> Result<ChatStream, LlmError> {
        let started = Instant::now();
        let response = self.post_chat(request, true).await?;
        let lines = TimedLines::new(response, started, self.first_token_timeout, self.idle_timeout);
        Ok(ChatStream { lines, decoder: LineDecoder::default() })
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
        let response = tokio::time::timeout(self.idle_timeout, self.authorized(self.http.get(format!("{}/api/tags", self.base_url))).send())
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
                name: format!("{}/{}", self.name, t.name),
                backend: self.name.clone(),
                size: t.size,
                modified_at: t.modified_at,
            })
            .collect())
    }

    async fn post_chat(&self, request: &ChatRequest, stream: bool) -> Result<reqwest::Response, LlmError> {
        let options = ModelOptions { think: None, format: None, ..request.options.clone() };
        let wire = WireRequest {
            model: &request.model,
            messages: &request.messages,
            stream,
            options,
            format: request.options.format.as_ref(),
            think: request.options.think.map(wire_think),
        };
        let send = self.authorized(self.http.post(format!("{}/api/chat", self.base_url))).json(&wire).send();
        // Ollama answers once the model is loaded, so the status line falls under the first-token wait.
        let response = tokio::time::timeout(self.first_token_timeout, send)
            .await
            .map_err(|_| LlmError::Timeout(TimeoutPhase::FirstToken))?
            .map_err(request_error)?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let retry_after = retry_after(response.headers());
        let text = tokio::time::timeout(self.idle_timeout, response.text()).await.ok().and_then(Result::ok).unwrap_or_default();
        let message = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_owned))
            .unwrap_or_else(|| format!("status {status}"));
        if status == reqwest::StatusCode::NOT_FOUND {
            return Err(LlmError::ModelNotFound(request.model.clone()));
        }
        if let Some(busy) = busy(status, &message, retry_after) {
            return Err(busy);
        }
        if let Some(refused) = refused_key(status) {
            return Err(refused);
        }
        if status.is_server_error() {
            return Err(LlmError::Unavailable(message));
        }
        Err(classify_error(&request.model, &message))
    }
}

/// A reply Ollama is generating.
pub struct ChatStream {
    lines: TimedLines,
    decoder: LineDecoder,
}

/// Reads Ollama's stream lines, one at a time, into events; apart from the
/// connection, so that what a byte stream means does not depend on how it
/// was cut into reads.
#[derive(Debug, Default)]
struct LineDecoder {
    finished: bool,
    /// Pieces of thinking seen: Ollama streams about one token per piece.
    thinking_pieces: u64,
}

impl ChatModel for OllamaClient {
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

impl ReplyStream for ChatStream {
    async fn next(&mut self) -> Option<Result<ChatEvent, LlmError>> {
        if self.decoder.finished {
            return None;
        }
        let result = match self.lines.next().await {
            Ok(Some(line)) => self.decoder.parse(&line),
            Ok(None) => Err(LlmError::Failed("the stream ended before the reply was complete".to_owned())),
            Err(e) => Err(e),
        };
        if result.is_err() {
            self.decoder.finished = true;
        }
        Some(result)
    }
}

impl LineDecoder {
    /// One whole line: its event, or the error it reports or is.
    fn parse(&mut self, line: &[u8]) -> Result<ChatEvent, LlmError> {
        let chunk: WireChunk =
            serde_json::from_slice(line).map_err(|e| LlmError::Failed(format!("malformed stream line: {e}")))?;
        if let Some(error) = chunk.error {
            return Err(LlmError::Failed(error));
        }
        if chunk.done {
            self.finished = true;
            return Ok(ChatEvent::Done(chunk.completion(self.thinking_pieces)));
        }
        match chunk.message {
            Some(m) if !m.content.is_empty() => Ok(ChatEvent::Delta(m.content)),
            Some(m) if !m.thinking.is_empty() => {
                self.thinking_pieces += 1;
                Ok(ChatEvent::Thinking(m.thinking))
            }
            _ => Ok(ChatEvent::Progress),
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



#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::ndjson::{LineBuffer, splits};
    use proptest::prelude::*;
    use serde_json::json;

    /// What a stream read in `reads` comes to, as [`ChatStream`] reads it: its
    /// events up to and including `Done` or the first error (a stream that
    /// ends before `Done` ends with one).
    fn decode(reads: &[&[u8]]) -> Vec<Result<ChatEvent, LlmError>> {
        let mut buf = LineBuffer::new();
        let mut decoder = LineDecoder::default();
        let mut out = Vec::new();
        let mut read = |line: &[u8], out: &mut Vec<_>| {
            let result = decoder.parse(line);
            let last = result.is_err() || decoder.finished;
            out.push(result);
            last
        };
        for bytes in reads {
            buf.push(bytes);
            while let Some(line) = buf.next_line() {
                if read(&line, &mut out) {
                    return out;
                }
            }
        }
        if let Some(line) = buf.finish() {
            if read(&line, &mut out) {
                return out;
            }
        }
        out.push(Err(LlmError::Failed("the stream ended before the reply was complete".to_owned())));
        out
    }

    /// One line of a reply before its end, and the event it means.
    #[derive(Debug, Clone)]
    enum Piece {
        Text(String),
        Thinking(String),
        /// A blank line (Ollama sends none, a proxy might).
        Blank(&'static str),
    }

    fn piece() -> impl Strategy<Value = Piece> {
        prop_oneof![
            any::<String>().prop_map(Piece::Text),
            any::<String>().prop_map(Piece::Thinking),
            prop_oneof![Just(""), Just("  "), Just("\r")].prop_map(Piece::Blank),
        ]
    }

    /// A valid stream of `pieces` ending with the final line, and the events it means.
    fn stream(pieces: &[Piece], counts: (u64, u64), crlf: bool) -> (Vec<u8>, Vec<ChatEvent>) {
        let end = if crlf { "\r\n" } else { "\n" };
        let mut bytes = Vec::new();
        let mut events = Vec::new();
        let mut thinking = 0;
        for piece in pieces {
            let line = match piece {
                Piece::Text(t) => {
                    events.push(if t.is_empty() { ChatEvent::Progress } else { ChatEvent::Delta(t.clone()) });
                    json!({"model": "m", "message": {"role": "assistant", "content": t}, "done": false}).to_string()
                }
                Piece::Thinking(t) => {
                    thinking += u64::from(!t.is_empty());
                    events.push(if t.is_empty() { ChatEvent::Progress } else { ChatEvent::Thinking(t.clone()) });
                    json!({"model": "m", "message": {"role": "assistant", "content": "", "thinking": t}, "done": false}).to_string()
                }
                Piece::Blank(b) => b.to_string(),
            };
            bytes.extend_from_slice(line.as_bytes());
            bytes.extend_from_slice(end.as_bytes());
        }
        let (prompt, eval) = counts;
        let last = json!({"model": "m", "message": {"role": "assistant", "content": ""}, "done": true, "done_reason": "stop",
            "prompt_eval_count": prompt, "eval_count": eval, "total_duration": 3_000_000, "eval_duration": 2_000_000});
        bytes.extend_from_slice(last.to_string().as_bytes());
        let usage = Usage {
            prompt_tokens: prompt,
            completion_tokens: eval,
            thinking_tokens: thinking.min(eval),
            total_duration_ms: 3,
            eval_duration_ms: 2,
            ..Usage::default()
        };
        events.push(ChatEvent::Done(Completion { done_reason: Some("stop".to_owned()), usage }));
        (bytes, events)
    }

    proptest! {
        #[test]
        fn any_split_of_a_valid_stream_gives_its_events(
            pieces in prop::collection::vec(piece(), 0..10),
            counts in (0..100_000u64, 0..100_000u64),
            crlf in any::<bool>(),
            final_newline in any::<bool>(),
            cuts in splits::cuts(),
        ) {
            let (mut bytes, expected) = stream(&pieces, counts, crlf);
            if final_newline {
                bytes.push(b'\n');
            }
            let events: Vec<ChatEvent> = decode(&splits::pieces(&bytes, &cuts)).into_iter().collect::<Result<_, _>>()?;
            prop_assert_eq!(events, expected);
        }

        #[test]
        fn a_stream_cut_before_its_end_is_an_error_after_the_events_it_gave(
            pieces in prop::collection::vec(piece(), 0..10),
            at in any::<prop::sample::Index>(),
            cuts in splits::cuts(),
        ) {
            let (bytes, expected) = stream(&pieces, (7, 3), false);
            // Anywhere before the final line's closing brace.
            let cut = &bytes[..at.index(bytes.len())];
            let mut decoded = decode(&splits::pieces(cut, &cuts));
            prop_assert!(matches!(decoded.pop(), Some(Err(LlmError::Failed(_)))));
            let events: Vec<ChatEvent> = decoded.into_iter().collect::<Result<_, _>>()?;
            prop_assert_eq!(&events[..], &expected[..events.len()]);
        }

        #[test]
        fn garbage_is_an_error_never_a_panic(bytes in prop::collection::vec(any::<u8>(), 0..512), cuts in splits::cuts()) {
            let decoded = decode(&splits::pieces(&bytes, &cuts));
            let ended = decoded.last().expect("a stream always ends with something");
            // Without a `done` line, nothing in it can be a finished reply.
            if !bytes.windows(4).any(|w| w == b"done") {
                prop_assert!(ended.is_err(), "{:?}", decoded);
            }
        }
    }
}
