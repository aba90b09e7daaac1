//! Integration tests: the function handlers against a real DynamoDB Local
//! (started by `make test`, found through `LLMCHAT_TEST_DYNAMODB_ENDPOINT`).
//! Every test gets its own table, so tests run in parallel without sharing state.

mod auth;
mod bad_input;
mod chat;
mod health;
mod helpers;
mod schema;
mod scripted_llm;
mod sessions;
mod stream;
