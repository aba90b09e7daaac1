//! Fitting the conversation into the model's context window.
//!
//! Token counts are estimated (about four characters a token, plus a few
//! tokens of framing per turn) because the exact tokenizer lives in Ollama.
//! The system prompt and the new message are always sent; past turns are
//! added newest first until the budget is spent, so the oldest go first.

use crate::domain::{Message, Role};
use crate::llm::ChatTurn;

/// Characters per token in the estimate.
pub const CHARS_PER_TOKEN: usize = 4;
/// Tokens of chat-template framing counted for every turn.
pub const TOKENS_PER_TURN: u32 = 4;

pub fn estimate_tokens(text: &str) -> u32 {
    let chars = text.chars().count();
    (chars.div_ceil(CHARS_PER_TOKEN) as u32).saturating_add(TOKENS_PER_TURN)
}

/// The turns to send, and whether older turns were left out.
#[derive(Debug, Clone, PartialEq)]
pub struct Context {
    pub turns: Vec<ChatTurn>,
    pub truncated: bool,
}

/// The new message and the system prompt alone do not fit.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("the message needs about {needed} tokens but the model's context leaves {available}")]
pub struct ContextOverflow {
    pub needed: u32,
    pub available: u32,
}

/// Builds the model's input. `history` is newest first; `older_exist` says
/// the store held more than was read.
pub fn fit(
    system_prompt: Option<&str>,
    history: &[Message],
    new_message: &str,
    context_tokens: u32,
    reply_reserve: u32,
    older_exist: bool,
) -> Result<Context, ContextOverflow> {
    let available = context_tokens.saturating_sub(reply_reserve.min(context_tokens / 2));
    let fixed = system_prompt.map(estimate_tokens).unwrap_or(0) + estimate_tokens(new_message);
    if fixed > available {
        return Err(ContextOverflow { needed: fixed, available });
    }
    let mut budget = available - fixed;
    let mut kept: Vec<ChatTurn> = Vec::new();
    let usable = history.iter().filter(|m| m.role != Role::System && !m.content.is_empty());
    let mut truncated = older_exist;
    for message in usable {
        let cost = estimate_tokens(&message.content);
        if cost > budget {
            truncated = true;
            break;
        }
        budget -= cost;
        kept.push(ChatTurn { role: message.role, content: message.content.clone() });
    }
    let mut turns = Vec::with_capacity(kept.len() + 2);
    if let Some(prompt) = system_prompt {
        turns.push(ChatTurn { role: Role::System, content: prompt.to_owned() });
    }
    turns.extend(kept.into_iter().rev());
    turns.push(ChatTurn { role: Role::User, content: new_message.to_owned() });
    Ok(Context { turns, truncated })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Timestamp;

    fn msg(seq: u64, role: Role, content: &str) -> Message {
        let mut m = Message::user(uuid::Uuid::nil(), seq, content.to_owned(), None, Timestamp::now());
        m.role = role;
        m
    }

    /// Newest first, as the store returns it: 40-character turns cost 14 tokens each.
    fn history(n: u64) -> Vec<Message> {
        (1..=n)
            .rev()
            .map(|seq| msg(seq, if seq % 2 == 1 { Role::User } else { Role::Assistant }, &format!("{seq:0>40}")))
            .collect()
    }

    #[test]
    fn everything_fits_in_a_large_window() {
        let c = fit(Some("sys"), &history(4), "new", 4096, 512, false).unwrap();
        assert!(!c.truncated);
        let roles: Vec<Role> = c.turns.iter().map(|t| t.role).collect();
        assert_eq!(roles, [Role::System, Role::User, Role::Assistant, Role::User, Role::Assistant, Role::User]);
        assert_eq!(c.turns[1].content, format!("{:0>40}", 1), "oldest first in the request");
        assert_eq!(c.turns.last().unwrap().content, "new");
    }

    #[test]
    fn oldest_turns_go_first_and_the_system_prompt_stays() {
        // 100 tokens of context, 20 reserved: 80 available; system 5 + new 5 leaves 70: five 14-token turns.
        let c = fit(Some("sys"), &history(10), "new", 100, 20, false).unwrap();
        assert!(c.truncated);
        assert_eq!(c.turns[0].role, Role::System);
        let kept: Vec<String> = c.turns[1..c.turns.len() - 1].iter().map(|t| t.content.clone()).collect();
        let expected: Vec<String> = (6..=10).map(|s| format!("{s:0>40}")).collect();
        assert_eq!(kept, expected, "the newest five turns, in order");
    }

    #[test]
    fn unread_older_history_counts_as_truncation() {
        let c = fit(None, &history(2), "new", 4096, 512, true).unwrap();
        assert!(c.truncated);
    }

    #[test]
    fn a_message_that_cannot_fit_is_an_overflow() {
        let huge = "x".repeat(4000);
        let err = fit(Some("sys"), &[], &huge, 512, 256, false).unwrap_err();
        assert!(err.needed > err.available);
    }
}
