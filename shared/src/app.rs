//! What a function builds once at cold start and shares across invocations.

use crate::config::Config;
use crate::llm::OllamaClient;
use crate::store::DynamoStore;
use crate::telemetry;

pub struct App<S = DynamoStore> {
    pub config: Config,
    pub store: S,
    pub llm: OllamaClient,
}

impl App<DynamoStore> {
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

#[cfg(any(test, feature = "mocks"))]
impl App<crate::store::memory::MemoryStore> {
    /// An app over the in-memory store, with default configuration and a key
    /// for `owner`: returns the app and the key.
    pub async fn in_memory(owner: &str) -> (Self, String) {
        use crate::store::ApiKeyRepository;
        let config = Config::from_lookup(|_| None).expect("defaults are valid");
        let llm = OllamaClient::from_config(&config);
        let app = App { config, store: crate::store::memory::MemoryStore::new(), llm };
        let issued = crate::auth::issue_key(crate::domain::OwnerId::parse(owner).expect("valid owner"))
            .expect("randomness");
        app.store.put_api_key(&issued.record).await.expect("memory store accepts keys");
        (app, issued.key)
    }
}
