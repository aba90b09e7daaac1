//! The reply stream protocol (Server-Sent Events), as documented in
//! docs/ARCHITECTURE.md: `message.created`, `reply.delta`..., then exactly one
//! `reply.completed`, `reply.cancelled` or `error`. Every event's `id:` is a
//! position in its reply that a reader can resume from: `0` for
//! `message.created`, the byte offset where its text ends for `reply.delta`
//! and `reply.thinking.delta` (positions count a reply's thinking, then its
//! text), and `end` for the last event. A `: keep-alive` comment fills any silence.

use std::time::Duration;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use serde::Serialize;
use tokio::sync::mpsc::UnboundedReceiver;
use utoipa::ToSchema;
use uuid::Uuid;

use super::ApiError;
use super::error::Problem;
use super::views::MessageView;
use crate::chat::Position;

pub const EVENT_STREAM: &str = "text/event-stream";

/// Event names, as the stream writes them and the API document lists them.
pub const MESSAGE_CREATED: &str = "message.created";
pub const REPLY_DELTA: &str = "reply.delta";
pub const REPLY_THINKING_DELTA: &str = "reply.thinking.delta";
pub const REPLY_COMPLETED: &str = "reply.completed";
pub const REPLY_CANCELLED: &str = "reply.cancelled";
pub const ERROR: &str = "error";
pub const KEEP_ALIVE: &str = ": keep-alive\n\n";

/// A reader that takes no bytes for this long is treated as gone, so that a
/// stalled connection cannot hold an invocation open after its reply ended.
pub const STALLED_READER: Duration = Duration::from_secs(30);
/// Events already waiting when the writer sends go out in one write, up to
/// about this many bytes: fewer, larger writes when the model outruns the
/// reader, and never a wait for more.
pub const SSE_BATCH_BYTES: usize = 16 * 1024;

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

/// Data of `reply.delta` (the next piece of the reply's text) and of
/// `reply.thinking.delta` (the next piece of its thinking).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReplyDelta {
    pub reply_id: Uuid,
    pub delta: String,
    /// The position in the reply (its thinking, then its text, in bytes)
    /// where this delta ends: the event's id.
    #[serde(skip)]
    pub end: usize,
}

/// Data of `reply.completed`: the stored reply.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReplyCompleted {
    pub reply: MessageView,
}

/// Data of `reply.cancelled`: the reply as stored when a cancel stopped it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReplyCancelled {
    pub reply: MessageView,
}

/// Data of `error`: what went wrong, and whether the reply's text so far was stored.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StreamError {
    pub problem: Problem,
    pub reply_id: Option<Uuid>,
    pub partial_saved: bool,
    /// For `llm_busy`: seconds to wait before sending again (the stream's
    /// status line went out before the backend answered, so this takes the
    /// place of a `Retry-After` header).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

#[derive(Debug, Clone)]
pub enum StreamEvent {
    MessageCreated(MessageCreated),
    Thinking(ReplyDelta),
    Delta(ReplyDelta),
    Completed(ReplyCompleted),
    Cancelled(ReplyCancelled),
    Error(StreamError),
}

impl StreamEvent {
    /// The last event for a reply that ended as `reply` reads: cancelled or completed.
    pub fn ended(reply: MessageView) -> Self {
        if reply.status == crate::domain::MessageStatus::Cancelled {
            StreamEvent::Cancelled(ReplyCancelled { reply })
        } else {
            StreamEvent::Completed(ReplyCompleted { reply })
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            StreamEvent::MessageCreated(_) => MESSAGE_CREATED,
            StreamEvent::Thinking(_) => REPLY_THINKING_DELTA,
            StreamEvent::Delta(_) => REPLY_DELTA,
            StreamEvent::Completed(_) => REPLY_COMPLETED,
            StreamEvent::Cancelled(_) => REPLY_CANCELLED,
            StreamEvent::Error(_) => ERROR,
        }
    }

    /// The position after this event.
    pub fn position(&self) -> Position {
        match self {
            StreamEvent::MessageCreated(_) => Position::Offset(0),
            StreamEvent::Thinking(d) | StreamEvent::Delta(d) => Position::Offset(d.end),
            StreamEvent::Completed(_) | StreamEvent::Cancelled(_) | StreamEvent::Error(_) => Position::End,
        }
    }

    fn data(&self) -> String {
        let json = match self {
            StreamEvent::MessageCreated(d) => serde_json::to_string(d),
            StreamEvent::Thinking(d) | StreamEvent::Delta(d) => serde_json::to_string(d),
            StreamEvent::Completed(d) => serde_json::to_string(d),
            StreamEvent::Cancelled(d) => serde_json::to_string(d),
            StreamEvent::Error(d) => serde_json::to_string(d),
        };
        json.unwrap_or_else(|_| "{}".to_owned())
    }

    /// The event as SSE text.
    pub fn encode(&self) -> String {
        frame(Some(&self.position().id()), Some(self.name()), &self.data())
    }
}

/// One event as SSE text: its `id:` and `event:` fields, one `data:` field
/// per line of `data` (a reader joins them with `\n`), and the blank line
/// that ends it. A line break ends a field, so none may reach one unsplit:
/// `data`'s line breaks (`\r\n`, `\r` or `\n`) each start a new `data:`
/// line and are read back as `\n`; the id and the event name, single-line
/// fields, lose theirs (and the id its NUL, which makes a reader ignore it).
/// Every value is written after one space, which a reader strips, so a value
/// that begins with a space keeps it.
pub fn frame(id: Option<&str>, event: Option<&str>, data: &str) -> String {
    let mut text = String::with_capacity(data.len() + 64);
    let mut field = |name: &str, value: &mut dyn Iterator<Item = char>| {
        text.push_str(name);
        text.push_str(": ");
        text.extend(value);
        text.push('\n');
    };
    if let Some(id) = id {
        field("id", &mut id.chars().filter(|c| !matches!(c, '\r' | '\n' | '\0')));
    }
    if let Some(event) = event {
        field("event", &mut event.chars().filter(|c| !matches!(c, '\r' | '\n')));
    }
    let data = data.replace("\r\n", "\n").replace('\r', "\n");
    for line in data.split('\n') {
        field("data", &mut line.chars());
    }
    text.push('\n');
    text
}

/// Something the stream writer can frame as SSE text.
pub trait SseFrame: Send + 'static {
    fn frame(&self) -> String;
}

impl SseFrame for StreamEvent {
    fn frame(&self) -> String {
        self.encode()
    }
}

/// Text already framed as SSE (`data: …\n\n`, `event: …\ndata: …\n\n`).
impl SseFrame for String {
    fn frame(&self) -> String {
        self.clone()
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

/// A stream response's body and the sender that feeds it: a writer task
/// frames what is sent (see [`write_events`]).
pub fn channel<E: SseFrame>(keepalive: Duration) -> (tokio::sync::mpsc::UnboundedSender<E>, lambda_runtime::streaming::Body) {
    let (events, receiver) = tokio::sync::mpsc::unbounded_channel();
    let (sender, body) = lambda_runtime::streaming::channel();
    tokio::spawn(write_events(sender, receiver, keepalive));
    (events, body)
}

/// A `text/event-stream` response whose body `body` carries the events.
pub fn response<B>(body: B) -> Result<http::Response<B>, ApiError> {
    let mut response = http::Response::builder().status(http::StatusCode::OK);
    for (name, value) in STREAM_HEADERS {
        response = response.header(name, value);
    }
    response.body(body).map_err(|e| ApiError::Internal(Box::new(e)))
}

/// Writes events to `sink` in order, with a keep-alive comment after any
/// `keepalive` without an event, before the first token and after it (API
/// Gateway cuts a stream that stays silent too long). Returns when the events
/// end or the reader is gone (or takes nothing for [`STALLED_READER`]);
/// dropping `events` then tells their producer.
pub async fn write_events<E: SseFrame>(mut sink: impl SseSink, mut events: UnboundedReceiver<E>, keepalive: Duration) {
    let silence = tokio::time::sleep(keepalive);
    tokio::pin!(silence);
    loop {
        let chunk = tokio::select! {
            event = events.recv() => match event {
                None => return,
                Some(event) => {
                    let mut chunk = event.frame();
                    while chunk.len() < SSE_BATCH_BYTES {
                        match events.try_recv() {
                            Ok(next) => chunk.push_str(&next.frame()),
                            Err(_) => break,
                        }
                    }
                    chunk
                }
            },
            _ = &mut silence => KEEP_ALIVE.to_owned(),
        };
        silence.as_mut().reset(tokio::time::Instant::now() + keepalive);
        match tokio::time::timeout(STALLED_READER, sink.send(Bytes::from(chunk))).await {
            Ok(Ok(())) => {}
            _ => {
                tracing::info!("stream reader went away; a reply being generated is still generated and stored");
                return;
            }
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

    fn delta_to(text: &str, end: usize) -> StreamEvent {
        StreamEvent::Delta(ReplyDelta { reply_id: Uuid::nil(), delta: text.to_owned(), end })
    }

    fn delta(text: &str) -> StreamEvent {
        delta_to(text, text.len())
    }

    #[tokio::test(start_paused = true)]
    async fn keep_alives_fill_every_silence_and_ids_count_events() {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let sink = Collect::default();
        let seen = sink.0.clone();
        let writer = tokio::spawn(write_events(sink, rx, Duration::from_secs(10)));
        // 25 s before the first token, then 25 s of silence after it, then a burst.
        tokio::time::sleep(Duration::from_secs(25)).await;
        tx.send(delta_to("a", 1)).unwrap();
        tokio::time::sleep(Duration::from_secs(25)).await;
        tx.send(delta_to("b\nc", 4)).unwrap();
        tx.send(delta_to("d", 5)).unwrap();
        drop(tx);
        writer.await.unwrap();
        let seen = seen.lock().unwrap().clone();
        let kinds: Vec<&str> = seen.iter().map(|c| if c == KEEP_ALIVE { "ka" } else { "events" }).collect();
        assert_eq!(kinds, ["ka", "ka", "events", "ka", "ka", "events"], "{seen:?}");
        assert!(seen[2].starts_with("id: 1\nevent: reply.delta\ndata: {"), "ids are byte positions: {}", seen[2]);
        assert_eq!(seen[2].matches("\n\n").count(), 1, "one event, one blank line");
        // The burst was waiting when the writer woke: one write, two events.
        let burst: Vec<&str> = seen[5].split_terminator("\n\n").collect();
        assert_eq!(burst.len(), 2, "{:?}", seen[5]);
        assert!(burst[0].starts_with("id: 4\n"));
        assert!(burst[0].contains(r#""delta":"b\nc""#), "newlines stay inside the JSON string");
        assert!(burst[1].starts_with("id: 5\n"));
    }

    #[tokio::test]
    async fn waiting_events_are_written_together_up_to_the_batch_size_and_none_waits() {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let sink = Collect::default();
        let seen = sink.0.clone();
        let piece = "x".repeat(1000);
        for i in 1..=40 {
            tx.send(delta_to(&piece, i * 1000)).unwrap();
        }
        let writer = tokio::spawn(write_events(sink, rx, Duration::from_secs(10)));
        tokio::time::sleep(Duration::from_millis(50)).await;
        let written = seen.lock().unwrap().clone();
        let events: usize = written.iter().map(|c| c.matches("\n\n").count()).sum();
        assert_eq!(events, 40, "every waiting event is written at once");
        assert!(written.len() >= 2 && written.len() < 40, "{} writes for 40 events", written.len());
        let one = written[0].len() / written[0].matches("\n\n").count();
        assert!(written.iter().all(|c| c.len() < SSE_BATCH_BYTES + one), "no write passes the batch size by more than an event");
        // A lone event goes out alone, at once.
        tx.send(delta_to("y", 40_001)).unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(seen.lock().unwrap().len(), written.len() + 1);
        drop(tx);
        writer.await.unwrap();
    }

    #[tokio::test]
    async fn a_gone_reader_ends_the_writer_and_its_producer_learns_it() {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let sink = Collect(Arc::default(), Some(1));
        let seen = sink.0.clone();
        for i in 0..100 {
            tx.send(delta(&i.to_string())).unwrap();
        }
        write_events(sink, rx, Duration::from_secs(10)).await;
        assert_eq!(seen.lock().unwrap().len(), 1);
        assert!(tx.send(delta("more")).is_err(), "the producer can tell the reader is gone");
    }

    /// A sink that never takes a byte.
    struct Stalled;

    impl SseSink for Stalled {
        async fn send(&mut self, _: Bytes) -> Result<(), ()> {
            std::future::pending().await
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_reader_is_let_go() {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tx.send(delta("a")).unwrap();
        let started = tokio::time::Instant::now();
        write_events(Stalled, rx, Duration::from_secs(10)).await;
        assert_eq!(started.elapsed(), STALLED_READER);
    }

    /// An event as a reader sees it: its type, data and last event id.
    #[derive(Debug, Clone, PartialEq)]
    struct Received {
        event: String,
        data: String,
        id: String,
    }

    /// A strict reader of an event stream, as the HTML standard's
    /// "interpreting an event stream" says: lines end at CRLF, LF or CR;
    /// `:` starts a comment; a field's value follows its first colon, less
    /// one leading space; a blank line dispatches the event (unless its data
    /// is empty); an id with NUL is ignored; unknown fields are ignored.
    fn read_stream(text: &str) -> Vec<Received> {
        let mut received = Vec::new();
        let (mut event, mut data, mut id) = (String::new(), String::new(), String::new());
        let text = text.replace("\r\n", "\n").replace('\r', "\n");
        let mut lines: Vec<&str> = text.split('\n').collect();
        lines.pop(); // what follows the last line break is not a line yet
        for line in lines {
            if line.is_empty() {
                if !data.is_empty() {
                    data.pop();
                    let name = if event.is_empty() { "message".to_owned() } else { event.clone() };
                    received.push(Received { event: name, data: data.clone(), id: id.clone() });
                }
                (event, data) = (String::new(), String::new());
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = match line.split_once(':') {
                Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
                None => (line, ""),
            };
            match field {
                "event" => event = value.to_owned(),
                "data" => {
                    data.push_str(value);
                    data.push('\n');
                }
                "id" if !value.contains('\0') => id = value.to_owned(),
                _ => {}
            }
        }
        received
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// Text that tries everything: line breaks of every kind, colons,
        /// field names, NUL, leading spaces, any character.
        fn hostile() -> impl Strategy<Value = String> {
            let bit = prop_oneof![
                Just("\n".to_owned()),
                Just("\r".to_owned()),
                Just("\r\n".to_owned()),
                Just(": ".to_owned()),
                Just("data: x".to_owned()),
                Just("id: 9".to_owned()),
                Just("event: error".to_owned()),
                Just("retry: 1".to_owned()),
                Just("\0".to_owned()),
                Just(" ".to_owned()),
                any::<String>(),
            ];
            prop::collection::vec(bit, 0..8).prop_map(|bits| bits.concat())
        }

        fn event() -> impl Strategy<Value = (Option<String>, Option<String>, String)> {
            (prop::option::of(hostile()), prop::option::of(hostile()), hostile())
        }

        /// Writes frames through [`write_events`], as a stream response does.
        fn written(frames: Vec<String>) -> String {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
            let sink = Collect::default();
            let seen = sink.0.clone();
            runtime.block_on(async {
                let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
                for frame in frames {
                    tx.send(frame).unwrap();
                }
                drop(tx);
                write_events(sink, rx, Duration::from_secs(10)).await;
            });
            seen.lock().unwrap().concat()
        }

        proptest! {
            #[test]
            fn a_strict_reader_recovers_exactly_the_events_written(events in prop::collection::vec(event(), 0..6)) {
                let frames = events.iter().map(|(id, event, data)| frame(id.as_deref(), event.as_deref(), data)).collect();
                let received = read_stream(&written(frames));
                prop_assert_eq!(received.len(), events.len(), "one event per frame, no more");
                let mut last_id = String::new();
                for ((id, event, data), got) in events.iter().zip(&received) {
                    // Single-line fields lose their line breaks (and the id its NUL); data keeps every line.
                    if let Some(id) = id {
                        last_id = id.chars().filter(|c| !matches!(c, '\r' | '\n' | '\0')).collect();
                    }
                    let name: String = event.as_deref().unwrap_or_default().chars().filter(|c| !matches!(c, '\r' | '\n')).collect();
                    let expected = Received {
                        event: if name.is_empty() { "message".to_owned() } else { name },
                        data: data.replace("\r\n", "\n").replace('\r', "\n"),
                        id: last_id.clone(),
                    };
                    prop_assert_eq!(got, &expected);
                }
            }

            #[test]
            fn a_delta_of_any_text_is_one_event_at_its_position(text in hostile(), before in 0..1_000_000usize) {
                let end = before + text.len();
                let received = read_stream(&written(vec![delta_to(&text, end).encode()]));
                prop_assert_eq!(received.len(), 1);
                prop_assert_eq!(&received[0].event, REPLY_DELTA);
                prop_assert_eq!(&received[0].id, &end.to_string());
                let data: serde_json::Value = serde_json::from_str(&received[0].data).unwrap();
                prop_assert_eq!(data["delta"].as_str(), Some(text.as_str()));
            }
        }
    }

    #[test]
    fn a_strict_reader_reads_what_the_standard_says() {
        let text = "id: 1\nevent: a\ndata: x\ndata:  y\n\n: comment\ndata\n\nid: 2\0\nevent\ndata: z\r\n\r\ndata: lost";
        let received = read_stream(text);
        let expected = [("a", "x\n y", "1"), ("message", "", "1"), ("message", "z", "1")];
        let got: Vec<(&str, &str, &str)> = received.iter().map(|r| (r.event.as_str(), r.data.as_str(), r.id.as_str())).collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn the_last_event_and_the_first_have_positions_too() {
        let reply = MessageView::new(&crate::domain::Message::user(Uuid::nil(), 1, "x".into(), None, crate::domain::Timestamp::now()), crate::domain::Timestamp::now());
        assert!(StreamEvent::ended(reply).encode().starts_with("id: end\nevent: reply.completed\n"));
    }
}
