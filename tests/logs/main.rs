//! What the logs may hold: a run that sends client text through every route
//! kind (titles, prompts, metadata, messages, replies, bad input of every
//! sort) logs none of it at info level or above, nor the API key's secret.
//! Info is the level deployments log at; details of a rejected request go to
//! debug.
//!
//! Its own test binary: a test capturing logs next to other tests' threads,
//! each with subscribers of their own, saw some events go missing.

use lambda_http::http::{Method, StatusCode};
use serde_json::json;

// The API tests' helpers; this binary uses a few of them.
#[allow(dead_code)]
#[path = "../api/helpers.rs"]
mod helpers;

use helpers::{Captured, id, spawn_app_with};
use llmchat_tests::scripted_llm::{Dialect, Script, ScriptedLlm, reply_steps};

/// Client text of the run, each marked so that any trace of it is found.
const MARKS: &[&str] = &[
    "TITLE-c0ffee", "PROMPT-c0ffee", "META-c0ffee", "MESSAGE-c0ffee", "REPLY-c0ffee", "CMID-c0ffee",
    "FIELD-c0ffee", "VALUE-c0ffee", "JSON-c0ffee", "MODEL-c0ffee", "CURSOR-c0ffee", "PATH-c0ffee", "RENAMED-c0ffee",
];

#[tokio::test]
async fn no_client_text_and_no_key_reach_the_logs_at_info() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt().with_max_level(tracing::Level::INFO).with_writer(move || writer.clone()).finish();
    // The only test of this binary, on a single-threaded runtime: every task logs here.
    let _guard = tracing::subscriber::set_default(subscriber);

    let llm = ScriptedLlm::start_as(Dialect::Ollama, |_| Script::ok(reply_steps(&["REPLY-", "c0ffee"], std::time::Duration::ZERO))).await;
    // The allow-list makes a model name a client can send refusable.
    let t = spawn_app_with(&[("OLLAMA_URL", &llm.url), ("LLMCHAT_ALLOWED_MODELS", "ollama/smollm2:*")]).await;
    let session = id(&t
        .create_session(&json!({"title": "TITLE-c0ffee", "system_prompt": "PROMPT-c0ffee", "metadata": {"m": "META-c0ffee"}}).to_string())
        .await);
    let sends = format!("/sessions/{session}/messages");
    let ok = |content: &str| json!({"content": content, "client_message_id": "CMID-c0ffee"}).to_string();
    assert_eq!(t.send(Method::POST, &sends, Some(&ok("MESSAGE-c0ffee"))).await.status, StatusCode::CREATED);
    // A retry, and the same id with other content.
    assert_eq!(t.send(Method::POST, &sends, Some(&ok("MESSAGE-c0ffee"))).await.status, StatusCode::OK);
    assert_eq!(t.send(Method::POST, &sends, Some(&ok("MESSAGE-c0ffee again"))).await.status, StatusCode::UNPROCESSABLE_ENTITY);
    let streamed = json!({"content": "MESSAGE-c0ffee streamed"}).to_string();
    assert_eq!(t.send(Method::POST, &format!("{sends}/stream"), Some(&streamed)).await.status, StatusCode::OK);
    let patch = json!({"title": "RENAMED-c0ffee"}).to_string();
    assert_eq!(t.send(Method::PATCH, &format!("/sessions/{session}"), Some(&patch)).await.status, StatusCode::OK);

    // Rejected input of every kind, each carrying client text.
    let rejected = [
        (Method::POST, sends.clone(), Some(json!({"content": "x", "FIELD-c0ffee": 1}).to_string())),
        (Method::POST, sends.clone(), Some(json!({"content": ["VALUE-c0ffee"]}).to_string())),
        (Method::POST, sends.clone(), Some("{\"content\": \"JSON-c0ffee".to_owned())),
        (Method::POST, sends.clone(), Some(json!({"content": "x", "model": "MODEL-c0ffee"}).to_string())),
        (Method::POST, "/sessions".to_owned(), Some(json!({"model": "MODEL-c0ffee"}).to_string())),
        (Method::GET, "/sessions?cursor=CURSOR-c0ffee".to_owned(), None),
        (Method::GET, format!("{sends}?cursor=CURSOR-c0ffee&order=CURSOR-c0ffee"), None),
        (Method::GET, "/sessions/PATH-c0ffee".to_owned(), None),
        (Method::PATCH, format!("/sessions/{session}"), Some(json!({"title": 7, "VALUE-c0ffee": true}).to_string())),
        (Method::POST, "/v1/chat/completions".to_owned(), Some(json!({"model": "MODEL-c0ffee", "messages": [{"role": "user", "content": "MESSAGE-c0ffee"}]}).to_string())),
        (Method::POST, "/v1/chat/completions".to_owned(), Some(json!({"model": "m", "messages": "VALUE-c0ffee"}).to_string())),
    ];
    for (method, path, body) in rejected {
        let r = t.send(method.clone(), &path, body.as_deref()).await;
        assert!(r.status.is_client_error(), "{method} {path}: {} {}", r.status, r.body);
    }
    // A key that is not one, with client text in it.
    let r = t.send_as(Some("lck_FIELD-c0ffee_VALUE-c0ffee"), Method::GET, "/sessions", None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // The history holds the text, so the run really carried it.
    let history = t.send(Method::GET, &sends, None).await.body.to_string();
    assert!(history.contains("MESSAGE-c0ffee") && history.contains("REPLY-c0ffee"), "{history}");

    let logs = captured.text();
    assert!(logs.lines().filter(|l| l.contains("request done")).count() >= 15, "every request logged a line:\n{logs}");
    for mark in MARKS {
        let found: Vec<&str> = logs.lines().filter(|l| l.contains(mark)).collect();
        assert!(found.is_empty(), "{mark} reached the logs at info:\n{}", found.join("\n"));
    }
    // `lck_<key id>_<secret>`, the id 16 characters.
    let secret = &t.key["lck_".len() + 17..];
    assert!(secret.len() > 20, "{secret}");
    assert!(!logs.contains(&t.key) && !logs.contains(secret), "the API key reached the logs");
}
