//! Test support shared by the integration test binaries (`api`, `e2e`).

pub mod routes;
pub mod scripted_llm;
