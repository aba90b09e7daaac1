//! Lambda entry point with response streaming: build everything once, then
//! serve invocations, each lasting until the replies it started are stored.

// The streaming runtime nests futures deeper than the default layout limit.
#![recursion_limit = "256"]

use std::sync::Arc;

use lambda_http::Error;

#[tokio::main]
async fn main() -> Result<(), Error> {
    openai::run(Arc::new(llmchat::App::cold_start().await?)).await
}
