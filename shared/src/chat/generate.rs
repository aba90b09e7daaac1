//! Step two of a send: stream the model's reply into the store.

use std::pin::Pin;

use futures::future::OptionFuture;
use tokio::time::Instant;

use super::quota::{self, Claimed};
use super::{ChatError, Delta, LEASE_GRACE, LEASE_RENEW_INTERVAL, LOG_FLUSH_BYTES, LOG_FLUSH_INTERVAL, Pending};
use crate::config::Config;
use crate::domain::limits::MAX_REPLY_BYTES;
use crate::domain::{Message, MessageStatus, Timestamp};
use crate::llm::{ChatEvent, Completion, LlmError, ReplyStream, TimeoutPhase};
use crate::store::meter::metered;
use crate::store::{LogPart, MessageRepository, StoreError, retry_on_conflict};

/// A reply's outcome: the reply as it ended, and what went wrong, if anything.
#[derive(Debug)]
pub struct Generated {
    /// Its status is `cancelled` when a cancel stopped it.
    pub reply: Message,
    /// The model failed or timed out: the reply is `failed` or `incomplete`.
    pub llm_error: Option<LlmError>,
    /// Storing the final reply failed (`NotFound`: the session was deleted meanwhile).
    pub save_error: Option<StoreError>,
    /// Another writer holds the reply now: this generator stopped without writing.
    pub superseded: bool,
}

impl Generated {
    /// The problem to report, if any: the model's failure first, then the store's.
    pub fn problem(&self) -> Option<ChatError> {
        match (&self.llm_error, &self.save_error) {
            (Some(e), _) => Some(ChatError::Llm(e.clone())),
            (None, _) if self.superseded => Some(ChatError::Superseded),
            (None, Some(StoreError::ConditionFailed | StoreError::NotFound)) => Some(ChatError::NotFound("session")),
            (None, Some(e)) => Some(ChatError::Storage(StoreError::Unavailable(e.to_string()))),
            (None, None) => None,
        }
    }

    /// Whether the text so far is stored.
    pub fn text_saved(&self) -> bool {
        self.save_error.is_none() && !self.superseded && self.reply.end_position() > 0
    }
}

/// How generation stopped.
enum Stop {
    Finished(Completion),
    Failed(LlmError),
    /// A cancel was asked for.
    Cancelled,
    /// The reply is no longer this generator's: taken over, or (`gone`) deleted.
    Lost { gone: bool },
}

/// The reply's log as this generator writes it: what is appended, what waits.
/// Positions count the reply's thinking, then its content (see [`Position`](super::Position)).
struct Log {
    /// Bytes of the reply (thinking, then content) already appended.
    flushed: usize,
    next_part: u32,
    /// When the oldest text not yet in an append arrived.
    waiting_since: Option<Instant>,
    last_write: Instant,
}

/// An append under way: the model's stream is read (and its text relayed)
/// while it is written, so a slow write never holds a token back.
type Appending<'a> = Pin<Box<dyn Future<Output = Appended> + Send + 'a>>;

/// How an append ended.
struct Appended {
    /// What it covered: the reply's length when it began, and the text's oldest arrival.
    end: usize,
    since: Option<Instant>,
    with_part: bool,
    outcome: Result<(), Option<Stop>>,
}

/// Generates and stores the reply. `on_delta` sees each piece of thinking and
/// text as it arrives; whatever it does (a client may be gone), generation
/// goes on. Thinking that comes after the reply's text has begun is not kept
/// (models think first; positions count thinking, then text).
pub async fn generate<S: MessageRepository, St: ReplyStream + 'static>(
    store: &S,
    config: &Config,
    pending: Pending<St>,
    on_delta: impl FnMut(Delta<'_>),
) -> Generated {
    let meter = pending.claimed.meter.clone();
    metered(meter, Box::pin(generate_metered(store, config, pending, on_delta))).await
}

async fn generate_metered<S: MessageRepository, St: ReplyStream + 'static>(
    store: &S,
    config: &Config,
    pending: Pending<St>,
    mut on_delta: impl FnMut(Delta<'_>),
) -> Generated {
    let Pending { mut reply, opening, claimed, prompt_estimate, uncalibrated_estimate, .. } = pending;
    let started = opening.called_at;
    let mut first_output: Option<Instant> = None;
    let mut log = Log { flushed: 0, next_part: 0, waiting_since: None, last_write: Instant::now() };
    let stop = match opening.opened().await {
        Err(e) => Stop::Failed(e),
        Ok(mut stream) => {
            let mut appending: Option<Appending<'_>> = None;
            let stop = loop {
                // Text waiting goes out LOG_FLUSH_INTERVAL after it arrived; with none, the lease is renewed.
                let due = match log.waiting_since {
                    Some(since) => since + LOG_FLUSH_INTERVAL,
                    None => log.last_write + LEASE_RENEW_INTERVAL,
                };
                let write_due = tokio::select! {
                    event = stream.next() => match event {
                        None => break Stop::Failed(LlmError::Failed("the stream ended without a result".to_owned())),
                        Some(Err(e)) => break Stop::Failed(e),
                        Some(Ok(ChatEvent::Done(completion))) => break Stop::Finished(completion),
                        Some(Ok(ChatEvent::Progress)) => false,
                        Some(Ok(ChatEvent::Thinking(_))) if !reply.content.is_empty() => false,
                        Some(Ok(event @ (ChatEvent::Thinking(_) | ChatEvent::Delta(_)))) => {
                            first_output.get_or_insert_with(Instant::now);
                            match &event {
                                ChatEvent::Thinking(text) => {
                                    reply.thinking.push_str(text);
                                    on_delta(Delta::Thinking(text));
                                }
                                ChatEvent::Delta(text) => {
                                    reply.content.push_str(text);
                                    on_delta(Delta::Content(text));
                                }
                                _ => {}
                            }
                            log.waiting_since.get_or_insert_with(Instant::now);
                            let length = reply.end_position();
                            if length >= MAX_REPLY_BYTES {
                                // A reply that would not fit in its item: end it here, as a length stop.
                                tracing::warn!(bytes = length, "reply reached the size limit");
                                break Stop::Finished(Completion { done_reason: Some("length".to_owned()), ..Completion::default() });
                            }
                            length - log.flushed >= LOG_FLUSH_BYTES
                        }
                    },
                    appended = OptionFuture::from(appending.as_mut()), if appending.is_some() => {
                        appending = None;
                        match appended.map(|appended| log.record(appended)) {
                            // Dropping the stream closes the model's connection: it stops generating.
                            Some(Err(stop)) => break stop,
                            _ => reply.end_position() - log.flushed >= LOG_FLUSH_BYTES,
                        }
                    },
                    _ = tokio::time::sleep_until(due), if appending.is_none() => true,
                };
                if write_due && appending.is_none() {
                    appending = Some(Box::pin(append(store, config, &mut reply, &mut log)));
                }
            };
            // An append still under way lands before the final write; one that
            // found the reply no longer this generator's stops it as any would.
            match appending {
                Some(appending) => match log.record(appending.await) {
                    Err(lost @ Stop::Lost { .. }) => lost,
                    _ => stop,
                },
                None => stop,
            }
        }
    };
    let timing = Timing { started, first_output, ended: Instant::now() };
    let estimates = Estimates { prompt: prompt_estimate, uncalibrated: uncalibrated_estimate };
    finish(store, reply, stop, &claimed, estimates, timing).await
}

/// The prompt's estimated tokens: as the budget charged them, and before the session's calibration.
struct Estimates {
    prompt: u64,
    uncalibrated: u64,
}

/// When a generation began, first produced something, and ended.
struct Timing {
    started: Instant,
    first_output: Option<Instant>,
    ended: Instant,
}

impl Log {
    /// Takes an ended append into account; `Err` when the generator must
    /// stop: a cancel was asked for, or the reply is not its own.
    fn record(&mut self, appended: Appended) -> Result<(), Stop> {
        match appended.outcome {
            Ok(()) => {
                if appended.with_part {
                    self.flushed = appended.end;
                    self.next_part += 1;
                }
                self.last_write = Instant::now();
                Ok(())
            }
            Err(Some(stop)) => Err(stop),
            Err(None) => {
                // The next write tries again, with this text; the lease covers a few failures.
                self.last_write = Instant::now();
                if appended.with_part {
                    self.waiting_since = match (appended.since, self.waiting_since) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                }
                Ok(())
            }
        }
    }
}

/// Starts appending the waiting text (if any) with a renewal of the lease:
/// the write works on a copy of what it needs, so the reply goes on growing
/// meanwhile. [`Log::record`] takes its outcome into account.
fn append<'a, S: MessageRepository>(store: &'a S, config: &Config, reply: &mut Message, log: &mut Log) -> impl Future<Output = Appended> + Send + 'a {
    reply.lease_until = Some(Timestamp::now().plus(config.llm_idle_timeout + LEASE_GRACE));
    let end = reply.end_position();
    let thinking = reply.thinking.len();
    let part = (end > log.flushed).then(|| LogPart {
        index: log.next_part,
        offset: log.flushed,
        thinking: reply.thinking.get(log.flushed..).unwrap_or_default().to_owned(),
        text: reply.content[log.flushed.saturating_sub(thinking)..].to_owned(),
    });
    let since = log.waiting_since.take();
    // The reply's keys, generation and lease, without its text (which only the final write carries).
    let (content, thinking) = (std::mem::take(&mut reply.content), std::mem::take(&mut reply.thinking));
    let head = reply.clone();
    (reply.content, reply.thinking) = (content, thinking);
    async move {
        let outcome = match store.append_reply(&head, part.as_ref()).await {
            Ok(()) => Ok(()),
            Err(StoreError::ConditionFailed) => Err(Some(why_refused(store, &head).await)),
            Err(e) => {
                tracing::warn!(error = %e, "could not append to the reply's log; generation goes on");
                Err(None)
            }
        };
        Appended { end, since, with_part: part.is_some(), outcome }
    }
}

/// The reply's metrics: time to first output, tokens per second, how it ended.
fn report(reply: &Message, claimed: &Claimed, timing: &Timing, error: Option<&LlmError>) {
    let usage = reply.usage.clone().unwrap_or_default();
    let rate = timing.first_output.and_then(|first| {
        let secs = (timing.ended - first).as_secs_f64();
        (secs > 0.0 && usage.completion_tokens > 1).then(|| (usage.completion_tokens - 1) as f64 / secs)
    });
    let status = serde_json::to_value(reply.status).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
    crate::metrics::reply_ended(&crate::metrics::ReplyMetrics {
        backend: &claimed.backend,
        model: &claimed.model,
        status: &status,
        time_to_first_token_ms: timing.first_output.map(|t| (t - timing.started).as_millis() as u64),
        tokens_per_second: rate,
        prompt_tokens: usage.prompt_tokens,
        completion_tokens: usage.completion_tokens,
        thinking_tokens: usage.thinking_tokens,
    });
    if let Some(err) = error {
        crate::metrics::backend_error(&claimed.backend, err.code().as_str());
    }
}

/// A write was refused: a cancel, or another writer (or none: the session is gone).
async fn why_refused<S: MessageRepository>(store: &S, reply: &Message) -> Stop {
    match store.get_message(reply.session_id, reply.seq).await {
        Ok(Some(stored))
            if stored.status == MessageStatus::Streaming && stored.generation == reply.generation && stored.cancel_requested =>
        {
            Stop::Cancelled
        }
        Ok(stored) => Stop::Lost { gone: stored.is_none() },
        Err(_) => Stop::Lost { gone: false },
    }
}

/// Stores how the reply ended (unless it is no longer this generator's),
/// settling its quota claim in the same write, and reports its metrics.
async fn finish<S: MessageRepository>(
    store: &S,
    mut reply: Message,
    stop: Stop,
    claimed: &Claimed,
    estimates: Estimates,
    timing: Timing,
) -> Generated {
    reply.completed_at = Some(Timestamp::now());
    reply.lease_until = None;
    let mut llm_error = None;
    match stop {
        Stop::Finished(completion) => {
            reply.status = MessageStatus::Complete;
            reply.done_reason = completion.done_reason;
            // The session's next sends fit their context by what the backend really counted.
            reply.prompt_calibration = super::context::measure(completion.usage.prompt_tokens, estimates.uncalibrated);
            reply.usage = Some(completion.usage);
        }
        Stop::Cancelled => {
            reply.status = MessageStatus::Cancelled;
            tracing::info!(chars = reply.content.len(), "reply cancelled");
        }
        Stop::Failed(err) => {
            reply.status = match err {
                LlmError::Timeout(TimeoutPhase::BetweenTokens) => MessageStatus::Incomplete,
                LlmError::Timeout(_) if !reply.content.is_empty() => MessageStatus::Incomplete,
                _ => MessageStatus::Failed,
            };
            reply.error_code = Some(err.code());
            tracing::warn!(error = %err, status = ?reply.status, chars = reply.content.len(), "reply did not complete");
            llm_error = Some(err);
        }
        Stop::Lost { gone } => {
            tracing::warn!("the reply is no longer this generator's: it stops without writing");
            let save_error = gone.then_some(StoreError::NotFound);
            return Generated { superseded: !gone, reply, llm_error, save_error };
        }
    }
    let generation_ms = (timing.ended - timing.started).as_millis() as u64;
    let (settlement, spend) =
        quota::settlement(claimed, reply.usage.as_ref(), &reply.thinking, &reply.content, estimates.prompt, generation_ms);
    reply.spend = Some(spend);
    report(&reply, claimed, &timing, llm_error.as_ref());
    // If this fails, the client is told so; the lease makes the stored reply
    // read back as `incomplete`, with the text of its log (and its place
    // among the owner's replies in progress is freed by a later claim).
    // The owner's quota counters are shared by its replies: two ending at the
    // same moment may conflict, and the final write is tried again.
    let save_error = retry_on_conflict(|| store.finish_reply(&reply, &settlement)).await.err();
    if let Some(e) = &save_error {
        tracing::error!(error = %e, "could not store the final reply");
    }
    // The units the whole send used, its final write included (the reply's own
    // record stops before that write, which is what records it).
    let (read_units, write_units) = claimed.meter.units();
    tracing::info!(status = ?reply.status, chars = reply.content.len(), read_units, write_units, "reply finished");
    Generated { reply, llm_error, save_error, superseded: false }
}
