//! Service-level routes: `GET /health` (no key needed) and `GET /models`.

use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use llmchat::domain::Page;
use llmchat::llm::ChatModel;
use llmchat::store::Store;
use llmchat::{ApiError, App, health, http as api};

pub async fn handle<S: Store, M: ChatModel>(app: &App<S, M>, req: Request) -> Result<Response<Body>, lambda_http::Error> {
    api::serve(&app.config, req, |req| async move {
        let path = req.uri().path();
        if path.ends_with("/health") {
            if req.method() != Method::GET {
                return Err(api::method_not_allowed(req.method()));
            }
            let (status, report) = health::check(&app.store, &app.llm).await;
            return api::json(status, &report);
        }
        if path.ends_with("/models") {
            api::auth::authenticate(app.config.auth_mode, &app.store, &req).await?;
            if req.method() != Method::GET {
                return Err(api::method_not_allowed(req.method()));
            }
            let models = app.llm.models().await.map_err(ApiError::Llm)?;
            return api::json(StatusCode::OK, &Page { items: models, next_cursor: None });
        }
        Err(ApiError::NotFound("route"))
    })
    .await
}

#[cfg(test)]
mod tests {
    use lambda_http::http::Method;
    use llmchat::testing::{json_body, request};

    use super::handle;

    #[tokio::test]
    async fn health_needs_no_key_and_reports_the_llm_down() {
        let (mut app, _) = llmchat::testing::app_with_key("ops").await;
        app.llm = llmchat::testing::unreachable_llm();
        let r = handle(&app, request(Method::GET, "/health", None, None)).await.unwrap();
        assert_eq!(r.status(), 503);
        let body = json_body(&r);
        assert_eq!(body["checks"]["dynamodb"]["status"], "ok");
        assert_eq!(body["checks"]["llm"]["status"], "unavailable");
    }

    #[tokio::test]
    async fn models_need_a_key() {
        let (app, _) = llmchat::testing::app_with_key("ops").await;
        let r = handle(&app, request(Method::GET, "/models", None, None)).await.unwrap();
        assert_eq!(r.status(), 401);
    }

    #[tokio::test]
    async fn unknown_paths_and_methods_are_problems() {
        let (app, _) = llmchat::testing::app_with_key("ops").await;
        let r = handle(&app, request(Method::DELETE, "/health", None, None)).await.unwrap();
        assert_eq!(r.status(), 405);
        let r = handle(&app, request(Method::GET, "/nothing", None, None)).await.unwrap();
        assert_eq!(r.status(), 404);
    }
}
