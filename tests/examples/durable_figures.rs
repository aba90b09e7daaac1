//! Figures for durable replies (`make figures-durable`, docs/FIGURES.md): a
//! benchmark, not a test. It asserts nothing about the figures; it only stops
//! when a reply does not stream as the protocol says, since then there is
//! nothing to measure.
//!
//! 1. The follower's lag: a reply streamed through the stream function
//!    (`POST /sessions/{id}/messages/stream`) while a second request follows
//!    it from the start (`GET /sessions/{id}/messages/{reply}/stream`), opened
//!    as soon as `message.created` names the reply. For every delta the
//!    generator's client receives, ending at byte E, the lag is the time until
//!    the follower has received E bytes too.
//! 2. The writes a reply costs: its log parts (one two-item transaction each),
//!    counted in the table after replies of N tokens at a few rates.
//!
//! Everything runs in this process, as the API tests do: the handler of the
//! stream function, DynamoDB Local (`LLMCHAT_TEST_DYNAMODB_ENDPOINT`, a fresh
//! table) and a scripted Ollama on loopback that emits tokens at a set rate.
//! `DURABLE_FIGURES_SHORT=1` runs a small form in a few seconds (CI runs it
//! so that this cannot rot); `DURABLE_FIGURES_COMMAND` is the command the
//! output names (scripts/figures-durable.sh sets it).

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{AttributeValue, Select};
use http_body_util::BodyExt;
use lambda_http::http::{Method, StatusCode};
use llmchat::App;
use llmchat::domain::{OwnerId, Timestamp};
use llmchat::http::invocation::Generations;
use llmchat::store::MessageRepository;
use llmchat::store::dynamo::schema;
use llmchat::testing;
use llmchat_tests::scripted_llm::{Script, ScriptedLlm, Step, done_line, token_line};
use uuid::Uuid;

const OWNER: &str = "owner";
/// Every token is this many bytes (" w" and three digits), so bytes = 5 × tokens.
const TOKEN_BYTES: usize = 5;
/// The shortest pause the scripted model sleeps: tokens due closer together go out in bursts.
const MIN_PAUSE: Duration = Duration::from_millis(20);
/// Items the send's transaction writes before the model is called: the
/// session (last_seq), the user message and the reply's placeholder.
const BEGIN_ITEMS: usize = 3;
/// The final UpdateItem that stores the whole reply.
const FINAL_ITEMS: usize = 1;

/// What one run measures.
struct Plan {
    lag_replies: usize,
    lag_tokens: usize,
    lag_rate: f64,
    write_tokens: usize,
    /// Tokens per second; `None`: all at once.
    write_rates: Vec<Option<f64>>,
}

impl Plan {
    fn from_env() -> (Plan, bool) {
        let short = std::env::var("DURABLE_FIGURES_SHORT").is_ok_and(|v| !v.is_empty() && v != "0");
        let (lag_replies, lag_tokens, write_tokens) = if short { (2, 50, 200) } else { (10, 200, 1000) };
        let write_rates = vec![Some(100.0), Some(1000.0), None];
        (Plan { lag_replies, lag_tokens, lag_rate: 50.0, write_tokens, write_rates }, short)
    }
}

/// A reply as two readers saw it: (byte offset where a delta ends, when it arrived).
struct Observed {
    session: Uuid,
    reply: Uuid,
    generator: Vec<(usize, Instant)>,
    follower: Vec<(usize, Instant)>,
}

impl Observed {
    fn bytes(&self) -> usize {
        self.generator.last().map_or(0, |(end, _)| *end)
    }

    /// Tokens per second as the generator's client received them.
    fn rate(&self, tokens: usize) -> f64 {
        match (self.generator.first(), self.generator.last()) {
            (Some((_, first)), Some((_, last))) if tokens > 1 && last > first => {
                (tokens - 1) as f64 / last.duration_since(*first).as_secs_f64()
            }
            _ => f64::INFINITY,
        }
    }

    /// For every delta of the generator's client: how much later the follower
    /// had its text, in milliseconds (below 0 when the follower was first).
    fn lags(&self) -> Vec<f64> {
        self.generator
            .iter()
            .map(|(end, at)| {
                let (_, seen) = self.follower.iter().find(|(f, _)| f >= end).expect("the follower reached every offset");
                signed_ms(*seen, *at)
            })
            .collect()
    }
}

/// How busy the machine was just before the figures were taken: other work skews them.
struct Load {
    /// The one-minute load average.
    average: Option<String>,
    /// The share of CPU time spent working during the second before the run.
    busy: Option<f64>,
}

impl Load {
    async fn measure() -> Load {
        let average = std::fs::read_to_string("/proc/loadavg").ok().and_then(|l| l.split_whitespace().next().map(str::to_owned));
        let before = cpu_times();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let busy = match (before, cpu_times()) {
            (Some((idle0, total0)), Some((idle1, total1))) if total1 > total0 => {
                Some(1.0 - (idle1 - idle0) as f64 / (total1 - total0) as f64)
            }
            _ => None,
        };
        Load { average, busy }
    }
}

/// (idle, total) CPU time so far, in clock ticks, from /proc/stat (idle counts I/O wait).
fn cpu_times() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let times: Vec<u64> = stat.lines().next()?.split_whitespace().skip(1).filter_map(|t| t.parse().ok()).collect();
    let idle = times.get(3)? + times.get(4).copied().unwrap_or(0);
    Some((idle, times.iter().sum()))
}

struct Bench {
    app: Arc<App>,
    key: String,
}

#[tokio::main]
async fn main() {
    if std::env::var_os(testing::ENDPOINT_VAR).is_none() {
        eprintln!(
            "{} is not set: run scripts/figures-durable.sh (or make figures-durable), which starts DynamoDB Local",
            testing::ENDPOINT_VAR
        );
        std::process::exit(2);
    }
    let (plan, short) = Plan::from_env();
    let load = Load::measure().await;

    // One model for the whole run: each request says how many tokens at what rate.
    let llm = ScriptedLlm::start(|request| {
        let ask = request["messages"].as_array().and_then(|m| m.last()).and_then(|m| m["content"].as_str()).unwrap_or("");
        let (tokens, rate) = parse_ask(ask);
        Script { status: 200, steps: paced_steps(tokens, rate) }
    })
    .await;
    let app = Arc::new(testing::app_on_fresh_table(&[("OLLAMA_URL", &llm.url)]).await);
    let key = testing::issue_key(&app.store, &OwnerId::parse(OWNER).unwrap()).await;
    let bench = Bench { app, key };
    let round_trip = bench.get_item_round_trip().await;

    // Warm up (connections, the first table reads), not counted.
    bench.reply(20, Some(200.0)).await;

    let mut lags = Vec::new();
    let mut rates = Vec::new();
    for _ in 0..plan.lag_replies {
        let seen = bench.reply(plan.lag_tokens, Some(plan.lag_rate)).await;
        lags.extend(seen.lags());
        rates.push(seen.rate(plan.lag_tokens));
    }
    let mut writes = Vec::new();
    for rate in &plan.write_rates {
        let seen = bench.reply(plan.write_tokens, *rate).await;
        let appends = bench.log_parts(&seen).await;
        writes.push(WriteRun { rate: *rate, measured: seen.rate(plan.write_tokens), bytes: seen.bytes(), appends, lags: seen.lags() });
    }

    print_report(&plan, short, load, round_trip, &lags, &rates, &writes);
}

/// The user message names the reply it wants: `<tokens> <rate or "instant">`.
fn ask(tokens: usize, rate: Option<f64>) -> String {
    format!("{tokens} {}", rate.map_or("instant".to_owned(), |r| r.to_string()))
}

fn parse_ask(text: &str) -> (usize, Option<f64>) {
    let mut words = text.split_whitespace();
    let tokens = words.next().and_then(|w| w.parse().ok()).unwrap_or(1);
    let rate = words.next().and_then(|w| w.parse().ok());
    (tokens, rate)
}

/// `tokens` token lines, at `rate` per second (in bursts when they are due
/// less than [`MIN_PAUSE`] apart), then the final line.
fn paced_steps(tokens: usize, rate: Option<f64>) -> Vec<Step> {
    let interval = rate.map_or(Duration::ZERO, |r| Duration::from_secs_f64(1.0 / r));
    // Tokens per pause; the small epsilon keeps 50 tokens/s at one token per 20 ms.
    let burst = rate.map_or(1, |r| (MIN_PAUSE.as_secs_f64() * r - 1e-6).ceil().max(1.0) as usize);
    let mut steps = Vec::new();
    for i in 0..tokens {
        if i % burst == 0 && !interval.is_zero() {
            steps.push(Step::Sleep(interval * burst as u32));
        }
        steps.push(Step::Bytes(token_line(&format!(" w{:03}", i % 1000))));
    }
    steps.push(Step::Bytes(done_line()));
    steps
}

impl Bench {
    /// Streams one reply in a new session, followed from the start by a second reader.
    async fn reply(&self, tokens: usize, rate: Option<f64>) -> Observed {
        let session = testing::new_session(&*self.app, OWNER).await.id;
        let body = serde_json::json!({ "content": ask(tokens, rate) }).to_string();
        let path = format!("/sessions/{session}/messages/stream");
        let request = testing::request(Method::POST, &path, Some(&self.key), Some(&body));
        let response = stream_reply::handle(self.app.clone(), Generations::default(), request).await.expect("a response");
        assert_eq!(response.status(), StatusCode::OK, "the stream starts");

        let mut generator = Vec::new();
        let mut follower = None;
        let mut reply = None;
        read_events(response.into_body(), |event, at| match event.name.as_str() {
            "message.created" => {
                let id: Uuid = event.data["reply_id"].as_str().and_then(|s| s.parse().ok()).expect("a reply id");
                reply = Some(id);
                follower = Some(tokio::spawn(follow(self.app.clone(), self.key.clone(), session, id)));
            }
            "reply.delta" => generator.push((event.position(), at)),
            _ => {}
        })
        .await;
        let follower = follower.expect("message.created came first").await.expect("the follower ran");
        let seen = Observed { session, reply: reply.unwrap(), generator, follower };
        let (g, f) = (seen.bytes(), seen.follower.last().map_or(0, |(end, _)| *end));
        assert_eq!(g, tokens * TOKEN_BYTES, "the generator's client got the whole reply");
        assert_eq!(f, g, "the follower got the whole reply");
        seen
    }

    /// How many log parts (appends) the reply was written in.
    async fn log_parts(&self, seen: &Observed) -> usize {
        let owner = OwnerId::parse(OWNER).unwrap();
        let reply = self.app.store.find_message(&owner, seen.session, seen.reply).await.unwrap().expect("the stored reply");
        let mut count = 0;
        let mut start = None;
        loop {
            let page = self
                .app
                .store
                .client()
                .query()
                .table_name(self.app.store.table())
                .key_condition_expression("PK = :pk AND begins_with(SK, :log)")
                .expression_attribute_values(":pk", AttributeValue::S(schema::session_pk(seen.session)))
                .expression_attribute_values(":log", AttributeValue::S(schema::log_prefix(reply.seq)))
                .select(Select::Count)
                .set_exclusive_start_key(start)
                .send()
                .await
                .expect("count the reply's log parts");
            count += page.count() as usize;
            start = page.last_evaluated_key;
            if start.is_none() {
                return count;
            }
        }
    }

    /// Median time of a GetItem (of an item that does not exist) against this DynamoDB Local.
    async fn get_item_round_trip(&self) -> Duration {
        let mut times = Vec::new();
        for _ in 0..30 {
            let started = Instant::now();
            self.app
                .store
                .client()
                .get_item()
                .table_name(self.app.store.table())
                .key(schema::PK, AttributeValue::S("PROBE".to_owned()))
                .key(schema::SK, AttributeValue::S("PROBE".to_owned()))
                .send()
                .await
                .expect("a GetItem");
            times.push(started.elapsed());
        }
        times.sort();
        times[times.len() / 2]
    }
}

/// A second reader: the reply from its start, live to its end.
async fn follow(app: Arc<App>, key: String, session: Uuid, reply: Uuid) -> Vec<(usize, Instant)> {
    let path = format!("/sessions/{session}/messages/{reply}/stream");
    let request = testing::request(Method::GET, &path, Some(&key), None);
    let response = stream_reply::handle(app, Generations::default(), request).await.expect("a response");
    assert_eq!(response.status(), StatusCode::OK, "the follower's stream starts");
    let mut seen = Vec::new();
    read_events(response.into_body(), |event, at| {
        if event.name == "reply.delta" {
            seen.push((event.position(), at));
        }
    })
    .await;
    seen
}

struct Event {
    id: String,
    name: String,
    data: serde_json::Value,
}

impl Event {
    fn position(&self) -> usize {
        self.id.parse().unwrap_or_else(|_| panic!("a delta's id is a byte offset, not {:?}", self.id))
    }
}

/// Reads an SSE body as it arrives, handing each event and when its bytes
/// came to `on_event`, until the last event (`id: end`).
async fn read_events(mut body: lambda_runtime::streaming::Body, mut on_event: impl FnMut(Event, Instant)) {
    let mut buffer = String::new();
    loop {
        let frame = body.frame().await.expect("the stream ends with its last event").expect("a frame");
        let at = Instant::now();
        let Some(data) = frame.data_ref() else { continue };
        buffer.push_str(std::str::from_utf8(data).expect("UTF-8 frames"));
        while let Some(split) = buffer.find("\n\n") {
            let block: String = buffer.drain(..split + 2).collect();
            let field = |name: &str| block.lines().find_map(|l| l.strip_prefix(name)).map(str::to_owned);
            let (Some(id), Some(name), Some(data)) = (field("id: "), field("event: "), field("data: ")) else {
                continue; // a keep-alive comment
            };
            let data: serde_json::Value = serde_json::from_str(&data).expect("JSON data");
            let last = id == "end";
            if last && name != "reply.completed" {
                panic!("the reply did not complete: {name} {data}");
            }
            on_event(Event { id, name, data }, at);
            if last {
                return;
            }
        }
    }
}

/// `later - earlier` in milliseconds, negative when `later` came first.
fn signed_ms(later: Instant, earlier: Instant) -> f64 {
    match later.checked_duration_since(earlier) {
        Some(d) => d.as_secs_f64() * 1000.0,
        None => -(earlier.duration_since(later).as_secs_f64() * 1000.0),
    }
}

/// The value at quantile `q` (nearest rank) of `sorted`, which is not empty.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn sorted(values: &[f64]) -> Vec<f64> {
    let mut values = values.to_vec();
    values.sort_by(f64::total_cmp);
    values
}

fn ms(value: f64) -> String {
    format!("{value:.0} ms")
}

fn rate_label(rate: Option<f64>) -> String {
    rate.map_or("instant".to_owned(), |r| format!("{r:.0} tokens/s"))
}

fn per_thousand(count: usize, tokens: usize) -> String {
    format!("{:.1}", count as f64 * 1000.0 / tokens as f64)
}

/// One reply of the writes table.
struct WriteRun {
    /// The model's rate, tokens per second; `None`: all at once.
    rate: Option<f64>,
    /// The rate the generator's client saw.
    measured: f64,
    bytes: usize,
    appends: usize,
    lags: Vec<f64>,
}

fn print_report(
    plan: &Plan,
    short: bool,
    load: Load,
    round_trip: Duration,
    lags: &[f64],
    rates: &[f64],
    writes: &[WriteRun],
) {
    let command = std::env::var("DURABLE_FIGURES_COMMAND")
        .unwrap_or_else(|_| "cargo run -q -p llmchat-tests --example durable_figures".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let date = Timestamp::now().to_string().chars().take(10).collect::<String>();
    println!("Measured on {date}, {cores} cores, with `{command}`{}.", if short { " (short form)" } else { "" });
    let busy = load.busy.map_or("unknown".to_owned(), |b| format!("{:.0}%", b * 100.0));
    println!(
        "The CPUs were {busy} busy in the second before it started (load average {}); \
         DynamoDB Local's GetItem round trip here: {:.1} ms (median of 30).",
        load.average.as_deref().unwrap_or("unknown"),
        round_trip.as_secs_f64() * 1000.0
    );
    println!();

    let all = sorted(lags);
    let mean = all.iter().sum::<f64>() / all.len() as f64;
    let measured = rates.iter().sum::<f64>() / rates.len().max(1) as f64;
    println!(
        "Follower's lag: {} replies of {} tokens at {:.0} tokens/s ({measured:.1} measured), {} deltas.",
        plan.lag_replies,
        plan.lag_tokens,
        plan.lag_rate,
        all.len()
    );
    println!();
    println!("| p50 | p95 | p99 | max | mean |");
    println!("|---|---|---|---|---|");
    println!(
        "| {} | {} | {} | {} | {} |",
        ms(quantile(&all, 0.50)),
        ms(quantile(&all, 0.95)),
        ms(quantile(&all, 0.99)),
        ms(quantile(&all, 1.0)),
        ms(mean)
    );
    println!();

    let tokens = plan.write_tokens;
    println!(
        "Writes of a reply of {tokens} tokens ({} bytes): appends are its log parts (one TransactWriteItems of 2 items each); \
         item writes add the send's transaction ({BEGIN_ITEMS} items) and the final UpdateItem.",
        tokens * TOKEN_BYTES
    );
    println!();
    println!("| model's rate | measured | bytes | appends | appends per 1,000 tokens | item writes | item writes per 1,000 tokens | follower's lag p50 / max |");
    println!("|---|---|---|---|---|---|---|---|");
    for run in writes {
        let items = BEGIN_ITEMS + 2 * run.appends + FINAL_ITEMS;
        let lags = sorted(&run.lags);
        let measured = match run.rate {
            Some(_) if run.measured.is_finite() => format!("{:.0} tokens/s", run.measured),
            _ => "-".to_owned(),
        };
        println!(
            "| {} | {measured} | {} | {} | {} | {items} | {} | {} / {} |",
            rate_label(run.rate),
            run.bytes,
            run.appends,
            per_thousand(run.appends, tokens),
            per_thousand(items, tokens),
            ms(quantile(&lags, 0.50)),
            ms(quantile(&lags, 1.0))
        );
    }
}
