//! What modern models say, through the API, on both backends: thinking
//! streamed and stored apart, structured output asked for and recorded, a
//! busy backend, the deployment's allow-list, and backend keys kept secret.

use std::time::Duration;

use lambda_http::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Captured, id, spawn_app_on, spawn_app_with};
use crate::stream::{parse_sse, stream};
use llmchat_tests::scripted_llm::{Dialect, Script, ScriptedLlm, Step};

fn thinking_then_answer() -> Vec<Step> {
    vec![
        Step::Thinking("The user ".into()),
        Step::Sleep(Duration::from_millis(300)),
        Step::Thinking("greets me.".into()),
        Step::Token("Hi".into()),
        Step::Token("!".into()),
        Step::Done,
    ]
}

async fn thinking_streams_as_its_own_events_and_is_stored_apart(d: Dialect) {
    let llm = ScriptedLlm::start_as(d, |_| Script::ok(thinking_then_answer())).await;
    let t = spawn_app_on(&llm, &[]).await;
    let session = id(&t.create_session(r#"{"options": {"think": true}}"#).await);
    let r = stream(&t, &session, json!({"content": "Hello"})).await;
    let (events, _) = parse_sse(&r.text);
    let names: Vec<&str> = events.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        ["message.created", "reply.thinking.delta", "reply.thinking.delta", "reply.delta", "reply.delta", "reply.completed"]
    );
    let ids: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["0", "9", "19", "21", "22", "end"], "positions count thinking, then text");
    let reply = &events.last().unwrap().data["reply"];
    assert_eq!(reply["thinking"], "The user greets me.");
    assert_eq!(reply["content"], "Hi!");
    assert_eq!(reply["usage"]["thinking_tokens"], 2);

    // Resumed from inside the thinking: the rest of it, then the text.
    let reply_id = reply["id"].as_str().unwrap();
    let resumed = t.send(Method::GET, &format!("/sessions/{session}/messages/{reply_id}/stream?after=9"), None).await;
    let (events, _) = parse_sse(&resumed.text);
    let deltas: Vec<(&str, &str)> = events.iter().filter(|e| e.name != "reply.completed").map(|e| (e.name.as_str(), e.data["delta"].as_str().unwrap())).collect();
    assert_eq!(deltas, [("reply.thinking.delta", "greets me."), ("reply.delta", "Hi!")]);

    // The history keeps them apart; the next turn sends the answer only.
    let history = t.history(&session).await;
    assert_eq!((history[1]["thinking"].as_str(), history[1]["content"].as_str()), (Some("The user greets me."), Some("Hi!")));
    assert_eq!(t.send(Method::POST, &format!("/sessions/{session}/messages"), Some(r#"{"content": "Again"}"#)).await.status, StatusCode::CREATED);
    let sent = &llm.requests()[1]["messages"];
    assert_eq!(sent[1], json!({"role": "assistant", "content": "Hi!"}));
    assert!(!sent.to_string().contains("greets me"), "thinking is never sent back");
    match d {
        Dialect::Ollama => assert_eq!(llm.requests()[0]["think"], true),
        Dialect::OpenAi => assert!(llm.requests()[0].get("reasoning_effort").is_none()),
    }
}

async fn a_format_is_passed_through_and_recorded_on_the_reply(d: Dialect) {
    let llm = ScriptedLlm::replying_as(d, &[r#"{"city":"Paris"}"#]).await;
    let t = spawn_app_on(&llm, &[]).await;
    let schema = json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]});
    let session = id(&t.create_session(&json!({"options": {"format": "json"}}).to_string()).await);
    // Per send, over the session's.
    let body = json!({"content": "Capital of France?", "options": {"format": schema}});
    let r = t.send(Method::POST, &format!("/sessions/{session}/messages"), Some(&body.to_string())).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["reply"]["format"], schema);
    let r = t.send(Method::POST, &format!("/sessions/{session}/messages"), Some(r#"{"content": "Again"}"#)).await;
    assert_eq!(r.body["reply"]["format"], "json", "the session's format when the send names none");
    let history = t.history(&session).await;
    assert_eq!((history[1]["format"].clone(), history[3]["format"].clone()), (schema.clone(), json!("json")));
    let sent = llm.requests();
    match d {
        Dialect::Ollama => assert_eq!((&sent[0]["format"], &sent[1]["format"]), (&schema, &json!("json"))),
        Dialect::OpenAi => {
            assert_eq!(sent[0]["response_format"]["json_schema"]["schema"], schema);
            assert_eq!(sent[1]["response_format"], json!({"type": "json_object"}));
        }
    }
}

async fn a_busy_backend_is_503_llm_busy_with_retry_after(d: Dialect) {
    let llm = ScriptedLlm::start_as(d, |_| Script::refusal(429, "rate limited")).await;
    let t = spawn_app_on(&llm, &[]).await;
    let session = id(&t.create_session("{}").await);
    let r = t.send(Method::POST, &format!("/sessions/{session}/messages"), Some(r#"{"content": "hi"}"#)).await;
    r.assert_problem(503, "llm_busy");
    assert_eq!(r.headers["retry-after"], "7", "the backend's own wait is passed on");
    let history = t.history(&session).await;
    assert_eq!((history[0]["content"].as_str(), history[1]["error_code"].as_str()), (Some("hi"), Some("llm_busy")));
    // On a stream the status line went out first: the error event says when to come back.
    let r = stream(&t, &session, json!({"content": "again"})).await;
    let (events, _) = parse_sse(&r.text);
    let last = events.last().unwrap();
    assert_eq!((last.name.as_str(), last.data["problem"]["code"].as_str()), ("error", Some("llm_busy")));
    assert_eq!(last.data["retry_after"], 7);
    // The OpenAI-compatible surface says the same in its own shape.
    let r = t.send(Method::POST, "/v1/chat/completions", Some(r#"{"model": "smollm2:135m", "messages": [{"role": "user", "content": "hi"}]}"#)).await;
    assert_eq!(r.status.as_u16(), 503);
    assert_eq!(r.headers["retry-after"], "7");
    assert_eq!(r.body["error"]["code"], "llm_busy");
}

crate::both_dialects!(
    a_backend_key_reaches_the_backend_and_nothing_else,
    thinking_streams_as_its_own_events_and_is_stored_apart,
    a_format_is_passed_through_and_recorded_on_the_reply,
    a_busy_backend_is_503_llm_busy_with_retry_after,
);

#[tokio::test]
async fn the_allow_list_refuses_with_422_naming_the_limit_and_changes_nothing() {
    let llm = ScriptedLlm::replying(&["ok"]).await;
    let t = spawn_app_with(&[
        ("OLLAMA_URL", &llm.url),
        ("LLMCHAT_ALLOWED_MODELS", "ollama/smollm2:*"),
        ("LLMCHAT_MAX_NUM_PREDICT", "2048"),
        ("LLMCHAT_ALLOWED_CONTEXT_SIZES", "2048,4096"),
    ])
    .await;
    let refusals = [
        (json!({"model": "llama3:70b"}), "LLMCHAT_ALLOWED_MODELS"),
        (json!({"options": {"num_predict": 4096}}), "LLMCHAT_MAX_NUM_PREDICT"),
        (json!({"options": {"num_ctx": 3000}}), "LLMCHAT_ALLOWED_CONTEXT_SIZES"),
    ];
    for (body, limit) in &refusals {
        let r = t.send(Method::POST, "/sessions", Some(&body.to_string())).await;
        r.assert_problem(422, "not_allowed");
        assert!(r.body["detail"].as_str().unwrap().contains(limit), "{}", r.body);
    }
    assert!(t.all_session_ids(&t.key, 100).await.is_empty(), "a refused create stores nothing");

    let session = id(&t.create_session(r#"{"model": "smollm2:135m", "options": {"num_ctx": 2048}}"#).await);
    let before = t.send(Method::GET, &format!("/sessions/{session}"), None).await.body;
    for (body, limit) in &refusals {
        let r = t.send(Method::PATCH, &format!("/sessions/{session}"), Some(&body.to_string())).await;
        r.assert_problem(422, "not_allowed");
        assert!(r.body["detail"].as_str().unwrap().contains(limit));
    }
    assert_eq!(t.send(Method::GET, &format!("/sessions/{session}"), None).await.body, before, "a refused patch changes nothing");

    for options in [json!({"num_predict": 4096}), json!({"num_ctx": 8192})] {
        let body = json!({"content": "hi", "options": options});
        t.send(Method::POST, &format!("/sessions/{session}/messages"), Some(&body.to_string())).await.assert_problem(422, "not_allowed");
        stream(&t, &session, body).await.assert_problem(422, "not_allowed");
    }
    let r = t.send(Method::POST, "/v1/chat/completions", Some(r#"{"model": "qwen3:8b", "messages": [{"role": "user", "content": "hi"}]}"#)).await;
    assert_eq!(r.status.as_u16(), 400, "{}", r.text);
    assert_eq!(r.body["error"]["code"], "not_allowed");
    assert!(r.body["error"]["message"].as_str().unwrap().contains("LLMCHAT_ALLOWED_MODELS"));
    assert!(t.history(&session).await.is_empty(), "a refused send stores nothing");
    assert!(llm.requests().is_empty(), "nothing reached the model");
    // Within the limits, all is well.
    let ok = json!({"content": "hi", "options": {"num_predict": 2048, "num_ctx": 4096}});
    assert_eq!(t.send(Method::POST, &format!("/sessions/{session}/messages"), Some(&ok.to_string())).await.status, StatusCode::CREATED);
}

async fn a_backend_key_reaches_the_backend_and_nothing_else(d: Dialect) {
    const KEY: &str = "sk-llmchat-test-5f1e9c0b7a";
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt().with_max_level(tracing::Level::TRACE).with_writer(move || writer.clone()).finish();
    // This test's runtime is single-threaded: every task logs to this subscriber.
    let _guard = tracing::subscriber::set_default(subscriber);

    let llm = ScriptedLlm::start_as(d, |req| {
        if req["messages"].as_array().and_then(|m| m.last()).is_some_and(|m| m["content"] == "fail") {
            Script::refusal(401, "invalid api key")
        } else {
            Script::ok(llmchat_tests::scripted_llm::reply_steps(&["fine"], Duration::ZERO))
        }
    })
    .await;
    let backend = llm.backend_var();
    let t = spawn_app_with(&[("LLMCHAT_BACKENDS", &backend), ("LLMCHAT_BACKEND_LLM_API_KEY", KEY), ("RUST_LOG", "trace")]).await;
    tracing::info!(config = ?t.app.config, "configuration");
    let session = id(&t.create_session("{}").await);
    let mut bodies = Vec::new();
    for content in ["ok", "fail"] {
        let body = json!({"content": content}).to_string();
        bodies.push(t.send(Method::POST, &format!("/sessions/{session}/messages"), Some(&body)).await.text);
    }
    for path in ["/models", "/health", "/v1/models"] {
        bodies.push(t.send(Method::GET, path, None).await.text);
    }
    assert!(llm.authorizations().iter().all(|a| a == &format!("Bearer {KEY}")), "{:?}", llm.authorizations());
    let logs = captured.text();
    assert!(logs.contains("Secret(***)"), "the configuration was logged: {}", &logs[..logs.len().min(2000)]);
    assert!(logs.lines().count() > 20, "the run logged at trace level");
    assert!(!logs.contains(KEY), "the key is in the logs");
    assert!(bodies.iter().all(|b| !b.contains(KEY)), "the key is in a response");
    let history: Vec<Value> = t.history(&session).await;
    assert_eq!(history[3]["error_code"], "llm_unavailable", "a refused key makes the backend unavailable");
}
