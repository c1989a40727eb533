//! Where secret settings come from (decision 0035).
//!
//! The local server and the tests give a secret as its plain variable (`META_APP_SECRET`,
//! with `META_APP_SECRET_PREVIOUS` while rotating). On Lambda a plain variable would be
//! readable by anyone allowed `lambda:GetFunctionConfiguration`, so template.yaml gives the
//! ARN of a Secrets Manager secret instead (`META_APP_SECRET_ARN`), and [`resolve`] reads
//! them once, at cold start, all in one request (decision 0082). The secret's string is JSON:
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

    /// The strings of several secrets, in the order of `ids`. By default one read each, one
    /// after the other; a store that can read many at once overrides it.
    async fn secret_strings(&self, ids: &[String]) -> Vec<Result<String, String>> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.push(self.secret_string(id).await);
        }
        out
    }
}

/// AWS Secrets Manager: the current version of each secret, all of a cold start's secrets in
/// one `BatchGetSecretValue` (decision 0082).
pub struct SecretsManagerSource {
    client: aws_sdk_secretsmanager::Client,
}

impl SecretsManagerSource {
    pub fn new(client: aws_sdk_secretsmanager::Client) -> Self {
        SecretsManagerSource { client }
    }
}

/// Secrets Manager returns at most 20 secrets per `BatchGetSecretValue`.
const BATCH_LIMIT: usize = 20;

fn sdk_error<E: std::error::Error + 'static>(e: E) -> String {
    aws_sdk_secretsmanager::error::DisplayErrorContext(e).to_string()
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
            .map_err(sdk_error)?;
        out.secret_string
            .ok_or_else(|| "the secret has no string value".to_owned())
    }

    /// One request for up to 20 secrets instead of one each: on Lambda each concurrent read
    /// of a cold start opened its own TLS connection. A secret the answer names neither among
    /// its values nor among its errors is read on its own.
    async fn secret_strings(&self, ids: &[String]) -> Vec<Result<String, String>> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(BATCH_LIMIT) {
            let answer = self
                .client
                .batch_get_secret_value()
                .set_secret_id_list(Some(chunk.to_vec()))
                .send()
                .await;
            let answer = match answer {
                Ok(a) => a,
                Err(e) => {
                    let e = sdk_error(e);
                    out.extend(chunk.iter().map(|_| Err(e.clone())));
                    continue;
                }
            };
            for id in chunk {
                let value = answer
                    .secret_values()
                    .iter()
                    .find(|v| v.arn() == Some(id.as_str()) || v.name() == Some(id.as_str()));
                let error = answer
                    .errors()
                    .iter()
                    .find(|e| e.secret_id() == Some(id.as_str()));
                out.push(match (value, error) {
                    (Some(v), _) => v
                        .secret_string()
                        .map(str::to_owned)
                        .ok_or_else(|| "the secret has no string value".to_owned()),
                    (None, Some(e)) => Err(format!(
                        "{}: {}",
                        e.error_code().unwrap_or("error"),
                        e.message().unwrap_or("no message")
                    )),
                    (None, None) => self.secret_string(id).await,
                });
            }
        }
        out
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
    // (name, its ARN variable, its previous-value variable, the ARN)
    let mut wanted = Vec::new();
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
        wanted.push((name, arn_var, previous_var, arn.trim().to_owned()));
    }
    if wanted.is_empty() {
        problems.sort();
        return (values, problems);
    }
    let Some(source) = source else {
        for (_, arn_var, _, _) in &wanted {
            problems.push(format!("{arn_var}: no secret store to read it from"));
        }
        problems.sort();
        return (values, problems);
    };
    let arns: Vec<String> = wanted.iter().map(|(_, _, _, arn)| arn.clone()).collect();
    let results = source.secret_strings(&arns).await;
    for ((name, arn_var, previous_var, _), result) in wanted.into_iter().zip(results) {
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
