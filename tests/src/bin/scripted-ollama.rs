//! A stand-in for Ollama for runs of the whole local stack (the contract
//! test, the client tests): answers `/api/tags` with one model, and
//! `/api/chat` for that model with a short streamed reply, or a slow one (50
//! tokens, 100 ms apart) when the last message contains `[slow]`, for tests
//! that rejoin or stop a reply, or the message itself, `[echo]` taken out,
//! when it contains `[echo]` (the chat page's tests: Markdown and markup in
//! a reply); any other model is a 404, as Ollama answers.
//!
//! `[soak N FAULT]` (the soak, scripts/soak.py) asks for N tokens `w0 `,
//! `w1 `, … with a fault after half of them: `none`, `cut` (the connection
//! dropped), `error` (an error line), `hang` (silence for `SOAK_HANG`, past
//! the soak stack's idle timeout), `slow` (20 ms between tokens throughout).
//! The soak's auditor knows from the marker what the model sent.
//!
//! `[bench N RATE]` (the benchmark, scripts/bench.py) asks for N tokens `w0 `,
//! `w1 `, … paced at RATE tokens a second from the first one, which goes out
//! at once: token i is written i/RATE seconds after the response began, so a
//! reader can tell how late each arrives. RATE 0: no pause at all.
//! Prints its base URL on the first line of stdout.
//!
//! `scripted-ollama [PORT]` (default: a free port)

use std::time::Duration;

use llmchat_tests::scripted_llm::{Dialect, MODEL, Script, ScriptedLlm, Step, reply_steps};
use serde_json::Value;

/// The marker that asks for a slow reply.
const SLOW: &str = "[slow]";
/// The marker that asks for the message back as the reply.
const ECHO: &str = "[echo]";
/// The soak's marker: `[soak N FAULT]`.
const SOAK: &str = "[soak ";
/// The benchmark's marker: `[bench N RATE]`.
const BENCH: &str = "[bench ";
/// Silence of a `hang` fault: longer than the soak stack's idle timeout.
const SOAK_HANG: Duration = Duration::from_secs(4);

/// The reply the soak's marker in `message` asks for, if it has one.
fn soak(message: &str) -> Option<Script> {
    let spec = &message[message.find(SOAK)? + SOAK.len()..];
    let spec = &spec[..spec.find(']')?];
    let (count, fault) = spec.split_once(' ')?;
    let count: usize = count.parse().ok()?;
    let pause = if fault == "slow" { Duration::from_millis(20) } else { Duration::ZERO };
    let mut steps = Vec::new();
    for i in 0..count {
        if i == count / 2 {
            match fault {
                "cut" => return Some(Script { status: 200, steps: [steps, vec![Step::Cut]].concat() }),
                "error" => steps.push(Step::ErrorLine("the soak's injected error".into())),
                "hang" => steps.push(Step::Sleep(SOAK_HANG)),
                _ => {}
            }
            if fault == "error" {
                return Some(Script { status: 200, steps });
            }
        }
        if !pause.is_zero() {
            steps.push(Step::Sleep(pause));
        }
        steps.push(Step::Token(format!("w{i} ")));
    }
    steps.push(Step::Done);
    Some(Script { status: 200, steps })
}

/// The paced reply the benchmark's marker in `message` asks for, if it has one.
fn bench(message: &str) -> Option<Script> {
    let spec = &message[message.find(BENCH)? + BENCH.len()..];
    let spec = &spec[..spec.find(']')?];
    let (count, rate) = spec.split_once(' ')?;
    let count: u32 = count.parse().ok()?;
    let rate: f64 = rate.parse().ok().filter(|r: &f64| r.is_finite() && *r >= 0.0)?;
    let mut steps = Vec::with_capacity(2 * count as usize + 1);
    for i in 0..count {
        if rate > 0.0 && i > 0 {
            steps.push(Step::Until(Duration::from_secs_f64(f64::from(i) / rate)));
        }
        steps.push(Step::Token(format!("w{i} ")));
    }
    steps.push(Step::Done);
    Some(Script { status: 200, steps })
}

fn script(request: &Value) -> Script {
    if request["model"] != MODEL {
        let body = format!(r#"{{"error":"model '{}' not found"}}"#, request["model"].as_str().unwrap_or_default());
        return Script { status: 404, steps: vec![Step::Bytes(body.into_bytes())] };
    }
    let last = request["messages"].as_array().and_then(|m| m.last()).and_then(|m| m["content"].as_str()).unwrap_or_default();
    if let Some(script) = soak(last).or_else(|| bench(last)) {
        return script;
    }
    if last.contains(SLOW) {
        let tokens: Vec<String> = (0..50).map(|i| format!("word{i} ")).collect();
        let refs: Vec<&str> = tokens.iter().map(String::as_str).collect();
        return Script { status: 200, steps: reply_steps(&refs, Duration::from_millis(100)) };
    }
    if last.contains(ECHO) {
        // In pieces of a few characters, as a model's tokens would cut it.
        let chars: Vec<char> = last.replace(ECHO, "").trim().chars().collect();
        let pieces: Vec<String> = chars.chunks(4).map(|c| c.iter().collect()).collect();
        let refs: Vec<&str> = pieces.iter().map(String::as_str).collect();
        return Script { status: 200, steps: reply_steps(&refs, Duration::from_millis(2)) };
    }
    Script { status: 200, steps: reply_steps(&["This ", "is ", "a ", "scripted ", "reply."], Duration::from_millis(5)) }
}

#[tokio::main]
async fn main() {
    let port: u16 = std::env::args().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    let llm = ScriptedLlm::start_on(port, Dialect::Ollama, script).await;
    println!("{}", llm.url);
    std::future::pending::<()>().await;
}
