//! In-memory repositories for unit tests of the functions (feature `mocks`).
//! Integration tests use DynamoDB Local instead; this double only has to keep
//! the contracts the handlers rely on.

use std::collections::HashMap;
use std::sync::Mutex;

use uuid::Uuid;

use super::{ApiKeyRecord, ApiKeyRepository, Listed, SessionCursor, SessionRepository, StoreError, StoreProbe};
use crate::domain::{OwnerId, Session, Timestamp};

#[derive(Default)]
pub struct MemoryStore {
    sessions: Mutex<HashMap<Uuid, Session>>,
    keys: Mutex<HashMap<String, ApiKeyRecord>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl SessionRepository for MemoryStore {
    async fn create_session(&self, session: &Session) -> Result<(), StoreError> {
        let mut sessions = lock(&self.sessions);
        if sessions.contains_key(&session.id) {
            return Err(StoreError::ConditionFailed);
        }
        sessions.insert(session.id, session.clone());
        Ok(())
    }

    async fn get_session(&self, owner: &OwnerId, id: Uuid) -> Result<Session, StoreError> {
        lock(&self.sessions).get(&id).filter(|s| &s.owner == owner).cloned().ok_or(StoreError::NotFound)
    }

    async fn list_sessions(
        &self,
        owner: &OwnerId,
        limit: u32,
        after: Option<SessionCursor>,
    ) -> Result<Listed<Session, SessionCursor>, StoreError> {
        let mut mine: Vec<Session> = lock(&self.sessions).values().filter(|s| &s.owner == owner).cloned().collect();
        mine.sort_by(|a, b| (b.updated_at, b.id).cmp(&(a.updated_at, a.id)));
        if let Some(c) = after {
            mine.retain(|s| (s.updated_at, s.id) < (c.updated_at, c.id));
        }
        let more = mine.len() > limit as usize;
        mine.truncate(limit as usize);
        let next = more.then(|| mine.last().map(|s| SessionCursor { updated_at: s.updated_at, id: s.id })).flatten();
        Ok(Listed { items: mine, next })
    }

    async fn update_session(&self, session: &Session) -> Result<Session, StoreError> {
        let mut sessions = lock(&self.sessions);
        match sessions.get_mut(&session.id) {
            Some(stored) if stored.owner == session.owner => {
                *stored = session.clone();
                Ok(stored.clone())
            }
            _ => Err(StoreError::NotFound),
        }
    }

    async fn delete_session(&self, owner: &OwnerId, id: Uuid) -> Result<(), StoreError> {
        let mut sessions = lock(&self.sessions);
        match sessions.get(&id) {
            Some(s) if &s.owner == owner => {
                sessions.remove(&id);
                Ok(())
            }
            _ => Err(StoreError::NotFound),
        }
    }
}

impl ApiKeyRepository for MemoryStore {
    async fn put_api_key(&self, key: &ApiKeyRecord) -> Result<(), StoreError> {
        lock(&self.keys).insert(key.key_id.clone(), key.clone());
        Ok(())
    }

    async fn get_api_key(&self, key_id: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        Ok(lock(&self.keys).get(key_id).cloned())
    }

    async fn revoke_api_key(&self, key_id: &str, at: Timestamp) -> Result<(), StoreError> {
        let mut keys = lock(&self.keys);
        let key = keys.get_mut(key_id).ok_or(StoreError::NotFound)?;
        key.revoked_at.get_or_insert(at);
        Ok(())
    }
}

impl StoreProbe for MemoryStore {
    async fn probe(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
