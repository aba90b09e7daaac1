//! `POST /sessions/{id}/messages`: store the message, get the whole reply,
//! answer `201 {user_message, reply}`.
//! `POST /sessions/{id}/messages/{message_id}/cancel`: stop a reply, wherever
//! its generator runs; `200` with the ended reply (`202` while it stops).

use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use llmchat::chat::{self, Begun, Cancelled};
use llmchat::domain::Timestamp;
use llmchat::http::views::{Exchange, MessageView};
use llmchat::llm::ChatModel;
use llmchat::store::Store;
use llmchat::{ApiError, App, http as api};

pub async fn handle<S: Store, M: ChatModel>(app: &App<S, M>, req: Request) -> Result<Response<Body>, lambda_http::Error> {
    api::serve(&app.config, req, |req| async move {
        // A send's reads go on while the key is checked; `chat::begin` matches them with the caller.
        let sending = api::session_route(&req, &Method::POST, &["messages"]);
        let reads = sending.map(|id| chat::read_for_send(&app.store, &app.config, id));
        let (owner, reads) = api::auth::authenticate_during(app.config.auth_mode, &app.store, &req, reads).await?;
        let segments = api::segments_after(&req, "sessions").ok_or(ApiError::NotFound("route"))?;
        let (id, cancel) = match segments.as_slice() {
            [id, "messages"] => (*id, None),
            [id, "messages", reply_id, "cancel"] => (*id, Some(*reply_id)),
            _ => return Err(ApiError::NotFound("route")),
        };
        if req.method() != Method::POST {
            return Err(api::method_not_allowed(req.method()));
        }
        let session_id = api::session_id(id)?;
        api::record_session(&session_id);
        if let Some(reply_id) = cancel {
            let reply_id = api::message_id(reply_id)?;
            let (status, reply) = match chat::cancel(&app.store, &owner, session_id, reply_id).await? {
                Cancelled::Ended(reply) => (StatusCode::OK, reply),
                Cancelled::Stopping(reply) => (StatusCode::ACCEPTED, reply),
            };
            return api::json(status, &MessageView::new(&reply, Timestamp::now()));
        }
        let input = api::json_body(&req)?;
        let reads = match reads {
            Some(reads) => reads,
            None => chat::read_for_send(&app.store, &app.config, session_id).await,
        };
        match chat::begin(&app.store, &app.llm, &app.config, &owner, reads, input).await? {
            Begun::Replay { user, reply } => api::json(StatusCode::OK, &Exchange::new(&user, &reply, Timestamp::now())),
            Begun::New(pending) => {
                let user = pending.user.clone();
                let generated = chat::generate(&app.store, &app.config, pending, |_| {}).await;
                if let Some(problem) = generated.problem() {
                    return Err(problem.into());
                }
                api::json(StatusCode::CREATED, &Exchange::new(&user, &generated.reply, Timestamp::now()))
            }
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use lambda_http::http::Method;
    use llmchat::store::MessageRepository;
    use llmchat::testing::{json_body, request};

    use super::handle;

    #[tokio::test]
    async fn bad_input_is_rejected_before_anything_is_stored() {
        let (app, key) = llmchat::testing::app_with_key("alice").await;
        let session = llmchat::testing::new_session(&app, "alice").await;
        let path = format!("/sessions/{}/messages", session.id);
        for (body, status) in [(r#"{"content": ""}"#, 422), (r#"{"text": "hi"}"#, 422), ("{", 400)] {
            let r = handle(&app, request(Method::POST, &path, Some(&key), Some(body))).await.unwrap();
            assert_eq!(r.status().as_u16(), status, "{body}: {}", json_body(&r));
        }
        let r = handle(&app, request(Method::GET, &path, Some(&key), None)).await.unwrap();
        assert_eq!(r.status(), 405);
        let state = app.store.load_for_send(session.id, 10).await.unwrap();
        assert!(state.recent.is_empty());
    }

    #[tokio::test]
    async fn llm_down_is_a_503_problem_and_the_message_is_kept() {
        let (mut app, key) = llmchat::testing::app_with_key("alice").await;
        app.llm = llmchat::testing::unreachable_llm();
        let session = llmchat::testing::new_session(&app, "alice").await;
        let path = format!("/sessions/{}/messages", session.id);
        let r = handle(&app, request(Method::POST, &path, Some(&key), Some(r#"{"content": "hello"}"#))).await.unwrap();
        assert_eq!(r.status(), 503);
        assert_eq!(json_body(&r)["code"], "llm_unavailable");
        let state = app.store.load_for_send(session.id, 10).await.unwrap();
        assert_eq!(state.recent.len(), 2);
        assert_eq!(state.recent[1].content, "hello");
        assert_eq!(state.recent[0].status, llmchat::domain::MessageStatus::Failed);
    }
}
