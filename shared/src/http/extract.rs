//! Reading a request: path segments, ids, the JSON body and query parameters,
//! each with its limit and a 400 or 422 when it cannot be read.

use lambda_http::http::Method;
use lambda_http::{Request, RequestExt};
use serde::de::DeserializeOwned;
use uuid::Uuid;

use super::ApiError;
use crate::domain::limits::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, MAX_REQUEST_BODY_BYTES};
use crate::domain::{Order, parse_session_id};

/// The path segments after the first `anchor` segment (`/prod/sessions/x` and
/// `/sessions/x` both give `["x"]` for `sessions`), or `None` if there is none.
pub fn segments_after<'a>(req: &'a Request, anchor: &str) -> Option<Vec<&'a str>> {
    let mut segments = req.uri().path().split('/').filter(|s| !s.is_empty());
    segments.by_ref().find(|s| *s == anchor)?;
    Some(segments.collect())
}

/// A path segment with its `%XX` escapes decoded (a model id's `/` sent as
/// `%2F`); `None` when the escapes do not make UTF-8.
pub fn decode_segment(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
        match (bytes[i], bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(hi), Some(lo)) => {
                out.push(hi * 16 + lo);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// The JSON body as `T`. An empty body reads as `{}`, so optional bodies work.
/// The body is read as JSON whatever its `content-type` says: clients such as
/// `curl -d` label JSON as a form, and the body is what matters.
pub fn json_body<T: DeserializeOwned>(req: &Request) -> Result<T, ApiError> {
    let bytes: &[u8] = req.body().as_ref();
    if bytes.len() > MAX_REQUEST_BODY_BYTES {
        return Err(ApiError::PayloadTooLarge { limit: MAX_REQUEST_BODY_BYTES });
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return decode(serde_json::Value::Object(Default::default()));
    }
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::BadRequest(format!("request body is not valid JSON: {e}")))?;
    if !value.is_object() {
        return Err(ApiError::Unprocessable("request body must be a JSON object".to_owned()));
    }
    decode(value)
}

/// Reads a JSON object as `T`; derived types would also accept a JSON array.
fn decode<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    serde_json::from_value(value).map_err(|e| ApiError::Unprocessable(format!("request body does not match the schema: {e}")))
}

/// A single query parameter.
pub fn query_param(req: &Request, name: &str) -> Option<String> {
    req.query_string_parameters_ref().and_then(|q| q.first(name)).map(str::to_owned)
}

/// `limit`: 1 to [`MAX_PAGE_SIZE`], default [`DEFAULT_PAGE_SIZE`].
pub fn page_limit(req: &Request) -> Result<u32, ApiError> {
    match query_param(req, "limit") {
        None => Ok(DEFAULT_PAGE_SIZE),
        Some(v) => match v.parse::<u32>() {
            Ok(n) if (1..=MAX_PAGE_SIZE).contains(&n) => Ok(n),
            _ => Err(ApiError::BadRequest(format!("limit must be a whole number from 1 to {MAX_PAGE_SIZE}"))),
        },
    }
}

/// The session of a `method` request to `/sessions/{id}/` followed by `tail`, if this is one.
pub fn session_route(req: &Request, method: &Method, tail: &[&str]) -> Option<Uuid> {
    if req.method() != method {
        return None;
    }
    let segments = segments_after(req, "sessions")?;
    let (id, rest) = segments.split_first()?;
    if rest != tail {
        return None;
    }
    session_id(id).ok()
}

/// A session id from the path; a malformed one is a 400.
pub fn session_id(segment: &str) -> Result<Uuid, ApiError> {
    parse_session_id(segment).map_err(ApiError::bad_request)
}

/// A message id from the path; a malformed one is a 400.
pub fn message_id(segment: &str) -> Result<Uuid, ApiError> {
    Uuid::try_parse(segment).map_err(|_| ApiError::BadRequest("the message id is not a UUID".to_owned()))
}

/// `order`: `asc` (the default) or `desc`.
pub fn order(req: &Request) -> Result<Order, ApiError> {
    Order::parse(query_param(req, "order").as_deref()).map_err(ApiError::bad_request)
}

#[cfg(test)]
mod tests {
    #[test]
    fn escaped_segments_decode() {
        assert_eq!(super::decode_segment("ollama%2Fsmollm2%3A135m").as_deref(), Some("ollama/smollm2:135m"));
        assert_eq!(super::decode_segment("plain:1b").as_deref(), Some("plain:1b"));
        assert_eq!(super::decode_segment("100%").as_deref(), Some("100%"));
        assert_eq!(super::decode_segment("%FF"), None);
    }
}
