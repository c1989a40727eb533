//! template.yaml and the composition root agree: for every function of the template, the
//! variables the template gives it are enough for `Settings` and for the `Services` builder
//! its `main.rs` calls. A function deployed without a variable its handler needs would fail
//! its cold start; this test fails first, naming the function and the variable.

use std::collections::BTreeMap;
use std::sync::Arc;

use wappline::app::{SecretSource, Services, ServicesError, Settings};
use yaml_rust2::{Yaml, YamlLoader};

/// A plausible value for each variable the template sets (the values are never used to
/// reach anything: no AWS call is made). A variable missing here fails the test, so a new
/// one gets a sample value and is read by `Settings`.
fn sample(name: &str) -> Option<&'static str> {
    const HEX_KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    Some(match name {
        "DATA_TABLE" | "ROUTES_TABLE" | "KEYS_TABLE" | "DEDUPE_TABLE" => "wappline-table",
        "KMS_KEY_ID" => "arn:aws:kms:eu-central-1:123456789012:key/1234",
        "EXPORT_BUCKET" => "wappline-exports",
        "ADMIN_TOKEN_SHA256"
        | "MEDIA_LINK_KEY"
        | "MEDIA_LINK_KEY_PREVIOUS"
        | "EXPORT_LINK_KEY"
        | "SESSION_SIGNING_KEY" => HEX_KEY,
        "META_APP_SECRET" | "META_APP_SECRET_PREVIOUS" | "META_VERIFY_TOKEN" => "s3cret",
        "META_APP_ID" => "670843887433847",
        "META_ES_CONFIG_ID" => "1234567890123",
        "INSTAGRAM_APP_ID" => "990602627938098",
        "INSTAGRAM_APP_SECRET" => "s3cret",
        "INSTAGRAM_REDIRECT_URI" => "https://wappline.example/app/onboarding/instagram/callback",
        "WAPPLINE_BITRIX_CLIENT_ID" => "app.0123456789.12345678",
        "WAPPLINE_BITRIX_CLIENT_SECRET" => "s3cret",
        "PUBLIC_BASE_URL" => "https://wappline.example",
        "GRAPH_API_BASE_URL" => "https://graph.facebook.com",
        "GRAPH_API_VERSION" => "v26.0",
        "INSTAGRAM_API_BASE_URL" => "https://graph.instagram.com",
        "BCRYPT_COST" => "12",
        "MAIL_FROM" => "no-reply@wappline.example",
        "PRIVACY_POLICY_VERSION" => "2026-12-01",
        "RETENTION_MAX_ITEMS" => "5000",
        "MEDIA_MAX_BYTES" => "16777216",
        "MEDIA_LINK_TTL_SECS" => "86400",
        "MEDIA_PROXY_RESPONSE_MODE" => "stream",
        "WHATSAPP_MESSAGES_PER_SECOND" => "80",
        "SEND_MAX_FILE_BYTES" => "104857600",
        "LOG_LEVEL" | "RUST_LOG" => "info",
        "SECRETS_REVISION" => "1",
        "METRICS_NAMESPACE" => "Wappline/wappline",
        // A secret by ARN: the fake store below serves the sample of the variable it names.
        n if n.ends_with("_ARN") => "arn:aws:secretsmanager:eu-central-1:123456789012:secret:x",
        n if n.starts_with("QUEUE_URL_") => "https://sqs.eu-central-1.amazonaws.com/123/q",
        _ => return None,
    })
}

/// Every function of the template with its environment variable names (globals included).
fn functions() -> BTreeMap<String, Vec<String>> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml");
    let text = std::fs::read_to_string(path).expect("template.yaml");
    let docs = YamlLoader::load_from_str(&text).expect("template.yaml is YAML");
    let template = &docs[0];
    let names = |env: &Yaml| -> Vec<String> {
        env["Variables"]
            .as_hash()
            .map(|vars| {
                vars.keys()
                    .filter_map(|k| k.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let globals = names(&template["Globals"]["Function"]["Environment"]);
    let mut out = BTreeMap::new();
    for (name, resource) in template["Resources"].as_hash().expect("Resources") {
        if resource["Type"].as_str() != Some("AWS::Serverless::Function") {
            continue;
        }
        let mut vars = globals.clone();
        vars.extend(names(&resource["Properties"]["Environment"]));
        out.insert(name.as_str().expect("resource name").to_owned(), vars);
    }
    out
}

/// Secrets Manager as the cold start sees it: each secret holds the sample of the variable
/// whose ARN named it (the ARN is `<sample ARN>#<variable>` here).
struct SampleSecrets;

#[async_trait::async_trait]
impl SecretSource for SampleSecrets {
    async fn secret_string(&self, id: &str) -> Result<String, String> {
        let (_, var) = id.split_once('#').ok_or("not an ARN of this test")?;
        let value = sample(var).ok_or_else(|| format!("no sample value for {var}"))?;
        Ok(serde_json::json!({ "current": value }).to_string())
    }
}

async fn settings_for(function: &str, vars: &[String], leave_out: Option<&str>) -> Settings {
    let mut values = BTreeMap::new();
    for var in vars.iter().filter(|v| Some(v.as_str()) != leave_out) {
        let value = sample(var)
            .unwrap_or_else(|| panic!("{function}: no sample value for {var} in this test"));
        let value = match var.strip_suffix("_ARN") {
            Some(secret) => format!("{value}#{secret}"),
            None => value.to_owned(),
        };
        values.insert(var.clone(), value);
    }
    Settings::load(|k| values.get(k).cloned(), Some(Arc::new(SampleSecrets)))
        .await
        .unwrap_or_else(|e| panic!("{function}: {e}"))
}

/// Builds what the function's `main.rs` builds.
fn build(function: &str, services: &Services) -> Result<(), ServicesError> {
    match function {
        "AdminApiFunction" => admin_api::AdminApi::from_services(services).map(drop),
        "ConsoleFunction" => console::Console::from_services(services).map(drop),
        "MetaWebhookFunction" => meta_webhook::MetaWebhook::from_services(services).map(drop),
        "InboundWorkerFunction" => services.inbound_worker().map(drop),
        "SyncWorkerFunction" => services
            .sync_worker()
            .and_then(|_| services.portal_probe())
            .map(drop),
        "MediaProxyFunction" => media_proxy::MediaProxyFunction::from_services(services).map(drop),
        "PublicApiFunction" => public_api::PublicApi::from_services(services).map(drop),
        "OutboundWorkerFunction" => services.outbound_worker().map(drop),
        "BitrixWebhookFunction" => bitrix_webhook::BitrixWebhook::from_services(services).map(drop),
        "ErasureWorkerFunction" => services
            .erasure_worker()
            .and_then(|_| services.tenant_erasure())
            .map(drop),
        "DataDeletionFunction" => data_deletion::DataDeletion::from_services(services).map(drop),
        "RetentionFunction" => {
            services.retention();
            Ok(())
        }
        "ExportWorkerFunction" => services.export_worker().map(drop),
        other => panic!("{other}: a function this test does not know; add what its main builds"),
    }
}

#[tokio::test]
async fn every_function_of_the_template_gets_what_its_handler_needs() {
    let functions = functions();
    assert_eq!(functions.len(), 13, "{:?}", functions.keys());
    for (function, vars) in &functions {
        let services = Services::aws(settings_for(function, vars, None).await)
            .await
            .unwrap_or_else(|e| panic!("{function}: {e}"));
        if let Err(e) = build(function, &services) {
            panic!("{function}: {e}");
        }
    }
}

#[tokio::test]
async fn a_variable_left_out_of_the_template_fails_the_cold_start_naming_it() {
    let functions = functions();
    for (function, var) in [
        ("AdminApiFunction", "PUBLIC_BASE_URL"),
        ("AdminApiFunction", "QUEUE_URL_EXPORTS"),
        ("SyncWorkerFunction", "WAPPLINE_BITRIX_CLIENT_ID"),
        // Parked jobs go back to the sync worker's own queue (decision 0025).
        ("SyncWorkerFunction", "QUEUE_URL_SYNC"),
        ("MetaWebhookFunction", "META_VERIFY_TOKEN"),
        // A secret the template no longer gives fails the cold start naming its variable.
        ("AdminApiFunction", "SESSION_SIGNING_KEY_ARN"),
        ("ExportWorkerFunction", "EXPORT_BUCKET"),
        ("ConsoleFunction", "SESSION_SIGNING_KEY_ARN"),
        ("ConsoleFunction", "QUEUE_URL_EXPORTS"),
    ] {
        let vars = &functions[function];
        assert!(vars.iter().any(|v| v == var), "{function} has no {var}");
        let services = Services::aws(settings_for(function, vars, Some(var)).await)
            .await
            .unwrap();
        let error = build(function, &services).expect_err(var).to_string();
        assert!(error.contains(var), "{function} without {var}: {error}");
    }
}

/// The HTTP API's routes, `"<METHOD> <path>"` (API Gateway's route key) to the function that
/// serves them.
fn http_routes(template: &Yaml) -> BTreeMap<String, String> {
    let mut routes = BTreeMap::new();
    for (name, resource) in template["Resources"].as_hash().expect("Resources") {
        let Some(events) = resource["Properties"]["Events"].as_hash() else {
            continue;
        };
        for event in events.values() {
            if event["Type"].as_str() != Some("HttpApi") {
                continue;
            }
            let p = &event["Properties"];
            let key = format!(
                "{} {}",
                p["Method"].as_str().expect("a method").to_ascii_uppercase(),
                p["Path"].as_str().expect("a path")
            );
            let function = name.as_str().expect("resource name").to_owned();
            assert!(
                routes.insert(key.clone(), function).is_none(),
                "{key} twice"
            );
        }
    }
    routes
}

/// Sign-in, refresh and password resets run bcrypt (about 0.25 s of CPU each at cost 12):
/// each route that does is throttled at the API, 10 requests a second with a burst of 20
/// (decision 0035), on a route of its own; and each throttled route key is a route of the
/// API (a key that names no route throttles nothing).
#[test]
fn the_routes_that_check_passwords_are_throttled_at_the_api() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml");
    let text = std::fs::read_to_string(path).expect("template.yaml");
    let template = &YamlLoader::load_from_str(&text).expect("template.yaml is YAML")[0];
    let routes = http_routes(template);
    let settings = template["Resources"]["HttpApi"]["Properties"]["RouteSettings"]
        .as_hash()
        .expect("the HTTP API's RouteSettings");
    for key in settings.keys() {
        let key = key.as_str().expect("a route key");
        assert!(routes.contains_key(key), "{key}: no such route");
    }
    for (key, function) in [
        ("ANY /auth/{proxy+}", "AdminApiFunction"),
        // The console's sign-in form (its other pages share /app/{proxy+}).
        ("POST /app/sign-in", "ConsoleFunction"),
    ] {
        assert_eq!(routes.get(key).map(String::as_str), Some(function), "{key}");
        let limits = settings
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
            .unwrap_or_else(|| panic!("{key}: not throttled"));
        assert_eq!(limits["ThrottlingRateLimit"].as_i64(), Some(10), "{key}");
        assert_eq!(limits["ThrottlingBurstLimit"].as_i64(), Some(20), "{key}");
    }
}
