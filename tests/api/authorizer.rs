//! `LLMCHAT_AUTH_MODE=authorizer`: behind an API Gateway authorizer, the owner
//! is the subject the authorizer vouched for, read from the request context
//! of the real Lambda event shapes (REST API v1 with Cognito claims or a
//! Lambda authorizer's principal; HTTP API v2 with JWT claims).

use lambda_http::Request;
use lambda_http::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app_with};

/// A REST API (v1) proxy event for `method path`, with `authorizer` in its request context.
fn rest_event(method: &str, path: &str, body: Option<&str>, authorizer: Value) -> Request {
    let event = json!({
        "resource": path, "path": path, "httpMethod": method,
        "headers": {"content-type": "application/json"},
        "multiValueHeaders": {"content-type": ["application/json"]},
        "queryStringParameters": null, "multiValueQueryStringParameters": null,
        "pathParameters": null, "stageVariables": null,
        "requestContext": {
            "accountId": "123456789012", "resourceId": "abc", "stage": "v1", "requestId": "rest-request",
            "identity": {"sourceIp": "203.0.113.1"}, "resourcePath": path, "httpMethod": method,
            "apiId": "api", "path": format!("/v1{path}"), "authorizer": authorizer
        },
        "body": body, "isBase64Encoded": false
    });
    lambda_http::request::from_str(&event.to_string()).expect("a REST API event")
}

/// An HTTP API (v2) event for `method path` with JWT `claims`.
fn http_api_event(method: &str, path: &str, claims: Value) -> Request {
    let event = json!({
        "version": "2.0", "routeKey": format!("{method} {path}"), "rawPath": path, "rawQueryString": "",
        "headers": {"content-type": "application/json"},
        "requestContext": {
            "accountId": "123456789012", "apiId": "api", "domainName": "api.example.com", "domainPrefix": "api",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.1", "userAgent": "test"},
            "requestId": "http-request", "routeKey": format!("{method} {path}"), "stage": "$default",
            "time": "24/Nov/2026:05:00:00 +0000", "timeEpoch": 1795000000000u64,
            "authorizer": {"jwt": {"claims": claims, "scopes": null}}
        },
        "isBase64Encoded": false
    });
    lambda_http::request::from_str(&event.to_string()).expect("an HTTP API event")
}

async fn authorizer_app() -> TestApp {
    spawn_app_with(&[("LLMCHAT_AUTH_MODE", "authorizer")]).await
}

#[tokio::test]
async fn cognito_claims_name_the_owner() {
    let t = authorizer_app().await;
    let alice = json!({"claims": {"sub": "alice-sub", "email": "alice@example.com"}});
    let r = t.dispatch(Method::POST, rest_event("POST", "/sessions", Some(r#"{"title": "mine"}"#), alice.clone())).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let id = r.body["id"].as_str().unwrap().to_owned();

    let r = t.dispatch(Method::GET, rest_event("GET", &format!("/sessions/{id}"), None, alice)).await;
    assert_eq!(r.status, StatusCode::OK);

    let bob = json!({"claims": {"sub": "bob-sub"}});
    let r = t.dispatch(Method::GET, rest_event("GET", &format!("/sessions/{id}"), None, bob)).await;
    r.assert_problem(404, "not_found");
}

#[tokio::test]
async fn a_lambda_authorizers_principal_names_the_owner() {
    let t = authorizer_app().await;
    let principal = json!({"principalId": "tenant-7"});
    let r = t.dispatch(Method::POST, rest_event("POST", "/sessions", Some("{}"), principal.clone())).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let r = t.dispatch(Method::GET, rest_event("GET", "/sessions", None, principal)).await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn http_api_jwt_claims_name_the_owner() {
    let t = authorizer_app().await;
    let r = t.dispatch(Method::POST, http_api_event("POST", "/sessions", json!({"sub": "jwt-user"}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let r = t.dispatch(Method::GET, http_api_event("GET", "/sessions", json!({"sub": "jwt-user"}))).await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1);
    let r = t.dispatch(Method::GET, http_api_event("GET", "/sessions", json!({"sub": "someone-else"}))).await;
    assert!(r.body["items"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn without_claims_or_with_an_api_key_only_it_is_401() {
    let t = authorizer_app().await;
    t.dispatch(Method::GET, rest_event("GET", "/sessions", None, json!({}))).await.assert_problem(401, "unauthorized");
    t.dispatch(Method::GET, rest_event("GET", "/sessions", None, json!({"claims": {"sub": "bad#sub"}})))
        .await
        .assert_problem(401, "unauthorized");
    // An API key means nothing in this mode: the authorizer is the only source of identity.
    t.send(Method::GET, "/sessions", None).await.assert_problem(401, "unauthorized");
}
