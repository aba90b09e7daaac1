//! Invocations between the two sides of the local runtime: the API side
//! queues one per request, a function instance takes it from the Runtime
//! API, and its outcome goes back to the waiting request.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::sync::{mpsc, oneshot};

/// One request for a function.
pub struct Invocation {
    pub id: String,
    /// The API Gateway event, as JSON.
    pub event: Bytes,
    pub reply: oneshot::Sender<Outcome>,
}

/// What became of an invocation.
pub enum Outcome {
    /// A whole response: API Gateway's response object, as JSON.
    Buffered(Bytes),
    /// A streamed response: its metadata prelude (JSON), then its body as
    /// it comes. An `Err` item means the function's stream broke off.
    Streaming { prelude: Bytes, body: mpsc::Receiver<Result<Bytes, String>> },
    /// The function failed: reported an error, or its instance ended.
    Failed(String),
}

/// The invocations waiting for a function's instances: taken in order, by
/// whichever instance asks first.
pub struct Queue {
    tx: mpsc::UnboundedSender<Invocation>,
    rx: tokio::sync::Mutex<mpsc::UnboundedReceiver<Invocation>>,
}

impl Default for Queue {
    fn default() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Self { tx, rx: tokio::sync::Mutex::new(rx) }
    }
}

impl Queue {
    pub fn push(&self, invocation: Invocation) {
        // The receiver lives as long as the queue: sending cannot fail.
        let _ = self.tx.send(invocation);
    }

    /// The next invocation. Safe to cancel: an invocation is either still
    /// queued or returned, never dropped on the way.
    pub async fn take(&self) -> Option<Invocation> {
        self.rx.lock().await.recv().await
    }
}

/// The invocations instances have taken and not answered yet, by request
/// id, with the instance that took each.
#[derive(Default)]
pub struct InFlight(Mutex<HashMap<String, (String, oneshot::Sender<Outcome>)>>);

impl InFlight {
    pub fn insert(&self, id: String, instance: &str, reply: oneshot::Sender<Outcome>) {
        self.0.lock().unwrap().insert(id, (instance.to_owned(), reply));
    }

    /// The waiting request of invocation `id`, if it is still in flight.
    pub fn take(&self, id: &str) -> Option<oneshot::Sender<Outcome>> {
        self.0.lock().unwrap().remove(id).map(|(_, reply)| reply)
    }

    /// Fails every invocation `instance` had taken (it has ended).
    pub fn fail_instance(&self, instance: &str, why: &str) -> usize {
        let mut map = self.0.lock().unwrap();
        let ids: Vec<String> = map.iter().filter(|(_, (i, _))| i == instance).map(|(id, _)| id.clone()).collect();
        for id in &ids {
            if let Some((_, reply)) = map.remove(id) {
                let _ = reply.send(Outcome::Failed(why.to_owned()));
            }
        }
        ids.len()
    }
}

/// A response body fed from a channel: the streamed body of a function.
pub struct ChannelBody(pub mpsc::Receiver<Result<Bytes, String>>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = String;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, String>>> {
        self.0.poll_recv(cx).map(|item| item.map(|r| r.map(Frame::data)))
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_queue_hands_out_invocations_in_order() {
        let queue = Queue::default();
        for id in ["a", "b"] {
            let (reply, _) = oneshot::channel();
            queue.push(Invocation { id: id.into(), event: Bytes::new(), reply });
        }
        assert_eq!(queue.take().await.unwrap().id, "a");
        assert_eq!(queue.take().await.unwrap().id, "b");
    }

    #[tokio::test]
    async fn an_ended_instance_fails_what_it_had_taken_and_only_that() {
        let in_flight = InFlight::default();
        let (mine, mine_rx) = oneshot::channel();
        let (other, mut other_rx) = oneshot::channel();
        in_flight.insert("1".into(), "docs/0.0", mine);
        in_flight.insert("2".into(), "docs/0.1", other);
        assert_eq!(in_flight.fail_instance("docs/0.0", "ended"), 1);
        assert!(matches!(mine_rx.await, Ok(Outcome::Failed(why)) if why == "ended"));
        assert!(other_rx.try_recv().is_err(), "the other instance's invocation is still waiting");
        assert!(in_flight.take("2").is_some());
        assert!(in_flight.take("1").is_none());
    }
}
