//! Building the `aws-sdk-kinesis` client a source talks through.

use aws_sdk_kinesis::config::{BehaviorVersion, Credentials, Region, SharedHttpClient};

/// The region a local endpoint is addressed in when none is configured.
pub const LOCAL_REGION: &str = "us-east-1";

/// The HTTP client of the SDK: HTTPS (rustls with ring) and plain HTTP with the `rustls`
/// feature, plain HTTP only without it.
pub fn http_client() -> SharedHttpClient {
    let builder = aws_smithy_http_client::Builder::new();
    #[cfg(feature = "rustls")]
    {
        use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
        builder
            .tls_provider(Provider::Rustls(CryptoMode::Ring))
            .build_https()
    }
    #[cfg(not(feature = "rustls"))]
    {
        builder.build_http()
    }
}

/// A client for a Kinesis-compatible server at `endpoint` (e.g. `http://127.0.0.1:4567`, as
/// `kcl engine serve` listens), in region `us-east-1`, signing with fixed local credentials that
/// a local server accepts. No AWS configuration is read.
pub fn local_client(endpoint: &str) -> aws_sdk_kinesis::Client {
    let config = aws_sdk_kinesis::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(LOCAL_REGION))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new(
            "kcl-local",
            "kcl-local",
            None,
            None,
            "kcl-local",
        ))
        .http_client(http_client())
        .build();
    aws_sdk_kinesis::Client::from_conf(config)
}

/// A client configured by the usual AWS chain: `AWS_REGION` / profiles for the region,
/// environment, profile, web identity or instance credentials, and `AWS_ENDPOINT_URL` (or
/// `AWS_ENDPOINT_URL_KINESIS`) to point it at a local server.
pub async fn client_from_env() -> aws_sdk_kinesis::Client {
    let config = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http_client())
        .load()
        .await;
    aws_sdk_kinesis::Client::new(&config)
}
