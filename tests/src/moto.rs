//! The AWS adapters' end-to-end tests and benches run against the loopback moto server:
//! its endpoint and an SDK configuration with static test credentials.

use aws_sdk_dynamodb::config::Credentials;

/// The region of [`sdk_config`]: a test that writes ARNs names this one, so they match what
/// the clients sign for.
pub const REGION: &str = "us-east-1";

/// The moto server's endpoint. The test script (scripts/test.sh) starts `moto_server` on
/// loopback and exports `MOTO_ENDPOINT`; without it the AWS tests fail loudly rather than pass
/// without having run.
pub fn endpoint() -> String {
    std::env::var("MOTO_ENDPOINT").unwrap_or_else(|_| {
        panic!(
            "MOTO_ENDPOINT is not set: run the tests with scripts/test.sh, which starts \
             moto_server on loopback, or start one yourself and export MOTO_ENDPOINT"
        )
    })
}

/// An SDK configuration for the moto server, with static test credentials.
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint())
        .region(aws_config::Region::new(REGION))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
        .load()
        .await
}
