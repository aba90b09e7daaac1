//! The reply as Server-Sent Events:
//! - `POST /sessions/{id}/messages/stream`: store the message, then stream the
//!   reply while it is generated and stored;
//! - `GET /sessions/{id}/messages/{message_id}/stream`: rejoin a reply from a
//!   position (`Last-Event-ID` or `?after=`) and follow it live to its end.
//!
//! Problems found before a stream starts (bad input, unknown session, a reply
//! already in progress, an unknown position) are problem+json responses. Once
//! it has started, the outcome is its last event: `reply.completed`,
//! `reply.cancelled` or `error`. Generation runs in its own task, counted by
//! [`Generations`] so that the invocation lasts until the reply is stored:
//! a reader that goes away loses nothing.

use std::sync::Arc;

use lambda_http::http::header::HeaderValue;
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Request, Response};
use lambda_runtime::streaming::Body;
use llmchat::chat::{self, Begun, Delta, Followed, Pending, Position, SendReads};
use llmchat::domain::Timestamp;
use llmchat::http::invocation::Generations;
use llmchat::http::sse::{self, MessageCreated, ReplyDelta, StreamError, StreamEvent};
use llmchat::http::views::MessageView;
use llmchat::llm::ChatModel;
use llmchat::store::Store;
use llmchat::{ApiError, App, http as api};
use tokio::sync::mpsc::UnboundedSender;
use uuid::Uuid;

/// Serves invocations until the runtime stops; each lasts until the replies it started are stored.
pub async fn run(app: Arc<App>) -> Result<(), lambda_http::Error> {
    llmchat::http::invocation::run_streaming(move |generations, req| handle(app.clone(), generations, req)).await
}

pub async fn handle<S: Store + 'static, M: ChatModel>(
    app: Arc<App<S, M>>,
    generations: Generations,
    req: Request,
) -> Result<Response<Body>, lambda_http::Error> {
    let request_id = api::request_id(&req);
    let shared = app.clone();
    api::serve(&app.config, req, |req| async move {
        // A send's reads go on while the key is checked; `chat::begin` matches them with the caller.
        let sending = api::session_route(&req, &Method::POST, &["messages", "stream"]);
        let reads = sending.map(|id| chat::read_for_send(&shared.store, &shared.config, id));
        let (owner, reads) = api::auth::authenticate_during(shared.config.auth_mode, &shared.store, &req, reads).await?;
        let segments = api::segments_after(&req, "sessions").ok_or(ApiError::NotFound("route"))?;
        let (id, reply_id) = match segments.as_slice() {
            [id, "messages", "stream"] => (*id, None),
            [id, "messages", reply_id, "stream"] => (*id, Some(*reply_id)),
            _ => return Err(ApiError::NotFound("route")),
        };
        let session_id = api::session_id(id)?;
        api::record_session(&session_id);
        match (reply_id, req.method()) {
            (None, &Method::POST) => send(shared, generations, session_id, reads, &owner, &req, request_id).await,
            (Some(reply_id), &Method::GET) => {
                let reply_id = api::message_id(reply_id)?;
                resume(shared, session_id, reply_id, &owner, &req, request_id).await
            }
            (_, method) => Err(api::method_not_allowed(method)),
        }
    })
    .await
}

/// `POST …/messages/stream`: a new exchange, its reply streamed as it is generated.
#[allow(clippy::too_many_arguments)]
async fn send<S: Store + 'static, M: ChatModel>(
    app: Arc<App<S, M>>,
    generations: Generations,
    session_id: Uuid,
    reads: Option<SendReads>,
    owner: &llmchat::domain::OwnerId,
    req: &Request,
    request_id: String,
) -> Result<Response<Body>, ApiError> {
    let input = api::json_body(req)?;
    let reads = match reads {
        Some(reads) => reads,
        None => chat::read_for_send(&app.store, &app.config, session_id).await,
    };
    let begun = chat::begin(&app.store, &app.llm, &app.config, owner, reads, input).await?;
    let (events, body) = sse::channel(app.config.sse_keepalive);
    match begun {
        Begun::Replay { user, reply } => {
            // A retry: the same stream shape, from what is stored.
            let now = Timestamp::now();
            let _ = events.send(StreamEvent::MessageCreated(MessageCreated {
                reply_id: reply.id,
                user_message: MessageView::new(&user, now),
            }));
            let _ = events.send(StreamEvent::ended(MessageView::new(&reply, now)));
        }
        Begun::New(pending) => {
            let span = tracing::Span::current();
            generations.spawn(tracing::Instrument::instrument(produce(app, pending, events, request_id), span));
        }
    }
    sse::response(body)
}

/// Generates the reply, turning its progress into stream events.
async fn produce<S: Store, M: ChatModel>(
    app: Arc<App<S, M>>,
    pending: Pending<M::Stream>,
    events: UnboundedSender<StreamEvent>,
    request_id: String,
) {
    let now = Timestamp::now();
    let reply_id = pending.reply.id;
    let _ = events.send(StreamEvent::MessageCreated(MessageCreated {
        user_message: MessageView::new(&pending.user, now),
        reply_id,
    }));
    let deltas = events.clone();
    let mut end = 0;
    let generated = chat::generate(&app.store, &app.config, pending, move |delta| {
        // The reader may be gone; the reply is generated and stored all the same.
        let _ = deltas.send(match delta {
            Delta::Thinking(text) => {
                end += text.len();
                StreamEvent::Thinking(ReplyDelta { reply_id, delta: text.to_owned(), end })
            }
            Delta::Content(text) => {
                end += text.len();
                StreamEvent::Delta(ReplyDelta { reply_id, delta: text.to_owned(), end })
            }
        });
    })
    .await;
    let last = match generated.problem() {
        None => StreamEvent::ended(MessageView::new(&generated.reply, Timestamp::now())),
        Some(err) => error_event(err, &request_id, reply_id, generated.text_saved()),
    };
    let _ = events.send(last);
}

fn error_event(err: chat::ChatError, request_id: &str, reply_id: Uuid, partial_saved: bool) -> StreamEvent {
    let err = ApiError::from(err);
    StreamEvent::Error(StreamError {
        problem: err.to_problem(request_id),
        reply_id: Some(reply_id),
        partial_saved,
        retry_after: err.retry_after(),
    })
}

/// `GET …/messages/{message_id}/stream`: the reply after the reader's position, live to its end.
async fn resume<S: Store + 'static, M: ChatModel>(
    app: Arc<App<S, M>>,
    session_id: Uuid,
    reply_id: Uuid,
    owner: &llmchat::domain::OwnerId,
    req: &Request,
    request_id: String,
) -> Result<Response<Body>, ApiError> {
    let position = match req.headers().get("last-event-id").map(HeaderValue::to_str) {
        Some(Ok(id)) => Some(id.to_owned()),
        Some(Err(_)) => return Err(ApiError::BadRequest("Last-Event-ID is not a position".to_owned())),
        None => api::query_param(req, "after"),
    };
    let position = position.as_deref().map(Position::parse).transpose()?.unwrap_or(Position::Offset(0));
    let reply = chat::locate_reply(&app.store, owner, session_id, reply_id).await?;
    chat::check_position(&reply, position, Timestamp::now())?;
    let Position::Offset(after) = position else {
        // Past the end of a reply that has ended: nothing follows (and EventSource stops reconnecting).
        return Response::builder().status(StatusCode::NO_CONTENT).body(Body::default()).map_err(|e| ApiError::Internal(Box::new(e)));
    };
    let (events, body) = sse::channel(app.config.sse_keepalive);
    tokio::spawn(tracing::Instrument::instrument(
        async move {
            let followed = chat::follow(&app.store, &reply, after, |seen| {
                let event = match seen {
                    Followed::Thinking { text, end } => StreamEvent::Thinking(ReplyDelta { reply_id, delta: text, end }),
                    Followed::Delta { text, end } => StreamEvent::Delta(ReplyDelta { reply_id, delta: text, end }),
                    Followed::Ended(reply) => StreamEvent::ended(MessageView::new(&reply, Timestamp::now())),
                };
                events.send(event).is_ok()
            })
            .await;
            if let Err(err) = followed {
                let _ = events.send(error_event(err, &request_id, reply_id, true));
            }
        },
        tracing::Span::current(),
    ));
    sse::response(body)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use lambda_http::http::Method;
    use llmchat::http::invocation::Generations;
    use llmchat::testing::request;

    use super::handle;

    #[tokio::test]
    async fn problems_before_the_model_are_problem_json_and_llm_failures_end_the_stream() {
        let (mut app, key) = llmchat::testing::app_with_key("alice").await;
        app.llm = llmchat::testing::unreachable_llm();
        let session = llmchat::testing::new_session(&app, "alice").await;
        let app = Arc::new(app);
        let path = format!("/sessions/{}/messages/stream", session.id);
        let generations = Generations::default();

        let r = handle(app.clone(), generations.clone(), request(Method::POST, &path, Some(&key), Some(r#"{"content": ""}"#)))
            .await
            .unwrap();
        assert_eq!(r.status(), 422);
        assert_eq!(r.headers()["content-type"], "application/problem+json");

        let r = handle(app.clone(), generations.clone(), request(Method::POST, &path, Some(&key), Some(r#"{"content": "hi"}"#)))
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "text/event-stream");
        let text = String::from_utf8(r.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
        let events: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("event: ")).collect();
        assert_eq!(events, ["message.created", "error"]);
        assert!(text.contains(r#""code":"llm_unavailable""#));
        assert!(text.contains("id: end\n"), "the last event's id is past the end");
        generations.idle().await;
    }

    #[tokio::test]
    async fn resume_positions_are_checked_before_the_stream_starts() {
        let (app, key) = llmchat::testing::app_with_key("alice").await;
        let session = llmchat::testing::new_session(&app, "alice").await;
        let app = Arc::new(app);
        let unknown = format!("/sessions/{}/messages/{}/stream", session.id, uuid::Uuid::new_v4());
        let r = handle(app.clone(), Generations::default(), request(Method::GET, &unknown, Some(&key), None)).await.unwrap();
        assert_eq!(r.status(), 404);
        let garbage = format!("{unknown}?after=12abc");
        let r = handle(app.clone(), Generations::default(), request(Method::GET, &garbage, Some(&key), None)).await.unwrap();
        assert_eq!(r.status(), 400);
        let r = handle(app, Generations::default(), request(Method::PUT, &unknown, Some(&key), None)).await.unwrap();
        assert_eq!(r.status(), 405);
    }
}
