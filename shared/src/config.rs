//! Configuration from the environment, read once at cold start.
//!
//! A missing or malformed variable stops the function with an error that
//! names the variable, rather than failing on the first request.

use std::time::Duration;

pub use crate::domain::QuotaLimits;

/// Default table name, used locally; the SAM template always sets it.
pub const DEFAULT_TABLE_NAME: &str = "llmchat";
/// Where Ollama listens when `OLLAMA_URL` is not set.
pub const DEFAULT_OLLAMA_URL: &str = "http://127.0.0.1:11434";
/// Model used when a session names none.
pub const DEFAULT_MODEL: &str = "smollm2:135m";

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

/// Name of the one backend configured when `LLMCHAT_BACKENDS` is not set (Ollama at `OLLAMA_URL`).
pub const DEFAULT_BACKEND_NAME: &str = "ollama";

/// Largest `num_predict` a client may ask for when `LLMCHAT_MAX_NUM_PREDICT` is not set.
pub const DEFAULT_MAX_NUM_PREDICT: u32 = 8192;

/// Most backends one deployment may name.
pub const MAX_BACKENDS: usize = 16;

/// Default quotas per owner: replies generated at once (across all sessions),
/// requests that call a model per minute, tokens (prompt + completion,
/// thinking included) per UTC day and per UTC month. Finite by default, so a
/// fresh deployment and `make dev` are protected alike; each is set per
/// deployment (`LLMCHAT_QUOTA_*`) and per owner (`llmchat-admin quota`).
pub const DEFAULT_QUOTA_ACTIVE_REPLIES: u64 = 8;
pub const DEFAULT_QUOTA_REQUESTS_PER_MINUTE: u64 = 60;
pub const DEFAULT_QUOTA_TOKENS_PER_DAY: u64 = 1_000_000;
pub const DEFAULT_QUOTA_TOKENS_PER_MONTH: u64 = 20_000_000;

/// AWS list prices (arm64 Lambda, DynamoDB on demand, us-east-1, USD) used for
/// cost estimates unless `LLMCHAT_PRICE_*` says otherwise.
pub const DEFAULT_PRICE_LAMBDA_GB_SECOND: f64 = 0.000_013_333_4;
pub const DEFAULT_PRICE_LAMBDA_MILLION_REQUESTS: f64 = 0.20;
pub const DEFAULT_PRICE_DYNAMODB_MILLION_READS: f64 = 0.125;
pub const DEFAULT_PRICE_DYNAMODB_MILLION_WRITES: f64 = 0.625;
/// Memory of the functions that generate replies, in MB, for cost estimates:
/// the template's `MemorySize`. (Not Lambda's own variable: `/usage` is
/// answered by another function, and the local runtime reports 4 GB.)
pub const DEFAULT_FUNCTION_MEMORY_MB: u64 = 256;

/// A model's price, USD per million tokens (thinking is billed as output).
#[derive(Debug, Clone, PartialEq)]
pub struct ModelPrice {
    /// A pattern over `backend/model`, `*` matching anything.
    pub pattern: String,
    pub input_per_million: f64,
    pub output_per_million: f64,
}

/// What a reply costs to run, for estimates.
#[derive(Debug, Clone, PartialEq)]
pub struct Prices {
    /// `LLMCHAT_MODEL_PRICES`: `pattern=input:output`, comma-separated; the first match wins.
    pub models: Vec<ModelPrice>,
    /// `LLMCHAT_PRICE_LAMBDA_GB_SECOND`
    pub lambda_gb_second: f64,
    /// `LLMCHAT_PRICE_LAMBDA_MILLION_REQUESTS`
    pub lambda_million_requests: f64,
    /// `LLMCHAT_PRICE_DYNAMODB_MILLION_READS`
    pub dynamodb_million_reads: f64,
    /// `LLMCHAT_PRICE_DYNAMODB_MILLION_WRITES`
    pub dynamodb_million_writes: f64,
    /// `LLMCHAT_PRICE_FUNCTION_MEMORY_MB`: the generating functions' memory, in MB.
    pub function_memory_mb: u64,
}

impl Prices {
    /// The price of `model` (`backend/model`), if one is configured.
    pub fn model(&self, qualified: &str) -> Option<&ModelPrice> {
        self.models.iter().find(|p| pattern_matches(&p.pattern, qualified))
    }
}

/// Which dialect a backend speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// Ollama's own API: `/api/chat` (NDJSON), `/api/tags`.
    Ollama,
    /// The OpenAI chat completions API: `/chat/completions` (SSE), `/models`,
    /// under the configured base URL (which usually ends in `/v1`).
    OpenAi,
}

impl BackendKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Ollama => "ollama",
            BackendKind::OpenAi => "openai",
        }
    }
}

/// A secret read from the configuration: never printed, never logged.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Secret(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Where a backend's API key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiKeySource {
    None,
    /// `LLMCHAT_BACKEND_<NAME>_API_KEY`.
    Env(Secret),
    /// `LLMCHAT_BACKEND_KEY_PARAMS` (`name=parameter`, comma-separated): an
    /// SSM parameter name (a SecureString), or
    /// `/aws/reference/secretsmanager/<secret>` for a Secrets Manager secret;
    /// read once at cold start.
    Parameter(String),
}

/// One named model backend.
#[derive(Debug, Clone, PartialEq)]
pub struct BackendConfig {
    pub name: String,
    pub kind: BackendKind,
    pub url: String,
    pub api_key: ApiKeySource,
    /// `LLMCHAT_BACKEND_<NAME>_CONNECT_TIMEOUT_MS`, else `LLMCHAT_LLM_CONNECT_TIMEOUT_MS`.
    pub connect_timeout: Duration,
    /// `LLMCHAT_BACKEND_<NAME>_FIRST_TOKEN_TIMEOUT_MS`, else the global one.
    pub first_token_timeout: Duration,
    /// `LLMCHAT_BACKEND_<NAME>_IDLE_TIMEOUT_MS`, else the global one.
    pub idle_timeout: Duration,
    /// `LLMCHAT_BACKEND_<NAME>_MAX_TOKENS_PARAM`: `max_tokens` (default, what
    /// most OpenAI-compatible servers read) or `max_completion_tokens` (what
    /// OpenAI's reasoning models require); `openai` backends only.
    pub max_completion_tokens: bool,
}

/// What clients may ask of the models on this deployment.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelPolicy {
    /// `LLMCHAT_ALLOWED_MODELS`: patterns over `backend/model`, `*` matching any run of characters.
    pub allowed_models: Vec<String>,
    /// `LLMCHAT_MAX_NUM_PREDICT`: the largest `num_predict` a client may ask for.
    pub max_num_predict: u32,
    /// `LLMCHAT_ALLOWED_CONTEXT_SIZES`: the `num_ctx` values a client may pick;
    /// empty means any from 256 to `max_context_tokens`.
    pub context_sizes: Vec<u32>,
}

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
    /// `LLMCHAT_BACKENDS`: `name=kind:url` entries, comma-separated; by
    /// default one Ollama backend named `ollama` at `OLLAMA_URL`.
    pub backends: Vec<BackendConfig>,
    /// `LLMCHAT_DEFAULT_BACKEND`: where a bare model name goes (default: the first backend).
    pub default_backend: String,
    /// `LLMCHAT_DEFAULT_MODEL`
    pub default_model: String,
    pub policy: ModelPolicy,
    /// `LLMCHAT_QUOTA_ACTIVE_REPLIES`, `…_REQUESTS_PER_MINUTE`, `…_TOKENS_PER_DAY`,
    /// `…_TOKENS_PER_MONTH`: every owner's quotas unless overridden for the owner.
    pub quotas: QuotaLimits,
    pub prices: Prices,
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
    pub var: String,
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
        let millis = |var: &str, default: u64| -> Result<Duration, ConfigError> {
            match get(var) {
                None => Ok(Duration::from_millis(default)),
                value => Ok(Duration::from_millis(number(var, value, 1, MAX_TIMEOUT_MS)?)),
            }
        };
        let llm_connect_timeout = millis("LLMCHAT_LLM_CONNECT_TIMEOUT_MS", 2_000)?;
        let llm_first_token_timeout = millis("LLMCHAT_LLM_FIRST_TOKEN_TIMEOUT_MS", 120_000)?;
        let llm_idle_timeout = millis("LLMCHAT_LLM_IDLE_TIMEOUT_MS", 30_000)?;
        let backends = backends(&get, [llm_connect_timeout, llm_first_token_timeout, llm_idle_timeout])?;
        let default_backend = match get("LLMCHAT_DEFAULT_BACKEND") {
            None => backends[0].name.clone(),
            Some(name) if backends.iter().any(|b| b.name == name) => name,
            Some(_) => return Err(invalid("LLMCHAT_DEFAULT_BACKEND", "must name a backend of LLMCHAT_BACKENDS")),
        };
        let max_context_tokens = match get("LLMCHAT_MAX_CONTEXT_TOKENS") {
            None => DEFAULT_MAX_CONTEXT_TOKENS,
            value => number("LLMCHAT_MAX_CONTEXT_TOKENS", value, 256, 1_048_576)? as u32,
        };
        let max_reply_tokens = match get("LLMCHAT_MAX_REPLY_TOKENS") {
            None => DEFAULT_MAX_REPLY_TOKENS,
            value => number("LLMCHAT_MAX_REPLY_TOKENS", value, 1, 131_072)? as u32,
        };
        let policy = policy(&get, max_context_tokens, max_reply_tokens)?;
        let allowed = ModelPolicy::default_allows;
        if !allowed(&policy, &backends, &default_backend, &default_model) {
            return Err(invalid(
                "LLMCHAT_ALLOWED_MODELS",
                "does not allow LLMCHAT_DEFAULT_MODEL: sessions that name no model could never send",
            ));
        }
        let quota = |var: &str, default: u64| -> Result<u64, ConfigError> {
            match get(var) {
                None => Ok(default),
                value => number(var, value, 1, u64::MAX / 4),
            }
        };
        let quotas = QuotaLimits {
            active_replies: quota("LLMCHAT_QUOTA_ACTIVE_REPLIES", DEFAULT_QUOTA_ACTIVE_REPLIES)?,
            requests_per_minute: quota("LLMCHAT_QUOTA_REQUESTS_PER_MINUTE", DEFAULT_QUOTA_REQUESTS_PER_MINUTE)?,
            tokens_per_day: quota("LLMCHAT_QUOTA_TOKENS_PER_DAY", DEFAULT_QUOTA_TOKENS_PER_DAY)?,
            tokens_per_month: quota("LLMCHAT_QUOTA_TOKENS_PER_MONTH", DEFAULT_QUOTA_TOKENS_PER_MONTH)?,
        };
        let prices = prices(&get)?;
        Ok(Config {
            table_name,
            dynamodb_endpoint,
            backends,
            default_backend,
            default_model,
            policy,
            quotas,
            prices,
            auth_mode,
            cors_origins,
            session_ttl,
            log_format,
            llm_connect_timeout,
            llm_first_token_timeout,
            llm_idle_timeout,
            context_tokens: match get("LLMCHAT_CONTEXT_TOKENS") {
                None => DEFAULT_CONTEXT_TOKENS,
                value => number("LLMCHAT_CONTEXT_TOKENS", value, 256, 1_048_576)? as u32,
            },
            max_context_tokens,
            max_reply_tokens,
            sse_keepalive: millis("LLMCHAT_SSE_KEEPALIVE_MS", 10_000)?,
        })
    }
}

impl ModelPolicy {
    /// Whether the default model (resolved against the backends) passes the allow-list.
    fn default_allows(&self, backends: &[BackendConfig], default_backend: &str, model: &str) -> bool {
        let (backend, bare) = split_model(backends, default_backend, model);
        self.allowed_models.iter().any(|p| pattern_matches(p, &format!("{backend}/{bare}")))
    }
}

/// The rule of [`Config::resolve_model`], over the backends and the default one.
fn split_model<'a>(backends: &[BackendConfig], default_backend: &'a str, model: &'a str) -> (&'a str, &'a str) {
    match model.split_once('/') {
        Some((prefix, rest)) if !rest.is_empty() && backends.iter().any(|b| b.name == prefix) => (prefix, rest),
        _ => (default_backend, model),
    }
}

impl Config {
    /// The backend and the backend's own model name behind `model`: a
    /// `backend/` prefix naming a configured backend picks it; any other name
    /// (including one with a `/` of its own) goes whole to the default backend.
    pub fn resolve_model<'a>(&'a self, model: &'a str) -> (&'a str, &'a str) {
        split_model(&self.backends, &self.default_backend, model)
    }

    /// `model` as `backend/model`.
    pub fn qualified_model(&self, model: &str) -> String {
        let (backend, name) = self.resolve_model(model);
        format!("{backend}/{name}")
    }

    /// Whether clients may use `model` here: `Err` names the limit.
    pub fn check_model(&self, model: &str) -> Result<(), String> {
        let qualified = self.qualified_model(model);
        if self.policy.allowed_models.iter().any(|p| pattern_matches(p, &qualified)) {
            Ok(())
        } else {
            Err(format!("model `{qualified}` is not offered on this deployment (LLMCHAT_ALLOWED_MODELS)"))
        }
    }

    /// Whether `options` stay within this deployment's limits: `Err` names the limit.
    pub fn check_options(&self, options: &crate::domain::ModelOptions) -> Result<(), String> {
        if let Some(n) = options.num_predict {
            if n > self.policy.max_num_predict {
                return Err(format!(
                    "options.num_predict is at most {} on this deployment (LLMCHAT_MAX_NUM_PREDICT)",
                    self.policy.max_num_predict
                ));
            }
        }
        if let Some(n) = options.num_ctx {
            if n > self.max_context_tokens {
                return Err(format!(
                    "options.num_ctx is at most {} on this deployment (LLMCHAT_MAX_CONTEXT_TOKENS)",
                    self.max_context_tokens
                ));
            }
            let sizes = &self.policy.context_sizes;
            if !sizes.is_empty() && !sizes.contains(&n) {
                let list = sizes.iter().map(u32::to_string).collect::<Vec<_>>().join(", ");
                return Err(format!("options.num_ctx is one of {list} on this deployment (LLMCHAT_ALLOWED_CONTEXT_SIZES)"));
            }
        }
        Ok(())
    }
}

/// `pattern` with `*` matching any run of characters (none included), against all of `text`.
fn pattern_matches(pattern: &str, text: &str) -> bool {
    let mut pieces = pattern.split('*');
    let first = pieces.next().unwrap_or_default();
    let Some(mut rest) = text.strip_prefix(first) else { return false };
    let pieces: Vec<&str> = pieces.collect();
    let Some((last, middle)) = pieces.split_last() else { return rest.is_empty() };
    for piece in middle {
        match rest.find(piece) {
            Some(at) => rest = &rest[at + piece.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// The backends of `LLMCHAT_BACKENDS` (or the one Ollama of `OLLAMA_URL`),
/// each with its key source and timeouts (`defaults`: connect, first token, idle).
fn backends(get: &impl Fn(&str) -> Option<String>, defaults: [Duration; 3]) -> Result<Vec<BackendConfig>, ConfigError> {
    const VAR: &str = "LLMCHAT_BACKENDS";
    let entries: Vec<(String, BackendKind, String)> = match get(VAR) {
        None => {
            let url = url_var("OLLAMA_URL", get("OLLAMA_URL").unwrap_or_else(|| DEFAULT_OLLAMA_URL.to_owned()))?;
            vec![(DEFAULT_BACKEND_NAME.to_owned(), BackendKind::Ollama, url)]
        }
        Some(list) => {
            let mut entries: Vec<(String, BackendKind, String)> = Vec::new();
            for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
                let shape = "entries are `name=kind:url`, kind `ollama` or `openai`";
                let (name, rest) = entry.split_once('=').ok_or_else(|| invalid(VAR, shape))?;
                let (kind, url) = rest.split_once(':').ok_or_else(|| invalid(VAR, shape))?;
                let kind = match kind.trim() {
                    "ollama" => BackendKind::Ollama,
                    "openai" => BackendKind::OpenAi,
                    _ => return Err(invalid(VAR, shape)),
                };
                let name = name.trim().to_owned();
                let name_ok = !name.is_empty()
                    && name.len() <= crate::domain::limits::MAX_BACKEND_NAME_CHARS
                    && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_'));
                if !name_ok {
                    return Err(invalid(VAR, "a backend name is 1-32 characters of a-z, 0-9, '-', '_'"));
                }
                // Names that differ only in `-` and `_` would share their variables' prefix.
                let prefix_of = |n: &str| n.replace('-', "_");
                if entries.iter().any(|(n, _, _): &(String, BackendKind, String)| prefix_of(n) == prefix_of(&name)) {
                    return Err(invalid(VAR, &format!("backend `{name}` is named twice (`-` and `_` count as one)")));
                }
                let url = url_var(VAR, url.trim().to_owned())?;
                if url.split("://").nth(1).and_then(|rest| rest.split('/').next()).is_some_and(|host| host.contains('@')) {
                    return Err(invalid(VAR, "a backend URL holds no credentials: give a key with LLMCHAT_BACKEND_<NAME>_API_KEY"));
                }
                entries.push((name, kind, url));
            }
            if entries.is_empty() || entries.len() > MAX_BACKENDS {
                return Err(invalid(VAR, &format!("names 1 to {MAX_BACKENDS} backends")));
            }
            entries
        }
    };
    // `name=parameter` pairs: where each backend's key is kept (SSM, or Secrets Manager through SSM).
    let mut key_params: Vec<(String, String)> = Vec::new();
    for pair in get("LLMCHAT_BACKEND_KEY_PARAMS").unwrap_or_default().split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, param) = pair.split_once('=').ok_or_else(|| invalid("LLMCHAT_BACKEND_KEY_PARAMS", "entries are `backend=parameter name`"))?;
        if !entries.iter().any(|(n, _, _)| n == name.trim()) {
            return Err(invalid("LLMCHAT_BACKEND_KEY_PARAMS", &format!("`{}` is not a backend of LLMCHAT_BACKENDS", name.trim())));
        }
        if key_params.iter().any(|(n, _)| n == name.trim()) {
            return Err(invalid("LLMCHAT_BACKEND_KEY_PARAMS", &format!("`{}` is named twice", name.trim())));
        }
        key_params.push((name.trim().to_owned(), param.trim().to_owned()));
    }
    entries
        .into_iter()
        .map(|(name, kind, url)| {
            let prefix = format!("LLMCHAT_BACKEND_{}_", name.to_ascii_uppercase().replace('-', "_"));
            let var = |suffix: &str| format!("{prefix}{suffix}");
            let api_key = match (get(&var("API_KEY")), key_params.iter().find(|(n, _)| *n == name)) {
                (Some(_), Some(_)) => {
                    return Err(invalid(&var("API_KEY"), "a backend's key comes from the environment or LLMCHAT_BACKEND_KEY_PARAMS, not both"));
                }
                (Some(key), None) => ApiKeySource::Env(Secret::new(key)),
                (None, Some((_, param))) => ApiKeySource::Parameter(param.clone()),
                (None, None) => ApiKeySource::None,
            };
            let timeout = |suffix: &str, default: Duration| -> Result<Duration, ConfigError> {
                let name = var(suffix);
                match get(&name) {
                    None => Ok(default),
                    value => Ok(Duration::from_millis(number(&name, value, 1, MAX_TIMEOUT_MS)?)),
                }
            };
            let max_completion_tokens = match get(&var("MAX_TOKENS_PARAM")).as_deref() {
                None | Some("max_tokens") => false,
                Some("max_completion_tokens") => true,
                Some(_) => return Err(invalid(&var("MAX_TOKENS_PARAM"), "must be `max_tokens` or `max_completion_tokens`")),
            };
            Ok(BackendConfig {
                max_completion_tokens,
                connect_timeout: timeout("CONNECT_TIMEOUT_MS", defaults[0])?,
                first_token_timeout: timeout("FIRST_TOKEN_TIMEOUT_MS", defaults[1])?,
                idle_timeout: timeout("IDLE_TIMEOUT_MS", defaults[2])?,
                name,
                kind,
                url,
                api_key,
            })
        })
        .collect()
}

fn policy(get: &impl Fn(&str) -> Option<String>, max_context_tokens: u32, max_reply_tokens: u32) -> Result<ModelPolicy, ConfigError> {
    let list = |var: &str| get(var).map(|v| v.split(',').map(|p| p.trim().to_owned()).filter(|p| !p.is_empty()).collect::<Vec<_>>());
    let allowed_models = list("LLMCHAT_ALLOWED_MODELS").unwrap_or_else(|| vec!["*".to_owned()]);
    let max_num_predict = match get("LLMCHAT_MAX_NUM_PREDICT") {
        None => DEFAULT_MAX_NUM_PREDICT.max(max_reply_tokens),
        value => number("LLMCHAT_MAX_NUM_PREDICT", value, 1, 131_072)? as u32,
    };
    if max_num_predict < max_reply_tokens {
        return Err(invalid("LLMCHAT_MAX_NUM_PREDICT", "must be at least LLMCHAT_MAX_REPLY_TOKENS (the default reply length)"));
    }
    let context_sizes = list("LLMCHAT_ALLOWED_CONTEXT_SIZES")
        .unwrap_or_default()
        .into_iter()
        .map(|n| match n.parse::<u32>() {
            Ok(n) if (256..=max_context_tokens).contains(&n) => Ok(n),
            _ => Err(invalid("LLMCHAT_ALLOWED_CONTEXT_SIZES", "whole numbers from 256 to LLMCHAT_MAX_CONTEXT_TOKENS")),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ModelPolicy { allowed_models, max_num_predict, context_sizes })
}

fn prices(get: &impl Fn(&str) -> Option<String>) -> Result<Prices, ConfigError> {
    let price = |var: &str, default: f64| -> Result<f64, ConfigError> {
        match get(var) {
            None => Ok(default),
            Some(v) => v
                .parse::<f64>()
                .ok()
                .filter(|p| p.is_finite() && *p >= 0.0)
                .ok_or_else(|| invalid(var, "must be a price in USD, 0 or more")),
        }
    };
    const VAR: &str = "LLMCHAT_MODEL_PRICES";
    let mut models = Vec::new();
    for entry in get(VAR).unwrap_or_default().split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let shape = "entries are `pattern=input:output`, USD per million tokens";
        let (pattern, rates) = entry.split_once('=').ok_or_else(|| invalid(VAR, shape))?;
        let (input, output) = rates.split_once(':').ok_or_else(|| invalid(VAR, shape))?;
        let rate = |r: &str| r.trim().parse::<f64>().ok().filter(|p| p.is_finite() && *p >= 0.0).ok_or_else(|| invalid(VAR, shape));
        models.push(ModelPrice { pattern: pattern.trim().to_owned(), input_per_million: rate(input)?, output_per_million: rate(output)? });
    }
    Ok(Prices {
        models,
        lambda_gb_second: price("LLMCHAT_PRICE_LAMBDA_GB_SECOND", DEFAULT_PRICE_LAMBDA_GB_SECOND)?,
        lambda_million_requests: price("LLMCHAT_PRICE_LAMBDA_MILLION_REQUESTS", DEFAULT_PRICE_LAMBDA_MILLION_REQUESTS)?,
        dynamodb_million_reads: price("LLMCHAT_PRICE_DYNAMODB_MILLION_READS", DEFAULT_PRICE_DYNAMODB_MILLION_READS)?,
        dynamodb_million_writes: price("LLMCHAT_PRICE_DYNAMODB_MILLION_WRITES", DEFAULT_PRICE_DYNAMODB_MILLION_WRITES)?,
        function_memory_mb: match get("LLMCHAT_PRICE_FUNCTION_MEMORY_MB") {
            None => DEFAULT_FUNCTION_MEMORY_MB,
            value => number("LLMCHAT_PRICE_FUNCTION_MEMORY_MB", value, 128, 10_240)?,
        },
    })
}

fn invalid(var: &str, reason: &str) -> ConfigError {
    ConfigError { var: var.to_owned(), reason: reason.to_owned() }
}

fn url_var(var: &str, value: String) -> Result<String, ConfigError> {
    if value.starts_with("http://") || value.starts_with("https://") {
        Ok(value.trim_end_matches('/').to_owned())
    } else {
        Err(invalid(var, "must be an http:// or https:// URL"))
    }
}

/// An unsigned integer variable within `min..=max`; absent means `min`.
fn number(var: &str, value: Option<String>, min: u64, max: u64) -> Result<u64, ConfigError> {
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
        assert_eq!(c.backends.len(), 1);
        assert_eq!((c.backends[0].name.as_str(), c.backends[0].kind), (DEFAULT_BACKEND_NAME, BackendKind::Ollama));
        assert_eq!(c.backends[0].url, DEFAULT_OLLAMA_URL);
        assert_eq!(c.default_backend, DEFAULT_BACKEND_NAME);
        assert_eq!(c.policy.allowed_models, ["*"]);
        assert_eq!(c.policy.max_num_predict, DEFAULT_MAX_NUM_PREDICT);
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
        assert_eq!(c.backends[0].url, "http://ollama:11434");
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
            ("LLMCHAT_BACKENDS", "a=ollama:http://x,a=openai:http://y"),
            ("LLMCHAT_BACKENDS", "Big=ollama:http://x"),
            ("LLMCHAT_BACKENDS", "a=grpc:http://x"),
            ("LLMCHAT_BACKENDS", "a=ollama"),
            ("LLMCHAT_DEFAULT_BACKEND", "nowhere"),
            ("LLMCHAT_MAX_NUM_PREDICT", "16"),
            ("LLMCHAT_ALLOWED_CONTEXT_SIZES", "4096,huge"),
            ("LLMCHAT_BACKEND_OLLAMA_IDLE_TIMEOUT_MS", "0"),
            ("LLMCHAT_BACKEND_KEY_PARAMS", "nobody=/llmchat/key"),
            ("LLMCHAT_BACKENDS", "a-b=ollama:http://x,a_b=ollama:http://y"),
            ("LLMCHAT_BACKENDS", "a=ollama:http://user:pw@x"),
            ("LLMCHAT_ALLOWED_MODELS", "hosted/*"),
            ("LLMCHAT_QUOTA_ACTIVE_REPLIES", "0"),
            ("LLMCHAT_QUOTA_TOKENS_PER_DAY", "lots"),
            ("LLMCHAT_MODEL_PRICES", "hosted/*=0.15"),
            ("LLMCHAT_PRICE_DYNAMODB_MILLION_READS", "-1"),
        ] {
            let err = config(&[(var, value)]).expect_err(var);
            assert_eq!(err.var, var);
            assert!(err.to_string().contains(var));
        }
    }

    #[test]
    fn backends_are_named_and_models_resolve_to_them() {
        let c = config(&[
            ("LLMCHAT_BACKENDS", "local=ollama:http://127.0.0.1:11434, llamacpp=openai:http://127.0.0.1:8080/v1/"),
            ("LLMCHAT_BACKEND_LLAMACPP_API_KEY", "sk-test-secret"),
            ("LLMCHAT_BACKEND_LOCAL_FIRST_TOKEN_TIMEOUT_MS", "5000"),
        ])
        .unwrap();
        assert_eq!(c.default_backend, "local");
        assert_eq!(c.backends[1].kind, BackendKind::OpenAi);
        assert_eq!(c.backends[1].url, "http://127.0.0.1:8080/v1");
        assert_eq!(c.backends[1].api_key, ApiKeySource::Env(Secret::new("sk-test-secret".into())));
        assert!(!format!("{c:?}").contains("sk-test-secret"), "a key never shows in Debug output");
        assert_eq!(c.backends[0].first_token_timeout, Duration::from_millis(5000));
        assert_eq!(c.backends[1].first_token_timeout, c.llm_first_token_timeout);
        assert_eq!(c.backends[0].api_key, ApiKeySource::None);
        let kept = config(&[
            ("LLMCHAT_BACKENDS", "hosted=openai:https://api.example.com/v1"),
            ("LLMCHAT_BACKEND_KEY_PARAMS", "hosted=/llmchat/hosted-key"),
        ])
        .unwrap();
        assert_eq!(kept.backends[0].api_key, ApiKeySource::Parameter("/llmchat/hosted-key".into()));
        assert_eq!(c.resolve_model("llamacpp/gemma3:270m"), ("llamacpp", "gemma3:270m"));
        assert_eq!(c.resolve_model("gemma3:270m"), ("local", "gemma3:270m"));
        // A namespace that is not a backend stays part of the model's name.
        assert_eq!(c.resolve_model("library/gemma3"), ("local", "library/gemma3"));
        assert_eq!(c.qualified_model("gemma3:270m"), "local/gemma3:270m");
    }

    #[test]
    fn the_allow_list_refuses_by_naming_the_limit() {
        let c = config(&[
            ("LLMCHAT_ALLOWED_MODELS", "ollama/gemma3:*, ollama/*-instruct"),
            ("LLMCHAT_DEFAULT_MODEL", "gemma3:270m"),
            ("LLMCHAT_MAX_NUM_PREDICT", "2048"),
            ("LLMCHAT_ALLOWED_CONTEXT_SIZES", "2048,4096"),
        ])
        .unwrap();
        assert!(c.check_model("gemma3:270m").is_ok());
        assert!(c.check_model("ollama/gemma3:1b").is_ok());
        assert!(c.check_model("qwen2.5-instruct").is_ok());
        assert!(c.check_model("llama3:8b").unwrap_err().contains("LLMCHAT_ALLOWED_MODELS"));
        assert!(c.check_model("gemma3").is_err(), "the pattern's `:` must be there");
        let options = |json: &str| serde_json::from_str::<crate::domain::ModelOptions>(json).unwrap();
        assert!(c.check_options(&options(r#"{"num_predict": 2048, "num_ctx": 4096}"#)).is_ok());
        assert!(c.check_options(&options(r#"{"num_predict": 2049}"#)).unwrap_err().contains("LLMCHAT_MAX_NUM_PREDICT"));
        assert!(c.check_options(&options(r#"{"num_ctx": 3000}"#)).unwrap_err().contains("LLMCHAT_ALLOWED_CONTEXT_SIZES"));
        assert!(c.check_options(&options(r#"{"num_ctx": 65536}"#)).unwrap_err().contains("LLMCHAT_MAX_CONTEXT_TOKENS"));
    }

    #[test]
    fn quotas_and_prices_have_finite_defaults_and_are_set_per_deployment() {
        let c = config(&[]).unwrap();
        assert_eq!(c.quotas.active_replies, DEFAULT_QUOTA_ACTIVE_REPLIES);
        assert_eq!(c.quotas.tokens_per_month, DEFAULT_QUOTA_TOKENS_PER_MONTH);
        assert!(c.prices.models.is_empty());
        let c = config(&[
            ("LLMCHAT_QUOTA_ACTIVE_REPLIES", "2"),
            ("LLMCHAT_QUOTA_REQUESTS_PER_MINUTE", "5"),
            ("LLMCHAT_MODEL_PRICES", "hosted/gpt-4o-mini=0.15:0.60, *=0:0"),
            ("LLMCHAT_PRICE_FUNCTION_MEMORY_MB", "512"),
        ])
        .unwrap();
        assert_eq!((c.quotas.active_replies, c.quotas.requests_per_minute), (2, 5));
        assert_eq!(c.prices.model("hosted/gpt-4o-mini").map(|p| p.output_per_million), Some(0.60));
        assert_eq!(c.prices.model("ollama/smollm2:135m").map(|p| p.input_per_million), Some(0.0));
        assert_eq!(c.prices.function_memory_mb, 512);
    }

    #[test]
    fn patterns_match_whole_names() {
        for (pattern, text, expected) in [
            ("*", "a/b", true),
            ("a/*", "a/b", true),
            ("a/*", "b/a", false),
            ("*b", "a/b", true),
            ("a*b*c", "a-b-c", true),
            ("a*b*c", "a-c-b", false),
            ("a/b", "a/b", true),
            ("a/b", "a/bc", false),
            ("ab*ab", "ab", false),
        ] {
            assert_eq!(pattern_matches(pattern, text), expected, "{pattern} vs {text}");
        }
    }
}
