//! An owner's quotas around a model call: the claim taken before the model
//! is called (in the same write as the exchange), and its settlement after.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::ChatError;
use super::context::estimate_prompt;
use crate::domain::tokens::estimate_turn;
use crate::config::Config;
use crate::domain::{LedgerEntry, OwnerId, Period, Quota, QuotaLimits, Spend, Timestamp, Usage};
use crate::llm::ChatTurn;
use crate::store::meter::Meter;
use crate::store::{MessageRepository, QuotaClaim, QuotaRepository, Settlement};

/// `Retry-After` for a refusal by the replies-in-progress quota: a reply
/// usually ends within seconds.
pub const ACTIVE_RETRY_AFTER_SECS: u64 = 5;

/// Longest a stateless request's place among the replies in progress is held
/// when its writer dies without settling (Lambda's own longest invocation).
pub const STATELESS_SLOT_LIFETIME: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// A claim taken for one model call, and what it needs to settle.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub claim: QuotaClaim,
    /// Counts the DynamoDB capacity the call's requests consume.
    pub meter: Arc<Meter>,
    /// The ledger's `session`: a session id, or the stateless route's name.
    pub session: String,
    /// `backend/model`, and the backend alone.
    pub model: String,
    pub backend: String,
}

/// The owner's quotas: the owner's own over the deployment's.
pub async fn limits<S: QuotaRepository>(store: &S, config: &Config, owner: &OwnerId) -> Result<QuotaLimits, ChatError> {
    let own = store.quota_override(owner).await?;
    Ok(own.map_or(config.quotas, |o| o.over(&config.quotas)))
}

/// Tokens held back for a call: its prompt, as estimated, and the longest reply it may write.
pub fn reserve(turns: &[ChatTurn], num_predict: u32) -> u64 {
    u64::from(estimate_prompt(turns)) + u64::from(num_predict)
}

/// A claim of `reserve` tokens and place `slot` at `now`; a reserve larger
/// than a whole day's or month's tokens is refused at once.
pub fn claim(owner: &OwnerId, limits: QuotaLimits, slot: String, reserve: u64, now: Timestamp) -> Result<QuotaClaim, ChatError> {
    for (quota, limit) in [(Quota::TokensPerDay, limits.tokens_per_day), (Quota::TokensPerMonth, limits.tokens_per_month)] {
        if reserve > limit {
            return Err(refusal(quota, now));
        }
    }
    Ok(QuotaClaim { owner: owner.clone(), limits, slot, minute: now.minute(), day: now.day(), month: now.month(), reserve })
}

/// The refusal for `quota`, with when to try again.
pub fn refusal(quota: Quota, now: Timestamp) -> ChatError {
    crate::metrics::quota_refused(quota.as_str());
    let retry_after = match quota {
        Quota::ActiveReplies => ACTIVE_RETRY_AFTER_SECS,
        Quota::RequestsPerMinute => now.seconds_to_next(Period::Minute),
        Quota::TokensPerDay => now.seconds_to_next(Period::Day),
        Quota::TokensPerMonth => now.seconds_to_next(Period::Month),
    };
    ChatError::QuotaExceeded { quota, retry_after }
}

/// Owners this instance remembers a quota refusal of, at most: past it, the
/// refusals that have run out are forgotten, and if none has, all of them.
pub const MAX_REMEMBERED_REFUSALS: usize = 1024;

/// Owners a commit was refused for by a quota, in this instance, and until
/// when the refusal holds. A send calls the model while its exchange commits;
/// for these owners it waits for the commit, so that a client that keeps
/// sending at its limit does not make the model start and drop a call each time.
static REFUSED: LazyLock<Mutex<HashMap<OwnerId, Instant>>> = LazyLock::new(Default::default);

/// The refusal of a commit by `quota`, remembered for the owner until its `Retry-After`.
pub fn refused_by_commit(owner: &OwnerId, quota: Quota, now: Timestamp) -> ChatError {
    let refusal = refusal(quota, now);
    if let ChatError::QuotaExceeded { retry_after, .. } = &refusal {
        let until = Instant::now() + Duration::from_secs(*retry_after);
        let mut refused = REFUSED.lock().unwrap_or_else(PoisonError::into_inner);
        if refused.len() >= MAX_REMEMBERED_REFUSALS {
            let now = Instant::now();
            refused.retain(|_, until| *until > now);
            if refused.len() >= MAX_REMEMBERED_REFUSALS {
                refused.clear();
            }
        }
        refused.insert(owner.clone(), until);
    }
    refusal
}

/// Whether a quota refused a commit of `owner`'s that still holds.
pub fn refused_lately(owner: &OwnerId) -> bool {
    let refused = REFUSED.lock().unwrap_or_else(PoisonError::into_inner);
    refused.get(owner).is_some_and(|until| *until > Instant::now())
}

/// A stored reply's place: `<session>#<seq>`.
pub fn reply_slot(session_id: Uuid, seq: u64) -> String {
    format!("{session_id}#{seq}")
}

/// A stateless call's place: `stateless#<expiry, unix seconds>#<id>`.
pub fn stateless_slot(now: Timestamp) -> String {
    format!("stateless#{}#{}", now.plus(STATELESS_SLOT_LIFETIME).unix_seconds(), Uuid::new_v4().simple())
}

/// Frees the owner's places held by replies that ended without settling
/// (their writer died: the reply is gone, or no longer live) and stateless
/// places past their lifetime. Whether any was freed.
pub async fn free_dead_slots<S: QuotaRepository + MessageRepository>(store: &S, owner: &OwnerId) -> Result<bool, ChatError> {
    let now = Timestamp::now();
    let mut dead = Vec::new();
    for slot in store.quota_use(owner, now).await?.slots {
        let is_dead = match slot.split('#').collect::<Vec<_>>().as_slice() {
            ["stateless", expiry, _] => expiry.parse::<i64>().map_or(true, |e| e < now.unix_seconds()),
            [session, seq] => match (session.parse::<Uuid>(), seq.parse::<u64>()) {
                (Ok(session), Ok(seq)) => store.get_message(session, seq).await?.is_none_or(|m| !m.is_live(now)),
                _ => true,
            },
            _ => true,
        };
        if is_dead {
            dead.push(slot);
        }
    }
    if !dead.is_empty() {
        tracing::info!(freed = dead.len(), "freed places of replies that ended without settling");
        store.free_slots(owner, &dead).await?;
    }
    Ok(!dead.is_empty())
}

/// Tokens a call used: as the backend reported them, else as estimated from
/// the text (a reply cut short reports nothing).
fn tokens_used(usage: Option<&Usage>, reserve_prompt: u64, thinking: &str, content: &str) -> (u64, u64, u64) {
    match usage {
        Some(u) if u.prompt_tokens + u.completion_tokens > 0 => (u.prompt_tokens, u.completion_tokens, u.thinking_tokens),
        _ => {
            let thinking = u64::from(estimate_turn(thinking));
            (reserve_prompt, thinking + u64::from(estimate_turn(content)), thinking)
        }
    }
}

/// The settlement of `claimed` for a call that ended with `usage` (if the
/// backend reported it), `thinking` and `content`, taking `generation_ms`;
/// and the call's spend.
pub fn settlement(
    claimed: &Claimed,
    usage: Option<&Usage>,
    thinking: &str,
    content: &str,
    prompt_estimate: u64,
    generation_ms: u64,
) -> (Settlement, Spend) {
    let (reads, writes) = claimed.meter.units();
    let (prompt, completion, thinking) = tokens_used(usage, prompt_estimate, thinking, content);
    let spend = Spend { backend: claimed.backend.clone(), generation_ms, read_units: reads, write_units: writes };
    let claim = &claimed.claim;
    let settlement = Settlement {
        owner: claim.owner.clone(),
        slot: claim.slot.clone(),
        day: claim.day.clone(),
        month: claim.month.clone(),
        token_correction: (prompt + completion) as i64 - claim.reserve as i64,
        entry: LedgerEntry {
            day: claim.day.clone(),
            session: claimed.session.clone(),
            model: claimed.model.clone(),
            replies: 1,
            prompt_tokens: prompt,
            completion_tokens: completion,
            thinking_tokens: thinking,
            generation_ms,
            read_units: reads,
            write_units: writes,
        },
    };
    (settlement, spend)
}
