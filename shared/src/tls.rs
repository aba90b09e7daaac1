//! TLS, in one place. Every HTTPS client of a function (the AWS SDK's, to
//! DynamoDB and SSM; reqwest's, to the model servers) runs rustls with ring
//! as its crypto provider and trusts the platform's root certificates. One
//! provider, not two: aws-lc-rs, the default of both the SDK and reqwest,
//! would add about 1.3 MiB to every bootstrap (docs/DEPLOY.md, "Package size").

use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use aws_smithy_http_client::{Builder, Connector};

/// Makes ring rustls's process-wide provider, the one reqwest's clients take
/// (reqwest is built without a provider of its own and panics when none is
/// installed). Call it before building a `reqwest::Client`; calling it again
/// changes nothing.
pub fn install_crypto_provider() {
    // An error only says a provider is there already: ring, from an earlier call.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// `aws_config`'s loader with the SDK's HTTP client: built as the SDK builds
/// its own default one (the connector settings and sleep of each client, a
/// proxy from the environment), with ring in place of aws-lc-rs.
pub fn aws_config_loader() -> aws_config::ConfigLoader {
    let http = Builder::new().build_with_connector_fn(|settings, components| {
        let mut connector = Connector::builder().tls_provider(Provider::Rustls(CryptoMode::Ring));
        connector.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            connector.set_sleep_impl(components.sleep_impl());
        }
        connector.set_proxy_config(Some(ProxyConfig::from_env()));
        connector.build()
    });
    aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(http)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    /// Accepts one connection and returns its first bytes: a TLS client
    /// opens with a handshake record (content type 22, version 3.x).
    async fn first_bytes_of_one_connection(listener: TcpListener) -> Vec<u8> {
        let accepted = tokio::time::timeout(Duration::from_secs(5), listener.accept()).await;
        let (mut socket, _) = accepted.expect("the client connected").unwrap();
        let mut bytes = vec![0; 3];
        socket.read_exact(&mut bytes).await.unwrap();
        bytes
    }

    const TLS_HANDSHAKE: [u8; 2] = [0x16, 0x03];

    #[tokio::test]
    async fn the_sdk_speaks_tls_to_an_https_endpoint() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("https://{}", listener.local_addr().unwrap());
        let config = super::aws_config_loader()
            .endpoint_url(endpoint)
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_credential_types::Credentials::from_keys("test", "test", None))
            .timeout_config(aws_config::timeout::TimeoutConfig::builder().operation_timeout(Duration::from_secs(2)).build())
            .load()
            .await;
        let client = aws_sdk_dynamodb::Client::new(&config);
        let server = tokio::spawn(first_bytes_of_one_connection(listener));
        // The listener never answers the handshake: the call fails, after the hello.
        let _ = client.list_tables().send().await;
        assert_eq!(server.await.unwrap()[..2], TLS_HANDSHAKE, "the SDK's client opened with a TLS handshake");
    }

    #[tokio::test]
    async fn reqwest_speaks_tls_with_the_installed_provider() {
        super::install_crypto_provider();
        super::install_crypto_provider();
        assert!(rustls::crypto::CryptoProvider::get_default().is_some(), "a provider is installed");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("https://{}/", listener.local_addr().unwrap());
        let server = tokio::spawn(first_bytes_of_one_connection(listener));
        let client = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().expect("a client with the installed provider");
        let _ = client.get(url).send().await;
        assert_eq!(server.await.unwrap()[..2], TLS_HANDSHAKE, "reqwest opened with a TLS handshake");
    }
}
