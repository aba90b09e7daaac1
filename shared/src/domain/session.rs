//! Sessions: what is stored, what a client may create or change, and the rules
//! every field must satisfy.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};
use utoipa::ToSchema;
use uuid::Uuid;

use super::limits::*;
use super::{Invalid, ModelOptions, OwnerId, Timestamp, invalid};

/// Free-form string pairs a client keeps on a session (tags, client ids).
pub type Metadata = BTreeMap<String, String>;

/// The schema of [`Metadata`], with its bounds.
pub fn metadata_schema() -> utoipa::openapi::schema::Object {
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
pub fn nullable_metadata_schema() -> utoipa::openapi::schema::Object {
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

/// Body of `POST /sessions`. Every field is optional.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSession {
    #[schema(max_length = 200, example = "Trip to Lisbon")]
    #[serde(default)]
    pub title: Option<String>,
    /// Defaults to the deployment's default model.
    #[schema(max_length = 128, example = "smollm2:135m")]
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

