//! Lambda entry point: build everything once, then serve invocations, each
//! lasting until the purge of a session it deleted has run.

use std::sync::Arc;

use lambda_http::Error;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let app = Arc::new(llmchat::App::cold_start().await?);
    llmchat::http::invocation::run_buffered(move |generations, req| sessions::handle(app.clone(), generations, req)).await
}
