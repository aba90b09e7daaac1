//! End to end through the real local runtime: the project's local stack
//! (`scripts/local-stack.sh`: the local runtime with the project's router,
//! on the DynamoDB Local of `make test`) and a scripted LLM, spoken to over
//! HTTP like any client would.
//!
//! The stack builds the functions into `target/local-stack`, so it never waits
//! on the build lock of the `cargo test` that runs this.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use llmchat_tests::scripted_llm::{Dialect, MODEL, Script, ScriptedLlm, Step, reply_steps};
use serde_json::{Value, json};

/// How long the first build of the functions and the start of the stack may take.
const READY_TIMEOUT: Duration = Duration::from_secs(900);
const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// A local stack of `scripts/local-stack.sh`, stopped when dropped.
struct Stack {
    dir: PathBuf,
    base: String,
    key: String,
    table: String,
}

/// `scripts/local-stack.sh SUBCOMMAND DIR`
fn local_stack(subcommand: &str, dir: &Path) -> Command {
    let mut command = Command::new("bash");
    command.arg(format!("{ROOT}/scripts/local-stack.sh")).arg(subcommand).arg(dir);
    command
}

impl Drop for Stack {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = std::fs::read_to_string(self.dir.join("runtime.log")).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            eprintln!("---- end of the local stack's runtime.log ----\n{}", lines[lines.len().saturating_sub(40)..].join("\n"));
        }
        if let Ok(out) = local_stack("stop", &self.dir).stdin(Stdio::null()).output() {
            eprint!("{}", String::from_utf8_lossy(&out.stderr));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts the local stack with the functions calling `llm`, its table in
/// `dynamodb`, and an API key of owner `e2e`; `env`: settings for the functions.
async fn start_stack(dynamodb: &str, llm: &str, env: &[String]) -> Stack {
    // Under `make test`, in its run's directory, whose cleanup stops the stack
    // even when this process is killed before it could.
    let parent = std::env::var_os("LLMCHAT_TEST_STATE_DIR").map_or_else(|| Path::new(ROOT).join(".llmchat"), PathBuf::from);
    let mut stack = Stack { dir: parent.join(format!("e2e.{}", uuid::Uuid::new_v4())), base: String::new(), key: String::new(), table: String::new() };
    std::fs::create_dir_all(&stack.dir).unwrap();
    let start_log = stack.dir.join("start.log");
    // A process group of its own: a start that overruns is stopped as a whole,
    // and the script then stops what it had started.
    let mut start = local_stack("start", &stack.dir)
        .args(["--owner", "e2e", "--llm", llm, "--dynamodb", dynamodb])
        .args(env.iter().flat_map(|e| ["--env", e.as_str()]))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&start_log).unwrap())
        .process_group(0)
        .spawn()
        .expect("bash runs scripts/local-stack.sh");
    // Polled, not waited for: meanwhile the scripted LLM runs on this thread.
    let started = Instant::now();
    let status = loop {
        if let Some(status) = start.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() >= READY_TIMEOUT {
            let _ = Command::new("kill").args(["-TERM", "--", &format!("-{}", start.id())]).status();
            let _ = start.wait();
        }
        assert!(started.elapsed() < READY_TIMEOUT, "the local runtime did not become ready");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let log = std::fs::read_to_string(&start_log).unwrap_or_default();
    assert!(status.success(), "scripts/local-stack.sh start failed ({status}):\n{log}");
    eprint!("{log}");
    let env = local_stack("env", &stack.dir).stdin(Stdio::null()).output().unwrap();
    assert!(env.status.success(), "scripts/local-stack.sh env failed: {}", String::from_utf8_lossy(&env.stderr));
    for line in String::from_utf8(env.stdout).unwrap().lines() {
        match line.split_once('=') {
            Some(("STACK_BASE", base)) => stack.base = base.to_owned(),
            Some(("STACK_KEY", key)) => stack.key = key.to_owned(),
            Some(("STACK_TABLE", table)) => stack.table = table.to_owned(),
            _ => {}
        }
    }
    assert!(!stack.base.is_empty() && !stack.key.is_empty(), "scripts/local-stack.sh env named no STACK_BASE or STACK_KEY");
    stack
}

/// One event of an SSE response, and when it arrived.
#[derive(Debug)]
struct Event {
    at: Duration,
    id: String,
    name: String,
    data: Value,
}

/// Reads an SSE response until it ends, or (with `deltas`) until that many
/// deltas have come, then hangs up.
async fn read_events(response: reqwest::Response, started: Instant, deltas: Option<usize>) -> Vec<Event> {
    let mut events: Vec<Event> = Vec::new();
    let mut buffer = String::new();
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        buffer.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let field = |f: &str| block.lines().find_map(|l| l.strip_prefix(&format!("{f}: ")).map(str::to_owned));
            if let (Some(id), Some(name), Some(data)) = (field("id"), field("event"), field("data")) {
                events.push(Event { at: started.elapsed(), id, name, data: serde_json::from_str(&data).unwrap() });
            }
        }
        if deltas.is_some_and(|n| events.iter().filter(|e| e.name == "reply.delta").count() >= n) {
            break;
        }
    }
    events
}

fn text_of(events: &[Event]) -> String {
    events.iter().filter(|e| e.name == "reply.delta").map(|e| e.data["delta"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn the_local_runtime_streams_incrementally_and_concurrently() {
    let dynamodb = std::env::var("LLMCHAT_TEST_DYNAMODB_ENDPOINT")
        .expect("LLMCHAT_TEST_DYNAMODB_ENDPOINT is not set: run the tests with `make test`");

    // Five tokens, 400 ms apart.
    let llm = ScriptedLlm::start(|_| Script {
        status: 200,
        steps: reply_steps(&["one ", "two ", "three ", "four ", "five"], Duration::from_millis(400)),
    })
    .await;
    // A second backend, OpenAI-compatible, beside the default Ollama.
    let second = ScriptedLlm::start_as(Dialect::OpenAi, |_| {
        Script::ok(vec![Step::Thinking("counting".into()), Step::Token("uno ".into()), Step::Token("dos".into()), Step::Done])
    })
    .await;
    let backends = format!("LLMCHAT_BACKENDS=local=ollama:{},second=openai:{}/v1", llm.url, second.url);
    let watch = start_stack(&dynamodb, &llm.url, &[backends]).await;
    let auth_header = format!("Bearer {}", watch.key);
    llmchat::tls::install_crypto_provider();
    let client = reqwest::Client::new();

    let mut sessions = Vec::new();
    for _ in 0..3 {
        let r = client.post(format!("{}/sessions", watch.base)).header("authorization", &auth_header).json(&json!({})).send().await.unwrap();
        assert_eq!(r.status(), 201);
        sessions.push(r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned());
    }

    // A buffered send and the history, through the router.
    let r = client
        .post(format!("{}/sessions/{}/messages", watch.base, sessions[0]))
        .header("authorization", &auth_header)
        .json(&json!({"content": "count to five"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(r.json::<Value>().await.unwrap()["reply"]["content"], "one two three four five");
    let h: Value = client
        .get(format!("{}/sessions/{}/messages", watch.base, sessions[0]))
        .header("authorization", &auth_header)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(h["items"].as_array().unwrap().len(), 2);

    // Deltas arrive as they are generated: the first well before the last.
    let started = Instant::now();
    let r = client
        .post(format!("{}/sessions/{}/messages/stream", watch.base, sessions[1]))
        .header("authorization", &auth_header)
        .json(&json!({"content": "count"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let events = read_events(r, started, None).await;
    let deltas: Vec<&Duration> = events.iter().filter(|e| e.name == "reply.delta").map(|e| &e.at).collect();
    assert_eq!(deltas.len(), 5);
    assert!(*deltas[4] - *deltas[0] >= Duration::from_millis(1200), "deltas were buffered: {deltas:?}");
    assert_eq!(events.last().unwrap().name, "reply.completed");

    // Two streams on different sessions run at the same time.
    let started = Instant::now();
    let open = |session: String| {
        let (client, base, auth_header) = (client.clone(), watch.base.clone(), auth_header.clone());
        async move {
            let r = client
                .post(format!("{base}/sessions/{session}/messages/stream"))
                .header("authorization", auth_header)
                .json(&json!({"content": "count"}))
                .send()
                .await
                .unwrap();
            read_events(r, started, None).await
        }
    };
    let (a, b) = tokio::join!(open(sessions[1].clone()), open(sessions[2].clone()));
    let first_delta = |e: &Vec<Event>| e.iter().find(|e| e.name == "reply.delta").unwrap().at;
    let end = |e: &Vec<Event>| e.last().unwrap().at;
    assert!(first_delta(&a) < end(&b) && first_delta(&b) < end(&a), "the streams overlapped");
    let single = *deltas[4];
    assert!(end(&a).max(end(&b)) < single * 2, "two streams took {:?} and {:?}; one alone {single:?}", end(&a), end(&b));

    // A reader leaves mid-reply and rejoins through another request (another
    // function instance): the rest arrives live, no gap, no repeat.
    let stream_url = |session: &str| format!("{}/sessions/{session}/messages/stream", watch.base);
    let r = client.post(stream_url(&sessions[0])).header("authorization", &auth_header).json(&json!({"content": "again"})).send().await.unwrap();
    let seen = read_events(r, Instant::now(), Some(2)).await;
    let reply_id = seen[0].data["reply_id"].as_str().unwrap().to_owned();
    let resume_url = format!("{}/sessions/{}/messages/{reply_id}/stream", watch.base, sessions[0]);
    let r = client.get(&resume_url).header("authorization", &auth_header).header("last-event-id", &seen.last().unwrap().id).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let rest = read_events(r, Instant::now(), None).await;
    assert!(rest.iter().filter(|e| e.name == "reply.delta").count() >= 2, "followed live: {rest:?}");
    assert_eq!(format!("{}{}", text_of(&seen), text_of(&rest)), "one two three four five");
    assert_eq!(rest.last().map(|e| (e.id.as_str(), e.name.as_str())), Some(("end", "reply.completed")));

    // A Stop from another request ends the reply where it is, in the first reader's stream too.
    let r = client.post(stream_url(&sessions[2])).header("authorization", &auth_header).json(&json!({"content": "and again"})).send().await.unwrap();
    let mut first = read_events(r, Instant::now(), Some(1)).await;
    let reply_id = first[0].data["reply_id"].as_str().unwrap().to_owned();
    let cancelled: Value = client
        .post(format!("{}/sessions/{}/messages/{reply_id}/cancel", watch.base, sessions[2]))
        .header("authorization", &auth_header)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(cancelled["status"], "cancelled", "{cancelled}");
    let resume_url = format!("{}/sessions/{}/messages/{reply_id}/stream", watch.base, sessions[2]);
    let r = client.get(&resume_url).header("authorization", &auth_header).header("last-event-id", &first.last().unwrap().id).send().await.unwrap();
    first.extend(read_events(r, Instant::now(), None).await);
    assert_eq!(first.last().unwrap().name, "reply.cancelled");
    assert_eq!(text_of(&first), cancelled["content"].as_str().unwrap());
    assert!("one two three four five".starts_with(cancelled["content"].as_str().unwrap()));

    // A session on each backend: the models of both are listed, and each streams from its own.
    let models: Value = client.get(format!("{}/models", watch.base)).header("authorization", &auth_header).send().await.unwrap().json().await.unwrap();
    let names: Vec<&str> = models["items"].as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap()).collect();
    assert_eq!(names, [format!("local/{MODEL}"), format!("second/{MODEL}")]);
    let r = client
        .post(format!("{}/sessions", watch.base))
        .header("authorization", &auth_header)
        .json(&json!({"model": format!("second/{MODEL}")}))
        .send()
        .await
        .unwrap();
    let on_second = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    let r = client.post(stream_url(&on_second)).header("authorization", &auth_header).json(&json!({"content": "count"})).send().await.unwrap();
    let events = read_events(r, Instant::now(), None).await;
    let names: Vec<&str> = events.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["message.created", "reply.thinking.delta", "reply.delta", "reply.delta", "reply.completed"]);
    assert_eq!(text_of(&events), "uno dos");
    assert_eq!(second.requests()[0]["model"], MODEL);

    // A DELETE answers at once and the session is gone for every route; its
    // items are purged after the answer, by the same invocation.
    let deleted = &sessions[0];
    let r = client.delete(format!("{}/sessions/{deleted}", watch.base)).header("authorization", &auth_header).send().await.unwrap();
    assert_eq!(r.status(), 204);
    let r = client.get(format!("{}/sessions/{deleted}/messages", watch.base)).header("authorization", &auth_header).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let r = client.post(stream_url(deleted)).header("authorization", &auth_header).json(&json!({"content": "late"})).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let dynamodb = llmchat::store::dynamo::DynamoStore::client_for(Some(&dynamodb)).await;
    let purged_by = Instant::now() + Duration::from_secs(30);
    loop {
        let left = dynamodb
            .query()
            .table_name(&watch.table)
            .key_condition_expression("PK = :pk")
            .expression_attribute_values(":pk", aws_sdk_dynamodb::types::AttributeValue::S(format!("SESSION#{deleted}")))
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .count;
        if left == 0 {
            break;
        }
        assert!(Instant::now() < purged_by, "{left} items of the deleted session are left");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(watch);
}
