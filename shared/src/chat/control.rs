//! A reply seen from outside its generator: rejoining it from a position
//! ([`follow`]) and stopping it ([`cancel`]), from any request, anywhere.

use std::time::Duration;

use uuid::Uuid;

use super::{ChatError, LEASE_RENEW_INTERVAL};
use crate::domain::limits::MAX_REPLY_BYTES;
use crate::domain::{Message, MessageStatus, OwnerId, Role, Timestamp};
use crate::store::MessageRepository;

/// How often a follower reads a live reply's log. With the generator's
/// [`LOG_FLUSH_INTERVAL`](super::LOG_FLUSH_INTERVAL), this bounds what a
/// follower lags behind the generator's own reader.
pub const FOLLOW_POLL_INTERVAL: Duration = Duration::from_millis(200);

/// How long a cancel waits for the generator to store the stopped reply
/// before answering with the reply as it stands.
pub const CANCEL_WAIT: Duration = Duration::from_secs(3);
const CANCEL_POLL: Duration = Duration::from_millis(100);

/// Where a reader is in a reply: after `Offset(n)` bytes of it (its thinking
/// first, then its content), or past its last event. The stream's event ids
/// are positions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    Offset(usize),
    End,
}

impl Position {
    /// `end`, or a byte offset (digits only).
    pub fn parse(text: &str) -> Result<Self, ChatError> {
        let text = text.trim();
        if text == "end" {
            return Ok(Position::End);
        }
        match text.parse::<usize>() {
            Ok(n) if text.bytes().all(|b| b.is_ascii_digit()) && n <= MAX_REPLY_BYTES => Ok(Position::Offset(n)),
            _ => Err(ChatError::BadPosition(format!(
                "a position is `end` or a byte offset from 0 to {MAX_REPLY_BYTES}, as the stream's event ids give"
            ))),
        }
    }

    /// The position as an event id.
    pub fn id(&self) -> String {
        match self {
            Position::Offset(n) => n.to_string(),
            Position::End => "end".to_owned(),
        }
    }
}

/// The owner's reply `message_id` in the session, as it reads now.
pub async fn locate_reply<S: MessageRepository>(
    store: &S,
    owner: &OwnerId,
    session_id: Uuid,
    message_id: Uuid,
) -> Result<Message, ChatError> {
    match store.find_message(owner, session_id, message_id).await? {
        Some(m) if m.role == Role::Assistant => Ok(m),
        _ => Err(ChatError::NotFound("reply")),
    }
}

/// Whether a reader at `after` can rejoin `reply`: a position past the text of
/// an ended reply (or inside a character) is unknown; `end` is only past an end.
pub fn check_position(reply: &Message, after: Position, now: Timestamp) -> Result<(), ChatError> {
    let live = reply.is_live(now);
    match after {
        Position::End if live => Err(ChatError::BadPosition("the reply has not ended yet".to_owned())),
        Position::Offset(n) if !live => after_position(n, 0, &reply.thinking, &reply.content).map(|_| ()),
        _ => Ok(()),
    }
}

/// What of a stretch of reply (its thinking, then its text, starting at
/// position `offset`) comes after position `sent`; an error when `sent` is
/// past the stretch or inside a character.
fn after_position<'a>(sent: usize, offset: usize, thinking: &'a str, text: &'a str) -> Result<(&'a str, &'a str), ChatError> {
    let skip = sent.saturating_sub(offset);
    let rest = if skip <= thinking.len() {
        thinking.get(skip..).map(|t| (t, text))
    } else {
        text.get(skip - thinking.len()..).map(|t| ("", t))
    };
    rest.ok_or_else(|| ChatError::BadPosition(format!("position {sent} is not in this reply")))
}

/// What a follower sees.
#[derive(Debug, Clone, PartialEq)]
pub enum Followed {
    /// More thinking, which ends at position `end` of the reply.
    Thinking { text: String, end: usize },
    /// More text, which ends at position `end` of the reply.
    Delta { text: String, end: usize },
    /// The reply ended (completed, cancelled, failed or abandoned), as stored.
    Ended(Message),
}

/// Hands `emit` the reply's text after `after` (a checked offset), then follows
/// the reply as its generator (any instance) stores it, until it ends. Stops
/// early when `emit` says the reader is gone.
pub async fn follow<S: MessageRepository>(
    store: &S,
    reply: &Message,
    after: usize,
    mut emit: impl FnMut(Followed) -> bool,
) -> Result<(), ChatError> {
    let (session_id, seq) = (reply.session_id, reply.seq);
    let mut sent = after;
    let mut next_part = 0;
    loop {
        let (stored, parts) = store.read_reply(session_id, seq, next_part).await?.ok_or(ChatError::NotFound("reply"))?;
        let now = Timestamp::now();
        if !stored.is_live(now) {
            // Ended; or abandoned (still `streaming`, its lease out): its text is in its log.
            let mut ended = match stored.status {
                MessageStatus::Streaming => store.get_message(session_id, seq).await?.ok_or(ChatError::NotFound("reply"))?,
                _ => stored,
            };
            ended.status = ended.effective_status(now);
            if emit_after(&mut emit, sent, 0, &ended.thinking, &ended.content)?.is_none() {
                return Ok(());
            }
            emit(Followed::Ended(ended));
            return Ok(());
        }
        for part in parts {
            next_part = part.index + 1;
            if part.offset + part.thinking.len() + part.text.len() <= sent {
                continue;
            }
            match emit_after(&mut emit, sent, part.offset, &part.thinking, &part.text)? {
                Some(end) => sent = end,
                None => return Ok(()),
            }
        }
        tokio::time::sleep(FOLLOW_POLL_INTERVAL).await;
    }
}

/// Hands `emit` what of a stretch of reply comes after `sent`: `Some(end of
/// the stretch)`, or `None` when `emit` says the reader is gone.
fn emit_after(
    emit: &mut impl FnMut(Followed) -> bool,
    sent: usize,
    offset: usize,
    thinking: &str,
    text: &str,
) -> Result<Option<usize>, ChatError> {
    let (new_thinking, new_text) = after_position(sent, offset, thinking, text)?;
    let thinking_end = offset + thinking.len();
    if !new_thinking.is_empty() && !emit(Followed::Thinking { text: new_thinking.to_owned(), end: thinking_end }) {
        return Ok(None);
    }
    let end = thinking_end + text.len();
    if !new_text.is_empty() && !emit(Followed::Delta { text: new_text.to_owned(), end }) {
        return Ok(None);
    }
    Ok(Some(end))
}

/// What a cancel found.
#[derive(Debug)]
pub enum Cancelled {
    /// The reply has ended (stopped by this cancel, or before it): as stored.
    Ended(Message),
    /// The stop was asked for, but the generator had not stored it within
    /// [`CANCEL_WAIT`]: the reply as it stands.
    Stopping(Message),
}

/// Asks the generator of reply `message_id` to stop, wherever it runs, and
/// waits a little for it to store the reply. Idempotent: a reply that has
/// ended is left as it is.
pub async fn cancel<S: MessageRepository>(
    store: &S,
    owner: &OwnerId,
    session_id: Uuid,
    message_id: Uuid,
) -> Result<Cancelled, ChatError> {
    let reply = locate_reply(store, owner, session_id, message_id).await?;
    if !reply.is_live(Timestamp::now()) || !store.request_cancel(session_id, reply.seq).await? {
        return Ok(Cancelled::Ended(as_read(store.get_message(session_id, reply.seq).await?.unwrap_or(reply))));
    }
    tracing::info!(reply_seq = reply.seq, "cancel requested");
    let waited = tokio::time::Instant::now();
    debug_assert!(CANCEL_WAIT > 2 * LEASE_RENEW_INTERVAL, "a silent generator notices within one renewal");
    loop {
        tokio::time::sleep(CANCEL_POLL).await;
        let now_stored = store.get_message(session_id, reply.seq).await?.ok_or(ChatError::NotFound("reply"))?;
        if !now_stored.is_live(Timestamp::now()) {
            return Ok(Cancelled::Ended(as_read(now_stored)));
        }
        if waited.elapsed() >= CANCEL_WAIT {
            return Ok(Cancelled::Stopping(now_stored));
        }
    }
}

/// Removes an exchange (the user message and reply `message_id`) from its
/// session; a reply still being written is stopped first.
pub async fn delete_exchange<S: MessageRepository>(
    store: &S,
    owner: &OwnerId,
    session_id: Uuid,
    message_id: Uuid,
) -> Result<(), ChatError> {
    let reply = match cancel(store, owner, session_id, message_id).await? {
        Cancelled::Ended(reply) => reply,
        Cancelled::Stopping(_) => return Err(ChatError::ReplyInProgress),
    };
    store.delete_exchange(session_id, reply.seq).await.map_err(|e| match e {
        crate::store::StoreError::ConditionFailed => ChatError::ReplyInProgress,
        other => other.into(),
    })
}

fn as_read(mut m: Message) -> Message {
    m.status = m.effective_status(Timestamp::now());
    m
}
