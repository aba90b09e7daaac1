//! The API's own documentation: `GET /openapi.json` (the OpenAPI 3.1 document
//! that `openapi.yaml` holds), `GET /openapi-3.2.json` (the same in 3.2, as
//! `openapi-3.2.yaml`, with each event stream's `itemSchema`) and `GET /docs` (Swagger UI, its assets compiled into
//! the binary; nothing is fetched from another host); and the chat page for
//! end users, `GET /chat` (see [`chat_page`]).

pub mod chat_page;

use std::io::Read;
use std::sync::Arc;

use lambda_http::http::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION};
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use llmchat::http::openapi;
use llmchat::{ApiError, App, http as api};
use utoipa_swagger_ui::Config;

pub async fn handle<S, M>(app: &App<S, M>, req: Request) -> Result<Response<Body>, lambda_http::Error> {
    api::serve(&app.config, req, |req| async move {
        if req.method() != Method::GET {
            return Err(api::method_not_allowed(req.method()));
        }
        let path = req.uri().path();
        if let Some(prefix) = path.strip_suffix("/openapi.json") {
            return openapi_json(openapi::document(), prefix);
        }
        if let Some(prefix) = path.strip_suffix("/openapi-3.2.json") {
            return openapi_json(openapi::document_3_2(), prefix);
        }
        if let Some(rest) = api::segments_after(&req, "chat") {
            return chat_file(&rest);
        }
        let Some(rest) = api::segments_after(&req, "docs") else { return Err(ApiError::NotFound("route")) };
        if !path.ends_with('/') && rest.is_empty() {
            // Swagger UI loads its assets relative to the page, so the page lives
            // under `docs/`; a relative redirect keeps any stage prefix.
            return response(StatusCode::FOUND, "text/plain", Body::Empty, &[(LOCATION.as_str(), "docs/index.html")]);
        }
        swagger_file(&rest.join("/"))
    })
    .await
}

/// The document. Behind a path prefix (an API Gateway stage, `/v1/openapi.json`),
/// it names that prefix as its server so "Try it out" calls the right URLs.
fn openapi_json(mut doc: utoipa::openapi::OpenApi, prefix: &str) -> Result<Response<Body>, ApiError> {
    if !prefix.is_empty() {
        doc.servers = Some(vec![utoipa::openapi::Server::new(prefix)]);
    }
    let json = doc.to_json().map_err(|e| ApiError::Internal(Box::new(e)))?;
    response(StatusCode::OK, "application/json", Body::Text(json), &[])
}

fn swagger_file(file: &str) -> Result<Response<Body>, ApiError> {
    // Relative to the page at `…/docs/`, so it works behind any prefix.
    let config = Arc::new(Config::new(["../openapi.json"]).persist_authorization(true).display_request_duration(true));
    let found = utoipa_swagger_ui::serve(file, config).map_err(|e| ApiError::Internal(e.to_string().into()))?;
    let Some(found) = found else { return Err(ApiError::NotFound("file")) };
    // The assets are stored compressed (a smaller binary) and go out as they
    // were: text as text, through any API Gateway set-up, no Content-Encoding.
    let bytes = if found.gzpipped { gunzip(&found.bytes)? } else { found.bytes.into_owned() };
    let body = match String::from_utf8(bytes) {
        Ok(text) => Body::Text(text),
        Err(not_text) => Body::Binary(not_text.into_bytes()),
    };
    response(StatusCode::OK, &found.content_type, body, &[(CACHE_CONTROL.as_str(), "public, max-age=3600")])
}

fn gunzip(compressed: &[u8]) -> Result<Vec<u8>, ApiError> {
    let mut bytes = Vec::with_capacity(compressed.len() * 4);
    flate2::read::GzDecoder::new(compressed).read_to_end(&mut bytes).map_err(|e| ApiError::Internal(Box::new(e)))?;
    Ok(bytes)
}

/// The chat page or one of its files, with the page's content security policy.
fn chat_file(rest: &[&str]) -> Result<Response<Body>, ApiError> {
    let Some(file) = chat_page::file(rest) else { return Err(ApiError::NotFound("file")) };
    let headers = [
        ("content-security-policy", chat_page::CONTENT_SECURITY_POLICY),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        // Small, and changed with each release: always checked, never stale.
        (CACHE_CONTROL.as_str(), "no-cache"),
    ];
    response(StatusCode::OK, file.content_type, file.body(), &headers)
}

fn response(status: StatusCode, content_type: &str, body: Body, headers: &[(&str, &str)]) -> Result<Response<Body>, ApiError> {
    let mut builder = Response::builder().status(status).header(CONTENT_TYPE, content_type);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(body).map_err(|e| ApiError::Internal(Box::new(e)))
}

#[cfg(test)]
mod tests {
    use lambda_http::Body;
    use lambda_http::http::Method;
    use llmchat::testing::{content_type, json_body, request};

    use super::handle;

    #[tokio::test]
    async fn serves_the_document_and_swagger_ui_without_a_key() {
        let (app, _) = llmchat::testing::app_with_key("anyone").await;
        let r = handle(&app, request(Method::GET, "/openapi.json", None, None)).await.unwrap();
        assert_eq!(r.status(), 200);
        let doc = json_body(&r);
        assert_eq!(doc, serde_json::to_value(llmchat::http::openapi::document()).unwrap(), "the same document as openapi.yaml");
        assert!(doc.get("servers").is_none());

        let r = handle(&app, request(Method::GET, "/v1/openapi.json", None, None)).await.unwrap();
        assert_eq!(json_body(&r)["servers"][0]["url"], "/v1");
        let r = handle(&app, request(Method::GET, "/openapi-3.2.json", None, None)).await.unwrap();
        assert_eq!(json_body(&r), serde_json::to_value(llmchat::http::openapi::document_3_2()).unwrap());

        let r = handle(&app, request(Method::GET, "/docs", None, None)).await.unwrap();
        assert_eq!((r.status().as_u16(), r.headers()["location"].to_str().unwrap()), (302, "docs/index.html"));
        let r = handle(&app, request(Method::GET, "/docs/index.html", None, None)).await.unwrap();
        assert_eq!(r.status(), 200);

        let r = handle(&app, request(Method::GET, "/docs/", None, None)).await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(content_type(&r).starts_with("text/html"));
        let html = String::from_utf8_lossy(r.body().as_ref()).into_owned();
        assert!(html.contains("swagger-ui"));
        assert!(!html.contains("https://"), "no asset from another host");

        let r = handle(&app, request(Method::GET, "/docs/swagger-initializer.js", None, None)).await.unwrap();
        let js = String::from_utf8_lossy(r.body().as_ref()).into_owned();
        assert!(js.contains("../openapi.json"), "{js}");

        let r = handle(&app, request(Method::GET, "/docs/swagger-ui-bundle.js", None, None)).await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.headers().get("content-encoding").is_none(), "served as it was, not compressed");
        let Body::Text(js) = r.body() else { panic!("the bundle goes out as text") };
        assert!(js.len() > 1_000_000 && js.contains("SwaggerUIBundle"), "the whole bundle is in the binary");
        let r = handle(&app, request(Method::GET, "/docs/swagger-ui.css", None, None)).await.unwrap();
        assert!(matches!(r.body(), Body::Text(css) if css.contains(".swagger-ui")), "the style sheet, as text");

        let r = handle(&app, request(Method::GET, "/docs/nope.js", None, None)).await.unwrap();
        assert_eq!(r.status(), 404);
        let r = handle(&app, request(Method::POST, "/openapi.json", None, None)).await.unwrap();
        assert_eq!(r.status(), 405);
    }

    #[tokio::test]
    async fn serves_the_chat_page_and_its_files_under_a_strict_policy() {
        let (app, _) = llmchat::testing::app_with_key("anyone").await;
        for prefix in ["", "/v1"] {
            let r = handle(&app, request(Method::GET, &format!("{prefix}/chat"), None, None)).await.unwrap();
            assert_eq!(r.status(), 200);
            assert!(content_type(&r).starts_with("text/html"));
            let csp = r.headers()["content-security-policy"].to_str().unwrap();
            assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe"), "{csp}");
            let html = String::from_utf8_lossy(r.body().as_ref()).into_owned();
            assert!(!html.contains("://"), "nothing from another host");
            assert!(!html.contains("<script>"), "no inline script");
            assert!(!html.split_whitespace().any(|w| w.starts_with("on") && w.contains('=')), "no inline handler");
            for file in super::chat_page::FILES {
                assert!(html.contains(&format!("\"chat/{}\"", file.name)) || file.name == "markdown.js", "the page loads {}", file.name);
                let r = handle(&app, request(Method::GET, &format!("{prefix}/chat/{}", file.name), None, None)).await.unwrap();
                assert_eq!((r.status().as_u16(), content_type(&r)), (200, file.content_type));
                let text = String::from_utf8_lossy(r.body().as_ref()).into_owned();
                assert!(!text.contains("innerHTML") && !text.contains("insertAdjacentHTML") && !text.contains("eval("), "{}", file.name);
            }
        }
        let r = handle(&app, request(Method::GET, "/chat/nope.js", None, None)).await.unwrap();
        assert_eq!(r.status(), 404);
    }
}
