//! Session use cases, independent of HTTP: what create, list, read, change
//! and delete mean for an owner.

use uuid::Uuid;

use crate::config::Config;
use crate::domain::{CreateSession, DEFAULT_TITLE, Message, Order, OwnerId, Page, Session, Timestamp, UpdateSession};
use crate::store::{MessageCursor, MessageRepository, SessionCursor, SessionRepository, StoreError};

/// Why a session operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// A field breaks a rule or a limit.
    #[error("{0}")]
    Invalid(String),
    /// A cursor that does not decode, or was made for another listing.
    #[error("{0}")]
    BadCursor(String),
    /// The model or an option is beyond what this deployment offers; names the limit.
    #[error("{0}")]
    NotAllowed(String),
    /// No such session for this owner.
    #[error("session not found")]
    NotFound,
    /// The session kept changing under a PATCH.
    #[error("the session kept changing; try again")]
    Busy,
    #[error(transparent)]
    Storage(StoreError),
}

impl From<StoreError> for SessionError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound => SessionError::NotFound,
            other => SessionError::Storage(other),
        }
    }
}

pub async fn create<R: SessionRepository>(
    repo: &R,
    config: &Config,
    owner: OwnerId,
    input: CreateSession,
) -> Result<Session, SessionError> {
    input.validate().map_err(|e| SessionError::Invalid(e.0))?;
    if let Some(model) = &input.model {
        config.check_model(model).map_err(SessionError::NotAllowed)?;
    }
    if let Some(options) = &input.options {
        config.check_options(options).map_err(SessionError::NotAllowed)?;
    }
    let now = Timestamp::now();
    let session = Session {
        id: Uuid::new_v4(),
        owner,
        title: input.title.unwrap_or_else(|| DEFAULT_TITLE.to_owned()),
        model: input.model.unwrap_or_else(|| config.default_model.clone()),
        system_prompt: input.system_prompt,
        options: input.options.unwrap_or_default(),
        metadata: input.metadata.unwrap_or_default(),
        created_at: now,
        updated_at: now,
        last_seq: 0,
        expires_at: config.session_ttl.map(|ttl| now.plus(ttl)),
    };
    repo.create_session(&session).await?;
    Ok(session)
}

pub async fn get<R: SessionRepository>(repo: &R, owner: &OwnerId, id: Uuid) -> Result<Session, SessionError> {
    Ok(repo.get_session(owner, id).await?)
}

pub async fn list<R: SessionRepository>(
    repo: &R,
    owner: &OwnerId,
    limit: u32,
    cursor: Option<&str>,
) -> Result<Page<Session>, SessionError> {
    let after = cursor.map(SessionCursor::decode).transpose().map_err(|e| SessionError::BadCursor(e.0))?;
    let listed = repo.list_sessions(owner, limit, after).await?;
    Ok(Page {
        items: listed.items,
        next_cursor: listed.next.map(|c| c.encode()),
    })
}

pub async fn update<R: SessionRepository>(
    repo: &R,
    config: &Config,
    owner: &OwnerId,
    id: Uuid,
    patch: UpdateSession,
) -> Result<Session, SessionError> {
    patch.validate().map_err(|e| SessionError::Invalid(e.0))?;
    // Only what the patch changes answers to the deployment's limits: a
    // session made before they tightened can still be renamed.
    if let Some(Some(model)) = &patch.model {
        config.check_model(model).map_err(SessionError::NotAllowed)?;
    }
    if let Some(Some(options)) = &patch.options {
        config.check_options(options).map_err(SessionError::NotAllowed)?;
    }
    // Read, apply, write if unchanged since the read: a concurrent change (another
    // PATCH, or a send moving updated_at) is re-read and the patch applied again,
    // so no change is lost. A session gone in between is a 404 at the next read.
    for _ in 0..UPDATE_ATTEMPTS {
        let mut session = get(repo, owner, id).await?;
        let read_at = session.updated_at;
        patch.apply(&mut session);
        session.updated_at = Timestamp::now().max(read_at.plus(std::time::Duration::from_millis(1)));
        match repo.update_session(&session, read_at).await {
            Err(StoreError::ConditionFailed) => continue,
            other => return Ok(other?),
        }
    }
    Err(SessionError::Busy)
}

/// How often a PATCH re-reads a session that changed under it before giving up.
const UPDATE_ATTEMPTS: usize = 5;

pub async fn delete<R: SessionRepository>(repo: &R, owner: &OwnerId, id: Uuid) -> Result<(), SessionError> {
    Ok(repo.delete_session(owner, id).await?)
}

/// A page of the session's history. A cursor is bound to the order it was made for.
pub async fn history<R: SessionRepository + MessageRepository>(
    repo: &R,
    owner: &OwnerId,
    id: Uuid,
    order: Order,
    limit: u32,
    cursor: Option<&str>,
) -> Result<Page<Message>, SessionError> {
    let after = match cursor.map(MessageCursor::decode).transpose().map_err(|e| SessionError::BadCursor(e.0))? {
        Some(c) if c.order != order => {
            return Err(SessionError::BadCursor("cursor was made for the other order".to_owned()));
        }
        Some(c) => Some(c.seq),
        None => None,
    };
    get(repo, owner, id).await?;
    let listed = repo.list_messages(id, order, limit, after).await?;
    Ok(Page {
        items: listed.items,
        next_cursor: listed.next.map(|seq| MessageCursor { seq, order }.encode()),
    })
}
