//! The HTTP layer, on top of everything else: it alone knows statuses,
//! headers and problem+json. Functions route a request here, call a use case,
//! and hand back what these helpers build.
//!
//! - [`serve`]: the entry point every function wraps its routing in;
//! - [`cors`]: preflights and the headers browsers on other origins need;
//! - [`auth`]: the caller's identity from a request;
//! - [`extract`] and [`respond`]: reading requests and building responses;
//! - [`error`]: `ApiError`, the mapping of every use-case error to a status;
//! - [`views`]: sessions and messages as the API shows them;
//! - [`sse`]: the reply stream protocol; [`invocation`]: a Lambda invocation
//!   lasts until the replies it started are stored;
//! - [`openapi`]: the API document, generated from these types.

pub mod auth;
pub mod cors;
pub mod extract;
pub mod invocation;
pub mod openai;
pub mod openapi;
pub mod error;
pub mod respond;
mod serve;
pub mod sse;
pub mod views;

pub use extract::*;
pub use error::{ApiError, Problem};
pub use respond::*;
pub use serve::{record_session, request_id, serve, serve_as};
