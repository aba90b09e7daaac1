//! The behaviour contract of `POST /sessions/{id}/messages`, against
//! DynamoDB Local and a scripted LLM server.

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use lambda_http::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, id, spawn_app_for_llm, spawn_app_on, spawn_app_with, unreachable_url};
use llmchat_tests::scripted_llm::{Dialect, Script, ScriptedLlm, Step, reply_steps};

async fn send(t: &TestApp, session: &str, body: Value) -> crate::helpers::TestResponse {
    t.send(Method::POST, &format!("/sessions/{session}/messages"), Some(&body.to_string())).await
}

#[tokio::test]
async fn a_buffered_send_stores_and_returns_the_exchange() {
    let llm = ScriptedLlm::replying(&["Hello", ", ", "world"]).await;
    let t = spawn_app_for_llm(&llm.url, &[]).await;
    let session = id(&t.create_session(r#"{"system_prompt": "Be kind.", "options": {"temperature": 0.5}}"#).await);

    let r = send(&t, &session, json!({"content": "Hi there"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let (user, reply) = (&r.body["user_message"], &r.body["reply"]);
    assert_eq!((user["seq"].as_u64(), user["role"].as_str(), user["content"].as_str()), (Some(1), Some("user"), Some("Hi there")));
    assert_eq!(reply["seq"], 2);
    assert_eq!(reply["role"], "assistant");
    assert_eq!(reply["content"], "Hello, world");
    assert_eq!(reply["status"], "complete");
    assert_eq!(reply["done_reason"], "stop");
    assert_eq!(reply["usage"]["prompt_tokens"], 26);
    assert_eq!(reply["usage"]["completion_tokens"], 7);
    assert_eq!(reply["usage"]["total_duration_ms"], 5000);
    assert_eq!(reply["context_truncated"], false);
    assert_eq!(reply["model"], t.app.config.default_model.as_str());

    let history = t.history(&session).await;
    assert_eq!(history.len(), 2);
    assert_eq!(&history[0], user);
    assert_eq!(&history[1], reply);

    let sent = &llm.requests()[0];
    assert_eq!(sent["model"], t.app.config.default_model.as_str());
    assert_eq!(sent["stream"], true);
    assert_eq!(sent["messages"], json!([{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Hi there"}]));
    assert_eq!(sent["options"]["temperature"], 0.5);
    assert_eq!(sent["options"]["num_ctx"], t.app.config.context_tokens, "the budget and the model agree on the context");
    assert_eq!(sent["options"]["num_predict"], t.app.config.max_reply_tokens, "replies are bounded by default");

    let s = t.send(Method::GET, &format!("/sessions/{session}"), None).await;
    assert_eq!(s.body["message_count"], 2);
}

#[tokio::test]
async fn later_sends_carry_the_history_in_order() {
    let llm = ScriptedLlm::replying(&["ok"]).await;
    let t = spawn_app_for_llm(&llm.url, &[]).await;
    let session = id(&t.create_session("{}").await);
    for text in ["one", "two", "three"] {
        assert_eq!(send(&t, &session, json!({"content": text})).await.status, StatusCode::CREATED);
    }
    let last = &llm.requests()[2]["messages"];
    let contents: Vec<&str> = last.as_array().unwrap().iter().map(|m| m["content"].as_str().unwrap()).collect();
    assert_eq!(contents, ["one", "ok", "two", "ok", "three"]);
    let seqs: Vec<u64> = t.history(&session).await.iter().map(|m| m["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5, 6]);
}

async fn the_user_message_is_stored_before_the_model_is_called(d: Dialect) {
    let llm = ScriptedLlm::start_as(d, move |_| Script { status: 200, steps: reply_steps(&["late"], Duration::from_millis(1500)) }).await;
    let t = spawn_app_on(&llm, &[]).await;
    let session = id(&t.create_session("{}").await);
    let t2 = std::sync::Arc::new(t);
    let t3 = t2.clone();
    let s2 = session.clone();
    let sending = tokio::spawn(async move { send(&t3, &s2, json!({"content": "first words"})).await });

    let history = loop {
        let h = t2.history(&session).await;
        if !h.is_empty() {
            break h;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(history[0]["content"], "first words");
    assert_eq!(history[0]["status"], "complete");
    assert_eq!(history[1]["status"], "streaming", "the reply is a placeholder while the model works");
    let r = sending.await.unwrap();
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(t2.history(&session).await[1]["status"], "complete");
}

async fn a_mid_stream_error_line_stores_the_text_so_far_as_failed(d: Dialect) {
    let llm = ScriptedLlm::start_as(d, move |_| Script {
        status: 200,
        steps: vec![
            Step::Token("Partial ".into()),
            Step::Token("answer".into()),
            Step::ErrorLine("model runner has unexpectedly stopped".into()),
        ],
    })
    .await;
    let t = spawn_app_on(&llm, &[]).await;
    let session = id(&t.create_session("{}").await);
    let r = send(&t, &session, json!({"content": "hi"})).await;
    r.assert_problem(502, "llm_error");
    assert!(!r.body.to_string().contains("unexpectedly stopped"), "the backend's words stay in the logs");
    let history = t.history(&session).await;
    assert_eq!(history[0]["content"], "hi");
    assert_eq!(history[1]["status"], "failed");
    assert_eq!(history[1]["content"], "Partial answer");
    assert_eq!(history[1]["error_code"], "llm_error");
}

async fn a_cut_connection_stores_the_text_so_far_as_failed(d: Dialect) {
    let llm = ScriptedLlm::start_as(d, move |_| Script {
        status: 200,
        steps: vec![Step::Token("Half a".into()), Step::Bytes(d.token(" sentence")[..20].to_vec()), Step::Cut],
    })
    .await;
    let t = spawn_app_on(&llm, &[]).await;
    let session = id(&t.create_session("{}").await);
    send(&t, &session, json!({"content": "hi"})).await.assert_problem(502, "llm_error");
    let history = t.history(&session).await;
    assert_eq!(history[1]["status"], "failed");
    assert_eq!(history[1]["content"], "Half a");
}

async fn characters_split_across_reads_arrive_whole(d: Dialect) {
    let line = d.token("héllo 👋 wörld");
    // Cut inside "é" and inside the emoji, and between the lines.
    let e = line.windows(2).position(|w| w == "é".as_bytes()).unwrap() + 1;
    let wave = line.windows(4).position(|w| w == "👋".as_bytes()).unwrap() + 2;
    let done = d.done();
    let llm = ScriptedLlm::start_as(d, move |_| Script {
        status: 200,
        steps: vec![
            Step::Bytes(line[..e].to_vec()),
            Step::Sleep(Duration::from_millis(20)),
            Step::Bytes(line[e..wave].to_vec()),
            Step::Sleep(Duration::from_millis(20)),
            Step::Bytes([&line[wave..], &done[..5]].concat()),
            Step::Bytes(done[5..].to_vec()),
        ],
    })
    .await;
    let t = spawn_app_on(&llm, &[]).await;
    let session = id(&t.create_session("{}").await);
    let r = send(&t, &session, json!({"content": "hi"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["reply"]["content"], "héllo 👋 wörld");
}

async fn slow_tokens_past_the_idle_timeout_store_an_incomplete_reply(d: Dialect) {
    let llm = ScriptedLlm::start_as(d, move |_| Script {
        status: 200,
        steps: vec![Step::Token("Started".into()), Step::Sleep(Duration::from_secs(3)), Step::Done],
    })
    .await;
    let t = spawn_app_on(&llm, &[("LLMCHAT_LLM_IDLE_TIMEOUT_MS", "300")]).await;
    let session = id(&t.create_session("{}").await);
    send(&t, &session, json!({"content": "hi"})).await.assert_problem(504, "llm_timeout");
    let history = t.history(&session).await;
    assert_eq!(history[1]["status"], "incomplete");
    assert_eq!(history[1]["content"], "Started");
    assert_eq!(history[1]["error_code"], "llm_timeout");
}

async fn a_model_that_never_starts_times_out_on_the_first_token(d: Dialect) {
    let llm = ScriptedLlm::start_as(d, move |_| Script { status: 200, steps: vec![Step::Sleep(Duration::from_secs(5))] }).await;
    let t = spawn_app_on(&llm, &[("LLMCHAT_LLM_FIRST_TOKEN_TIMEOUT_MS", "400")]).await;
    let session = id(&t.create_session("{}").await);
    send(&t, &session, json!({"content": "hi"})).await.assert_problem(504, "llm_timeout");
    let history = t.history(&session).await;
    assert_eq!(history[0]["content"], "hi");
    assert_eq!(history[1]["status"], "failed");
}

async fn an_unknown_model_is_model_not_found_and_keeps_the_message(d: Dialect) {
    let llm = ScriptedLlm::start_as(d, |req| Script::refusal(404, &format!("model '{}' not found", req["model"].as_str().unwrap()))).await;
    let t = spawn_app_on(&llm, &[]).await;
    let session = id(&t.create_session(r#"{"model": "no-such-model:1b"}"#).await);
    let r = send(&t, &session, json!({"content": "hi"})).await;
    r.assert_problem(422, "model_not_found");
    assert!(r.body["detail"].as_str().unwrap().contains("no-such-model:1b"));
    let history = t.history(&session).await;
    assert_eq!(history[0]["content"], "hi");
    assert_eq!(history[1]["status"], "failed");
    assert_eq!(history[1]["error_code"], "model_not_found");
}

async fn the_llm_being_down_is_a_fast_503_with_the_message_kept(d: Dialect) {
    // A port nothing listens on.
    let url = unreachable_url();
    let backend = d.backend_var(&url);
    let t = spawn_app_with(&[("LLMCHAT_BACKENDS", &backend)]).await;
    let session = id(&t.create_session("{}").await);
    let started = Instant::now();
    let r = send(&t, &session, json!({"content": "anyone there?"})).await;
    r.assert_problem(503, "llm_unavailable");
    // Far below the two-minute first-token wait: the failure is not waited out.
    assert!(started.elapsed() < Duration::from_secs(20), "took {:?}", started.elapsed());
    let history = t.history(&session).await;
    assert_eq!(history[0]["content"], "anyone there?");
    assert_eq!(history[1]["status"], "failed");
    assert_eq!(history[1]["error_code"], "llm_unavailable");
}

#[tokio::test]
async fn a_retry_with_the_same_client_message_id_returns_the_original_exchange() {
    let llm = ScriptedLlm::replying(&["only once"]).await;
    let t = spawn_app_for_llm(&llm.url, &[]).await;
    let session = id(&t.create_session("{}").await);
    let body = json!({"content": "hello", "client_message_id": "msg-1"});
    let first = send(&t, &session, body.clone()).await;
    assert_eq!(first.status, StatusCode::CREATED);
    let second = send(&t, &session, body).await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.body);
    assert_eq!(second.body, first.body);
    assert_eq!(llm.requests().len(), 1, "the model was asked once");
    assert_eq!(t.history(&session).await.len(), 2, "nothing was stored twice");

    let reused = send(&t, &session, json!({"content": "something else", "client_message_id": "msg-1"})).await;
    reused.assert_problem(422, "idempotency_key_reused");
    assert_eq!(t.history(&session).await.len(), 2);
}

async fn a_second_send_while_a_reply_is_generated_is_409(d: Dialect) {
    let llm = ScriptedLlm::start_as(d, move |_| Script { status: 200, steps: reply_steps(&["slow"], Duration::from_millis(1500)) }).await;
    let t = std::sync::Arc::new(spawn_app_on(&llm, &[]).await);
    let session = id(&t.create_session("{}").await);
    let (t2, s2) = (t.clone(), session.clone());
    let first = tokio::spawn(async move { send(&t2, &s2, json!({"content": "first", "client_message_id": "a"})).await });
    while t.history(&session).await.is_empty() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    send(&t, &session, json!({"content": "second"})).await.assert_problem(409, "reply_in_progress");
    // A retry of the exchange in progress is told to wait too.
    send(&t, &session, json!({"content": "first", "client_message_id": "a"})).await.assert_problem(409, "reply_in_progress");
    assert_eq!(first.await.unwrap().status, StatusCode::CREATED);
    assert_eq!(t.history(&session).await.len(), 2);
    assert_eq!(send(&t, &session, json!({"content": "third"})).await.status, StatusCode::CREATED, "free again");
}

#[tokio::test]
async fn seq_stays_strictly_increasing_under_concurrent_sends() {
    let llm = ScriptedLlm::start(|_| Script { status: 200, steps: reply_steps(&["r"], Duration::from_millis(50)) }).await;
    let t = std::sync::Arc::new(spawn_app_for_llm(&llm.url, &[]).await);
    let session = id(&t.create_session("{}").await);
    let mut accepted = 0;
    for round in 0..3 {
        let tasks: Vec<_> = (0..6)
            .map(|i| {
                let (t, s) = (t.clone(), session.clone());
                tokio::spawn(async move { send(&t, &s, json!({"content": format!("r{round} m{i}")})).await.status })
            })
            .collect();
        for task in tasks {
            match task.await.unwrap().as_u16() {
                201 => accepted += 1,
                409 => {}
                other => panic!("unexpected status {other}"),
            }
        }
    }
    assert!(accepted >= 3, "at least one send per round gets through");
    let history = t.history(&session).await;
    let seqs: Vec<u64> = history.iter().map(|m| m["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=2 * accepted as u64).collect::<Vec<_>>(), "no gap, no duplicate");
    for pair in history.chunks(2) {
        assert_eq!((pair[0]["role"].as_str(), pair[1]["role"].as_str()), (Some("user"), Some("assistant")));
    }
}

#[tokio::test]
async fn a_reply_left_streaming_past_its_lease_reads_as_incomplete_and_frees_the_session() {
    let llm = ScriptedLlm::replying(&["fresh"]).await;
    let t = spawn_app_for_llm(&llm.url, &[]).await;
    let session = id(&t.create_session("{}").await);
    assert_eq!(send(&t, &session, json!({"content": "one"})).await.status, StatusCode::CREATED);
    // As if the function died mid-reply: status streaming, lease in the past.
    let table = t.app.store.table();
    t.app
        .store
        .client()
        .update_item()
        .table_name(table)
        .key("PK", AttributeValue::S(format!("SESSION#{session}")))
        .key("SK", AttributeValue::S(llmchat::store::dynamo::schema::message_sk(2)))
        .update_expression("SET #s = :streaming, lease_until = :past, content = :partial")
        .expression_attribute_names("#s", "status")
        .expression_attribute_values(":streaming", AttributeValue::S("streaming".into()))
        .expression_attribute_values(":past", AttributeValue::S("2020-01-01T00:00:00.000Z".into()))
        .expression_attribute_values(":partial", AttributeValue::S("cut off".into()))
        .send()
        .await
        .unwrap();
    let history = t.history(&session).await;
    assert_eq!(history[1]["status"], "incomplete");
    assert_eq!(history[1]["content"], "cut off");
    let r = send(&t, &session, json!({"content": "two"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "an abandoned reply does not block the session: {}", r.body);
}

#[tokio::test]
async fn long_replies_are_checkpointed_while_they_stream() {
    let tokens: Vec<String> = (0..30).map(|i| format!("t{i} ")).collect();
    let refs: Vec<&str> = tokens.iter().map(String::as_str).collect();
    let steps = reply_steps(&refs, Duration::from_millis(150));
    let llm = ScriptedLlm::start(move |_| Script { status: 200, steps: steps.clone() }).await;
    let t = std::sync::Arc::new(spawn_app_for_llm(&llm.url, &[]).await);
    let session = id(&t.create_session("{}").await);
    let (t2, s2) = (t.clone(), session.clone());
    let sending = tokio::spawn(async move { send(&t2, &s2, json!({"content": "go"})).await });
    // About 4.5 s of tokens and a save at most every 2 s: text shows up before the end.
    let mut partial = None;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let h = t.history(&session).await;
        if h.len() == 2 && h[1]["status"] == "streaming" && !h[1]["content"].as_str().unwrap().is_empty() {
            partial = Some(h[1]["content"].as_str().unwrap().to_owned());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let partial = partial.expect("a checkpoint is visible while the reply streams");
    assert!(partial.starts_with("t0 t1 "), "{partial}");
    let done = sending.await.unwrap();
    assert_eq!(done.body["reply"]["content"], tokens.concat());
    assert!(done.body["reply"]["content"].as_str().unwrap().len() > partial.len());
}

#[tokio::test]
async fn history_beyond_the_context_budget_drops_the_oldest_turns_and_says_so() {
    let llm = ScriptedLlm::replying(&["ok"]).await;
    let t = spawn_app_for_llm(&llm.url, &[]).await;
    // 256 tokens of context, 16 kept for the reply.
    let session = id(&t.create_session(r#"{"system_prompt": "SYSTEM", "options": {"num_ctx": 256, "num_predict": 16}}"#).await);
    for i in 0..8 {
        let r = send(&t, &session, json!({"content": format!("turn {i} {}", "x".repeat(200))})).await;
        assert_eq!(r.status, StatusCode::CREATED);
    }
    let first = &t.history(&session).await[1];
    assert_eq!(first["context_truncated"], false);
    let r = send(&t, &session, json!({"content": "last"})).await;
    assert_eq!(r.body["reply"]["context_truncated"], true);
    let sent = llm.requests().last().unwrap()["messages"].as_array().unwrap().clone();
    assert_eq!(sent[0], json!({"role": "system", "content": "SYSTEM"}), "the system prompt always stays");
    assert_eq!(sent.last().unwrap()["content"], "last");
    let texts: Vec<String> = sent.iter().map(|m| m["content"].as_str().unwrap().to_owned()).collect();
    assert!(!texts.iter().any(|c| c.starts_with("turn 0 ")), "the oldest turn went first: {texts:?}");
    assert!(texts.iter().any(|c| c.starts_with("turn 7 ")), "the newest turn stayed: {texts:?}");
    let estimated: usize = texts.iter().map(|c| c.chars().count().div_ceil(4) + 4).sum();
    assert!(estimated <= 256 - 16, "the request fits the budget ({estimated} tokens)");
}

#[tokio::test]
async fn history_pages_in_both_orders() {
    let llm = ScriptedLlm::replying(&["r"]).await;
    let t = spawn_app_for_llm(&llm.url, &[]).await;
    let session = id(&t.create_session("{}").await);
    for i in 0..4 {
        send(&t, &session, json!({"content": format!("m{i}")})).await;
    }
    for (order, expected) in [("asc", (1..=8).collect::<Vec<u64>>()), ("desc", (1..=8).rev().collect())] {
        let mut seqs = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/sessions/{session}/messages?order={order}&limit=3&cursor={c}"),
                None => format!("/sessions/{session}/messages?order={order}&limit=3"),
            };
            let r = t.send(Method::GET, &path, None).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            seqs.extend(r.body["items"].as_array().unwrap().iter().map(|m| m["seq"].as_u64().unwrap()));
            match r.body["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
        }
        assert_eq!(seqs, expected, "{order}");
    }
    let first = t.send(Method::GET, &format!("/sessions/{session}/messages?order=asc&limit=2"), None).await;
    let c = first.body["next_cursor"].as_str().unwrap();
    t.send(Method::GET, &format!("/sessions/{session}/messages?order=desc&cursor={c}"), None)
        .await
        .assert_problem(400, "invalid_request");
    t.send(Method::GET, &format!("/sessions/{session}/messages?order=sideways"), None).await.assert_problem(400, "invalid_request");
    // A forged cursor at the largest seq there can be: an empty page, not an overflow.
    let forged = "eyJzIjoxODQ0Njc0NDA3MzcwOTU1MTYxNSwibyI6ImFzYyJ9";
    let r = t.send(Method::GET, &format!("/sessions/{session}/messages?cursor={forged}"), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body["items"].as_array().unwrap().is_empty());
    let (_, other) = t.new_owner().await;
    t.send_as(Some(&other), Method::GET, &format!("/sessions/{session}/messages"), None).await.assert_problem(404, "not_found");
    t.send_as(Some(&other), Method::POST, &format!("/sessions/{session}/messages"), Some(r#"{"content":"x"}"#))
        .await
        .assert_problem(404, "not_found");
}

#[tokio::test]
async fn bad_send_bodies_store_nothing() {
    let llm = ScriptedLlm::replying(&["r"]).await;
    let t = spawn_app_for_llm(&llm.url, &[]).await;
    let session = id(&t.create_session("{}").await);
    let too_long = "x".repeat(llmchat::domain::limits::MAX_MESSAGE_CHARS + 1);
    for (body, status) in [
        ("{".to_owned(), 400),
        ("{}".to_owned(), 422),
        (json!({"content": ""}).to_string(), 422),
        (json!({"content": 5}).to_string(), 422),
        (json!({"content": too_long}).to_string(), 422),
        (json!({"content": "x", "client_message_id": "has space"}).to_string(), 422),
        (json!({"content": "x", "options": {"temperature": -1}}).to_string(), 422),
        (json!({"content": "x", "extra": 1}).to_string(), 422),
    ] {
        let r = t.send(Method::POST, &format!("/sessions/{session}/messages"), Some(&body)).await;
        r.assert_problem(status, "invalid_request");
    }
    let beyond = json!({"content": "x", "options": {"num_ctx": 1_048_576}}).to_string();
    let r = t.send(Method::POST, &format!("/sessions/{session}/messages"), Some(&beyond)).await;
    r.assert_problem(422, "not_allowed");
    let r = t.send(Method::POST, &format!("/sessions/{}/messages", uuid::Uuid::new_v4()), Some(r#"{"content":"x"}"#)).await;
    r.assert_problem(404, "not_found");
    assert!(t.history(&session).await.is_empty());
    assert!(llm.requests().is_empty());
}

#[tokio::test]
async fn a_reply_that_cannot_be_stored_is_reported_not_passed_off_as_complete() {
    let llm = ScriptedLlm::start(|_| Script { status: 200, steps: reply_steps(&["lost"], Duration::from_millis(1200)) }).await;
    let t = std::sync::Arc::new(spawn_app_for_llm(&llm.url, &[]).await);
    let session = id(&t.create_session("{}").await);
    let (t2, s2) = (t.clone(), session.clone());
    let sending = tokio::spawn(async move { send(&t2, &s2, json!({"content": "hi"})).await });
    while t.history(&session).await.is_empty() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Storage goes away while the model is still writing.
    t.app.store.client().delete_table().table_name(t.app.store.table()).send().await.unwrap();
    sending.await.unwrap().assert_problem(503, "storage_unavailable");
}

crate::both_dialects!(
    the_user_message_is_stored_before_the_model_is_called,
    a_mid_stream_error_line_stores_the_text_so_far_as_failed,
    a_cut_connection_stores_the_text_so_far_as_failed,
    characters_split_across_reads_arrive_whole,
    slow_tokens_past_the_idle_timeout_store_an_incomplete_reply,
    a_model_that_never_starts_times_out_on_the_first_token,
    an_unknown_model_is_model_not_found_and_keeps_the_message,
    the_llm_being_down_is_a_fast_503_with_the_message_kept,
    a_second_send_while_a_reply_is_generated_is_409,
);
