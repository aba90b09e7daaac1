//! Persistence: the repository traits the domain asks for, and their
//! DynamoDB implementation over the single-table layout in [`schema`].

use std::future::Future;

use uuid::Uuid;

use crate::domain::{OwnerId, Session, Timestamp};

pub mod cursor;
pub mod dynamo;
#[cfg(any(test, feature = "mocks"))]
pub mod memory;
pub mod schema;

pub use cursor::SessionCursor;
pub use dynamo::DynamoStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No such item, or it belongs to another owner: callers cannot tell the two apart.
    #[error("not found")]
    NotFound,
    /// A conditional write lost a race or found the item already there.
    #[error("condition failed")]
    ConditionFailed,
    /// DynamoDB could not be reached or refused the request.
    #[error("storage request failed: {0}")]
    Unavailable(String),
    /// An item in the table does not have the shape this code writes.
    #[error("stored item is malformed: {0}")]
    Corrupt(String),
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

    /// Writes the editable fields of `session` and its new `updated_at`; returns the stored session.
    fn update_session(&self, session: &Session) -> impl Future<Output = Result<Session, StoreError>> + Send;

    /// Removes the session and everything stored under it.
    fn delete_session(&self, owner: &OwnerId, id: Uuid) -> impl Future<Output = Result<(), StoreError>> + Send;
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

/// Everything a function may need from the store.
pub trait Store: SessionRepository + ApiKeyRepository + StoreProbe {}
impl<T: SessionRepository + ApiKeyRepository + StoreProbe> Store for T {}
