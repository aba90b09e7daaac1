//! The API side: each request becomes an API Gateway (HTTP API, payload 2.0)
//! event for the function its route names, and the function's answer, whole
//! or streamed, becomes the response.
//!
//! Requests no route serves are answered here, as problem+json: 404 for an
//! unknown path, 405 (with `Allow`) for a method the path does not take, 413
//! past API Gateway's payload limit. A function that fails or whose instance
//! ends mid-invocation is a 502, one that does not answer in time a 504:
//! both are bugs of the function, and logged as such.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::oneshot;

use crate::Runtime;
use crate::invocations::{ChannelBody, Invocation, Outcome};
use llmchat_local::routes::{self, Target};

/// The largest request body taken, as API Gateway's payload limit (10 MB).
pub const MAX_REQUEST_BYTES: usize = 10 * 1024 * 1024;

pub type Body = BoxBody<Bytes, String>;

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).map_err(|never| match never {}).boxed()
}

/// A problem+json answer of the local runtime itself, in LlmChat's shape.
fn problem(status: StatusCode, code: &str, detail: &str, request_id: &str) -> Response<Body> {
    let body = json!({
        "type": format!("urn:llmchat:problem:{code}"),
        "title": status.canonical_reason().unwrap_or_default(),
        "status": status.as_u16(),
        "detail": detail,
        "code": code,
        "request_id": request_id,
    });
    let mut res = Response::new(full(body.to_string()));
    *res.status_mut() = status;
    res.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
    res
}

pub async fn serve(rt: Arc<Runtime>, req: Request<Incoming>) -> Result<Response<Body>, std::convert::Infallible> {
    let request_id = uuid::Uuid::new_v4().to_string();
    let method = req.method().as_str().to_owned();
    let path = req.uri().path().to_owned();
    let (function, params) = match routes::route(&rt.routes, &method, &path) {
        Target::Function { function, params } => (function, params),
        Target::NotFound => {
            return Ok(problem(StatusCode::NOT_FOUND, "not_found", &format!("no route serves {path}"), &request_id));
        }
        Target::MethodNotAllowed(allowed) => {
            let mut res = problem(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                &format!("{path} does not take {method}"),
                &request_id,
            );
            if let Ok(allow) = HeaderValue::from_str(&allowed.join(", ")) {
                res.headers_mut().insert(http::header::ALLOW, allow);
            }
            return Ok(res);
        }
    };
    let Some(queue) = rt.queues.get(&function) else {
        return Ok(problem(StatusCode::NOT_FOUND, "not_found", &format!("no function {function}"), &request_id));
    };

    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_REQUEST_BYTES).collect().await {
        Ok(body) => body.to_bytes(),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
            let detail = format!("the request body is larger than {MAX_REQUEST_BYTES} bytes");
            return Ok(problem(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", &detail, &request_id));
        }
        Err(e) => {
            // The client went away while sending: nobody is left to answer.
            let detail = format!("the request body could not be read: {e}");
            return Ok(problem(StatusCode::BAD_REQUEST, "invalid_request", &detail, &request_id));
        }
    };
    let event = event(&request_id, &parts, &path, params, &body);

    let (reply, outcome) = oneshot::channel();
    queue.push(Invocation { id: request_id.clone(), event: Bytes::from(event.to_string()), reply });
    let outcome = match tokio::time::timeout(rt.timeout, outcome).await {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(_)) => Outcome::Failed("the invocation was dropped".into()),
        Err(_) => {
            eprintln!("[local] {function}: {method} {path} ({request_id}) got no answer in {:?}", rt.timeout);
            let detail = format!("{function} did not answer within {} s", rt.timeout.as_secs());
            return Ok(problem(StatusCode::GATEWAY_TIMEOUT, "internal", &detail, &request_id));
        }
    };
    Ok(match outcome {
        Outcome::Buffered(json) => buffered(&json).unwrap_or_else(|why| {
            eprintln!("[local] {function}: {method} {path} ({request_id}): {why}");
            problem(StatusCode::BAD_GATEWAY, "internal", &why, &request_id)
        }),
        Outcome::Streaming { prelude, body } => streamed(&prelude, body).unwrap_or_else(|why| {
            eprintln!("[local] {function}: {method} {path} ({request_id}): {why}");
            problem(StatusCode::BAD_GATEWAY, "internal", &why, &request_id)
        }),
        Outcome::Failed(why) => {
            eprintln!("[local] {function}: {method} {path} ({request_id}): {why}");
            problem(StatusCode::BAD_GATEWAY, "internal", &format!("{function} failed: {why}"), &request_id)
        }
    })
}

/// Decodes a query string's part (`+` is a space, `%XX` a byte).
fn decode(part: &str) -> String {
    let bytes = part.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The query's parameters as API Gateway gives them: decoded, several values
/// of one name joined with commas.
fn query_parameters(query: &str) -> HashMap<String, String> {
    let mut params: HashMap<String, String> = HashMap::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        params
            .entry(decode(name))
            .and_modify(|v| {
                v.push(',');
                v.push_str(&decode(value));
            })
            .or_insert_with(|| decode(value));
    }
    params
}

/// The API Gateway HTTP API event (payload 2.0) of a request.
fn event(request_id: &str, parts: &http::request::Parts, path: &str, params: HashMap<String, String>, body: &[u8]) -> Value {
    let mut headers: HashMap<String, String> = HashMap::new();
    let mut cookies = Vec::new();
    for (name, value) in &parts.headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        if name == http::header::COOKIE {
            cookies.extend(value.split(';').map(|c| c.trim().to_owned()).filter(|c| !c.is_empty()));
            continue;
        }
        headers
            .entry(name.as_str().to_owned())
            .and_modify(|v| {
                v.push(',');
                v.push_str(&value);
            })
            .or_insert(value);
    }
    let query = parts.uri.query().unwrap_or_default();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let user_agent = headers.get("user-agent").cloned().unwrap_or_default();
    let (body, encoded) = match std::str::from_utf8(body) {
        _ if body.is_empty() => (Value::Null, false),
        Ok(text) => (Value::String(text.to_owned()), false),
        Err(_) => (Value::String(BASE64.encode(body)), true),
    };
    let mut event = json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": headers,
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "local",
            "domainName": "localhost",
            "domainPrefix": "localhost",
            "http": {
                "method": parts.method.as_str(),
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": user_agent,
            },
            "requestId": request_id,
            "routeKey": "$default",
            "stage": "$default",
            "time": "",
            "timeEpoch": now.as_millis() as u64,
        },
        "body": body,
        "isBase64Encoded": encoded,
    });
    if !cookies.is_empty() {
        event["cookies"] = json!(cookies);
    }
    if !query.is_empty() {
        event["queryStringParameters"] = json!(query_parameters(query));
    }
    if !params.is_empty() {
        event["pathParameters"] = json!(params);
    }
    event
}

/// A buffered function response (API Gateway's payload 2.0 response object).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Buffered {
    status_code: u16,
    #[serde(default)]
    headers: HashMap<String, String>,
    #[serde(default)]
    multi_value_headers: HashMap<String, Vec<String>>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    is_base64_encoded: bool,
    #[serde(default)]
    cookies: Vec<String>,
}

/// A streamed response's metadata prelude.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Prelude {
    status_code: u16,
    #[serde(default)]
    headers: HashMap<String, String>,
    #[serde(default)]
    cookies: Vec<String>,
}

fn head(status: u16, single: HashMap<String, String>, multi: HashMap<String, Vec<String>>, cookies: Vec<String>) -> Result<(StatusCode, HeaderMap), String> {
    let status = StatusCode::from_u16(status).map_err(|_| format!("the function answered status {status}"))?;
    let mut headers = HeaderMap::new();
    let pairs = single.into_iter().map(|(n, v)| (n, vec![v])).chain(multi);
    for (name, values) in pairs {
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| format!("the function answered a header named {name:?}"))?;
        headers.remove(&name);
        for value in values {
            let value = HeaderValue::from_str(&value).map_err(|_| format!("the function answered a bad value for {name}"))?;
            headers.append(name.clone(), value);
        }
    }
    for cookie in cookies {
        let value = HeaderValue::from_str(&cookie).map_err(|_| "the function answered a bad cookie".to_owned())?;
        headers.append(http::header::SET_COOKIE, value);
    }
    Ok((status, headers))
}

fn buffered(json: &[u8]) -> Result<Response<Body>, String> {
    let answer: Buffered = serde_json::from_slice(json).map_err(|e| format!("the function's response is not API Gateway's: {e}"))?;
    let (status, headers) = head(answer.status_code, answer.headers, answer.multi_value_headers, answer.cookies)?;
    let body = match (answer.body, answer.is_base64_encoded) {
        (None, _) => Bytes::new(),
        (Some(text), false) => Bytes::from(text),
        (Some(text), true) => Bytes::from(BASE64.decode(text).map_err(|_| "the function's base64 body does not decode")?),
    };
    let mut res = Response::new(full(body));
    *res.status_mut() = status;
    *res.headers_mut() = headers;
    Ok(res)
}

fn streamed(prelude: &[u8], body: tokio::sync::mpsc::Receiver<Result<Bytes, String>>) -> Result<Response<Body>, String> {
    let prelude: Prelude = serde_json::from_slice(prelude).map_err(|e| format!("the function's stream prelude is not valid: {e}"))?;
    let (status, mut headers) = head(prelude.status_code, prelude.headers, HashMap::new(), prelude.cookies)?;
    headers.remove(http::header::CONTENT_LENGTH);
    let mut res = Response::new(ChannelBody(body).boxed());
    *res.status_mut() = status;
    *res.headers_mut() = headers;
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parts_are_decoded_and_repeated_names_joined() {
        let params = query_parameters("a=1&b=x%20y+z&a=2&c&d=%zz&e=%4");
        assert_eq!(params["a"], "1,2");
        assert_eq!(params["b"], "x y z");
        assert_eq!(params["c"], "");
        assert_eq!(params["d"], "%zz");
        assert_eq!(params["e"], "%4");
    }

    fn parts(uri: &str, headers: &[(&str, &str)]) -> http::request::Parts {
        let mut req = Request::builder().method("POST").uri(uri);
        for (n, v) in headers {
            req = req.header(*n, *v);
        }
        req.body(()).unwrap().into_parts().0
    }

    #[test]
    fn a_body_that_is_not_text_goes_as_base64() {
        let p = parts("/x?q=1", &[("content-type", "application/json")]);
        let e = event("id", &p, "/x", HashMap::new(), &[0xff, 0xfe, b'{']);
        assert_eq!(e["isBase64Encoded"], true);
        assert_eq!(BASE64.decode(e["body"].as_str().unwrap()).unwrap(), [0xff, 0xfe, b'{']);
        let e = event("id", &p, "/x", HashMap::new(), "{\"a\":\"é\"}".as_bytes());
        assert_eq!((e["isBase64Encoded"].clone(), e["body"].clone()), (json!(false), json!("{\"a\":\"é\"}")));
        assert_eq!(e["queryStringParameters"]["q"], "1");
    }

    #[test]
    fn cookies_leave_the_headers_and_repeated_headers_are_joined() {
        let p = parts("/x", &[("cookie", "a=1; b=2"), ("x-list", "1"), ("x-list", "2")]);
        let e = event("id", &p, "/x", HashMap::from([("id".into(), "7".into())]), b"");
        assert_eq!(e["cookies"], json!(["a=1", "b=2"]));
        assert!(e["headers"].get("cookie").is_none());
        assert_eq!(e["headers"]["x-list"], "1,2");
        assert_eq!(e["pathParameters"]["id"], "7");
        assert_eq!(e["body"], Value::Null);
    }

    #[test]
    fn a_buffered_answer_keeps_its_status_headers_cookies_and_body() {
        let res = buffered(
            br#"{"statusCode":201,"headers":{"content-type":"text/plain"},"multiValueHeaders":{"x-a":["1","2"]},"body":"aGk=","isBase64Encoded":true,"cookies":["c=1"]}"#,
        )
        .unwrap();
        assert_eq!(res.status(), 201);
        assert_eq!(res.headers().get_all("x-a").iter().count(), 2);
        assert_eq!(res.headers()["set-cookie"], "c=1");
        assert!(buffered(b"not json").is_err());
        assert!(buffered(br#"{"statusCode":99}"#).is_err());
    }
}
