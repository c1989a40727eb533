//! Secrets read at cold start from Secrets Manager (decision 0035), against the moto server:
//! the values `Settings` gets, the previous key of a rotation, the errors, the one request
//! they take (decision 0082), and the time the reads add to a cold start.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use aws_sdk_secretsmanager::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_secretsmanager::config::{ConfigBag, Intercept, RuntimeComponents};
use wappline::app::{SecretSource, SecretsManagerSource, Settings};

use crate::support::{aws_config, unique};

const KEY_A: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
const KEY_B: &str = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";

async fn secret(client: &aws_sdk_secretsmanager::Client, value: &str) -> String {
    client
        .create_secret()
        .name(unique("wappline-secret"))
        .secret_string(value)
        .send()
        .await
        .unwrap()
        .arn()
        .unwrap()
        .to_owned()
}

/// Counts the requests sent to Secrets Manager.
#[derive(Debug, Clone, Default)]
struct Requests(Arc<AtomicUsize>);

impl Intercept for Requests {
    fn name(&self) -> &'static str {
        "Requests"
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

async fn counted_source() -> (
    aws_sdk_secretsmanager::Client,
    Arc<dyn SecretSource>,
    Requests,
) {
    let requests = Requests::default();
    let config = aws_sdk_secretsmanager::config::Builder::from(&aws_config().await)
        .interceptor(requests.clone())
        .build();
    let client = aws_sdk_secretsmanager::Client::from_conf(config);
    let source = Arc::new(SecretsManagerSource::new(client.clone()));
    (client, source, requests)
}

async fn source() -> (aws_sdk_secretsmanager::Client, Arc<dyn SecretSource>) {
    let (client, source, _) = counted_source().await;
    (client, source)
}

async fn load(
    env: &HashMap<&str, String>,
    source: Arc<dyn SecretSource>,
) -> Result<Settings, wappline::app::SettingsError> {
    Settings::load(|k| env.get(k).cloned(), Some(source)).await
}

#[tokio::test]
async fn secrets_by_arn_become_the_settings_with_their_previous_values() {
    let (client, source, requests) = counted_source().await;
    let meta = secret(
        &client,
        r#"{"current":"app-secret-new","previous":"app-secret-old"}"#,
    )
    .await;
    let session = secret(
        &client,
        &format!(r#"{{"current":"{KEY_A}","previous":"{KEY_B}"}}"#),
    )
    .await;
    let export = secret(&client, &format!(r#"{{"current":"{KEY_A}"}}"#)).await;
    let env: HashMap<&str, String> = [
        ("META_APP_SECRET_ARN", meta),
        ("SESSION_SIGNING_KEY_ARN", session),
        ("EXPORT_LINK_KEY_ARN", export),
    ]
    .into_iter()
    .collect();
    // One call first, so neither measurement below pays for the first connection.
    source
        .secret_string(&env["EXPORT_LINK_KEY_ARN"])
        .await
        .unwrap();
    let before = requests.0.load(Ordering::SeqCst);
    let started = Instant::now();
    let s = load(&env, source.clone()).await.unwrap();
    // The cold-start cost, recorded in decisions 0035 and 0082 (`-- --nocapture` shows it).
    println!(
        "3 secrets read in one request in {} ms",
        started.elapsed().as_millis()
    );
    assert_eq!(
        requests.0.load(Ordering::SeqCst) - before,
        1,
        "one request for every secret of a cold start"
    );
    // The webhook checks signatures against the current secret and the previous one.
    assert_eq!(s.meta_app_secrets.len(), 2);
    assert!(s.session_key.is_some() && s.session_key_previous.is_some());
    assert!(s.export_link_key.is_some() && s.export_link_key_previous.is_none());

    // Read one by one, for comparison with the single request above.
    let started = Instant::now();
    for arn in env.values() {
        source.secret_string(arn).await.unwrap();
    }
    println!(
        "3 secrets read one after another in {} ms",
        started.elapsed().as_millis()
    );
}

#[tokio::test]
async fn a_missing_malformed_or_doubly_given_secret_is_named_without_its_value() {
    let (client, source) = source().await;
    let plain = secret(&client, "not-json-s3cr3t").await;
    let short = secret(&client, r#"{"current":"abcd"}"#).await;
    let env: HashMap<&str, String> = [
        ("META_APP_SECRET_ARN", plain),
        ("SESSION_SIGNING_KEY_ARN", short),
        (
            "EXPORT_LINK_KEY_ARN",
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:absent-AbCdEf".to_owned(),
        ),
        ("MEDIA_LINK_KEY_ARN", "arn:unused".to_owned()),
        ("MEDIA_LINK_KEY", KEY_A.to_owned()),
    ]
    .into_iter()
    .collect();
    let e = load(&env, source).await.unwrap_err();
    let text = e.to_string();
    for name in [
        "META_APP_SECRET_ARN",
        "SESSION_SIGNING_KEY",
        "EXPORT_LINK_KEY_ARN",
        "MEDIA_LINK_KEY_ARN",
    ] {
        assert!(text.contains(name), "{name} missing from: {text}");
    }
    assert!(!text.contains("s3cr3t") && !text.contains("abcd"), "{text}");
    assert_eq!(e.problems.len(), 4, "{text}");
}

#[tokio::test]
async fn a_batch_answers_each_secret_in_the_order_asked_and_names_the_missing_one() {
    let (client, source, requests) = counted_source().await;
    let a = secret(&client, "value-a").await;
    let b = secret(&client, "value-b").await;
    let absent = "arn:aws:secretsmanager:us-east-1:123456789012:secret:absent-AbCdEf".to_owned();
    let before = requests.0.load(Ordering::SeqCst);
    let got = source.secret_strings(&[b.clone(), absent, a.clone()]).await;
    assert_eq!(requests.0.load(Ordering::SeqCst) - before, 1);
    assert_eq!(got[0].as_deref(), Ok("value-b"));
    let missing = got[1].as_ref().unwrap_err();
    assert!(missing.contains("ResourceNotFound"), "{missing}");
    assert_eq!(got[2].as_deref(), Ok("value-a"));
    // More than one request's worth (20) is asked in as many requests as it takes.
    let many: Vec<String> = std::iter::repeat_n(a, 21).collect();
    let before = requests.0.load(Ordering::SeqCst);
    let got = source.secret_strings(&many).await;
    assert_eq!(requests.0.load(Ordering::SeqCst) - before, 2);
    assert!(got.iter().all(|r| r.as_deref() == Ok("value-a")));
}
