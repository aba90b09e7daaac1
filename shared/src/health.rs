//! `GET /health`: is the function alive, and do DynamoDB and the LLM answer?
//! 200 when both do, 503 with the same details when one does not.

use std::future::Future;
use std::time::Instant;

use http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use crate::llm::ChatModel;
use crate::store::StoreProbe;

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok` when every check passed, `degraded` otherwise.
    #[schema(example = "ok")]
    pub status: &'static str,
    pub checks: HealthChecks,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HealthChecks {
    pub dynamodb: Check,
    pub llm: Check,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Check {
    /// `ok` or `unavailable`.
    pub status: &'static str,
    pub latency_ms: u64,
    /// Why the check failed, in general terms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

async fn timed<E: std::fmt::Display>(what: &str, probe: impl Future<Output = Result<(), E>>) -> Check {
    let started = Instant::now();
    let result = probe.await;
    let latency_ms = started.elapsed().as_millis() as u64;
    match result {
        Ok(()) => Check { status: "ok", latency_ms, detail: None },
        Err(err) => {
            tracing::warn!(error = %err, "health: {what} did not answer");
            Check { status: "unavailable", latency_ms, detail: Some(format!("{what} did not answer")) }
        }
    }
}

pub async fn check<S: StoreProbe, M: ChatModel>(store: &S, llm: &M) -> (StatusCode, Health) {
    let (dynamodb, llm) = tokio::join!(timed("DynamoDB", store.probe()), timed("the LLM backend", llm.ping()));
    let healthy = dynamodb.status == "ok" && llm.status == "ok";
    let status = if healthy { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Health { status: if healthy { "ok" } else { "degraded" }, checks: HealthChecks { dynamodb, llm } })
}
