//! `POST /v1/chat/completions`: stateless, as OpenAI's; nothing is stored.
//! Supported parameters: [`SUPPORTED`]. Streamed as `data:` chunks ending
//! with `data: [DONE]`, with a usage chunk when `stream_options.include_usage`.

use http::StatusCode;
use lambda_http::Response;
use lambda_runtime::streaming::Body;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::{error_response, invalid, param, params, ranged, required};
use std::sync::Arc;

use crate::App;
use crate::chat::{self, Delta, relay};
use crate::domain::limits::{MAX_STOP_SEQUENCE_CHARS, MAX_STOP_SEQUENCES};
use crate::domain::{ModelOptions, OwnerId, Role, Think, ThinkEffort, Timestamp, Usage};
use crate::http::{ApiError, json as json_response, sse};
use crate::llm::{ChatModel, ChatTurn, Completion};
use crate::store::Store;

/// The request parameters LlmChat understands; any other is a 400 naming it.
pub const SUPPORTED: &[&str] = &[
    "model", "messages", "temperature", "top_p", "max_tokens", "max_completion_tokens", "stop", "seed",
    "response_format", "stream", "stream_options", "n", "reasoning_effort",
];

/// The most tokens a client may ask for (`max_tokens`), as in a session's options.
const MAX_TOKENS: u32 = 131_072;

pub async fn create<S, M>(app: Arc<App<S, M>>, owner: &OwnerId, body: &[u8], request_id: &str) -> Result<Response<Body>, ApiError>
where
    S: Store + 'static,
    M: ChatModel,
    M::Stream: 'static,
{
    let map = params(body, SUPPORTED)?;
    let model: String = required(&map, "model")?;
    let messages: Vec<Value> = required(&map, "messages")?;
    if messages.is_empty() {
        return Err(invalid("messages", "at least one message is required"));
    }
    let turns = messages.iter().enumerate().map(|(i, m)| turn(i, m)).collect::<Result<Vec<_>, _>>()?;
    if param::<u32>(&map, "n")?.is_some_and(|n| n != 1) {
        return Err(invalid("n", "only `n: 1` is supported"));
    }
    let options = ModelOptions {
        temperature: ranged(&map, "temperature", 0.0, 2.0)?,
        top_p: ranged(&map, "top_p", 0.0, 1.0)?,
        num_predict: max_tokens(&map)?,
        seed: param(&map, "seed")?,
        stop: stop(&map)?,
        think: reasoning_effort(&map)?,
        format: response_format(&map, "response_format")?,
        ..ModelOptions::default()
    };
    let stream: bool = param(&map, "stream")?.unwrap_or(false);
    let include_usage = match param::<Map<String, Value>>(&map, "stream_options")? {
        Some(_) if !stream => return Err(invalid("stream_options", "`stream_options` goes with `stream: true`")),
        Some(o) => o.get("include_usage").and_then(Value::as_bool).unwrap_or(false),
        None => false,
    };

    let request = chat::stateless_request(&app.config, model.clone(), turns, options)?;
    let (claim, opening) = chat::claim_stateless(&app.store, &app.llm, &app.config, owner, &request).await?;
    let reply = match opening.opened().await {
        Ok(reply) => reply,
        Err(e) => {
            chat::settle_stateless(&app.store, claim, None, "", "").await;
            return Err(ApiError::Llm(e));
        }
    };
    let head = Head { id: format!("chatcmpl-{}", Uuid::new_v4().simple()), created: Timestamp::now().unix_seconds(), model };
    if !stream {
        let (mut text, mut thinking) = (String::new(), String::new());
        let ended = relay(reply, |d| match d {
            Delta::Content(d) => text.push_str(d),
            Delta::Thinking(d) => thinking.push_str(d),
        })
        .await;
        chat::settle_stateless(&app.store, claim, ended.as_ref().ok().map(|c| &c.usage), &thinking, &text).await;
        let completion = ended.map_err(ApiError::Llm)?;
        return json_response(StatusCode::OK, &head.completion(&text, &thinking, &completion));
    }
    let (chunks, body) = sse::channel::<String>(app.config.sse_keepalive);
    let request_id = request_id.to_owned();
    tokio::spawn(async move {
        let send = |v: Value| chunks.send(sse::frame(None, None, &v.to_string())).is_ok();
        send(head.chunk(json!({"role": "assistant", "content": ""}), None, include_usage));
        let (mut text, mut thinking) = (String::new(), String::new());
        let ended = relay(reply, |d| {
            let delta = match d {
                Delta::Content(d) => {
                    text.push_str(d);
                    json!({"content": d})
                }
                Delta::Thinking(d) => {
                    thinking.push_str(d);
                    json!({"reasoning_content": d})
                }
            };
            send(head.chunk(delta, None, include_usage));
        })
        .await;
        chat::settle_stateless(&app.store, claim, ended.as_ref().ok().map(|c| &c.usage), &thinking, &text).await;
        match ended {
            Ok(completion) => {
                send(head.chunk(json!({}), Some(finish_reason(&completion)), include_usage));
                if include_usage {
                    send(head.usage_chunk(&completion.usage));
                }
                let _ = chunks.send(sse::frame(None, None, "[DONE]"));
            }
            Err(e) => {
                let error: Response<String> = error_response(&ApiError::Llm(e), &request_id);
                let _ = chunks.send(sse::frame(None, None, error.body()));
            }
        }
    });
    sse::response(body)
}

/// What every object of one completion repeats.
struct Head {
    id: String,
    created: i64,
    model: String,
}

impl Head {
    fn completion(&self, text: &str, thinking: &str, completion: &Completion) -> Value {
        let mut message = json!({"role": "assistant", "content": text, "refusal": null});
        if !thinking.is_empty() {
            message["reasoning_content"] = json!(thinking);
        }
        json!({
            "id": self.id, "object": "chat.completion", "created": self.created, "model": self.model,
            "choices": [{
                "index": 0, "message": message,
                "finish_reason": finish_reason(completion), "logprobs": null,
            }],
            "usage": usage(&completion.usage), "system_fingerprint": null,
        })
    }

    fn chunk(&self, delta: Value, finish: Option<&str>, with_usage: bool) -> Value {
        let mut chunk = json!({
            "id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": null}],
            "system_fingerprint": null,
        });
        if with_usage {
            chunk["usage"] = Value::Null;
        }
        chunk
    }

    fn usage_chunk(&self, u: &Usage) -> Value {
        json!({
            "id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
            "choices": [], "usage": usage(u), "system_fingerprint": null,
        })
    }
}

fn usage(u: &Usage) -> Value {
    json!({
        "prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens,
        "total_tokens": u.prompt_tokens + u.completion_tokens,
        "completion_tokens_details": {"reasoning_tokens": u.thinking_tokens},
    })
}

/// `reasoning_effort` (`low`, `medium`, `high`) as the model's `think`.
fn reasoning_effort(map: &Map<String, Value>) -> Result<Option<Think>, ApiError> {
    match param::<String>(map, "reasoning_effort")?.as_deref() {
        None => Ok(None),
        Some("low") => Ok(Some(Think::Effort(ThinkEffort::Low))),
        Some("medium") => Ok(Some(Think::Effort(ThinkEffort::Medium))),
        Some("high") => Ok(Some(Think::Effort(ThinkEffort::High))),
        Some(_) => Err(invalid("reasoning_effort", "`reasoning_effort` is `low`, `medium` or `high`")),
    }
}

fn finish_reason(c: &Completion) -> &'static str {
    if c.done_reason.as_deref() == Some("length") { "length" } else { "stop" }
}

/// One of `messages`: a role LlmChat knows and text content.
fn turn(index: usize, message: &Value) -> Result<ChatTurn, ApiError> {
    let role = match message["role"].as_str() {
        Some("system" | "developer") => Role::System,
        Some("user") => Role::User,
        Some("assistant") => Role::Assistant,
        _ => return Err(invalid(&format!("messages[{index}].role"), "a role is `system`, `developer`, `user` or `assistant`")),
    };
    let content = text_content(&message["content"])
        .ok_or_else(|| invalid(&format!("messages[{index}].content"), "content is a string or a list of `text` parts"))?;
    if let Some(extra) = message.as_object().and_then(|m| m.keys().find(|k| !matches!(k.as_str(), "role" | "content" | "name"))) {
        return Err(invalid(&format!("messages[{index}].{extra}"), &format!("`{extra}` is not supported by LlmChat")));
    }
    Ok(ChatTurn { role, content })
}

/// A string, or the text of a list of `{"type": "text" | "input_text" | "output_text", "text": …}` parts.
pub fn text_content(content: &Value) -> Option<String> {
    match content {
        Value::String(s) => Some(s.clone()),
        Value::Array(parts) => parts
            .iter()
            .map(|p| match (p["type"].as_str(), p["text"].as_str()) {
                (Some("text" | "input_text" | "output_text"), Some(t)) => Some(t),
                _ => None,
            })
            .collect::<Option<Vec<&str>>>()
            .map(|t| t.concat()),
        _ => None,
    }
}

fn max_tokens(map: &Map<String, Value>) -> Result<Option<u32>, ApiError> {
    for name in ["max_completion_tokens", "max_tokens"] {
        if let Some(n) = param::<u32>(map, name)? {
            if !(1..=MAX_TOKENS).contains(&n) {
                return Err(invalid(name, &format!("`{name}` must be from 1 to {MAX_TOKENS}")));
            }
            return Ok(Some(n));
        }
    }
    Ok(None)
}

fn stop(map: &Map<String, Value>) -> Result<Option<Vec<String>>, ApiError> {
    let stops = match param::<Value>(map, "stop")? {
        None => return Ok(None),
        Some(Value::String(s)) => vec![s],
        Some(v) => serde_json::from_value::<Vec<String>>(v).map_err(|_| invalid("stop", "`stop` is a string or a list of strings"))?,
    };
    if stops.len() > MAX_STOP_SEQUENCES || stops.iter().any(|s| s.is_empty() || s.chars().count() > MAX_STOP_SEQUENCE_CHARS) {
        return Err(invalid("stop", &format!("at most {MAX_STOP_SEQUENCES} stop sequences of 1-{MAX_STOP_SEQUENCE_CHARS} characters")));
    }
    Ok(Some(stops))
}

/// `{"type": "text" | "json_object" | "json_schema", …}` as the model's `format`.
pub fn response_format(map: &Map<String, Value>, name: &str) -> Result<Option<Value>, ApiError> {
    let Some(format) = param::<Value>(map, name)? else { return Ok(None) };
    format_of(&format, &format["json_schema"]["schema"]).ok_or_else(|| invalid(name, "a format is `text`, `json_object` or `json_schema` with a `schema`"))
}

/// The model's `format` for an OpenAI output format whose schema (if any) is `schema`.
pub fn format_of(format: &Value, schema: &Value) -> Option<Option<Value>> {
    match format["type"].as_str()? {
        "text" => Some(None),
        "json_object" => Some(Some(Value::String("json".to_owned()))),
        "json_schema" if schema.is_object() => Some(Some(schema.clone())),
        _ => None,
    }
}
