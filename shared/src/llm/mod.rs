//! The seam to the model: a provider-neutral [`ChatModel`] trait with its
//! request, event and error types. The chat use case names only these; each
//! backend (today [`ollama::OllamaClient`]) keeps its wire types private and
//! converts at its edge.

use std::future::Future;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::{ErrorCode, ModelOptions, Role, Usage};

pub mod backends;
pub mod ndjson;
pub mod ollama;
pub mod openai;
pub mod wire;


/// A model backend: streams a chat, lists its models, answers a ping.
pub trait ChatModel: Send + Sync + 'static {
    type Stream: ReplyStream;

    /// Starts a streamed chat: the returned future resolves once the backend
    /// has accepted it, and the reply is read from the stream. The future owns
    /// what it needs, so a caller may start it, hold it while other work
    /// goes on, and drop it (which abandons the call and closes its connection).
    fn chat_stream(&self, request: &ChatRequest) -> impl Future<Output = Result<Self::Stream, LlmError>> + Send + 'static;

    /// Models the backend offers; a backend may answer from a short cache.
    fn models(&self) -> impl Future<Output = Result<Vec<ModelInfo>, LlmError>> + Send;

    /// A cheap round trip to each backend behind this model, for `/health`:
    /// its name and whether it answered.
    fn ping(&self) -> impl Future<Output = Vec<(String, Result<(), LlmError>)>> + Send;
}

/// A reply being generated: call [`ReplyStream::next`] until it returns `None`.
/// Dropping it closes the connection to the backend (which stops generating).
pub trait ReplyStream: Send {
    /// The next event: deltas, then one `Done`, then `None`. An error ends the stream.
    /// Cancel-safe: dropping the future before it completes loses no event and
    /// does not restart a timeout, so a caller may `select!` on it.
    fn next(&mut self) -> impl Future<Output = Option<Result<ChatEvent, LlmError>>> + Send;
}

/// What the model is asked for.
#[derive(Debug, Clone)]
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<ChatTurn>,
    /// Sampling options, with the reply's `think` and `format`.
    pub options: ModelOptions,
}

/// One turn as sent to the model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChatTurn {
    pub role: Role,
    pub content: String,
}

/// The end of a generation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Completion {
    pub done_reason: Option<String>,
    pub usage: Usage,
}

/// A piece of a streamed reply.
#[derive(Debug, Clone, PartialEq)]
pub enum ChatEvent {
    Delta(String),
    /// A piece of the model's thinking, apart from its reply.
    Thinking(String),
    /// The backend is working but produced no text (an empty or thinking-only line).
    Progress,
    Done(Completion),
}

/// A model a backend can serve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ModelInfo {
    /// The name a session or request uses: `backend/model`; the default
    /// backend's models also answer to their bare name.
    #[schema(example = "ollama/smollm2:135m")]
    pub name: String,
    /// The backend that serves it.
    #[serde(default)]
    #[schema(example = "ollama")]
    pub backend: String,
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

/// Which wait ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutPhase {
    Connect,
    FirstToken,
    BetweenTokens,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LlmError {
    /// The backend could not be reached or answered with a server error before generating.
    #[error("the LLM backend is unavailable: {0}")]
    Unavailable(String),
    #[error("the LLM backend took too long ({0:?})")]
    Timeout(TimeoutPhase),
    #[error("model `{0}` is not available on the LLM backend")]
    ModelNotFound(String),
    /// The backend is overloaded or rate-limited (its 429 or 503): try again
    /// after `retry_after` seconds, when it said.
    #[error("the LLM backend is busy: {message}")]
    Busy { message: String, retry_after: Option<u64> },
    /// The backend reported an error, or the stream broke off before it finished.
    #[error("the LLM backend failed: {0}")]
    Failed(String),
}

impl LlmError {
    /// The stable code stored on a reply this error ended.
    pub fn code(&self) -> ErrorCode {
        match self {
            LlmError::Unavailable(_) => ErrorCode::LlmUnavailable,
            LlmError::Timeout(_) => ErrorCode::LlmTimeout,
            LlmError::ModelNotFound(_) => ErrorCode::ModelNotFound,
            LlmError::Busy { .. } => ErrorCode::LlmBusy,
            LlmError::Failed(_) => ErrorCode::LlmError,
        }
    }
}
