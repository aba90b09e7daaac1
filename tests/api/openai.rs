//! The OpenAI-compatible surface (`/v1`) through the functions, against
//! DynamoDB Local and the scripted LLM: shapes, errors, and the Responses API
//! over LlmChat's sessions. (The official OpenAI SDK is the judge of the same
//! surface in the client tests, tests/clients/.)

use std::time::{Duration, Instant};

use lambda_http::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, TestResponse, id, spawn_app_for_llm};
use llmchat_tests::scripted_llm::{Script, ScriptedLlm, Step, reply_steps};

async fn post(t: &TestApp, path: &str, body: Value) -> TestResponse {
    t.send(Method::POST, path, Some(&body.to_string())).await
}

fn assert_openai_error(r: &TestResponse, status: u16, param: Option<&str>) {
    assert_eq!(r.status.as_u16(), status, "{}", r.text);
    assert_eq!(r.content_type, "application/json");
    assert!(r.body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{}", r.text);
    assert!(r.body["error"]["type"].is_string());
    assert_eq!(r.body["error"]["param"].as_str(), param, "{}", r.text);
}

/// `data:` payloads of an OpenAI-style SSE body.
fn data_lines(text: &str) -> Vec<String> {
    text.split("\n\n").filter_map(|b| b.lines().find_map(|l| l.strip_prefix("data: ")).map(str::to_owned)).collect()
}

fn hello() -> Vec<Step> {
    reply_steps(&["Hello", " from", " LlmChat"], Duration::ZERO)
}

#[tokio::test]
async fn chat_completions_answer_in_openai_shape_and_store_nothing() {
    let llm = ScriptedLlm::start(|_| Script { status: 200, steps: hello() }).await;
    let t = spawn_app_for_llm(&llm.url, &[]).await;
    let body = json!({
        "model": "smollm2:135m",
        "messages": [{"role": "developer", "content": "Be brief."}, {"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
        "temperature": 0.2, "max_tokens": 50, "stop": "END", "seed": 7, "response_format": {"type": "json_object"},
    });
    let r = post(&t, "/v1/chat/completions", body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["object"], "chat.completion");
    assert!(r.body["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(r.body["choices"][0]["message"], json!({"role": "assistant", "content": "Hello from LlmChat", "refusal": null}));
    assert_eq!(r.body["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        r.body["usage"],
        json!({"prompt_tokens": 26, "completion_tokens": 7, "total_tokens": 33, "completion_tokens_details": {"reasoning_tokens": 0}})
    );

    let sent = &llm.requests()[0];
    assert_eq!(sent["messages"], json!([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]));
    assert_eq!((sent["options"]["temperature"].as_f64(), sent["options"]["num_predict"].as_u64()), (Some(0.2), Some(50)));
    assert_eq!((sent["options"]["stop"].clone(), sent["format"].clone()), (json!(["END"]), json!("json")));
    let sessions = t.send(Method::GET, "/sessions", None).await;
    assert_eq!(sessions.body["items"], json!([]), "a chat completion stores no session");
}

#[tokio::test]
async fn streamed_chat_completions_end_with_usage_and_done() {
    let llm = ScriptedLlm::start(|_| Script { status: 200, steps: hello() }).await;
    let t = spawn_app_for_llm(&llm.url, &[]).await;
    let body = json!({"model": "smollm2:135m", "messages": [{"role": "user", "content": "Hi"}], "stream": true,
        "stream_options": {"include_usage": true}, "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}});
    let r = post(&t, "/v1/chat/completions", body).await;
    assert_eq!((r.status, r.content_type.as_str()), (StatusCode::OK, "text/event-stream"));
    let data = data_lines(&r.text);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = data[..data.len() - 1].iter().map(|d| serde_json::from_str(d).unwrap()).collect();
    assert!(chunks.iter().all(|c| c["object"] == "chat.completion.chunk" && c["id"] == chunks[0]["id"]));
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(text, "Hello from LlmChat");
    let usage = chunks.last().unwrap();
    assert_eq!((usage["choices"].clone(), usage["usage"]["total_tokens"].as_u64()), (json!([]), Some(33)));
    assert_eq!(chunks[chunks.len() - 2]["choices"][0]["finish_reason"], "stop");
    assert_eq!(llm.requests()[0]["format"], json!({"type": "object"}), "a JSON schema is passed to the model");
}

#[tokio::test]
async fn bad_parameters_keys_and_models_are_openai_errors() {
    let llm = ScriptedLlm::start(|request| {
        if request["model"] == "smollm2:135m" {
            Script { status: 200, steps: hello() }
        } else {
            Script { status: 404, steps: vec![Step::Bytes(br#"{"error":"model not found"}"#.to_vec())] }
        }
    })
    .await;
    let t = spawn_app_for_llm(&llm.url, &[]).await;
    let user = json!([{"role": "user", "content": "Hi"}]);
    for (body, param) in [
        (json!({"model": "smollm2:135m", "messages": user, "logit_bias": {"50256": -100}}), "logit_bias"),
        (json!({"model": "smollm2:135m", "messages": user, "temperature": 5}), "temperature"),
        (json!({"model": "smollm2:135m", "messages": user, "n": 2}), "n"),
        (json!({"model": "smollm2:135m", "messages": [{"role": "tool", "content": "x"}]}), "messages[0].role"),
        (json!({"model": "smollm2:135m", "messages": user, "max_tokens": 0}), "max_tokens"),
        (json!({"messages": user}), "model"),
    ] {
        assert_openai_error(&post(&t, "/v1/chat/completions", body).await, 400, Some(param));
    }
    let r = t.send_as(Some("lck_0123456789abcdef_nope"), Method::POST, "/v1/chat/completions", Some(&json!({"model": "m", "messages": user}).to_string())).await;
    assert_openai_error(&r, 401, None);
    let r = post(&t, "/v1/chat/completions", json!({"model": "no-such-model", "messages": user})).await;
    assert_openai_error(&r, 404, None);
    assert_eq!(r.body["error"]["code"], "model_not_found");
    assert_openai_error(&t.send(Method::GET, "/v1/models/no-such-model", None).await, 404, None);
    assert_openai_error(&post(&t, "/v1/responses", json!({"model": "smollm2:135m", "input": "x", "store": false})).await, 400, Some("store"));
    assert_eq!(llm.requests().len(), 1, "only the unknown model reached the backend");
}

#[tokio::test]
async fn models_are_listed_in_openai_shape() {
    let llm = ScriptedLlm::replying(&["x"]).await;
    let t = spawn_app_for_llm(&llm.url, &[]).await;
    let r = t.send(Method::GET, "/v1/models", None).await;
    assert_eq!(r.body["object"], "list");
    assert_eq!(r.body["data"][0]["id"], "ollama/smollm2:135m");
    assert_eq!(r.body["data"][0]["object"], "model");
    assert!(r.body["data"][0]["created"].as_i64().is_some_and(|c| c > 1_700_000_000));
    // A bare name is the default backend's model.
    let r = t.send(Method::GET, "/v1/models/smollm2:135m", None).await;
    assert_eq!(r.body["id"], "ollama/smollm2:135m");
    let r = t.send(Method::GET, "/v1/models/ollama/smollm2:135m", None).await;
    assert_eq!(r.body["id"], "ollama/smollm2:135m");
}

/// `POST /v1/responses` with `body`, expecting a response object.
async fn create_response(t: &TestApp, body: Value) -> Value {
    let r = post(t, "/v1/responses", body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body
}

fn output_text(response: &Value) -> String {
    response["output"].as_array().into_iter().flatten().flat_map(|o| o["content"].as_array().cloned().unwrap_or_default()).filter_map(|c| c["text"].as_str().map(str::to_owned)).collect()
}

/// Response events of a stream: (type, sequence_number, payload).
fn response_events(text: &str) -> Vec<(String, u64, Value)> {
    data_lines(text)
        .iter()
        .map(|d| {
            let v: Value = serde_json::from_str(d).unwrap();
            (v["type"].as_str().unwrap().to_owned(), v["sequence_number"].as_u64().unwrap(), v)
        })
        .collect()
}

#[tokio::test]
async fn a_response_is_a_stored_reply_and_chains_in_its_session() {
    let llm = ScriptedLlm::start(|_| Script { status: 200, steps: hello() }).await;
    let t = spawn_app_for_llm(&llm.url, &[]).await;
    let first = create_response(&t, json!({"model": "smollm2:135m", "input": "Hi", "instructions": "Be brief."})).await;
    assert_eq!((first["object"].as_str(), first["status"].as_str()), (Some("response"), Some("completed")));
    assert_eq!(output_text(&first), "Hello from LlmChat");
    assert_eq!(first["usage"]["total_tokens"], 33);
    assert_eq!(llm.requests()[0]["messages"][0], json!({"role": "system", "content": "Be brief."}));
    let session = first["conversation"]["id"].as_str().unwrap().to_owned();

    let second = create_response(&t, json!({"model": "smollm2:135m", "input": "More", "previous_response_id": first["id"]})).await;
    assert_eq!(second["conversation"]["id"], session.as_str());
    let history = t.history(&session).await;
    assert_eq!(history.iter().map(|m| m["content"].as_str().unwrap()).collect::<Vec<_>>(), ["Hi", "Hello from LlmChat", "More", "Hello from LlmChat"]);
    assert_eq!(history[3]["id"].as_str().map(|id| id.replace('-', "")), second["id"].as_str().map(|id| id[37..].to_owned()));
    assert_eq!(llm.requests()[1]["messages"].as_array().unwrap().len(), 3, "the model saw the conversation, without the first turn's instructions");
    let stale = post(&t, "/v1/responses", json!({"model": "smollm2:135m", "input": "x", "previous_response_id": first["id"]})).await;
    assert_openai_error(&stale, 400, Some("previous_response_id"));

    // `conversation`: an LlmChat session made with LlmChat's own API.
    let own = id(&t.create_session("{}").await);
    let third = create_response(&t, json!({"model": "smollm2:135m", "input": "Into my session", "conversation": own})).await;
    assert_eq!(third["conversation"]["id"], own.as_str());
    assert_eq!(t.history(&own).await.len(), 2);
    let got = t.send(Method::GET, &format!("/v1/responses/{}", third["id"].as_str().unwrap()), None).await;
    assert_eq!((got.body["id"].clone(), got.body["status"].clone(), output_text(&got.body)), (third["id"].clone(), json!("completed"), "Hello from LlmChat".to_owned()));

    // Another owner sees none of it.
    let (_, stranger) = t.new_owner().await;
    let rid = third["id"].as_str().unwrap();
    for (method, path) in [(Method::GET, format!("/v1/responses/{rid}")), (Method::POST, format!("/v1/responses/{rid}/cancel")), (Method::DELETE, format!("/v1/responses/{rid}"))] {
        assert_openai_error(&t.send_as(Some(&stranger), method, &path, None).await, 404, None);
    }
    let r = t.send_as(Some(&stranger), Method::POST, "/v1/responses", Some(&json!({"model": "smollm2:135m", "input": "x", "conversation": own}).to_string())).await;
    assert_openai_error(&r, 404, None);

    // Delete: gone from /v1 and from the session's history.
    let r = t.send(Method::DELETE, &format!("/v1/responses/{rid}"), None).await;
    assert_eq!((r.status, r.body["deleted"].clone()), (StatusCode::OK, json!(true)));
    assert_openai_error(&t.send(Method::GET, &format!("/v1/responses/{rid}"), None).await, 404, None);
    assert!(t.history(&own).await.is_empty());
}

#[tokio::test]
async fn streamed_responses_number_their_events_and_resume_from_any_of_them() {
    streamed_responses_resume(false).await
}

/// Thinking is not part of a response's output, but it moves positions (and
/// sequence numbers) on: the closing events still come after every delta.
#[tokio::test]
async fn a_response_that_thinks_numbers_its_closing_events_after_its_text() {
    streamed_responses_resume(true).await
}

async fn streamed_responses_resume(thinks: bool) {
    let tokens: Vec<String> = (0..12).map(|i| format!("wörd{i} ")).collect();
    let refs: Vec<&str> = tokens.iter().map(String::as_str).collect();
    let mut steps = reply_steps(&refs, Duration::from_millis(20));
    if thinks {
        let thinking = "a long thought ".repeat(20);
        steps.insert(0, Step::Thinking(thinking));
    }
    let llm = ScriptedLlm::start(move |_| Script { status: 200, steps: steps.clone() }).await;
    let t = spawn_app_for_llm(&llm.url, &[]).await;
    let r = post(&t, "/v1/responses", json!({"model": "smollm2:135m", "input": "Go", "stream": true})).await;
    assert_eq!(r.content_type, "text/event-stream");
    let events = response_events(&r.text);
    let kinds: Vec<&str> = events.iter().map(|(k, _, _)| k.as_str()).collect();
    assert_eq!(&kinds[..4], ["response.created", "response.in_progress", "response.output_item.added", "response.content_part.added"]);
    assert_eq!(&kinds[kinds.len() - 4..], ["response.output_text.done", "response.content_part.done", "response.output_item.done", "response.completed"]);
    assert!(events.windows(2).all(|w| w[0].1 < w[1].1), "sequence numbers increase");
    let whole: String = events.iter().filter(|(k, _, _)| k == "response.output_text.delta").map(|(_, _, v)| v["delta"].as_str().unwrap()).collect();
    assert_eq!(whole, tokens.concat());
    let completed = &events.last().unwrap().2["response"];
    assert_eq!((completed["status"].as_str(), output_text(completed)), (Some("completed"), whole.clone()));

    // Resume after every event: exactly the events that followed it.
    let id = completed["id"].as_str().unwrap();
    for (kind, seq, _) in &events {
        let r = t.send(Method::GET, &format!("/v1/responses/{id}?stream=true&starting_after={seq}"), None).await;
        let rest = response_events(&r.text);
        assert!(rest.iter().all(|(_, s, _)| s > seq), "after {kind} {seq}");
        let seen: String = events.iter().filter(|(k, s, _)| k == "response.output_text.delta" && s <= seq).map(|(_, _, v)| v["delta"].as_str().unwrap()).collect();
        let more: String = rest.iter().filter(|(k, _, _)| k == "response.output_text.delta").map(|(_, _, v)| v["delta"].as_str().unwrap()).collect();
        assert_eq!(format!("{seen}{more}"), whole, "after {kind} {seq}: no gap, no repeat");
        if seq < &events.last().unwrap().1 {
            assert_eq!(rest.last().map(|(k, _, _)| k.as_str()), Some("response.completed"));
        } else {
            assert!(rest.is_empty());
        }
    }
}

#[tokio::test]
async fn background_responses_outlive_their_request_and_can_be_cancelled() {
    let llm = ScriptedLlm::start(|request| {
        let slow = request["messages"].as_array().and_then(|m| m.last()).is_some_and(|m| m["content"] == "slow");
        let tokens: Vec<String> = (0..if slow { 100 } else { 3 }).map(|i| format!("t{i} ")).collect();
        let refs: Vec<&str> = tokens.iter().map(String::as_str).collect();
        Script { status: 200, steps: reply_steps(&refs, Duration::from_millis(if slow { 50 } else { 20 })) }
    })
    .await;
    let t = spawn_app_for_llm(&llm.url, &[]).await;
    let started = create_response(&t, json!({"model": "smollm2:135m", "input": "quick", "background": true})).await;
    assert_eq!((started["status"].as_str(), started["background"].as_bool()), (Some("in_progress"), Some(true)));
    let id = started["id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = t.send(Method::GET, &format!("/v1/responses/{id}"), None).await;
        if r.body["status"] == "completed" {
            assert_eq!(output_text(&r.body), "t0 t1 t2 ");
            break;
        }
        assert!(Instant::now() < deadline, "never completed: {}", r.body);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let slow = create_response(&t, json!({"model": "smollm2:135m", "input": "slow", "background": true})).await;
    let id = slow["id"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let r = t.send(Method::POST, &format!("/v1/responses/{id}/cancel"), None).await;
    assert_eq!((r.status, r.body["status"].as_str()), (StatusCode::OK, Some("cancelled")), "{}", r.text);
    let kept = output_text(&r.body);
    assert!(kept.starts_with("t0 ") && kept.len() < 300, "{kept}");
    let again = t.send(Method::POST, &format!("/v1/responses/{id}/cancel"), None).await;
    assert_eq!((again.body["status"].clone(), output_text(&again.body)), (json!("cancelled"), kept));
}
