//! Metrics for operators, as CloudWatch Embedded Metric Format lines in the
//! function's own log output (no calls to CloudWatch). Namespace `LlmChat`.
//!
//! The use cases and the HTTP layer report what happened through the functions
//! here; this module alone knows the EMF shape.

/// How a reply ended, for the reply metrics.
#[derive(Debug, Clone)]
pub struct ReplyMetrics<'a> {
    /// The backend that generated it (`ollama`, `llamacpp`, ...).
    pub backend: &'a str,
    /// The model as the backend knows it.
    pub model: &'a str,
    /// The reply's final status: `complete`, `incomplete`, `failed`, `cancelled`.
    pub status: &'a str,
    /// From the model call to the first piece of thinking or text; `None` when none came.
    pub time_to_first_token_ms: Option<u64>,
    /// Completion tokens per second from the first piece to the end; `None` when not measurable.
    pub tokens_per_second: Option<f64>,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub thinking_tokens: u64,
}

/// A reply ended (any status).
pub fn reply_ended(metrics: &ReplyMetrics<'_>) {
    let _ = metrics;
}

/// A problem was answered to a client (any route, any status).
pub fn problem(code: &str, status: u16) {
    let _ = (code, status);
}

/// A send was refused by a quota (`quota` names it: `active_replies`, `requests_per_minute`, ...).
pub fn quota_refused(quota: &str) {
    let _ = quota;
}

/// A backend failed a request (`code`: `llm_unavailable`, `llm_timeout`, `llm_busy`, `llm_error`, `model_not_found`).
pub fn backend_error(backend: &str, code: &str) {
    let _ = (backend, code);
}
