//! Durable replies through the functions: rejoin a reply from any position
//! (`GET …/messages/{reply}/stream`), stop it from another request
//! (`POST …/messages/{reply}/cancel`), against DynamoDB Local and the scripted LLM.

use std::time::{Duration, Instant};

use lambda_http::http::{Method, StatusCode};
use llmchat::testing;
use serde_json::json;

use crate::helpers::{TestApp, TestResponse, id, spawn_app_on};
use crate::stream::{Event, parse_sse, stream};
use llmchat_tests::scripted_llm::{Dialect, Script, ScriptedLlm, reply_steps};

fn tokens(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("tök{i} ")).collect()
}

async fn slow_llm(d: Dialect, tokens: &[String], pause: Duration) -> ScriptedLlm {
    let refs: Vec<&str> = tokens.iter().map(String::as_str).collect();
    let steps = reply_steps(&refs, pause);
    ScriptedLlm::start_as(d, move |_| Script { status: 200, steps: steps.clone() }).await
}

/// `GET …/messages/{reply}/stream`, with `Last-Event-ID` when given.
async fn resume(t: &TestApp, key: &str, session: &str, reply: &str, last_event_id: Option<&str>) -> TestResponse {
    let path = format!("/sessions/{session}/messages/{reply}/stream");
    let mut req = testing::request(Method::GET, &path, Some(key), None);
    if let Some(position) = last_event_id {
        req.headers_mut().insert("last-event-id", position.parse().unwrap());
    }
    t.dispatch(Method::GET, req).await
}

fn deltas(events: &[Event]) -> String {
    events.iter().filter(|e| e.name == "reply.delta").map(|e| e.data["delta"].as_str().unwrap()).collect()
}

async fn stored_reply(t: &TestApp, session: &str) -> serde_json::Value {
    t.history(session).await.last().cloned().unwrap()
}

async fn a_finished_reply_resumes_from_the_start_the_middle_the_last_event_and_after_the_end(d: Dialect) {
    let words = tokens(6);
    let llm = slow_llm(d, &words, Duration::ZERO).await;
    let t = spawn_app_on(&llm, &[]).await;
    let session = id(&t.create_session("{}").await);
    let (events, _) = parse_sse(&stream(&t, &session, json!({"content": "go"})).await.text);
    let reply_id = events[0].data["reply_id"].as_str().unwrap().to_owned();
    let whole = stored_reply(&t, &session).await["content"].as_str().unwrap().to_owned();
    assert_eq!(whole, words.concat());

    // From the start: everything, then the last event.
    let r = resume(&t, &t.key, &session, &reply_id, None).await;
    assert_eq!(r.status, StatusCode::OK);
    let (from_start, _) = parse_sse(&r.text);
    assert_eq!(deltas(&from_start), whole);
    assert_eq!(from_start.last().map(|e| (e.name.as_str(), e.id.as_str())), Some(("reply.completed", "end")));

    // From every delta the first stream sent: exactly the rest, no gap, no repeat.
    for (i, event) in events.iter().enumerate().filter(|(_, e)| e.name == "reply.delta") {
        let r = resume(&t, &t.key, &session, &reply_id, Some(&event.id)).await;
        let (rest, _) = parse_sse(&r.text);
        assert_eq!(format!("{}{}", deltas(&events[..=i]), deltas(&rest)), whole, "after {}", event.id);
        assert_eq!(rest.last().unwrap().name, "reply.completed");
        assert_eq!(rest.iter().filter(|e| e.name == "reply.completed").count(), 1);
    }
    // After the last event: nothing follows, and EventSource is told to stop.
    let r = resume(&t, &t.key, &session, &reply_id, Some("end")).await;
    assert_eq!((r.status, r.text.as_str()), (StatusCode::NO_CONTENT, ""));
    // `?after=` works like the header.
    let r = t.send(Method::GET, &format!("/sessions/{session}/messages/{reply_id}/stream?after=0"), None).await;
    assert_eq!(deltas(&parse_sse(&r.text).0), whole);
}

async fn unknown_positions_are_400_and_other_owners_404(d: Dialect) {
    let llm = slow_llm(d, &tokens(3), Duration::ZERO).await;
    let t = spawn_app_on(&llm, &[]).await;
    let session = id(&t.create_session("{}").await);
    let (events, _) = parse_sse(&stream(&t, &session, json!({"content": "go"})).await.text);
    let reply_id = events[0].data["reply_id"].as_str().unwrap().to_owned();
    let user_id = events[0].data["user_message"]["id"].as_str().unwrap().to_owned();

    for garbage in ["abc", "-1", "1e3", "99999", "2", "9999999999999999999999"] {
        resume(&t, &t.key, &session, &reply_id, Some(garbage)).await.assert_problem(400, "invalid_request");
    }
    let (_, stranger) = t.new_owner().await;
    resume(&t, &stranger, &session, &reply_id, None).await.assert_problem(404, "not_found");
    resume(&t, &t.key, &session, &user_id, None).await.assert_problem(404, "not_found");
    resume(&t, &t.key, &session, "not-a-uuid", None).await.assert_problem(400, "invalid_request");
    let cancel = format!("/sessions/{session}/messages/{reply_id}/cancel");
    t.send_as(Some(&stranger), Method::POST, &cancel, None).await.assert_problem(404, "not_found");
}

async fn a_reader_that_leaves_rejoins_through_another_request_and_sees_the_rest_live(d: Dialect) {
    let words = tokens(20);
    let llm = slow_llm(d, &words, Duration::from_millis(100)).await;
    let t = spawn_app_on(&llm, &[]).await;
    let session = id(&t.create_session("{}").await);

    // Read the first few deltas, then hang up.
    let mut body = t.open_stream(&session, r#"{"content": "tell me"}"#).await.into_body();
    let mut text = String::new();
    while parse_sse(&text).0.iter().filter(|e| e.name == "reply.delta").count() < 3 || !text.ends_with("\n\n") {
        let frame = http_body_util::BodyExt::frame(&mut body).await.unwrap().unwrap();
        text.push_str(&String::from_utf8_lossy(frame.data_ref().unwrap()));
    }
    drop(body);
    let (seen, _) = parse_sse(&text);
    let reply_id = seen[0].data["reply_id"].as_str().unwrap().to_owned();
    let last = seen.last().unwrap();
    assert_eq!(last.name, "reply.delta");

    // Rejoin from the last event seen: the rest arrives while it is generated.
    let started = Instant::now();
    let r = resume(&t, &t.key, &session, &reply_id, Some(&last.id)).await;
    let (rest, _) = parse_sse(&r.text);
    assert!(rest.iter().filter(|e| e.name == "reply.delta").count() > 1, "followed live, in pieces: {}", r.text);
    assert!(started.elapsed() >= Duration::from_millis(500), "it waited for the model");
    assert_eq!(format!("{}{}", deltas(&seen), deltas(&rest)), words.concat(), "no gap, no repeat");
    assert_eq!(rest.last().unwrap().name, "reply.completed");
    assert_eq!(stored_reply(&t, &session).await["content"], words.concat());
}

async fn a_cancel_from_another_request_stops_the_model_and_ends_the_stream(d: Dialect) {
    let words = tokens(100);
    let llm = slow_llm(d, &words, Duration::from_millis(50)).await;
    let t = std::sync::Arc::new(spawn_app_on(&llm, &[]).await);
    let session = id(&t.create_session("{}").await);
    let (t2, s2) = (t.clone(), session.clone());
    let streaming = tokio::spawn(async move { stream(&t2, &s2, json!({"content": "go on"})).await });

    // Find the reply while it streams, then stop it from another request.
    let deadline = Instant::now() + Duration::from_secs(10);
    let reply_id = loop {
        let history = t.history(&session).await;
        if let Some(reply) = history.get(1).filter(|r| r["content"].as_str().is_some_and(|c| !c.is_empty())) {
            break reply["id"].as_str().unwrap().to_owned();
        }
        assert!(Instant::now() < deadline, "no text stored yet");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let cancel = format!("/sessions/{session}/messages/{reply_id}/cancel");
    let r = t.send(Method::POST, &cancel, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["status"], "cancelled");
    let kept = r.body["content"].as_str().unwrap().to_owned();
    assert!(!kept.is_empty() && words.concat().starts_with(&kept), "the text so far: {kept}");

    let (events, _) = parse_sse(&streaming.await.unwrap().text);
    let last = events.last().unwrap();
    assert_eq!((last.name.as_str(), last.id.as_str()), ("reply.cancelled", "end"));
    assert_eq!(last.data["reply"]["content"], kept.as_str());
    assert_eq!(deltas(&events), kept, "the reader saw what is stored");
    let deadline = Instant::now() + Duration::from_secs(5);
    while llm.hung_up() == 0 {
        assert!(Instant::now() < deadline, "the model's connection was closed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Idempotent, and the session takes a new send at once.
    let again = t.send(Method::POST, &cancel, None).await;
    assert_eq!((again.status, &again.body), (StatusCode::OK, &r.body));
    let next = t.send(Method::POST, &format!("/sessions/{session}/messages"), Some(r#"{"content": "next"}"#)).await;
    assert_eq!(next.status, StatusCode::CREATED, "{}", next.body);
    assert_eq!(t.history(&session).await[1]["status"], "cancelled");
}

async fn cancelling_an_ended_reply_changes_nothing(d: Dialect) {
    let llm = slow_llm(d, &tokens(3), Duration::ZERO).await;
    let t = spawn_app_on(&llm, &[]).await;
    let session = id(&t.create_session("{}").await);
    let (events, _) = parse_sse(&stream(&t, &session, json!({"content": "go"})).await.text);
    let reply_id = events[0].data["reply_id"].as_str().unwrap();
    let before = stored_reply(&t, &session).await;
    let r = t.send(Method::POST, &format!("/sessions/{session}/messages/{reply_id}/cancel"), None).await;
    assert_eq!((r.status, &r.body), (StatusCode::OK, &before));
    assert_eq!(stored_reply(&t, &session).await, before);
}

crate::both_dialects!(
    a_finished_reply_resumes_from_the_start_the_middle_the_last_event_and_after_the_end,
    unknown_positions_are_400_and_other_owners_404,
    a_reader_that_leaves_rejoins_through_another_request_and_sees_the_rest_live,
    a_cancel_from_another_request_stops_the_model_and_ends_the_stream,
    cancelling_an_ended_reply_changes_nothing,
);
