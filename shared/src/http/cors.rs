//! Cross-origin requests from browsers: the preflight (`OPTIONS`) answer and
//! the headers every response carries for an allowed origin
//! (`LLMCHAT_CORS_ORIGINS`). The functions answer preflights themselves, both
//! under the local runtime (which adds no CORS headers of its own) and
//! behind API Gateway (every API path has an `OPTIONS` event in template.yaml),
//! so the allowed origins are one setting, read in one place.

use http::header::{self, HeaderMap, HeaderValue};
use http::{Response, StatusCode};

use crate::config::CorsOrigins;

/// The methods the API serves, on one path or another. A preflight names them
/// all: a method a path does not serve then gets its `405` problem, readable
/// by the page, instead of an opaque network error.
pub const ALLOWED_METHODS: &str = "GET, POST, PATCH, DELETE, OPTIONS";

/// The request headers the API reads, besides those browsers always allow:
/// the key, the JSON body's type, and the position to rejoin a reply from.
pub const ALLOWED_HEADERS: &str = "authorization, content-type, last-event-id";

/// The response headers a page may read, besides the always visible ones:
/// when to retry after a `429`/`503`, and the id to quote in a bug report.
pub const EXPOSED_HEADERS: &str = "retry-after, x-request-id";

/// How long a browser may reuse a preflight's answer, in seconds (Chromium
/// caps it at two hours, Firefox at one day).
pub const MAX_AGE_SECONDS: u32 = 7200;

/// The response header carrying the request id (also in every problem body).
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The answer to `OPTIONS` on any path: `204` with `allow`, and, for an
/// allowed origin asking a preflight, the methods, headers and max age.
pub fn preflight<B: From<String>>(origins: &CorsOrigins, request_headers: &HeaderMap) -> Response<B> {
    let mut response = Response::new(B::from(String::new()));
    *response.status_mut() = StatusCode::NO_CONTENT;
    let headers = response.headers_mut();
    headers.insert(header::ALLOW, HeaderValue::from_static(ALLOWED_METHODS));
    let asks = request_headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if asks && allow_origin(origins, request_headers, headers) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static(ALLOWED_METHODS));
        headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static(ALLOWED_HEADERS));
        headers.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from(MAX_AGE_SECONDS));
    }
    response
}

/// Adds the headers of an actual (not preflight) response to a request from
/// an allowed origin: who may read it, and which headers it may read.
pub fn decorate(origins: &CorsOrigins, request_headers: &HeaderMap, headers: &mut HeaderMap) {
    if allow_origin(origins, request_headers, headers) {
        headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static(EXPOSED_HEADERS));
    }
}

/// Sets `access-control-allow-origin` (and `vary: origin`, as the answer
/// depends on it) when the request's origin is allowed; tells whether it was.
fn allow_origin(origins: &CorsOrigins, request_headers: &HeaderMap, headers: &mut HeaderMap) -> bool {
    let origin = request_headers.get(header::ORIGIN).and_then(|o| o.to_str().ok());
    let Some(value) = origins.allow(origin).and_then(|o| HeaderValue::from_str(&o).ok()) else { return false };
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
    headers.append(header::VARY, HeaderValue::from_static("origin"));
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(pairs: &[(&'static str, &str)]) -> HeaderMap {
        pairs.iter().map(|(k, v)| (http::HeaderName::from_static(k), HeaderValue::from_str(v).unwrap())).collect()
    }

    fn header<'a>(r: &'a Response<String>, name: &str) -> Option<&'a str> {
        r.headers().get(name).and_then(|v| v.to_str().ok())
    }

    #[test]
    fn a_preflight_from_an_allowed_origin_names_methods_headers_and_max_age() {
        let origins = CorsOrigins::List(vec!["https://app.example".into()]);
        let asked = request(&[("origin", "https://app.example"), ("access-control-request-method", "POST")]);
        let r: Response<String> = preflight(&origins, &asked);
        assert_eq!(r.status(), 204);
        assert_eq!(header(&r, "access-control-allow-origin"), Some("https://app.example"));
        assert!(header(&r, "access-control-allow-methods").unwrap().contains("PATCH"));
        for name in ["authorization", "content-type", "last-event-id"] {
            assert!(header(&r, "access-control-allow-headers").unwrap().contains(name), "{name}");
        }
        assert_eq!(header(&r, "access-control-max-age"), Some("7200"));
        assert_eq!(header(&r, "vary"), Some("origin"));
    }

    #[test]
    fn other_origins_and_plain_options_get_no_cors_headers() {
        let origins = CorsOrigins::List(vec!["https://app.example".into()]);
        let other = request(&[("origin", "https://evil.example"), ("access-control-request-method", "POST")]);
        let plain = request(&[("origin", "https://app.example")]);
        for asked in [other, plain] {
            let r: Response<String> = preflight(&origins, &asked);
            assert_eq!((r.status().as_u16(), header(&r, "allow").is_some()), (204, true));
            assert!(r.headers().keys().all(|k| !k.as_str().starts_with("access-control-")), "{:?}", r.headers());
        }
        let asked = request(&[("origin", "https://app.example"), ("access-control-request-method", "GET")]);
        let r: Response<String> = preflight(&CorsOrigins::None, &asked);
        assert!(header(&r, "access-control-allow-origin").is_none(), "none allowed by default");
    }

    #[test]
    fn responses_expose_retry_after_and_the_request_id() {
        let mut headers = HeaderMap::new();
        decorate(&CorsOrigins::Any, &request(&[("origin", "http://localhost:5173")]), &mut headers);
        assert_eq!(headers["access-control-allow-origin"], "*");
        assert_eq!(headers["access-control-expose-headers"], EXPOSED_HEADERS);
        let mut headers = HeaderMap::new();
        decorate(&CorsOrigins::None, &request(&[("origin", "http://localhost:5173")]), &mut headers);
        assert!(headers.is_empty());
    }
}
