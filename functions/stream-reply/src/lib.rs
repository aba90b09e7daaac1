//! `POST /sessions/{id}/messages/stream`: store the message, then stream the
//! reply as Server-Sent Events while it is generated and stored.
//!
//! Problems found before the model is called (bad input, unknown session, a
//! reply already in progress) are ordinary problem+json responses. Once the
//! stream has started, the outcome is its last event: `reply.completed` or
//! `error`. Generation runs in its own task and does not depend on the
//! reader: a client that goes away loses nothing.

use std::sync::Arc;

use lambda_http::http::{Method, StatusCode};
use lambda_http::{Request, Response};
use lambda_runtime::streaming::Body;
use llmchat::chat::{self, Begun, Pending};
use llmchat::domain::Timestamp;
use llmchat::http::sse::{self, MessageCreated, ReplyCompleted, ReplyDelta, STREAM_HEADERS, StreamError, StreamEvent};
use llmchat::http::views::MessageView;
use llmchat::llm::ChatModel;
use llmchat::store::Store;
use llmchat::{ApiError, App, http as api};
use tokio::sync::mpsc::{self, UnboundedSender};

pub async fn handle<S: Store + 'static, M: ChatModel>(app: Arc<App<S, M>>, req: Request) -> Result<Response<Body>, lambda_http::Error> {
    let request_id = api::request_id(&req);
    let shared = app.clone();
    api::serve(&app.config, req, |req| async move {
        let owner = api::auth::authenticate(shared.config.auth_mode, &shared.store, &req).await?;
        let segments = api::segments_after(&req, "sessions").ok_or(ApiError::NotFound("route"))?;
        let [id, "messages", "stream"] = segments.as_slice() else { return Err(ApiError::NotFound("route")) };
        if req.method() != Method::POST {
            return Err(api::method_not_allowed(req.method()));
        }
        let session_id = api::session_id(id)?;
        api::record_session(&session_id);
        let input = api::json_body(&req)?;
        let begun = chat::begin(&shared.store, &shared.config, &owner, session_id, input).await?;

        let (events, receiver) = mpsc::unbounded_channel();
        let (sender, body) = lambda_runtime::streaming::channel();
        let keepalive = shared.config.sse_keepalive;
        let writer = tokio::spawn(sse::write_events(sender, receiver, keepalive));
        match begun {
            Begun::Replay { user, reply } => {
                // A retry: the same stream shape, from what is stored.
                let now = Timestamp::now();
                let _ = events.send(StreamEvent::MessageCreated(MessageCreated {
                    reply_id: reply.id,
                    user_message: MessageView::new(&user, now),
                }));
                let _ = events.send(StreamEvent::Completed(ReplyCompleted { reply: MessageView::new(&reply, now) }));
            }
            Begun::New(pending) => {
                let span = tracing::Span::current();
                tokio::spawn(tracing::Instrument::instrument(
                    produce(shared, pending, events, request_id, writer),
                    span,
                ));
            }
        }
        let mut response = Response::builder().status(StatusCode::OK);
        for (name, value) in STREAM_HEADERS {
            response = response.header(name, value);
        }
        response.body(body).map_err(|e| ApiError::Internal(Box::new(e)))
    })
    .await
}

/// Generates the reply, turning its progress into stream events.
async fn produce<S: Store, M: ChatModel>(
    app: Arc<App<S, M>>,
    pending: Pending,
    events: UnboundedSender<StreamEvent>,
    request_id: String,
    writer: tokio::task::JoinHandle<()>,
) {
    let now = Timestamp::now();
    let reply_id = pending.reply.id;
    let _ = events.send(StreamEvent::MessageCreated(MessageCreated {
        user_message: MessageView::new(&pending.user, now),
        reply_id,
    }));
    let deltas = events.clone();
    let generated = chat::generate(&app.store, &app.llm, &app.config, pending, move |delta| {
        let _ = deltas.send(StreamEvent::Delta(ReplyDelta { reply_id, delta: delta.to_owned() }));
    })
    .await;
    let last = match generated.problem() {
        None => StreamEvent::Completed(ReplyCompleted { reply: MessageView::new(&generated.reply, Timestamp::now()) }),
        Some(err) => StreamEvent::Error(StreamError {
            problem: ApiError::from(err).to_problem(&request_id),
            reply_id: Some(reply_id),
            partial_saved: generated.text_saved(),
        }),
    };
    let _ = events.send(last);
    drop(events);
    let _ = writer.await;
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use lambda_http::http::Method;
    use llmchat::testing::request;

    use super::handle;

    #[tokio::test]
    async fn problems_before_the_model_are_problem_json_and_llm_failures_end_the_stream() {
        let (mut app, key) = llmchat::testing::app_with_key("alice").await;
        app.llm = llmchat::testing::unreachable_llm();
        let session = llmchat::testing::new_session(&app, "alice").await;
        let app = Arc::new(app);
        let path = format!("/sessions/{}/messages/stream", session.id);

        let r = handle(app.clone(), request(Method::POST, &path, Some(&key), Some(r#"{"content": ""}"#))).await.unwrap();
        assert_eq!(r.status(), 422);
        assert_eq!(r.headers()["content-type"], "application/problem+json");

        let r = handle(app.clone(), request(Method::POST, &path, Some(&key), Some(r#"{"content": "hi"}"#))).await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "text/event-stream");
        let text = String::from_utf8(r.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
        let events: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("event: ")).collect();
        assert_eq!(events, ["message.created", "error"]);
        assert!(text.contains(r#""code":"llm_unavailable""#));
    }
}
