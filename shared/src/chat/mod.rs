//! Sending a message: the behaviour contract in code.
//!
//! 1. [`begin`] reads the session and its newest messages (one Query), then
//!    stores the user message and a `streaming` reply placeholder in one
//!    conditional transaction, before the model is called. The transaction's
//!    condition on `last_seq` gives each session one reply at a time and a
//!    strictly increasing `seq`.
//! 2. [`generate`] streams the model's reply, appending its text to the reply's
//!    log at most every [`LOG_FLUSH_INTERVAL`] or [`LOG_FLUSH_BYTES`] and
//!    renewing the reply's lease, then stores the final reply: `complete`, or
//!    `incomplete` / `failed` / `cancelled` with its text so far. Every write is
//!    conditional on the reply's generation token (fencing): a generator that
//!    lost its reply stops at its next write.
//! 3. [`follow`] reads a reply from any position while it is written, for a
//!    reader that rejoins it; [`cancel`] asks its generator to stop.
//!
//! Generation never depends on the client: a client that goes away loses nothing.
//! The use case names the model only through [`ChatModel`](crate::llm::ChatModel)
//! and the store only through its repository traits; its errors are
//! [`ChatError`], which the HTTP layer maps to statuses.

use std::time::Duration;

use futures::FutureExt;
use futures::future::RemoteHandle;
use tokio::time::Instant;

use crate::domain::Message;
use crate::llm::{ChatModel, ChatRequest, LlmError};
use crate::store::StoreError;

mod begin;
mod control;
pub mod context;
mod generate;
pub mod quota;
mod relay;

pub use begin::{SendReads, begin, read_for_send};
pub use control::{
    CANCEL_WAIT, Cancelled, FOLLOW_POLL_INTERVAL, Followed, Position, cancel, check_position, delete_exchange, follow, locate_reply,
};
pub use generate::{Generated, generate};
pub use relay::{StatelessClaim, claim_stateless, relay, settle_stateless, stateless_request};

/// Longest time new text waits before it is appended to the reply's log: a
/// crash loses at most this much, and a follower lags by about this much.
pub const LOG_FLUSH_INTERVAL: Duration = Duration::from_millis(250);
/// New text is appended as soon as this many bytes wait, whatever the time.
pub const LOG_FLUSH_BYTES: usize = 2 * 1024;
/// While the model is silent, the lease is renewed this often; a cancel is
/// noticed at the next write, so within this while silent and within
/// [`LOG_FLUSH_INTERVAL`] while text flows.
pub const LEASE_RENEW_INTERVAL: Duration = Duration::from_secs(1);
/// Slack added to a reply's lease beyond the longest wait the writer itself allows.
pub const LEASE_GRACE: Duration = Duration::from_secs(15);

/// A piece of a reply as it arrives: thinking, or the reply's content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delta<'a> {
    Thinking(&'a str),
    Content(&'a str),
}

/// A model call started by a send: it runs on its own (so it progresses while
/// the exchange commits) and is abandoned, its connection closed, when this
/// is dropped.
pub struct Opening<St> {
    call: RemoteHandle<Result<St, LlmError>>,
    /// When the model was called: its time to first token counts from here.
    called_at: Instant,
}

impl<St: Send + 'static> Opening<St> {
    /// The model's stream, once the backend has accepted the call.
    pub async fn opened(self) -> Result<St, LlmError> {
        self.call.await
    }

    /// Calls the model now.
    fn start<M: ChatModel<Stream = St>>(llm: &M, request: &ChatRequest) -> Self {
        let (call, handle) = llm.chat_stream(request).remote_handle();
        tokio::spawn(call);
        Opening { call: handle, called_at: Instant::now() }
    }
}

impl<St> std::fmt::Debug for Opening<St> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opening").field("called_at", &self.called_at).finish_non_exhaustive()
    }
}

/// An exchange stored and ready for the model, which has been called.
#[derive(Debug)]
pub struct Pending<St> {
    pub user: Message,
    pub reply: Message,
    opening: Opening<St>,
    /// The owner's quota claim this reply settles when it ends.
    claimed: quota::Claimed,
    /// The prompt's estimated tokens, calibrated (what is settled when the backend reports none).
    prompt_estimate: u64,
    /// The same before the session's calibration: the backend's count over
    /// it is the calibration this reply stores.
    uncalibrated_estimate: u64,
}

/// What a send turned out to be.
#[derive(Debug)]
pub enum Begun<St> {
    /// A new exchange: generate its reply.
    New(Pending<St>),
    /// A retry of an exchange already made: the stored user message and reply.
    Replay { user: Message, reply: Message },
}

/// Why a send was refused or its reply did not complete.
#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    /// The message or its options break a rule or a deployment limit.
    #[error("{0}")]
    Invalid(String),
    /// No such session for this owner (or it was deleted meanwhile), or a
    /// message an idempotency record names is gone.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A reply is being generated in this session.
    #[error("a reply is being generated in this session; wait for it to finish")]
    ReplyInProgress,
    #[error("this client_message_id was already used with a different message")]
    IdempotencyKeyReused,
    /// The model or an option is beyond what this deployment offers; names the limit.
    #[error("{0}")]
    NotAllowed(String),
    /// The owner is at a quota's limit: nothing was stored.
    #[error("quota {} reached; try again in {retry_after} s", quota.as_str())]
    QuotaExceeded { quota: crate::domain::Quota, retry_after: u64 },
    /// The new message cannot fit in the model's context even alone.
    #[error("{0}")]
    ContextOverflow(String),
    /// A resume position that is not in the reply.
    #[error("{0}")]
    BadPosition(String),
    /// The reply was taken over by another writer (its lease had run out) while
    /// this generator was away: nothing more was written.
    #[error("this reply was taken over by another request; it is stored as that request left it")]
    Superseded,
    #[error(transparent)]
    Llm(LlmError),
    #[error(transparent)]
    Storage(StoreError),
}

impl From<StoreError> for ChatError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound => ChatError::NotFound("session"),
            other => ChatError::Storage(other),
        }
    }
}

#[cfg(test)]
mod tests;
