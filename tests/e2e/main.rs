//! End to end through the real local runtime: `cargo lambda watch` with the
//! project's router, DynamoDB Local (from `make test`) and a scripted LLM,
//! spoken to over HTTP like any client would.
//!
//! The watch builds the functions into `target/e2e-watch`, so it never waits
//! on the build lock of the `cargo test` that runs this.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use llmchat::auth;
use llmchat::domain::OwnerId;
use llmchat::store::{ApiKeyRepository, DynamoStore, schema};
use llmchat_tests::scripted_llm::{Script, ScriptedLlm, reply_steps};
use serde_json::{Value, json};

/// How long the first build of the functions under the watch may take.
const READY_TIMEOUT: Duration = Duration::from_secs(900);

struct Watch {
    child: Child,
    base: String,
}

impl Drop for Watch {
    fn drop(&mut self) {
        // The watch and the function processes it started share our process group id.
        let pgid = self.child.id() as i32;
        let _ = Command::new("kill").args(["-TERM", "--", &format!("-{pgid}")]).status();
        std::thread::sleep(Duration::from_millis(500));
        let _ = Command::new("kill").args(["-KILL", "--", &format!("-{pgid}")]).status();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn start_watch(table: &str, dynamodb: &str, ollama: &str) -> Watch {
    use std::os::unix::process::CommandExt;
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let port = free_port();
    let env_file = std::env::temp_dir().join(format!("llmchat-e2e-{port}.env"));
    std::fs::write(
        &env_file,
        format!(
            "LLMCHAT_TABLE_NAME={table}\nDYNAMODB_ENDPOINT={dynamodb}\nOLLAMA_URL={ollama}\nAWS_ACCESS_KEY_ID=local\n\
             AWS_SECRET_ACCESS_KEY=local\nAWS_REGION=us-east-1\nLLMCHAT_LOG_FORMAT=pretty\n"
        ),
    )
    .unwrap();
    let log = std::fs::File::create(std::env::temp_dir().join(format!("llmchat-e2e-{port}.log"))).unwrap();
    let child = Command::new("cargo")
        .current_dir(root)
        .args(["lambda", "watch", "--ignore-changes", "-A", "127.0.0.1", "-P", &port.to_string()])
        .args(["--concurrency", "2", "--env-file"])
        .arg(&env_file)
        .env("CARGO_TARGET_DIR", format!("{root}/target/e2e-watch"))
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .process_group(0)
        .spawn()
        .expect("cargo lambda is installed (make test installs it)");
    let watch = Watch { child, base: format!("http://127.0.0.1:{port}") };
    let client = reqwest::Client::new();
    let started = Instant::now();
    loop {
        if let Ok(r) = client.get(format!("{}/health", watch.base)).send().await {
            if r.status() == 200 {
                return watch;
            }
        }
        assert!(started.elapsed() < READY_TIMEOUT, "cargo lambda watch did not become ready");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Reads an SSE response, noting when each event arrived.
async fn read_events(response: reqwest::Response, started: Instant) -> Vec<(Duration, String, Value)> {
    let mut events = Vec::new();
    let mut buffer = String::new();
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        buffer.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let name = block.lines().find_map(|l| l.strip_prefix("event: "));
            let data = block.lines().find_map(|l| l.strip_prefix("data: "));
            if let (Some(name), Some(data)) = (name, data) {
                events.push((started.elapsed(), name.to_owned(), serde_json::from_str(data).unwrap()));
            }
        }
    }
    events
}

#[tokio::test]
async fn the_local_runtime_streams_incrementally_and_concurrently() {
    let dynamodb = std::env::var("LLMCHAT_TEST_DYNAMODB_ENDPOINT")
        .expect("LLMCHAT_TEST_DYNAMODB_ENDPOINT is not set: run the tests with `make test`");
    let table = format!("e2e-{}", uuid::Uuid::new_v4());
    let store = DynamoStore::new(DynamoStore::client_for(Some(&dynamodb)).await, table.clone());
    schema::create_table(store.client(), &table).await.unwrap();
    let issued = auth::issue_key(OwnerId::parse("e2e").unwrap()).unwrap();
    store.put_api_key(&issued.record).await.unwrap();
    let auth_header = format!("Bearer {}", issued.key);

    // Five tokens, 400 ms apart.
    let llm = ScriptedLlm::start(|_| Script {
        status: 200,
        steps: reply_steps(&["one ", "two ", "three ", "four ", "five"], Duration::from_millis(400)),
    })
    .await;
    let watch = start_watch(&table, &dynamodb, &llm.url).await;
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
    let events = read_events(r, started).await;
    let deltas: Vec<&Duration> = events.iter().filter(|(_, n, _)| n == "reply.delta").map(|(t, _, _)| t).collect();
    assert_eq!(deltas.len(), 5);
    assert!(*deltas[4] - *deltas[0] >= Duration::from_millis(1200), "deltas were buffered: {deltas:?}");
    assert_eq!(events.last().unwrap().1, "reply.completed");

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
            read_events(r, started).await
        }
    };
    let (a, b) = tokio::join!(open(sessions[1].clone()), open(sessions[2].clone()));
    let first_delta = |e: &Vec<(Duration, String, Value)>| e.iter().find(|(_, n, _)| n == "reply.delta").unwrap().0;
    let end = |e: &Vec<(Duration, String, Value)>| e.last().unwrap().0;
    assert!(first_delta(&a) < end(&b) && first_delta(&b) < end(&a), "the streams overlapped");
    let single = *deltas[4];
    assert!(end(&a).max(end(&b)) < single * 2, "two streams took {:?} and {:?}; one alone {single:?}", end(&a), end(&b));
    drop(watch);
}
