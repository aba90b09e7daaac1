//! `POST /sessions`: create a chat session for the caller.

use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use llmchat::domain::SessionView;
use llmchat::store::Store;
use llmchat::{App, auth, http as api, sessions};

pub async fn handle<S: Store>(app: &App<S>, req: Request) -> Result<Response<Body>, lambda_http::Error> {
    api::serve(app, req, |req| async move {
        if req.method() != Method::POST {
            return Err(api::method_not_allowed(req.method()));
        }
        let owner = auth::authenticate(app.config.auth_mode, &app.store, &req).await?;
        let input = api::json_body(&req)?;
        let session = sessions::create(&app.store, &app.config, owner, input).await?;
        api::record_session(&session.id);
        api::json(StatusCode::CREATED, &SessionView::from(&session))
    })
    .await
}

