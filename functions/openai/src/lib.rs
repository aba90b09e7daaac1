//! The OpenAI-compatible API under `/v1`, so that OpenAI's SDKs work against
//! LlmChat with only `base_url` and `api_key` changed:
//! - `POST /v1/chat/completions` (stateless; streamed with `stream: true`);
//! - `GET /v1/models`, `GET /v1/models/{model}`;
//! - `POST /v1/responses`, `GET|DELETE /v1/responses/{id}`,
//!   `POST /v1/responses/{id}/cancel`: the Responses API over LlmChat's sessions.
//!
//! Same API keys, same limits; errors in OpenAI's shape. The wire formats live
//! in `llmchat::http::openai`; this crate routes.

use std::sync::Arc;

use lambda_http::http::{Method, StatusCode};
use lambda_http::{Request, Response};
use lambda_runtime::streaming::Body;
use llmchat::http::invocation::Generations;
use llmchat::http::openai::{self, chat, models, responses};
use llmchat::llm::ChatModel;
use llmchat::store::Store;
use llmchat::{ApiError, App, http as api};

/// Serves invocations until the runtime stops; each lasts until the replies it started are stored.
pub async fn run(app: Arc<App>) -> Result<(), lambda_http::Error> {
    llmchat::http::invocation::run_streaming(move |generations, req| handle(app.clone(), generations, req)).await
}

pub async fn handle<S: Store + 'static, M: ChatModel>(
    app: Arc<App<S, M>>,
    generations: Generations,
    req: Request,
) -> Result<Response<Body>, lambda_http::Error>
where
    M::Stream: 'static,
{
    let request_id = api::request_id(&req);
    let shared = app.clone();
    api::serve_as(&app.config, req, openai::error_response, |req| async move {
        let owner = api::auth::authenticate(shared.config.auth_mode, &shared.store, &req).await?;
        // `/v1/…`, also behind a stage prefix (`/prod/v1/…`, or a stage itself named `v1`).
        let mut segments = api::segments_after(&req, "v1").ok_or(ApiError::NotFound("route"))?;
        if segments.first() == Some(&"v1") {
            segments.remove(0);
        }
        let body: &[u8] = req.body().as_ref();
        let method = req.method().clone();
        match (segments.as_slice(), &method) {
            (["chat", "completions"], &Method::POST) => chat::create(shared.clone(), &owner, body, &request_id).await,
            (["models"], &Method::GET) => api::json(StatusCode::OK, &models::list(&shared.llm).await?),
            (["models", name], &Method::GET) => {
                let id = api::decode_segment(name).ok_or(ApiError::NotFound("model"))?;
                api::json(StatusCode::OK, &models::retrieve(&shared.llm, &shared.config, &id).await?)
            }
            // A model's id is `backend/model`: its `/` is a path separator here.
            (["models", backend, name], &Method::GET) => {
                let id = format!("{backend}/{name}");
                api::json(StatusCode::OK, &models::retrieve(&shared.llm, &shared.config, &id).await?)
            }
            (["responses"], &Method::POST) => responses::create(shared.clone(), &generations, &owner, body).await,
            (["responses", id], &Method::GET) => {
                let stream = api::query_param(&req, "stream").is_some_and(|v| v == "true");
                let starting_after = match api::query_param(&req, "starting_after") {
                    None => None,
                    Some(n) => Some(n.parse::<u64>().map_err(|_| openai::invalid("starting_after", "`starting_after` is a sequence number"))?),
                };
                responses::retrieve(shared.clone(), &owner, id, stream, starting_after).await
            }
            (["responses", id], &Method::DELETE) => responses::delete(&*shared, &owner, id).await,
            (["responses", id, "cancel"], &Method::POST) => responses::cancel(&*shared, &owner, id).await,
            (["chat", "completions"] | ["models"] | ["models", _] | ["models", _, _] | ["responses"] | ["responses", _] | ["responses", _, "cancel"], m) => {
                Err(api::method_not_allowed(m))
            }
            _ => Err(ApiError::NotFound("route")),
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use lambda_http::http::Method;
    use llmchat::http::invocation::Generations;
    use llmchat::testing::request;

    use super::handle;

    async fn body_of(r: lambda_http::Response<lambda_runtime::streaming::Body>) -> serde_json::Value {
        let bytes = r.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn errors_take_openai_shape() {
        let (app, key) = llmchat::testing::app_with_key("alice").await;
        let app = Arc::new(app);
        let r = handle(app.clone(), Generations::default(), request(Method::GET, "/v1/models", None, None)).await.unwrap();
        assert_eq!(r.status(), 401);
        assert_eq!(body_of(r).await["error"]["code"], "invalid_api_key");

        let body = r#"{"model": "m", "messages": [{"role": "user", "content": "hi"}], "logit_bias": {"1": 2}}"#;
        let r = handle(app.clone(), Generations::default(), request(Method::POST, "/v1/chat/completions", Some(&key), Some(body)))
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        let error = body_of(r).await;
        assert_eq!((error["error"]["param"].as_str(), error["error"]["type"].as_str()), (Some("logit_bias"), Some("invalid_request_error")));

        let r = handle(app, Generations::default(), request(Method::GET, "/v1/nothing", Some(&key), None)).await.unwrap();
        assert_eq!(r.status(), 404);
    }
}
