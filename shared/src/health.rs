//! `GET /health`: is the function alive, and do DynamoDB and the LLM answer?
//! 200 when both do, 503 when one does not.
//!
//! Anyone may ask, so asking must not load the backends: an instance probes
//! DynamoDB and the backends at most once per [`HEALTH_CACHE_TTL`], through
//! [`HealthCache`], and answers every caller from its last result. Callers
//! without a key get the summary (`status` alone); a key holder also gets the
//! checks, from the same cached result.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use crate::llm::ChatModel;
use crate::store::StoreProbe;

/// How long an instance answers `/health` from its last probe.
pub const HEALTH_CACHE_TTL: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Health {
    /// `ok` when every check passed, `degraded` otherwise.
    #[schema(example = "ok")]
    pub status: &'static str,
    /// Each check: only for a caller with an API key.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub checks: Option<HealthChecks>,
}

impl Health {
    /// 200 when healthy, 503 when degraded.
    pub fn status_code(&self) -> StatusCode {
        if self.status == "ok" { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }
    }

    /// The answer for a caller without a key: the status, no checks.
    pub fn summary(&self) -> Health {
        Health { status: self.status, checks: None }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HealthChecks {
    pub dynamodb: Check,
    /// Every backend together: `ok` when each answered.
    pub llm: Check,
    /// Each backend by name.
    pub backends: std::collections::BTreeMap<String, Check>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
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
    let health = Health { status: if healthy { "ok" } else { "degraded" }, checks: Some(HealthChecks { dynamodb, llm, backends }) };
    (health.status_code(), health)
}

/// The last health report of this instance, refreshed at most once per
/// [`HEALTH_CACHE_TTL`]. One probe at a time: callers arriving while it runs
/// wait for it and share its result, rather than each probing.
#[derive(Default)]
pub struct HealthCache {
    last: tokio::sync::Mutex<Option<(tokio::time::Instant, Arc<Health>)>>,
}

impl HealthCache {
    /// The full report (with checks), probed now or up to [`HEALTH_CACHE_TTL`] ago.
    pub async fn report<S: StoreProbe, M: ChatModel>(&self, store: &S, llm: &M) -> Arc<Health> {
        let mut last = self.last.lock().await;
        if let Some((at, report)) = last.as_ref()
            && at.elapsed() < HEALTH_CACHE_TTL
        {
            return report.clone();
        }
        let (_, fresh) = check(store, llm).await;
        let fresh = Arc::new(fresh);
        *last = Some((tokio::time::Instant::now(), fresh.clone()));
        fresh
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::store::StoreError;
    use crate::testing::ScriptedModel;

    /// A store whose probe takes 100 ms and is counted.
    #[derive(Default)]
    struct CountedStore(AtomicUsize);

    impl StoreProbe for CountedStore {
        async fn probe(&self) -> Result<(), StoreError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(100)).await;
            Ok(())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn callers_during_a_probe_share_it_and_the_result_lasts_the_ttl() {
        let (cache, store, llm) = (HealthCache::default(), CountedStore::default(), ScriptedModel::default());
        let reports = futures::future::join_all((0..20).map(|_| cache.report(&store, &llm))).await;
        assert_eq!(store.0.load(Ordering::SeqCst), 1, "one probe for twenty concurrent callers");
        assert!(reports.iter().all(|r| Arc::ptr_eq(r, &reports[0]) && r.status == "ok"));

        tokio::time::advance(HEALTH_CACHE_TTL - Duration::from_millis(200)).await;
        cache.report(&store, &llm).await;
        assert_eq!(store.0.load(Ordering::SeqCst), 1, "still fresh");

        tokio::time::advance(Duration::from_millis(200)).await;
        let renewed = cache.report(&store, &llm).await;
        assert_eq!(store.0.load(Ordering::SeqCst), 2, "probed again once the TTL passed");
        assert!(!Arc::ptr_eq(&renewed, &reports[0]));
    }

    #[tokio::test]
    async fn the_summary_has_the_status_and_no_checks() {
        let (_, full) = check(&CountedStore::default(), &ScriptedModel::default()).await;
        assert_eq!(full.status_code(), StatusCode::OK);
        assert!(full.checks.as_ref().is_some_and(|c| c.backends.contains_key("scripted")));
        let summary = serde_json::to_value(full.summary()).unwrap();
        assert_eq!(summary, serde_json::json!({"status": "ok"}));
        let degraded = Health { status: "degraded", checks: None };
        assert_eq!(degraded.status_code(), StatusCode::SERVICE_UNAVAILABLE);
    }
}
