//! Configuration from the environment, read once at cold start.
//!
//! A missing or malformed variable stops the function with an error that
//! names the variable, rather than failing on the first request.

use std::time::Duration;

/// Default table name, used locally; the SAM template always sets it.
pub const DEFAULT_TABLE_NAME: &str = "llmchat";
/// Where Ollama listens when `OLLAMA_URL` is not set.
pub const DEFAULT_OLLAMA_URL: &str = "http://127.0.0.1:11434";
/// Model used when a session names none.
pub const DEFAULT_MODEL: &str = "gemma3:270m";

/// Context window assumed when neither the session nor `LLMCHAT_CONTEXT_TOKENS` sets one
/// (Ollama's own default `num_ctx`); it is sent to Ollama so both sides agree.
pub const DEFAULT_CONTEXT_TOKENS: u32 = 4096;

/// Largest model context a client may ask for: every new `num_ctx` makes
/// Ollama reload the model with a KV cache of that size, on a host shared by
/// every user of the deployment.
pub const DEFAULT_MAX_CONTEXT_TOKENS: u32 = 32_768;

/// Longest reply, in tokens, when neither the session nor the request sets
/// `num_predict`: a model that never emits its stop token cannot run until a
/// timeout. The same number is kept free of history in the context.
pub const DEFAULT_MAX_REPLY_TOKENS: u32 = 1024;

/// Longest timeout any `*_TIMEOUT_MS` variable may set (Lambda's own cap is 15 minutes).
pub const MAX_TIMEOUT_MS: u64 = 900_000;

/// How the caller's identity is established.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// `Authorization: Bearer <api key>`, checked against hashed keys in the table.
    ApiKey,
    /// An API Gateway authorizer has already checked the caller; its claims name the owner.
    Authorizer,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line (Lambda, CloudWatch).
    Json,
    /// Human-readable lines (local development).
    Pretty,
}

/// Which browser origins may call the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorsOrigins {
    None,
    Any,
    List(Vec<String>),
}

impl CorsOrigins {
    /// The `access-control-allow-origin` value for a request from `origin`, if allowed.
    pub fn allow(&self, origin: Option<&str>) -> Option<String> {
        match (self, origin) {
            (CorsOrigins::None, _) => None,
            (CorsOrigins::Any, _) => Some("*".to_owned()),
            (CorsOrigins::List(list), Some(origin)) => {
                list.iter().find(|o| o.as_str() == origin).cloned()
            }
            (CorsOrigins::List(_), None) => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    /// `LLMCHAT_TABLE_NAME`
    pub table_name: String,
    /// `DYNAMODB_ENDPOINT`: set only locally (DynamoDB Local).
    pub dynamodb_endpoint: Option<String>,
    /// `OLLAMA_URL`
    pub ollama_url: String,
    /// `LLMCHAT_DEFAULT_MODEL`
    pub default_model: String,
    /// `LLMCHAT_AUTH_MODE`: `api_key` (default) or `authorizer`.
    pub auth_mode: AuthMode,
    /// `LLMCHAT_CORS_ORIGINS`: empty (default), `*`, or a comma-separated list.
    pub cors_origins: CorsOrigins,
    /// `LLMCHAT_SESSION_TTL_DAYS`: 0 (default) keeps sessions forever.
    pub session_ttl: Option<Duration>,
    /// `LLMCHAT_LOG_FORMAT`: `json` (default) or `pretty`.
    pub log_format: LogFormat,
    /// `LLMCHAT_LLM_CONNECT_TIMEOUT_MS`
    pub llm_connect_timeout: Duration,
    /// `LLMCHAT_LLM_FIRST_TOKEN_TIMEOUT_MS`: covers model load.
    pub llm_first_token_timeout: Duration,
    /// `LLMCHAT_LLM_IDLE_TIMEOUT_MS`: longest silence between two tokens.
    pub llm_idle_timeout: Duration,
    /// `LLMCHAT_CONTEXT_TOKENS`: the model context (`num_ctx`) used when a session sets none.
    pub context_tokens: u32,
    /// `LLMCHAT_MAX_CONTEXT_TOKENS`: the largest `num_ctx` a session or request may ask for.
    pub max_context_tokens: u32,
    /// `LLMCHAT_MAX_REPLY_TOKENS`: the longest reply (`num_predict`) when a session sets none.
    pub max_reply_tokens: u32,
    /// `LLMCHAT_SSE_KEEPALIVE_MS`: a `: keep-alive` comment goes out after this long without an event.
    pub sse_keepalive: Duration,
}

/// A variable that is present but unusable.
#[derive(Debug, thiserror::Error)]
#[error("configuration variable {var} is invalid: {reason}")]
pub struct ConfigError {
    pub var: &'static str,
    pub reason: String,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads configuration through `lookup`, so tests need not touch the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());

        let table_name = get("LLMCHAT_TABLE_NAME").unwrap_or_else(|| DEFAULT_TABLE_NAME.to_owned());
        if !table_name_is_valid(&table_name) {
            return Err(invalid("LLMCHAT_TABLE_NAME", "must be 3-255 characters of a-z, A-Z, 0-9, '_', '-', '.'"));
        }
        let dynamodb_endpoint = get("DYNAMODB_ENDPOINT").map(|v| url_var("DYNAMODB_ENDPOINT", v)).transpose()?;
        let ollama_url = url_var("OLLAMA_URL", get("OLLAMA_URL").unwrap_or_else(|| DEFAULT_OLLAMA_URL.to_owned()))?;
        let default_model = get("LLMCHAT_DEFAULT_MODEL").unwrap_or_else(|| DEFAULT_MODEL.to_owned());
        crate::domain::validate_model_name(&default_model)
            .map_err(|e| invalid("LLMCHAT_DEFAULT_MODEL", &e.to_string()))?;

        let auth_mode = match get("LLMCHAT_AUTH_MODE").as_deref() {
            None | Some("api_key") => AuthMode::ApiKey,
            Some("authorizer") => AuthMode::Authorizer,
            Some(_) => return Err(invalid("LLMCHAT_AUTH_MODE", "must be `api_key` or `authorizer`")),
        };
        let cors_origins = match get("LLMCHAT_CORS_ORIGINS") {
            None => CorsOrigins::None,
            Some(v) if v == "*" => CorsOrigins::Any,
            Some(v) => CorsOrigins::List(v.split(',').map(|o| o.trim().to_owned()).filter(|o| !o.is_empty()).collect()),
        };
        let session_ttl = match number("LLMCHAT_SESSION_TTL_DAYS", get("LLMCHAT_SESSION_TTL_DAYS"), 0, 36_500)? {
            0 => None,
            days => Some(Duration::from_secs(days * 24 * 3600)),
        };
        let log_format = match get("LLMCHAT_LOG_FORMAT").as_deref() {
            None | Some("json") => LogFormat::Json,
            Some("pretty") => LogFormat::Pretty,
            Some(_) => return Err(invalid("LLMCHAT_LOG_FORMAT", "must be `json` or `pretty`")),
        };
        let millis = |var: &'static str, default: u64| -> Result<Duration, ConfigError> {
            match get(var) {
                None => Ok(Duration::from_millis(default)),
                value => Ok(Duration::from_millis(number(var, value, 1, MAX_TIMEOUT_MS)?)),
            }
        };
        Ok(Config {
            table_name,
            dynamodb_endpoint,
            ollama_url,
            default_model,
            auth_mode,
            cors_origins,
            session_ttl,
            log_format,
            llm_connect_timeout: millis("LLMCHAT_LLM_CONNECT_TIMEOUT_MS", 2_000)?,
            llm_first_token_timeout: millis("LLMCHAT_LLM_FIRST_TOKEN_TIMEOUT_MS", 120_000)?,
            llm_idle_timeout: millis("LLMCHAT_LLM_IDLE_TIMEOUT_MS", 30_000)?,
            context_tokens: match get("LLMCHAT_CONTEXT_TOKENS") {
                None => DEFAULT_CONTEXT_TOKENS,
                value => number("LLMCHAT_CONTEXT_TOKENS", value, 256, 1_048_576)? as u32,
            },
            max_context_tokens: match get("LLMCHAT_MAX_CONTEXT_TOKENS") {
                None => DEFAULT_MAX_CONTEXT_TOKENS,
                value => number("LLMCHAT_MAX_CONTEXT_TOKENS", value, 256, 1_048_576)? as u32,
            },
            max_reply_tokens: match get("LLMCHAT_MAX_REPLY_TOKENS") {
                None => DEFAULT_MAX_REPLY_TOKENS,
                value => number("LLMCHAT_MAX_REPLY_TOKENS", value, 1, 131_072)? as u32,
            },
            sse_keepalive: millis("LLMCHAT_SSE_KEEPALIVE_MS", 10_000)?,
        })
    }
}

fn invalid(var: &'static str, reason: &str) -> ConfigError {
    ConfigError { var, reason: reason.to_owned() }
}

fn url_var(var: &'static str, value: String) -> Result<String, ConfigError> {
    if value.starts_with("http://") || value.starts_with("https://") {
        Ok(value.trim_end_matches('/').to_owned())
    } else {
        Err(invalid(var, "must be an http:// or https:// URL"))
    }
}

/// An unsigned integer variable within `min..=max`; absent means `min`.
fn number(var: &'static str, value: Option<String>, min: u64, max: u64) -> Result<u64, ConfigError> {
    let Some(value) = value else { return Ok(min) };
    match value.parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(invalid(var, &format!("must be a whole number from {min} to {max}"))),
    }
}

fn table_name_is_valid(name: &str) -> bool {
    (3..=255).contains(&name.len())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let c = config(&[]).unwrap();
        assert_eq!(c.table_name, DEFAULT_TABLE_NAME);
        assert_eq!(c.ollama_url, DEFAULT_OLLAMA_URL);
        assert_eq!(c.default_model, DEFAULT_MODEL);
        assert_eq!(c.auth_mode, AuthMode::ApiKey);
        assert_eq!(c.cors_origins, CorsOrigins::None);
        assert_eq!(c.session_ttl, None);
        assert_eq!(c.llm_connect_timeout, Duration::from_millis(2_000));
        assert_eq!(c.llm_first_token_timeout, Duration::from_millis(120_000));
        assert_eq!(c.max_reply_tokens, DEFAULT_MAX_REPLY_TOKENS);
        assert_eq!(c.context_tokens, DEFAULT_CONTEXT_TOKENS);
    }

    #[test]
    fn explicit_values_are_used() {
        let c = config(&[
            ("LLMCHAT_LLM_IDLE_TIMEOUT_MS", "500"),
            ("LLMCHAT_SESSION_TTL_DAYS", "30"),
            ("LLMCHAT_CORS_ORIGINS", "https://a.example, https://b.example"),
            ("OLLAMA_URL", "http://ollama:11434/"),
        ])
        .unwrap();
        assert_eq!(c.llm_idle_timeout, Duration::from_millis(500));
        assert_eq!(c.session_ttl, Some(Duration::from_secs(30 * 86_400)));
        assert_eq!(c.ollama_url, "http://ollama:11434");
        assert_eq!(c.cors_origins.allow(Some("https://b.example")).as_deref(), Some("https://b.example"));
        assert_eq!(c.cors_origins.allow(Some("https://evil.example")), None);
    }

    #[test]
    fn a_bad_variable_names_itself() {
        for (var, value) in [
            ("LLMCHAT_AUTH_MODE", "none"),
            ("LLMCHAT_LLM_IDLE_TIMEOUT_MS", "soon"),
            ("LLMCHAT_SESSION_TTL_DAYS", "-1"),
            ("OLLAMA_URL", "localhost:11434"),
            ("LLMCHAT_TABLE_NAME", "no spaces allowed"),
            ("LLMCHAT_DEFAULT_MODEL", "bad model name!"),
            ("LLMCHAT_LOG_FORMAT", "xml"),
            ("LLMCHAT_MAX_REPLY_TOKENS", "0"),
            ("LLMCHAT_CONTEXT_TOKENS", "12"),
        ] {
            let err = config(&[(var, value)]).unwrap_err();
            assert_eq!(err.var, var);
            assert!(err.to_string().contains(var));
        }
    }
}
