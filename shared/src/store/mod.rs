//! Persistence: the repository traits the use cases ask for (one per
//! capability), their records and errors, and the cursor codec. The DynamoDB
//! implementation lives in [`dynamo`], with its single-table layout.

use std::future::Future;

use uuid::Uuid;

use crate::domain::{LedgerEntry, Message, Order, OwnerId, Quota, QuotaLimits, QuotaOverride, Session, Timestamp};

pub mod cursor;
pub mod dynamo;
pub mod meter;

pub use cursor::{MessageCursor, SessionCursor};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No such item, or it belongs to another owner: callers cannot tell the two apart.
    #[error("not found")]
    NotFound,
    /// A conditional write lost a race or found the item already there.
    #[error("condition failed")]
    ConditionFailed,
    /// Another write was changing the item at the same moment (DynamoDB's
    /// `TransactionConflict`: a single write meeting a transaction in flight on
    /// the same item); nothing was written, and trying again may succeed.
    #[error("the item was being changed by another write")]
    Conflict,
    /// DynamoDB could not be reached or refused the request.
    #[error("storage request failed: {0}")]
    Unavailable(String),
    /// An item in the table does not have the shape this code writes.
    #[error("stored item is malformed: {0}")]
    Corrupt(String),
}

/// How often a write is tried while DynamoDB refuses it for another write in
/// flight on the same items ([`StoreError::Conflict`]): a `PATCH`, a `DELETE`
/// (then `409 session_busy`), and a reply's final write.
pub const BUSY_ATTEMPTS: u32 = 5;
/// The wait after the first refused attempt, doubled after each next one.
pub const BUSY_BACKOFF: std::time::Duration = std::time::Duration::from_millis(20);

/// The wait before attempt `attempt + 1` of a write refused for a conflict.
pub async fn back_off(attempt: u32) {
    tokio::time::sleep(BUSY_BACKOFF * 2u32.pow(attempt)).await;
}

/// Runs `write` again while it is refused for a conflict, at most
/// [`BUSY_ATTEMPTS`] times in all; its last answer.
pub async fn retry_on_conflict<T, Fut: Future<Output = Result<T, StoreError>>>(mut write: impl FnMut() -> Fut) -> Result<T, StoreError> {
    let mut attempt = 0;
    loop {
        match write().await {
            Err(StoreError::Conflict) if attempt + 1 < BUSY_ATTEMPTS => {
                back_off(attempt).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// One page of a list and where the next one starts.
#[derive(Debug)]
pub struct Listed<T, C> {
    pub items: Vec<T>,
    pub next: Option<C>,
}

pub trait SessionRepository: Send + Sync {
    /// Stores a new session; fails with `ConditionFailed` if the id is taken.
    fn create_session(&self, session: &Session) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The owner's session, or `NotFound` (also for another owner's session).
    fn get_session(&self, owner: &OwnerId, id: Uuid) -> impl Future<Output = Result<Session, StoreError>> + Send;

    /// The owner's sessions, most recent activity first.
    fn list_sessions(
        &self,
        owner: &OwnerId,
        limit: u32,
        after: Option<SessionCursor>,
    ) -> impl Future<Output = Result<Listed<Session, SessionCursor>, StoreError>> + Send;

    /// Writes the editable fields of `session` and its new `updated_at`, if the
    /// stored session still has `read_at` as its `updated_at` (else
    /// `ConditionFailed`: it changed since it was read); returns the stored session.
    fn update_session(
        &self,
        session: &Session,
        read_at: Timestamp,
    ) -> impl Future<Output = Result<Session, StoreError>> + Send;

    /// Deletes the owner's session for every reader at once: it is marked
    /// `deleting` (reads, lists and sends find it gone) and put in the purge
    /// queue; its items stay until [`SessionRepository::purge_session`]
    /// removes them. `NotFound` if it is not the owner's or already deleted.
    fn delete_session(&self, owner: &OwnerId, id: Uuid) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Removes the items of a deleted session, reading its partition with
    /// strongly consistent Queries (so every exchange a send committed before
    /// the DELETE is found), the session item last. Stops once `budget` has
    /// passed; `true` when nothing is left. Safe to run again, or twice at once.
    fn purge_session(&self, id: Uuid, budget: std::time::Duration) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Deleted sessions still in the purge queue that were deleted before
    /// `before` (their purge did not finish), oldest first, at most `limit`.
    fn unfinished_purges(&self, before: Timestamp, limit: u32) -> impl Future<Output = Result<Vec<Uuid>, StoreError>> + Send;
}

/// An API key as stored: only a hash of the secret, never the key itself.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiKeyRecord {
    pub key_id: String,
    pub owner: OwnerId,
    pub secret_hash: String,
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

pub trait ApiKeyRepository: Send + Sync {
    fn put_api_key(&self, key: &ApiKeyRecord) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn get_api_key(&self, key_id: &str) -> impl Future<Output = Result<Option<ApiKeyRecord>, StoreError>> + Send;
    /// Marks the key revoked; `NotFound` if there is no such key.
    fn revoke_api_key(&self, key_id: &str, at: Timestamp) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// A cheap round trip to the store, for `/health`.
pub trait StoreProbe: Send + Sync {
    fn probe(&self) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// What one send reads before calling the model: the session and its newest
/// messages, from a single Query.
#[derive(Debug)]
pub struct SendState {
    pub session: Session,
    /// Newest first.
    pub recent: Vec<Message>,
    /// True when older messages exist beyond `recent`.
    pub older_exist: bool,
}

/// Remembers which exchange a `client_message_id` produced.
#[derive(Debug, Clone, PartialEq)]
pub struct IdempotencyRecord {
    pub client_message_id: String,
    /// Hash of what was sent, to tell a retry from a reused key.
    pub fingerprint: String,
    pub user_seq: u64,
    pub reply_seq: u64,
}

/// A piece of a streaming reply's text, as its generator stored it: the reply's
/// log is its parts in `index` order, each starting at byte `offset` of the text.
#[derive(Debug, Clone, PartialEq)]
pub struct LogPart {
    pub index: u32,
    /// Where the part starts in the reply: its thinking, then its content.
    pub offset: usize,
    /// Thinking (which comes before any content)…
    pub thinking: String,
    /// …then content.
    pub text: String,
}

/// Why an exchange could not start.
#[derive(Debug, thiserror::Error)]
pub enum BeginError {
    /// Another send changed the session first: a reply is being generated.
    #[error("another reply is in progress")]
    Busy,
    /// The `client_message_id` was seen before.
    #[error("duplicate client_message_id")]
    Duplicate,
    /// The owner is at this quota's limit: nothing was stored.
    #[error("quota {} reached", .0.as_str())]
    Quota(Quota),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub trait MessageRepository: Send + Sync {
    /// The session and up to `window` newest messages, in one Query (a reply
    /// still streaming has its text so far assembled from its log). Any
    /// owner's session: the caller matches its owner with whoever asked, so
    /// that the read can start before the caller's key is checked.
    fn load_for_send(
        &self,
        session_id: Uuid,
        window: usize,
    ) -> impl Future<Output = Result<SendState, StoreError>> + Send;

    /// In one transaction: moves the session's `last_seq` from `expected_seq`
    /// to the reply's seq, stores the user message and the `streaming` reply,
    /// records the idempotency key, stores `abandoned` (a reply left
    /// streaming past its lease) as `incomplete` with its text so far, and
    /// takes `claim` from the owner's quotas (all or nothing).
    #[allow(clippy::too_many_arguments)]
    fn begin_exchange(
        &self,
        session: &Session,
        expected_seq: u64,
        user: &Message,
        reply: &Message,
        idempotency: Option<&IdempotencyRecord>,
        abandoned: Option<&Message>,
        claim: &QuotaClaim,
    ) -> impl Future<Output = Result<(), BeginError>> + Send;

    fn get_idempotency(
        &self,
        session_id: Uuid,
        client_message_id: &str,
    ) -> impl Future<Output = Result<Option<IdempotencyRecord>, StoreError>> + Send;

    /// A message; a reply still streaming has its text so far assembled from its log.
    fn get_message(&self, session_id: Uuid, seq: u64) -> impl Future<Output = Result<Option<Message>, StoreError>> + Send;

    /// The owner's message with this id (newest messages are found first), or
    /// `None`; `NotFound` when the session is not the owner's.
    fn find_message(
        &self,
        owner: &OwnerId,
        session_id: Uuid,
        message_id: Uuid,
    ) -> impl Future<Output = Result<Option<Message>, StoreError>> + Send;

    /// Appends `part` (if any) to the reply's log and renews its lease to
    /// `reply.lease_until`, only while the reply is `streaming` under
    /// `reply.generation` and nobody asked to cancel it (else `ConditionFailed`).
    fn append_reply(&self, reply: &Message, part: Option<&LogPart>) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Stores the reply's final state (whole text, status, usage, spend), only
    /// while it is `streaming` under `reply.generation` (else
    /// `ConditionFailed`), and in the same write settles its quota claim.
    fn finish_reply(&self, reply: &Message, settlement: &Settlement) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Asks the generator of a `streaming` reply to stop; `false` when the
    /// reply is not streaming (it has ended, or is gone).
    fn request_cancel(&self, session_id: Uuid, seq: u64) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// A reply as stored (its `content` is the final text only once it has
    /// ended) and the parts of its log from `from_part` on: what a follower reads.
    fn read_reply(
        &self,
        session_id: Uuid,
        seq: u64,
        from_part: u32,
    ) -> impl Future<Output = Result<Option<(Message, Vec<LogPart>)>, StoreError>> + Send;

    /// Removes an exchange that has ended: reply `reply_seq`, the user message
    /// before it, and the reply's log (`ConditionFailed` while it streams).
    fn delete_exchange(&self, session_id: Uuid, reply_seq: u64) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// A page of the session's messages (ownership is checked by the caller).
    fn list_messages(
        &self,
        session_id: Uuid,
        order: Order,
        limit: u32,
        after_seq: Option<u64>,
    ) -> impl Future<Output = Result<Listed<Message, u64>, StoreError>> + Send;
}

/// What a request that calls a model takes from its owner's quotas, all or
/// nothing, in the same write that stores its exchange: a place among the
/// replies in progress, one request of the minute, and `reserve` tokens of the
/// day and of the month (given back, less what was used, when it settles).
#[derive(Debug, Clone, PartialEq)]
pub struct QuotaClaim {
    pub owner: OwnerId,
    pub limits: QuotaLimits,
    /// The claim's place among the owner's replies in progress: `<session>#<seq>`
    /// for a stored reply, `<expiry>#<id>` for a stateless one.
    pub slot: String,
    /// `2026-11-24T05:00`, `2026-11-24`, `2026-11`.
    pub minute: String,
    pub day: String,
    pub month: String,
    pub reserve: u64,
}

/// How a claim ends: its place is freed, the day's and month's tokens are
/// corrected from the reserve to what was used, and the ledger gains `entry`.
#[derive(Debug, Clone, PartialEq)]
pub struct Settlement {
    pub owner: OwnerId,
    pub slot: String,
    pub day: String,
    pub month: String,
    /// Tokens used minus tokens reserved (usually negative).
    pub token_correction: i64,
    /// Added to the ledger's row for the entry's day, session and model.
    pub entry: LedgerEntry,
}

/// What an owner has used of its quotas now.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QuotaUse {
    /// The places taken among replies in progress (some may belong to replies
    /// whose writer died: see [`QuotaRepository::free_slots`]).
    pub slots: Vec<String>,
    pub requests_this_minute: u64,
    pub tokens_today: u64,
    pub tokens_this_month: u64,
}

/// Quotas and the usage ledger, per owner.
pub trait QuotaRepository: Send + Sync {
    /// The owner's own quotas, if an operator set any.
    fn quota_override(&self, owner: &OwnerId) -> impl Future<Output = Result<Option<QuotaOverride>, StoreError>> + Send;

    /// Sets (or, with `None`, removes) the owner's own quotas.
    fn set_quota_override(&self, owner: &OwnerId, quota: Option<&QuotaOverride>) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Takes a claim for a request that stores nothing (the stateless chat
    /// completions); `BeginError::Quota` names the quota at its limit.
    fn claim(&self, claim: &QuotaClaim) -> impl Future<Output = Result<(), BeginError>> + Send;

    /// Settles a claim taken with [`QuotaRepository::claim`].
    fn settle(&self, settlement: &Settlement) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// What the owner has used at `now` (its minute, day and month).
    fn quota_use(&self, owner: &OwnerId, now: Timestamp) -> impl Future<Output = Result<QuotaUse, StoreError>> + Send;

    /// Frees places among the replies in progress whose reply has ended
    /// without settling (its writer died).
    fn free_slots(&self, owner: &OwnerId, slots: &[String]) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The owner's ledger rows from day `from` to day `to` (inclusive, `YYYY-MM-DD`).
    fn ledger(&self, owner: &OwnerId, from: &str, to: &str) -> impl Future<Output = Result<Vec<LedgerEntry>, StoreError>> + Send;
}

/// Everything a function may need from the store.
pub trait Store: SessionRepository + MessageRepository + ApiKeyRepository + QuotaRepository + StoreProbe {}
impl<T: SessionRepository + MessageRepository + ApiKeyRepository + QuotaRepository + StoreProbe> Store for T {}
