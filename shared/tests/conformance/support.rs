//! Shared test support: the AWS SDK configuration pointing at the loopback moto server, and
//! unique names so tests running in parallel never share a table or queue.

use std::sync::atomic::{AtomicU32, Ordering};

use aws_sdk_dynamodb::config::Credentials;

/// The moto server's endpoint. The test script (scripts/test.sh) starts `moto_server` on
/// loopback and exports `MOTO_ENDPOINT`; without it the AWS adapter tests fail loudly rather
/// than pass without having run.
pub fn moto_endpoint() -> String {
    std::env::var("MOTO_ENDPOINT").unwrap_or_else(|_| {
        panic!(
            "MOTO_ENDPOINT is not set: run the tests with scripts/test.sh, which starts \
             moto_server on loopback, or start one yourself and export MOTO_ENDPOINT"
        )
    })
}

/// An SDK configuration for the moto server, with static test credentials.
pub async fn aws_config() -> aws_config::SdkConfig {
    aws_config_at(&moto_endpoint()).await
}

/// The same configuration for another endpoint (a loopback proxy in front of moto).
pub async fn aws_config_at(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
        .load()
        .await
}

/// A name no other test in this run (or an earlier run against the same server) uses.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}-{}-{n}-{nanos:x}", std::process::id())
}
