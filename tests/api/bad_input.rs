//! Bad input gets a clear 4xx problem+json and changes nothing.

use lambda_http::http::{Method, StatusCode};
use llmchat::domain::limits::*;
use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn bad_create_bodies_are_rejected_and_store_nothing() {
    let t = spawn_app().await;
    let long_title = "t".repeat(MAX_TITLE_CHARS + 1);
    let huge = format!(r#"{{"title": "x", "system_prompt": "{}"}}"#, "p".repeat(MAX_REQUEST_BODY_BYTES));
    let many_metadata: serde_json::Map<String, serde_json::Value> =
        (0..=MAX_METADATA_ENTRIES).map(|i| (format!("k{i}"), json!("v"))).collect();
    let cases: Vec<(String, u16, &str)> = vec![
        (r#"{"title": "#.into(), 400, "invalid_request"),
        ("not json at all".into(), 400, "invalid_request"),
        (r#"{"title": 42}"#.into(), 422, "invalid_request"),
        (r#"["a list"]"#.into(), 422, "invalid_request"),
        (r#"{"titel": "typo"}"#.into(), 422, "invalid_request"),
        (json!({"title": long_title}).to_string(), 422, "invalid_request"),
        (r#"{"title": "   "}"#.into(), 422, "invalid_request"),
        (json!({"system_prompt": "s".repeat(MAX_SYSTEM_PROMPT_CHARS + 1)}).to_string(), 422, "invalid_request"),
        (r#"{"model": "no spaces please"}"#.into(), 422, "invalid_request"),
        (r#"{"options": {"temperature": 9}}"#.into(), 422, "invalid_request"),
        (r#"{"options": {"temprature": 1}}"#.into(), 422, "invalid_request"),
        (r#"{"options": {"top_k": -1}}"#.into(), 422, "invalid_request"),
        (json!({"metadata": many_metadata}).to_string(), 422, "invalid_request"),
        (json!({"metadata": {"k": "v".repeat(MAX_METADATA_VALUE_CHARS + 1)}}).to_string(), 422, "invalid_request"),
        (r#"{"metadata": {"k": 1}}"#.into(), 422, "invalid_request"),
        (huge, 413, "payload_too_large"),
    ];
    for (body, status, code) in cases {
        let r = t.send(Method::POST, "/sessions", Some(&body)).await;
        let shown: String = body.chars().take(80).collect();
        assert_eq!(r.status.as_u16(), status, "body {shown}: {}", r.body);
        r.assert_problem(status, code);
    }
    assert!(t.all_session_ids(&t.key, 10).await.is_empty(), "no bad request created a session");
}

#[tokio::test]
async fn bad_patch_bodies_change_nothing() {
    let t = spawn_app().await;
    let session = t.create_session(r#"{"title": "keep me"}"#).await;
    let path = format!("/sessions/{}", session["id"].as_str().unwrap());
    for (body, status) in [
        (r#"{"title": "#.to_owned(), 400),
        (r#"{"title": null}"#.to_owned(), 422),
        (r#"{"title": ""}"#.to_owned(), 422),
        (json!({"title": "t".repeat(MAX_TITLE_CHARS + 1)}).to_string(), 422),
        (r#"{"owner": "someone-else"}"#.to_owned(), 422),
        (r#"{"id": "00000000-0000-0000-0000-000000000000"}"#.to_owned(), 422),
        (r#"{"options": {"stop": [""]}}"#.to_owned(), 422),
    ] {
        let r = t.send(Method::PATCH, &path, Some(&body)).await;
        r.assert_problem(status, "invalid_request");
    }
    let read = t.send(Method::GET, &path, None).await;
    assert_eq!(read.body, session);
}

#[tokio::test]
async fn bad_ids_queries_and_cursors_are_400() {
    let t = spawn_app().await;
    for _ in 0..3 {
        t.create_session("{}").await;
    }
    for path in [
        "/sessions/not-a-uuid",
        "/sessions/123",
        "/sessions/00000000-0000-0000-0000-00000000000g",
        "/sessions?limit=0",
        "/sessions?limit=-5",
        "/sessions?limit=abc",
        "/sessions?limit=1000000000000",
        "/sessions?limit=101",
        "/sessions?cursor=garbage",
        "/sessions?cursor=eyJ1IjoiMjAyNiJ9",
        "/sessions?cursor=",
    ] {
        let r = t.send(Method::GET, path, None).await;
        r.assert_problem(400, "invalid_request");
    }
    for method in [Method::PATCH, Method::DELETE] {
        t.send(method, "/sessions/not-a-uuid", Some("{}")).await.assert_problem(400, "invalid_request");
    }
    assert_eq!(t.all_session_ids(&t.key, 10).await.len(), 3, "nothing was deleted");
}

#[tokio::test]
async fn a_tampered_cursor_never_reaches_another_owners_sessions() {
    let t = spawn_app().await;
    let (_, other_key) = t.new_owner().await;
    let theirs = t.send_as(Some(&other_key), Method::POST, "/sessions", Some("{}")).await.body;
    // A syntactically valid cursor naming the other owner's session.
    let forged = base64_url(&json!({"u": theirs["updated_at"], "i": theirs["id"]}).to_string());
    let r = t.send(Method::GET, &format!("/sessions?cursor={forged}"), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body["items"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn wrong_methods_are_405() {
    let t = spawn_app().await;
    let id = t.create_session("{}").await["id"].as_str().unwrap().to_owned();
    t.send(Method::PUT, &format!("/sessions/{id}"), Some("{}")).await.assert_problem(405, "method_not_allowed");
    t.send(Method::DELETE, "/sessions", None).await.assert_problem(405, "method_not_allowed");
    t.send(Method::POST, "/health", None).await.assert_problem(405, "method_not_allowed");
}

fn base64_url(text: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = text.as_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

#[tokio::test]
async fn extreme_but_valid_numbers_are_stored_exactly() {
    let t = spawn_app().await;
    // Inside the documented ranges, beyond what DynamoDB numbers can hold.
    let body = r#"{"options": {"temperature": 1e-131, "top_p": 5e-324, "repeat_penalty": 1.9999999999999998, "seed": -9223372036854775808}}"#;
    let r = t.send(Method::POST, "/sessions", Some(body)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let id = r.body["id"].as_str().unwrap();
    let read = t.send(Method::GET, &format!("/sessions/{id}"), None).await;
    assert_eq!(read.body["options"], serde_json::from_str::<serde_json::Value>(body).unwrap()["options"]);
    let r = t.send(Method::PATCH, &format!("/sessions/{id}"), Some(r#"{"options": {"temperature": 8.02e-138}}"#)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}
