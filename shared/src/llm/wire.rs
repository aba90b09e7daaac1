//! What both backends' streams share: reading a streamed HTTP body line by
//! line under the three waits (connect, first token, between tokens), and
//! reading a refusal's status, `Retry-After` and message.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::HeaderMap;
use reqwest::StatusCode;

use super::ndjson::LineBuffer;
use super::{LlmError, ModelInfo, TimeoutPhase};
use crate::telemetry::error_chain;

/// Longest line accepted from a backend's stream; a line never ends otherwise.
pub const MAX_LINE_BYTES: usize = 1024 * 1024;

/// Longest `Retry-After` passed on to a client, in seconds: a backend asking
/// for more is asked again sooner.
pub const MAX_RETRY_AFTER_SECS: u64 = 300;

/// A streamed response read as lines, each wait bounded by a deadline rather
/// than a fresh timer, so a caller may drop [`TimedLines::next`] (to do
/// something else) and call again without restarting the clock.
pub struct TimedLines {
    response: reqwest::Response,
    lines: LineBuffer,
    first_token_deadline: Instant,
    idle_timeout: Duration,
    /// When the last line that was not a comment arrived: the silence between tokens counts from here.
    last_chunk_at: Instant,
    seen_any: bool,
}

impl TimedLines {
    /// `started`: when the request went out (the first-token wait counts from there).
    pub fn new(response: reqwest::Response, started: Instant, first_token: Duration, idle: Duration) -> Self {
        TimedLines {
            response,
            lines: LineBuffer::new(),
            first_token_deadline: started + first_token,
            idle_timeout: idle,
            last_chunk_at: started,
            seen_any: false,
        }
    }

    /// The next non-blank line; `Ok(None)` once the body has ended. Only a
    /// line that is not an SSE comment (`:`…) counts as the backend's
    /// progress: a server that sends keep-alive comments while stuck still
    /// runs into the first-token and idle timeouts.
    pub async fn next(&mut self) -> Result<Option<Vec<u8>>, LlmError> {
        loop {
            if let Some(line) = self.lines.next_line() {
                if !line.starts_with(b":") {
                    self.last_chunk_at = Instant::now();
                    self.seen_any = true;
                }
                return Ok(Some(line));
            }
            let (wait, phase) = if self.seen_any {
                ((self.last_chunk_at + self.idle_timeout).saturating_duration_since(Instant::now()), TimeoutPhase::BetweenTokens)
            } else {
                (self.first_token_deadline.saturating_duration_since(Instant::now()), TimeoutPhase::FirstToken)
            };
            match tokio::time::timeout(wait, self.response.chunk()).await {
                Err(_) => return Err(LlmError::Timeout(phase)),
                Ok(Err(e)) => return Err(LlmError::Failed(format!("connection lost: {}", error_text(&e)))),
                Ok(Ok(Some(bytes))) => {
                    self.lines.push(&bytes);
                    if self.lines.pending_len() > MAX_LINE_BYTES {
                        return Err(LlmError::Failed(format!("a stream line is longer than {MAX_LINE_BYTES} bytes")));
                    }
                }
                Ok(Ok(None)) => return Ok(self.lines.finish()),
            }
        }
    }
}

/// How long `/models` answers from the last model list a backend gave.
pub const MODELS_CACHE_TTL: Duration = Duration::from_secs(30);

/// A backend's model list, kept for [`MODELS_CACHE_TTL`].
#[derive(Clone, Debug, Default)]
pub struct ModelsCache(Arc<Mutex<Option<(Instant, Vec<ModelInfo>)>>>);

impl ModelsCache {
    /// The cached list while fresh, else what `read` gives (kept when it succeeds).
    pub async fn get_or_read<F>(&self, read: F) -> Result<Vec<ModelInfo>, LlmError>
    where
        F: Future<Output = Result<Vec<ModelInfo>, LlmError>>,
    {
        let fresh = |cache: &Option<(Instant, Vec<ModelInfo>)>| {
            cache.as_ref().filter(|(at, _)| at.elapsed() < MODELS_CACHE_TTL).map(|(_, m)| m.clone())
        };
        if let Some(models) = fresh(&self.0.lock().unwrap_or_else(|p| p.into_inner())) {
            return Ok(models);
        }
        let models = read.await?;
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), models.clone()));
        Ok(models)
    }
}

/// A refusal that says "busy": the backend's 429, or a 503 (overloaded, or
/// still loading the model).
pub fn busy(status: StatusCode, message: &str, retry_after: Option<u64>) -> Option<LlmError> {
    matches!(status, StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE)
        .then(|| LlmError::Busy { message: message.to_owned(), retry_after })
}

/// A refusal of the deployment's key (401, 403): the backend is unusable as
/// configured, which is not the client's doing.
pub fn refused_key(status: StatusCode) -> Option<LlmError> {
    matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN)
        .then(|| LlmError::Unavailable(format!("the backend refused its API key ({status})")))
}

/// `Retry-After` in seconds (an HTTP date is read as "soon"), capped at [`MAX_RETRY_AFTER_SECS`].
pub fn retry_after(headers: &HeaderMap) -> Option<u64> {
    let value = headers.get(http::header::RETRY_AFTER)?.to_str().ok()?.trim();
    let secs = value.parse::<f64>().ok().filter(|s| s.is_finite() && *s >= 0.0).map_or(1, |s| s.ceil() as u64);
    Some(secs.clamp(1, MAX_RETRY_AFTER_SECS))
}

/// A request that failed before any status arrived.
pub fn request_error(err: reqwest::Error) -> LlmError {
    if err.is_timeout() { LlmError::Timeout(TimeoutPhase::Connect) } else { LlmError::Unavailable(error_text(&err)) }
}

/// The error and its causes, for the logs (problem bodies never carry it).
pub fn error_text(err: &reqwest::Error) -> String {
    if err.is_connect() { format!("cannot connect: {}", error_chain(err)) } else { error_chain(err) }
}
