//! Browsers on other origins: real preflights (`OPTIONS` with `Origin` and
//! `Access-Control-Request-*`) to every route of the router, answered by the
//! function the router sends them to, and the CORS headers of actual
//! responses, streamed ones included.

use lambda_http::http::header::HeaderValue;
use lambda_http::http::{Method, StatusCode};
use llmchat::http::cors::REQUEST_ID_HEADER;
use llmchat::testing;
use llmchat_tests::routes::router;

use crate::helpers::{TestApp, TestResponse, id, spawn_app, spawn_app_with};

const APP_ORIGIN: &str = "https://chat.example";

fn header<'a>(r: &'a TestResponse, name: &str) -> &'a str {
    r.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
}

/// Sends a browser's preflight for `method path` from `origin`.
async fn preflight(t: &TestApp, origin: &str, method: &str, path: &str) -> TestResponse {
    let mut req = testing::request(Method::OPTIONS, path, None, None);
    let headers = req.headers_mut();
    headers.insert("origin", HeaderValue::from_str(origin).unwrap());
    headers.insert("access-control-request-method", HeaderValue::from_str(method).unwrap());
    headers.insert("access-control-request-headers", HeaderValue::from_static("authorization,content-type,last-event-id"));
    t.dispatch(Method::OPTIONS, req).await
}

/// Sends `method path` with this app's key from `origin`.
async fn from_origin(t: &TestApp, origin: &str, method: Method, path: &str, body: Option<&str>) -> TestResponse {
    let mut req = testing::request(method.clone(), path, Some(&t.key), body);
    req.headers_mut().insert("origin", HeaderValue::from_str(origin).unwrap());
    t.dispatch(method, req).await
}

#[tokio::test]
async fn every_route_answers_a_preflight_from_an_allowed_origin() {
    let t = spawn_app_with(&[("LLMCHAT_CORS_ORIGINS", "https://other.example, https://chat.example")]).await;
    let some_id = uuid::Uuid::new_v4().to_string();
    for route in router() {
        let path = route.path.split('/').map(|s| if s.starts_with('{') { some_id.as_str() } else { s }).collect::<Vec<_>>().join("/");
        let method = route.method.clone().filter(|m| m != "OPTIONS").unwrap_or_else(|| "GET".into());
        let r = preflight(&t, APP_ORIGIN, &method, &path).await;
        let what = format!("OPTIONS {path} (for {method})");
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{what}: {}", r.text);
        assert_eq!(header(&r, "access-control-allow-origin"), APP_ORIGIN, "{what}");
        assert!(header(&r, "access-control-allow-methods").contains(&method), "{what}");
        let allowed = header(&r, "access-control-allow-headers");
        for name in ["authorization", "content-type", "last-event-id"] {
            assert!(allowed.split(", ").any(|h| h == name), "{what}: {name} in {allowed}");
        }
        assert_eq!(header(&r, "access-control-max-age"), "7200", "{what}");
        assert_eq!(header(&r, "vary"), "origin", "{what}");
    }
}

#[tokio::test]
async fn other_origins_and_the_default_settings_get_no_cors_headers() {
    let listed = spawn_app_with(&[("LLMCHAT_CORS_ORIGINS", APP_ORIGIN)]).await;
    let r = preflight(&listed, "https://evil.example", "POST", "/sessions").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(r.headers.keys().all(|k| !k.as_str().starts_with("access-control-")), "{:?}", r.headers);
    let r = from_origin(&listed, "https://evil.example", Method::GET, "/sessions", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.headers.get("access-control-allow-origin").is_none());

    // Deployed with no CorsOrigins: no origin at all.
    let closed = spawn_app().await;
    let r = preflight(&closed, APP_ORIGIN, "POST", "/sessions").await;
    assert!(r.headers.get("access-control-allow-origin").is_none(), "{:?}", r.headers);
}

#[tokio::test]
async fn responses_let_an_allowed_origin_read_them_and_their_request_id() {
    let t = spawn_app_with(&[("LLMCHAT_CORS_ORIGINS", "*")]).await;
    let r = from_origin(&t, APP_ORIGIN, Method::POST, "/sessions", Some("{}")).await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(header(&r, "access-control-allow-origin"), "*");
    let exposed = header(&r, "access-control-expose-headers");
    assert!(exposed.contains("retry-after") && exposed.contains(REQUEST_ID_HEADER), "{exposed}");
    let session = id(&r.body);

    // A problem's request id is the header's.
    let r = from_origin(&t, APP_ORIGIN, Method::GET, &format!("/sessions/{}", uuid::Uuid::new_v4()), None).await;
    r.assert_problem(404, "not_found");
    assert_eq!(header(&r, REQUEST_ID_HEADER), r.body["request_id"].as_str().unwrap());

    // A stream too (its problem here: no model answers, but the headers are the point).
    let r = from_origin(&t, APP_ORIGIN, Method::GET, &format!("/sessions/{session}/messages/{}/stream", uuid::Uuid::new_v4()), None).await;
    assert_eq!(header(&r, "access-control-allow-origin"), "*", "{}", r.text);
    assert!(!header(&r, REQUEST_ID_HEADER).is_empty());
}
