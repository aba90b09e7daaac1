//! Session use cases, independent of HTTP: what create, list, read, change
//! and delete mean for an owner.

use uuid::Uuid;

use crate::config::Config;
use crate::domain::{
    CreateSession, DEFAULT_TITLE, MessageView, Order, OwnerId, Page, Session, SessionView, Timestamp, UpdateSession,
};
use crate::error::{ApiError, ProblemCode};
use crate::store::{MessageCursor, MessageRepository, SessionCursor, SessionRepository, StoreError};

fn session_error(err: StoreError) -> ApiError {
    match err {
        StoreError::NotFound => ApiError::NotFound("session"),
        other => ApiError::from(other),
    }
}

pub async fn create<R: SessionRepository>(
    repo: &R,
    config: &Config,
    owner: OwnerId,
    input: CreateSession,
) -> Result<Session, ApiError> {
    input.validate().map_err(|e| ApiError::Unprocessable(e.0))?;
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
    repo.create_session(&session).await.map_err(session_error)?;
    Ok(session)
}

pub async fn get<R: SessionRepository>(repo: &R, owner: &OwnerId, id: Uuid) -> Result<Session, ApiError> {
    repo.get_session(owner, id).await.map_err(session_error)
}

pub async fn list<R: SessionRepository>(
    repo: &R,
    owner: &OwnerId,
    limit: u32,
    cursor: Option<&str>,
) -> Result<Page<SessionView>, ApiError> {
    let after = cursor.map(SessionCursor::decode).transpose().map_err(|e| ApiError::BadRequest(e.0))?;
    let listed = repo.list_sessions(owner, limit, after).await.map_err(session_error)?;
    Ok(Page {
        items: listed.items.iter().map(SessionView::from).collect(),
        next_cursor: listed.next.map(|c| c.encode()),
    })
}

pub async fn update<R: SessionRepository>(
    repo: &R,
    owner: &OwnerId,
    id: Uuid,
    patch: UpdateSession,
) -> Result<Session, ApiError> {
    patch.validate().map_err(|e| ApiError::Unprocessable(e.0))?;
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
            other => return other.map_err(session_error),
        }
    }
    Err(ApiError::Conflict(ProblemCode::SessionBusy, "the session kept changing; try again".to_owned()))
}

/// How often a PATCH re-reads a session that changed under it before giving up.
const UPDATE_ATTEMPTS: usize = 5;

pub async fn delete<R: SessionRepository>(repo: &R, owner: &OwnerId, id: Uuid) -> Result<(), ApiError> {
    repo.delete_session(owner, id).await.map_err(session_error)
}

/// A page of the session's history. A cursor is bound to the order it was made for.
pub async fn history<R: SessionRepository + MessageRepository>(
    repo: &R,
    owner: &OwnerId,
    id: Uuid,
    order: Order,
    limit: u32,
    cursor: Option<&str>,
) -> Result<Page<MessageView>, ApiError> {
    let after = match cursor.map(MessageCursor::decode).transpose().map_err(|e| ApiError::BadRequest(e.0))? {
        Some(c) if c.order != order => {
            return Err(ApiError::BadRequest("cursor was made for the other order".to_owned()));
        }
        Some(c) => Some(c.seq),
        None => None,
    };
    get(repo, owner, id).await?;
    let listed = repo.list_messages(id, order, limit, after).await.map_err(session_error)?;
    let now = Timestamp::now();
    Ok(Page {
        items: listed.items.iter().map(|m| MessageView::new(m, now)).collect(),
        next_cursor: listed.next.map(|seq| MessageCursor { seq, order }.encode()),
    })
}
