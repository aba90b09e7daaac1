//! What a function builds once at cold start and shares across invocations:
//! the configuration, a store, the model backends and the last health report.

use crate::config::Config;
use crate::health::HealthCache;
use crate::llm::backends::{Backends, KeyError};
use crate::store::dynamo::DynamoStore;
use crate::telemetry;

pub struct App<S = DynamoStore, M = Backends> {
    pub config: Config,
    pub store: S,
    pub llm: M,
    /// This instance's last `/health` probe (see [`crate::health`]).
    pub health: HealthCache,
}

impl App {
    /// Reads the configuration, starts logging, builds the DynamoDB client and
    /// the backends (reading their API keys). A bad variable or an unreadable
    /// key stops the function here, naming it.
    pub async fn cold_start() -> Result<Self, lambda_http::Error> {
        let config = Config::from_env()?;
        telemetry::init(config.log_format);
        Ok(Self::with_config(config).await?)
    }

    pub async fn with_config(config: Config) -> Result<Self, KeyError> {
        let client = DynamoStore::client_for(config.dynamodb_endpoint.as_deref()).await;
        let store = DynamoStore::new(client, config.table_name.clone());
        let llm = Backends::build(&config, read_parameter).await?;
        Ok(App { config, store, llm, health: HealthCache::default() })
    }
}

impl<S, M> App<S, M> {
    /// The same app with another model backend (tests use a scripted one).
    pub fn with_llm<N>(self, llm: N) -> App<S, N> {
        App { config: self.config, store: self.store, llm, health: HealthCache::default() }
    }
}

/// An SSM parameter's decrypted value: a SecureString, or a Secrets Manager
/// secret named `/aws/reference/secretsmanager/<secret>`. The value is never
/// logged; the error says only what failed.
async fn read_parameter(name: String) -> Result<String, String> {
    let aws = crate::tls::aws_config_loader().load().await;
    let client = aws_sdk_ssm::Client::new(&aws);
    let out = client
        .get_parameter()
        .name(&name)
        .with_decryption(true)
        .send()
        .await
        .map_err(|e| crate::telemetry::error_chain(&e))?;
    out.parameter.and_then(|p| p.value).filter(|v| !v.is_empty()).ok_or_else(|| "the parameter has no value".to_owned())
}
