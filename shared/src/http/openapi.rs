//! The OpenAPI document, generated from the types and the route descriptions
//! below. `openapi.yaml` at the repository root is its committed copy
//! (`make openapi` writes it; a test fails when it drifts).
//!
//! The route functions here only carry documentation: the handlers live in
//! `functions/*`, and every route listed here is served by one of them.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::openapi::{ContentBuilder, OpenApiVersion, Ref, RefOr};
use utoipa::{Modify, OpenApi};

use super::error::Problem;
use super::sse::{self, MessageCreated, ReplyCancelled, ReplyCompleted, ReplyDelta, StreamError};
use super::views::{Exchange, MessageView, SessionView};
use crate::domain::{
    CreateSession, ErrorCode, MessageStatus, ModelOptions, Order, Quota, Role, SendMessage, Spend, UpdateSession, Usage,
};
use super::openai::{OpenAiError, OpenAiErrorDetail};
use crate::health::Health;
use crate::usage::{Cost, Group, GroupBy, QuotaStanding, QuotaStandings, Totals, UsageReport};
use crate::llm::ModelInfo;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "LlmChat API",
        version = "1.0.0",
        description = "Chat sessions with replies from an LLM served by Ollama, as one JSON document or streamed \
as Server-Sent Events. Every error is `application/problem+json`. Authorize with an API key from \
`make api-key OWNER=<name>`."
    ),
    paths(
        create_session, list_sessions, get_session, update_session, delete_session,
        send_message, stream_reply, resume_reply, cancel_reply, list_messages, list_models, usage, health, openapi_json, openapi_3_2_json, docs,
        v1_chat_completions, v1_models, v1_model, v1_backend_model, v1_create_response, v1_get_response, v1_delete_response, v1_cancel_response
    ),
    components(schemas(
        SessionView, CreateSession, UpdateSession, ModelOptions, SessionPage, MessagePage, ModelPage,
        MessageView, SendMessage, Exchange, MessageStatus, Role, Usage, Order, ModelInfo,
        MessageCreated, ReplyDelta, ReplyCompleted, ReplyCancelled, StreamError,
        Problem, ErrorCode, Health, OpenAiError, OpenAiErrorDetail, JsonObject,
        UsageReport, Totals, Cost, Group, GroupBy, QuotaStanding, QuotaStandings, Quota, Spend
    )),
    modifiers(&BearerKey, &StreamEvents),
    security(("api_key" = [])),
    tags(
        (name = "sessions", description = "Chat sessions"),
        (name = "messages", description = "Sending messages and reading history"),
        (name = "meta", description = "Models, health and this documentation"),
        (name = "openai", description = "The OpenAI-compatible API: point an OpenAI SDK's `base_url` at `…/v1` and use an LlmChat key. \
Bodies and answers follow OpenAI's API reference; parameters LlmChat does not support are a 400 naming them. Errors are `{\"error\": {message, type, param, code}}`.")
    )
)]
struct ApiDoc;

/// The document in OpenAPI 3.1: what `openapi.yaml` holds and `/openapi.json`
/// serves, because mainstream client generators read 3.1 and not yet 3.2. A
/// stream's events are named in its description and their payloads are
/// components; [`document_3_2`] also gives each stream its `itemSchema`.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = document_3_2();
    doc.openapi = OpenApiVersion::Version31;
    for content in event_streams(&mut doc) {
        content.item_schema = None;
    }
    doc
}

/// Every `text/event-stream` response content of the document.
fn event_streams(doc: &mut utoipa::openapi::OpenApi) -> Vec<&mut utoipa::openapi::Content> {
    let mut found = Vec::new();
    for item in doc.paths.paths.values_mut() {
        for op in [&mut item.get, &mut item.post].into_iter().flatten() {
            for response in op.responses.responses.values_mut() {
                let RefOr::T(response) = response else { continue };
                if let Some(RefOr::T(content)) = response.content.get_mut(sse::EVENT_STREAM) {
                    found.push(content);
                }
            }
        }
    }
    found
}

/// The document in OpenAPI 3.2 (`openapi-3.2.yaml`, `/openapi-3.2.json`), with
/// each event stream's events as `itemSchema`.
pub fn document_3_2() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.openapi = OpenApiVersion::Version32;
    // A stream is described by its events (`itemSchema`), or in prose: never
    // as one string, which validators would hold each event to.
    for content in event_streams(&mut doc) {
        content.schema = None;
    }
    doc
}

/// A document as YAML, as committed in `openapi.yaml` and `openapi-3.2.yaml`.
pub fn yaml(doc: &utoipa::openapi::OpenApi) -> String {
    doc.to_yaml().expect("the OpenAPI document serializes")
}

/// Any JSON object: a body that follows OpenAI's API reference, or a whole
/// document. Open (`additionalProperties: true`), so generated clients can
/// build one.
struct JsonObject;

impl utoipa::PartialSchema for JsonObject {
    fn schema() -> RefOr<Schema> {
        use utoipa::openapi::schema::AdditionalProperties;
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some("A JSON object"))
            .additional_properties(Some(AdditionalProperties::FreeForm(true)))
            .into()
    }
}

impl utoipa::ToSchema for JsonObject {}

// The lists' pages as documented: `Page` of each item type, spelled out so
// that each page refers to its item's own schema (a generic `Page<T>`
// inlines it, and generated clients then get a second type for a session).

/// A page of the caller's sessions: pass `next_cursor` back as `cursor` for the next one.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct SessionPage {
    items: Vec<SessionView>,
    /// Opaque; `null` on the last page.
    next_cursor: Option<String>,
}

/// A page of a session's messages: pass `next_cursor` back as `cursor` for the next one.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct MessagePage {
    items: Vec<MessageView>,
    /// Opaque; `null` on the last page.
    next_cursor: Option<String>,
}

/// The models the backend offers (one page: `next_cursor` is always `null`).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct ModelPage {
    items: Vec<ModelInfo>,
    next_cursor: Option<String>,
}

struct BearerKey;

impl Modify for BearerKey {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("lck_<key id>_<secret>")
                    .description(Some("An API key from `make api-key OWNER=<name>`"))
                    .build(),
            ),
        );
    }
}

/// The stream route's events: each item of `text/event-stream` is one event
/// whose `data` is JSON of the schema its `event` name says.
struct StreamEvents;

impl Modify for StreamEvents {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let event = |name: &str, schema: &str, what: &str| {
            ObjectBuilder::new()
                .schema_type(Type::Object)
                .description(Some(what))
                .property("event", ObjectBuilder::new().schema_type(Type::String).enum_values(Some([name])))
                .property(
                    "id",
                    ObjectBuilder::new().schema_type(Type::String).description(Some("A position in the reply to resume from: `0`, the byte offset where this event's text ends, or `end`")),
                )
                .property(
                    "data",
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .content_media_type("application/json")
                        .content_schema(Some(Ref::from_schema_name(schema))),
                )
                .required("event")
                .required("id")
                .required("data")
        };
        let item = || {
            OneOfBuilder::new()
                .description(Some(
                    "One Server-Sent Event. A send's stream is `message.created`, then `reply.thinking.delta` events \
(when the model thinks), then `reply.delta` events, then exactly one `reply.completed`, `reply.cancelled` or `error`; a \
resumed stream is the same from its position on. Each event's `id` is a position to resume from: `0`, a byte offset \
into the reply (its thinking, then its text), or `end`. A comment line `: keep-alive` arrives after any 10 s without \
an event.",
                ))
                .item(event(sse::MESSAGE_CREATED, "MessageCreated", "The user message is stored; the reply will have `reply_id`."))
                .item(event(sse::REPLY_THINKING_DELTA, "ReplyDelta", "The next piece of the model's thinking; `id` is the position where it ends."))
                .item(event(sse::REPLY_DELTA, "ReplyDelta", "The next piece of the reply's text; `id` is the position where it ends."))
                .item(event(sse::REPLY_COMPLETED, "ReplyCompleted", "The reply, as stored. Last event."))
                .item(event(sse::REPLY_CANCELLED, "ReplyCancelled", "A cancel stopped the reply; the text so far is stored. Last event."))
                .item(event(sse::ERROR, "StreamError", "The reply failed; `partial_saved` says whether text was stored. Last event."))
                .build()
        };
        let operations = [
            ("/sessions/{id}/messages/stream", http::Method::POST),
            ("/sessions/{id}/messages/{message_id}/stream", http::Method::GET),
        ];
        for (path, method) in operations {
            let Some(item_path) = openapi.paths.paths.get_mut(path) else { continue };
            let op = if method == http::Method::POST { item_path.post.as_mut() } else { item_path.get.as_mut() };
            let Some(op) = op else { continue };
            if let Some(RefOr::T(ok)) = op.responses.responses.get_mut("200") {
                let content = ContentBuilder::new().item_schema(Some(Schema::OneOf(item()))).build();
                ok.content.insert(sse::EVENT_STREAM.to_owned(), RefOr::T(content));
            }
        }
    }
}

#[utoipa::path(
    post, path = "/sessions", tag = "sessions",
    request_body(content = CreateSession, description = "Every field is optional; an empty body is `{}`."),
    responses(
        (status = 201, description = "Created", body = SessionView),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or bad API key", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A value breaks a rule or limit", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Storage unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
#[allow(dead_code)]
fn create_session() {}

#[utoipa::path(
    get, path = "/sessions", tag = "sessions",
    params(
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Page size, default 20"),
        ("cursor" = Option<String>, Query, max_length = 512, description = "`next_cursor` of the previous page"),
    ),
    responses(
        (status = 200, description = "The caller's sessions, most recent activity first", body = SessionPage),
        (status = 400, description = "Bad limit or cursor", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or bad API key", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Storage unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
#[allow(dead_code)]
fn list_sessions() {}

#[utoipa::path(
    get, path = "/sessions/{id}", tag = "sessions",
    params(("id" = uuid::Uuid, Path, description = "Session id")),
    responses(
        (status = 200, description = "The session", body = SessionView),
        (status = 400, description = "The id is not a UUID", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or bad API key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such session for this caller", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Storage unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
#[allow(dead_code)]
fn get_session() {}

#[utoipa::path(
    patch, path = "/sessions/{id}", tag = "sessions",
    params(("id" = uuid::Uuid, Path, description = "Session id")),
    request_body = UpdateSession,
    responses(
        (status = 200, description = "The changed session", body = SessionView),
        (status = 400, description = "Malformed JSON or id", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or bad API key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such session for this caller", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The session kept changing while being updated, or a send's write on it was in flight through every retry (`session_busy`); try again", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A value breaks a rule or limit", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Storage unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
#[allow(dead_code)]
fn update_session() {}

#[utoipa::path(
    delete, path = "/sessions/{id}", tag = "sessions",
    params(("id" = uuid::Uuid, Path, description = "Session id")),
    responses(
        (status = 204, description = "The session is gone for every request that follows (reads, lists, sends: 404); its messages are removed right after this answer"),
        (status = 400, description = "The id is not a UUID", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or bad API key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such session for this caller (or it is already deleted)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A send's write on the session was in flight through every retry (`session_busy`); try again", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Storage unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
#[allow(dead_code)]
fn delete_session() {}

#[utoipa::path(
    get, path = "/health", tag = "meta", security((), ("api_key" = [])),
    description = "Whether DynamoDB and every LLM backend answer. Without an API key: `status` alone; with one, \
also `checks` (each dependency, its latency, and each backend by name). Either is this instance's last probe, \
at most 5 seconds old: asking often never probes more often.",
    responses(
        (status = 200, description = "Every dependency answers", body = Health),
        (status = 401, description = "An API key was given and is not valid (no key at all gets the summary)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "A dependency does not answer", body = Health),
    )
)]
#[allow(dead_code)]
fn health() {}

#[utoipa::path(
    post, path = "/sessions/{id}/messages", tag = "messages",
    params(("id" = uuid::Uuid, Path, description = "Session id")),
    request_body = SendMessage,
    responses(
        (status = 201, description = "The stored user message and the complete reply", body = Exchange),
        (status = 200, description = "A retry of an earlier `client_message_id`: the original exchange", body = Exchange),
        (status = 400, description = "Malformed JSON or id", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or bad API key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such session for this caller", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A reply is being generated in this session (`reply_in_progress`)", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "One of the caller's quotas is used up (`quota_exceeded`, naming it); `Retry-After` says when to try again; nothing was stored", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid message, `idempotency_key_reused`, `context_overflow`, `model_not_found`, or beyond this deployment's allow-list and limits (`not_allowed`, naming the limit)", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "The model failed mid-reply (`llm_error`); the text so far is stored", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Ollama unreachable (`llm_unavailable`) or busy (`llm_busy`, with `Retry-After`): the message is stored; or storage unavailable", body = Problem, content_type = "application/problem+json"),
        (status = 504, description = "The model took too long (`llm_timeout`); the text so far is stored", body = Problem, content_type = "application/problem+json"),
    )
)]
#[allow(dead_code)]
fn send_message() {}

#[utoipa::path(
    post, path = "/sessions/{id}/messages/stream", tag = "messages",
    params(("id" = uuid::Uuid, Path, description = "Session id")),
    request_body = SendMessage,
    responses(
        (status = 200, description = "The reply as Server-Sent Events. Failures after the stream started are its last event, `error`."),
        (status = 400, description = "Malformed JSON or id", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or bad API key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such session for this caller", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A reply is being generated in this session (`reply_in_progress`)", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "One of the caller's quotas is used up (`quota_exceeded`, naming it); `Retry-After` says when to try again; nothing was stored", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid message, `idempotency_key_reused`, `context_overflow`, or beyond this deployment's allow-list and limits (`not_allowed`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Storage unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
#[allow(dead_code)]
fn stream_reply() {}

#[utoipa::path(
    get, path = "/sessions/{id}/messages/{message_id}/stream", tag = "messages",
    params(
        ("id" = uuid::Uuid, Path, description = "Session id"),
        ("message_id" = uuid::Uuid, Path, description = "The reply's id (`reply_id` of `message.created`)"),
        ("after" = Option<String>, Query, max_length = 16, description = "Resume after this position (an event's `id`); the `Last-Event-ID` header wins. Without either, from the start."),
        ("Last-Event-ID" = Option<String>, Header, max_length = 16, description = "The last event's `id`, as EventSource sends it on reconnecting"),
    ),
    responses(
        (status = 200, description = "The reply from the position on as Server-Sent Events, following it live until its last event"),
        (status = 204, description = "The position is `end` of a reply that has ended: nothing follows"),
        (status = 400, description = "Bad id, or a position that is not in the reply", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or bad API key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such session or reply for this caller", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Storage unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
#[allow(dead_code)]
fn resume_reply() {}

#[utoipa::path(
    post, path = "/sessions/{id}/messages/{message_id}/cancel", tag = "messages",
    params(
        ("id" = uuid::Uuid, Path, description = "Session id"),
        ("message_id" = uuid::Uuid, Path, description = "The reply's id"),
    ),
    responses(
        (status = 200, description = "The reply has ended: stopped by this cancel (`cancelled`, with its text so far), or earlier, as it was", body = MessageView),
        (status = 202, description = "The stop is asked for and its generator has not stored it yet: the reply as it stands", body = MessageView),
        (status = 400, description = "An id is not a UUID", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or bad API key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such session or reply for this caller", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Storage unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
#[allow(dead_code)]
fn cancel_reply() {}

#[utoipa::path(
    get, path = "/sessions/{id}/messages", tag = "messages",
    params(
        ("id" = uuid::Uuid, Path, description = "Session id"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Page size, default 20"),
        ("cursor" = Option<String>, Query, max_length = 512, description = "`next_cursor` of the previous page (same order)"),
        ("order" = Option<Order>, Query, description = "`asc` (oldest first, default) or `desc`"),
    ),
    responses(
        (status = 200, description = "A page of the session's messages", body = MessagePage),
        (status = 400, description = "Bad id, limit, order or cursor", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or bad API key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such session for this caller", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Storage unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
#[allow(dead_code)]
fn list_messages() {}

#[utoipa::path(
    get, path = "/models", tag = "meta",
    responses(
        (status = 200, description = "Models the LLM backend offers (cached for a few seconds); `next_cursor` is always null", body = ModelPage),
        (status = 401, description = "Missing or bad API key", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "The LLM backend answered badly", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The LLM backend is unreachable", body = Problem, content_type = "application/problem+json"),
        (status = 504, description = "The LLM backend took too long", body = Problem, content_type = "application/problem+json"),
    )
)]
#[allow(dead_code)]
fn list_models() {}

#[utoipa::path(
    get, path = "/usage", tag = "meta",
    params(
        ("from" = Option<String>, Query, format = Date, description = "First day (UTC), `YYYY-MM-DD`; default: the first of this month"),
        ("to" = Option<String>, Query, format = Date, description = "Last day (UTC, inclusive); default: today. At most 366 days from `from`"),
        ("group_by" = Option<GroupBy>, Query, description = "How rows add up: `day` (default), `model` or `session`"),
    ),
    responses(
        (status = 200, description = "The caller's tokens, generation time and DynamoDB units from the usage ledger, an estimated cost \
from the deployment's prices, and where the caller stands against its quotas", body = UsageReport),
        (status = 400, description = "A bad `from`, `to` or `group_by`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or bad API key", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Storage unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
#[allow(dead_code)]
fn usage() {}

#[utoipa::path(
    get, path = "/openapi.json", tag = "meta", security(()),
    responses((status = 200, description = "This document", content_type = "application/json", body = JsonObject))
)]
#[allow(dead_code)]
fn openapi_json() {}

#[utoipa::path(
    get, path = "/openapi-3.2.json", tag = "meta", security(()),
    responses((status = 200, description = "This document in OpenAPI 3.2, each event stream's events as `itemSchema`", content_type = "application/json", body = JsonObject))
)]
#[allow(dead_code)]
fn openapi_3_2_json() {}

#[utoipa::path(
    get, path = "/docs", tag = "meta", security(()),
    responses((status = 200, description = "Swagger UI for this document", content_type = "text/html", body = String))
)]
#[allow(dead_code)]
fn docs() {}

#[utoipa::path(
    post, path = "/v1/chat/completions", tag = "openai",
    request_body(content = JsonObject, description = "OpenAI's chat completion request: `model`, `messages`, `temperature`, `top_p`, `max_tokens`, `max_completion_tokens`, `stop`, `seed`, `response_format`, `stream`, `stream_options`, `n` (1)."),
    responses(
        (status = 200, description = "A `chat.completion` object, or with `stream: true` a `text/event-stream` of `chat.completion.chunk` objects ending with `data: [DONE]`. Nothing is stored.",
            content((JsonObject = "application/json"), (String = "text/event-stream"))),
        (status = 400, description = "A parameter LlmChat does not support, or a bad value (`param` names it), or beyond the deployment's allow-list (`not_allowed`)", body = OpenAiError),
        (status = 401, description = "Missing or bad API key", body = OpenAiError),
        (status = 404, description = "The model is not on the backend (`model_not_found`)", body = OpenAiError),
        (status = 429, description = "One of the caller's quotas is used up (`quota_exceeded`); `Retry-After` says when to try again", body = OpenAiError),
        (status = 503, description = "The model backend is unavailable", body = OpenAiError),
    )
)]
#[allow(dead_code)]
fn v1_chat_completions() {}

#[utoipa::path(
    get, path = "/v1/models", tag = "openai",
    responses(
        (status = 200, description = "`{object: \"list\", data: [{id, object: \"model\", created, owned_by}]}`", body = JsonObject),
        (status = 401, description = "Missing or bad API key", body = OpenAiError),
    )
)]
#[allow(dead_code)]
fn v1_models() {}

#[utoipa::path(
    get, path = "/v1/models/{model}", tag = "openai",
    params(("model" = String, Path, max_length = 128, description = "A model of the default backend, e.g. `smollm2:135m`")),
    responses(
        (status = 200, description = "`{id, object: \"model\", created, owned_by}`", body = JsonObject),
        (status = 401, description = "Missing or bad API key", body = OpenAiError),
        (status = 404, description = "No such model (`model_not_found`)", body = OpenAiError),
    )
)]
#[allow(dead_code)]
fn v1_model() {}

#[utoipa::path(
    get, path = "/v1/models/{backend}/{model}", tag = "openai",
    params(
        ("backend" = String, Path, max_length = 32, description = "A backend's name, e.g. `ollama`"),
        ("model" = String, Path, max_length = 128, description = "The backend's model, e.g. `smollm2:135m`"),
    ),
    responses(
        (status = 200, description = "`{id, object: \"model\", created, owned_by}`; `id` is `backend/model`", body = JsonObject),
        (status = 401, description = "Missing or bad API key", body = OpenAiError),
        (status = 404, description = "No such model (`model_not_found`)", body = OpenAiError),
    )
)]
#[allow(dead_code)]
fn v1_backend_model() {}

#[utoipa::path(
    post, path = "/v1/responses", tag = "openai",
    request_body(content = JsonObject, description = "OpenAI's response request: `model`, `input` (a string, or messages ending with the user's), `instructions`, `previous_response_id` or `conversation` (an LlmChat session id), `store` (true), `stream`, `background`, `temperature`, `top_p`, `max_output_tokens`, `text.format`."),
    responses(
        (status = 200, description = "A `response` object (with `background: true` at once, `in_progress`), or with `stream: true` a `text/event-stream` of response events, each with a `sequence_number`. The response is a reply stored in an LlmChat session.",
            content((JsonObject = "application/json"), (String = "text/event-stream"))),
        (status = 400, description = "A parameter LlmChat does not support, or a bad value (`param` names it)", body = OpenAiError),
        (status = 401, description = "Missing or bad API key", body = OpenAiError),
        (status = 404, description = "No such conversation or previous response for this caller, or model", body = OpenAiError),
        (status = 409, description = "A reply is being generated in this conversation", body = OpenAiError),
        (status = 429, description = "One of the caller's quotas is used up (`quota_exceeded`); `Retry-After` says when to try again", body = OpenAiError),
    )
)]
#[allow(dead_code)]
fn v1_create_response() {}

#[utoipa::path(
    get, path = "/v1/responses/{id}", tag = "openai",
    params(
        ("id" = String, Path, max_length = 69, description = "A response id (`resp_…`)"),
        ("stream" = Option<bool>, Query, description = "`true`: the response's events as a `text/event-stream`, followed live until it ends"),
        ("starting_after" = Option<u64>, Query, description = "With `stream=true`: only the events after this `sequence_number`"),
    ),
    responses(
        (status = 200, description = "The `response` object as it stands, or its events",
            content((JsonObject = "application/json"), (String = "text/event-stream"))),
        (status = 400, description = "A bad `starting_after`", body = OpenAiError),
        (status = 401, description = "Missing or bad API key", body = OpenAiError),
        (status = 404, description = "No such response for this caller", body = OpenAiError),
    )
)]
#[allow(dead_code)]
fn v1_get_response() {}

#[utoipa::path(
    delete, path = "/v1/responses/{id}", tag = "openai",
    params(("id" = String, Path, max_length = 69, description = "A response id (`resp_…`)")),
    responses(
        (status = 200, description = "`{id, object: \"response\", deleted: true}`: the exchange left its conversation (stopped first if still being written)", body = JsonObject),
        (status = 401, description = "Missing or bad API key", body = OpenAiError),
        (status = 404, description = "No such response for this caller", body = OpenAiError),
        (status = 409, description = "The response is still stopping; try again", body = OpenAiError),
    )
)]
#[allow(dead_code)]
fn v1_delete_response() {}

#[utoipa::path(
    post, path = "/v1/responses/{id}/cancel", tag = "openai",
    params(("id" = String, Path, max_length = 69, description = "A response id (`resp_…`)")),
    responses(
        (status = 200, description = "The `response` object: `cancelled` with its text so far, or as it ended", body = JsonObject),
        (status = 401, description = "Missing or bad API key", body = OpenAiError),
        (status = 404, description = "No such response for this caller", body = OpenAiError),
    )
)]
#[allow(dead_code)]
fn v1_cancel_response() {}

#[cfg(test)]
mod tests {
    #[test]
    fn the_stream_route_describes_each_event() {
        let doc = serde_json::to_value(super::document_3_2()).unwrap();
        for (path, method) in [("/sessions/{id}/messages/stream", "post"), ("/sessions/{id}/messages/{message_id}/stream", "get")] {
            let ok = &doc["paths"][path][method]["responses"]["200"];
            let events = ok["content"]["text/event-stream"]["itemSchema"]["oneOf"].as_array().expect("itemSchema.oneOf");
            let names: Vec<&str> = events.iter().map(|e| e["properties"]["event"]["enum"][0].as_str().unwrap()).collect();
            assert_eq!(
                names,
                ["message.created", "reply.thinking.delta", "reply.delta", "reply.completed", "reply.cancelled", "error"],
                "{path}"
            );
            for e in events {
                let target = e["properties"]["data"]["contentSchema"]["$ref"].as_str().unwrap();
                let name = target.rsplit('/').next().unwrap();
                assert!(doc["components"]["schemas"][name].is_object(), "{name} is a component");
            }
        }
        assert_eq!(doc["openapi"], "3.2.0");
    }

    /// The bounds the spec states are the constants the code enforces.
    #[test]
    fn the_spec_states_every_limit() {
        use crate::domain::limits::*;
        let doc = serde_json::to_value(super::document()).unwrap();
        let schemas = &doc["components"]["schemas"];
        let prop = |schema: &str, field: &str, key: &str| -> u64 {
            let p = &schemas[schema]["properties"][field];
            p[key]
                .as_u64()
                .or_else(|| p["oneOf"].as_array().and_then(|v| v.iter().find_map(|s| s[key].as_u64())))
                .unwrap_or_else(|| panic!("{schema}.{field} has no {key}: {p}"))
        };
        for schema in ["CreateSession", "UpdateSession", "Session"] {
            assert_eq!(prop(schema, "title", "maxLength"), MAX_TITLE_CHARS as u64, "{schema}");
            assert_eq!(prop(schema, "system_prompt", "maxLength"), MAX_SYSTEM_PROMPT_CHARS as u64, "{schema}");
            assert_eq!(prop(schema, "metadata", "maxProperties"), MAX_METADATA_ENTRIES as u64, "{schema}");
        }
        for schema in ["CreateSession", "UpdateSession"] {
            assert_eq!(prop(schema, "model", "maxLength"), MAX_MODEL_NAME_CHARS as u64, "{schema}");
        }
        assert_eq!(prop("SendMessage", "content", "maxLength"), MAX_MESSAGE_CHARS as u64);
        assert_eq!(prop("SendMessage", "client_message_id", "maxLength"), MAX_CLIENT_MESSAGE_ID_CHARS as u64);
        assert_eq!(prop("ModelOptions", "stop", "maxItems"), MAX_STOP_SEQUENCES as u64);
        for path in ["/sessions", "/sessions/{id}/messages"] {
            let params = doc["paths"][path]["get"]["parameters"].as_array().unwrap();
            let param = |name: &str| params.iter().find(|p| p["name"] == name).unwrap()["schema"].clone();
            assert_eq!(param("limit")["maximum"].as_u64(), Some(u64::from(MAX_PAGE_SIZE)), "{path}");
            assert_eq!(param("limit")["minimum"].as_u64(), Some(1), "{path}");
            assert_eq!(param("cursor")["maxLength"].as_u64(), Some(MAX_CURSOR_CHARS as u64), "{path}");
        }
    }

    /// `openapi.yaml` is what the code generates: run `make openapi` after changing the API.
    #[test]
    fn committed_openapi_yaml_matches_the_code() {
        for (file, doc) in [("openapi.yaml", super::document()), ("openapi-3.2.yaml", super::document_3_2())] {
            let path = format!("{}/../{file}", env!("CARGO_MANIFEST_DIR"));
            let committed = std::fs::read_to_string(path).unwrap_or_default();
            assert!(committed == super::yaml(&doc), "{file} is out of date: run `make openapi` and commit it");
        }
    }

    #[test]
    fn the_main_document_is_3_1_without_3_2_keywords() {
        let doc = serde_json::to_value(super::document()).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        assert!(!doc.to_string().contains("\"itemSchema\":"), "no 3.2 keyword");
        let stream = &doc["paths"]["/sessions/{id}/messages/stream"]["post"]["responses"]["200"]["content"]["text/event-stream"];
        assert!(stream.is_object() && stream.get("schema").is_none(), "a stream is described in prose: {stream}");
    }

    #[test]
    fn health_states_how_old_its_answer_may_be() {
        let doc = serde_json::to_value(super::document()).unwrap();
        let description = doc["paths"]["/health"]["get"]["description"].as_str().unwrap();
        let ttl = crate::health::HEALTH_CACHE_TTL.as_secs();
        assert!(description.contains(&format!("at most {ttl} seconds old")), "{description}");
    }
}
