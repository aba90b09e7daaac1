//! `GET /health`: is the function alive, and do its dependencies answer?

use std::time::Instant;

use http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

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

pub async fn check<S: StoreProbe>(store: &S) -> (StatusCode, Health) {
    let started = Instant::now();
    let probe = store.probe().await;
    let latency_ms = started.elapsed().as_millis() as u64;
    let dynamodb = match probe {
        Ok(()) => Check { status: "ok", latency_ms, detail: None },
        Err(err) => {
            tracing::warn!(error = %err, "health: DynamoDB did not answer");
            Check { status: "unavailable", latency_ms, detail: Some("DynamoDB did not answer".to_owned()) }
        }
    };
    let healthy = dynamodb.status == "ok";
    let status = if healthy { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Health { status: if healthy { "ok" } else { "degraded" }, checks: HealthChecks { dynamodb } })
}
