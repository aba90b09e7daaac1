//! The context budget against what a model server really counts: Chinese,
//! which takes a token a character where four characters a token was
//! assumed, and a server whose count of the prompt calibrates the session's
//! next sends. Both dialects: Ollama's `prompt_eval_count`, OpenAI's
//! `usage.prompt_tokens`.

use lambda_http::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, TestResponse, id, spawn_app_on};
use llmchat_tests::scripted_llm::{Dialect, Script, ScriptedLlm, Step};

/// 512 tokens of context, 112 of them kept for the reply: 400 for the prompt.
const SESSION: &str = r#"{"options": {"num_ctx": 512, "num_predict": 112}}"#;
const PROMPT_TOKENS: u64 = 400;

async fn send(t: &TestApp, session: &str, content: &str) -> TestResponse {
    let body = json!({"content": content}).to_string();
    let r = t.send(Method::POST, &format!("/sessions/{session}/messages"), Some(&body)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r
}

/// A tokenizer's count of a request's prompt: `per_text` of each message, and 4 a turn.
fn counted(request: &Value, per_text: fn(&str) -> u64) -> u64 {
    let messages = request["messages"].as_array().cloned().unwrap_or_default();
    messages.iter().map(|m| per_text(m["content"].as_str().unwrap_or_default()) + 4).sum()
}

/// A token a character, as tokenizers made for it count Chinese.
fn per_char(text: &str) -> u64 {
    text.chars().count() as u64
}

/// A token a byte, as a tokenizer that knows none of the words does.
fn per_byte(text: &str) -> u64 {
    text.len() as u64
}

/// A server that replies `reply` and reports the prompt's tokens as `per_text` counts them.
async fn counting_server(d: Dialect, reply: &'static str, per_text: fn(&str) -> u64) -> ScriptedLlm {
    ScriptedLlm::start_as(d, move |request| {
        Script::ok(vec![Step::Token(reply.to_owned()), Step::Bytes(d.done_counting(counted(request, per_text)))])
    })
    .await
}

async fn a_chinese_history_that_four_characters_a_token_would_fit_is_truncated(d: Dialect) {
    let llm = counting_server(d, "好的", per_char).await;
    let t = spawn_app_on(&llm, &[]).await;
    let session = id(&t.create_session(SESSION).await);
    let turn = |i: usize| format!("{i}{}", "我们今天去公园散步吧".repeat(12));
    for i in 0..4 {
        send(&t, &session, &turn(i)).await;
    }
    let r = send(&t, &session, &turn(4)).await;
    let requests = llm.requests();
    let sent = requests.last().unwrap();
    let texts: Vec<&str> = sent["messages"].as_array().unwrap().iter().map(|m| m["content"].as_str().unwrap()).collect();

    // At four characters a token the whole history (ten messages, 35 or 5
    // tokens each with framing) would still be sent as fitting.
    let history: Vec<String> = t.history(&session).await.iter().map(|m| m["content"].as_str().unwrap().to_owned()).collect();
    let old_estimate: u64 = history.iter().map(|c| (c.chars().count() as u64).div_ceil(4) + 4).sum();
    assert!(old_estimate <= PROMPT_TOKENS, "{old_estimate}");
    // But the server counts more than the context holds: the oldest turns go, and the reply says so.
    assert!(counted(&json!({"messages": history.iter().map(|c| json!({"content": c})).collect::<Vec<_>>()}), per_char) > PROMPT_TOKENS);
    assert_eq!(r.body["reply"]["context_truncated"], true, "{}", r.body);
    assert!(counted(sent, per_char) <= PROMPT_TOKENS, "the server's count of what was sent: {}", counted(sent, per_char));
    assert_eq!(texts.last(), Some(&turn(4).as_str()), "the new message is sent");
    assert!(!texts.contains(&turn(0).as_str()), "the oldest turn went first");
    assert!(texts.contains(&turn(3).as_str()), "the newest turn stayed");
}

async fn a_server_counting_more_than_estimated_shrinks_the_next_sends(d: Dialect) {
    // Two sessions, the same messages: one server counts a token a byte
    // (about three times the estimate of this text), the other a token a
    // character of its four-character words (the estimate itself).
    let bytes = counting_server(d, "ok", per_byte).await;
    let words = counting_server(d, "ok", |text| (text.chars().count() as u64).div_ceil(4)).await;
    let (fine, coarse) = (spawn_app_on(&bytes, &[]).await, spawn_app_on(&words, &[]).await);
    let fine_session = id(&fine.create_session(SESSION).await);
    let coarse_session = id(&coarse.create_session(SESSION).await);
    let mut replies = Vec::new();
    for i in 0..6 {
        let text = format!("{i}{}", "x".repeat(199));
        let f = send(&fine, &fine_session, &text).await;
        let c = send(&coarse, &coarse_session, &text).await;
        assert_eq!(f.body["reply"]["usage"]["prompt_tokens"].as_u64(), Some(counted(bytes.requests().last().unwrap(), per_byte)));
        replies.push((f.body["reply"]["context_truncated"].clone(), c.body["reply"]["context_truncated"].clone()));
    }
    let fine_sent = bytes.requests().last().unwrap()["messages"].as_array().unwrap().len();
    let coarse_sent = words.requests().last().unwrap()["messages"].as_array().unwrap().len();
    assert_eq!(coarse_sent, 11, "by the estimate, five exchanges and the new message fit");
    assert!(fine_sent < coarse_sent, "the calibrated session sends fewer turns: {fine_sent}");
    assert_eq!(replies.last().unwrap(), &(json!(true), json!(false)), "and says it left turns out");
    for request in bytes.requests().iter().skip(2) {
        // From the third send on, the calibration has settled: what the server counts fits.
        assert!(counted(request, per_byte) <= PROMPT_TOKENS, "{}", counted(request, per_byte));
    }
}

crate::both_dialects!(
    a_chinese_history_that_four_characters_a_token_would_fit_is_truncated,
    a_server_counting_more_than_estimated_shrinks_the_next_sends,
);
