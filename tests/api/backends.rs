//! The model backends on their own, against the scripted server in each
//! dialect (one suite, run for both): streaming, usage, thinking, what is
//! passed through, and how every failure is classified.

use std::collections::HashMap;

use llmchat::config::Config;
use llmchat::domain::{ModelOptions, Role, Think, ThinkEffort};
use llmchat::llm::backends::Backends;
use llmchat::llm::{ChatEvent, ChatModel, ChatRequest, ChatTurn, LlmError, ReplyStream, TimeoutPhase};
use llmchat_tests::scripted_llm::{Dialect, Script, ScriptedLlm, Step, reply_steps};
use serde_json::json;

/// The backends of an app whose one backend, `llm`, is `backend` (a `name=kind:url` entry), with short waits.
fn backends(backend: &str, extra: &[(&str, &str)]) -> Backends {
    let mut vars: HashMap<&str, &str> = HashMap::from([
        ("LLMCHAT_BACKENDS", backend),
        ("LLMCHAT_LLM_CONNECT_TIMEOUT_MS", "500"),
        ("LLMCHAT_LLM_FIRST_TOKEN_TIMEOUT_MS", "2000"),
        ("LLMCHAT_LLM_IDLE_TIMEOUT_MS", "500"),
    ]);
    vars.extend(extra.iter().copied());
    let config = Config::from_lookup(|k| vars.get(k).map(|v| v.to_string())).expect("valid configuration");
    Backends::without_parameters(&config)
}

fn client(llm: &ScriptedLlm) -> Backends {
    backends(&llm.backend_var(), &[])
}

fn request(model: &str, options: ModelOptions) -> ChatRequest {
    ChatRequest { model: model.to_owned(), messages: vec![ChatTurn { role: Role::User, content: "hi".to_owned() }], options }
}

async fn events(stream: &mut impl ReplyStream) -> Vec<Result<ChatEvent, LlmError>> {
    let mut events = Vec::new();
    while let Some(event) = stream.next().await {
        events.push(event);
    }
    events
}

async fn a_reply_streams_token_by_token_with_usage(d: Dialect) {
    let llm = ScriptedLlm::replying_as(d, &["Hello", " there"]).await;
    let mut stream = client(&llm).chat_stream(&request("llm/m", ModelOptions { seed: Some(1), ..Default::default() })).await.unwrap();
    let events = events(&mut stream).await;
    let texts: Vec<String> = events
        .iter()
        .filter_map(|e| match e {
            Ok(ChatEvent::Delta(t)) => Some(t.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(texts, ["Hello", " there"]);
    let Some(Ok(ChatEvent::Done(done))) = events.last() else { panic!("ends with Done: {events:?}") };
    assert_eq!(done.done_reason.as_deref(), Some("stop"));
    assert_eq!((done.usage.prompt_tokens, done.usage.completion_tokens), (26, 7));
    let sent = &llm.requests()[0];
    assert_eq!(sent["model"], "m", "the backend gets its own name for the model");
    assert_eq!(sent["stream"], true);
    match d {
        Dialect::Ollama => assert_eq!(sent["options"], json!({"seed": 1})),
        Dialect::OpenAi => {
            assert_eq!(sent["seed"], 1);
            assert_eq!(sent["stream_options"]["include_usage"], true);
        }
    }
}

async fn thinking_arrives_apart_and_is_counted(d: Dialect) {
    let llm = ScriptedLlm::start_as(d, |_| {
        Script::ok(vec![Step::Thinking("Hmm, ".into()), Step::Thinking("two.".into()), Step::Token("2".into()), Step::Done])
    })
    .await;
    let mut stream = client(&llm).chat_stream(&request("m", ModelOptions::default())).await.unwrap();
    let events = events(&mut stream).await;
    assert_eq!(events[0], Ok(ChatEvent::Thinking("Hmm, ".into())));
    assert_eq!(events[1], Ok(ChatEvent::Thinking("two.".into())));
    assert_eq!(events[2], Ok(ChatEvent::Delta("2".into())));
    let Some(Ok(ChatEvent::Done(done))) = events.last() else { panic!("ends with Done") };
    assert_eq!(done.usage.thinking_tokens, 2, "one token per piece when the backend reports no count");
}

async fn think_and_format_are_passed_through(d: Dialect) {
    let llm = ScriptedLlm::replying_as(d, &["{}"]).await;
    let schema = json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]});
    for (think, format) in [(Think::Effort(ThinkEffort::High), schema.clone()), (Think::Switch(true), json!("json"))] {
        let options = ModelOptions { think: Some(think), format: Some(format), num_ctx: Some(2048), ..Default::default() };
        let mut stream = client(&llm).chat_stream(&request("m", options)).await.unwrap();
        events(&mut stream).await;
    }
    let sent = llm.requests();
    match d {
        Dialect::Ollama => {
            assert_eq!((&sent[0]["think"], &sent[0]["format"]), (&json!("high"), &schema));
            assert_eq!((&sent[1]["think"], &sent[1]["format"]), (&json!(true), &json!("json")));
            assert_eq!(sent[0]["options"], json!({"num_ctx": 2048}), "think and format are not sampling options");
        }
        Dialect::OpenAi => {
            assert_eq!(sent[0]["reasoning_effort"], "high");
            assert_eq!(sent[0]["response_format"], json!({"type": "json_schema", "json_schema": {"name": "reply", "schema": schema}}));
            assert_eq!(sent[1]["response_format"], json!({"type": "json_object"}));
            assert!(sent[1].get("reasoning_effort").is_none(), "an on/off switch has no OpenAI parameter");
            assert!(sent[0].get("num_ctx").is_none(), "the server's context is its own setting");
        }
    }
}

async fn refusals_are_classified(d: Dialect) {
    for (status, expected) in [
        (404, LlmError::ModelNotFound("x".into())),
        (500, LlmError::Unavailable("out of memory".into())),
        (429, LlmError::Busy { message: "slow down".into(), retry_after: Some(7) }),
        (503, LlmError::Busy { message: "loading".into(), retry_after: Some(7) }),
        (400, LlmError::Failed("bad request".into())),
    ] {
        let message = match &expected {
            LlmError::Unavailable(m) | LlmError::Failed(m) | LlmError::Busy { message: m, .. } => m.clone(),
            _ => "model 'x' not found".to_owned(),
        };
        let llm = ScriptedLlm::start_as(d, move |_| Script::refusal(status, &message)).await;
        assert_eq!(client(&llm).chat_stream(&request("x", ModelOptions::default())).await.err(), Some(expected), "status {status}");
    }
}

async fn an_error_inside_the_stream_ends_it(d: Dialect) {
    let llm = ScriptedLlm::start_as(d, |_| Script::ok(vec![Step::Token("Part".into()), Step::ErrorLine("runner stopped".into())])).await;
    let mut stream = client(&llm).chat_stream(&request("m", ModelOptions::default())).await.unwrap();
    assert_eq!(stream.next().await, Some(Ok(ChatEvent::Delta("Part".into()))));
    assert_eq!(stream.next().await, Some(Err(LlmError::Failed("runner stopped".into()))));
    assert_eq!(stream.next().await, None, "an error ends the stream");
}

async fn a_cut_connection_is_a_failure_not_an_end(d: Dialect) {
    let llm = ScriptedLlm::start_as(d, |_| Script::ok(vec![Step::Token("Half".into()), Step::Cut])).await;
    let mut stream = client(&llm).chat_stream(&request("m", ModelOptions::default())).await.unwrap();
    assert_eq!(stream.next().await, Some(Ok(ChatEvent::Delta("Half".into()))));
    assert!(matches!(stream.next().await, Some(Err(LlmError::Failed(_)))));
}

async fn utf8_split_across_writes_arrives_whole(d: Dialect) {
    let token = d.token("héllo 👋");
    let wave = token.windows(4).position(|w| w == "👋".as_bytes()).unwrap() + 2;
    let llm = ScriptedLlm::start_as(d, move |_| {
        Script::ok(vec![Step::Bytes(token[..wave].to_vec()), Step::Sleep(std::time::Duration::from_millis(30)), Step::Bytes(token[wave..].to_vec()), Step::Done])
    })
    .await;
    let mut stream = client(&llm).chat_stream(&request("m", ModelOptions::default())).await.unwrap();
    assert_eq!(stream.next().await, Some(Ok(ChatEvent::Delta("héllo 👋".into()))));
}

async fn nothing_listening_is_unavailable_and_silence_is_a_timeout(d: Dialect) {
    let url = crate::helpers::unreachable_url();
    let c = backends(&d.backend_var(&url), &[]);
    assert!(matches!(c.chat_stream(&request("m", ModelOptions::default())).await.err(), Some(LlmError::Unavailable(_))));
    assert!(matches!(c.models().await, Err(LlmError::Unavailable(_))));

    let llm = ScriptedLlm::start_as(d, |_| Script::ok(vec![Step::Sleep(std::time::Duration::from_secs(5))])).await;
    let mut stream = client(&llm).chat_stream(&request("m", ModelOptions::default())).await.unwrap();
    assert_eq!(stream.next().await, Some(Err(LlmError::Timeout(TimeoutPhase::FirstToken))));
    assert_eq!(stream.next().await, None);

    let llm = ScriptedLlm::start_as(d, |_| Script::ok(reply_steps(&["a", "b"], std::time::Duration::from_secs(2)))).await;
    let c = backends(&llm.backend_var(), &[("LLMCHAT_LLM_FIRST_TOKEN_TIMEOUT_MS", "3000")]);
    let mut stream = c.chat_stream(&request("m", ModelOptions::default())).await.unwrap();
    assert_eq!(stream.next().await, Some(Ok(ChatEvent::Delta("a".into()))));
    assert_eq!(stream.next().await, Some(Err(LlmError::Timeout(TimeoutPhase::BetweenTokens))));
}

async fn models_are_listed_with_their_backend(d: Dialect) {
    let llm = ScriptedLlm::replying_as(d, &["unused"]).await;
    let models = client(&llm).models().await.unwrap();
    assert_eq!(models.len(), 1);
    assert_eq!(models[0].name, "llm/smollm2:135m");
    assert_eq!(models[0].backend, "llm");
    let pings = client(&llm).ping().await;
    assert_eq!(pings.len(), 1);
    assert_eq!(pings[0].0, "llm");
    assert!(pings[0].1.is_ok());
}

crate::both_dialects!(
    a_reply_streams_token_by_token_with_usage,
    thinking_arrives_apart_and_is_counted,
    think_and_format_are_passed_through,
    refusals_are_classified,
    an_error_inside_the_stream_ends_it,
    a_cut_connection_is_a_failure_not_an_end,
    utf8_split_across_writes_arrives_whole,
    nothing_listening_is_unavailable_and_silence_is_a_timeout,
    models_are_listed_with_their_backend,
);

#[tokio::test]
async fn a_model_goes_to_the_backend_its_prefix_names() {
    let ollama = ScriptedLlm::replying_as(Dialect::Ollama, &["from ollama"]).await;
    let openai = ScriptedLlm::replying_as(Dialect::OpenAi, &["from openai"]).await;
    let both = format!("local=ollama:{}, remote=openai:{}/v1", ollama.url, openai.url);
    let c = backends(&both, &[]);
    for (model, expected) in [("smollm2:135m", "from ollama"), ("local/smollm2:135m", "from ollama"), ("remote/smollm2:135m", "from openai")] {
        let mut stream = c.chat_stream(&request(model, ModelOptions::default())).await.unwrap();
        assert_eq!(stream.next().await, Some(Ok(ChatEvent::Delta(expected.into()))), "{model}");
    }
    assert_eq!(ollama.requests().len(), 2);
    assert_eq!(openai.requests()[0]["model"], "smollm2:135m");
    let names: Vec<String> = c.models().await.unwrap().into_iter().map(|m| m.name).collect();
    assert_eq!(names, ["local/smollm2:135m", "remote/smollm2:135m"]);
    // One backend down: the other's models are still listed, and health names the one down.
    let half = backends(&format!("local=ollama:{}, gone=openai:{}", ollama.url, crate::helpers::unreachable_url()), &[]);
    assert_eq!(half.models().await.unwrap().len(), 1);
    let pings = half.ping().await;
    assert!(pings[0].1.is_ok() && pings[1].1.is_err());
}

#[tokio::test]
async fn an_unknown_model_is_reported_by_the_name_the_client_gave() {
    let llm = ScriptedLlm::start_as(Dialect::OpenAi, |_| Script::refusal(404, "The model `nope` does not exist.")).await;
    let c = client(&llm);
    assert_eq!(c.chat_stream(&request("llm/nope", ModelOptions::default())).await.err(), Some(LlmError::ModelNotFound("llm/nope".into())));
}

#[tokio::test]
async fn an_openai_server_without_usage_is_counted_by_its_pieces_and_may_omit_done() {
    // As llama.cpp's server streams: a role-only chunk, tokens, an empty delta
    // with the finish reason, `[DONE]`, and no usage anywhere.
    let d = Dialect::OpenAi;
    let role = br#"data: {"choices":[{"index":0,"delta":{"role":"assistant"},"finish_reason":null}]}"#.to_vec();
    let finish = b"data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"length\"}]}\n\n".to_vec();
    for tail in [b"data: [DONE]\n\n".to_vec(), Vec::new()] {
        let steps = vec![
            Step::Bytes([role.clone(), b"\n\n".to_vec()].concat()),
            Step::Token("Par".into()),
            Step::Token("is".into()),
            Step::Bytes([finish.clone(), tail].concat()),
        ];
        let llm = ScriptedLlm::start_as(d, move |_| Script::ok(steps.clone())).await;
        let mut stream = client(&llm).chat_stream(&request("m", ModelOptions::default())).await.unwrap();
        let events = events(&mut stream).await;
        let Some(Ok(ChatEvent::Done(done))) = events.last() else { panic!("ends with Done: {events:?}") };
        assert_eq!(done.done_reason.as_deref(), Some("length"));
        assert_eq!((done.usage.prompt_tokens, done.usage.completion_tokens), (0, 2));
    }
}

/// The events an OpenAI-compatible server may end a stream with, and what each means.
#[tokio::test]
async fn an_openai_stream_ends_as_it_says_it_does() {
    let d = Dialect::OpenAi;
    let finish = b"data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n".to_vec();
    let cases: Vec<(&str, Vec<Step>, bool)> = vec![
        ("[DONE] without a finish reason", vec![Step::Token("Half".into()), Step::Bytes(b"data: [DONE]\n\n".to_vec())], false),
        ("an error object", vec![Step::Token("Half".into()), Step::Bytes(b"data: {\"object\":\"error\",\"message\":\"out of memory\"}\n\n".to_vec())], false),
        ("an event named error", vec![Step::Token("Half".into()), Step::Bytes(b"event: error\ndata: {\"message\":\"overloaded\"}\n\n".to_vec())], false),
        ("a cut after the finish reason", vec![Step::Token("Whole".into()), Step::Bytes(finish.clone()), Step::Cut], true),
        ("silence after the finish reason", vec![Step::Token("Whole".into()), Step::Bytes(finish), Step::Sleep(std::time::Duration::from_secs(2))], true),
    ];
    for (what, steps, complete) in cases {
        let llm = ScriptedLlm::start_as(d, move |_| Script::ok(steps.clone())).await;
        let mut stream = client(&llm).chat_stream(&request("m", ModelOptions::default())).await.unwrap();
        let events = events(&mut stream).await;
        match events.last() {
            Some(Ok(ChatEvent::Done(_))) => assert!(complete, "{what}: taken as complete"),
            Some(Err(LlmError::Failed(_))) => assert!(!complete, "{what}: taken as failed"),
            other => panic!("{what}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn keep_alive_comments_do_not_hold_off_the_timeouts() {
    let mut steps = vec![Step::Token("a".into())];
    for _ in 0..8 {
        steps.push(Step::Sleep(std::time::Duration::from_millis(150)));
        steps.push(Step::Bytes(b": still working\n\n".to_vec()));
    }
    steps.push(Step::Token("b".into()));
    let llm = ScriptedLlm::start_as(Dialect::OpenAi, move |_| Script::ok(steps.clone())).await;
    let mut stream = client(&llm).chat_stream(&request("m", ModelOptions::default())).await.unwrap();
    assert_eq!(stream.next().await, Some(Ok(ChatEvent::Delta("a".into()))));
    // Comments every 150 ms, but no token for 1.2 s: past the 500 ms idle timeout.
    let mut last = stream.next().await;
    while matches!(last, Some(Ok(ChatEvent::Progress))) {
        last = stream.next().await;
    }
    assert_eq!(last, Some(Err(LlmError::Timeout(TimeoutPhase::BetweenTokens))));
}

#[tokio::test]
async fn an_openai_backend_can_name_the_reply_limit_as_reasoning_models_want_it() {
    let llm = ScriptedLlm::replying_as(Dialect::OpenAi, &["ok"]).await;
    let options = ModelOptions { num_predict: Some(64), ..Default::default() };
    for (setting, field, absent) in [(None, "max_tokens", "max_completion_tokens"), (Some("max_completion_tokens"), "max_completion_tokens", "max_tokens")] {
        let extra: Vec<(&str, &str)> = setting.map(|s| ("LLMCHAT_BACKEND_LLM_MAX_TOKENS_PARAM", s)).into_iter().collect();
        let mut stream = backends(&llm.backend_var(), &extra).chat_stream(&request("m", options.clone())).await.unwrap();
        events(&mut stream).await;
        let sent = llm.requests().pop().unwrap();
        assert_eq!((sent[field].as_u64(), sent.get(absent)), (Some(64), None), "{setting:?}");
    }
    // A 404 that does not name the model is a wrong URL, not an unknown model.
    let lost = ScriptedLlm::start_as(Dialect::OpenAi, |_| Script { status: 404, steps: vec![Step::Bytes(br#"{"detail":"Not Found"}"#.to_vec())] }).await;
    assert!(matches!(client(&lost).chat_stream(&request("m", ModelOptions::default())).await.err(), Some(LlmError::Unavailable(_))));
}
