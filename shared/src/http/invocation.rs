//! Generation outlives its reader on Lambda too.
//!
//! Lambda freezes an execution environment between invocations: work left in
//! a task after the runtime has asked for its next invocation is suspended
//! until some later request thaws it. A streamed invocation ends when its
//! response body ends, or earlier when the Runtime API stops taking the body
//! (the client is gone). So the stream function counts the generations it
//! runs ([`Generations`]), and its runtime carries a layer
//! ([`Generations::layer`]) that holds every invocation open until no
//! generation is running: the runtime asks for its next invocation only after
//! the reply is stored, whatever happened to the response body. A body that
//! could not be delivered is logged, not fatal: the runtime goes on.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use lambda_runtime::tower::{Layer, Service};
use lambda_runtime::{Error, LambdaInvocation};
use tokio::sync::Notify;

/// The generations this instance is running (and any other work that must
/// end before its invocation does, such as a deleted session's purge).
#[derive(Clone, Default)]
pub struct Generations {
    state: Arc<(AtomicUsize, Notify)>,
}

/// Counts one generation until dropped (also when its task panics).
struct Running(Generations);

impl Drop for Running {
    fn drop(&mut self) {
        let (count, ended) = &*self.0.state;
        if count.fetch_sub(1, Ordering::AcqRel) == 1 {
            ended.notify_waiters();
        }
    }
}

impl Generations {
    /// Runs `work` in a task of its own, counted until it ends.
    pub fn spawn(&self, work: impl Future<Output = ()> + Send + 'static) {
        self.state.0.fetch_add(1, Ordering::AcqRel);
        let running = Running(self.clone());
        tokio::spawn(async move {
            let _running = running;
            work.await;
        });
    }

    /// How many are running now.
    pub fn running(&self) -> usize {
        self.state.0.load(Ordering::Acquire)
    }

    /// Returns once none is running.
    pub async fn idle(&self) {
        loop {
            let ended = self.state.1.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            if self.running() == 0 {
                return;
            }
            ended.await;
        }
    }

    /// The runtime layer that ends an invocation only once no generation runs.
    pub fn layer(&self) -> WaitForGenerations {
        WaitForGenerations(self.clone())
    }
}

/// Serves invocations with response streaming until the runtime stops; each
/// invocation lasts until the generations it started (through the
/// [`Generations`] `handle` is given) have ended.
pub async fn run_streaming<F, Fut>(handle: F) -> Result<(), lambda_http::Error>
where
    F: Fn(Generations, lambda_http::Request) -> Fut + Send + 'static,
    Fut: Future<Output = Result<lambda_http::Response<lambda_runtime::streaming::Body>, lambda_http::Error>> + Send + 'static,
{
    let generations = Generations::default();
    let serving = generations.clone();
    let handler = lambda_http::service_fn(move |req| handle(serving.clone(), req));
    lambda_http::streaming_runtime(handler)
        .layer(generations.layer())
        .layer(lambda_runtime::layers::TracingLayer::new())
        .run()
        .await
}

/// Serves invocations with buffered responses until the runtime stops; as
/// with [`run_streaming`], each invocation lasts until the work `handle` left
/// running after its response (through the [`Generations`] it is given) has
/// ended: the sessions function purges a deleted session's items that way.
pub async fn run_buffered<F, Fut>(handle: F) -> Result<(), lambda_http::Error>
where
    F: Fn(Generations, lambda_http::Request) -> Fut + Send + 'static,
    Fut: Future<Output = Result<lambda_http::Response<lambda_http::Body>, lambda_http::Error>> + Send + 'static,
{
    let generations = Generations::default();
    let serving = generations.clone();
    let handler = lambda_http::service_fn(move |req| handle(serving.clone(), req));
    lambda_runtime::Runtime::new(lambda_http::Adapter::from(handler))
        .layer(generations.layer())
        .layer(lambda_runtime::layers::TracingLayer::new())
        .run()
        .await
}

/// See [`Generations::layer`].
#[derive(Clone)]
pub struct WaitForGenerations(Generations);

impl<S> Layer<S> for WaitForGenerations {
    type Service = WaitingService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        WaitingService { inner, generations: self.0.clone() }
    }
}

pub struct WaitingService<S> {
    inner: S,
    generations: Generations,
}

impl<S> Service<LambdaInvocation> for WaitingService<S>
where
    S: Service<LambdaInvocation, Response = (), Error = Error>,
    S::Future: 'static,
{
    type Response = ();
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<(), Error>>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, invocation: LambdaInvocation) -> Self::Future {
        let answered = self.inner.call(invocation);
        let generations = self.generations.clone();
        Box::pin(async move {
            if let Err(e) = answered.await {
                tracing::warn!(error = %e, "the response could not be delivered; the reply is still stored");
            }
            generations.idle().await;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::Generations;

    #[tokio::test(start_paused = true)]
    async fn idle_waits_for_every_generation() {
        let generations = Generations::default();
        generations.idle().await;
        for secs in [1, 3] {
            generations.spawn(tokio::time::sleep(Duration::from_secs(secs)));
        }
        assert_eq!(generations.running(), 2);
        let started = tokio::time::Instant::now();
        generations.idle().await;
        assert_eq!(started.elapsed(), Duration::from_secs(3));
        assert_eq!(generations.running(), 0);
    }
}
