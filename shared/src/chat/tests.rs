//! The chat use case against a scripted in-process model and DynamoDB Local:
//! what is stored, what the model is asked, the reply-size cut-off and the
//! checkpoint cadence.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use uuid::Uuid;

use super::*;
use crate::App;
use crate::domain::limits::MAX_REPLY_BYTES;
use crate::domain::{ErrorCode, MessageStatus, Order, OwnerId, Role, SendMessage, Session};
use crate::llm::{ChatEvent, Completion};
use crate::domain::Message;
use crate::store::dynamo::DynamoStore;
use crate::domain::QuotaOverride;
use crate::store::{
    BeginError, IdempotencyRecord, Listed, LogPart, MessageRepository, QuotaClaim, QuotaRepository, QuotaUse, SendState, Settlement,
    StoreError,
};
use crate::testing::{ScriptedModel, ScriptedStream, Step, app_on_fresh_table, new_session};

fn send(content: &str) -> SendMessage {
    SendMessage { content: content.to_owned(), client_message_id: None, options: None, turn: Default::default() }
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

/// A send as the HTTP layer makes it: its reads, then `begin`, which calls `model`.
async fn send_with<S: MessageRepository + QuotaRepository>(
    store: &S,
    model: &ScriptedModel,
    config: &crate::config::Config,
    owner: &OwnerId,
    session_id: Uuid,
    input: SendMessage,
) -> Result<Begun<ScriptedStream>, ChatError> {
    let reads = read_for_send(store, config, session_id).await;
    begin(store, model, config, owner, reads, input).await
}

/// A model for sends that are refused, or whose reply is never generated.
fn unused() -> ScriptedModel {
    ScriptedModel::default()
}

fn says_ok() -> ScriptedModel {
    ScriptedModel::new(vec![delta("ok"), done()])
}

async fn begin_new(app: &App, model: &ScriptedModel, owner: &OwnerId, session: &Session, content: &str) -> Pending<ScriptedStream> {
    match send_with(&app.store, model, &app.config, owner, session.id, send(content)).await.expect("begun") {
        Begun::New(pending) => pending,
        Begun::Replay { .. } => panic!("a first send is not a replay"),
    }
}

async fn stored(app: &App, session: &Session) -> Vec<Message> {
    app.store.list_messages(session.id, Order::Asc, 100, None).await.unwrap().items
}

#[tokio::test]
async fn the_exchange_is_stored_before_the_model_and_the_reply_after_it() {
    let (app, owner, session) = fixture().await;
    let model = ScriptedModel::new(vec![delta("Hel"), delta("lo"), done()]);
    let pending = begin_new(&app, &model, &owner, &session, "Hi there").await;
    let before = stored(&app, &session).await;
    assert_eq!(before.len(), 2, "user message and reply placeholder stored before any of the reply is read");
    assert_eq!(before[1].status, MessageStatus::Streaming);

    let mut seen = Vec::new();
    let generated = generate(&app.store, &app.config, pending, |d| {
        if let Delta::Content(d) = d {
            seen.push(d.to_owned())
        }
    })
    .await;
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
    let pending = begin_new(&app, &model, &owner, &session, "write a lot").await;
    let generated = generate(&app.store, &app.config, pending, |_| {}).await;

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
    let pending = begin_new(&app, &model, &owner, &session, "hi").await;
    let generated = generate(&app.store, &app.config, pending, |_| {}).await;
    assert!(matches!(generated.problem(), Some(ChatError::Llm(_))));
    assert!(generated.text_saved());
    let reply = &stored(&app, &session).await[1];
    assert_eq!((reply.content.as_str(), reply.status), ("partial ", MessageStatus::Failed));
    assert_eq!(reply.error_code, Some(ErrorCode::LlmError));
}

#[tokio::test]
async fn a_second_send_during_a_reply_is_refused_and_a_retry_replays() {
    let (app, owner, session) = fixture().await;
    let _pending = begin_new(&app, &unused(), &owner, &session, "first").await;
    let refused = send_with(&app.store, &unused(), &app.config, &owner, session.id, send("second")).await;
    assert!(matches!(refused, Err(ChatError::ReplyInProgress)), "{refused:?}");

    let other = new_session(&app, "alice").await;
    let keyed = SendMessage { client_message_id: Some("k-1".into()), ..send("once") };
    let Begun::New(pending) = send_with(&app.store, &says_ok(), &app.config, &owner, other.id, keyed.clone()).await.unwrap() else {
        panic!("a first send is new");
    };
    generate(&app.store, &app.config, pending, |_| {}).await;
    match send_with(&app.store, &unused(), &app.config, &owner, other.id, keyed).await.unwrap() {
        Begun::Replay { user, reply } => assert_eq!((user.content.as_str(), reply.content.as_str()), ("once", "ok")),
        Begun::New(_) => panic!("a retry must not reach the model again"),
    }
    let reused = SendMessage { client_message_id: Some("k-1".into()), ..send("something else") };
    assert!(matches!(
        send_with(&app.store, &unused(), &app.config, &owner, other.id, reused).await,
        Err(ChatError::IdempotencyKeyReused)
    ));
}

#[tokio::test]
async fn a_retry_replays_what_was_stored_even_when_the_deployments_limits_tightened() {
    let (mut app, owner, session) = fixture().await;
    let keyed = SendMessage {
        client_message_id: Some("k-limits".into()),
        options: Some(crate::domain::ModelOptions { num_predict: Some(600), ..Default::default() }),
        ..send("once")
    };
    let Begun::New(pending) = send_with(&app.store, &says_ok(), &app.config, &owner, session.id, keyed.clone()).await.unwrap() else {
        panic!("a first send is new");
    };
    generate(&app.store, &app.config, pending, |_| {}).await;

    // The operator lowers the cap and takes the model off the list.
    app.config.policy.max_num_predict = 100;
    app.config.policy.allowed_models = vec!["nothing/*".into()];
    match send_with(&app.store, &unused(), &app.config, &owner, session.id, keyed.clone()).await {
        Ok(Begun::Replay { user, reply }) => assert_eq!((user.content.as_str(), reply.content.as_str()), ("once", "ok")),
        other => panic!("the same request must replay its stored answer: {other:?}"),
    }
    // Another message under the same key is still a reused key; a new key is refused by the new limits.
    let reused = SendMessage { content: "something else".into(), ..keyed.clone() };
    assert!(matches!(send_with(&app.store, &unused(), &app.config, &owner, session.id, reused).await, Err(ChatError::IdempotencyKeyReused)));
    let fresh = SendMessage { client_message_id: Some("k-new".into()), ..keyed.clone() };
    assert!(matches!(send_with(&app.store, &unused(), &app.config, &owner, session.id, fresh).await, Err(ChatError::NotAllowed(_))));
    // Another owner learns nothing from the key.
    let mallory = OwnerId::parse("mallory").unwrap();
    assert!(matches!(send_with(&app.store, &unused(), &app.config, &mallory, session.id, keyed).await, Err(ChatError::NotFound(_))));
}

/// The DynamoDB store, with every append to a reply's log noted: when, and how many bytes.
struct WriteLog {
    inner: DynamoStore,
    appends: Arc<Mutex<Vec<(Instant, usize)>>>,
    /// A DELETE of the session lands between a send's read and its transaction.
    delete_before_begin: bool,
    /// The transaction takes this much longer; how many calls this model had
    /// when it was committed, and when, are noted.
    slow_commit: Option<(Duration, ScriptedModel)>,
    committed: Arc<Mutex<Option<(usize, Instant)>>>,
    /// Each append to the log takes this much longer.
    append_delay: Option<Duration>,
    /// The final write is refused for a conflict this many times first.
    finish_conflicts: Arc<Mutex<u32>>,
    /// The exchange's transaction is cancelled for a conflict this many times first.
    begin_conflicts: Arc<Mutex<u32>>,
}

/// Takes one from `left` if there is one: whether a write is refused this time.
fn refuse_once(left: &Mutex<u32>) -> bool {
    let mut left = left.lock().unwrap();
    let refuse = *left > 0;
    *left = left.saturating_sub(1);
    refuse
}

impl MessageRepository for WriteLog {
    async fn load_for_send(&self, id: Uuid, window: usize) -> Result<SendState, StoreError> {
        self.inner.load_for_send(id, window).await
    }
    async fn begin_exchange(
        &self,
        session: &Session,
        expected_seq: u64,
        user: &Message,
        reply: &Message,
        idempotency: Option<&IdempotencyRecord>,
        abandoned: Option<&Message>,
        claim: &QuotaClaim,
    ) -> Result<(), BeginError> {
        if self.delete_before_begin {
            // The first step of a DELETE: the session is marked `deleting`.
            use aws_sdk_dynamodb::types::AttributeValue;
            self.inner
                .client()
                .update_item()
                .table_name(self.inner.table())
                .key("PK", AttributeValue::S(format!("SESSION#{}", session.id)))
                .key("SK", AttributeValue::S(crate::store::dynamo::schema::SESSION_META_SK.to_owned()))
                .update_expression("SET deleting = :yes")
                .expression_attribute_values(":yes", AttributeValue::Bool(true))
                .send()
                .await
                .unwrap();
        }
        if refuse_once(&self.begin_conflicts) {
            return Err(BeginError::Store(StoreError::Conflict));
        }
        if let Some((delay, _)) = &self.slow_commit {
            tokio::time::sleep(*delay).await;
        }
        let result = self.inner.begin_exchange(session, expected_seq, user, reply, idempotency, abandoned, claim).await;
        if let Some((_, model)) = &self.slow_commit {
            *self.committed.lock().unwrap() = Some((model.requests().len(), Instant::now()));
        }
        result
    }
    async fn get_idempotency(&self, id: Uuid, key: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        self.inner.get_idempotency(id, key).await
    }
    async fn get_message(&self, id: Uuid, seq: u64) -> Result<Option<Message>, StoreError> {
        self.inner.get_message(id, seq).await
    }
    async fn find_message(&self, owner: &OwnerId, id: Uuid, message_id: Uuid) -> Result<Option<Message>, StoreError> {
        self.inner.find_message(owner, id, message_id).await
    }
    async fn append_reply(&self, reply: &Message, part: Option<&LogPart>) -> Result<(), StoreError> {
        self.appends.lock().unwrap().push((Instant::now(), part.map_or(0, |p| p.text.len())));
        if let Some(delay) = self.append_delay {
            tokio::time::sleep(delay).await;
        }
        self.inner.append_reply(reply, part).await
    }
    async fn finish_reply(&self, reply: &Message, settlement: &Settlement) -> Result<(), StoreError> {
        if refuse_once(&self.finish_conflicts) {
            return Err(StoreError::Conflict);
        }
        self.inner.finish_reply(reply, settlement).await
    }
    async fn request_cancel(&self, id: Uuid, seq: u64) -> Result<bool, StoreError> {
        self.inner.request_cancel(id, seq).await
    }
    async fn read_reply(&self, id: Uuid, seq: u64, from: u32) -> Result<Option<(Message, Vec<LogPart>)>, StoreError> {
        self.inner.read_reply(id, seq, from).await
    }
    async fn delete_exchange(&self, id: Uuid, seq: u64) -> Result<(), StoreError> {
        self.inner.delete_exchange(id, seq).await
    }
    async fn list_messages(
        &self,
        id: Uuid,
        order: Order,
        limit: u32,
        after: Option<u64>,
    ) -> Result<Listed<Message, u64>, StoreError> {
        self.inner.list_messages(id, order, limit, after).await
    }
}

impl QuotaRepository for WriteLog {
    async fn quota_override(&self, owner: &OwnerId) -> Result<Option<QuotaOverride>, StoreError> {
        self.inner.quota_override(owner).await
    }
    async fn set_quota_override(&self, owner: &OwnerId, quota: Option<&QuotaOverride>) -> Result<(), StoreError> {
        self.inner.set_quota_override(owner, quota).await
    }
    async fn claim(&self, claim: &QuotaClaim) -> Result<(), BeginError> {
        if let Some((delay, _)) = &self.slow_commit {
            tokio::time::sleep(*delay).await;
        }
        let result = self.inner.claim(claim).await;
        if let Some((_, model)) = &self.slow_commit {
            *self.committed.lock().unwrap() = Some((model.requests().len(), Instant::now()));
        }
        result
    }
    async fn settle(&self, settlement: &Settlement) -> Result<(), StoreError> {
        self.inner.settle(settlement).await
    }
    async fn quota_use(&self, owner: &OwnerId, now: crate::domain::Timestamp) -> Result<QuotaUse, StoreError> {
        self.inner.quota_use(owner, now).await
    }
    async fn free_slots(&self, owner: &OwnerId, slots: &[String]) -> Result<(), StoreError> {
        self.inner.free_slots(owner, slots).await
    }
    async fn ledger(&self, owner: &OwnerId, from: &str, to: &str) -> Result<Vec<crate::domain::LedgerEntry>, StoreError> {
        self.inner.ledger(owner, from, to).await
    }
}

fn write_log(app: &App) -> WriteLog {
    WriteLog { inner: app.store.clone(), appends: Arc::default(), delete_before_begin: false, slow_commit: None, committed: Arc::default(), append_delay: None, finish_conflicts: Arc::default(), begin_conflicts: Arc::default() }
}

#[tokio::test]
async fn the_model_is_called_while_the_exchange_commits_and_heard_only_after() {
    // An owner of its own: other tests' quota refusals of theirs make their sends wait for the commit.
    let app = app_on_fresh_table(&[]).await;
    let owner = OwnerId::parse("overlapping-owner").unwrap();
    let session = new_session(&app, owner.as_str()).await;
    let model = ScriptedModel::new(vec![delta("Hel"), delta("lo"), done()]);
    let store = WriteLog { slow_commit: Some((Duration::from_millis(200), model.clone())), ..write_log(&app) };
    let Begun::New(pending) = send_with(&store, &model, &app.config, &owner, session.id, send("hi")).await.unwrap() else {
        panic!("a new send");
    };
    let (calls, committed_at) = store.committed.lock().unwrap().expect("committed");
    assert_eq!(calls, 1, "the model was called before the transaction had committed");
    let mut heard = Vec::new();
    let generated = generate(&store, &app.config, pending, |_| heard.push(Instant::now())).await;
    assert!(finished(&generated));
    assert_eq!(heard.len(), 2);
    assert!(heard.iter().all(|at| *at >= committed_at), "nothing the model said was read before the commit");
    assert_eq!(model.requests().len(), 1, "one call: the one started during the commit");
}

#[tokio::test]
async fn a_stateless_call_starts_while_its_claim_is_written() {
    let app = app_on_fresh_table(&[]).await;
    let owner = OwnerId::parse("stateless-owner").unwrap();
    let model = says_ok();
    let store = WriteLog { slow_commit: Some((Duration::from_millis(200), model.clone())), ..write_log(&app) };
    let turns = vec![crate::llm::ChatTurn { role: Role::User, content: "hi".into() }];
    let request = stateless_request(&app.config, app.config.default_model.clone(), turns, Default::default()).unwrap();
    let (claim, opening) = claim_stateless(&store, &model, &app.config, &owner, &request).await.unwrap();
    let (calls, _) = store.committed.lock().unwrap().expect("claimed");
    assert_eq!(calls, 1, "the model was called before the claim was written");
    let completion = relay(opening.opened().await.unwrap(), |_| {}).await.unwrap();
    assert_eq!(completion.done_reason.as_deref(), Some("stop"));
    settle_stateless(&store, claim, None, "", "ok").await;
    assert!(app.store.quota_use(&owner, crate::domain::Timestamp::now()).await.unwrap().slots.is_empty(), "settled");
}

#[tokio::test]
async fn a_commit_that_fails_drops_the_model_call_and_stores_nothing() {
    let app = app_on_fresh_table(&[]).await;
    let owner = OwnerId::parse("racing-owner").unwrap();
    let session = new_session(&app, owner.as_str()).await;
    let model = says_ok();
    // A DELETE lands between the send's reads and its transaction: the commit fails.
    let store = WriteLog { delete_before_begin: true, ..write_log(&app) };
    let raced = send_with(&store, &model, &app.config, &owner, session.id, send("hello")).await;
    assert!(matches!(raced, Err(ChatError::NotFound("session"))), "{raced:?}");
    assert_eq!(model.requests().len(), 1, "the model had been called");
    // The call had opened during the commit (the scripted model answers at once); its stream is let go unread.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(model.dropped_early(), 1, "the model's stream is dropped");
    assert!(stored(&app, &session).await.is_empty(), "nothing of the send was stored");
}

#[tokio::test]
async fn an_owner_a_quota_refused_waits_for_the_commit_before_the_model_is_called() {
    // An owner of its own: refusals are remembered per owner by the instance.
    let app = app_on_fresh_table(&[("LLMCHAT_QUOTA_ACTIVE_REPLIES", "1")]).await;
    let owner = OwnerId::parse("patient-owner").unwrap();
    let (a, b) = (new_session(&app, owner.as_str()).await, new_session(&app, owner.as_str()).await);
    let _holding = begin_new(&app, &unused(), &owner, &a, "one").await;
    assert!(!quota::refused_lately(&owner));

    let first = says_ok();
    let refused = send_with(&app.store, &first, &app.config, &owner, b.id, send("two")).await;
    assert!(matches!(refused, Err(ChatError::QuotaExceeded { .. })), "{refused:?}");
    assert_eq!(first.requests().len(), 1, "the first refused send had called the model during its commit");
    assert!(quota::refused_lately(&owner));

    let again = says_ok();
    let refused = send_with(&app.store, &again, &app.config, &owner, b.id, send("two")).await;
    assert!(matches!(refused, Err(ChatError::QuotaExceeded { .. })), "{refused:?}");
    assert!(again.requests().is_empty(), "while refused, the model waits for a commit that does not come");
}

#[tokio::test]
async fn a_send_racing_a_delete_finds_the_session_gone_not_busy() {
    let (app, owner, session) = fixture().await;
    let store = WriteLog { delete_before_begin: true, ..write_log(&app) };
    let raced = send_with(&store, &unused(), &app.config, &owner, session.id, send("hello")).await;
    assert!(matches!(raced, Err(ChatError::NotFound("session"))), "{raced:?}");
    assert!(stored(&app, &session).await.is_empty(), "nothing of the send was stored");

    // Whereas a session that moved on (another send) is busy, not gone.
    let other = new_session(&app, "alice").await;
    let now = crate::domain::Timestamp::now();
    let user = Message::user(other.id, 6, "late".into(), None, now);
    let reply = Message::pending_reply(other.id, 7, "m".into(), now, now);
    let claim = quota::claim(&owner, app.config.quotas, quota::reply_slot(other.id, 7), 10, now).unwrap();
    let stale = app.store.begin_exchange(&other, 5, &user, &reply, None, None, &claim).await;
    assert!(matches!(stale, Err(BeginError::Busy)), "{stale:?}");
}

#[tokio::test]
async fn text_is_appended_at_a_bounded_cadence_while_tokens_flow() {
    let (app, owner, session) = fixture().await;
    let mut script = Vec::new();
    for i in 0..30 {
        script.push(Step::Pause(Duration::from_millis(100)));
        script.push(delta(&format!("{i} ")));
    }
    script.push(done());
    let store = write_log(&app);
    let pending = begin_new(&app, &ScriptedModel::new(script), &owner, &session, "count slowly").await;
    let started = Instant::now();
    let generated = generate(&store, &app.config, pending, |_| {}).await;
    let elapsed = started.elapsed();
    assert!(generated.problem().is_none());

    let appends: Vec<(Instant, usize)> = store.appends.lock().unwrap().iter().copied().filter(|(_, n)| *n > 0).collect();
    assert!(appends.len() >= 2, "a reply of {elapsed:?} is appended as it grows: {appends:?}");
    let limit = elapsed.as_millis() / LOG_FLUSH_INTERVAL.as_millis() + 1;
    assert!(appends.len() as u128 <= limit, "{} appends in {elapsed:?}", appends.len());
    for pair in appends.windows(2) {
        assert!(pair[1].0 - pair[0].0 >= LOG_FLUSH_INTERVAL, "appends {:?} apart", pair[1].0 - pair[0].0);
    }
    let appended: usize = appends.iter().map(|(_, n)| n).sum();
    assert!(appended <= generated.reply.content.len(), "no text is appended twice");
}

#[tokio::test]
async fn writes_grow_linearly_with_the_reply() {
    let (app, owner, session) = fixture().await;
    let mut counts = Vec::new();
    for kib in [16usize, 160] {
        let piece = "y".repeat(256);
        // Paced, so that appends are made while the reply grows.
        let mut script: Vec<Step> = (0..kib * 4).flat_map(|_| [Step::Pause(Duration::from_millis(5)), delta(&piece)]).collect();
        script.push(done());
        let store = write_log(&app);
        let pending = begin_new(&app, &ScriptedModel::new(script), &owner, &session, &format!("{kib} KiB please")).await;
        let generated = generate(&store, &app.config, pending, |_| {}).await;
        assert!(generated.problem().is_none());
        let appends = store.appends.lock().unwrap().clone();
        let bytes: usize = appends.iter().map(|(_, n)| n).sum();
        let len = generated.reply.content.len();
        assert_eq!(len, kib * 1024);
        assert!(bytes <= len, "each byte is appended at most once: {bytes} for {len}");
        assert!(appends.len() <= len / LOG_FLUSH_BYTES + 2, "{} appends for {len} bytes", appends.len());
        assert!(appends.len() >= 2, "{} appends for {len} bytes: the log grows with the reply", appends.len());
        counts.push(appends.len());
    }
    assert!(counts[1] > counts[0], "more text, more appends: {counts:?}");
}

#[tokio::test]
async fn an_exchange_cancelled_for_a_conflict_is_tried_again_then_the_session_is_busy() {
    let (app, owner, session) = fixture().await;
    let store = WriteLog { begin_conflicts: Arc::new(Mutex::new(crate::store::BUSY_ATTEMPTS - 1)), ..write_log(&app) };
    let begun = send_with(&store, &says_ok(), &app.config, &owner, session.id, send("hi")).await;
    assert!(matches!(begun, Ok(Begun::New(_))), "{begun:?}");

    let other = new_session(&app, "alice").await;
    let store = WriteLog { begin_conflicts: Arc::new(Mutex::new(crate::store::BUSY_ATTEMPTS)), ..write_log(&app) };
    let refused = send_with(&store, &says_ok(), &app.config, &owner, other.id, send("hi")).await;
    assert!(matches!(refused, Err(ChatError::Storage(StoreError::Conflict))), "{refused:?}");
    assert!(stored(&app, &other).await.is_empty(), "nothing of the refused send was stored");
}

#[tokio::test]
async fn a_final_write_refused_for_a_conflict_is_tried_again() {
    let (app, owner, session) = fixture().await;
    let store = WriteLog { finish_conflicts: Arc::new(Mutex::new(crate::store::BUSY_ATTEMPTS - 1)), ..write_log(&app) };
    let pending = begin_new(&app, &says_ok(), &owner, &session, "hi").await;
    let generated = generate(&store, &app.config, pending, |_| {}).await;
    assert!(finished(&generated), "{:?}", generated.problem());
    let stored = app.store.get_message(session.id, generated.reply.seq).await.unwrap().unwrap();
    assert_eq!((stored.status, stored.content.as_str()), (MessageStatus::Complete, "ok"));

    // Past the attempts, the reply is left to its lease, and the client told.
    let store = WriteLog { finish_conflicts: Arc::new(Mutex::new(crate::store::BUSY_ATTEMPTS)), ..write_log(&app) };
    let pending = begin_new(&app, &says_ok(), &owner, &session, "again").await;
    let generated = generate(&store, &app.config, pending, |_| {}).await;
    assert!(matches!(generated.save_error, Some(StoreError::Conflict)), "{:?}", generated.save_error);
}

#[tokio::test]
async fn an_append_still_under_way_at_the_end_that_finds_the_reply_taken_over_stops_the_generator() {
    let (app, owner, session) = fixture().await;
    // 2 KiB at once starts an append; the reply ends while that append is still being written.
    let script = vec![delta(&"z".repeat(LOG_FLUSH_BYTES)), done()];
    let store = WriteLog { append_delay: Some(Duration::from_millis(300)), ..write_log(&app) };
    let pending = begin_new(&app, &ScriptedModel::new(script), &owner, &session, "hi").await;
    let seq = pending.reply.seq;
    forge(&app, &session, seq, "SET gen = :v", "another-writer").await;
    let generated = generate(&store, &app.config, pending, |_| {}).await;
    assert_eq!(store.appends.lock().unwrap().len(), 1, "one append, under way when the reply ended");
    assert!(matches!(generated.problem(), Some(ChatError::Superseded)), "{:?}", generated.problem());
    let stored = app.store.get_message(session.id, seq).await.unwrap().unwrap();
    assert_eq!((stored.status, stored.content.as_str()), (MessageStatus::Streaming, ""), "nothing was written");
}

#[tokio::test]
async fn a_slow_append_holds_no_token_back() {
    let (app, owner, session) = fixture().await;
    let script: Vec<Step> = (0..40).flat_map(|i| [Step::Pause(Duration::from_millis(20)), delta(&format!("{i:>1000}"))]).chain([done()]).collect();
    let store = WriteLog { append_delay: Some(Duration::from_millis(300)), ..write_log(&app) };
    let pending = begin_new(&app, &ScriptedModel::new(script), &owner, &session, "go on").await;
    let mut heard = Vec::new();
    let generated = generate(&store, &app.config, pending, |_| heard.push(Instant::now())).await;
    assert!(finished(&generated));
    let appends = store.appends.lock().unwrap().len();
    assert!(appends >= 2, "{appends} appends were made while the reply came");
    let longest = heard.windows(2).map(|w| w[1] - w[0]).max().unwrap();
    assert!(longest < Duration::from_millis(150), "tokens 20 ms apart were relayed {longest:?} apart while 300 ms appends went on");
    let stored = app.store.get_message(session.id, generated.reply.seq).await.unwrap().unwrap();
    assert_eq!(stored.content, generated.reply.content, "the final write holds the whole text");
}

/// Sets a stored reply's attribute directly, as another writer (or a test) would.
async fn forge(app: &App, session: &Session, seq: u64, expression: &str, value: &str) {
    use aws_sdk_dynamodb::types::AttributeValue;
    app.store
        .client()
        .update_item()
        .table_name(app.store.table())
        .key("PK", AttributeValue::S(format!("SESSION#{}", session.id)))
        .key("SK", AttributeValue::S(crate::store::dynamo::schema::message_sk(seq)))
        .update_expression(expression)
        .expression_attribute_values(":v", AttributeValue::S(value.to_owned()))
        .send()
        .await
        .unwrap();
}

fn slow_reply(tokens: usize) -> ScriptedModel {
    let mut script = Vec::new();
    for i in 0..tokens {
        script.push(Step::Pause(Duration::from_millis(100)));
        script.push(delta(&format!("t{i} ")));
    }
    script.push(done());
    ScriptedModel::new(script)
}

#[tokio::test]
async fn a_generator_whose_token_was_replaced_cannot_write() {
    let (app, owner, session) = fixture().await;
    let model = slow_reply(20);
    let pending = begin_new(&app, &model, &owner, &session, "hi").await;
    let seq = pending.reply.seq;
    forge(&app, &session, seq, "SET gen = :v", "another-writer").await;
    let generated = generate(&app.store, &app.config, pending, |_| {}).await;

    assert!(matches!(generated.problem(), Some(ChatError::Superseded)), "{:?}", generated.problem());
    assert_eq!(model.dropped_early(), 1, "the model's connection is closed at the refused write");
    let stored = app.store.get_message(session.id, seq).await.unwrap().unwrap();
    assert_eq!((stored.status, stored.content.as_str()), (MessageStatus::Streaming, ""), "nothing was written");
    assert_eq!(stored.generation.as_deref(), Some("another-writer"));
}

#[tokio::test]
async fn a_reply_past_its_lease_is_stored_incomplete_by_the_next_send_and_its_generator_stops() {
    let (app, owner, session) = fixture().await;
    let pending = begin_new(&app, &slow_reply(30), &owner, &session, "first").await;
    let seq = pending.reply.seq;
    let first = {
        let (store, config) = (app.store.clone(), app.config.clone());
        tokio::spawn(async move { generate(&store, &config, pending, |_| {}).await })
    };
    tokio::time::sleep(Duration::from_millis(700)).await;
    forge(&app, &session, seq, "SET lease_until = :v", "2020-01-01T00:00:00.000Z").await;
    let second = begin_new(&app, &unused(), &owner, &session, "second").await;
    assert_eq!(second.user.seq, seq + 1);

    let stored = app.store.get_message(session.id, seq).await.unwrap().unwrap();
    assert_eq!(stored.status, MessageStatus::Incomplete, "stored as it reads");
    assert!(!stored.content.is_empty(), "with the text its log held");
    let generated = first.await.unwrap();
    assert!(matches!(generated.problem(), Some(ChatError::Superseded)));
    let after = app.store.get_message(session.id, seq).await.unwrap().unwrap();
    assert_eq!((after.status, after.content), (MessageStatus::Incomplete, stored.content), "never overwritten");
}

#[tokio::test]
async fn a_cancel_stops_the_generator_and_keeps_the_text_so_far() {
    let (app, owner, session) = fixture().await;
    let model = slow_reply(100);
    let pending = begin_new(&app, &model, &owner, &session, "long one").await;
    let reply_id = pending.reply.id;
    let generator = {
        let (store, config) = (app.store.clone(), app.config.clone());
        tokio::spawn(async move { generate(&store, &config, pending, |_| {}).await })
    };
    tokio::time::sleep(Duration::from_millis(600)).await;
    let cancelled = cancel(&app.store, &owner, session.id, reply_id).await;
    let Cancelled::Ended(reply) = cancelled.expect("cancelled") else {
        panic!("the generator stores the cancelled reply within the wait");
    };
    assert_eq!(reply.status, MessageStatus::Cancelled);
    assert!(reply.content.starts_with("t0 "), "the text so far is kept: {:?}", reply.content);
    let generated = generator.await.unwrap();
    assert!(generated.problem().is_none(), "a cancel is not a failure");
    assert_eq!(generated.reply.content, reply.content);
    assert_eq!(model.dropped_early(), 1, "the model's connection is closed");

    let again = cancel(&app.store, &owner, session.id, reply_id).await.unwrap();
    assert!(matches!(again, Cancelled::Ended(ref r) if r.status == MessageStatus::Cancelled && r.content == reply.content));
    let stranger = OwnerId::parse("mallory").unwrap();
    assert!(matches!(cancel(&app.store, &stranger, session.id, reply_id).await, Err(ChatError::NotFound(_))));
}

#[tokio::test]
async fn a_follower_sees_the_rest_from_any_position() {
    let (app, owner, session) = fixture().await;
    let pending = begin_new(&app, &slow_reply(15), &owner, &session, "tell me").await;
    let reply = pending.reply.clone();
    let generator = {
        let (store, config) = (app.store.clone(), app.config.clone());
        tokio::spawn(async move { generate(&store, &config, pending, |_| {}).await })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut seen = String::new();
    let mut ended = None;
    follow(&app.store, &reply, 0, |event| {
        match event {
            Followed::Delta { text, end } => {
                seen.push_str(&text);
                assert_eq!(end, seen.len(), "positions count the bytes so far");
            }
            Followed::Ended(m) => ended = Some(m),
            Followed::Thinking { .. } => panic!("this reply has no thinking"),
        }
        true
    })
    .await
    .unwrap();
    let generated = generator.await.unwrap();
    assert_eq!(seen, generated.reply.content, "no gap, no repeat");
    assert_eq!(ended.map(|m| m.status), Some(MessageStatus::Complete));

    // From the middle of an ended reply: the rest, then the end.
    let middle = seen.len() / 2;
    let middle = (middle..seen.len()).find(|i| seen.is_char_boundary(*i)).unwrap();
    let mut rest = String::new();
    follow(&app.store, &reply, middle, |e| {
        if let Followed::Delta { text, .. } = e {
            rest.push_str(&text);
        }
        true
    })
    .await
    .unwrap();
    assert_eq!(format!("{}{rest}", &seen[..middle]), seen);
}

fn thinking(text: &str) -> Step {
    Step::Event(ChatEvent::Thinking(text.to_owned()))
}

#[tokio::test]
async fn thinking_streams_apart_is_stored_apart_and_is_never_sent_back() {
    let (app, owner, session) = fixture().await;
    let script = vec![
        thinking("Two and "),
        Step::Pause(Duration::from_millis(300)),
        thinking("two…"),
        Step::Pause(Duration::from_millis(300)),
        delta("It is "),
        Step::Pause(Duration::from_millis(300)),
        // Thinking after the answer has begun is not kept.
        thinking("late"),
        delta("4."),
        done(),
    ];
    let pending = begin_new(&app, &ScriptedModel::new(script), &owner, &session, "2+2?").await;
    let reply = pending.reply.clone();
    let mut seen = Vec::new();
    let generated = generate(&app.store, &app.config, pending, |d| seen.push(format!("{d:?}"))).await;
    assert_eq!(
        seen,
        [r#"Thinking("Two and ")"#, r#"Thinking("two…")"#, r#"Content("It is ")"#, r#"Content("4.")"#]
    );
    assert_eq!(generated.reply.thinking, "Two and two…");
    assert_eq!(generated.reply.content, "It is 4.");

    let stored_reply = &stored(&app, &session).await[1];
    assert_eq!(stored_reply.thinking, "Two and two…", "stored apart from the content");
    assert_eq!(stored_reply.content, "It is 4.");

    // A follower from the start, and from inside the thinking, sees thinking then text, positions counting both.
    let all = format!("{}{}", stored_reply.thinking, stored_reply.content);
    for from in [0, 4, "Two and two…".len(), "Two and two…".len() + 3] {
        let mut got = String::new();
        follow(&app.store, &reply, from, |e| {
            match e {
                Followed::Thinking { text, end } | Followed::Delta { text, end } => {
                    got.push_str(&text);
                    assert_eq!(end, from + got.len(), "positions count thinking, then text");
                }
                Followed::Ended(_) => {}
            }
            true
        })
        .await
        .unwrap();
        assert_eq!(got, all[from..], "from {from}");
    }
    // Inside a character of the thinking is no position.
    let inside = "Two and two".len() + 1;
    assert!(matches!(check_position(stored_reply, Position::Offset(inside), crate::domain::Timestamp::now()), Err(ChatError::BadPosition(_))));

    // The next turn's history carries the reply's content only.
    let model = ScriptedModel::new(vec![delta("6."), done()]);
    let next = begin_new(&app, &model, &owner, &session, "and 3+3?").await;
    generate(&app.store, &app.config, next, |_| {}).await;
    let sent = &model.requests()[0].messages;
    let assistant: Vec<&str> = sent.iter().filter(|t| t.role == Role::Assistant).map(|t| t.content.as_str()).collect();
    assert_eq!(assistant, ["It is 4."]);
    assert!(sent.iter().all(|t| !t.content.contains("Two and")), "thinking is never sent back");
}

#[tokio::test]
async fn a_live_follower_sees_thinking_from_the_log() {
    let (app, owner, session) = fixture().await;
    let mut script = Vec::new();
    for i in 0..6 {
        script.push(thinking(&format!("t{i} ")));
        script.push(Step::Pause(Duration::from_millis(120)));
    }
    for i in 0..6 {
        script.push(delta(&format!("w{i} ")));
        script.push(Step::Pause(Duration::from_millis(120)));
    }
    script.push(done());
    let pending = begin_new(&app, &ScriptedModel::new(script), &owner, &session, "think").await;
    let reply = pending.reply.clone();
    let generator = {
        let (store, config) = (app.store.clone(), app.config.clone());
        tokio::spawn(async move { generate(&store, &config, pending, |_| {}).await })
    };
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (mut thought, mut said) = (String::new(), String::new());
    follow(&app.store, &reply, 0, |e| {
        match e {
            Followed::Thinking { text, .. } => {
                assert!(said.is_empty(), "thinking comes before text");
                thought.push_str(&text);
            }
            Followed::Delta { text, .. } => said.push_str(&text),
            Followed::Ended(_) => {}
        }
        true
    })
    .await
    .unwrap();
    let generated = generator.await.unwrap();
    assert_eq!(thought, generated.reply.thinking);
    assert_eq!(said, generated.reply.content);
    assert_eq!(thought, "t0 t1 t2 t3 t4 t5 ");
}

async fn quota_fixture(vars: &[(&str, &str)]) -> (App, OwnerId) {
    (app_on_fresh_table(vars).await, OwnerId::parse("alice").unwrap())
}

fn finished(generated: &Generated) -> bool {
    generated.problem().is_none() && generated.reply.status == MessageStatus::Complete
}

#[tokio::test]
async fn replies_in_progress_never_pass_their_quota_under_concurrent_sends() {
    let (app, owner) = quota_fixture(&[("LLMCHAT_QUOTA_ACTIVE_REPLIES", "3")]).await;
    let app = Arc::new(app);
    let mut sessions = Vec::new();
    for _ in 0..10 {
        sessions.push(new_session(&app, "alice").await);
    }
    let tasks: Vec<_> = sessions
        .iter()
        .map(|s| {
            let (app, owner, id) = (app.clone(), owner.clone(), s.id);
            tokio::spawn(async move { send_with(&app.store, &says_ok(), &app.config, &owner, id, send("go")).await })
        })
        .collect();
    let mut begun = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            Ok(Begun::New(p)) => begun.push(p),
            Err(ChatError::QuotaExceeded { quota: crate::domain::Quota::ActiveReplies, retry_after }) => assert!(retry_after > 0),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(begun.len(), 3, "exactly the quota's worth began");
    let mut stored_total = 0;
    for s in &sessions {
        stored_total += stored(&app, s).await.len();
    }
    assert_eq!(stored_total, 6, "a refused send stores nothing");

    // A reply that ends gives its place back.
    let first = begun.remove(0);
    let generated = generate(&app.store, &app.config, first, |_| {}).await;
    assert!(finished(&generated));
    let spare = sessions.iter().find(|s| begun.iter().all(|p| p.reply.session_id != s.id) && s.id != generated.reply.session_id).unwrap();
    assert!(matches!(send_with(&app.store, &unused(), &app.config, &owner, spare.id, send("next")).await, Ok(Begun::New(_))));
}

#[tokio::test]
async fn tokens_never_pass_their_quota_and_settle_to_what_was_used() {
    // Each send reserves its prompt (37 tokens: the prompt's framing and `hi`) and num_predict 100: room for 3 at once in 450.
    let (app, owner) = quota_fixture(&[("LLMCHAT_QUOTA_TOKENS_PER_DAY", "450"), ("LLMCHAT_MAX_REPLY_TOKENS", "100")]).await;
    let app = Arc::new(app);
    let mut sessions = Vec::new();
    for _ in 0..8 {
        sessions.push(new_session(&app, "alice").await);
    }
    // Settled below: what the replies used is 26 + 7 each, as reported.
    let usage = crate::domain::Usage { prompt_tokens: 26, completion_tokens: 7, ..Default::default() };
    let model = ScriptedModel::new(vec![delta("ok"), Step::Event(ChatEvent::Done(Completion { done_reason: Some("stop".into()), usage }))]);
    let tasks: Vec<_> = sessions
        .iter()
        .map(|s| {
            let (app, owner, id, model) = (app.clone(), owner.clone(), s.id, model.clone());
            tokio::spawn(async move { send_with(&app.store, &model, &app.config, &owner, id, send("hi")).await })
        })
        .collect();
    let mut begun = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            Ok(Begun::New(p)) => begun.push(p),
            Err(ChatError::QuotaExceeded { quota: crate::domain::Quota::TokensPerDay, .. }) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(begun.len(), 3);
    let now = crate::domain::Timestamp::now();
    let reserved = app.store.quota_use(&owner, now).await.unwrap().tokens_today;
    assert!(reserved <= 450, "the day's tokens never pass the quota: {reserved}");

    // Settled: the day's count is what the replies used.
    for pending in begun {
        assert!(finished(&generate(&app.store, &app.config, pending, |_| {}).await));
    }
    let used = app.store.quota_use(&owner, now).await.unwrap();
    assert_eq!(used.tokens_today, 3 * 33);
    assert!(used.slots.is_empty(), "every place was given back");
}

#[tokio::test]
async fn a_place_held_by_a_dead_writer_is_freed_when_needed() {
    let (app, owner) = quota_fixture(&[("LLMCHAT_QUOTA_ACTIVE_REPLIES", "1")]).await;
    let a = new_session(&app, "alice").await;
    let b = new_session(&app, "alice").await;
    let pending = begin_new(&app, &unused(), &owner, &a, "one").await;
    assert!(matches!(send_with(&app.store, &unused(), &app.config, &owner, b.id, send("two")).await, Err(ChatError::QuotaExceeded { .. })));
    // Its writer dies: the lease runs out and the reply is no longer live.
    forge(&app, &a, pending.reply.seq, "SET lease_until = :v", "2020-01-01T00:00:00.000Z").await;
    assert!(matches!(send_with(&app.store, &unused(), &app.config, &owner, b.id, send("two")).await, Ok(Begun::New(_))));
}

#[tokio::test]
async fn the_ledger_adds_up_to_the_stored_replies_and_counts_dynamodb_units() {
    let (app, owner) = quota_fixture(&[]).await;
    let session = new_session(&app, "alice").await;
    for (i, (prompt, completion)) in [(11, 5), (20, 9), (31, 2)].into_iter().enumerate() {
        let usage = crate::domain::Usage { prompt_tokens: prompt, completion_tokens: completion, thinking_tokens: 1, ..Default::default() };
        let script = vec![thinking("hm"), delta("ok"), Step::Event(ChatEvent::Done(Completion { done_reason: Some("stop".into()), usage }))];
        let pending = begin_new(&app, &ScriptedModel::new(script), &owner, &session, &format!("message {i}")).await;
        assert!(finished(&generate(&app.store, &app.config, pending, |_| {}).await));
    }
    let replies: Vec<Message> = stored(&app, &session).await.into_iter().filter(|m| m.role == Role::Assistant).collect();
    let day = crate::domain::Timestamp::now().day();
    let rows = app.store.ledger(&owner, &day, &day).await.unwrap();
    assert_eq!(rows.len(), 1, "one row: one day, one session, one model");
    let row = &rows[0];
    let sum = |f: fn(&Message) -> u64| replies.iter().map(f).sum::<u64>();
    assert_eq!(row.replies, 3);
    assert_eq!(row.prompt_tokens, sum(|m| m.usage.as_ref().unwrap().prompt_tokens));
    assert_eq!(row.completion_tokens, sum(|m| m.usage.as_ref().unwrap().completion_tokens));
    assert_eq!(row.thinking_tokens, 3);
    assert_eq!(row.model, format!("ollama/{}", crate::config::DEFAULT_MODEL));
    let spends: Vec<&crate::domain::Spend> = replies.iter().map(|m| m.spend.as_ref().expect("a reply records its spend")).collect();
    assert!(spends.iter().all(|s| s.backend == "ollama" && s.read_units > 0.0 && s.write_units >= 2.0), "{spends:?}");
    let writes: f64 = spends.iter().map(|s| s.write_units).sum();
    assert!((row.write_units - writes).abs() < 1e-6, "the ledger's units are the replies' own");
}

fn done_counting(prompt_tokens: u64) -> Step {
    let usage = crate::domain::Usage { prompt_tokens, completion_tokens: 1, ..Default::default() };
    Step::Event(ChatEvent::Done(Completion { done_reason: Some("stop".to_owned()), usage }))
}

/// Sends `content` with a context of 512 tokens (400 for the prompt) to a
/// model that reports `count(prompt)` prompt tokens: the prompt and the reply.
async fn send_counted(
    app: &App,
    owner: &OwnerId,
    session: &Session,
    content: &str,
    count: impl Fn(&[crate::llm::ChatTurn]) -> u64 + Send + Sync + 'static,
) -> (Vec<crate::llm::ChatTurn>, Message) {
    let options = crate::domain::ModelOptions { num_ctx: Some(512), num_predict: Some(112), ..Default::default() };
    let input = SendMessage { options: Some(options), ..send(content) };
    let model = ScriptedModel::answering(move |request| vec![delta("ok"), done_counting(count(&request.messages))]);
    let Begun::New(pending) = send_with(&app.store, &model, &app.config, owner, session.id, input).await.expect("begun") else {
        panic!("a new send")
    };
    let prompt = model.requests()[0].messages.clone();
    let generated = generate(&app.store, &app.config, pending, |_| {}).await;
    assert!(generated.problem().is_none(), "{:?}", generated.problem());
    (prompt, generated.reply)
}

#[tokio::test]
async fn a_model_counting_more_prompt_tokens_than_estimated_shrinks_the_next_context() {
    let (app, owner, exact) = fixture().await;
    let fine = new_session(&app, "alice").await;
    // One model counts the prompt as estimated; the other spends a token on
    // every byte, as a tokenizer without these words would: about three
    // times the estimate of ASCII.
    let as_estimated = |p: &[crate::llm::ChatTurn]| u64::from(context::estimate_prompt(p));
    let by_bytes = |p: &[crate::llm::ChatTurn]| p.iter().map(|t| t.content.len() as u64 + 4).sum::<u64>();
    let (mut exact_last, mut fine_last) = (None, None);
    for i in 0..6 {
        let text = format!("{i}{}", "x".repeat(199));
        exact_last = Some(send_counted(&app, &owner, &exact, &text, as_estimated).await);
        fine_last = Some(send_counted(&app, &owner, &fine, &text, by_bytes).await);
    }
    let ((exact_prompt, exact_reply), (fine_prompt, fine_reply)) = (exact_last.unwrap(), fine_last.unwrap());
    assert_eq!(exact_prompt.len(), 11, "five exchanges and the new message fit by the estimate");
    assert!(!exact_reply.context_truncated);
    assert!(fine_prompt.len() < exact_prompt.len(), "{} turns sent", fine_prompt.len());
    assert!(fine_reply.context_truncated, "and the reply says so");
    assert!(by_bytes(&fine_prompt) <= 400, "what the model counts fits: {}", by_bytes(&fine_prompt));
    assert_eq!(fine_prompt.last().unwrap().content, format!("5{}", "x".repeat(199)), "the new message is sent");

    // The calibration is stored with each reply, in DynamoDB.
    let stored_fine = stored(&app, &fine).await;
    let ratio = stored_fine.last().unwrap().prompt_calibration.expect("a measured reply").ratio();
    assert!(ratio > 3.0, "{ratio}");
    let stored_exact = stored(&app, &exact).await;
    assert!(stored_exact.iter().filter(|m| m.role == Role::Assistant).all(|m| m.prompt_calibration == Some(crate::domain::tokens::TokenCalibration::NONE)));
    assert!(stored_exact.iter().filter(|m| m.role == Role::User).all(|m| m.prompt_calibration.is_none()));
}

#[tokio::test]
async fn a_reply_without_a_count_keeps_the_sessions_calibration() {
    let (app, owner, session) = fixture().await;
    let by_bytes = |p: &[crate::llm::ChatTurn]| p.iter().map(|t| t.content.len() as u64 + 4).sum::<u64>();
    let text = "y".repeat(200);
    send_counted(&app, &owner, &session, &text, by_bytes).await;
    let (_, uncounted) = send_counted(&app, &owner, &session, &text, |_| 0).await;
    assert_eq!(uncounted.prompt_calibration, None, "nothing measured");
    let (_, next) = send_counted(&app, &owner, &session, &text, |_| 0).await;
    assert!(next.context_truncated, "the first reply's measure still applies");
    let (plain_app, plain_owner, plain) = fixture().await;
    for _ in 0..3 {
        let (_, reply) = send_counted(&plain_app, &plain_owner, &plain, &text, |_| 0).await;
        assert!(!reply.context_truncated, "the same sends, never measured, fit whole");
    }
}
