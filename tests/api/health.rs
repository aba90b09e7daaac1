//! `GET /health` and `GET /models`: the status of DynamoDB and the LLM, and
//! the models the LLM offers.

use lambda_http::http::Method;
use llmchat_tests::scripted_llm::ScriptedLlm;

use crate::helpers::{spawn_app_for_llm, unreachable_url};

#[tokio::test]
async fn health_is_ok_without_a_key_when_dynamodb_and_the_llm_answer() {
    let llm = ScriptedLlm::replying(&["x"]).await;
    let t = spawn_app_for_llm(&llm.url, &[]).await;
    let r = t.send_as(None, Method::GET, "/health", None).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.body);
    assert_eq!(r.body["status"], "ok");
    assert_eq!(r.body["checks"]["dynamodb"]["status"], "ok");
    assert_eq!(r.body["checks"]["llm"]["status"], "ok");
}

#[tokio::test]
async fn health_is_503_with_details_when_the_llm_is_down() {
    let t = spawn_app_for_llm(&unreachable_url(), &[]).await;
    let r = t.send_as(None, Method::GET, "/health", None).await;
    assert_eq!(r.status.as_u16(), 503, "{}", r.body);
    assert_eq!(r.body["status"], "degraded");
    assert_eq!(r.body["checks"]["dynamodb"]["status"], "ok");
    assert_eq!(r.body["checks"]["llm"]["status"], "unavailable");
}

#[tokio::test]
async fn health_is_503_when_the_table_is_missing() {
    let llm = ScriptedLlm::replying(&["x"]).await;
    let t = spawn_app_for_llm(&llm.url, &[]).await;
    t.app.store.client().delete_table().table_name(t.app.store.table()).send().await.unwrap();
    let r = t.send_as(None, Method::GET, "/health", None).await;
    assert_eq!(r.status.as_u16(), 503, "{}", r.body);
    assert_eq!(r.body["status"], "degraded");
    assert_eq!(r.body["checks"]["dynamodb"]["status"], "unavailable");
    assert_eq!(r.body["checks"]["llm"]["status"], "ok");
    let text = r.body.to_string();
    assert!(!text.contains("ResourceNotFound") && !text.contains(t.app.store.table()), "no internals in the body");
}

#[tokio::test]
async fn storage_down_is_503_problem_not_500() {
    let t = crate::helpers::spawn_app().await;
    t.app.store.client().delete_table().table_name(t.app.store.table()).send().await.unwrap();
    let r = t.send(Method::GET, "/sessions", None).await;
    r.assert_problem(503, "storage_unavailable");
    assert!(!r.body.to_string().contains(t.app.store.table()));
}

#[tokio::test]
async fn models_come_from_the_llm_and_are_cached() {
    let llm = ScriptedLlm::replying(&["x"]).await;
    let t = spawn_app_for_llm(&llm.url, &[]).await;
    for _ in 0..3 {
        let r = t.send(Method::GET, "/models", None).await;
        assert_eq!(r.status.as_u16(), 200, "{}", r.body);
        assert_eq!(r.body["items"][0]["name"], "ollama/smollm2:135m");
        assert_eq!(r.body["items"][0]["backend"], "ollama");
        assert_eq!(r.body["items"][0]["parameter_size"], "134.52M");
        assert!(r.body["next_cursor"].is_null());
    }
    assert_eq!(llm.tags_requests(), 1, "read once, then served from the cache");
    t.send_as(None, Method::GET, "/models", None).await.assert_problem(401, "unauthorized");
}

#[tokio::test]
async fn models_with_the_llm_down_is_503_problem() {
    let t = spawn_app_for_llm(&unreachable_url(), &[]).await;
    t.send(Method::GET, "/models", None).await.assert_problem(503, "llm_unavailable");
}
