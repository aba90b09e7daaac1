//! Domain types: owners, sessions, model options, timestamps, and the rules
//! every value must satisfy before it reaches the store.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};
use time::OffsetDateTime;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::limits::*;

mod message;
pub use message::*;

/// A rule broken by a value the client sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

fn invalid(msg: impl Into<String>) -> Invalid {
    Invalid(msg.into())
}

/// Who owns a session: the API key's owner or the authorizer's subject.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OwnerId(String);

impl OwnerId {
    pub fn parse(value: &str) -> Result<Self, Invalid> {
        let ok = !value.is_empty()
            && value.chars().count() <= MAX_OWNER_CHARS
            && value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@' | ':' | '|'));
        if ok {
            Ok(OwnerId(value.to_owned()))
        } else {
            Err(invalid(format!(
                "owner must be 1-{MAX_OWNER_CHARS} characters of letters, digits and . _ - @ : |"
            )))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OwnerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A session id: a UUID, parsed strictly from the path.
pub fn parse_session_id(value: &str) -> Result<Uuid, Invalid> {
    Uuid::try_parse(value).map_err(|_| invalid(format!("`{}` is not a session id (a UUID)", truncate(value, 64))))
}

fn truncate(value: &str, max: usize) -> String {
    value.chars().take(max).collect()
}

/// A UTC instant with millisecond precision, written as fixed-width RFC 3339
/// (`2026-11-24T05:00:00.000Z`) so that strings sort in time order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(OffsetDateTime);

const TIMESTAMP_FORMAT: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

impl Timestamp {
    pub fn now() -> Self {
        let now = OffsetDateTime::now_utc();
        // Drop sub-millisecond digits so a value survives a round trip through its text form.
        let millis = now.millisecond();
        Timestamp(now.replace_millisecond(millis).unwrap_or(now))
    }

    pub fn parse(value: &str) -> Result<Self, Invalid> {
        time::PrimitiveDateTime::parse(value, TIMESTAMP_FORMAT)
            .map(|t| Timestamp(t.assume_utc()))
            .map_err(|_| invalid("malformed timestamp"))
    }

    pub fn from_unix_seconds(secs: i64) -> Option<Self> {
        OffsetDateTime::from_unix_timestamp(secs).ok().map(Timestamp)
    }

    pub fn unix_seconds(&self) -> i64 {
        self.0.unix_timestamp()
    }

    pub fn plus(&self, d: std::time::Duration) -> Self {
        Timestamp(self.0 + d)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.0.format(TIMESTAMP_FORMAT).map_err(|_| fmt::Error)?;
        f.write_str(&text)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Timestamp::parse(&text).map_err(serde::de::Error::custom)
    }
}

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
        Ok(())
    }
}

/// Free-form string pairs a client keeps on a session (tags, client ids).
pub type Metadata = BTreeMap<String, String>;

/// The schema of [`Metadata`], with its bounds.
fn metadata_schema() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(format!(
            "Up to {MAX_METADATA_ENTRIES} string pairs; keys 1-{MAX_METADATA_KEY_CHARS} characters, \
values up to {MAX_METADATA_VALUE_CHARS}."
        )))
        .max_properties(Some(MAX_METADATA_ENTRIES))
        .property_names(Some(ObjectBuilder::new().schema_type(Type::String).min_length(Some(1)).max_length(Some(MAX_METADATA_KEY_CHARS))))
        .additional_properties(Some(AdditionalProperties::RefOr(
            ObjectBuilder::new().schema_type(Type::String).max_length(Some(MAX_METADATA_VALUE_CHARS)).into(),
        )))
        .build()
}

/// [`metadata_schema`] that may also be `null` (to clear it).
fn nullable_metadata_schema() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{SchemaType, Type};
    let mut schema = metadata_schema();
    schema.schema_type = SchemaType::from_iter([Type::Object, Type::Null]);
    schema
}

pub fn validate_metadata(metadata: &Metadata) -> Result<(), Invalid> {
    if metadata.len() > MAX_METADATA_ENTRIES {
        return Err(invalid(format!("metadata has at most {MAX_METADATA_ENTRIES} entries")));
    }
    for (k, v) in metadata {
        if k.is_empty() || k.chars().count() > MAX_METADATA_KEY_CHARS {
            return Err(invalid(format!("metadata keys are 1-{MAX_METADATA_KEY_CHARS} characters")));
        }
        if v.chars().count() > MAX_METADATA_VALUE_CHARS {
            return Err(invalid(format!("metadata values are at most {MAX_METADATA_VALUE_CHARS} characters")));
        }
    }
    Ok(())
}

pub fn validate_title(title: &str) -> Result<(), Invalid> {
    if title.trim().is_empty() {
        return Err(invalid("title must not be blank"));
    }
    if title.chars().count() > MAX_TITLE_CHARS {
        return Err(invalid(format!("title is at most {MAX_TITLE_CHARS} characters")));
    }
    Ok(())
}

pub fn validate_system_prompt(prompt: &str) -> Result<(), Invalid> {
    if prompt.chars().count() > MAX_SYSTEM_PROMPT_CHARS {
        return Err(invalid(format!("system_prompt is at most {MAX_SYSTEM_PROMPT_CHARS} characters")));
    }
    Ok(())
}

/// Model names as Ollama writes them: `name[:tag]`, optionally with a namespace.
pub fn validate_model_name(model: &str) -> Result<(), Invalid> {
    let ok = !model.is_empty()
        && model.chars().count() <= MAX_MODEL_NAME_CHARS
        && model.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':' | '/'));
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "model must be 1-{MAX_MODEL_NAME_CHARS} characters of letters, digits and . _ - : /"
        )))
    }
}

/// Title given to a session created without one.
pub const DEFAULT_TITLE: &str = "New chat";

/// A chat session as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    pub id: Uuid,
    pub owner: OwnerId,
    pub title: String,
    pub model: String,
    pub system_prompt: Option<String>,
    pub options: ModelOptions,
    pub metadata: Metadata,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// Sequence number of the newest message; 0 while the session is empty.
    pub last_seq: u64,
    /// When the table's TTL removes the session, if sessions expire.
    pub expires_at: Option<Timestamp>,
}

/// A session as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(as = Session)]
pub struct SessionView {
    pub id: Uuid,
    #[schema(max_length = 200, example = "Trip to Lisbon")]
    pub title: String,
    #[schema(example = "gemma3:270m")]
    pub model: String,
    #[schema(max_length = 16000)]
    pub system_prompt: Option<String>,
    pub options: ModelOptions,
    #[schema(schema_with = metadata_schema)]
    pub metadata: Metadata,
    #[schema(value_type = String, format = DateTime, example = "2026-11-24T05:00:00.000Z")]
    pub created_at: Timestamp,
    /// Time of the last change or message: lists are sorted by it, newest first.
    #[schema(value_type = String, format = DateTime, example = "2026-11-24T05:00:00.000Z")]
    pub updated_at: Timestamp,
    /// How many messages the session holds.
    pub message_count: u64,
    /// When the session expires, if the deployment sets a retention period.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Timestamp>,
}

impl From<&Session> for SessionView {
    fn from(s: &Session) -> Self {
        SessionView {
            id: s.id,
            title: s.title.clone(),
            model: s.model.clone(),
            system_prompt: s.system_prompt.clone(),
            options: s.options.clone(),
            metadata: s.metadata.clone(),
            created_at: s.created_at,
            updated_at: s.updated_at,
            message_count: s.last_seq,
            expires_at: s.expires_at,
        }
    }
}

/// Body of `POST /sessions`. Every field is optional.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSession {
    #[schema(max_length = 200, example = "Trip to Lisbon")]
    #[serde(default)]
    pub title: Option<String>,
    /// Defaults to the deployment's default model.
    #[schema(max_length = 128, example = "gemma3:270m")]
    #[serde(default)]
    pub model: Option<String>,
    #[schema(max_length = 16000, example = "You are a concise travel assistant.")]
    #[serde(default)]
    pub system_prompt: Option<String>,
    #[serde(default)]
    pub options: Option<ModelOptions>,
    #[schema(schema_with = metadata_schema)]
    #[serde(default)]
    pub metadata: Option<Metadata>,
}

impl CreateSession {
    pub fn validate(&self) -> Result<(), Invalid> {
        if let Some(t) = &self.title {
            validate_title(t)?;
        }
        if let Some(m) = &self.model {
            validate_model_name(m)?;
        }
        if let Some(p) = &self.system_prompt {
            validate_system_prompt(p)?;
        }
        if let Some(o) = &self.options {
            o.validate()?;
        }
        if let Some(m) = &self.metadata {
            validate_metadata(m)?;
        }
        Ok(())
    }
}

/// Body of `PATCH /sessions/{id}`: fields present are replaced. `null` clears
/// `system_prompt`, `options` and `metadata`; `title` and `model` cannot be null.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateSession {
    #[schema(value_type = Option<String>, max_length = 200)]
    #[serde(default, deserialize_with = "present_or_null")]
    pub title: Option<Option<String>>,
    #[schema(value_type = Option<String>, max_length = 128)]
    #[serde(default, deserialize_with = "present_or_null")]
    pub model: Option<Option<String>>,
    #[schema(value_type = Option<String>, max_length = 16000)]
    #[serde(default, deserialize_with = "present_or_null")]
    pub system_prompt: Option<Option<String>>,
    #[schema(value_type = Option<ModelOptions>)]
    #[serde(default, deserialize_with = "present_or_null")]
    pub options: Option<Option<ModelOptions>>,
    #[schema(schema_with = nullable_metadata_schema)]
    #[serde(default, deserialize_with = "present_or_null")]
    pub metadata: Option<Option<Metadata>>,
}

impl UpdateSession {
    pub fn validate(&self) -> Result<(), Invalid> {
        match &self.title {
            Some(None) => return Err(invalid("title cannot be null")),
            Some(Some(t)) => validate_title(t)?,
            None => {}
        }
        match &self.model {
            Some(None) => return Err(invalid("model cannot be null")),
            Some(Some(m)) => validate_model_name(m)?,
            None => {}
        }
        if let Some(Some(p)) = &self.system_prompt {
            validate_system_prompt(p)?;
        }
        if let Some(Some(o)) = &self.options {
            o.validate()?;
        }
        if let Some(Some(m)) = &self.metadata {
            validate_metadata(m)?;
        }
        Ok(())
    }

    /// Applies a validated change to `session`.
    pub fn apply(&self, session: &mut Session) {
        if let Some(Some(t)) = &self.title {
            session.title = t.clone();
        }
        if let Some(Some(m)) = &self.model {
            session.model = m.clone();
        }
        if let Some(p) = &self.system_prompt {
            session.system_prompt = p.clone();
        }
        if let Some(o) = &self.options {
            session.options = o.clone().unwrap_or_default();
        }
        if let Some(m) = &self.metadata {
            session.metadata = m.clone().unwrap_or_default();
        }
    }
}

/// Tells a field sent as `null` (Some(None)) from a field left out (None).
fn present_or_null<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// A page of a list: pass `next_cursor` back as `cursor` for the next one.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Opaque; `null` on the last page.
    pub next_cursor: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_and_sort_as_text() {
        let a = Timestamp::now();
        let text = a.to_string();
        assert_eq!(text.len(), "2026-11-24T05:00:00.000Z".len());
        assert_eq!(Timestamp::parse(&text).unwrap(), a);
        let b = a.plus(std::time::Duration::from_millis(1));
        assert!(a.to_string() < b.to_string());
        assert!(Timestamp::parse("2026-11-24 05:00").is_err());
    }

    #[test]
    fn patch_tells_null_from_absent() {
        let p: UpdateSession = serde_json::from_str(r#"{"system_prompt": null}"#).unwrap();
        assert_eq!(p.system_prompt, Some(None));
        let p: UpdateSession = serde_json::from_str(r#"{"title": "x"}"#).unwrap();
        assert_eq!(p.system_prompt, None);
        let p: UpdateSession = serde_json::from_str(r#"{"title": null}"#).unwrap();
        assert!(p.validate().is_err(), "a title cannot be cleared");
    }

    #[test]
    fn validation_rejects_what_breaks_a_limit() {
        let long_title = "t".repeat(MAX_TITLE_CHARS + 1);
        assert!(validate_title(&long_title).is_err());
        assert!(validate_title(&"é".repeat(MAX_TITLE_CHARS)).is_ok(), "limits count characters, not bytes");
        assert!(validate_title("   ").is_err());
        assert!(validate_model_name("llama3.2:1b").is_ok());
        assert!(validate_model_name("rm -rf").is_err());
        let opts = ModelOptions { temperature: Some(3.0), ..Default::default() };
        assert!(opts.validate().is_err());
        let many: Metadata = (0..=MAX_METADATA_ENTRIES).map(|i| (i.to_string(), String::new())).collect();
        assert!(validate_metadata(&many).is_err());
        assert!(serde_json::from_str::<CreateSession>(r#"{"titel": "typo"}"#).is_err());
    }

    #[test]
    fn request_options_override_session_options_field_by_field() {
        let session = ModelOptions { temperature: Some(0.2), seed: Some(1), ..Default::default() };
        let request = ModelOptions { temperature: Some(0.9), num_predict: Some(64), ..Default::default() };
        let merged = session.overridden_by(&request);
        assert_eq!((merged.temperature, merged.seed, merged.num_predict), (Some(0.9), Some(1), Some(64)));
    }

    #[test]
    fn owner_ids_are_restricted() {
        assert!(OwnerId::parse("alice@example.com").is_ok());
        assert!(OwnerId::parse("").is_err());
        assert!(OwnerId::parse("a#b").is_err(), "'#' would break the key layout");
    }
}
