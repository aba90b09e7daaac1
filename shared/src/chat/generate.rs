//! Step two of a send: stream the model's reply into the store.

use std::time::Instant;

use super::{CHECKPOINT_INTERVAL, ChatError, LEASE_GRACE, Pending};
use crate::config::Config;
use crate::domain::limits::MAX_REPLY_BYTES;
use crate::domain::{Message, MessageStatus, Timestamp};
use crate::llm::{ChatEvent, ChatModel, Completion, LlmError, ReplyStream, TimeoutPhase};
use crate::store::{MessageRepository, StoreError};

/// A reply's outcome: the reply as it ended, and what went wrong, if anything.
#[derive(Debug)]
pub struct Generated {
    pub reply: Message,
    /// The model failed or timed out: the reply is `failed` or `incomplete`.
    pub llm_error: Option<LlmError>,
    /// Storing the final reply failed (`NotFound`: the session was deleted meanwhile).
    pub save_error: Option<StoreError>,
}

impl Generated {
    /// The problem to report, if any: the model's failure first, then the store's.
    pub fn problem(&self) -> Option<ChatError> {
        match (&self.llm_error, &self.save_error) {
            (Some(e), _) => Some(ChatError::Llm(e.clone())),
            (None, Some(StoreError::ConditionFailed | StoreError::NotFound)) => Some(ChatError::NotFound("session")),
            (None, Some(e)) => Some(ChatError::Storage(StoreError::Unavailable(e.to_string()))),
            (None, None) => None,
        }
    }

    /// Whether the text so far is stored.
    pub fn text_saved(&self) -> bool {
        self.save_error.is_none() && !self.reply.content.is_empty()
    }
}

/// Generates and stores the reply. `on_delta` sees each piece of text as it
/// arrives; whatever it does (a client may be gone), generation goes on.
pub async fn generate<S: MessageRepository, M: ChatModel>(
    store: &S,
    llm: &M,
    config: &Config,
    pending: Pending,
    mut on_delta: impl FnMut(&str),
) -> Generated {
    let Pending { mut reply, request, .. } = pending;
    let outcome = async {
        let mut stream = llm.chat_stream(&request).await?;
        let mut last_save = Instant::now();
        while let Some(event) = stream.next().await {
            match event? {
                ChatEvent::Delta(text) => {
                    reply.content.push_str(&text);
                    on_delta(&text);
                    if reply.content.len() >= MAX_REPLY_BYTES {
                        // A reply that would not fit in its item: end it here, as a length stop.
                        tracing::warn!(bytes = reply.content.len(), "reply reached the size limit");
                        return Ok(Completion { done_reason: Some("length".to_owned()), ..Completion::default() });
                    }
                }
                ChatEvent::Progress => {}
                ChatEvent::Done(completion) => return Ok(completion),
            }
            // Text or not, a working backend renews the lease, so a live reply never reads as abandoned.
            if last_save.elapsed() >= CHECKPOINT_INTERVAL {
                reply.lease_until = Some(Timestamp::now().plus(config.llm_idle_timeout + LEASE_GRACE));
                if let Err(e) = store.checkpoint_reply(&reply).await {
                    tracing::warn!(error = %e, "could not checkpoint the reply; generation goes on");
                }
                last_save = Instant::now();
            }
        }
        Err(LlmError::Failed("the stream ended without a result".to_owned()))
    }
    .await;

    reply.completed_at = Some(Timestamp::now());
    reply.lease_until = None;
    let llm_error = match outcome {
        Ok(completion) => {
            reply.status = MessageStatus::Complete;
            reply.done_reason = completion.done_reason;
            reply.usage = Some(completion.usage);
            None
        }
        Err(err) => {
            reply.status = match err {
                LlmError::Timeout(TimeoutPhase::BetweenTokens) => MessageStatus::Incomplete,
                LlmError::Timeout(_) if !reply.content.is_empty() => MessageStatus::Incomplete,
                _ => MessageStatus::Failed,
            };
            reply.error_code = Some(err.code());
            tracing::warn!(error = %err, status = ?reply.status, chars = reply.content.len(), "reply did not complete");
            Some(err)
        }
    };
    // If this fails, the client is told so; the lease makes the stored reply
    // read back as `incomplete`, with the text of the last checkpoint.
    let save_error = store.finish_reply(&reply).await.err();
    if let Some(e) = &save_error {
        tracing::error!(error = %e, "could not store the final reply");
    }
    tracing::info!(status = ?reply.status, chars = reply.content.len(), "reply finished");
    Generated { reply, llm_error, save_error }
}
