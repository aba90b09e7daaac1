//! The Ollama client on its own, against the scripted server: the
//! non-streaming call, the model list, and how failures are classified.

use std::time::Duration;

use llmchat::domain::{ModelOptions, Role};
use llmchat::llm::ollama::OllamaClient;
use llmchat::llm::{ChatModel, ChatRequest, ChatTurn, LlmError, ReplyStream, TimeoutPhase};
use llmchat_tests::scripted_llm::{Script, ScriptedLlm, Step, done_line};
use serde_json::json;

fn client(url: &str) -> OllamaClient {
    OllamaClient::new(url, Duration::from_millis(500), Duration::from_secs(2), Duration::from_millis(500))
}

fn request(model: &str) -> ChatRequest {
    ChatRequest {
        model: model.to_owned(),
        messages: vec![ChatTurn { role: Role::User, content: "hi".to_owned() }],
        options: ModelOptions { seed: Some(1), ..Default::default() },
        format: None,
    }
}

#[tokio::test]
async fn a_non_streaming_chat_returns_the_whole_reply_and_usage() {
    let llm = ScriptedLlm::start(|_| {
        let mut body: serde_json::Value = serde_json::from_slice(&done_line()).unwrap();
        body["message"]["content"] = json!("Hello there, whole.");
        Script { status: 200, steps: vec![Step::Bytes(body.to_string().into_bytes())] }
    })
    .await;
    let (text, completion) = client(&llm.url).chat(&request("m")).await.unwrap();
    assert_eq!(text, "Hello there, whole.");
    assert_eq!(completion.done_reason.as_deref(), Some("stop"));
    assert_eq!(completion.usage.prompt_tokens, 26);
    assert_eq!(completion.usage.completion_tokens, 7);
    assert_eq!(completion.usage.eval_duration_ms, 3);
    let sent = &llm.requests()[0];
    assert_eq!(sent["stream"], false);
    assert_eq!(sent["options"], json!({"seed": 1}));
}

#[tokio::test]
async fn an_unknown_model_is_model_not_found_in_both_modes() {
    let llm = ScriptedLlm::start(|_| Script { status: 404, steps: vec![Step::Bytes(br#"{"error":"model 'x' not found"}"#.to_vec())] }).await;
    let c = client(&llm.url);
    assert_eq!(c.chat(&request("x")).await.unwrap_err(), LlmError::ModelNotFound("x".into()));
    assert_eq!(c.chat_stream(&request("x")).await.err(), Some(LlmError::ModelNotFound("x".into())));
}

#[tokio::test]
async fn a_server_error_before_generating_is_unavailable() {
    let llm = ScriptedLlm::start(|_| Script { status: 500, steps: vec![Step::Bytes(br#"{"error":"out of memory"}"#.to_vec())] }).await;
    assert!(matches!(client(&llm.url).chat_stream(&request("m")).await.err(), Some(LlmError::Unavailable(_))));
}

#[tokio::test]
async fn nothing_listening_is_unavailable_and_silence_is_a_first_token_timeout() {
    let url = crate::helpers::unreachable_url();
    assert!(matches!(client(&url).chat_stream(&request("m")).await.err(), Some(LlmError::Unavailable(_))));
    assert!(matches!(client(&url).models().await, Err(LlmError::Unavailable(_))));

    let llm = ScriptedLlm::start(|_| Script { status: 200, steps: vec![Step::Sleep(Duration::from_secs(5))] }).await;
    let mut stream = client(&llm.url).chat_stream(&request("m")).await.unwrap();
    assert_eq!(stream.next().await, Some(Err(LlmError::Timeout(TimeoutPhase::FirstToken))));
    assert_eq!(stream.next().await, None, "an error ends the stream");
}

#[tokio::test]
async fn the_model_list_comes_from_tags() {
    let llm = ScriptedLlm::replying(&["unused"]).await;
    let models = client(&llm.url).models().await.unwrap();
    assert_eq!(models.len(), 1);
    assert_eq!(models[0].name, "gemma3:270m");
    assert_eq!(models[0].family.as_deref(), Some("gemma3"));
    assert_eq!(models[0].parameter_size.as_deref(), Some("268M"));
    assert_eq!(models[0].quantization_level.as_deref(), Some("Q4_K_M"));
}
