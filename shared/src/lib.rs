//! LlmChat's shared library: everything the Lambda functions have in common,
//! in layers that only point down (a test, `layers`, keeps it so):
//!
//! 1. [`domain`]: sessions, messages, ids, time, options, error codes, limits;
//! 2. [`config`], [`telemetry`], [`metrics`] and [`tls`]: read once at cold start, logs, metrics
//!    and the HTTPS clients' crypto; and the ports the use cases ask for: [`store`] (repository traits) and [`llm`] (the
//!    [`ChatModel`](llm::ChatModel) trait);
//! 3. use cases: [`sessions`], [`chat`], [`auth`] (API keys), [`health`], [`usage`];
//! 4. adapters: [`store::dynamo`] (DynamoDB) and [`llm::backends`] (Ollama, OpenAI-compatible);
//! 5. [`http`]: serve, extractors, problem+json, SSE, OpenAPI; and [`App`],
//!    which wires one of each together at cold start.

pub mod app;
pub mod auth;
pub mod chat;
pub mod config;
pub mod domain;
pub mod health;
pub mod http;
pub mod llm;
pub mod metrics;
pub mod sessions;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod usage;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use app::App;
pub use http::ApiError;
