//! Service-level routes: `GET /health` (a summary without a key, the checks
//! with one; both from the instance's cached probe) and `GET /models`.

use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use llmchat::domain::Page;
use llmchat::llm::ChatModel;
use llmchat::store::Store;
use llmchat::{ApiError, App, http as api};

pub async fn handle<S: Store, M: ChatModel>(app: &App<S, M>, req: Request) -> Result<Response<Body>, lambda_http::Error> {
    api::serve(&app.config, req, |req| async move {
        let path = req.uri().path();
        if path.ends_with("/health") {
            if req.method() != Method::GET {
                return Err(api::method_not_allowed(req.method()));
            }
            // Credentials ask for the checks, and must then be good ones.
            let detailed = req.headers().contains_key(lambda_http::http::header::AUTHORIZATION);
            if detailed {
                api::auth::authenticate(app.config.auth_mode, &app.store, &req).await?;
            }
            let report = app.health.report(&app.store, &app.llm).await;
            let answer = if detailed { (*report).clone() } else { report.summary() };
            return api::json(answer.status_code(), &answer);
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
    async fn health_needs_no_key_for_the_summary_and_a_key_for_the_checks() {
        let (mut app, key) = llmchat::testing::app_with_key("ops").await;
        app.llm = llmchat::testing::unreachable_llm();
        let r = handle(&app, request(Method::GET, "/health", None, None)).await.unwrap();
        assert_eq!(r.status(), 503);
        assert_eq!(json_body(&r), serde_json::json!({"status": "degraded"}));
        let r = handle(&app, request(Method::GET, "/health", Some(&key), None)).await.unwrap();
        assert_eq!(r.status(), 503);
        let body = json_body(&r);
        assert_eq!(body["checks"]["dynamodb"]["status"], "ok");
        assert_eq!(body["checks"]["llm"]["status"], "unavailable");
        let r = handle(&app, request(Method::GET, "/health", Some("lck_nope_nope"), None)).await.unwrap();
        assert_eq!(r.status(), 401);
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
