//! `POST /sessions`: create a chat session for the caller.

use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use llmchat::http::views::SessionView;
use llmchat::store::Store;
use llmchat::{App, http as api, sessions};

pub async fn handle<S: Store, M>(app: &App<S, M>, req: Request) -> Result<Response<Body>, lambda_http::Error> {
    api::serve(&app.config, req, |req| async move {
        if req.method() != Method::POST {
            return Err(api::method_not_allowed(req.method()));
        }
        let owner = api::auth::authenticate(app.config.auth_mode, &app.store, &req).await?;
        let input = api::json_body(&req)?;
        let session = sessions::create(&app.store, &app.config, owner, input).await?;
        api::record_session(&session.id);
        api::json(StatusCode::CREATED, &SessionView::from(&session))
    })
    .await
}


#[cfg(test)]
mod tests {
    use lambda_http::http::Method;
    use llmchat::testing::{content_type, json_body, request};

    use super::handle;

    #[tokio::test]
    async fn creates_a_session_with_defaults() {
        let (app, key) = llmchat::testing::app_with_key("alice").await;
        let r = handle(&app, request(Method::POST, "/sessions", Some(&key), Some(r#"{"title": "Hi"}"#))).await.unwrap();
        assert_eq!(r.status(), 201);
        let body = json_body(&r);
        assert_eq!(body["title"], "Hi");
        assert_eq!(body["model"], app.config.default_model.as_str());
    }

    #[tokio::test]
    async fn an_empty_body_is_an_empty_object() {
        let (app, key) = llmchat::testing::app_with_key("alice").await;
        let r = handle(&app, request(Method::POST, "/sessions", Some(&key), None)).await.unwrap();
        assert_eq!(r.status(), 201);
        assert_eq!(json_body(&r)["title"], "New chat");
    }

    #[tokio::test]
    async fn no_key_is_401_problem() {
        let (app, _) = llmchat::testing::app_with_key("alice").await;
        let r = handle(&app, request(Method::POST, "/sessions", None, Some("{}"))).await.unwrap();
        assert_eq!(r.status(), 401);
        assert_eq!(content_type(&r), "application/problem+json");
        assert_eq!(json_body(&r)["code"], "unauthorized");
    }

    #[tokio::test]
    async fn other_methods_are_405() {
        let (app, key) = llmchat::testing::app_with_key("alice").await;
        let r = handle(&app, request(Method::PUT, "/sessions", Some(&key), Some("{}"))).await.unwrap();
        assert_eq!(r.status(), 405);
    }
}
