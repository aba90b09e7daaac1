//! The OpenAPI document, generated from the types and the route descriptions
//! below. `openapi.yaml` at the repository root is its committed copy
//! (`make openapi` writes it; a test fails when it drifts).
//!
//! The route functions here only carry documentation: the handlers live in
//! `functions/*`, and every route listed here is served by one of them.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::domain::{CreateSession, ModelOptions, Page, SessionView, UpdateSession};
use crate::error::{Problem, ProblemCode};
use crate::health::Health;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "LlmChat API",
        version = "1.0.0",
        description = "Chat sessions with replies from an LLM served by Ollama. Errors are `application/problem+json`."
    ),
    paths(create_session, list_sessions, get_session, update_session, delete_session, health),
    components(schemas(SessionView, CreateSession, UpdateSession, ModelOptions, Page<SessionView>, Problem, ProblemCode, Health)),
    modifiers(&BearerKey),
    security(("api_key" = [])),
    tags((name = "sessions", description = "Chat sessions"), (name = "meta", description = "Service status"))
)]
pub struct ApiDoc;

struct BearerKey;

impl Modify for BearerKey {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("lck_<key id>_<secret>")
                    .description(Some("An API key from `make api-key OWNER=<name>`"))
                    .build(),
            ),
        );
    }
}

/// The document as YAML, as committed in `openapi.yaml`.
pub fn yaml() -> String {
    ApiDoc::openapi().to_yaml().expect("the OpenAPI document serializes")
}

/// The document as JSON, as served at `/openapi.json`.
pub fn json() -> String {
    ApiDoc::openapi().to_pretty_json().expect("the OpenAPI document serializes")
}

#[utoipa::path(
    post, path = "/sessions", tag = "sessions",
    request_body(content = CreateSession, description = "Every field is optional; an empty body is `{}`."),
    responses(
        (status = 201, description = "Created", body = SessionView),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or bad API key", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A value breaks a rule or limit", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Storage unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
#[allow(dead_code)]
fn create_session() {}

#[utoipa::path(
    get, path = "/sessions", tag = "sessions",
    params(
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Page size, default 20"),
        ("cursor" = Option<String>, Query, max_length = 512, description = "`next_cursor` of the previous page"),
    ),
    responses(
        (status = 200, description = "The caller's sessions, most recent activity first", body = Page<SessionView>),
        (status = 400, description = "Bad limit or cursor", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or bad API key", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Storage unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
#[allow(dead_code)]
fn list_sessions() {}

#[utoipa::path(
    get, path = "/sessions/{id}", tag = "sessions",
    params(("id" = uuid::Uuid, Path, description = "Session id")),
    responses(
        (status = 200, description = "The session", body = SessionView),
        (status = 400, description = "The id is not a UUID", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or bad API key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such session for this caller", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Storage unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
#[allow(dead_code)]
fn get_session() {}

#[utoipa::path(
    patch, path = "/sessions/{id}", tag = "sessions",
    params(("id" = uuid::Uuid, Path, description = "Session id")),
    request_body = UpdateSession,
    responses(
        (status = 200, description = "The changed session", body = SessionView),
        (status = 400, description = "Malformed JSON or id", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or bad API key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such session for this caller", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A value breaks a rule or limit", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Storage unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
#[allow(dead_code)]
fn update_session() {}

#[utoipa::path(
    delete, path = "/sessions/{id}", tag = "sessions",
    params(("id" = uuid::Uuid, Path, description = "Session id")),
    responses(
        (status = 204, description = "The session and all its messages are gone"),
        (status = 400, description = "The id is not a UUID", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or bad API key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such session for this caller", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Storage unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
#[allow(dead_code)]
fn delete_session() {}

#[utoipa::path(
    get, path = "/health", tag = "meta", security(()),
    responses(
        (status = 200, description = "Every dependency answers", body = Health),
        (status = 503, description = "A dependency does not answer", body = Health),
    )
)]
#[allow(dead_code)]
fn health() {}

#[cfg(test)]
mod tests {
    /// `openapi.yaml` is what the code generates: run `make openapi` after changing the API.
    #[test]
    fn committed_openapi_yaml_matches_the_code() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi.yaml");
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(committed == super::yaml(), "openapi.yaml is out of date: run `make openapi` and commit it");
    }
}
