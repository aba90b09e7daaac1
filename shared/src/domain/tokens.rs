//! Token estimates for the context budget. The exact tokenizer lives in the
//! model's server, so LlmChat estimates, and errs high: a prompt it thinks
//! fits must fit, or the server cuts it silently while the reply says
//! `context_truncated: false`.
//!
//! A character costs by its script: ASCII (English, code) four to a token;
//! CJK (Han, kana, Hangul) a whole token each, as the common tokenizers
//! (Llama 3, Qwen, Gemma) count them or fewer; other scripts in between;
//! characters beyond the Basic Multilingual Plane (emoji, rare Han) two
//! tokens. A session's estimate is then scaled by what its backend really
//! counted last time ([`TokenCalibration`]), which covers tokenizers that
//! split finer than these weights (one that falls back to bytes for Han
//! spends up to three tokens a character).

use super::limits::MAX_TOKEN_CALIBRATION;

/// The unit of the per-character weights below: a quarter of a token.
const QUARTERS_PER_TOKEN: u64 = 4;
/// ASCII: four characters a token.
pub const ASCII_QUARTERS: u32 = 1;
/// Other characters of two UTF-8 bytes (accented Latin, Greek, Cyrillic,
/// Armenian, Hebrew, Arabic): two characters a token.
pub const TWO_BYTE_QUARTERS: u32 = 2;
/// Other characters of the Basic Multilingual Plane (Indic scripts, Thai,
/// Georgian, Ethiopic, typographic punctuation, symbols): four characters
/// three tokens.
pub const OTHER_BMP_QUARTERS: u32 = 3;
/// Chinese, Japanese and Korean ([`is_cjk`]): one token a character.
pub const CJK_QUARTERS: u32 = 4;
/// Characters beyond the Basic Multilingual Plane: two tokens each.
pub const SUPPLEMENTARY_QUARTERS: u32 = 8;
/// Tokens of chat-template framing counted for every turn (role markers, end of turn).
pub const TOKENS_PER_TURN: u32 = 4;
/// Tokens counted once per prompt: the template's start, the header that
/// opens the reply, and the default system line some templates add (a date,
/// the model's name) when the session has no system prompt.
pub const TOKENS_PER_PROMPT: u32 = 32;

/// Blocks of Chinese, Japanese and Korean writing in the Basic Multilingual
/// Plane: Hangul Jamo, CJK radicals, CJK punctuation, kana, Bopomofo,
/// Hangul compatibility Jamo, enclosed and compatibility forms, Han (extension
/// A and unified), Yi, Hangul syllables, compatibility ideographs and forms,
/// full-width forms.
const CJK_BLOCKS: [(u32, u32); 10] = [
    (0x1100, 0x11FF),
    (0x2E80, 0x2FDF),
    (0x3000, 0x4DBF),
    (0x4E00, 0x9FFF),
    (0xA000, 0xA4CF),
    (0xA960, 0xA97F),
    (0xAC00, 0xD7FF),
    (0xF900, 0xFAFF),
    (0xFE30, 0xFE4F),
    (0xFF00, 0xFFEF),
];

/// Whether `c` is written in a CJK block of the Basic Multilingual Plane.
pub fn is_cjk(c: char) -> bool {
    let c = u32::from(c);
    CJK_BLOCKS.iter().any(|(first, last)| (*first..=*last).contains(&c))
}

/// What one character costs, in quarter tokens.
fn quarters(c: char) -> u32 {
    match c.len_utf8() {
        1 => ASCII_QUARTERS,
        2 => TWO_BYTE_QUARTERS,
        3 if is_cjk(c) => CJK_QUARTERS,
        3 => OTHER_BMP_QUARTERS,
        _ => SUPPLEMENTARY_QUARTERS,
    }
}

/// Tokens of `text` alone, rounded up.
pub fn estimate_text(text: &str) -> u32 {
    let quarters: u64 = text.chars().map(|c| u64::from(quarters(c))).sum();
    u32::try_from(quarters.div_ceil(QUARTERS_PER_TOKEN)).unwrap_or(u32::MAX)
}

/// Tokens of one turn whose content is `text`: its text and its framing.
pub fn estimate_turn(text: &str) -> u32 {
    estimate_text(text).saturating_add(TOKENS_PER_TURN)
}

/// Thousandths: the unit a calibration is kept in, so that applying it is exact integer arithmetic.
const PER_MILLE: u64 = 1000;

/// How many tokens a session's backend really counted per estimated token:
/// its `prompt_eval_count` (Ollama) or `usage.prompt_tokens` (OpenAI) over
/// the estimate of the same prompt. Kept between 1 and
/// [`MAX_TOKEN_CALIBRATION`]: it only ever raises the estimate, because the
/// estimate is meant as an upper bound already and a backend may count less
/// than it was sent (Ollama counts only what it kept of a prompt it had to
/// cut, older versions nothing of a cached prompt).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct TokenCalibration {
    per_mille: u32,
}

impl TokenCalibration {
    /// No correction: the estimate as it is.
    pub const NONE: TokenCalibration = TokenCalibration { per_mille: PER_MILLE as u32 };

    fn bounded(per_mille: u64) -> Self {
        let max = u64::from(MAX_TOKEN_CALIBRATION) * PER_MILLE;
        TokenCalibration { per_mille: per_mille.clamp(PER_MILLE, max) as u32 }
    }

    /// The correction that brings `estimated` tokens up to the `counted`
    /// ones (rounded up), within bounds; `None` when either is zero (the
    /// backend reported no count).
    pub fn measured(counted: u64, estimated: u64) -> Option<Self> {
        if counted == 0 || estimated == 0 {
            return None;
        }
        Some(Self::bounded(counted.saturating_mul(PER_MILLE).div_ceil(estimated)))
    }

    /// A stored ratio read back, within bounds (anything else, say a value
    /// written by hand, is brought back into them).
    pub fn from_ratio(ratio: f64) -> Self {
        if !ratio.is_finite() || ratio <= 1.0 {
            return Self::NONE;
        }
        Self::bounded((ratio * PER_MILLE as f64).round() as u64)
    }

    /// The factor, as stored: 1.0 to [`MAX_TOKEN_CALIBRATION`], in thousandths.
    pub fn ratio(self) -> f64 {
        f64::from(self.per_mille) / PER_MILLE as f64
    }

    /// `tokens` as the backend would count them, rounded up.
    pub fn apply(self, tokens: u32) -> u32 {
        let scaled = (u64::from(tokens) * u64::from(self.per_mille)).div_ceil(PER_MILLE);
        u32::try_from(scaled).unwrap_or(u32::MAX)
    }
}

impl Default for TokenCalibration {
    fn default() -> Self {
        Self::NONE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_script_costs_its_own_weight() {
        assert_eq!(estimate_text(""), 0);
        assert_eq!(estimate_text("abcd"), 1, "ASCII: four characters a token");
        assert_eq!(estimate_text("abcde"), 2, "rounded up");
        assert_eq!(estimate_text("你好世界"), 4, "Han: a token each");
        assert_eq!(estimate_text("こんにちは"), 5, "kana");
        assert_eq!(estimate_text("안녕하세요"), 5, "Hangul");
        assert_eq!(estimate_text("「。」"), 3, "CJK punctuation");
        assert_eq!(estimate_text("Привет"), 3, "Cyrillic: two characters a token");
        assert_eq!(estimate_text("สวัสดี"), 5, "Thai: four characters three tokens (6 × 3/4, up)");
        assert_eq!(estimate_text("👋🏽"), 4, "beyond the BMP: two tokens each");
        assert_eq!(estimate_turn("abcd"), 1 + TOKENS_PER_TURN);
    }

    #[test]
    fn cjk_costs_four_times_what_four_characters_a_token_said() {
        let text = "我们今天去公园散步吧".repeat(40);
        let chars = text.chars().count() as u32;
        assert_eq!(estimate_text(&text), chars);
        assert_eq!(chars.div_ceil(4), 100, "what the estimate used to say");
    }

    #[test]
    fn a_calibration_is_measured_rounded_up_and_kept_in_bounds() {
        assert_eq!(TokenCalibration::measured(0, 100), None, "no count reported");
        assert_eq!(TokenCalibration::measured(100, 0), None);
        assert_eq!(TokenCalibration::measured(250, 100).unwrap().ratio(), 2.5);
        assert_eq!(TokenCalibration::measured(1001, 1000).unwrap().ratio(), 1.001, "rounded up");
        assert_eq!(TokenCalibration::measured(50, 100), Some(TokenCalibration::NONE), "never below the estimate");
        let max = f64::from(MAX_TOKEN_CALIBRATION);
        assert_eq!(TokenCalibration::measured(u64::MAX, 1).unwrap().ratio(), max, "never beyond the bound");
        assert_eq!(TokenCalibration::from_ratio(2.5).apply(10), 25);
        assert_eq!(TokenCalibration::from_ratio(1.001).apply(10), 11, "applied rounded up");
        assert_eq!(TokenCalibration::from_ratio(1e9).ratio(), max);
        for odd in [f64::NAN, f64::INFINITY, -3.0, 0.2] {
            assert_eq!(TokenCalibration::from_ratio(odd), TokenCalibration::NONE, "{odd}");
        }
        assert_eq!(TokenCalibration::NONE.apply(u32::MAX), u32::MAX);
        assert_eq!(TokenCalibration::from_ratio(max).apply(u32::MAX), u32::MAX, "saturates");
        let stored = TokenCalibration::measured(1234, 1000).unwrap();
        assert_eq!(TokenCalibration::from_ratio(stored.ratio()), stored, "a stored ratio reads back the same");
    }
}
