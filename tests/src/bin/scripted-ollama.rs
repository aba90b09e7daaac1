//! A stand-in for Ollama for runs of the whole local stack (the contract
//! test): answers `/api/chat` with a short streamed reply and `/api/tags`
//! with one model. Prints its base URL on the first line of stdout.
//!
//! `scripted-ollama [PORT]` (default: a free port)

use std::time::Duration;

use llmchat_tests::scripted_llm::{Script, ScriptedLlm, reply_steps};

#[tokio::main]
async fn main() {
    let port: u16 = std::env::args().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    let llm = ScriptedLlm::start_on(port, |_| Script {
        status: 200,
        steps: reply_steps(&["This ", "is ", "a ", "scripted ", "reply."], Duration::from_millis(5)),
    })
    .await;
    println!("{}", llm.url);
    std::future::pending::<()>().await;
}
