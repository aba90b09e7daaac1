//! Service-level routes: `GET /health`.

use lambda_http::http::Method;
use lambda_http::{Body, Request, Response};
use llmchat::store::Store;
use llmchat::{ApiError, App, health, http as api};

pub async fn handle<S: Store>(app: &App<S>, req: Request) -> Result<Response<Body>, lambda_http::Error> {
    api::serve(app, req, |req| async move {
        match (req.method(), api::segments_after(&req, "health")) {
            (&Method::GET, Some(rest)) if rest.is_empty() => {
                let (status, report) = health::check(&app.store).await;
                api::json(status, &report)
            }
            (_, Some(rest)) if rest.is_empty() => Err(api::method_not_allowed(req.method())),
            _ => Err(ApiError::NotFound("route")),
        }
    })
    .await
}
