//! The reply stream protocol (Server-Sent Events), as documented in
//! docs/ARCHITECTURE.md: `message.created`, `reply.delta`..., then exactly one
//! `reply.completed` or `error`; every event carries `id:` (its index in the
//! stream); `: keep-alive` comments while the model loads.

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use serde::Serialize;
use tokio::sync::mpsc::UnboundedReceiver;
use utoipa::ToSchema;
use uuid::Uuid;

use super::error::Problem;
use super::views::MessageView;

pub const EVENT_STREAM: &str = "text/event-stream";

/// Event names, as the stream writes them and the API document lists them.
pub const MESSAGE_CREATED: &str = "message.created";
pub const REPLY_DELTA: &str = "reply.delta";
pub const REPLY_COMPLETED: &str = "reply.completed";
pub const ERROR: &str = "error";
pub const KEEP_ALIVE: &str = ": keep-alive\n\n";

/// Headers every stream response carries; the last two stop proxies from buffering.
pub const STREAM_HEADERS: [(http::HeaderName, &str); 3] = [
    (CONTENT_TYPE, EVENT_STREAM),
    (CACHE_CONTROL, "no-cache, no-transform"),
    (http::HeaderName::from_static("x-accel-buffering"), "no"),
];

/// Data of `message.created`: the stored user message and the id the reply will have.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MessageCreated {
    pub user_message: MessageView,
    pub reply_id: Uuid,
}

/// Data of `reply.delta`: the next piece of the reply's text.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReplyDelta {
    pub reply_id: Uuid,
    pub delta: String,
}

/// Data of `reply.completed`: the stored reply.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReplyCompleted {
    pub reply: MessageView,
}

/// Data of `error`: what went wrong, and whether the reply's text so far was stored.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StreamError {
    pub problem: Problem,
    pub reply_id: Option<Uuid>,
    pub partial_saved: bool,
}

#[derive(Debug, Clone)]
pub enum StreamEvent {
    MessageCreated(MessageCreated),
    Delta(ReplyDelta),
    Completed(ReplyCompleted),
    Error(StreamError),
}

impl StreamEvent {
    pub fn name(&self) -> &'static str {
        match self {
            StreamEvent::MessageCreated(_) => MESSAGE_CREATED,
            StreamEvent::Delta(_) => REPLY_DELTA,
            StreamEvent::Completed(_) => REPLY_COMPLETED,
            StreamEvent::Error(_) => ERROR,
        }
    }

    fn data(&self) -> String {
        let json = match self {
            StreamEvent::MessageCreated(d) => serde_json::to_string(d),
            StreamEvent::Delta(d) => serde_json::to_string(d),
            StreamEvent::Completed(d) => serde_json::to_string(d),
            StreamEvent::Error(d) => serde_json::to_string(d),
        };
        json.unwrap_or_else(|_| "{}".to_owned())
    }

    /// The event as SSE text with index `id`. JSON data is one line, so one `data:` field suffices.
    pub fn encode(&self, id: u64) -> String {
        format!("id: {id}\nevent: {}\ndata: {}\n\n", self.name(), self.data())
    }
}

/// Where encoded stream text goes (the Lambda response body); an error means the reader is gone.
pub trait SseSink: Send {
    fn send(&mut self, chunk: Bytes) -> impl std::future::Future<Output = Result<(), ()>> + Send;
}

impl SseSink for lambda_runtime::streaming::Sender {
    async fn send(&mut self, chunk: Bytes) -> Result<(), ()> {
        self.send_data(chunk).await.map_err(|_| ())
    }
}

/// Writes events to `sink` in order, numbering them, with a keep-alive
/// comment after any `keepalive` without an event, before the first token and
/// after it (API Gateway cuts a stream that stays silent too long). When the
/// reader goes away, events are still drained (generation goes on regardless)
/// but no longer written.
pub async fn write_events(mut sink: impl SseSink, mut events: UnboundedReceiver<StreamEvent>, keepalive: std::time::Duration) {
    let mut next_id = 0u64;
    let mut reader_gone = false;
    let silence = tokio::time::sleep(keepalive);
    tokio::pin!(silence);
    loop {
        let chunk = tokio::select! {
            event = events.recv() => match event {
                None => break,
                Some(event) => {
                    next_id += 1;
                    event.encode(next_id - 1)
                }
            },
            _ = &mut silence => KEEP_ALIVE.to_owned(),
        };
        silence.as_mut().reset(tokio::time::Instant::now() + keepalive);
        if !reader_gone && sink.send(Bytes::from(chunk)).await.is_err() {
            tracing::info!("stream reader went away; the reply is still generated and stored");
            reader_gone = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    #[derive(Clone, Default)]
    struct Collect(Arc<Mutex<Vec<String>>>, Option<usize>);

    impl SseSink for Collect {
        async fn send(&mut self, chunk: Bytes) -> Result<(), ()> {
            let mut seen = self.0.lock().unwrap();
            if self.1.is_some_and(|limit| seen.len() >= limit) {
                return Err(());
            }
            seen.push(String::from_utf8(chunk.to_vec()).unwrap());
            Ok(())
        }
    }

    fn delta(text: &str) -> StreamEvent {
        StreamEvent::Delta(ReplyDelta { reply_id: Uuid::nil(), delta: text.to_owned() })
    }

    #[tokio::test(start_paused = true)]
    async fn keep_alives_fill_every_silence_and_ids_count_events() {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let sink = Collect::default();
        let seen = sink.0.clone();
        let writer = tokio::spawn(write_events(sink, rx, Duration::from_secs(10)));
        // 25 s before the first token, then 25 s of silence after it, then a burst.
        tokio::time::sleep(Duration::from_secs(25)).await;
        tx.send(delta("a")).unwrap();
        tokio::time::sleep(Duration::from_secs(25)).await;
        tx.send(delta("b\nc")).unwrap();
        tx.send(delta("d")).unwrap();
        drop(tx);
        writer.await.unwrap();
        let seen = seen.lock().unwrap().clone();
        let kinds: Vec<&str> = seen.iter().map(|c| if c == KEEP_ALIVE { "ka" } else { "event" }).collect();
        assert_eq!(kinds, ["ka", "ka", "event", "ka", "ka", "event", "event"], "{seen:?}");
        assert!(seen[2].starts_with("id: 0\nevent: reply.delta\ndata: {"), "{}", seen[2]);
        assert!(seen[5].starts_with("id: 1\n"));
        assert!(seen[5].contains(r#""delta":"b\nc""#), "newlines stay inside the JSON string");
        assert_eq!(seen[5].matches("\n\n").count(), 1, "one event, one blank line");
        assert!(seen[6].starts_with("id: 2\n"));
    }

    #[tokio::test]
    async fn a_gone_reader_does_not_stop_the_drain() {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let sink = Collect(Arc::default(), Some(1));
        let seen = sink.0.clone();
        for i in 0..100 {
            tx.send(delta(&i.to_string())).unwrap();
        }
        drop(tx);
        write_events(sink, rx, Duration::from_secs(10)).await;
        assert_eq!(seen.lock().unwrap().len(), 1);
    }
}
