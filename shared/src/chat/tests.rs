//! The chat use case against a scripted in-process model and DynamoDB Local:
//! what is stored, what the model is asked, the reply-size cut-off and the
//! checkpoint cadence.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::*;
use crate::App;
use crate::domain::limits::MAX_REPLY_BYTES;
use crate::domain::{ErrorCode, MessageStatus, Order, OwnerId, Role, SendMessage, Session};
use crate::llm::{ChatEvent, Completion};
use crate::store::dynamo::DynamoStore;
use crate::store::{BeginError, IdempotencyRecord, Listed, MessageRepository, SendState};
use crate::testing::{ScriptedModel, Step, app_on_fresh_table, new_session};

fn send(content: &str) -> SendMessage {
    SendMessage { content: content.to_owned(), client_message_id: None, options: None }
}

fn delta(text: &str) -> Step {
    Step::Event(ChatEvent::Delta(text.to_owned()))
}

fn done() -> Step {
    Step::Event(ChatEvent::Done(Completion { done_reason: Some("stop".to_owned()), ..Completion::default() }))
}

async fn fixture() -> (App, OwnerId, Session) {
    let app = app_on_fresh_table(&[]).await;
    let session = new_session(&app, "alice").await;
    (app, OwnerId::parse("alice").unwrap(), session)
}

async fn begin_new(app: &App, owner: &OwnerId, session: &Session, content: &str) -> Pending {
    match begin(&app.store, &app.config, owner, session.id, send(content)).await.expect("begun") {
        Begun::New(pending) => pending,
        Begun::Replay { .. } => panic!("a first send is not a replay"),
    }
}

async fn stored(app: &App, session: &Session) -> Vec<crate::domain::Message> {
    app.store.list_messages(session.id, Order::Asc, 100, None).await.unwrap().items
}

#[tokio::test]
async fn the_exchange_is_stored_before_the_model_and_the_reply_after_it() {
    let (app, owner, session) = fixture().await;
    let pending = begin_new(&app, &owner, &session, "Hi there").await;
    let before = stored(&app, &session).await;
    assert_eq!(before.len(), 2, "user message and reply placeholder stored before the model is called");
    assert_eq!(before[1].status, MessageStatus::Streaming);

    let model = ScriptedModel::new(vec![delta("Hel"), delta("lo"), done()]);
    let mut seen = Vec::new();
    let generated = generate(&app.store, &model, &app.config, pending, |d| seen.push(d.to_owned())).await;
    assert_eq!(seen, ["Hel", "lo"]);
    assert!(generated.problem().is_none());

    let after = stored(&app, &session).await;
    assert_eq!((after[1].content.as_str(), after[1].status), ("Hello", MessageStatus::Complete));
    assert_eq!(after[1].done_reason.as_deref(), Some("stop"));
    let asked = &model.requests()[0];
    assert_eq!(asked.model, session.model);
    assert_eq!(asked.messages.last().map(|t| (t.role, t.content.as_str())), Some((Role::User, "Hi there")));
    assert_eq!(asked.options.num_ctx, Some(app.config.context_tokens), "the context budget is sent to the model");
    assert_eq!(asked.options.num_predict, Some(app.config.max_reply_tokens), "replies are bounded by default");
}

#[tokio::test]
async fn a_reply_reaching_the_size_limit_ends_there_as_a_length_stop() {
    let (app, owner, session) = fixture().await;
    let piece = "x".repeat(10 * 1024);
    let mut script: Vec<Step> = (0..40).map(|_| delta(&piece)).collect();
    script.push(done());
    let model = ScriptedModel::new(script);
    let pending = begin_new(&app, &owner, &session, "write a lot").await;
    let generated = generate(&app.store, &model, &app.config, pending, |_| {}).await;

    assert_eq!(generated.reply.content.len(), MAX_REPLY_BYTES, "cut at the first delta reaching the limit");
    assert_eq!(generated.reply.done_reason.as_deref(), Some("length"));
    assert_eq!(model.dropped_early(), 1, "the model's stream is let go at the limit");
    let reply = &stored(&app, &session).await[1];
    assert_eq!((reply.content.len(), reply.status), (MAX_REPLY_BYTES, MessageStatus::Complete));
}

#[tokio::test]
async fn a_model_failure_keeps_the_text_so_far_with_its_code() {
    let (app, owner, session) = fixture().await;
    let model = ScriptedModel::new(vec![delta("partial "), Step::Fail(crate::llm::LlmError::Failed("boom".into()))]);
    let pending = begin_new(&app, &owner, &session, "hi").await;
    let generated = generate(&app.store, &model, &app.config, pending, |_| {}).await;
    assert!(matches!(generated.problem(), Some(ChatError::Llm(_))));
    assert!(generated.text_saved());
    let reply = &stored(&app, &session).await[1];
    assert_eq!((reply.content.as_str(), reply.status), ("partial ", MessageStatus::Failed));
    assert_eq!(reply.error_code, Some(ErrorCode::LlmError));
}

#[tokio::test]
async fn a_second_send_during_a_reply_is_refused_and_a_retry_replays() {
    let (app, owner, session) = fixture().await;
    let _pending = begin_new(&app, &owner, &session, "first").await;
    let refused = begin(&app.store, &app.config, &owner, session.id, send("second")).await;
    assert!(matches!(refused, Err(ChatError::ReplyInProgress)), "{refused:?}");

    let other = new_session(&app, "alice").await;
    let keyed = SendMessage { client_message_id: Some("k-1".into()), ..send("once") };
    let Begun::New(pending) = begin(&app.store, &app.config, &owner, other.id, keyed.clone()).await.unwrap() else {
        panic!("a first send is new");
    };
    generate(&app.store, &ScriptedModel::new(vec![delta("ok"), done()]), &app.config, pending, |_| {}).await;
    match begin(&app.store, &app.config, &owner, other.id, keyed).await.unwrap() {
        Begun::Replay { user, reply } => assert_eq!((user.content.as_str(), reply.content.as_str()), ("once", "ok")),
        Begun::New(_) => panic!("a retry must not reach the model again"),
    }
    let reused = SendMessage { client_message_id: Some("k-1".into()), ..send("something else") };
    assert!(matches!(
        begin(&app.store, &app.config, &owner, other.id, reused).await,
        Err(ChatError::IdempotencyKeyReused)
    ));
}

/// The DynamoDB store, with the time of every checkpoint write noted.
struct CheckpointClock {
    inner: DynamoStore,
    at: Arc<Mutex<Vec<Instant>>>,
}

impl MessageRepository for CheckpointClock {
    async fn load_for_send(&self, owner: &OwnerId, id: Uuid, window: usize) -> Result<SendState, StoreError> {
        self.inner.load_for_send(owner, id, window).await
    }
    async fn begin_exchange(
        &self,
        session: &Session,
        expected_seq: u64,
        user: &crate::domain::Message,
        reply: &crate::domain::Message,
        idempotency: Option<&IdempotencyRecord>,
    ) -> Result<(), BeginError> {
        self.inner.begin_exchange(session, expected_seq, user, reply, idempotency).await
    }
    async fn get_idempotency(&self, id: Uuid, key: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        self.inner.get_idempotency(id, key).await
    }
    async fn get_message(&self, id: Uuid, seq: u64) -> Result<Option<crate::domain::Message>, StoreError> {
        self.inner.get_message(id, seq).await
    }
    async fn checkpoint_reply(&self, reply: &crate::domain::Message) -> Result<(), StoreError> {
        self.at.lock().unwrap().push(Instant::now());
        self.inner.checkpoint_reply(reply).await
    }
    async fn finish_reply(&self, reply: &crate::domain::Message) -> Result<(), StoreError> {
        self.inner.finish_reply(reply).await
    }
    async fn list_messages(
        &self,
        id: Uuid,
        order: Order,
        limit: u32,
        after: Option<u64>,
    ) -> Result<Listed<crate::domain::Message, u64>, StoreError> {
        self.inner.list_messages(id, order, limit, after).await
    }
}

#[tokio::test]
async fn checkpoints_come_at_most_once_per_interval_while_tokens_flow() {
    let (app, owner, session) = fixture().await;
    let tick = Duration::from_millis(100);
    let mut script = Vec::new();
    for i in 0..45 {
        script.push(Step::Pause(tick));
        script.push(delta(&format!("{i} ")));
    }
    script.push(done());
    let store = CheckpointClock { inner: app.store.clone(), at: Arc::default() };
    let pending = begin_new(&app, &owner, &session, "count slowly").await;
    let started = Instant::now();
    let generated = generate(&store, &ScriptedModel::new(script), &app.config, pending, |_| {}).await;
    let elapsed = started.elapsed();
    assert!(generated.problem().is_none());

    let at = store.at.lock().unwrap().clone();
    assert!(!at.is_empty(), "a reply longer than the interval is checkpointed ({elapsed:?})");
    assert!(at.len() as u128 <= elapsed.as_millis() / CHECKPOINT_INTERVAL.as_millis(), "{} in {elapsed:?}", at.len());
    let mut previous = started;
    for t in at {
        assert!(t - previous >= CHECKPOINT_INTERVAL, "checkpoints {:?} apart", t - previous);
        previous = t;
    }
}
