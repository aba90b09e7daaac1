//! Session use cases, independent of HTTP: what create, list, read, change
//! and delete mean for an owner.

use std::time::Duration;

use uuid::Uuid;

use crate::config::Config;
use crate::domain::{CreateSession, DEFAULT_TITLE, Message, Order, OwnerId, Page, Session, Timestamp, UpdateSession};
use crate::store::{BUSY_ATTEMPTS, MessageCursor, MessageRepository, SessionCursor, SessionRepository, StoreError, back_off, retry_on_conflict};

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
    for attempt in 0..BUSY_ATTEMPTS {
        let mut session = get(repo, owner, id).await?;
        let read_at = session.updated_at;
        patch.apply(&mut session);
        session.updated_at = Timestamp::now().max(read_at.plus(std::time::Duration::from_millis(1)));
        match repo.update_session(&session, read_at).await {
            Err(StoreError::ConditionFailed) => continue,
            Err(StoreError::Conflict) => back_off(attempt).await,
            other => return Ok(other?),
        }
    }
    Err(SessionError::Busy)
}

/// Deletes the session for every reader at once (a read, a send or a list
/// that comes after finds it gone) and queues its items for [`purge`], which
/// the caller runs after answering.
pub async fn delete<R: SessionRepository>(repo: &R, owner: &OwnerId, id: Uuid) -> Result<(), SessionError> {
    match retry_on_conflict(|| repo.delete_session(owner, id)).await {
        Err(StoreError::Conflict) => Err(SessionError::Busy),
        other => Ok(other?),
    }
}

/// How long one invocation goes on purging deleted sessions after its
/// response: well inside the sessions function's timeout (60 s in
/// template.yaml), so a purge stops between batches rather than being cut.
pub const PURGE_BUDGET: Duration = Duration::from_secs(40);
/// A deleted session still queued this long after its DELETE lost its purge
/// (the invocation ran out of budget or died): the next purge run takes it over.
pub const PURGE_STALE_AFTER: Duration = Duration::from_secs(120);
/// How many such sessions one purge run takes over, after its own.
pub const PURGE_TAKEOVER_MAX: u32 = 10;

/// What is left to do after a DELETE's answer: remove the deleted session's
/// items, then those of sessions whose purge did not finish, within
/// [`PURGE_BUDGET`]. A failure is logged and left to a later run: the session
/// stays gone for readers, and stays in the queue until it is purged.
pub async fn purge<R: SessionRepository>(repo: &R, deleted: Uuid) {
    let deadline = tokio::time::Instant::now() + PURGE_BUDGET;
    let stale_before = Timestamp::now().minus(PURGE_STALE_AFTER);
    let mut ids = vec![deleted];
    match repo.unfinished_purges(stale_before, PURGE_TAKEOVER_MAX).await {
        Ok(left) => ids.extend(left.into_iter().filter(|id| *id != deleted)),
        Err(e) => tracing::warn!(error = %crate::telemetry::error_chain(&e), "could not read the purge queue"),
    }
    for id in ids {
        let budget = deadline.saturating_duration_since(tokio::time::Instant::now());
        match repo.purge_session(id, budget).await {
            Ok(true) => tracing::info!(session_id = %id, "deleted session purged"),
            Ok(false) => {
                tracing::info!(session_id = %id, "purge budget used up; a later run goes on");
                return;
            }
            Err(e) => tracing::warn!(session_id = %id, error = %crate::telemetry::error_chain(&e), "purge failed; a later run goes on"),
        }
    }
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use aws_sdk_dynamodb::types::AttributeValue;

    use super::*;
    use crate::chat::{self, ChatError};
    use crate::domain::SendMessage;
    use crate::store::dynamo::DynamoStore;
    use crate::store::dynamo::schema::{SESSION_META_SK, session_pk};
    use crate::store::{Listed, MessageRepository, QuotaRepository};
    use crate::testing::{app_on_fresh_table, new_session, recording};

    fn alice() -> OwnerId {
        OwnerId::parse("alice").unwrap()
    }

    /// Every item under the session's partition, read strongly consistently.
    async fn partition(store: &DynamoStore, id: Uuid) -> Vec<String> {
        let mut keys = Vec::new();
        let mut start = None;
        loop {
            let out = store
                .client()
                .query()
                .table_name(store.table())
                .key_condition_expression("PK = :pk")
                .expression_attribute_values(":pk", AttributeValue::S(session_pk(id)))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .unwrap();
            keys.extend(out.items().iter().map(|i| i["SK"].as_s().unwrap().clone()));
            match out.last_evaluated_key {
                Some(k) => start = Some(k),
                None => return keys,
            }
        }
    }

    /// `count` items under the session, of every kind a session holds.
    async fn fill(store: &DynamoStore, id: Uuid, count: usize) {
        for n in 0..count {
            let sk = match n % 3 {
                0 => format!("MSG#{n:020}"),
                1 => format!("LOG#{n:020}#{:010}", 0),
                _ => format!("IDEM#key-{n}"),
            };
            store
                .client()
                .put_item()
                .table_name(store.table())
                .item("PK", AttributeValue::S(session_pk(id)))
                .item("SK", AttributeValue::S(sk))
                .item("content", AttributeValue::S("hello".into()))
                .send()
                .await
                .unwrap();
        }
    }

    #[tokio::test]
    async fn a_delete_hides_the_session_at_once_and_leaves_the_items_to_its_purge() {
        let app = app_on_fresh_table(&[]).await;
        let session = new_session(&app, "alice").await;
        let kept = new_session(&app, "alice").await;
        fill(&app.store, session.id, 130).await;

        delete(&app.store, &alice(), session.id).await.unwrap();
        // Gone for every reader at once…
        assert!(matches!(get(&app.store, &alice(), session.id).await, Err(SessionError::NotFound)));
        let listed = list(&app.store, &alice(), 10, None).await.unwrap();
        assert_eq!(listed.items.iter().map(|s| s.id).collect::<Vec<_>>(), [kept.id]);
        let send = SendMessage { content: "hi".into(), client_message_id: None, options: None, turn: Default::default() };
        let reads = chat::read_for_send(&app.store, &app.config, session.id).await;
        let sent = chat::begin(&app.store, &crate::testing::ScriptedModel::default(), &app.config, &alice(), reads, send).await;
        assert!(matches!(sent, Err(ChatError::NotFound(_))), "a send after the DELETE: {sent:?}");
        assert!(matches!(delete(&app.store, &alice(), session.id).await, Err(SessionError::NotFound)));
        // …while the request itself removed nothing: that is the purge's work.
        assert_eq!(partition(&app.store, session.id).await.len(), 131);
        let queued = app.store.unfinished_purges(Timestamp::now().plus(Duration::from_secs(1)), 10).await.unwrap();
        assert_eq!(queued, [session.id]);

        purge(&app.store, session.id).await;
        assert!(partition(&app.store, session.id).await.is_empty(), "no item of the deleted session is left");
        assert!(app.store.unfinished_purges(Timestamp::now().plus(Duration::from_secs(1)), 10).await.unwrap().is_empty());
        assert_eq!(partition(&app.store, kept.id).await, [SESSION_META_SK]);
    }

    #[tokio::test]
    async fn a_purge_that_ran_out_of_time_is_finished_by_a_later_one() {
        let app = app_on_fresh_table(&[]).await;
        let (first, second) = (new_session(&app, "alice").await, new_session(&app, "alice").await);
        fill(&app.store, first.id, 30).await;
        delete(&app.store, &alice(), first.id).await.unwrap();
        // Its invocation ended before any of the work was done.
        assert!(!app.store.purge_session(first.id, Duration::ZERO).await.unwrap());
        assert_eq!(partition(&app.store, first.id).await.len(), 31);

        // Once it is stale, the next DELETE's purge takes it over.
        let later = Timestamp::now().plus(PURGE_STALE_AFTER + Duration::from_secs(1));
        assert_eq!(app.store.unfinished_purges(later, PURGE_TAKEOVER_MAX).await.unwrap(), [first.id]);
        delete(&app.store, &alice(), second.id).await.unwrap();
        mark_deleted_long_ago(&app.store, first.id).await;
        purge(&app.store, second.id).await;
        assert!(partition(&app.store, first.id).await.is_empty());
        assert!(partition(&app.store, second.id).await.is_empty());
    }

    /// Moves a queued session's place in the purge queue back in time.
    async fn mark_deleted_long_ago(store: &DynamoStore, id: Uuid) {
        store
            .client()
            .update_item()
            .table_name(store.table())
            .key("PK", AttributeValue::S(session_pk(id)))
            .key("SK", AttributeValue::S(SESSION_META_SK.into()))
            .update_expression("SET GSI1SK = :at")
            .expression_attribute_values(":at", AttributeValue::S(format!("2000-01-01T00:00:00.000Z#{id}")))
            .send()
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn the_purge_and_the_history_read_strongly_consistently() {
        let app = app_on_fresh_table(&[]).await;
        let session = new_session(&app, "alice").await;
        let (store, sent) = recording(&app.store);

        store.list_messages(session.id, crate::domain::Order::Asc, 50, None).await.unwrap();
        history(&store, &alice(), session.id, crate::domain::Order::Desc, 50, None).await.unwrap();
        let reads = sent.of("Query");
        assert_eq!(reads.len(), 2);
        for query in &reads {
            assert_eq!(query["ConsistentRead"], true, "a history read right after a 201 must see it: {query}");
        }

        sent.clear();
        let today = Timestamp::now().day();
        store.ledger(&alice(), &today, &today).await.unwrap();
        for query in sent.of("Query") {
            assert_eq!(query["ConsistentRead"], true, "GET /usage right after a reply must count it: {query}");
        }

        sent.clear();
        delete(&store, &alice(), session.id).await.unwrap();
        purge(&store, session.id).await;
        let purge_reads: Vec<_> = sent.of("Query").into_iter().filter(|q| q.get("IndexName").is_none()).collect();
        assert!(!purge_reads.is_empty());
        for query in &purge_reads {
            assert_eq!(query["ConsistentRead"], true, "a purge must see every exchange stored before the DELETE: {query}");
        }
        assert!(partition(&app.store, session.id).await.is_empty());
    }

    /// The DynamoDB store, whose PATCH and DELETE writes first meet `conflicts`
    /// transactions in flight (DynamoDB Local serialises transactions instead).
    struct Conflicting {
        inner: DynamoStore,
        conflicts: AtomicU32,
    }

    impl Conflicting {
        fn conflict(&self) -> bool {
            self.conflicts.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1)).is_ok()
        }
    }

    impl SessionRepository for Conflicting {
        async fn create_session(&self, session: &Session) -> Result<(), StoreError> {
            self.inner.create_session(session).await
        }
        async fn get_session(&self, owner: &OwnerId, id: Uuid) -> Result<Session, StoreError> {
            self.inner.get_session(owner, id).await
        }
        async fn list_sessions(&self, owner: &OwnerId, limit: u32, after: Option<SessionCursor>) -> Result<Listed<Session, SessionCursor>, StoreError> {
            self.inner.list_sessions(owner, limit, after).await
        }
        async fn update_session(&self, session: &Session, read_at: Timestamp) -> Result<Session, StoreError> {
            if self.conflict() {
                return Err(StoreError::Conflict);
            }
            self.inner.update_session(session, read_at).await
        }
        async fn delete_session(&self, owner: &OwnerId, id: Uuid) -> Result<(), StoreError> {
            if self.conflict() {
                return Err(StoreError::Conflict);
            }
            self.inner.delete_session(owner, id).await
        }
        async fn purge_session(&self, id: Uuid, budget: Duration) -> Result<bool, StoreError> {
            self.inner.purge_session(id, budget).await
        }
        async fn unfinished_purges(&self, before: Timestamp, limit: u32) -> Result<Vec<Uuid>, StoreError> {
            self.inner.unfinished_purges(before, limit).await
        }
    }

    #[tokio::test]
    async fn a_patch_or_delete_meeting_a_transaction_tries_again_then_answers_busy() {
        let app = app_on_fresh_table(&[]).await;
        let session = new_session(&app, "alice").await;
        let store = Conflicting { inner: app.store.clone(), conflicts: AtomicU32::new(BUSY_ATTEMPTS - 1) };
        let rename = || UpdateSession { title: Some(Some("renamed".into())), ..Default::default() };

        let renamed = update(&store, &app.config, &alice(), session.id, rename()).await.unwrap();
        assert_eq!(renamed.title, "renamed");
        store.conflicts.store(BUSY_ATTEMPTS, Ordering::Release);
        assert!(matches!(update(&store, &app.config, &alice(), session.id, rename()).await, Err(SessionError::Busy)));

        store.conflicts.store(BUSY_ATTEMPTS, Ordering::Release);
        assert!(matches!(delete(&store, &alice(), session.id).await, Err(SessionError::Busy)));
        assert!(get(&store, &alice(), session.id).await.is_ok(), "a refused DELETE deleted nothing");
        store.conflicts.store(BUSY_ATTEMPTS - 1, Ordering::Release);
        delete(&store, &alice(), session.id).await.unwrap();
        assert!(matches!(get(&store, &alice(), session.id).await, Err(SessionError::NotFound)));
    }
}
