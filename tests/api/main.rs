//! Integration tests: the function handlers against a real DynamoDB Local
//! (started by `make test`, found through `LLMCHAT_TEST_DYNAMODB_ENDPOINT`)
//! and a scripted LLM server standing in for Ollama or an OpenAI-compatible server.
//! Every test gets its own table, so tests run in parallel without sharing state.

/// Runs each listed `async fn name(d: Dialect)` as two tests, one per
/// dialect of the scripted model server: one suite, both backends.
#[macro_export]
macro_rules! both_dialects {
    ($($name:ident),* $(,)?) => {
        mod ollama_dialect {
            $( #[tokio::test] async fn $name() { super::$name(llmchat_tests::scripted_llm::Dialect::Ollama).await } )*
        }
        mod openai_dialect {
            $( #[tokio::test] async fn $name() { super::$name(llmchat_tests::scripted_llm::Dialect::OpenAi).await } )*
        }
    };
}

mod auth;
mod backends;
mod authorizer;
mod bad_input;
mod chat;
mod context;
mod cors;
mod dashboard;
mod durable;
mod health;
mod helpers;
mod local_dynamodb;
mod openai;
mod quotas;
mod reasoning;
mod routes;
mod schema;
mod sessions;
mod stream;
