//! `POST /sessions/{id}/messages/stream`: the event protocol, keep-alives,
//! errors inside the stream, and a reader that goes away.

use std::time::{Duration, Instant};

use lambda_http::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, id, spawn_app_for_llm, spawn_app_on, spawn_app_with, unreachable_url};
use llmchat_tests::scripted_llm::{Dialect, Script, ScriptedLlm, Step, reply_steps};

/// One parsed SSE event.
#[derive(Debug)]
pub struct Event {
    /// A position in the reply: `0`, a byte offset, or `end`.
    pub id: String,
    pub name: String,
    pub data: Value,
}

/// Events and the number of keep-alive comments in an SSE text.
pub fn parse_sse(text: &str) -> (Vec<Event>, usize) {
    let mut events = Vec::new();
    let mut keepalives = 0;
    for block in text.split("\n\n").filter(|b| !b.is_empty()) {
        if block == ": keep-alive" {
            keepalives += 1;
            continue;
        }
        let field = |name: &str| {
            block.lines().find_map(|l| l.strip_prefix(&format!("{name}: "))).unwrap_or_else(|| panic!("no {name} in {block}"))
        };
        events.push(Event {
            id: field("id").to_owned(),
            name: field("event").to_owned(),
            data: serde_json::from_str(field("data")).unwrap(),
        });
    }
    (events, keepalives)
}

pub async fn stream(t: &TestApp, session: &str, body: Value) -> crate::helpers::TestResponse {
    t.send(Method::POST, &format!("/sessions/{session}/messages/stream"), Some(&body.to_string())).await
}

async fn a_stream_is_created_then_deltas_then_exactly_one_completed(d: Dialect) {
    let llm = ScriptedLlm::replying_as(d, &["Bom", " dia", "!"]).await;
    let t = spawn_app_on(&llm, &[]).await;
    let session = id(&t.create_session("{}").await);
    let r = stream(&t, &session, json!({"content": "Olá"})).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.content_type, "text/event-stream");
    assert_eq!(r.headers["cache-control"], "no-cache, no-transform");
    assert_eq!(r.headers["x-accel-buffering"], "no");

    let (events, _) = parse_sse(&r.text);
    let names: Vec<&str> = events.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["message.created", "reply.delta", "reply.delta", "reply.delta", "reply.completed"]);
    let ids: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["0", "3", "7", "8", "end"], "every event carries its position: bytes of the reply so far");

    let created = &events[0].data;
    assert_eq!(created["user_message"]["content"], "Olá");
    let reply_id = created["reply_id"].as_str().unwrap();
    let deltas: String = events[1..4].iter().map(|e| e.data["delta"].as_str().unwrap()).collect();
    assert_eq!(deltas, "Bom dia!");
    assert!(events[1..4].iter().all(|e| e.data["reply_id"] == reply_id));
    let reply = &events[4].data["reply"];
    assert_eq!(reply["id"], reply_id);
    assert_eq!(reply["content"], "Bom dia!");
    assert_eq!(reply["status"], "complete");
    assert_eq!(reply["usage"]["completion_tokens"], 7);

    let history = t.history(&session).await;
    assert_eq!(history[0], created["user_message"]);
    assert_eq!(&history[1], reply);
}

async fn keep_alives_fill_every_silence_before_and_after_the_first_token(d: Dialect) {
    let llm = ScriptedLlm::start_as(d, move |_| Script {
        status: 200,
        steps: [vec![Step::Sleep(Duration::from_millis(550))], reply_steps(&["a", "b"], Duration::from_millis(250))].concat(),
    })
    .await;
    let t = spawn_app_on(&llm, &[("LLMCHAT_SSE_KEEPALIVE_MS", "100")]).await;
    let session = id(&t.create_session("{}").await);
    let r = stream(&t, &session, json!({"content": "hi"})).await;
    let first_delta = r.text.find("event: reply.delta").unwrap();
    let before = r.text[..first_delta].matches(": keep-alive").count();
    let after = r.text[first_delta..].matches(": keep-alive").count();
    assert!(before >= 3, "keep-alives while waiting for the first token: {before}");
    assert!(after >= 1, "keep-alives fill the 250 ms silences between tokens too: {after}");
    let (events, _) = parse_sse(&r.text);
    assert_eq!(events.last().unwrap().name, "reply.completed");
}

async fn a_mid_stream_failure_ends_with_one_error_event_and_keeps_the_text(d: Dialect) {
    let llm = ScriptedLlm::start_as(d, move |_| Script {
        status: 200,
        steps: vec![Step::Token("Some ".into()), Step::Token("text".into()), Step::ErrorLine("boom".into())],
    })
    .await;
    let t = spawn_app_on(&llm, &[]).await;
    let session = id(&t.create_session("{}").await);
    let r = stream(&t, &session, json!({"content": "hi"})).await;
    assert_eq!(r.status, StatusCode::OK, "the stream had started");
    let (events, _) = parse_sse(&r.text);
    let names: Vec<&str> = events.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["message.created", "reply.delta", "reply.delta", "error"]);
    let error = &events[3].data;
    assert_eq!(error["problem"]["code"], "llm_error");
    assert_eq!(error["problem"]["status"], 502);
    assert_eq!(error["partial_saved"], true);
    assert_eq!(error["reply_id"], events[0].data["reply_id"]);
    let history = t.history(&session).await;
    assert_eq!(history[1]["status"], "failed");
    assert_eq!(history[1]["content"], "Some text");
}

async fn the_llm_being_down_is_an_error_event_with_the_message_kept(d: Dialect) {
    let url = unreachable_url();
    let t = spawn_app_with(&[("LLMCHAT_BACKENDS", &d.backend_var(&url))]).await;
    let session = id(&t.create_session("{}").await);
    let r = stream(&t, &session, json!({"content": "hello?"})).await;
    let (events, _) = parse_sse(&r.text);
    let names: Vec<&str> = events.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["message.created", "error"]);
    assert_eq!(events[1].data["problem"]["code"], "llm_unavailable");
    assert_eq!(events[1].data["problem"]["status"], 503);
    assert_eq!(events[1].data["partial_saved"], false);
    assert_eq!(t.history(&session).await[0]["content"], "hello?");
}

#[tokio::test]
async fn problems_before_the_model_is_called_are_plain_problem_responses() {
    let llm = ScriptedLlm::start(|_| Script { status: 200, steps: reply_steps(&["slow"], Duration::from_millis(1200)) }).await;
    let t = std::sync::Arc::new(spawn_app_for_llm(&llm.url, &[]).await);
    let session = id(&t.create_session("{}").await);
    stream(&t, &session, json!({"content": ""})).await.assert_problem(422, "invalid_request");
    stream(&t, &uuid::Uuid::new_v4().to_string(), json!({"content": "x"})).await.assert_problem(404, "not_found");
    let (t2, s2) = (t.clone(), session.clone());
    let first = tokio::spawn(async move { stream(&t2, &s2, json!({"content": "first"})).await });
    while t.history(&session).await.is_empty() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stream(&t, &session, json!({"content": "second"})).await.assert_problem(409, "reply_in_progress");
    let (events, _) = parse_sse(&first.await.unwrap().text);
    assert_eq!(events.last().unwrap().name, "reply.completed");
}

#[tokio::test]
async fn a_retried_stream_replays_the_stored_exchange() {
    let llm = ScriptedLlm::replying(&["once"]).await;
    let t = spawn_app_for_llm(&llm.url, &[]).await;
    let session = id(&t.create_session("{}").await);
    let body = json!({"content": "hi", "client_message_id": "retry-me"});
    let (first, _) = parse_sse(&stream(&t, &session, body.clone()).await.text);
    let (again, _) = parse_sse(&stream(&t, &session, body).await.text);
    let names: Vec<&str> = again.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["message.created", "reply.completed"]);
    assert_eq!(again[1].data["reply"], first.last().unwrap().data["reply"]);
    assert_eq!(llm.requests().len(), 1);
    assert_eq!(t.history(&session).await.len(), 2);
}

async fn a_reader_that_goes_away_loses_nothing(d: Dialect) {
    let tokens: Vec<String> = (0..12).map(|i| format!("w{i} ")).collect();
    let refs: Vec<&str> = tokens.iter().map(String::as_str).collect();
    let steps = reply_steps(&refs, Duration::from_millis(100));
    let llm = ScriptedLlm::start_as(d, move |_| Script { status: 200, steps: steps.clone() }).await;
    let t = spawn_app_on(&llm, &[]).await;
    let session = id(&t.create_session("{}").await);

    let response = t.open_stream(&session, r#"{"content": "tell me"}"#).await;
    let mut body = response.into_body();
    // Read until the first delta, then hang up.
    let mut seen = String::new();
    while !seen.contains("reply.delta") {
        let frame = http_body_util::BodyExt::frame(&mut body).await.unwrap().unwrap();
        seen.push_str(&String::from_utf8_lossy(frame.data_ref().unwrap()));
    }
    drop(body);

    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let history = t.history(&session).await;
        if history.len() == 2 && history[1]["status"] == "complete" {
            assert_eq!(history[1]["content"], tokens.concat(), "the whole reply was generated and stored");
            break;
        }
        assert!(Instant::now() < deadline, "reply not stored: {history:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn deltas_reach_the_reader_as_they_are_generated(d: Dialect) {
    let steps = reply_steps(&["one ", "two ", "three ", "four"], Duration::from_millis(300));
    let llm = ScriptedLlm::start_as(d, move |_| Script { status: 200, steps: steps.clone() }).await;
    let t = spawn_app_on(&llm, &[]).await;
    let session = id(&t.create_session("{}").await);
    let started = Instant::now();
    let mut body = t.open_stream(&session, r#"{"content": "count"}"#).await.into_body();
    let mut first_delta = None;
    let mut text = String::new();
    while let Some(frame) = http_body_util::BodyExt::frame(&mut body).await {
        text.push_str(&String::from_utf8_lossy(frame.unwrap().data_ref().unwrap()));
        if first_delta.is_none() && text.contains("reply.delta") {
            first_delta = Some(started.elapsed());
        }
    }
    let total = started.elapsed();
    let first_delta = first_delta.expect("a delta arrived");
    // Four tokens 300 ms apart: the first is read about 900 ms before the stream ends.
    assert!(total - first_delta >= Duration::from_millis(600), "first delta at {first_delta:?}, end at {total:?}");
}

crate::both_dialects!(
    a_stream_is_created_then_deltas_then_exactly_one_completed,
    keep_alives_fill_every_silence_before_and_after_the_first_token,
    a_mid_stream_failure_ends_with_one_error_event_and_keeps_the_text,
    the_llm_being_down_is_an_error_event_with_the_message_kept,
    a_reader_that_goes_away_loses_nothing,
    deltas_reach_the_reader_as_they_are_generated,
);
