//! Where secret settings come from (decision 0035).
//!
//! The local server and the tests give a secret as its plain variable (`META_APP_SECRET`,
//! with `META_APP_SECRET_PREVIOUS` while rotating). On Lambda a plain variable would be
//! readable by anyone allowed `lambda:GetFunctionConfiguration`, so template.yaml gives the
//! ARN of a Secrets Manager secret instead (`META_APP_SECRET_ARN`), and [`resolve`] reads
//! each one once, at cold start, concurrently. The secret's string is JSON:
//! `{"current": "...", "previous": "..."}`; `previous` is optional and is served as the
//! `<NAME>_PREVIOUS` variable, so a signing key keeps verifying what the previous key signed
//! while a rotation settles. [`super::Settings`] then validates the values exactly as if they
//! were plain variables.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;

use crate::bitrix::ENV_CLIENT_SECRET;

use super::settings::vars;

/// The suffix of the variable naming a secret's ARN: `META_APP_SECRET_ARN`.
pub const ARN_SUFFIX: &str = "_ARN";
/// The suffix of a secret's previous value: `META_APP_SECRET_PREVIOUS`.
pub const PREVIOUS_SUFFIX: &str = "_PREVIOUS";

/// The settings that are secrets: on Lambda each is read from Secrets Manager.
pub const SECRET_VARS: [&str; 6] = [
    vars::META_APP_SECRET,
    vars::INSTAGRAM_APP_SECRET,
    ENV_CLIENT_SECRET,
    vars::SESSION_SIGNING_KEY,
    vars::EXPORT_LINK_KEY,
    vars::MEDIA_LINK_KEY,
];

/// A store of secret strings by id (an ARN on AWS).
#[async_trait]
pub trait SecretSource: Send + Sync {
    /// The secret's string. The error names the cause, never the value.
    async fn secret_string(&self, id: &str) -> Result<String, String>;
}

/// AWS Secrets Manager (`GetSecretValue`, the current version).
pub struct SecretsManagerSource {
    client: aws_sdk_secretsmanager::Client,
}

impl SecretsManagerSource {
    pub fn new(client: aws_sdk_secretsmanager::Client) -> Self {
        SecretsManagerSource { client }
    }
}

#[async_trait]
impl SecretSource for SecretsManagerSource {
    async fn secret_string(&self, id: &str) -> Result<String, String> {
        let out = self
            .client
            .get_secret_value()
            .secret_id(id)
            .send()
            .await
            .map_err(|e| aws_sdk_secretsmanager::error::DisplayErrorContext(e).to_string())?;
        out.secret_string
            .ok_or_else(|| "the secret has no string value".to_owned())
    }
}

/// The stored form of a secret setting.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Stored {
    current: String,
    #[serde(default)]
    previous: Option<String>,
}

/// The values of the secret settings given by ARN: `NAME` and, when stored, `NAME_PREVIOUS`.
/// Problems (a fetch that failed, a malformed secret, a secret given both ways, an ARN with
/// no source) are collected, each naming the variable and never a value.
pub async fn resolve(
    lookup: &impl Fn(&str) -> Option<String>,
    source: Option<Arc<dyn SecretSource>>,
) -> (HashMap<String, String>, Vec<String>) {
    let mut values = HashMap::new();
    let mut problems = Vec::new();
    let mut fetches = tokio::task::JoinSet::new();
    for name in SECRET_VARS {
        let arn_var = format!("{name}{ARN_SUFFIX}");
        let Some(arn) = lookup(&arn_var).filter(|v| !v.trim().is_empty()) else {
            continue;
        };
        let previous_var = format!("{name}{PREVIOUS_SUFFIX}");
        if lookup(name).is_some() || lookup(&previous_var).is_some() {
            problems.push(format!(
                "{arn_var}: {name} is set too; give a secret one way only"
            ));
            continue;
        }
        let Some(source) = source.clone() else {
            problems.push(format!("{arn_var}: no secret store to read it from"));
            continue;
        };
        let arn = arn.trim().to_owned();
        fetches.spawn(async move {
            let result = source.secret_string(&arn).await;
            (name, arn_var, previous_var, result)
        });
    }
    while let Some(joined) = fetches.join_next().await {
        let (name, arn_var, previous_var, result) = joined.expect("secret fetch task");
        let stored = result.and_then(|s| {
            serde_json::from_str::<Stored>(&s)
                .map_err(|_| r#"must be JSON {"current": ..., "previous": ...}"#.to_owned())
        });
        match stored {
            Ok(stored) => {
                values.insert(name.to_owned(), stored.current);
                if let Some(previous) = stored.previous.filter(|p| !p.trim().is_empty()) {
                    values.insert(previous_var, previous);
                }
            }
            Err(e) => problems.push(format!("{arn_var}: {e}")),
        }
    }
    problems.sort();
    (values, problems)
}
