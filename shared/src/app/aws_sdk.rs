//! The AWS SDK's configuration of a process: one per process, shared by every SDK client
//! (issue 17, cold start).
//!
//! **One HTTP client.** Without one in the SDK configuration, each SDK client (DynamoDB, KMS,
//! SQS, S3, SES, STS, Secrets Manager, and every tenant session's clients, decision 0037)
//! makes its own default HTTPS client, and each of those builds a TLS connector twice: once
//! when the SDK client is constructed (`validate_base_client_config`, which the SDK uses to
//! load the trust store at initialisation rather than at the first request; the connector is
//! thrown away), and again at its first request. Every build parses the whole trust store into
//! a root store (0.1-0.2 ms for the 144 roots of provided.al2023's bundle on our build
//! machine), and every client keeps a connection pool of its own. Here the process makes the
//! SDK's default client once, with the SDK's own default settings, and only the first SDK
//! client's construction builds the throw-away connector: the trust store is still read and
//! checked at initialisation, once. Connectors are cached by their settings inside the client,
//! so SDK clients with the same timeouts share one connector and one pool.
//!
//! **Credentials and region from the environment when they are there.** Lambda gives a
//! function its role's credentials and its region as environment variables, which the SDK's
//! default chains read first. When they are set, they are used directly: building the default
//! chains makes clients for their other sources (an STS client with its endpoint rules, the
//! instance metadata client), about 1 ms of every cold start spent on sources never asked.
//! Without them (an operator's machine with a profile), the default chains run as before.
//! Decision 0088.

use std::sync::OnceLock;

use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use aws_smithy_http_client::{Builder, Connector};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::runtime_components::{
    RuntimeComponents, RuntimeComponentsBuilder,
};
use aws_smithy_types::config_bag::ConfigBag;

/// The process's SDK configuration, from its environment.
pub async fn aws_sdk_config() -> aws_config::SdkConfig {
    sdk_config_from(|name| std::env::var(name).ok(), shared_aws_http_client()).await
}

/// The SDK configuration on `http`, with the credentials and region of the environment `var`
/// reads when it has them, else the SDK's default chains.
async fn sdk_config_from(
    var: impl Fn(&str) -> Option<String>,
    http: SharedHttpClient,
) -> aws_config::SdkConfig {
    let set = |name: &str| var(name).is_some_and(|v| !v.is_empty());
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(http);
    if set("AWS_ACCESS_KEY_ID") && set("AWS_SECRET_ACCESS_KEY") {
        loader = loader.credentials_provider(
            aws_config::environment::EnvironmentVariableCredentialsProvider::new(),
        );
    }
    // The order of the SDK's environment region provider: AWS_REGION, then AWS_DEFAULT_REGION.
    if let Some(region) = ["AWS_REGION", "AWS_DEFAULT_REGION"]
        .into_iter()
        .filter_map(&var)
        .find(|v| !v.is_empty())
    {
        loader = loader.region(aws_config::Region::new(region));
    }
    loader.load().await
}

/// The HTTP client every AWS SDK client of this process shares.
fn shared_aws_http_client() -> SharedHttpClient {
    SharedHttpClient::new(CheckedOnce::new(sdk_default_https_client()))
}

/// The SDK's default HTTPS client (`aws-smithy-runtime`'s `default_https_client` for
/// `BehaviorVersion::latest()`, which is not public): rustls on aws-lc, each request's
/// connector settings and sleep, proxies from the environment.
fn sdk_default_https_client() -> SharedHttpClient {
    Builder::new().build_with_connector_fn(|settings, components| {
        let mut connector =
            Connector::builder().tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc));
        connector.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            connector.set_sleep_impl(components.sleep_impl());
        }
        connector.set_proxy_config(Some(ProxyConfig::from_env()));
        connector.build()
    })
}

/// An HTTP client whose construction-time check runs once per process, not once per SDK
/// client built on it. The check of the SDK's default client builds (and drops) a TLS
/// connector, which reads and parses the trust store; its outcome does not depend on the
/// SDK client being built (the SDK's own implementation ignores both arguments).
#[derive(Debug)]
struct CheckedOnce {
    inner: SharedHttpClient,
    checked: OnceLock<Result<(), String>>,
}

impl CheckedOnce {
    fn new(inner: SharedHttpClient) -> Self {
        CheckedOnce {
            inner,
            checked: OnceLock::new(),
        }
    }
}

impl HttpClient for CheckedOnce {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        self.inner.http_connector(settings, components)
    }

    fn validate_base_client_config(
        &self,
        components: &RuntimeComponentsBuilder,
        cfg: &ConfigBag,
    ) -> Result<(), BoxError> {
        self.checked
            .get_or_init(|| {
                self.inner
                    .validate_base_client_config(components, cfg)
                    .map_err(|e| e.to_string())
            })
            .clone()
            .map_err(Into::into)
    }

    fn validate_final_config(
        &self,
        components: &RuntimeComponents,
        cfg: &ConfigBag,
    ) -> Result<(), BoxError> {
        self.inner.validate_final_config(components, cfg)
    }

    fn connector_metadata(&self) -> Option<ConnectorMetadata> {
        self.inner.connector_metadata()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use aws_smithy_runtime_api::client::http::{HttpConnector, HttpConnectorFuture};
    use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
    use aws_smithy_runtime_api::http::{Response, StatusCode};
    use aws_smithy_types::body::SdkBody;

    use super::*;

    /// Counts what the SDK asks of its HTTP client; every request gets DynamoDB's answer to
    /// `ListTables` with no tables.
    #[derive(Debug, Default)]
    struct Counting {
        checks: AtomicUsize,
        connectors: AtomicUsize,
        requests: Arc<AtomicUsize>,
    }

    #[derive(Debug)]
    struct NoTables(Arc<AtomicUsize>);

    impl HttpConnector for NoTables {
        fn call(&self, _request: HttpRequest) -> HttpConnectorFuture {
            self.0.fetch_add(1, Ordering::SeqCst);
            HttpConnectorFuture::ready(Ok(Response::new(
                StatusCode::try_from(200).expect("a status"),
                SdkBody::from(r#"{"TableNames":[]}"#),
            )))
        }
    }

    #[derive(Debug)]
    struct CountingClient(Arc<Counting>);

    impl HttpClient for CountingClient {
        fn http_connector(
            &self,
            _settings: &HttpConnectorSettings,
            _components: &RuntimeComponents,
        ) -> SharedHttpConnector {
            self.0.connectors.fetch_add(1, Ordering::SeqCst);
            SharedHttpConnector::new(NoTables(self.0.requests.clone()))
        }

        fn validate_base_client_config(
            &self,
            _components: &RuntimeComponentsBuilder,
            _cfg: &ConfigBag,
        ) -> Result<(), BoxError> {
            self.0.checks.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }

    fn sdk_config(http: SharedHttpClient) -> aws_config::SdkConfig {
        aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("eu-central-1"))
            .credentials_provider(
                aws_credential_types::provider::SharedCredentialsProvider::new(
                    aws_credential_types::Credentials::for_tests(),
                ),
            )
            .http_client(http)
            .build()
    }

    fn three_clients(sdk: &aws_config::SdkConfig) -> aws_sdk_dynamodb::Client {
        let _ = aws_sdk_kms::Client::new(sdk);
        let _ = aws_sdk_sqs::Client::new(sdk);
        aws_sdk_dynamodb::Client::new(sdk)
    }

    #[tokio::test]
    async fn the_clients_of_a_process_check_their_http_client_once() {
        let counting = Arc::new(Counting::default());
        let sdk = sdk_config(SharedHttpClient::new(CheckedOnce::new(
            SharedHttpClient::new(CountingClient(counting.clone())),
        )));
        let dynamodb = three_clients(&sdk);
        assert_eq!(
            counting.checks.load(Ordering::SeqCst),
            1,
            "one check for three clients"
        );

        // Requests still go through the inner client's connector.
        let tables = dynamodb
            .list_tables()
            .send()
            .await
            .expect("the canned answer");
        assert!(tables.table_names().is_empty());
        assert_eq!(counting.requests.load(Ordering::SeqCst), 1);
        assert!(counting.connectors.load(Ordering::SeqCst) >= 1);
    }

    #[tokio::test]
    async fn without_it_every_client_checks_its_http_client() {
        // What the wrapper saves: the SDK checks a shared client once per SDK client.
        let counting = Arc::new(Counting::default());
        let sdk = sdk_config(SharedHttpClient::new(CountingClient(counting.clone())));
        let _ = three_clients(&sdk);
        assert_eq!(counting.checks.load(Ordering::SeqCst), 3);
    }

    fn lambda_env(name: &str) -> Option<String> {
        match name {
            "AWS_ACCESS_KEY_ID" | "AWS_SECRET_ACCESS_KEY" | "AWS_SESSION_TOKEN" => {
                Some("testing".into())
            }
            "AWS_REGION" => Some("ap-southeast-7".into()),
            _ => None,
        }
    }

    #[tokio::test]
    async fn with_lambdas_credentials_and_region_no_other_source_is_built() {
        let counting = Arc::new(Counting::default());
        let sdk = sdk_config_from(
            lambda_env,
            SharedHttpClient::new(CountingClient(counting.clone())),
        )
        .await;
        assert_eq!(
            counting.checks.load(Ordering::SeqCst),
            0,
            "loading the configuration built no SDK client"
        );
        assert_eq!(sdk.region().map(|r| r.as_ref()), Some("ap-southeast-7"));
        assert!(sdk.credentials_provider().is_some());
    }

    #[tokio::test]
    async fn without_them_the_default_chains_are_built() {
        // What choosing the environment's sources saves: the default credentials chain
        // builds an STS client (its web identity and role sources) as the configuration loads.
        let counting = Arc::new(Counting::default());
        let _ = sdk_config_from(
            |_| None,
            SharedHttpClient::new(CountingClient(counting.clone())),
        )
        .await;
        assert!(counting.checks.load(Ordering::SeqCst) >= 1);
    }

    #[tokio::test]
    async fn the_shared_client_is_the_sdks_https_client() {
        // The process's client checks (builds its TLS connector from the trust store) at the
        // first SDK client's construction, as the SDK's own default does.
        let sdk = sdk_config(shared_aws_http_client());
        let _ = three_clients(&sdk);
        let metadata = sdk
            .http_client()
            .and_then(|c| c.connector_metadata())
            .expect("connector metadata");
        assert_eq!(metadata.name(), "hyper");
    }
}
