//! A stand-in for Ollama for runs of the whole local stack (the contract
//! test, the client tests): answers `/api/tags` with one model, and
//! `/api/chat` for that model with a short streamed reply, or a slow one (50
//! tokens, 100 ms apart) when the last message contains `[slow]`, for tests
//! that rejoin or stop a reply, or the message itself, `[echo]` taken out,
//! when it contains `[echo]` (the chat page's tests: Markdown and markup in
//! a reply); any other model is a 404, as Ollama answers.
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

fn script(request: &Value) -> Script {
    if request["model"] != MODEL {
        let body = format!(r#"{{"error":"model '{}' not found"}}"#, request["model"].as_str().unwrap_or_default());
        return Script { status: 404, steps: vec![Step::Bytes(body.into_bytes())] };
    }
    let last = request["messages"].as_array().and_then(|m| m.last()).and_then(|m| m["content"].as_str()).unwrap_or_default();
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
