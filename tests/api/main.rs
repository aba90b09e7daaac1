//! Integration tests: the function handlers against a real DynamoDB Local
//! (started by `make test`, found through `LLMCHAT_TEST_DYNAMODB_ENDPOINT`)
//! and a scripted LLM server standing in for Ollama.
//! Every test gets its own table, so tests run in parallel without sharing state.

mod auth;
mod authorizer;
mod bad_input;
mod chat;
mod durable;
mod health;
mod helpers;
mod ollama;
mod openai;
mod routes;
mod schema;
mod sessions;
mod stream;
