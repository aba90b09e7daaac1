//! `/v1/responses`: OpenAI's stateful Responses API over LlmChat's sessions.
//! A response *is* a stored reply: its id names the session and the reply
//! (`resp_<session id><reply id>`, hex), so one seen here is in the session's
//! history and the other way round; `conversation` is an LlmChat session id.
//!
//! Supported parameters: [`SUPPORTED`]. Streams (on create, and on retrieve
//! with `stream=true&starting_after=N`) carry events whose `sequence_number`
//! is derived from the reply's byte positions (`3 + end` for a text delta), so
//! a resumed stream continues exactly where the reader was, from any instance.

use http::StatusCode;
use lambda_http::Response;
use lambda_runtime::streaming::Body;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::chat::{format_of, text_content};
use super::{invalid, param, params, ranged, required};
use crate::App;
use crate::chat::{self, Begun, Cancelled, Delta, Followed, Pending};
use crate::domain::{CreateSession, Message, MessageStatus, ModelOptions, OwnerId, Role, SendMessage, Timestamp, TurnOverrides};
use crate::http::invocation::Generations;
use crate::http::{ApiError, json as json_response, sse};
use crate::llm::ChatModel;
use crate::sessions;
use crate::store::{MessageRepository, Store};

/// The request parameters LlmChat understands; any other is a 400 naming it.
pub const SUPPORTED: &[&str] = &[
    "model", "input", "instructions", "previous_response_id", "conversation", "store", "stream", "background",
    "temperature", "top_p", "max_output_tokens", "text",
];

/// Sequence numbers of the events before the first text delta.
const HEAD_EVENTS: u64 = 4;

/// A response id: the session and the reply it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseId {
    pub session_id: Uuid,
    pub reply_id: Uuid,
}

impl ResponseId {
    pub fn parse(text: &str) -> Option<Self> {
        let hex = text.strip_prefix("resp_")?;
        if hex.len() != 64 {
            return None;
        }
        Some(ResponseId { session_id: Uuid::try_parse(&hex[..32]).ok()?, reply_id: Uuid::try_parse(&hex[32..]).ok()? })
    }

    pub fn of(reply: &Message) -> Self {
        ResponseId { session_id: reply.session_id, reply_id: reply.id }
    }
}

impl std::fmt::Display for ResponseId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "resp_{}{}", self.session_id.simple(), self.reply_id.simple())
    }
}

/// What a response object repeats from the request that made it (not stored:
/// a retrieved response shows the defaults).
#[derive(Debug, Clone, Default)]
pub struct Echo {
    pub instructions: Option<String>,
    pub previous_response_id: Option<String>,
    pub background: bool,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub max_output_tokens: Option<u32>,
}

/// The reply as an OpenAI response object.
pub fn object(reply: &Message, echo: &Echo) -> Value {
    let now = Timestamp::now();
    let status = reply.effective_status(now);
    let truncated = reply.done_reason.as_deref() == Some("length");
    let (state, item_state) = match status {
        MessageStatus::Streaming => ("in_progress", "in_progress"),
        MessageStatus::Complete if truncated => ("incomplete", "incomplete"),
        MessageStatus::Complete => ("completed", "completed"),
        MessageStatus::Cancelled => ("cancelled", "incomplete"),
        MessageStatus::Incomplete => ("incomplete", "incomplete"),
        MessageStatus::Failed => ("failed", "incomplete"),
    };
    let incomplete_details = match (state, truncated) {
        ("incomplete", true) => json!({"reason": "max_output_tokens"}),
        ("incomplete", false) => json!({"reason": "interrupted"}),
        _ => Value::Null,
    };
    let error = match status {
        MessageStatus::Failed => json!({
            "code": "server_error",
            "message": format!("the model failed ({})", reply.error_code.map_or("llm_error", |c| c.as_str())),
        }),
        _ => Value::Null,
    };
    let output = if reply.content.is_empty() && status == MessageStatus::Streaming {
        json!([])
    } else {
        json!([message_item(reply, item_state)])
    };
    let usage = reply.usage.as_ref().map(|u| {
        json!({
            "input_tokens": u.prompt_tokens, "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": u.completion_tokens, "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": u.prompt_tokens + u.completion_tokens,
        })
    });
    json!({
        "id": ResponseId::of(reply).to_string(), "object": "response", "created_at": reply.created_at.unix_seconds(),
        "status": state, "background": echo.background, "error": error, "incomplete_details": incomplete_details,
        "instructions": echo.instructions, "max_output_tokens": echo.max_output_tokens, "model": reply.model,
        "output": output, "parallel_tool_calls": false, "previous_response_id": echo.previous_response_id,
        "conversation": {"id": reply.session_id}, "store": true, "temperature": echo.temperature, "top_p": echo.top_p,
        "text": {"format": {"type": "text"}}, "tool_choice": "none", "tools": [], "truncation": "disabled",
        "usage": usage, "metadata": {},
    })
}

fn item_id(reply: &Message) -> String {
    format!("msg_{}", reply.id.simple())
}

fn output_text(text: &str) -> Value {
    json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []})
}

fn message_item(reply: &Message, status: &str) -> Value {
    json!({"type": "message", "id": item_id(reply), "status": status, "role": "assistant", "content": [output_text(&reply.content)]})
}

/// One event of a response stream, framed as SSE.
fn event(kind: &str, sequence_number: u64, mut body: Value) -> String {
    body["type"] = json!(kind);
    body["sequence_number"] = json!(sequence_number);
    sse::frame(None, Some(kind), &body.to_string())
}

/// The events before any text, numbered 0 to 3, for a reply as it reads now.
fn head_events(reply: &Message, echo: &Echo) -> Vec<(u64, String)> {
    let mut live = reply.clone();
    live.status = MessageStatus::Streaming;
    live.content.clear();
    let obj = object(&live, echo);
    let item = json!({"type": "message", "id": item_id(reply), "status": "in_progress", "role": "assistant", "content": []});
    vec![
        (0, event("response.created", 0, json!({"response": obj}))),
        (1, event("response.in_progress", 1, json!({"response": obj}))),
        (2, event("response.output_item.added", 2, json!({"output_index": 0, "item": item}))),
        (3, event("response.content_part.added", 3, json!({
            "item_id": item_id(reply), "output_index": 0, "content_index": 0, "part": output_text(""),
        }))),
    ]
}

/// A text delta ending at byte `end`: its sequence number is `3 + end`.
fn delta_event(reply: &Message, text: &str, end: usize) -> String {
    event("response.output_text.delta", HEAD_EVENTS - 1 + end as u64, json!({
        "item_id": item_id(reply), "output_index": 0, "content_index": 0, "delta": text, "logprobs": [],
    }))
}

/// The events after the text of an ended reply, numbered from `4 + its length`.
fn tail_events(reply: &Message, echo: &Echo) -> Vec<(u64, String)> {
    let obj = object(reply, echo);
    // After the last position, thinking included (deltas are numbered by position).
    let first = HEAD_EVENTS + reply.end_position() as u64;
    let terminal = match obj["status"].as_str() {
        Some("completed") => "response.completed",
        Some("failed") => "response.failed",
        _ => "response.incomplete",
    };
    let item_status = obj["output"][0]["status"].as_str().unwrap_or("completed").to_owned();
    let ids = json!({"item_id": item_id(reply), "output_index": 0, "content_index": 0});
    let mut text_done = ids.clone();
    text_done["text"] = json!(reply.content);
    text_done["logprobs"] = json!([]);
    let mut part_done = ids;
    part_done["part"] = output_text(&reply.content);
    vec![
        (first, event("response.output_text.done", first, text_done)),
        (first + 1, event("response.content_part.done", first + 1, part_done)),
        (first + 2, event("response.output_item.done", first + 2, json!({"output_index": 0, "item": message_item(reply, &item_status)}))),
        (first + 3, event(terminal, first + 3, json!({"response": obj}))),
    ]
}

/// `POST /v1/responses`.
pub async fn create<S, M>(
    app: std::sync::Arc<App<S, M>>,
    generations: &Generations,
    owner: &OwnerId,
    body: &[u8],
) -> Result<Response<Body>, ApiError>
where
    S: Store + 'static,
    M: ChatModel,
{
    let map = params(body, SUPPORTED)?;
    let model: String = required(&map, "model")?;
    let (content, input_instructions) = input(&map)?;
    let instructions = match (param::<String>(&map, "instructions")?, input_instructions) {
        (Some(a), Some(b)) => Some(format!("{a}\n\n{b}")),
        (a, b) => a.or(b),
    };
    if param::<bool>(&map, "store")? == Some(false) {
        return Err(invalid("store", "LlmChat stores every response: `store: false` is not supported"));
    }
    let echo = Echo {
        instructions: instructions.clone(),
        previous_response_id: param(&map, "previous_response_id")?,
        background: param(&map, "background")?.unwrap_or(false),
        temperature: ranged(&map, "temperature", 0.0, 2.0)?,
        top_p: ranged(&map, "top_p", 0.0, 1.0)?,
        max_output_tokens: match param::<u32>(&map, "max_output_tokens")? {
            Some(n) if !(1..=131_072).contains(&n) => return Err(invalid("max_output_tokens", "`max_output_tokens` must be from 1 to 131072")),
            n => n,
        },
    };
    let format = match param::<Value>(&map, "text")? {
        None => None,
        Some(text) => format_of(&text["format"], &text["format"]["schema"])
            .ok_or_else(|| invalid("text", "`text.format` is `text`, `json_object` or `json_schema` with a `schema`"))?,
    };
    let stream: bool = param(&map, "stream")?.unwrap_or(false);
    // An unknown model changes nothing: refused before a session or an exchange is stored.
    super::models::retrieve(&app.llm, &app.config, &model).await?;
    let session_id = conversation(&app, owner, &map, &echo, &model, &content).await?;

    let send = SendMessage {
        content,
        client_message_id: None,
        options: Some(ModelOptions {
            temperature: echo.temperature,
            top_p: echo.top_p,
            num_predict: echo.max_output_tokens,
            format,
            ..ModelOptions::default()
        }),
        turn: TurnOverrides { model: Some(model), system_prompt: instructions },
    };
    let reads = chat::read_for_send(&app.store, &app.config, session_id).await;
    let Begun::New(pending) = chat::begin(&app.store, &app.llm, &app.config, owner, reads, send).await? else {
        return Err(ApiError::Internal("a send without a client_message_id was taken for a retry".into()));
    };
    if stream {
        let (events, body) = sse::channel::<String>(app.config.sse_keepalive);
        generations.spawn(produce(app, pending, echo, Some(events)));
        return sse::response(body);
    }
    if echo.background {
        let reply = pending.reply.clone();
        generations.spawn(produce(app, pending, echo.clone(), None));
        return json_response(StatusCode::OK, &object(&reply, &echo));
    }
    let generated = chat::generate(&app.store, &app.config, pending, |_| {}).await;
    if let Some(problem) = generated.problem() {
        return Err(problem.into());
    }
    json_response(StatusCode::OK, &object(&generated.reply, &echo))
}

/// The new message and any system or developer text of `input`: a string, or
/// message items of which the last is the user's.
fn input(map: &Map<String, Value>) -> Result<(String, Option<String>), ApiError> {
    let input: Value = required(map, "input")?;
    if let Value::String(text) = input {
        return Ok((text, None));
    }
    let items = input.as_array().ok_or_else(|| invalid("input", "`input` is a string or a list of messages"))?;
    let mut system = Vec::new();
    let mut user = None;
    for (i, item) in items.iter().enumerate() {
        let text = text_content(&item["content"]).ok_or_else(|| invalid(&format!("input[{i}].content"), "content is a string or a list of text parts"))?;
        match (item["role"].as_str(), i + 1 == items.len()) {
            (Some("system" | "developer"), false) => system.push(text),
            (Some("user"), true) => user = Some(text),
            _ => {
                return Err(invalid(
                    &format!("input[{i}]"),
                    "LlmChat keeps the conversation itself: `input` is the new user message, after any system or developer messages",
                ));
            }
        }
    }
    let user = user.ok_or_else(|| invalid("input", "`input` must end with a user message"))?;
    Ok((user, (!system.is_empty()).then(|| system.join("\n\n"))))
}

/// The session the response goes in: `conversation`, the one of
/// `previous_response_id` (whose reply must be the newest: LlmChat
/// conversations do not branch), or a new one.
async fn conversation<S: Store, M>(
    app: &App<S, M>,
    owner: &OwnerId,
    map: &Map<String, Value>,
    echo: &Echo,
    model: &str,
    content: &str,
) -> Result<Uuid, ApiError> {
    let named = match param::<Value>(map, "conversation")? {
        None => None,
        Some(Value::String(id)) => Some(id),
        Some(v) => Some(v["id"].as_str().map(str::to_owned).ok_or_else(|| invalid("conversation", "`conversation` is a session id or `{\"id\": …}`"))?),
    };
    match (named, &echo.previous_response_id) {
        (Some(_), Some(_)) => Err(invalid("previous_response_id", "give `conversation` or `previous_response_id`, not both")),
        (Some(id), None) => {
            let id = Uuid::try_parse(&id).map_err(|_| invalid("conversation", "`conversation` is an LlmChat session id"))?;
            Ok(sessions::get(&app.store, owner, id).await?.id)
        }
        (None, Some(previous)) => {
            let id = ResponseId::parse(previous).ok_or(ApiError::NotFound("response"))?;
            let reply = chat::locate_reply(&app.store, owner, id.session_id, id.reply_id).await?;
            let session = sessions::get(&app.store, owner, id.session_id).await?;
            if session.last_seq != reply.seq {
                return Err(invalid("previous_response_id", "only the latest response of a conversation can be continued"));
            }
            Ok(session.id)
        }
        (None, None) => {
            let title: String = content.chars().take(60).collect();
            let create = CreateSession {
                title: Some(if title.trim().is_empty() { crate::domain::DEFAULT_TITLE.to_owned() } else { title }),
                model: Some(model.to_owned()),
                ..CreateSession::default()
            };
            Ok(sessions::create(&app.store, &app.config, owner.clone(), create).await?.id)
        }
    }
}

/// Generates the reply; with `events`, streams it as response events.
async fn produce<S: Store, M: ChatModel>(
    app: std::sync::Arc<App<S, M>>,
    pending: Pending<M::Stream>,
    echo: Echo,
    events: Option<tokio::sync::mpsc::UnboundedSender<String>>,
) {
    let reply = pending.reply.clone();
    if let Some(events) = &events {
        for (_, e) in head_events(&reply, &echo) {
            let _ = events.send(e);
        }
    }
    let mut end = 0;
    // Thinking is not part of a response's output; it still moves positions
    // (and so sequence numbers) on, so that they match the reply's log.
    let generated = chat::generate(&app.store, &app.config, pending, |delta| match delta {
        Delta::Thinking(text) => end += text.len(),
        Delta::Content(text) => {
            end += text.len();
            if let Some(events) = &events {
                let _ = events.send(delta_event(&reply, text, end));
            }
        }
    })
    .await;
    if let Some(events) = &events {
        for (_, e) in tail_events(&generated.reply, &echo) {
            let _ = events.send(e);
        }
    }
}

/// `GET /v1/responses/{id}`, or its event stream from `starting_after` (`stream=true`).
pub async fn retrieve<S: Store + 'static, M: Send + Sync + 'static>(
    app: std::sync::Arc<App<S, M>>,
    owner: &OwnerId,
    id: &str,
    stream: bool,
    starting_after: Option<u64>,
) -> Result<Response<Body>, ApiError> {
    let reply = locate(&app.store, owner, id).await?;
    // The response before it is the reply before it in its conversation.
    let previous = match reply.seq.checked_sub(2) {
        Some(seq) if seq > 0 => app.store.get_message(reply.session_id, seq).await.ok().flatten(),
        _ => None,
    };
    let echo = Echo {
        previous_response_id: previous.filter(|m| m.role == Role::Assistant).map(|m| ResponseId::of(&m).to_string()),
        ..Echo::default()
    };
    if !stream {
        return json_response(StatusCode::OK, &object(&reply, &echo));
    }
    let after = starting_after.map_or(0, |n| n + 1);
    let (events, body) = sse::channel::<String>(app.config.sse_keepalive);
    tokio::spawn(async move {
        let send = |(seq, e): (u64, String)| seq < after || events.send(e).is_ok();
        if !head_events(&reply, &echo).into_iter().all(send) {
            return;
        }
        // Text from the byte the reader has, then the end as stored.
        let from = after.saturating_sub(HEAD_EVENTS) as usize;
        let ended = if !reply.is_live(Timestamp::now()) && from > reply.end_position() {
            Some(reply.clone())
        } else {
            let mut ended = None;
            let followed = chat::follow(&app.store, &reply, from, |seen| match seen {
                Followed::Delta { text, end } => events.send(delta_event(&reply, &text, end)).is_ok(),
                Followed::Thinking { .. } => true,
                Followed::Ended(m) => {
                    ended = Some(m);
                    true
                }
            })
            .await;
            if followed.is_err() { None } else { ended }
        };
        if let Some(ended) = ended {
            for e in tail_events(&ended, &echo) {
                if !send(e) {
                    return;
                }
            }
        }
    });
    sse::response(body)
}

/// `POST /v1/responses/{id}/cancel`: stops the reply wherever it is generated.
pub async fn cancel<S: Store, M>(app: &App<S, M>, owner: &OwnerId, id: &str) -> Result<Response<Body>, ApiError> {
    let rid = ResponseId::parse(id).ok_or(ApiError::NotFound("response"))?;
    let reply = match chat::cancel(&app.store, owner, rid.session_id, rid.reply_id).await.map_err(not_found_as_response)? {
        Cancelled::Ended(reply) | Cancelled::Stopping(reply) => reply,
    };
    json_response(StatusCode::OK, &object(&reply, &Echo::default()))
}

/// `DELETE /v1/responses/{id}`: the exchange (the input message and the
/// reply) leaves the conversation; a reply still being written is stopped first.
pub async fn delete<S: Store, M>(app: &App<S, M>, owner: &OwnerId, id: &str) -> Result<Response<Body>, ApiError> {
    let rid = ResponseId::parse(id).ok_or(ApiError::NotFound("response"))?;
    chat::delete_exchange(&app.store, owner, rid.session_id, rid.reply_id).await.map_err(not_found_as_response)?;
    json_response(StatusCode::OK, &json!({"id": id, "object": "response", "deleted": true}))
}

async fn locate<S: MessageRepository>(store: &S, owner: &OwnerId, id: &str) -> Result<Message, ApiError> {
    let rid = ResponseId::parse(id).ok_or(ApiError::NotFound("response"))?;
    chat::locate_reply(store, owner, rid.session_id, rid.reply_id).await.map_err(not_found_as_response)
}

/// Whatever is missing (the session, the reply), the client asked for a response.
fn not_found_as_response(e: chat::ChatError) -> ApiError {
    match e {
        chat::ChatError::NotFound(_) => ApiError::NotFound("response"),
        other => other.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_name_the_session_and_the_reply() {
        let id = ResponseId { session_id: Uuid::new_v4(), reply_id: Uuid::new_v4() };
        assert_eq!(ResponseId::parse(&id.to_string()), Some(id));
        assert_eq!(ResponseId::parse("resp_123"), None);
        assert_eq!(ResponseId::parse(&format!("msg_{}", &id.to_string()[5..])), None);
    }

    #[test]
    fn sequence_numbers_follow_byte_positions() {
        let now = Timestamp::now();
        let mut reply = Message::pending_reply(Uuid::new_v4(), 2, "m".into(), now, now.plus(std::time::Duration::from_secs(60)));
        let head: Vec<u64> = head_events(&reply, &Echo::default()).iter().map(|(s, _)| *s).collect();
        assert_eq!(head, [0, 1, 2, 3]);
        assert!(delta_event(&reply, "ab", 2).contains("\"sequence_number\":5"));
        reply.content = "abc".into();
        reply.status = MessageStatus::Complete;
        let tail = tail_events(&reply, &Echo::default());
        assert_eq!(tail.iter().map(|(s, _)| *s).collect::<Vec<_>>(), [7, 8, 9, 10]);
        assert!(tail[3].1.starts_with("event: response.completed\n"));
        assert_eq!(object(&reply, &Echo::default())["output"][0]["content"][0]["text"], "abc");
    }
}
