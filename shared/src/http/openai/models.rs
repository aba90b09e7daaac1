//! `GET /v1/models` and `GET /v1/models/{model}` in OpenAI's shape, from the
//! model backend's list (cached briefly by the backend).

use serde_json::{Value, json};

use crate::config::Config;
use crate::domain::Timestamp;
use crate::http::ApiError;
use crate::llm::{ChatModel, LlmError, ModelInfo};

fn model(m: &ModelInfo) -> Value {
    let created = m.modified_at.as_deref().and_then(|t| time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok());
    json!({
        "id": m.name, "object": "model",
        "created": created.map_or(Timestamp::now().unix_seconds(), |t| t.unix_timestamp()),
        "owned_by": m.family.clone().unwrap_or_else(|| "llmchat".to_owned()),
    })
}

pub async fn list<M: ChatModel>(llm: &M) -> Result<Value, ApiError> {
    let models = llm.models().await.map_err(ApiError::Llm)?;
    Ok(json!({"object": "list", "data": models.iter().map(model).collect::<Vec<_>>()}))
}

/// The model `name` (`backend/model`, or a bare name of the default backend).
pub async fn retrieve<M: ChatModel>(llm: &M, config: &Config, name: &str) -> Result<Value, ApiError> {
    let models = llm.models().await.map_err(ApiError::Llm)?;
    let qualified = config.qualified_model(name);
    // Ollama takes a name without a tag as `:latest`.
    let latest = format!("{qualified}:latest");
    models
        .iter()
        .find(|m| m.name == qualified || m.name == latest)
        .map(model)
        .ok_or_else(|| ApiError::Llm(LlmError::ModelNotFound(name.to_owned())))
}
