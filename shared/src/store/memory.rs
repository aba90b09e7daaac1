//! In-memory repositories for unit tests of the functions (feature `mocks`).
//! Integration tests use DynamoDB Local instead; this double only has to keep
//! the contracts the handlers rely on.

use std::collections::HashMap;
use std::sync::Mutex;

use uuid::Uuid;

use super::{
    ApiKeyRecord, ApiKeyRepository, BeginError, IdempotencyRecord, Listed, MessageRepository, SendState, SessionCursor,
    SessionRepository, StoreError, StoreProbe,
};
use crate::domain::{Message, MessageStatus, Order, OwnerId, Session, Timestamp};

#[derive(Default)]
pub struct MemoryStore {
    sessions: Mutex<HashMap<Uuid, Session>>,
    keys: Mutex<HashMap<String, ApiKeyRecord>>,
    messages: Mutex<HashMap<(Uuid, u64), Message>>,
    idempotency: Mutex<HashMap<(Uuid, String), IdempotencyRecord>>,
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

    async fn update_session(&self, session: &Session, read_at: Timestamp) -> Result<Session, StoreError> {
        let mut sessions = lock(&self.sessions);
        match sessions.get_mut(&session.id) {
            Some(stored) if stored.owner == session.owner && stored.updated_at != read_at => {
                Err(StoreError::ConditionFailed)
            }
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

impl MessageRepository for MemoryStore {
    async fn load_for_send(&self, owner: &OwnerId, session_id: Uuid, window: usize) -> Result<SendState, StoreError> {
        let session = self.get_session(owner, session_id).await?;
        let mut recent: Vec<Message> =
            lock(&self.messages).values().filter(|m| m.session_id == session_id).cloned().collect();
        recent.sort_by(|a, b| b.seq.cmp(&a.seq));
        let older_exist = recent.len() > window;
        recent.truncate(window);
        Ok(SendState { session, recent, older_exist })
    }

    async fn begin_exchange(
        &self,
        session: &Session,
        expected_seq: u64,
        user: &Message,
        reply: &Message,
        idempotency: Option<&IdempotencyRecord>,
    ) -> Result<(), BeginError> {
        let mut sessions = lock(&self.sessions);
        let mut idem = lock(&self.idempotency);
        if let Some(record) = idempotency {
            if idem.contains_key(&(session.id, record.client_message_id.clone())) {
                return Err(BeginError::Duplicate);
            }
        }
        let stored = sessions.get_mut(&session.id).ok_or(BeginError::Store(StoreError::NotFound))?;
        if stored.last_seq != expected_seq {
            return Err(BeginError::Busy);
        }
        stored.last_seq = reply.seq;
        stored.updated_at = user.created_at;
        let mut messages = lock(&self.messages);
        messages.insert((session.id, user.seq), user.clone());
        messages.insert((session.id, reply.seq), reply.clone());
        if let Some(record) = idempotency {
            idem.insert((session.id, record.client_message_id.clone()), record.clone());
        }
        Ok(())
    }

    async fn get_idempotency(&self, session_id: Uuid, client_message_id: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        Ok(lock(&self.idempotency).get(&(session_id, client_message_id.to_owned())).cloned())
    }

    async fn get_message(&self, session_id: Uuid, seq: u64) -> Result<Option<Message>, StoreError> {
        Ok(lock(&self.messages).get(&(session_id, seq)).cloned())
    }

    async fn checkpoint_reply(&self, reply: &Message) -> Result<(), StoreError> {
        let mut messages = lock(&self.messages);
        match messages.get_mut(&(reply.session_id, reply.seq)) {
            Some(stored) if stored.status == MessageStatus::Streaming => {
                stored.content = reply.content.clone();
                stored.lease_until = reply.lease_until;
                Ok(())
            }
            _ => Err(StoreError::ConditionFailed),
        }
    }

    async fn finish_reply(&self, reply: &Message) -> Result<(), StoreError> {
        let mut messages = lock(&self.messages);
        match messages.get_mut(&(reply.session_id, reply.seq)) {
            Some(stored) if stored.status == MessageStatus::Streaming => {
                *stored = Message { lease_until: None, ..reply.clone() };
                Ok(())
            }
            _ => Err(StoreError::ConditionFailed),
        }
    }

    async fn list_messages(
        &self,
        session_id: Uuid,
        order: Order,
        limit: u32,
        after_seq: Option<u64>,
    ) -> Result<Listed<Message, u64>, StoreError> {
        let mut items: Vec<Message> = lock(&self.messages)
            .values()
            .filter(|m| m.session_id == session_id)
            .filter(|m| match (order, after_seq) {
                (_, None) => true,
                (Order::Asc, Some(after)) => m.seq > after,
                (Order::Desc, Some(after)) => m.seq < after,
            })
            .cloned()
            .collect();
        items.sort_by_key(|m| m.seq);
        if order == Order::Desc {
            items.reverse();
        }
        let more = items.len() > limit as usize;
        items.truncate(limit as usize);
        let next = if more { items.last().map(|m| m.seq) } else { None };
        Ok(Listed { items, next })
    }
}
