//! The OpenAPI document, generated from the types and route descriptions in
//! this crate. `openapi.yaml` at the repository root is its committed copy.

use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(title = "LlmChat API", version = "1.0.0", description = "Chat sessions and LLM replies over HTTP."),
    components(schemas(
        crate::domain::SessionView,
        crate::domain::CreateSession,
        crate::domain::UpdateSession,
        crate::domain::ModelOptions,
        crate::error::Problem,
        crate::error::ProblemCode,
        crate::health::Health,
    ))
)]
pub struct ApiDoc;

/// The document as YAML, as committed in `openapi.yaml`.
pub fn yaml() -> String {
    ApiDoc::openapi().to_yaml().unwrap_or_default()
}
