use super::*;

fn read(pairs: &[(&str, &str)]) -> Result<Settings, SettingsError> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Settings::from_lookup(|k| map.get(k).cloned())
}

#[test]
fn an_empty_environment_has_defaults_and_no_optional_section() {
    let s = read(&[]).unwrap();
    assert!(s.aws.is_none() && s.bitrix.is_none() && s.media_links.is_none());
    assert_eq!(s.bcrypt_cost, MIN_BCRYPT_COST);
    assert_eq!(s.graph.base_url(), "https://graph.facebook.com");
    assert_eq!(
        s.instagram.base_url(),
        crate::outbound::DEFAULT_INSTAGRAM_BASE_URL
    );
    assert_eq!(s.media_proxy.max_bytes, BUFFERED_MEDIA_MAX_BYTES);
}

#[test]
fn every_invalid_variable_is_named_at_once() {
    let e = read(&[
        (vars::BCRYPT_COST, "4"),
        (vars::SESSION_SIGNING_KEY, "not hex"),
        (vars::ADMIN_TOKEN_SHA256, "abc"),
        (vars::DATA_TABLE, "t-data"),
    ])
    .unwrap_err();
    let text = e.to_string();
    for name in [
        vars::BCRYPT_COST,
        vars::SESSION_SIGNING_KEY,
        vars::ADMIN_TOKEN_SHA256,
        vars::ROUTES_TABLE,
        vars::KMS_KEY_ID,
    ] {
        assert!(text.contains(name), "{name} missing from: {text}");
    }
    assert_eq!(e.problems.len(), 4, "{text}");
}

#[test]
fn aws_resources_and_queue_urls_are_read() {
    let s = read(&[
        (vars::DATA_TABLE, "d"),
        (vars::ROUTES_TABLE, "r"),
        (vars::KEYS_TABLE, "k"),
        (vars::DEDUPE_TABLE, "dd"),
        (vars::KMS_KEY_ID, "alias/x"),
        ("QUEUE_URL_SYNC", "https://sqs.example/sync.fifo"),
        ("QUEUE_URL_SYNC_DLQ", "https://sqs.example/sync-dlq.fifo"),
    ])
    .unwrap();
    let aws = s.aws.unwrap();
    assert_eq!(aws.tables.routes, "r");
    assert_eq!(
        s.queue_urls.get(&platform::name(platform::SYNC)).unwrap(),
        "https://sqs.example/sync.fifo"
    );
    // The sync worker dead-letters exhausted jobs itself (decision 0022).
    assert_eq!(
        s.queue_urls
            .get(&platform::name(platform::SYNC).dead_letter())
            .unwrap(),
        "https://sqs.example/sync-dlq.fifo"
    );
    assert!(!s
        .queue_urls
        .contains_key(&platform::name(platform::INBOUND)));
}

#[test]
fn sync_batch_is_within_bitrix24s_batch_limit() {
    let batch = |v: &str| read(&[(vars::SYNC_BATCH, v)]).map(|s| s.sync_batch);
    assert_eq!(read(&[]).unwrap().sync_batch, None);
    assert_eq!(batch("1"), Ok(Some(1)));
    assert_eq!(batch("50"), Ok(Some(50)));
    assert!(batch("0").is_err());
    assert!(batch("51").is_err());
    assert!(batch("ten").is_err());
}

#[test]
fn queue_urls_are_read_without_the_tables() {
    // The redrive tool needs a queue and its dead-letter twin, nothing else.
    let s = read(&[
        ("QUEUE_URL_ERASURE", "https://sqs.example/erasure"),
        ("QUEUE_URL_ERASURE_DLQ", "https://sqs.example/erasure-dlq"),
    ])
    .unwrap();
    assert!(s.aws.is_none());
    assert_eq!(
        s.queue_urls
            .get(&platform::name(platform::ERASURE).dead_letter())
            .unwrap(),
        "https://sqs.example/erasure-dlq"
    );
    assert_eq!(s.queue_urls.len(), 2);
}

#[test]
fn sync_retry_limits_are_three_numbers() {
    let limits = |v: &str| read(&[(vars::SYNC_RETRY, v)]).map(|s| s.sync_retry);
    assert_eq!(read(&[]).unwrap().sync_retry, None);
    assert_eq!(
        limits("200,5,20000"),
        Ok(Some((
            Duration::from_millis(200),
            5,
            Duration::from_millis(20_000)
        )))
    );
    assert!(limits("200,5").is_err());
    assert!(limits("0,5,1").is_err());
    assert!(limits("a,b,c").is_err());
}

#[test]
fn retention_max_items_is_optional_and_positive() {
    let max = |v: &str| read(&[(vars::RETENTION_MAX_ITEMS, v)]).map(|s| s.retention_max_items);
    assert_eq!(read(&[]).unwrap().retention_max_items, None);
    assert_eq!(max(" "), Ok(None));
    assert_eq!(max("5000"), Ok(Some(5000)));
    assert!(max("0").is_err());
    assert!(max("many").is_err());
}

/// An in-memory secret store.
struct Secrets(HashMap<&'static str, &'static str>);

#[async_trait::async_trait]
impl SecretSource for Secrets {
    async fn secret_string(&self, id: &str) -> Result<String, String> {
        self.0
            .get(id)
            .map(|s| s.to_string())
            .ok_or_else(|| "no such secret".to_owned())
    }
}

const KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

#[tokio::test]
async fn a_secret_by_arn_is_read_with_its_previous_value() {
    let stored = format!(
        r#"{{"current":"{KEY}","previous":"{}"}}"#,
        KEY.replace('0', "f")
    );
    let stored: &'static str = Box::leak(stored.into_boxed_str());
    let source = Arc::new(Secrets(
        [
            ("arn:session", stored),
            ("arn:meta", r#"{"current":"app"}"#),
        ]
        .into(),
    ));
    let env: HashMap<&str, &str> = [
        ("SESSION_SIGNING_KEY_ARN", "arn:session"),
        ("META_APP_SECRET_ARN", "arn:meta"),
    ]
    .into();
    let s = Settings::load(|k| env.get(k).map(|v| v.to_string()), Some(source.clone()))
        .await
        .unwrap();
    assert!(s.session_key.is_some() && s.session_key_previous.is_some());
    assert_eq!(s.meta_app_secrets.len(), 1);
    // The plain reader refuses an ARN instead of starting without the secret.
    let e = Settings::from_lookup(|k| env.get(k).map(|v| v.to_string())).unwrap_err();
    assert!(e.to_string().contains("SESSION_SIGNING_KEY_ARN"), "{e}");
    // Without a store, or given both ways, the ARN variable is named.
    let e = Settings::load(|k| env.get(k).map(|v| v.to_string()), None)
        .await
        .unwrap_err();
    assert_eq!(e.problems.len(), 2, "{e}");
    let both: HashMap<&str, &str> = [
        ("META_APP_SECRET_ARN", "arn:meta"),
        ("META_APP_SECRET", "x"),
    ]
    .into();
    let e = Settings::load(|k| both.get(k).map(|v| v.to_string()), Some(source))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("META_APP_SECRET_ARN"), "{e}");
}

#[test]
fn previous_signing_keys_are_read() {
    let s = read(&[
        (vars::EXPORT_LINK_KEY, KEY),
        (vars::EXPORT_LINK_KEY_PREVIOUS, KEY),
        (vars::SESSION_SIGNING_KEY, KEY),
        (vars::SESSION_SIGNING_KEY_PREVIOUS, KEY),
    ])
    .unwrap();
    assert!(s.export_link_key_previous.is_some() && s.session_key_previous.is_some());
    assert!(read(&[(vars::SESSION_SIGNING_KEY_PREVIOUS, "short")]).is_err());
}

#[test]
fn secrets_are_not_printed() {
    let s = read(&[(vars::META_APP_SECRET, "s3cr3t-app-secret")]).unwrap();
    assert_eq!(s.meta_app_secrets.len(), 1);
    assert!(!format!("{s:?}").contains("s3cr3t"));
}
