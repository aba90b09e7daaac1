//! Quotas and the usage ledger through the API: a refusal's shape, that it
//! stores nothing, an owner's own quotas, and `GET /usage` adding up to the
//! history.

use lambda_http::http::{Method, StatusCode};
use llmchat::domain::QuotaOverride;
use llmchat::store::QuotaRepository;
use serde_json::{Value, json};

use crate::helpers::{id, spawn_app_for_llm};
use llmchat_tests::scripted_llm::ScriptedLlm;

async fn send(t: &crate::helpers::TestApp, session: &str, content: &str) -> crate::helpers::TestResponse {
    let body = json!({"content": content}).to_string();
    t.send(Method::POST, &format!("/sessions/{session}/messages"), Some(&body)).await
}

#[tokio::test]
async fn a_used_up_quota_is_429_naming_it_with_retry_after_and_stores_nothing() {
    let llm = ScriptedLlm::replying(&["ok"]).await;
    let t = spawn_app_for_llm(&llm.url, &[("LLMCHAT_QUOTA_REQUESTS_PER_MINUTE", "2")]).await;
    let session = id(&t.create_session("{}").await);
    for i in 0..2 {
        assert_eq!(send(&t, &session, &format!("m{i}")).await.status, StatusCode::CREATED);
    }
    // Whichever minute this is, the third request in it is refused (or, right
    // at a minute's turn, the count starts afresh and the test sends again).
    let mut refused = send(&t, &session, "one too many").await;
    if refused.status == StatusCode::CREATED {
        send(&t, &session, "again").await;
        refused = send(&t, &session, "one too many").await;
    }
    refused.assert_problem(429, "quota_exceeded");
    assert!(refused.body["detail"].as_str().unwrap().contains("requests_per_minute"), "{}", refused.body);
    let wait: u64 = refused.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "Retry-After {wait}");
    let history = t.history(&session).await;
    assert!(history.iter().all(|m| m["content"] != "one too many"), "nothing of the refused send is stored");
    // The model is called while a send's exchange commits, so the refused
    // send may have started a call (dropped when the commit failed); once
    // refused, the owner's sends wait for their commit and start none.
    let asked = llm.requests().len();
    assert!(asked <= history.len() / 2 + 1, "{asked} calls for {} stored exchanges", history.len() / 2);
    let again = send(&t, &session, "still too many").await;
    if again.status == StatusCode::TOO_MANY_REQUESTS {
        assert_eq!(llm.requests().len(), asked, "a send refused again does not reach the model");
    }

    // The OpenAI-compatible surface refuses the same way, in its own shape.
    let r = t
        .send(Method::POST, "/v1/chat/completions", Some(r#"{"model": "smollm2:135m", "messages": [{"role": "user", "content": "hi"}]}"#))
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
    assert_eq!(r.body["error"]["code"], "quota_exceeded");
    assert!(r.headers.contains_key("retry-after"));
}

#[tokio::test]
async fn an_owners_own_quota_overrides_the_deployments() {
    let llm = ScriptedLlm::replying(&["ok"]).await;
    let t = spawn_app_for_llm(&llm.url, &[]).await;
    let own = QuotaOverride { tokens_per_day: Some(10), ..Default::default() };
    t.app.store.set_quota_override(&t.owner, Some(&own)).await.unwrap();
    let session = id(&t.create_session("{}").await);
    // The reserve (prompt and the default reply length) is more than a whole day's 10 tokens.
    let r = send(&t, &session, "hi").await;
    r.assert_problem(429, "quota_exceeded");
    assert!(r.body["detail"].as_str().unwrap().contains("tokens_per_day"));
    let usage = t.send(Method::GET, "/usage", None).await;
    assert_eq!(usage.body["quotas"]["tokens_per_day"]["limit"], 10);
    assert_eq!(usage.body["quotas"]["active_replies"]["limit"], llmchat::config::DEFAULT_QUOTA_ACTIVE_REPLIES);
    t.app.store.set_quota_override(&t.owner, None).await.unwrap();
    assert_eq!(send(&t, &session, "hi").await.status, StatusCode::CREATED, "the deployment's quotas again");
}

#[tokio::test]
async fn usage_adds_up_to_the_history_with_an_estimated_cost() {
    let llm = ScriptedLlm::replying(&["a", "b"]).await;
    let t = spawn_app_for_llm(&llm.url, &[("LLMCHAT_MODEL_PRICES", "ollama/*=2:8")]).await;
    let a = id(&t.create_session("{}").await);
    let b = id(&t.create_session("{}").await);
    for (session, content) in [(&a, "one"), (&a, "two"), (&b, "three")] {
        assert_eq!(send(&t, session, content).await.status, StatusCode::CREATED);
    }
    let r = t
        .send(Method::POST, "/v1/chat/completions", Some(r#"{"model": "smollm2:135m", "messages": [{"role": "user", "content": "hi"}]}"#))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    let mut replies: Vec<Value> = t.history(&a).await;
    replies.extend(t.history(&b).await);
    replies.retain(|m| m["role"] == "assistant");
    let sum = |field: &str| replies.iter().map(|m| m["usage"][field].as_u64().unwrap()).sum::<u64>() + 0;
    let r = t.send(Method::GET, "/usage?group_by=session", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let groups = r.body["groups"].as_array().unwrap();
    let group = |key: &str| groups.iter().find(|g| g["key"] == key).unwrap_or_else(|| panic!("no group {key}: {}", r.body)).clone();
    // The stored replies' usage, session by session; the stateless call on its own.
    assert_eq!(group(&a)["replies"], 2);
    assert_eq!(group(&b)["replies"], 1);
    let stored_prompt = group(&a)["prompt_tokens"].as_u64().unwrap() + group(&b)["prompt_tokens"].as_u64().unwrap();
    let stored_completion = group(&a)["completion_tokens"].as_u64().unwrap() + group(&b)["completion_tokens"].as_u64().unwrap();
    assert_eq!((stored_prompt, stored_completion), (sum("prompt_tokens"), sum("completion_tokens")));
    assert_eq!(group("chat-completions")["replies"], 1);
    let totals = &r.body["totals"];
    assert_eq!(totals["replies"], 4);
    assert_eq!(totals["prompt_tokens"], sum("prompt_tokens") + 26);
    // Cost: 2 and 8 USD per million prompt and completion tokens, plus Lambda and DynamoDB.
    let model_cost = (totals["prompt_tokens"].as_f64().unwrap() * 2.0 + totals["completion_tokens"].as_f64().unwrap() * 8.0) / 1e6;
    assert!((totals["cost"]["model"].as_f64().unwrap() - model_cost).abs() < 1e-12, "{}", totals["cost"]);
    assert!(totals["cost"]["dynamodb"].as_f64().unwrap() > 0.0 && totals["write_units"].as_f64().unwrap() > 0.0);
    assert_eq!(r.body["currency"], "USD");
    assert_eq!(r.body["quotas"]["active_replies"]["used"], 0, "every reply gave its place back");

    let by_model = t.send(Method::GET, "/usage?group_by=model", None).await;
    assert_eq!(by_model.body["groups"][0]["key"], format!("ollama/{}", llmchat_tests::scripted_llm::MODEL));
    for bad in ["/usage?group_by=owner", "/usage?from=2026-13-01", "/usage?from=2026-11-02&to=2026-11-01", "/usage?from=2020-01-01"] {
        t.send(Method::GET, bad, None).await.assert_problem(400, "invalid_request");
    }
    // Another owner sees none of it.
    let (_, other) = t.new_owner().await;
    let theirs = t.send_as(Some(&other), Method::GET, "/usage", None).await;
    assert_eq!(theirs.body["totals"]["replies"], 0);
}
