//! The DynamoDB capacity a piece of work used, as DynamoDB reported it: the
//! use case runs the work inside [`metered`], and the store adds what each of
//! its requests consumed to the meter of the task it runs in.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Capacity units, counted in thousandths (DynamoDB reports halves and more).
#[derive(Debug, Default)]
pub struct Meter {
    read_milli: AtomicU64,
    write_milli: AtomicU64,
}

impl Meter {
    pub fn new() -> Arc<Self> {
        Arc::new(Meter::default())
    }

    /// Read and write units so far.
    pub fn units(&self) -> (f64, f64) {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64 / 1000.0;
        (get(&self.read_milli), get(&self.write_milli))
    }

    fn add(&self, read: f64, write: f64) {
        let milli = |u: f64| (u.max(0.0) * 1000.0).round() as u64;
        self.read_milli.fetch_add(milli(read), Ordering::Relaxed);
        self.write_milli.fetch_add(milli(write), Ordering::Relaxed);
    }
}

tokio::task_local! {
    static METER: Arc<Meter>;
}

/// Runs `work` with `meter` counting the capacity its store requests consume.
pub async fn metered<F: Future>(meter: Arc<Meter>, work: F) -> F::Output {
    METER.scope(meter, work).await
}

/// Adds consumed capacity to the current task's meter, if it has one.
pub fn record(read: f64, write: f64) {
    let _ = METER.try_with(|m| m.add(read, write));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_work_inside_the_scope_is_counted() {
        let meter = Meter::new();
        record(5.0, 5.0);
        metered(meter.clone(), async {
            record(0.5, 1.0);
            record(1.0, 2.5);
        })
        .await;
        assert_eq!(meter.units(), (1.5, 3.5));
    }
}
