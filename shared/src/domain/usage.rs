//! Fair use and cost: an owner's quotas, what a reply spent, and the usage
//! ledger those add up to.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// An owner's quotas: at most this much at once, per minute, per day, per month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct QuotaLimits {
    pub active_replies: u64,
    pub requests_per_minute: u64,
    pub tokens_per_day: u64,
    pub tokens_per_month: u64,
}

/// One owner's own quotas, over the deployment's: each field set replaces it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaOverride {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_replies: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_minute: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_day: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_month: Option<u64>,
}

impl QuotaOverride {
    pub fn over(&self, base: &QuotaLimits) -> QuotaLimits {
        QuotaLimits {
            active_replies: self.active_replies.unwrap_or(base.active_replies),
            requests_per_minute: self.requests_per_minute.unwrap_or(base.requests_per_minute),
            tokens_per_day: self.tokens_per_day.unwrap_or(base.tokens_per_day),
            tokens_per_month: self.tokens_per_month.unwrap_or(base.tokens_per_month),
        }
    }
}

/// One of an owner's quotas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Quota {
    /// Replies being generated at once, across all the owner's sessions.
    ActiveReplies,
    /// Requests that call a model, per UTC minute.
    RequestsPerMinute,
    /// Tokens (prompt and completion, thinking included) per UTC day.
    TokensPerDay,
    /// The same, per UTC month.
    TokensPerMonth,
}

impl Quota {
    pub fn as_str(self) -> &'static str {
        match self {
            Quota::ActiveReplies => "active_replies",
            Quota::RequestsPerMinute => "requests_per_minute",
            Quota::TokensPerDay => "tokens_per_day",
            Quota::TokensPerMonth => "tokens_per_month",
        }
    }
}

/// What generating a reply spent besides the model's tokens (which are in its usage).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Spend {
    /// The backend that generated it.
    pub backend: String,
    /// From the model call to the reply's end, in milliseconds: the time a
    /// function spent on it.
    pub generation_ms: u64,
    /// DynamoDB read and write capacity units its send used, as DynamoDB
    /// reported them, up to (not including) the reply's final write.
    pub read_units: f64,
    pub write_units: f64,
}

/// What one owner spent on one day, in one session (or through the stateless
/// chat completions), with one model: a row of the usage ledger.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LedgerEntry {
    /// `2026-11-24` (UTC).
    pub day: String,
    /// A session id, or `chat-completions` for the stateless route.
    pub session: String,
    /// `backend/model`.
    pub model: String,
    pub replies: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub thinking_tokens: u64,
    pub generation_ms: u64,
    pub read_units: f64,
    pub write_units: f64,
}

/// The ledger's `session` for replies of the stateless chat completions.
pub const STATELESS_SESSION: &str = "chat-completions";
