//! Step one of a send: check, fit the context, and store the exchange.

use std::sync::Arc;

use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::context;
use super::quota::{self, Claimed};
use super::{Begun, ChatError, LEASE_GRACE, Opening, Pending};
use crate::config::Config;
use crate::domain::limits::MAX_HISTORY_MESSAGES;
use crate::domain::{Message, MessageStatus, ModelOptions, OwnerId, QuotaLimits, Role, SendMessage, Timestamp};
use crate::llm::{ChatModel, ChatRequest};
use crate::store::meter::{Meter, metered};
use crate::store::{BUSY_ATTEMPTS, BeginError, IdempotencyRecord, MessageRepository, QuotaRepository, SendState, StoreError, back_off};

/// What a send reads before it is judged, read while the caller's key is
/// checked: the session with its newest messages (one Query), then the
/// quotas of the session's owner (one GetItem). [`begin`] matches the
/// session's owner with the caller before it uses any of it.
pub struct SendReads {
    session_id: Uuid,
    state: Result<SendState, StoreError>,
    /// Read only when the session was.
    limits: Option<Result<QuotaLimits, ChatError>>,
    /// The send's DynamoDB capacity, from these reads on.
    meter: Arc<Meter>,
}

impl SendReads {
    /// Whether the session was read and is `owner`'s.
    fn owned_by(&self, owner: &OwnerId) -> Result<bool, ChatError> {
        match &self.state {
            Ok(state) => Ok(&state.session.owner == owner),
            Err(StoreError::NotFound) => Ok(false),
            Err(e) => Err(ChatError::Storage(StoreError::Unavailable(e.to_string()))),
        }
    }
}

/// The reads of a send to `session_id`, for [`begin`]; they may start
/// before the caller is known (see [`SendReads`]).
pub async fn read_for_send<S: MessageRepository + QuotaRepository>(store: &S, config: &Config, session_id: Uuid) -> SendReads {
    let meter = Meter::new();
    let reads = async {
        let state = store.load_for_send(session_id, MAX_HISTORY_MESSAGES).await;
        let limits = match &state {
            Ok(state) => Some(quota::limits(store, config, &state.session.owner).await),
            Err(_) => None,
        };
        (state, limits)
    };
    let (state, limits) = metered(meter.clone(), Box::pin(reads)).await;
    SendReads { session_id, state, limits, meter }
}

/// Checks the send against `reads`, fits the context and stores the exchange
/// with the owner's quota claim (all or nothing); the DynamoDB capacity it
/// uses is counted on the reply's meter. The model is called while the
/// exchange's transaction commits: nothing it says is read before the
/// commit has succeeded, and the call is dropped if the commit fails.
pub async fn begin<S: MessageRepository + QuotaRepository, M: ChatModel>(
    store: &S,
    llm: &M,
    config: &Config,
    owner: &OwnerId,
    reads: SendReads,
    input: SendMessage,
) -> Result<Begun<M::Stream>, ChatError> {
    let meter = reads.meter.clone();
    // Boxed: the send path's futures nest deeply, and a debug build's stack is small.
    metered(meter, Box::pin(begin_metered(store, llm, config, owner, reads, input))).await
}

async fn begin_metered<S: MessageRepository + QuotaRepository, M: ChatModel>(
    store: &S,
    llm: &M,
    config: &Config,
    owner: &OwnerId,
    reads: SendReads,
    input: SendMessage,
) -> Result<Begun<M::Stream>, ChatError> {
    let fingerprint = fingerprint(&input);
    let key = stored_key(&input).map(str::to_owned);
    let session_id = reads.session_id;
    let owned = reads.owned_by(owner);
    match (start(store, llm, config, owner, reads, input, &fingerprint).await, key) {
        // A retry of a send that was stored answers what was stored, even if the
        // same request would be refused now (the deployment's limits or quotas
        // changed since): the contract's "same id, same content" is a replay.
        // Only refusals look, so a new send costs no extra read.
        (Err(refusal), Some(key)) if is_refusal(&refusal) => {
            // The owner's session only: a record is never shown to another caller.
            if !owned? {
                return Err(refusal);
            }
            match store.get_idempotency(session_id, &key).await? {
                Some(record) => replay_record(store, session_id, record, &fingerprint).await,
                None => Err(refusal),
            }
        }
        (result, _) => result,
    }
}

/// Refusals of what was asked, which a stored exchange under the same key overrides.
fn is_refusal(err: &ChatError) -> bool {
    matches!(
        err,
        ChatError::Invalid(_) | ChatError::NotAllowed(_) | ChatError::ContextOverflow(_) | ChatError::QuotaExceeded { .. }
    )
}

/// The send's `client_message_id`, when it obeys the rule every stored one passed.
fn stored_key(input: &SendMessage) -> Option<&str> {
    let key = input.client_message_id.as_deref()?;
    let alone = SendMessage { content: "-".to_owned(), client_message_id: Some(key.to_owned()), options: None, turn: Default::default() };
    alone.validate().is_ok().then_some(key)
}

/// The send as this deployment judges it now: checked, fitted and stored.
#[allow(clippy::too_many_arguments)]
async fn start<S: MessageRepository + QuotaRepository, M: ChatModel>(
    store: &S,
    llm: &M,
    config: &Config,
    owner: &OwnerId,
    reads: SendReads,
    input: SendMessage,
    fingerprint: &str,
) -> Result<Begun<M::Stream>, ChatError> {
    input.validate().map_err(|e| ChatError::Invalid(e.0))?;
    let SendReads { session_id, state, limits, meter } = reads;
    let state = state?;
    if &state.session.owner != owner {
        return Err(ChatError::NotFound("session"));
    }
    let now = Timestamp::now();

    if state.recent.first().is_some_and(|m| m.is_live(now)) {
        // Busy: a retry of the exchange in progress is told so too.
        if let Some(id) = &input.client_message_id {
            return replay(store, session_id, id, fingerprint).await;
        }
        return Err(ChatError::ReplyInProgress);
    }

    // A retry of an exchange still in the window is answered from the store:
    // no transaction to fail, and no model call to start and drop.
    if let Some(id) = &input.client_message_id
        && state.recent.iter().any(|m| m.role == Role::User && m.client_message_id.as_ref() == Some(id))
    {
        return replay(store, session_id, id, fingerprint).await;
    }

    // A reply left `streaming` past its lease lost its writer: this send stores it as `incomplete`.
    let abandoned = state.recent.first().filter(|m| m.status == MessageStatus::Streaming);
    let session = state.session;
    let mut options = match &input.options {
        Some(overrides) => session.options.overridden_by(overrides),
        None => session.options.clone(),
    };
    let model = input.turn.model.clone().unwrap_or_else(|| session.model.clone());
    // The deployment's limits, on what this send would really ask for.
    config.check_model(&model).map_err(ChatError::NotAllowed)?;
    config.check_options(&options).map_err(ChatError::NotAllowed)?;
    // Both sent to the model, so the budget below and the model agree: the
    // context it gets, and the longest reply it may write.
    let context_tokens = *options.num_ctx.get_or_insert(config.context_tokens);
    let reserve = *options.num_predict.get_or_insert(config.max_reply_tokens);
    let system_prompt = input.turn.system_prompt.as_deref().or(session.system_prompt.as_deref());
    // Scaled by what the backend counted in this session's last prompt to the same model.
    let budget = context::Budget { context_tokens, reply_reserve: reserve, calibration: context::calibration(&state.recent, &model) };
    let fitted = context::fit(system_prompt, &state.recent, &input.content, &budget, state.older_exist)
        .map_err(|e| ChatError::ContextOverflow(e.to_string()))?;

    let expected_seq = session.last_seq;
    let user = Message::user(session_id, expected_seq + 1, input.content.clone(), input.client_message_id.clone(), now);
    let lease = now.plus(config.llm_first_token_timeout + config.llm_idle_timeout + LEASE_GRACE);
    let mut reply = Message::pending_reply(session_id, expected_seq + 2, model.clone(), now, lease);
    reply.context_truncated = fitted.truncated;
    reply.format = options.format.clone();
    let idempotency = input.client_message_id.as_ref().map(|id| IdempotencyRecord {
        client_message_id: id.clone(),
        fingerprint: fingerprint.to_owned(),
        user_seq: user.seq,
        reply_seq: reply.seq,
    });

    let limits = limits.ok_or(ChatError::NotFound("session"))??;
    let prompt_estimate = u64::from(fitted.budgeted_tokens);
    let claim = quota::claim(owner, limits, quota::reply_slot(session_id, reply.seq), prompt_estimate + u64::from(reserve), now)?;
    let request = ChatRequest { model: model.clone(), messages: fitted.turns, options };
    // The model starts on the prompt while the exchange commits; returning
    // early below drops the call. An owner a quota refused lately waits for
    // the commit, so a client at its limit costs the model nothing.
    let early = (!quota::refused_lately(owner)).then(|| Opening::start(llm, &request));
    let (mut freed, mut attempt) = (false, 0);
    loop {
        match store.begin_exchange(&session, expected_seq, &user, &reply, idempotency.as_ref(), abandoned, &claim).await {
            Ok(()) => break,
            // Another transaction on the same items at the same moment: the conditions decide the next try.
            Err(BeginError::Store(StoreError::Conflict)) if attempt + 1 < BUSY_ATTEMPTS => {
                back_off(attempt).await;
                attempt += 1;
            }
            Err(BeginError::Duplicate) => {
                let id = input.client_message_id.as_deref().unwrap_or_default();
                return replay(store, session_id, id, fingerprint).await;
            }
            Err(BeginError::Busy) => return Err(ChatError::ReplyInProgress),
            // Places held by replies whose writer died are freed, once, before refusing.
            Err(BeginError::Quota(crate::domain::Quota::ActiveReplies)) if !freed && quota::free_dead_slots(store, owner).await? => {
                freed = true;
            }
            Err(BeginError::Quota(q)) => return Err(quota::refused_by_commit(owner, q, now)),
            Err(BeginError::Store(e)) => return Err(e.into()),
        }
    }
    tracing::info!(user_seq = user.seq, reply_seq = reply.seq, truncated = fitted.truncated, "exchange stored");
    let (backend, bare) = config.resolve_model(&request.model);
    let claimed = Claimed {
        claim,
        meter,
        session: session_id.to_string(),
        model: format!("{backend}/{bare}"),
        backend: backend.to_owned(),
    };
    let opening = early.unwrap_or_else(|| Opening::start(llm, &request));
    let uncalibrated_estimate = u64::from(fitted.estimated_tokens);
    Ok(Begun::New(Pending { user, reply, opening, claimed, prompt_estimate, uncalibrated_estimate }))
}

/// The original exchange behind a repeated `client_message_id`.
async fn replay<S: MessageRepository, St>(
    store: &S,
    session_id: Uuid,
    client_message_id: &str,
    fingerprint: &str,
) -> Result<Begun<St>, ChatError> {
    let record = store.get_idempotency(session_id, client_message_id).await?.ok_or(ChatError::ReplyInProgress)?;
    replay_record(store, session_id, record, fingerprint).await
}

/// The exchange `record` names, if `fingerprint` says it is the same request.
async fn replay_record<S: MessageRepository, St>(
    store: &S,
    session_id: Uuid,
    record: IdempotencyRecord,
    fingerprint: &str,
) -> Result<Begun<St>, ChatError> {
    if record.fingerprint != fingerprint {
        return Err(ChatError::IdempotencyKeyReused);
    }
    let user = store.get_message(session_id, record.user_seq).await?;
    let reply = store.get_message(session_id, record.reply_seq).await?;
    let (Some(user), Some(reply)) = (user, reply) else {
        return Err(ChatError::NotFound("message"));
    };
    if reply.is_live(Timestamp::now()) {
        return Err(ChatError::ReplyInProgress);
    }
    Ok(Begun::Replay { user, reply })
}

/// Identifies what was sent under a `client_message_id`.
fn fingerprint(input: &SendMessage) -> String {
    let mut hasher = Sha256::new();
    hasher.update(input.content.as_bytes());
    hasher.update([0]);
    // No options and empty options mean the same request.
    let options = input.options.as_ref().filter(|o| **o != ModelOptions::default());
    hasher.update(serde_json::to_vec(&options).unwrap_or_default());
    format!("{:x}", hasher.finalize())
}
