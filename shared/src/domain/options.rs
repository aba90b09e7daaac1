//! Sampling options a session or a send passes to the model.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::limits::{MAX_FORMAT_BYTES, MAX_STOP_SEQUENCE_CHARS, MAX_STOP_SEQUENCES};
use super::{Invalid, invalid};

/// Sampling options passed to the model. Unknown fields are rejected so a
/// typo does not silently do nothing.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelOptions {
    /// Sampling temperature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0.0, maximum = 2.0)]
    pub temperature: Option<f64>,
    /// Nucleus sampling probability mass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub top_p: Option<f64>,
    /// Sample from the k most likely tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 1000)]
    pub top_k: Option<u32>,
    /// Context window in tokens; also bounds the history sent to the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 256, maximum = 1048576)]
    pub num_ctx: Option<u32>,
    /// Most tokens to generate in one reply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 131072)]
    pub num_predict: Option<u32>,
    /// Seed for reproducible sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    /// Penalty for repeated tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0.0, maximum = 2.0)]
    pub repeat_penalty: Option<f64>,
    /// Sequences that end the reply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_items = 8)]
    pub stop: Option<Vec<String>>,
    /// Reasoning: `true` / `false`, or an effort `low` / `medium` / `high`,
    /// where the model and backend support it. The thinking streams as
    /// `reply.thinking.delta` and is stored apart from the reply's content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub think: Option<Think>,
    /// Structured output: `"json"`, or a JSON Schema (an object) the reply must follow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>, example = json!("json"))]
    pub format: Option<serde_json::Value>,
}

/// Whether, and how hard, the model thinks before it answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum Think {
    /// On or off (the backend's own effort when on).
    Switch(bool),
    Effort(ThinkEffort),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ThinkEffort {
    Low,
    Medium,
    High,
}

impl ThinkEffort {
    pub fn as_str(self) -> &'static str {
        match self {
            ThinkEffort::Low => "low",
            ThinkEffort::Medium => "medium",
            ThinkEffort::High => "high",
        }
    }
}

impl ModelOptions {
    /// These options with every field `over` sets taking its place.
    pub fn overridden_by(&self, over: &ModelOptions) -> ModelOptions {
        ModelOptions {
            temperature: over.temperature.or(self.temperature),
            top_p: over.top_p.or(self.top_p),
            top_k: over.top_k.or(self.top_k),
            num_ctx: over.num_ctx.or(self.num_ctx),
            num_predict: over.num_predict.or(self.num_predict),
            seed: over.seed.or(self.seed),
            repeat_penalty: over.repeat_penalty.or(self.repeat_penalty),
            stop: over.stop.clone().or_else(|| self.stop.clone()),
            think: over.think.or(self.think),
            format: over.format.clone().or_else(|| self.format.clone()),
        }
    }

    pub fn validate(&self) -> Result<(), Invalid> {
        fn range(name: &str, v: Option<f64>, lo: f64, hi: f64) -> Result<(), Invalid> {
            match v {
                Some(x) if !(lo..=hi).contains(&x) => Err(invalid(format!("options.{name} must be from {lo} to {hi}"))),
                _ => Ok(()),
            }
        }
        range("temperature", self.temperature, 0.0, 2.0)?;
        range("top_p", self.top_p, 0.0, 1.0)?;
        range("repeat_penalty", self.repeat_penalty, 0.0, 2.0)?;
        range("top_k", self.top_k.map(f64::from), 1.0, 1000.0)?;
        range("num_ctx", self.num_ctx.map(f64::from), 256.0, 1_048_576.0)?;
        range("num_predict", self.num_predict.map(f64::from), 1.0, 131_072.0)?;
        if let Some(stop) = &self.stop {
            if stop.len() > MAX_STOP_SEQUENCES {
                return Err(invalid(format!("options.stop has at most {MAX_STOP_SEQUENCES} entries")));
            }
            if stop.iter().any(|s| s.is_empty() || s.chars().count() > MAX_STOP_SEQUENCE_CHARS) {
                return Err(invalid(format!("each options.stop entry is 1-{MAX_STOP_SEQUENCE_CHARS} characters")));
            }
        }
        if let Some(format) = &self.format {
            validate_format(format)?;
        }
        Ok(())
    }
}

/// A structured-output format: the string `"json"`, or a JSON Schema object
/// of at most [`MAX_FORMAT_BYTES`].
pub fn validate_format(format: &serde_json::Value) -> Result<(), Invalid> {
    let ok = match format {
        serde_json::Value::String(s) => s == "json",
        serde_json::Value::Object(_) => serde_json::to_vec(format).map_or(0, |v| v.len()) <= MAX_FORMAT_BYTES,
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(invalid(format!("options.format is \"json\" or a JSON Schema object of at most {MAX_FORMAT_BYTES} bytes")))
    }
}

