//! What a function builds once at cold start and shares across invocations:
//! the configuration, a store and a model backend.

use crate::config::Config;
use crate::llm::ollama::OllamaClient;
use crate::store::dynamo::DynamoStore;
use crate::telemetry;

pub struct App<S = DynamoStore, M = OllamaClient> {
    pub config: Config,
    pub store: S,
    pub llm: M,
}

impl App {
    /// Reads the configuration, starts logging and builds the DynamoDB client.
    /// A bad variable stops the function here, naming the variable.
    pub async fn cold_start() -> Result<Self, lambda_http::Error> {
        let config = Config::from_env()?;
        telemetry::init(config.log_format);
        Ok(Self::with_config(config).await)
    }

    pub async fn with_config(config: Config) -> Self {
        let client = DynamoStore::client_for(config.dynamodb_endpoint.as_deref()).await;
        let store = DynamoStore::new(client, config.table_name.clone());
        let llm = OllamaClient::from_config(&config);
        App { config, store, llm }
    }
}

impl<S, M> App<S, M> {
    /// The same app with another model backend (tests use a scripted one).
    pub fn with_llm<N>(self, llm: N) -> App<S, N> {
        App { config: self.config, store: self.store, llm }
    }
}
