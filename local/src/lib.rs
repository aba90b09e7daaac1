//! The local Lambda runtime's parts other crates use: the router table
//! (the integration tests route their requests with it too).

pub mod routes;
