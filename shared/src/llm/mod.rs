//! The LLM side: Ollama's chat API, its errors, and the reply usage we keep.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub mod ndjson;
pub mod ollama;

pub use ollama::{ChatStream, ModelInfo, OllamaClient};

/// Who wrote a turn of the conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

/// One turn as sent to the model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChatTurn {
    pub role: Role,
    pub content: String,
}

/// What the model reported when it finished.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Usage {
    /// Tokens of the prompt the model evaluated (`prompt_eval_count`).
    pub prompt_tokens: u64,
    /// Tokens generated (`eval_count`).
    pub completion_tokens: u64,
    /// Whole request, as Ollama measured it.
    pub total_duration_ms: u64,
    /// Time spent loading the model.
    pub load_duration_ms: u64,
    pub prompt_eval_duration_ms: u64,
    pub eval_duration_ms: u64,
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
    /// The backend is working but produced no text (an empty or thinking-only line).
    Progress,
    Done(Completion),
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
    /// Ollama could not be reached or answered with a server error before generating.
    #[error("the LLM backend is unavailable: {0}")]
    Unavailable(String),
    #[error("the LLM backend took too long ({0:?})")]
    Timeout(TimeoutPhase),
    #[error("model `{0}` is not available on the LLM backend")]
    ModelNotFound(String),
    /// Ollama reported an error, or the stream broke off before it finished.
    #[error("the LLM backend failed: {0}")]
    Failed(String),
}

impl LlmError {
    pub fn code(&self) -> crate::error::ProblemCode {
        use crate::error::ProblemCode;
        match self {
            LlmError::Unavailable(_) => ProblemCode::LlmUnavailable,
            LlmError::Timeout(_) => ProblemCode::LlmTimeout,
            LlmError::ModelNotFound(_) => ProblemCode::ModelNotFound,
            LlmError::Failed(_) => ProblemCode::LlmError,
        }
    }
}
