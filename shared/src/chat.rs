//! Sending a message: the behaviour contract in code.
//!
//! 1. [`begin`] reads the session and its newest messages (one Query), then
//!    stores the user message and a `streaming` reply placeholder in one
//!    conditional transaction, before the model is called. The transaction's
//!    condition on `last_seq` gives each session one reply at a time and a
//!    strictly increasing `seq`.
//! 2. [`generate`] streams the model's reply, saving the text so far at most
//!    every [`CHECKPOINT_INTERVAL`] and renewing the reply's lease, then stores
//!    the final reply: `complete`, or `incomplete` / `failed` with its text so far.
//!
//! Generation never depends on the client: a client that goes away loses nothing.

use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::config::Config;
use crate::context;
use crate::domain::{Exchange, Message, MessageStatus, MessageView, OwnerId, SendMessage, Timestamp};
use crate::error::{ApiError, ProblemCode};
use crate::limits::MAX_HISTORY_MESSAGES;
use crate::llm::ollama::ChatRequest;
use crate::limits::MAX_REPLY_BYTES;
use crate::llm::{ChatEvent, Completion, LlmError, OllamaClient, Role, TimeoutPhase};
use crate::store::{BeginError, IdempotencyRecord, MessageRepository, StoreError};

/// Longest time between two saves of a reply's text: a crash loses at most this much.
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(2);
/// Slack added to a reply's lease beyond the longest wait the writer itself allows.
pub const LEASE_GRACE: Duration = Duration::from_secs(15);

/// An exchange stored and ready for the model.
#[derive(Debug)]
pub struct Pending {
    pub user: Message,
    pub reply: Message,
    request: ChatRequest,
}

/// What a send turned out to be.
#[derive(Debug)]
pub enum Begun {
    /// A new exchange: generate its reply.
    New(Pending),
    /// A retry of an exchange already made: here it is.
    Replay(Exchange),
}

pub async fn begin<S: MessageRepository>(
    store: &S,
    config: &Config,
    owner: &OwnerId,
    session_id: Uuid,
    input: SendMessage,
) -> Result<Begun, ApiError> {
    input.validate().map_err(|e| ApiError::Unprocessable(e.0))?;
    let fingerprint = fingerprint(&input);
    let state = store.load_for_send(owner, session_id, MAX_HISTORY_MESSAGES).await.map_err(not_found)?;
    let now = Timestamp::now();

    if state.recent.first().is_some_and(|m| m.is_live(now)) {
        // Busy: a retry of the exchange in progress is told so too.
        if let Some(id) = &input.client_message_id {
            return replay(store, session_id, id, &fingerprint).await.map(Begun::Replay);
        }
        return Err(reply_in_progress());
    }

    let session = state.session;
    let mut options = match &input.options {
        Some(overrides) => session.options.overridden_by(overrides),
        None => session.options.clone(),
    };
    // Both sent to Ollama, so the budget below and the model agree: the
    // context it gets, and the longest reply it may write.
    let context_tokens = *options.num_ctx.get_or_insert(config.context_tokens);
    if context_tokens > config.max_context_tokens {
        return Err(ApiError::Unprocessable(format!(
            "options.num_ctx is at most {} on this deployment",
            config.max_context_tokens
        )));
    }
    let reserve = *options.num_predict.get_or_insert(config.max_reply_tokens);
    let fitted = context::fit(
        session.system_prompt.as_deref(),
        &state.recent,
        &input.content,
        context_tokens,
        reserve,
        state.older_exist,
    )
    .map_err(|e| ApiError::ContextOverflow(e.to_string()))?;

    let expected_seq = session.last_seq;
    let user = Message {
        id: Uuid::new_v4(),
        session_id,
        seq: expected_seq + 1,
        role: Role::User,
        content: input.content.clone(),
        status: MessageStatus::Complete,
        created_at: now,
        completed_at: Some(now),
        model: None,
        usage: None,
        done_reason: None,
        client_message_id: input.client_message_id.clone(),
        context_truncated: false,
        error_code: None,
        lease_until: None,
    };
    let reply = Message {
        id: Uuid::new_v4(),
        seq: expected_seq + 2,
        role: Role::Assistant,
        content: String::new(),
        status: MessageStatus::Streaming,
        completed_at: None,
        model: Some(session.model.clone()),
        client_message_id: None,
        context_truncated: fitted.truncated,
        lease_until: Some(now.plus(config.llm_first_token_timeout + config.llm_idle_timeout + LEASE_GRACE)),
        ..user.clone()
    };
    let idempotency = input.client_message_id.as_ref().map(|id| IdempotencyRecord {
        client_message_id: id.clone(),
        fingerprint: fingerprint.clone(),
        user_seq: user.seq,
        reply_seq: reply.seq,
    });

    match store.begin_exchange(&session, expected_seq, &user, &reply, idempotency.as_ref()).await {
        Ok(()) => {}
        Err(BeginError::Duplicate) => {
            let id = input.client_message_id.as_deref().unwrap_or_default();
            return replay(store, session_id, id, &fingerprint).await.map(Begun::Replay);
        }
        Err(BeginError::Busy) => return Err(reply_in_progress()),
        Err(BeginError::Store(e)) => return Err(not_found(e)),
    }
    tracing::info!(user_seq = user.seq, reply_seq = reply.seq, truncated = fitted.truncated, "exchange stored");
    let request = ChatRequest { model: session.model, messages: fitted.turns, options };
    Ok(Begun::New(Pending { user, reply, request }))
}

/// A reply's outcome: the reply as it ended, and what went wrong, if anything.
#[derive(Debug)]
pub struct Generated {
    pub reply: Message,
    /// The model failed or timed out: the reply is `failed` or `incomplete`.
    pub llm_error: Option<LlmError>,
    /// Storing the final reply failed (`NotFound`: the session was deleted meanwhile).
    pub save_error: Option<StoreError>,
}

impl Generated {
    /// The problem to report, if any: the model's failure first, then the store's.
    pub fn problem(&self) -> Option<ApiError> {
        match (&self.llm_error, &self.save_error) {
            (Some(e), _) => Some(ApiError::Llm(e.clone())),
            (None, Some(StoreError::ConditionFailed | StoreError::NotFound)) => Some(ApiError::NotFound("session")),
            (None, Some(e)) => Some(ApiError::StorageUnavailable(StoreError::Unavailable(e.to_string()))),
            (None, None) => None,
        }
    }

    /// Whether the text so far is stored.
    pub fn text_saved(&self) -> bool {
        self.save_error.is_none() && !self.reply.content.is_empty()
    }
}

/// Generates and stores the reply. `on_delta` sees each piece of text as it
/// arrives; whatever it does (a client may be gone), generation goes on.
pub async fn generate<S: MessageRepository>(
    store: &S,
    llm: &OllamaClient,
    config: &Config,
    pending: Pending,
    mut on_delta: impl FnMut(&str),
) -> Generated {
    let Pending { mut reply, request, .. } = pending;
    let outcome = async {
        let mut stream = llm.chat_stream(&request).await?;
        let mut last_save = Instant::now();
        while let Some(event) = stream.next().await {
            match event? {
                ChatEvent::Delta(text) => {
                    reply.content.push_str(&text);
                    on_delta(&text);
                    if reply.content.len() >= MAX_REPLY_BYTES {
                        // A reply that would not fit in its item: end it here, as a length stop.
                        tracing::warn!(bytes = reply.content.len(), "reply reached the size limit");
                        return Ok(Completion { done_reason: Some("length".to_owned()), ..Completion::default() });
                    }
                }
                ChatEvent::Progress => {}
                ChatEvent::Done(completion) => return Ok(completion),
            }
            // Text or not, a working backend renews the lease, so a live reply never reads as abandoned.
            if last_save.elapsed() >= CHECKPOINT_INTERVAL {
                reply.lease_until = Some(Timestamp::now().plus(config.llm_idle_timeout + LEASE_GRACE));
                if let Err(e) = store.checkpoint_reply(&reply).await {
                    tracing::warn!(error = %e, "could not checkpoint the reply; generation goes on");
                }
                last_save = Instant::now();
            }
        }
        Err(LlmError::Failed("the stream ended without a result".to_owned()))
    }
    .await;

    reply.completed_at = Some(Timestamp::now());
    reply.lease_until = None;
    let llm_error = match outcome {
        Ok(completion) => {
            reply.status = MessageStatus::Complete;
            reply.done_reason = completion.done_reason;
            reply.usage = Some(completion.usage);
            None
        }
        Err(err) => {
            reply.status = match err {
                LlmError::Timeout(TimeoutPhase::BetweenTokens) => MessageStatus::Incomplete,
                LlmError::Timeout(_) if !reply.content.is_empty() => MessageStatus::Incomplete,
                _ => MessageStatus::Failed,
            };
            reply.error_code = Some(err.code());
            tracing::warn!(error = %err, status = ?reply.status, chars = reply.content.len(), "reply did not complete");
            Some(err)
        }
    };
    // If this fails, the client is told so; the lease makes the stored reply
    // read back as `incomplete`, with the text of the last checkpoint.
    let save_error = store.finish_reply(&reply).await.err();
    if let Some(e) = &save_error {
        tracing::error!(error = %e, "could not store the final reply");
    }
    tracing::info!(status = ?reply.status, chars = reply.content.len(), "reply finished");
    Generated { reply, llm_error, save_error }
}

/// The original exchange behind a repeated `client_message_id`.
async fn replay<S: MessageRepository>(
    store: &S,
    session_id: Uuid,
    client_message_id: &str,
    fingerprint: &str,
) -> Result<Exchange, ApiError> {
    let record = store.get_idempotency(session_id, client_message_id).await?.ok_or_else(reply_in_progress)?;
    if record.fingerprint != fingerprint {
        return Err(ApiError::IdempotencyKeyReused);
    }
    let user = store.get_message(session_id, record.user_seq).await?;
    let reply = store.get_message(session_id, record.reply_seq).await?;
    let (Some(user), Some(reply)) = (user, reply) else {
        return Err(ApiError::NotFound("message"));
    };
    let now = Timestamp::now();
    if reply.is_live(now) {
        return Err(reply_in_progress());
    }
    Ok(Exchange { user_message: MessageView::new(&user, now), reply: MessageView::new(&reply, now) })
}

fn reply_in_progress() -> ApiError {
    ApiError::Conflict(
        ProblemCode::ReplyInProgress,
        "a reply is being generated in this session; wait for it to finish".to_owned(),
    )
}

fn not_found(err: StoreError) -> ApiError {
    match err {
        StoreError::NotFound => ApiError::NotFound("session"),
        other => ApiError::from(other),
    }
}

/// Identifies what was sent under a `client_message_id`.
fn fingerprint(input: &SendMessage) -> String {
    let mut hasher = Sha256::new();
    hasher.update(input.content.as_bytes());
    hasher.update([0]);
    // No options and empty options mean the same request.
    let options = input.options.as_ref().filter(|o| **o != crate::domain::ModelOptions::default());
    hasher.update(serde_json::to_vec(&options).unwrap_or_default());
    hasher.finalize().iter().map(|b| format!("{b:02x}")).collect()
}
