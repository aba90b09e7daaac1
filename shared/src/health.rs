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
    /// Every backend together: `ok` when each answered.
    pub llm: Check,
    /// Each backend by name.
    pub backends: std::collections::BTreeMap<String, Check>,
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
    let started = Instant::now();
    let (dynamodb, pings) = tokio::join!(timed("DynamoDB", store.probe()), llm.ping());
    let latency_ms = started.elapsed().as_millis() as u64;
    let mut backends = std::collections::BTreeMap::new();
    for (name, result) in pings {
        let what = format!("LLM backend `{name}`");
        backends.insert(name, timed(&what, async { result }).await);
    }
    for check in backends.values_mut() {
        check.latency_ms = latency_ms;
    }
    let down: Vec<&str> = backends.iter().filter(|(_, c)| c.status != "ok").map(|(n, _)| n.as_str()).collect();
    let llm = match down.as_slice() {
        [] => Check { status: "ok", latency_ms, detail: None },
        down => Check { status: "unavailable", latency_ms, detail: Some(format!("no answer from {}", down.join(", "))) },
    };
    let healthy = dynamodb.status == "ok" && llm.status == "ok";
    let status = if healthy { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Health { status: if healthy { "ok" } else { "degraded" }, checks: HealthChecks { dynamodb, llm, backends } })
}
