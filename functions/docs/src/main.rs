//! Lambda entry point: build everything once, then serve invocations.

use lambda_http::{Error, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let app = llmchat::App::cold_start().await?;
    run(service_fn(|req| docs::handle(&app, req))).await
}
