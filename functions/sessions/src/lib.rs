//! The session resource: `GET /sessions`, and `GET`, `PATCH`, `DELETE`
//! on `/sessions/{id}`.

use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use llmchat::domain::{SessionView, parse_session_id};
use llmchat::store::Store;
use llmchat::{ApiError, App, auth, http as api, sessions};

pub async fn handle<S: Store>(app: &App<S>, req: Request) -> Result<Response<Body>, lambda_http::Error> {
    api::serve(app, req, |req| async move {
        let owner = auth::authenticate(app.config.auth_mode, &app.store, &req).await?;
        let segments = api::segments_after(&req, "sessions").ok_or(ApiError::NotFound("route"))?;
        match segments.as_slice() {
            [] => match *req.method() {
                Method::GET => {
                    let limit = api::page_limit(&req)?;
                    let cursor = api::query_param(&req, "cursor");
                    let page = sessions::list(&app.store, &owner, limit, cursor.as_deref()).await?;
                    api::json(StatusCode::OK, &page)
                }
                _ => Err(api::method_not_allowed(req.method())),
            },
            [id] => {
                let id = parse_session_id(id).map_err(|e| ApiError::BadRequest(e.0))?;
                api::record_session(&id);
                match *req.method() {
                    Method::GET => {
                        let session = sessions::get(&app.store, &owner, id).await?;
                        api::json(StatusCode::OK, &SessionView::from(&session))
                    }
                    Method::PATCH => {
                        let patch = api::json_body(&req)?;
                        let session = sessions::update(&app.store, &owner, id, patch).await?;
                        api::json(StatusCode::OK, &SessionView::from(&session))
                    }
                    Method::DELETE => {
                        sessions::delete(&app.store, &owner, id).await?;
                        api::no_content()
                    }
                    _ => Err(api::method_not_allowed(req.method())),
                }
            }
            _ => Err(ApiError::NotFound("route")),
        }
    })
    .await
}
