//! The session resource: `GET /sessions`; `GET`, `PATCH`, `DELETE` on
//! `/sessions/{id}`; the history, `GET /sessions/{id}/messages`; and the
//! caller's usage and quotas, `GET /usage`. A DELETE answers once the session
//! is gone for every reader; its items are purged after the answer, in the same
//! invocation (see [`sessions::purge`]).

use std::sync::Arc;

use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use llmchat::domain::{Page, Timestamp};
use llmchat::http::invocation::Generations;
use llmchat::http::views::{MessageView, SessionView};
use llmchat::store::Store;
use llmchat::{ApiError, App, http as api, sessions, usage};

pub async fn handle<S: Store + 'static, M: Send + Sync + 'static>(
    app: Arc<App<S, M>>,
    generations: Generations,
    req: Request,
) -> Result<Response<Body>, lambda_http::Error> {
    let app = &app;
    api::serve(&app.config, req, |req| async move {
        let owner = api::auth::authenticate(app.config.auth_mode, &app.store, &req).await?;
        // `/usage` (behind any stage prefix), not a path that merely contains the word.
        if api::segments_after(&req, "sessions").is_none() && api::segments_after(&req, "usage").is_some_and(|rest| rest.is_empty()) {
            if req.method() != Method::GET {
                return Err(api::method_not_allowed(req.method()));
            }
            let now = Timestamp::now();
            let (from, to, group_by) = (api::query_param(&req, "from"), api::query_param(&req, "to"), api::query_param(&req, "group_by"));
            let period = usage::period(from.as_deref(), to.as_deref(), group_by.as_deref(), now)?;
            return api::json(StatusCode::OK, &usage::report(&app.store, &app.config, &owner, period, now).await?);
        }
        let segments = api::segments_after(&req, "sessions").ok_or(ApiError::NotFound("route"))?;
        match segments.as_slice() {
            [] => match *req.method() {
                Method::GET => {
                    let limit = api::page_limit(&req)?;
                    let cursor = api::query_param(&req, "cursor");
                    let page = sessions::list(&app.store, &owner, limit, cursor.as_deref()).await?;
                    let items = page.items.iter().map(SessionView::from).collect();
                    api::json(StatusCode::OK, &Page { items, next_cursor: page.next_cursor })
                }
                _ => Err(api::method_not_allowed(req.method())),
            },
            [id] => {
                let id = api::session_id(id)?;
                api::record_session(&id);
                match *req.method() {
                    Method::GET => {
                        let session = sessions::get(&app.store, &owner, id).await?;
                        api::json(StatusCode::OK, &SessionView::from(&session))
                    }
                    Method::PATCH => {
                        let patch = api::json_body(&req)?;
                        let session = sessions::update(&app.store, &app.config, &owner, id, patch).await?;
                        api::json(StatusCode::OK, &SessionView::from(&session))
                    }
                    Method::DELETE => {
                        sessions::delete(&app.store, &owner, id).await?;
                        let purging = Arc::clone(app);
                        generations.spawn(async move { sessions::purge(&purging.store, id).await });
                        api::no_content()
                    }
                    _ => Err(api::method_not_allowed(req.method())),
                }
            }
            [id, "messages"] => {
                let id = api::session_id(id)?;
                api::record_session(&id);
                if req.method() != Method::GET {
                    return Err(api::method_not_allowed(req.method()));
                }
                let order = api::order(&req)?;
                let limit = api::page_limit(&req)?;
                let cursor = api::query_param(&req, "cursor");
                let page = sessions::history(&app.store, &owner, id, order, limit, cursor.as_deref()).await?;
                let now = Timestamp::now();
                let items = page.items.iter().map(|m| MessageView::new(m, now)).collect();
                api::json(StatusCode::OK, &Page { items, next_cursor: page.next_cursor })
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
    use llmchat::App;
    use llmchat::http::invocation::Generations;
    use llmchat::domain::{CreateSession, OwnerId};
    use llmchat::testing::{json_body, request};

    use super::handle;

    fn serve(app: &Arc<App>, req: lambda_http::Request) -> impl Future<Output = Result<lambda_http::Response<lambda_http::Body>, lambda_http::Error>> {
        handle(app.clone(), Generations::default(), req)
    }

    /// A session of "alice", the owner `app_with_key` issued the key for.
    async fn create(app: &App, _key: &str, title: &str) -> String {
        let input = CreateSession { title: Some(title.to_owned()), ..Default::default() };
        let owner = OwnerId::parse("alice").unwrap();
        llmchat::sessions::create(&app.store, &app.config, owner, input).await.unwrap().id.to_string()
    }

    #[tokio::test]
    async fn routes_by_method_and_path() {
        let (app, key) = llmchat::testing::app_with_key("alice").await;
        let app = Arc::new(app);
        let id = create(&app, &key, "first").await;
        let path = format!("/sessions/{id}");

        let r = serve(&app, request(Method::GET, "/sessions", Some(&key), None)).await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(json_body(&r)["items"][0]["id"], id.as_str());

        let r = serve(&app, request(Method::PATCH, &path, Some(&key), Some(r#"{"title": "second"}"#))).await.unwrap();
        assert_eq!((r.status().as_u16(), json_body(&r)["title"].as_str()), (200, Some("second")));

        let r = serve(&app, request(Method::GET, &path, Some(&key), None)).await.unwrap();
        assert_eq!(json_body(&r)["title"], "second");

        let r = serve(&app, request(Method::DELETE, &path, Some(&key), None)).await.unwrap();
        assert_eq!(r.status(), 204);
        let r = serve(&app, request(Method::GET, &path, Some(&key), None)).await.unwrap();
        assert_eq!(r.status(), 404);
    }

    #[tokio::test]
    async fn a_stage_prefix_in_the_path_is_ignored() {
        let (app, key) = llmchat::testing::app_with_key("alice").await;
        let app = Arc::new(app);
        let id = create(&app, &key, "staged").await;
        let r = serve(&app, request(Method::GET, &format!("/v1/sessions/{id}"), Some(&key), None)).await.unwrap();
        assert_eq!(r.status(), 200);
    }

    #[tokio::test]
    async fn bad_ids_limits_and_methods_are_4xx() {
        let (app, key) = llmchat::testing::app_with_key("alice").await;
        let app = Arc::new(app);
        for (method, path, status) in [
            (Method::GET, "/sessions/xyz", 400),
            (Method::GET, "/sessions?limit=0", 400),
            (Method::GET, "/sessions?cursor=%%%", 400),
            (Method::POST, "/sessions/00000000-0000-0000-0000-000000000000", 405),
            (Method::PUT, "/sessions", 405),
            (Method::GET, "/sessions/00000000-0000-0000-0000-000000000000/x/y", 404),
        ] {
            let r = serve(&app, request(method.clone(), path, Some(&key), None)).await.unwrap();
            assert_eq!(r.status().as_u16(), status, "{method} {path}: {}", json_body(&r));
        }
    }
}
