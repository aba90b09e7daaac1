//! Fitting the conversation into the model's context window.
//!
//! Token counts are estimated ([`crate::domain::tokens`]: by script, erring
//! high) because the exact tokenizer lives in the model's server, then scaled
//! by the session's calibration: what its backend really counted in the
//! newest reply's prompt, per token estimated. The system prompt and the new
//! message are always sent; past turns are added newest first until the
//! budget is spent, so the oldest go first.

use crate::domain::tokens::{TOKENS_PER_PROMPT, TokenCalibration, estimate_turn};
use crate::domain::{Message, Role};
use crate::llm::ChatTurn;

/// The tokens a prompt may take.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budget {
    /// The model's context (`num_ctx`).
    pub context_tokens: u32,
    /// Kept free for the reply (`num_predict`), at most half the context.
    pub reply_reserve: u32,
    /// The session's correction of the estimate.
    pub calibration: TokenCalibration,
}

impl Budget {
    /// What is left for the prompt once the reply's reserve is set aside.
    pub fn available(&self) -> u32 {
        self.context_tokens.saturating_sub(self.reply_reserve.min(self.context_tokens / 2))
    }
}

/// The estimated tokens of a prompt of these turns, uncalibrated.
pub fn estimate_prompt(turns: &[ChatTurn]) -> u32 {
    turns.iter().fold(TOKENS_PER_PROMPT, |sum, t| sum.saturating_add(estimate_turn(&t.content)))
}

/// How many of a session's newest measured replies its calibration takes
/// the largest of. One measure alone swings with what the prompt held (a
/// long turn in a finely split script, or short replies), and the
/// estimate must not follow it down the next time.
pub const CALIBRATION_WINDOW: usize = 8;

/// The session's calibration for `model`: the largest measured on its
/// newest [`CALIBRATION_WINDOW`] replies by that model (`history` is newest
/// first); none before any, or for a model the session has not used yet.
pub fn calibration(history: &[Message], model: &str) -> TokenCalibration {
    history
        .iter()
        .filter(|m| m.role == Role::Assistant && m.model.as_deref() == Some(model))
        .filter_map(|m| m.prompt_calibration)
        .take(CALIBRATION_WINDOW)
        .max()
        .unwrap_or(TokenCalibration::NONE)
}

/// What a reply measures: a prompt estimated at `estimated` tokens
/// (uncalibrated, as [`Context::estimated_tokens`]) that the backend counted
/// as `counted`. The once-per-prompt framing is left out of both, as
/// [`fit`] does not scale it. `None` when the backend counted nothing.
pub fn measure(counted: u64, estimated: u64) -> Option<TokenCalibration> {
    let framing = u64::from(TOKENS_PER_PROMPT);
    if counted == 0 {
        return None;
    }
    TokenCalibration::measured(counted.saturating_sub(framing).max(1), estimated.saturating_sub(framing))
}

/// The turns to send, and whether older turns were left out.
#[derive(Debug, Clone, PartialEq)]
pub struct Context {
    pub turns: Vec<ChatTurn>,
    pub truncated: bool,
    /// The prompt's tokens as estimated, before calibration: what the
    /// backend's own count is measured against.
    pub estimated_tokens: u32,
    /// The same, calibrated: what the budget was charged (at most its `available`).
    pub budgeted_tokens: u32,
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
    budget: &Budget,
    older_exist: bool,
) -> Result<Context, ContextOverflow> {
    let available = budget.available();
    // The prompt's own framing is counted once and not scaled; every turn is.
    let fixed = system_prompt.map(estimate_turn).unwrap_or(0).saturating_add(estimate_turn(new_message));
    let needed = TOKENS_PER_PROMPT.saturating_add(budget.calibration.apply(fixed));
    if needed > available {
        return Err(ContextOverflow { needed, available });
    }
    let (mut estimated, mut budgeted) = (TOKENS_PER_PROMPT.saturating_add(fixed), needed);
    let mut kept: Vec<ChatTurn> = Vec::new();
    let usable = history.iter().filter(|m| m.role != Role::System && !m.content.is_empty());
    let mut truncated = older_exist;
    for message in usable {
        let cost = estimate_turn(&message.content);
        let charged = budget.calibration.apply(cost);
        if charged > available - budgeted {
            truncated = true;
            break;
        }
        estimated = estimated.saturating_add(cost);
        budgeted += charged;
        kept.push(ChatTurn { role: message.role, content: message.content.clone() });
    }
    let mut turns = Vec::with_capacity(kept.len() + 2);
    if let Some(prompt) = system_prompt {
        turns.push(ChatTurn { role: Role::System, content: prompt.to_owned() });
    }
    turns.extend(kept.into_iter().rev());
    turns.push(ChatTurn { role: Role::User, content: new_message.to_owned() });
    Ok(Context { turns, truncated, estimated_tokens: estimated, budgeted_tokens: budgeted })
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

    fn budget(context_tokens: u32, reply_reserve: u32) -> Budget {
        Budget { context_tokens, reply_reserve, calibration: TokenCalibration::NONE }
    }

    fn kept(c: &Context) -> Vec<String> {
        c.turns.iter().filter(|t| t.role != Role::System).map(|t| t.content.clone()).collect()
    }

    #[test]
    fn everything_fits_in_a_large_window() {
        let c = fit(Some("sys"), &history(4), "new", &budget(4096, 512), false).unwrap();
        assert!(!c.truncated);
        let roles: Vec<Role> = c.turns.iter().map(|t| t.role).collect();
        assert_eq!(roles, [Role::System, Role::User, Role::Assistant, Role::User, Role::Assistant, Role::User]);
        assert_eq!(c.turns[1].content, format!("{:0>40}", 1), "oldest first in the request");
        assert_eq!(c.turns.last().unwrap().content, "new");
        assert_eq!(c.estimated_tokens, TOKENS_PER_PROMPT + 5 + 4 * 14 + 5);
        assert_eq!(c.budgeted_tokens, c.estimated_tokens, "no calibration yet");
    }

    #[test]
    fn oldest_turns_go_first_and_the_system_prompt_stays() {
        // 132 tokens of context, 20 reserved: 112 available; the prompt's 32,
        // system 5 and new 5 leave 70: five 14-token turns.
        let c = fit(Some("sys"), &history(10), "new", &budget(132, 20), false).unwrap();
        assert!(c.truncated);
        assert_eq!(c.turns[0].role, Role::System);
        let kept: Vec<String> = c.turns[1..c.turns.len() - 1].iter().map(|t| t.content.clone()).collect();
        let expected: Vec<String> = (6..=10).map(|s| format!("{s:0>40}")).collect();
        assert_eq!(kept, expected, "the newest five turns, in order");
        assert_eq!(c.budgeted_tokens, 112);
    }

    #[test]
    fn unread_older_history_counts_as_truncation() {
        let c = fit(None, &history(2), "new", &budget(4096, 512), false).unwrap();
        assert!(!c.truncated);
        let c = fit(None, &history(2), "new", &budget(4096, 512), true).unwrap();
        assert!(c.truncated);
    }

    #[test]
    fn a_message_that_cannot_fit_is_an_overflow() {
        let huge = "x".repeat(4000);
        let err = fit(Some("sys"), &[], &huge, &budget(512, 256), false).unwrap_err();
        assert!(err.needed > err.available);
    }

    /// Eight turns of 120 Han characters: 30 tokens each at four characters
    /// a token (8 × 34 = 272 with framing, which fits 400), but about 120
    /// each as CJK tokenizers count them.
    fn chinese_history() -> Vec<Message> {
        (1..=8u64)
            .rev()
            .map(|seq| {
                let role = if seq % 2 == 1 { Role::User } else { Role::Assistant };
                msg(seq, role, &format!("第{seq}轮").chars().chain("我们今天去公园散步吧".repeat(12).chars()).take(120).collect::<String>())
            })
            .collect()
    }

    #[test]
    fn a_chinese_history_that_four_characters_a_token_would_fit_is_truncated() {
        let history = chinese_history();
        let old_rule: u32 = history.iter().map(|m| (m.content.chars().count() as u32).div_ceil(4) + 4).sum();
        assert!(old_rule + 32 + 5 <= 400, "the old estimate kept everything ({old_rule})");
        let c = fit(None, &history, "你好", &budget(512, 112), false).unwrap();
        assert!(c.truncated, "older turns dropped, and said so");
        // What a tokenizer spending one token a Han character counts: the prompt fits.
        let counted: u32 = c.turns.iter().map(|t| t.content.chars().count() as u32 + 4).sum();
        assert!(counted <= 400, "{counted} tokens sent for 400");
        assert_eq!(kept(&c).len(), 3, "two whole turns and the new message");
        assert!(kept(&c)[0].starts_with("第7轮"), "the newest turns stay: {:?}", kept(&c));
    }

    #[test]
    fn a_calibrated_session_fits_fewer_turns() {
        let plain = fit(None, &history(10), "new", &budget(512, 112), false).unwrap();
        let calibrated = Budget { calibration: TokenCalibration::measured(3, 1).unwrap(), ..budget(512, 112) };
        let fitted = fit(None, &history(10), "new", &calibrated, false).unwrap();
        assert!(!plain.truncated && fitted.truncated);
        assert!(kept(&fitted).len() < kept(&plain).len());
        assert_eq!(fitted.budgeted_tokens - 32, (fitted.estimated_tokens - 32) * 3, "turns charged three times their estimate");
        assert!(fitted.budgeted_tokens <= 400);
        // Of 400, the prompt's 32 and the new message's 5 are charged 47, then
        // eight 14-token turns 42 each.
        assert_eq!(kept(&fitted).len(), 9);
        assert_eq!(fitted.budgeted_tokens, 47 + 8 * 42);
    }

    fn reply(seq: u64, model: &str, ratio: Option<f64>) -> Message {
        let mut m = msg(seq, Role::Assistant, "ok");
        m.model = Some(model.to_owned());
        m.prompt_calibration = ratio.map(TokenCalibration::from_ratio);
        m
    }

    #[test]
    fn the_calibration_is_the_largest_of_the_newest_replies_by_the_same_model() {
        let history = vec![
            reply(10, "m", None),
            msg(9, Role::User, "q"),
            reply(8, "other", Some(3.5)),
            reply(6, "m", Some(1.5)),
            reply(4, "m", Some(2.0)),
        ];
        assert_eq!(calibration(&history, "m").ratio(), 2.0, "a reply without a count is passed over");
        assert_eq!(calibration(&history, "other").ratio(), 3.5);
        assert_eq!(calibration(&history, "new-model"), TokenCalibration::NONE);
        assert_eq!(calibration(&[], "m"), TokenCalibration::NONE);
        // Only the newest measures count: an old one falls out of the window.
        let mut long: Vec<Message> = (0..CALIBRATION_WINDOW as u64).map(|i| reply(100 - i, "m", Some(1.25))).collect();
        long.push(reply(2, "m", Some(3.0)));
        assert_eq!(calibration(&long, "m").ratio(), 1.25);
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// Text in any script: English, Chinese, Cyrillic, anything.
        fn text() -> impl Strategy<Value = String> {
            prop_oneof![
                "[a-z ,.]{0,300}",
                "[\u{4e00}-\u{9fff}\u{3040}-\u{30ff}]{0,120}",
                "[\u{0400}-\u{04ff} ]{0,200}",
                any::<String>(),
            ]
        }

        fn role() -> impl Strategy<Value = Role> {
            prop_oneof![4 => Just(Role::User), 4 => Just(Role::Assistant), 1 => Just(Role::System)]
        }

        /// Newest first, as the store returns it.
        fn stored_history() -> impl Strategy<Value = Vec<Message>> {
            prop::collection::vec((role(), text()), 0..30)
                .prop_map(|turns| turns.into_iter().enumerate().map(|(i, (role, content))| msg(1000 - i as u64, role, &content)).collect())
        }

        fn any_budget() -> impl Strategy<Value = Budget> {
            (256..4096u32, 1..2048u32, 1000..=4000u64).prop_map(|(context_tokens, reply_reserve, per_mille)| Budget {
                context_tokens,
                reply_reserve,
                calibration: TokenCalibration::measured(per_mille, 1000).unwrap(),
            })
        }

        proptest! {
            #[test]
            fn the_fitted_prompt_keeps_the_rules(
                system_prompt in prop::option::of(text()),
                history in stored_history(),
                new_message in text().prop_filter("a message is never empty", |t| !t.is_empty()),
                budget in any_budget(),
                older_exist in any::<bool>(),
            ) {
                let cal = budget.calibration;
                let fixed = system_prompt.as_deref().map(estimate_turn).unwrap_or(0) + estimate_turn(&new_message);
                let fitted = fit(system_prompt.as_deref(), &history, &new_message, &budget, older_exist);
                let c = match fitted {
                    Err(overflow) => {
                        prop_assert_eq!(overflow.needed, TOKENS_PER_PROMPT + cal.apply(fixed));
                        prop_assert!(overflow.needed > overflow.available);
                        prop_assert_eq!(overflow.available, budget.available());
                        return Ok(());
                    }
                    Ok(c) => c,
                };
                // The system prompt first, the new message last, always.
                let mut middle = &c.turns[..];
                if let Some(prompt) = &system_prompt {
                    prop_assert_eq!(&middle[0], &ChatTurn { role: Role::System, content: prompt.clone() });
                    middle = &middle[1..];
                }
                let (last, middle) = middle.split_last().unwrap();
                prop_assert_eq!(last, &ChatTurn { role: Role::User, content: new_message.clone() });

                // The past turns are the newest ones, in the order they were written.
                let usable: Vec<&Message> = history.iter().filter(|m| m.role != Role::System && !m.content.is_empty()).collect();
                let kept = middle.len();
                let newest: Vec<ChatTurn> =
                    usable[..kept].iter().rev().map(|m| ChatTurn { role: m.role, content: m.content.clone() }).collect();
                prop_assert_eq!(middle, &newest[..]);

                // Within the budget by the calibrated estimate, and the figures say so.
                let charged: u32 = TOKENS_PER_PROMPT + cal.apply(fixed) + middle.iter().map(|t| cal.apply(estimate_turn(&t.content))).sum::<u32>();
                prop_assert_eq!(c.budgeted_tokens, charged);
                prop_assert!(charged <= budget.available(), "{} > {}", charged, budget.available());
                prop_assert_eq!(c.estimated_tokens, estimate_prompt(&c.turns));

                // Truncated exactly when something was left out; and only what did not fit was.
                prop_assert_eq!(c.truncated, older_exist || kept < usable.len());
                if let Some(next) = usable.get(kept) {
                    prop_assert!(charged + cal.apply(estimate_turn(&next.content)) > budget.available());
                }
            }

            #[test]
            fn the_estimate_never_falls_below_four_characters_a_token(text in text()) {
                let old_rule = (text.chars().count() as u32).div_ceil(4);
                prop_assert!(crate::domain::tokens::estimate_text(&text) >= old_rule);
                let cjk = text.chars().filter(|c| crate::domain::tokens::is_cjk(*c)).count() as u32;
                prop_assert!(crate::domain::tokens::estimate_text(&text) >= cjk, "a CJK character is a token at least");
            }
        }
    }

    #[test]
    fn a_measure_leaves_the_prompts_own_framing_out() {
        assert_eq!(measure(0, 100), None, "nothing counted");
        // 32 + 3 × 68: three times the estimate, once the framing is set aside.
        assert_eq!(measure(32 + 3 * 68, 100).unwrap().ratio(), 3.0);
        assert_eq!(measure(10, 100), Some(TokenCalibration::NONE), "a count below the estimate changes nothing");
        assert_eq!(measure(10, 40), Some(TokenCalibration::NONE), "a count below the framing");
    }
}
