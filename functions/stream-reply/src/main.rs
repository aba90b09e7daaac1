//! Lambda entry point with response streaming: build everything once, then
//! serve invocations. The app is shared with the task that generates each reply.

// The streaming runtime nests futures deeper than the default layout limit.
#![recursion_limit = "256"]

use std::sync::Arc;

use lambda_http::{Error, run_with_streaming_response, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let app = Arc::new(llmchat::App::cold_start().await?);
    run_with_streaming_response(service_fn(|req| stream_reply::handle(app.clone(), req))).await
}
