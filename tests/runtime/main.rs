//! The stream function under a stand-in Lambda Runtime API that stops taking
//! the response body mid-reply, as when the client has gone: the reply is
//! still generated and stored before the function asks for its next
//! invocation (on Lambda, work left over after that would be frozen).
//!
//! Its own test binary: the Lambda runtime reads its settings from the
//! process environment, which this test sets.

use std::sync::Arc;
use std::time::Duration;

use llmchat::domain::OwnerId;
use llmchat::testing;
use llmchat_tests::scripted_llm::{Script, ScriptedLlm, reply_steps};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// What the stand-in Runtime API saw, in order.
#[derive(Debug, PartialEq)]
enum Seen {
    /// The function asked for an invocation (the n-th).
    Next(usize),
    /// The response body stopped being read after these bytes.
    BodyCut(String),
}

/// Reads one request head (and leaves the rest of the bytes in `buf`).
async fn read_head(socket: &mut TcpStream, buf: &mut Vec<u8>) -> Option<String> {
    let mut tmp = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            buf.drain(..end + 4);
            return Some(head);
        }
        let n = socket.read(&mut tmp).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&tmp[..n]);
    }
}

/// One connection of the stand-in: hands out `event` on the first `/next`,
/// cuts the response body after its first delta, and holds later `/next` calls.
async fn serve(mut socket: TcpStream, event: Arc<String>, nexts: Arc<std::sync::atomic::AtomicUsize>, seen: mpsc::UnboundedSender<Seen>) {
    let mut buf = Vec::new();
    while let Some(head) = read_head(&mut socket, &mut buf).await {
        let request_line = head.lines().next().unwrap_or_default().to_owned();
        if request_line.starts_with("GET") && request_line.contains("/runtime/invocation/next") {
            let n = nexts.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            let _ = seen.send(Seen::Next(n));
            if n > 1 {
                // The test has what it needs; the function waits here, as between invocations.
                std::future::pending::<()>().await;
            }
            let deadline = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() + 900_000;
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nlambda-runtime-aws-request-id: req-1\r\n\
lambda-runtime-deadline-ms: {deadline}\r\nlambda-runtime-invoked-function-arn: arn:aws:lambda:us-east-1:123456789012:function:stream-reply\r\n\
lambda-runtime-trace-id: Root=1-00000000-000000000000000000000000\r\ncontent-length: {}\r\n\r\n{}",
                event.len(),
                event
            );
            if socket.write_all(response.as_bytes()).await.is_err() {
                return;
            }
        } else if request_line.contains("/response") {
            // Take the streamed body until the first delta, then stop reading and hang up.
            let mut tmp = [0u8; 4096];
            while !String::from_utf8_lossy(&buf).contains("reply.delta") {
                match socket.read(&mut tmp).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.extend_from_slice(&tmp[..n]),
                }
            }
            let _ = seen.send(Seen::BodyCut(String::from_utf8_lossy(&buf).into_owned()));
            return;
        } else {
            // `/error` or anything else: accepted.
            let _ = socket.write_all(b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n").await;
        }
    }
}

/// The next thing the stand-in saw, waiting at most 30 s.
async fn next(seen: &mut mpsc::UnboundedReceiver<Seen>) -> Option<Seen> {
    tokio::time::timeout(Duration::from_secs(30), seen.recv()).await.ok().flatten()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_is_stored_before_the_function_asks_for_its_next_invocation() {
    let words: Vec<String> = (0..20).map(|i| format!("w{i} ")).collect();
    let refs: Vec<&str> = words.iter().map(String::as_str).collect();
    let steps = reply_steps(&refs, Duration::from_millis(100));
    let llm = ScriptedLlm::start(move |_| Script { status: 200, steps: steps.clone() }).await;
    let app = testing::app_on_fresh_table(&[("OLLAMA_URL", llm.url.as_str())]).await;
    let owner = OwnerId::parse("alice").unwrap();
    let key = testing::issue_key(&app.store, &owner).await;
    let session = testing::new_session(&app, "alice").await;

    let path = format!("/sessions/{}/messages/stream", session.id);
    let event = json!({
        "resource": "/sessions/{id}/messages/stream",
        "path": path,
        "httpMethod": "POST",
        "headers": {"authorization": format!("Bearer {key}"), "content-type": "application/json", "host": "api.example.com"},
        "multiValueHeaders": {"authorization": [format!("Bearer {key}")], "content-type": ["application/json"], "host": ["api.example.com"]},
        "queryStringParameters": null,
        "multiValueQueryStringParameters": null,
        "pathParameters": {"id": session.id.to_string()},
        "stageVariables": null,
        "requestContext": {
            "accountId": "123456789012", "resourceId": "r1", "stage": "v1", "requestId": "req-1",
            "identity": {"sourceIp": "127.0.0.1"}, "resourcePath": "/sessions/{id}/messages/stream",
            "httpMethod": "POST", "apiId": "api1", "path": format!("/v1{path}")
        },
        "body": "{\"content\": \"count for me\"}",
        "isBase64Encoded": false
    });

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    let (event, nexts) = (Arc::new(event.to_string()), Arc::new(std::sync::atomic::AtomicUsize::new(0)));
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(serve(socket, event.clone(), nexts.clone(), seen_tx.clone()));
        }
    });

    // SAFETY: set once, before the runtime (the only reader) starts; no other thread reads these.
    unsafe {
        std::env::set_var("AWS_LAMBDA_RUNTIME_API", address.to_string());
        std::env::set_var("AWS_LAMBDA_FUNCTION_NAME", "stream-reply");
        std::env::set_var("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128");
        std::env::set_var("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST");
        std::env::set_var("AWS_LAMBDA_LOG_STREAM_NAME", "test");
        std::env::set_var("AWS_LAMBDA_LOG_GROUP_NAME", "test");
    }
    let (store, session_id, config) = (app.store.clone(), session.id, app.config.clone());
    // The runtime's future is not Send: it gets a thread and an event loop of its own, as in a function's main.
    let runtime = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move { stream_reply::run(Arc::new(llmchat::App::with_config(config).await.map_err(|e| e.to_string())?)).await.map_err(|e| e.to_string()) })
    });

    assert_eq!(next(&mut seen).await, Some(Seen::Next(1)));
    let Some(Seen::BodyCut(taken)) = next(&mut seen).await else { panic!("the function streamed its response") };
    assert!(taken.contains("reply.delta") && !taken.contains("reply.completed"), "cut mid-reply: {taken}");

    let asked_again = next(&mut seen).await;
    // Whatever the function does next, it must not ask for more work before the reply is stored.
    use llmchat::store::MessageRepository;
    let reply = store.get_message(session_id, 2).await.unwrap().expect("the reply exists");
    let ended = runtime.is_finished().then(|| runtime.join().unwrap());
    assert_eq!(asked_again, Some(Seen::Next(2)), "the function went on to its next invocation (runtime ended: {ended:?})");
    assert_eq!(reply.status, llmchat::domain::MessageStatus::Complete, "stored before the next invocation");
    assert_eq!(reply.content, words.concat());
}
