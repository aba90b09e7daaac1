//! LlmChat's shared library: everything the Lambda functions have in common.
//!
//! - [`domain`]: sessions, owners, ids, timestamps and their validation;
//! - [`store`]: repository traits and their DynamoDB implementation;
//! - [`auth`]: API keys and the caller's identity;
//! - [`http`]: request parsing, JSON and problem+json responses;
//! - [`error`]: the one error type every route maps to problem+json;
//! - [`config`], [`telemetry`], [`limits`]: read once at cold start.

pub mod app;
pub mod auth;
pub mod chat;
pub mod config;
pub mod context;
pub mod domain;
pub mod error;
pub mod health;
pub mod http;
pub mod limits;
pub mod llm;
pub mod openapi;
pub mod sessions;
pub mod store;
pub mod stream;
pub mod telemetry;
#[cfg(any(test, feature = "mocks"))]
pub mod testing;

pub use app::App;
pub use error::ApiError;
