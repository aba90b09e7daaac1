//! `GET /health` and `GET /models`: the status of DynamoDB and the LLM, and
//! the models the LLM offers.

use lambda_http::http::Method;
use llmchat::health::HEALTH_CACHE_TTL;
use llmchat_tests::scripted_llm::ScriptedLlm;

use crate::helpers::{spawn_app_for_llm, unreachable_url};

#[tokio::test]
async fn health_without_a_key_is_the_status_alone() {
    let llm = ScriptedLlm::replying(&["x"]).await;
    let t = spawn_app_for_llm(&llm.url, &[]).await;
    let r = t.send_as(None, Method::GET, "/health", None).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.body);
    assert_eq!(r.body, serde_json::json!({"status": "ok"}));
}

#[tokio::test]
async fn health_with_a_key_has_every_check() {
    let llm = ScriptedLlm::replying(&["x"]).await;
    let t = spawn_app_for_llm(&llm.url, &[]).await;
    let r = t.send(Method::GET, "/health", None).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.body);
    assert_eq!(r.body["status"], "ok");
    assert_eq!(r.body["checks"]["dynamodb"]["status"], "ok");
    assert_eq!(r.body["checks"]["llm"]["status"], "ok");
    assert_eq!(r.body["checks"]["backends"]["ollama"]["status"], "ok");
    assert!(r.body["checks"]["backends"]["ollama"]["latency_ms"].is_u64());
}

#[tokio::test]
async fn health_with_a_bad_key_is_401_not_the_summary() {
    let llm = ScriptedLlm::replying(&["x"]).await;
    let t = spawn_app_for_llm(&llm.url, &[]).await;
    for key in ["lck_nope_nope", "not-a-key"] {
        t.send_as(Some(key), Method::GET, "/health", None).await.assert_problem(401, "unauthorized");
    }
    assert_eq!(llm.tags_requests(), 0, "no probe for a refused caller");
}

#[tokio::test]
async fn rapid_health_calls_probe_the_backend_once() {
    let llm = ScriptedLlm::replying(&["x"]).await;
    let t = spawn_app_for_llm(&llm.url, &[]).await;
    // At once: callers arriving during the probe wait for it instead of probing.
    let together = futures::future::join_all((0..10).map(|_| t.send_as(None, Method::GET, "/health", None))).await;
    assert!(together.iter().all(|r| r.status.as_u16() == 200), "every caller answered");
    // One after another, public and with a key alike.
    for i in 0..20 {
        let key = if i % 2 == 0 { None } else { Some(t.key.as_str()) };
        let r = t.send_as(key, Method::GET, "/health", None).await;
        assert_eq!(r.status.as_u16(), 200, "{}", r.body);
    }
    assert_eq!(llm.tags_requests(), 1, "thirty calls, one probe of the backend");
}

#[tokio::test]
async fn health_probes_again_once_its_answer_is_older_than_the_ttl() {
    let llm = ScriptedLlm::replying(&["x"]).await;
    let t = spawn_app_for_llm(&llm.url, &[]).await;
    t.send_as(None, Method::GET, "/health", None).await;
    assert_eq!(llm.tags_requests(), 1);
    tokio::time::sleep(HEALTH_CACHE_TTL + std::time::Duration::from_millis(100)).await;
    t.send_as(None, Method::GET, "/health", None).await;
    assert_eq!(llm.tags_requests(), 2, "a fresh probe after the TTL");
}

#[tokio::test]
async fn health_is_503_with_details_when_the_llm_is_down() {
    let t = spawn_app_for_llm(&unreachable_url(), &[]).await;
    let r = t.send_as(None, Method::GET, "/health", None).await;
    assert_eq!(r.status.as_u16(), 503, "{}", r.body);
    assert_eq!(r.body, serde_json::json!({"status": "degraded"}));
    let r = t.send(Method::GET, "/health", None).await;
    assert_eq!(r.status.as_u16(), 503, "{}", r.body);
    assert_eq!(r.body["status"], "degraded");
    assert_eq!(r.body["checks"]["dynamodb"]["status"], "ok");
    assert_eq!(r.body["checks"]["llm"]["status"], "unavailable");
}

#[tokio::test]
async fn health_is_503_when_the_table_is_missing() {
    let llm = ScriptedLlm::replying(&["x"]).await;
    let t = spawn_app_for_llm(&llm.url, &[]).await;
    // The key is read before the table goes: with the table gone, a key cannot be checked.
    let key = t.key.clone();
    let first = t.send_as(Some(&key), Method::GET, "/health", None).await;
    assert_eq!(first.status.as_u16(), 200, "{}", first.body);
    t.app.store.client().delete_table().table_name(t.app.store.table()).send().await.unwrap();
    tokio::time::sleep(HEALTH_CACHE_TTL + std::time::Duration::from_millis(100)).await;
    let r = t.send_as(None, Method::GET, "/health", None).await;
    assert_eq!(r.status.as_u16(), 503, "{}", r.body);
    assert_eq!(r.body["status"], "degraded");
    let text = r.body.to_string();
    assert!(!text.contains("ResourceNotFound") && !text.contains(t.app.store.table()), "no internals in the body");
}

#[tokio::test]
async fn every_problem_answered_is_counted_as_a_metric() {
    let llm = ScriptedLlm::replying(&["x"]).await;
    let t = spawn_app_for_llm(&llm.url, &[]).await;
    let capture = llmchat::metrics::capture::start();
    t.send_as(Some("lck_nope_nope"), Method::GET, "/health", None).await.assert_problem(401, "unauthorized");
    t.send(Method::GET, "/sessions/00000000-0000-4000-8000-000000000000", None).await.assert_problem(404, "not_found");
    t.send(Method::GET, "/health", None).await;
    let problems = capture.reporting("Problems");
    let seen: Vec<(&str, &str)> = problems.iter().map(|l| (l["Code"].as_str().unwrap(), l["StatusClass"].as_str().unwrap())).collect();
    assert_eq!(seen, [("unauthorized", "4xx"), ("not_found", "4xx")], "one line per problem, none for a success");
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
