//! A chat that stores nothing: the turns as the client sends them (the
//! OpenAI-compatible chat completions), checked against the same limits as a
//! send, relayed to the model and back.

use super::context::estimate_prompt;
use super::quota::{self, Claimed};
use super::{ChatError, Delta, Opening};
use crate::config::Config;
use crate::domain::limits::{MAX_HISTORY_MESSAGES, MAX_MESSAGE_CHARS, MAX_REPLY_BYTES};
use crate::domain::{ModelOptions, OwnerId, STATELESS_SESSION, Timestamp, Usage, validate_model_name};
use crate::store::meter::{Meter, metered};
use crate::store::{BUSY_ATTEMPTS, BeginError, MessageRepository, QuotaRepository, StoreError, back_off, retry_on_conflict};
use crate::llm::{ChatEvent, ChatModel, ChatRequest, ChatTurn, Completion, LlmError, ReplyStream};

/// A model request built from a client's own turns, within the deployment's limits.
pub fn stateless_request(
    config: &Config,
    model: String,
    turns: Vec<ChatTurn>,
    mut options: ModelOptions,
) -> Result<ChatRequest, ChatError> {
    validate_model_name(&model).map_err(|e| ChatError::Invalid(e.0))?;
    options.validate().map_err(|e| ChatError::Invalid(e.0))?;
    config.check_model(&model).map_err(ChatError::NotAllowed)?;
    config.check_options(&options).map_err(ChatError::NotAllowed)?;
    if turns.is_empty() {
        return Err(ChatError::Invalid("at least one message is required".to_owned()));
    }
    if turns.len() > MAX_HISTORY_MESSAGES + 1 {
        return Err(ChatError::Invalid(format!("at most {} messages", MAX_HISTORY_MESSAGES + 1)));
    }
    if turns.iter().any(|t| t.content.chars().count() > MAX_MESSAGE_CHARS) {
        return Err(ChatError::Invalid(format!("a message is at most {MAX_MESSAGE_CHARS} characters")));
    }
    let context_tokens = *options.num_ctx.get_or_insert(config.context_tokens);
    let reserve = *options.num_predict.get_or_insert(config.max_reply_tokens);
    let needed = estimate_prompt(&turns);
    if needed.saturating_add(reserve) > context_tokens {
        return Err(ChatError::ContextOverflow(format!(
            "the messages (about {needed} tokens) and the reply ({reserve}) do not fit the context of {context_tokens} tokens"
        )));
    }
    Ok(ChatRequest { model, messages: turns, options })
}

/// Reads the model's reply from `stream` (opened first, see
/// [`Opening::opened`], so that a backend refusing the request is known
/// before anything is answered) into `on_delta`, and returns how it
/// ended. The reply is cut at [`MAX_REPLY_BYTES`], as a stored one is.
pub async fn relay(mut stream: impl ReplyStream, mut on_delta: impl FnMut(Delta<'_>)) -> Result<Completion, LlmError> {
    let mut bytes = 0;
    while let Some(event) = stream.next().await {
        let text = match event? {
            ChatEvent::Thinking(text) => {
                on_delta(Delta::Thinking(&text));
                text
            }
            ChatEvent::Delta(text) => {
                on_delta(Delta::Content(&text));
                text
            }
            ChatEvent::Progress => continue,
            ChatEvent::Done(completion) => return Ok(completion),
        };
        bytes += text.len();
        if bytes >= MAX_REPLY_BYTES {
            return Ok(Completion { done_reason: Some("length".to_owned()), ..Completion::default() });
        }
    }
    Err(LlmError::Failed("the stream ended without a result".to_owned()))
}

/// A stateless call's quota claim, taken before the model is called.
#[derive(Debug)]
pub struct StatelessClaim {
    claimed: Claimed,
    prompt_estimate: u64,
    started: std::time::Instant,
}

/// Takes the owner's quota claim for `request` (a place, a request of the
/// minute, its reserve of tokens); `QuotaExceeded` names the quota at its
/// limit. As a send's exchange, the claim is written while the model is
/// called: the call is read only once the claim holds, and dropped if it fails.
pub async fn claim_stateless<S: QuotaRepository + MessageRepository, M: ChatModel>(
    store: &S,
    llm: &M,
    config: &Config,
    owner: &OwnerId,
    request: &ChatRequest,
) -> Result<(StatelessClaim, Opening<M::Stream>), ChatError> {
    let meter = Meter::new();
    metered(meter.clone(), async {
        let now = Timestamp::now();
        let limits = quota::limits(store, config, owner).await?;
        let prompt_estimate = quota::reserve(&request.messages, 0);
        let reserve = prompt_estimate + u64::from(request.options.num_predict.unwrap_or(config.max_reply_tokens));
        let claim = quota::claim(owner, limits, quota::stateless_slot(now), reserve, now)?;
        let early = (!quota::refused_lately(owner)).then(|| Opening::start(llm, request));
        let (mut freed, mut attempt) = (false, 0);
        loop {
            match store.claim(&claim).await {
                Ok(()) => break,
                Err(BeginError::Store(StoreError::Conflict)) if attempt + 1 < BUSY_ATTEMPTS => {
                    back_off(attempt).await;
                    attempt += 1;
                }
                Err(BeginError::Quota(crate::domain::Quota::ActiveReplies)) if !freed && quota::free_dead_slots(store, owner).await? => {
                    freed = true;
                }
                Err(BeginError::Quota(q)) => return Err(quota::refused_by_commit(owner, q, now)),
                Err(BeginError::Store(e)) => return Err(e.into()),
                Err(BeginError::Busy | BeginError::Duplicate) => return Err(ChatError::ReplyInProgress),
            }
        }
        let (backend, bare) = config.resolve_model(&request.model);
        let claimed = Claimed {
            claim,
            meter: meter.clone(),
            session: STATELESS_SESSION.to_owned(),
            model: format!("{backend}/{bare}"),
            backend: backend.to_owned(),
        };
        let opening = early.unwrap_or_else(|| Opening::start(llm, request));
        Ok((StatelessClaim { claimed, prompt_estimate, started: std::time::Instant::now() }, opening))
    })
    .await
}

/// Settles a stateless call that ended with `usage` (when the backend
/// reported it) after writing `thinking` and `content`. A failure is logged:
/// the call has been answered already.
pub async fn settle_stateless<S: QuotaRepository>(store: &S, claim: StatelessClaim, usage: Option<&Usage>, thinking: &str, content: &str) {
    let generation_ms = claim.started.elapsed().as_millis() as u64;
    let (settlement, _) = quota::settlement(&claim.claimed, usage, thinking, content, claim.prompt_estimate, generation_ms);
    if let Err(e) = metered(claim.claimed.meter.clone(), retry_on_conflict(|| store.settle(&settlement))).await {
        tracing::warn!(error = %e, "could not settle a stateless call's quota claim");
    }
}
