//! The Lambda Runtime API the function instances poll, on a loopback port of
//! its own: each instance's `AWS_LAMBDA_RUNTIME_API` is
//! `http://127.0.0.1:<port>/rt/<function>/<instance>`, so every call says who
//! makes it.
//!
//! A response is answered only once its whole body has been read: a server
//! that answers first can see the function's HTTP client reuse or drop the
//! connection before the rest of the body went out, and the response arrive
//! cut or never.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use tokio::sync::mpsc;

use crate::Runtime;
use crate::invocations::Outcome;

/// What separates a streamed response's metadata prelude from its body.
const PRELUDE_END: [u8; 8] = [0; 8];
/// Body parts of a streamed response held for a slow reader before the
/// function's writes wait.
const STREAM_BUFFER_PARTS: usize = 64;

type Answer = Response<Full<Bytes>>;

fn answer(status: StatusCode, body: &str) -> Answer {
    let mut res = Response::new(Full::new(Bytes::from(body.to_owned())));
    *res.status_mut() = status;
    res.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    res
}

fn accepted() -> Answer {
    answer(StatusCode::ACCEPTED, r#"{"status":"OK"}"#)
}

/// A call of the Runtime API, read from its path.
#[derive(Debug, PartialEq, Eq)]
enum Call<'a> {
    Next,
    Response(&'a str),
    Error(&'a str),
    InitError,
}

/// `/rt/<function>/<instance>/2018-06-01/runtime/...`: the instance's key
/// (`<function>/<instance>`) and the call.
fn parse(path: &str) -> Option<(String, Call<'_>)> {
    let rest = path.strip_prefix("/rt/")?;
    let mut parts = rest.splitn(3, '/');
    let (function, instance, call) = (parts.next()?, parts.next()?, parts.next()?);
    let call = call.strip_prefix("2018-06-01/runtime/")?;
    let call = match call.split('/').collect::<Vec<_>>().as_slice() {
        ["invocation", "next"] => Call::Next,
        ["invocation", id, "response"] => Call::Response(id),
        ["invocation", id, "error"] => Call::Error(id),
        ["init", "error"] => Call::InitError,
        _ => return None,
    };
    Some((format!("{function}/{instance}"), call))
}

pub async fn serve(rt: Arc<Runtime>, req: Request<Incoming>) -> Result<Answer, std::convert::Infallible> {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    let Some((instance, call)) = parse(&path) else {
        return Ok(answer(StatusCode::NOT_FOUND, r#"{"errorType":"NotFound"}"#));
    };
    Ok(match (method, call) {
        (Method::GET, Call::Next) => next(&rt, &instance).await,
        (Method::POST, Call::Response(id)) => response(&rt, id, req).await,
        (Method::POST, Call::Error(id)) => error(&rt, &instance, Some(id), req).await,
        (Method::POST, Call::InitError) => error(&rt, &instance, None, req).await,
        _ => answer(StatusCode::METHOD_NOT_ALLOWED, r#"{"errorType":"MethodNotAllowed"}"#),
    })
}

/// Hands the instance the next invocation of its function, when there is one.
async fn next(rt: &Runtime, instance: &str) -> Answer {
    let function = instance.split('/').next().unwrap_or_default();
    let Some(queue) = rt.queues.get(function) else {
        return answer(StatusCode::NOT_FOUND, r#"{"errorType":"UnknownFunction"}"#);
    };
    if !rt.instances.waiting(instance) {
        // A replaced instance asking for more: it is stopped, and never gets any.
        return std::future::pending().await;
    }
    let Some(invocation) = queue.take().await else {
        return answer(StatusCode::SERVICE_UNAVAILABLE, r#"{"errorType":"ShuttingDown"}"#);
    };
    // From here on nothing waits: the invocation is either in flight with
    // this instance or still queued.
    rt.instances.working(instance);
    rt.in_flight.insert(invocation.id.clone(), instance, invocation.reply);
    let deadline = SystemTime::now() + rt.timeout;
    let deadline_ms = deadline.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_millis();
    let trace = uuid::Uuid::new_v4().simple().to_string();
    let mut res = Response::new(Full::new(invocation.event));
    let headers = res.headers_mut();
    let mut set = |name: &'static str, value: String| {
        if let Ok(value) = http::HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    };
    set("content-type", "application/json".into());
    set("lambda-runtime-aws-request-id", invocation.id);
    set("lambda-runtime-deadline-ms", deadline_ms.to_string());
    set("lambda-runtime-invoked-function-arn", format!("arn:aws:lambda:local:000000000000:function:{function}"));
    set("lambda-runtime-trace-id", format!("Root=1-{}-{};Sampled=0", &trace[..8], &trace[8..]));
    res
}

/// Takes a response: whole, or streamed through to the waiting request.
async fn response(rt: &Runtime, id: &str, req: Request<Incoming>) -> Answer {
    let streaming = req
        .headers()
        .get("lambda-runtime-function-response-mode")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"streaming"));
    let Some(reply) = rt.in_flight.take(id) else {
        return answer(StatusCode::BAD_REQUEST, r#"{"errorType":"InvalidRequestID"}"#);
    };
    let mut body = req.into_body();
    if !streaming {
        return match body.collect().await {
            Ok(whole) => {
                let _ = reply.send(Outcome::Buffered(whole.to_bytes()));
                accepted()
            }
            Err(e) => {
                let _ = reply.send(Outcome::Failed(format!("the function's response broke off: {e}")));
                answer(StatusCode::BAD_REQUEST, r#"{"errorType":"InvalidResponse"}"#)
            }
        };
    }

    // The metadata prelude first, up to its separator.
    let mut head = BytesMut::new();
    let (prelude, rest) = loop {
        if let Some(at) = head.windows(PRELUDE_END.len()).position(|w| w == PRELUDE_END) {
            let prelude = head.split_to(at).freeze();
            let _ = head.split_to(PRELUDE_END.len());
            break (prelude, head.freeze());
        }
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    head.extend_from_slice(&data);
                }
            }
            Some(Err(e)) => {
                let _ = reply.send(Outcome::Failed(format!("the function's stream broke off before its prelude: {e}")));
                return answer(StatusCode::BAD_REQUEST, r#"{"errorType":"InvalidResponse"}"#);
            }
            None => {
                let _ = reply.send(Outcome::Failed("the function's stream ended before its prelude".into()));
                return answer(StatusCode::BAD_REQUEST, r#"{"errorType":"InvalidResponse"}"#);
            }
        }
    };
    let (tx, rx) = mpsc::channel(STREAM_BUFFER_PARTS);
    if reply.send(Outcome::Streaming { prelude, body: rx }).is_err() {
        // The request has gone; what the function streams is not wanted.
        return accepted();
    }
    if !rest.is_empty() && tx.send(Ok(rest)).await.is_err() {
        return accepted();
    }
    loop {
        match body.frame().await {
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => {
                    if tx.send(Ok(data)).await.is_err() {
                        // The reader has gone: stop taking the body, as Lambda does.
                        return accepted();
                    }
                }
                Err(frame) => {
                    if let Some(kind) = frame.trailers_ref().and_then(|t| t.get("lambda-runtime-function-error-type")) {
                        let kind = String::from_utf8_lossy(kind.as_bytes()).into_owned();
                        eprintln!("[local] {id}: the function's stream ended with an error: {kind}");
                        let _ = tx.send(Err(kind)).await;
                    }
                }
            },
            Some(Err(e)) => {
                let _ = tx.send(Err(format!("the function's stream broke off: {e}"))).await;
                return accepted();
            }
            None => return accepted(),
        }
    }
}

/// An invocation's error (the request gets a 502), or the instance's own at
/// start-up.
async fn error(rt: &Runtime, instance: &str, id: Option<&str>, req: Request<Incoming>) -> Answer {
    let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let text = String::from_utf8_lossy(&body);
    match id {
        Some(id) => {
            eprintln!("[local] {instance}: invocation {id} failed: {text}");
            if let Some(reply) = rt.in_flight.take(id) {
                let _ = reply.send(Outcome::Failed(format!("the function failed: {text}")));
            }
        }
        None => eprintln!("[local] {instance}: failed to start: {text}"),
    }
    accepted()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_read_from_their_paths() {
        assert_eq!(parse("/rt/docs/0.1/2018-06-01/runtime/invocation/next"), Some(("docs/0.1".into(), Call::Next)));
        assert_eq!(
            parse("/rt/docs/0.1/2018-06-01/runtime/invocation/abc/response"),
            Some(("docs/0.1".into(), Call::Response("abc")))
        );
        assert_eq!(parse("/rt/docs/0.1/2018-06-01/runtime/invocation/abc/error"), Some(("docs/0.1".into(), Call::Error("abc"))));
        assert_eq!(parse("/rt/docs/0.1/2018-06-01/runtime/init/error"), Some(("docs/0.1".into(), Call::InitError)));
        assert_eq!(parse("/rt/docs/0.1/2018-06-01/runtime/other"), None);
        assert_eq!(parse("/2018-06-01/runtime/invocation/next"), None);
    }
}
