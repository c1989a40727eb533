//! Secrets read at cold start from Secrets Manager (decision 0035), against the moto server:
//! the values `Settings` gets, the previous key of a rotation, the errors, and the time the
//! reads add to a cold start.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

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

async fn source() -> (aws_sdk_secretsmanager::Client, Arc<dyn SecretSource>) {
    let client = aws_sdk_secretsmanager::Client::new(&aws_config().await);
    let source = Arc::new(SecretsManagerSource::new(client.clone()));
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
    let (client, source) = source().await;
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
    let started = Instant::now();
    let s = load(&env, source.clone()).await.unwrap();
    // The cold-start cost, recorded in decision 0035 (`-- --nocapture` shows it).
    println!(
        "3 secrets read concurrently in {} ms",
        started.elapsed().as_millis()
    );
    // The webhook checks signatures against the current secret and the previous one.
    assert_eq!(s.meta_app_secrets.len(), 2);
    assert!(s.session_key.is_some() && s.session_key_previous.is_some());
    assert!(s.export_link_key.is_some() && s.export_link_key_previous.is_none());

    // Read one by one, for comparison with the concurrent read above.
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
