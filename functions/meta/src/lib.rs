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

#[cfg(test)]
mod tests {
    use lambda_http::http::Method;
    use llmchat::App;
    use llmchat::testing::{json_body, request};

    use super::handle;

    #[tokio::test]
    async fn health_needs_no_key() {
        let (app, _) = App::in_memory("ops").await;
        let r = handle(&app, request(Method::GET, "/health", None, None)).await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(json_body(&r)["checks"]["dynamodb"]["status"], "ok");
    }

    #[tokio::test]
    async fn unknown_paths_and_methods_are_problems() {
        let (app, _) = App::in_memory("ops").await;
        let r = handle(&app, request(Method::DELETE, "/health", None, None)).await.unwrap();
        assert_eq!(r.status(), 405);
        let r = handle(&app, request(Method::GET, "/nothing", None, None)).await.unwrap();
        assert_eq!(r.status(), 404);
    }
}
