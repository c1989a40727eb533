//! Settings: every variable of every function, read once (a Lambda cold start, or the local
//! server's start) and validated on construction. Nothing else in the project reads the
//! environment.
//!
//! The functions of template.yaml each get only the variables they need, so a section is
//! optional here when its variable is absent; a service that needs it is refused when
//! [`super::Services`] builds it, at cold start, naming the variable. A variable that is
//! present but invalid is an error here, and all such errors are reported at once.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::accounts::{SessionKey, MIN_BCRYPT_COST};
use crate::bitrix::{BitrixConfig, ENV_CLIENT_ID};
use crate::export::ExportLinkKey;
use crate::graph::GraphConfig;
use crate::ids::MetaAppId;
use crate::inbound::intake::VerifyToken;
use crate::media::{MediaLinks, DEFAULT_MAX_BYTES};
use crate::meta::AppSecret;
use crate::outbound::{instagram_config, OutboundConfig, ENV_INSTAGRAM_BASE_URL};
use crate::queue::sqs::SqsQueue;
use crate::queue::{platform, QueueName};
use crate::store::dynamo::TableNames;

use super::secrets::{self, SecretSource, ARN_SUFFIX, SECRET_VARS};

/// The names of the variables, as template.yaml sets them.
pub mod vars {
    pub const DATA_TABLE: &str = "DATA_TABLE";
    pub const ROUTES_TABLE: &str = "ROUTES_TABLE";
    pub const KEYS_TABLE: &str = "KEYS_TABLE";
    pub const DEDUPE_TABLE: &str = "DEDUPE_TABLE";
    pub const KMS_KEY_ID: &str = "KMS_KEY_ID";
    pub const EXPORT_BUCKET: &str = "EXPORT_BUCKET";
    /// The role a function assumes, tagged with the tenant, for its work for one tenant
    /// (decision 0037). Unset: the function's own role serves every request.
    pub const TENANT_DATA_ROLE_ARN: &str = "TENANT_DATA_ROLE_ARN";
    /// The Meta app's id: with the app secret it forms the app access token that
    /// `debug_token` needs to prove WhatsApp connections (decision 0032).
    pub const META_APP_ID: &str = "META_APP_ID";
    pub const META_APP_SECRET: &str = "META_APP_SECRET";
    pub const META_APP_SECRET_PREVIOUS: &str = "META_APP_SECRET_PREVIOUS";
    pub const META_VERIFY_TOKEN: &str = "META_VERIFY_TOKEN";
    pub const PUBLIC_BASE_URL: &str = "PUBLIC_BASE_URL";
    pub const MEDIA_LINK_KEY: &str = "MEDIA_LINK_KEY";
    pub const MEDIA_PROXY_RESPONSE_MODE: &str = "MEDIA_PROXY_RESPONSE_MODE";
    pub const MEDIA_MAX_BYTES: &str = "MEDIA_MAX_BYTES";
    pub const EXPORT_LINK_KEY: &str = "EXPORT_LINK_KEY";
    pub const EXPORT_LINK_KEY_PREVIOUS: &str = "EXPORT_LINK_KEY_PREVIOUS";
    pub const SESSION_SIGNING_KEY: &str = "SESSION_SIGNING_KEY";
    pub const SESSION_SIGNING_KEY_PREVIOUS: &str = "SESSION_SIGNING_KEY_PREVIOUS";
    /// Changed by a deploy to make Lambda start fresh instances, which read the secrets
    /// again (the rotation runbook in docs/deploy.md); its value means nothing else.
    pub const SECRETS_REVISION: &str = "SECRETS_REVISION";
    pub const BCRYPT_COST: &str = "BCRYPT_COST";
    pub const MAIL_FROM: &str = "MAIL_FROM";
    /// The privacy policy's current version, its effective date `YYYY-MM-DD` (decision 0047).
    pub const PRIVACY_POLICY_VERSION: &str = "PRIVACY_POLICY_VERSION";
    pub const ADMIN_TOKEN_SHA256: &str = "ADMIN_TOKEN_SHA256";
    pub const RETENTION_MAX_ITEMS: &str = "RETENTION_MAX_ITEMS";
    pub const RETRY_BASE_MS: &str = "RETRY_BASE_MS";
    /// Seconds a crashed worker's hold on a job blocks its retry: the relay workers'
    /// idempotency leases, the portal flush claim and the local consumers' visibility
    /// timeout (decision 0053; default the queues' 180 s visibility timeout; the soak
    /// shortens it so a crash recovers in seconds).
    pub const LEASE_SECS: &str = "LEASE_SECS";
    /// Seconds after a contact erasure completes before its second pass erases the same
    /// conversations again (decision 0137; default the lease: 0 runs it at once).
    pub const ERASURE_SWEEP_SECS: &str = "ERASURE_SWEEP_SECS";
    /// CRM sync retry limits `max_ms,attempts,min_span_ms` (decision 0022; tests shrink them).
    pub const SYNC_RETRY: &str = "SYNC_RETRY";
    /// CRM sync: operations per Bitrix24 `batch` request, 1..=50 (decision 0023).
    pub const SYNC_BATCH: &str = "SYNC_BATCH";
    /// Self-service onboarding (decision 0040): the Embedded Signup configuration id of
    /// Facebook Login for Business, and where the console loads Meta's JavaScript SDK from.
    pub const META_ES_CONFIG_ID: &str = "META_ES_CONFIG_ID";
    pub const META_SDK_URL: &str = "META_SDK_URL";
    /// The origins Facebook Login's popup posts Embedded Signup's session info from (comma
    /// separated; default `https://www.facebook.com,https://web.facebook.com`): the console's
    /// listener ignores messages from any other origin (decision 0046).
    pub const META_LOGIN_ORIGINS: &str = "META_LOGIN_ORIGINS";
    /// Instagram Login's own app id and secret, and the redirect URI registered with it.
    pub const INSTAGRAM_APP_ID: &str = "INSTAGRAM_APP_ID";
    pub const INSTAGRAM_APP_SECRET: &str = "INSTAGRAM_APP_SECRET";
    pub const INSTAGRAM_REDIRECT_URI: &str = "INSTAGRAM_REDIRECT_URI";
    /// `https://api.instagram.com` (the code exchange) and
    /// `https://www.instagram.com/oauth/authorize`, replaceable by loopback fakes.
    pub const INSTAGRAM_OAUTH_BASE_URL: &str = "INSTAGRAM_OAUTH_BASE_URL";
    pub const INSTAGRAM_AUTHORIZE_URL: &str = "INSTAGRAM_AUTHORIZE_URL";
    /// The CloudWatch namespace of the EMF metrics (decision 0038; default `Wappline`).
    pub const METRICS_NAMESPACE: &str = "METRICS_NAMESPACE";
}

/// Self-service onboarding's settings (decision 0040).
#[derive(Clone)]
pub struct OnboardingSettings {
    pub es_config_id: Option<String>,
    pub sdk_url: String,
    /// Where Embedded Signup's session-info messages may come from (origins, no path).
    pub login_origins: Vec<String>,
    pub instagram_app_id: Option<String>,
    pub instagram_app_secret: Option<crate::secret::Secret>,
    pub instagram_redirect_uri: Option<String>,
    /// `api.instagram.com`.
    pub instagram_oauth: GraphConfig,
    pub instagram_authorize_url: String,
}

impl fmt::Debug for OnboardingSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OnboardingSettings")
            .field("es_config_id", &self.es_config_id)
            .field("sdk_url", &self.sdk_url)
            .field("login_origins", &self.login_origins)
            .field("instagram_app_id", &self.instagram_app_id)
            .field("instagram_app_secret", &self.instagram_app_secret.is_some())
            .field("instagram_redirect_uri", &self.instagram_redirect_uri)
            .finish_non_exhaustive()
    }
}

/// An absolute https URL (http only on loopback): the address a browser or our client is
/// sent to, so a typo cannot send users or codes elsewhere unnoticed.
fn web_url(field: &'static str, value: &str) -> Result<String, String> {
    let uri: http::Uri = value
        .parse()
        .map_err(|_| format!("{field}: must be an absolute URL"))?;
    let host = uri
        .authority()
        .map(|a| a.host().to_owned())
        .ok_or_else(|| format!("{field}: must be an absolute URL"))?;
    match uri.scheme_str() {
        Some("https") => Ok(value.to_owned()),
        Some("http") if crate::http_client::is_loopback_host(&host) => Ok(value.to_owned()),
        _ => Err(format!("{field}: must be https (http only on loopback)")),
    }
}

/// Stands in for `PUBLIC_BASE_URL` in the media proxy's links when it is unset: the proxy
/// only verifies links, and a function URL cannot name itself.
const VERIFY_ONLY_BASE_URL: &str = "https://media-proxy.invalid";

/// The largest file the media proxy relays when it answers buffered (API Gateway's and
/// Lambda's 6 MB response limit, less base64).
pub const BUFFERED_MEDIA_MAX_BYTES: usize = 4 * 1024 * 1024;

/// Every variable that is present but invalid, each with its reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsError {
    pub problems: Vec<String>,
}

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid settings: {}", self.problems.join("; "))
    }
}

impl std::error::Error for SettingsError {}

/// Where the AWS adapters find their resources.
#[derive(Clone, Debug)]
pub struct AwsSettings {
    pub tables: TableNames,
    pub kms_key_id: String,
    pub export_bucket: Option<String>,
    /// The tenant-data role (decision 0037).
    pub tenant_data_role_arn: Option<String>,
}

/// How the media proxy answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MediaProxySettings {
    /// Lambda response streaming (larger files) instead of one buffered answer.
    pub streaming: bool,
    pub max_bytes: usize,
}

/// Every setting of the platform.
#[derive(Clone)]
pub struct Settings {
    /// None for the embedded adapters (the local server).
    pub aws: Option<AwsSettings>,
    /// SQS queue URLs by queue, from `QUEUE_URL_<NAME>`: only the queues the function uses.
    /// Read without the tables too, so an ops tool that only moves messages (the redrive)
    /// needs nothing else.
    pub queue_urls: HashMap<QueueName, String>,
    /// The Meta app secret, and the previous one while rotating (signatures, signed requests).
    pub meta_app_secrets: Vec<AppSecret>,
    /// The Meta app's id (WhatsApp ownership proof).
    pub meta_app_id: Option<MetaAppId>,
    pub meta_verify_token: Option<VerifyToken>,
    /// Where Meta (WhatsApp Cloud API, Instagram via Pages) is reached.
    pub graph: GraphConfig,
    /// Where Instagram accounts connected with Instagram Login are reached.
    pub instagram: GraphConfig,
    pub outbound: OutboundConfig,
    /// The Bitrix24 application, when its credentials are set.
    pub bitrix: Option<BitrixConfig>,
    /// The public address of this deployment (install, data-deletion status, exports).
    pub public_base_url: Option<String>,
    /// Signed media links, when `MEDIA_LINK_KEY` is set.
    pub media_links: Option<MediaLinks>,
    pub media_proxy: MediaProxySettings,
    pub export_link_key: Option<ExportLinkKey>,
    /// The export link key being retired: links it signed still download.
    pub export_link_key_previous: Option<ExportLinkKey>,
    pub session_key: Option<SessionKey>,
    /// The session signing key being retired: access tokens it signed still verify.
    pub session_key_previous: Option<SessionKey>,
    /// The deploy's secrets revision, when set (see [`vars::SECRETS_REVISION`]).
    pub secrets_revision: Option<String>,
    pub bcrypt_cost: u32,
    /// The SES sender of account email; without it no email is sent.
    pub mail_from: Option<String>,
    /// The privacy policy's current version (`YYYY-MM-DD`); without it no notice or email.
    pub privacy_policy_version: Option<String>,
    /// SHA-256 of the platform admin's bearer token.
    pub admin_token_sha256: Option<[u8; 32]>,
    pub retention_max_items: Option<u64>,
    /// The CloudWatch namespace of the metrics ([`crate::metrics::DEFAULT_NAMESPACE`] when unset).
    pub metrics_namespace: Option<String>,
    /// First retry delay of the sync and outbound workers (the local server shortens it).
    pub retry_base: Option<Duration>,
    /// How long a crashed worker's hold blocks a retry ([`vars::LEASE_SECS`]).
    pub lease: Option<Duration>,
    /// When a contact erasure's second pass runs ([`vars::ERASURE_SWEEP_SECS`]).
    pub erasure_sweep: Option<Duration>,
    /// CRM sync: longest retry delay, attempts and minimum span before dead-lettering.
    pub sync_retry: Option<(Duration, u32, Duration)>,
    /// CRM sync: operations per Bitrix24 request (default 50, Bitrix24's batch limit).
    pub sync_batch: Option<usize>,
    /// Embedded Signup and Instagram Login.
    pub onboarding: OnboardingSettings,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Secrets and keys are never printed; say only whether they are set.
        f.debug_struct("Settings")
            .field("aws", &self.aws)
            .field("queue_urls", &self.queue_urls)
            .field("meta_app_secrets", &self.meta_app_secrets.len())
            .field("meta_app_id", &self.meta_app_id)
            .field("meta_verify_token", &self.meta_verify_token.is_some())
            .field("graph", &self.graph)
            .field("bitrix", &self.bitrix.is_some())
            .field("public_base_url", &self.public_base_url)
            .field("media_links", &self.media_links.is_some())
            .field("export_link_key", &self.export_link_key.is_some())
            .field("session_key", &self.session_key.is_some())
            .field("session_key_previous", &self.session_key_previous.is_some())
            .field("secrets_revision", &self.secrets_revision)
            .field("bcrypt_cost", &self.bcrypt_cost)
            .field("mail_from", &self.mail_from)
            .field("privacy_policy_version", &self.privacy_policy_version)
            .finish_non_exhaustive()
    }
}

/// Collects the problems of one read, so all are reported together.
struct Reader<F> {
    lookup: F,
    problems: Vec<String>,
}

impl<F: Fn(&str) -> Option<String>> Reader<F> {
    /// The variable's value, trimmed; None when unset or blank.
    fn get(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    /// Parses a present variable; a parse failure is recorded and gives None.
    fn parse<T, E: fmt::Display>(
        &mut self,
        name: &str,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Option<T> {
        let value = self.get(name)?;
        match parse(&value) {
            Ok(v) => Some(v),
            Err(e) => {
                self.problems.push(format!("{name}: {e}"));
                None
            }
        }
    }

    /// A whole section's result: its error is recorded.
    fn section<T, E: fmt::Display>(&mut self, result: Result<T, E>) -> Option<T> {
        result.map_err(|e| self.problems.push(e.to_string())).ok()
    }
}

impl Settings {
    /// Reads the process environment (a Lambda function's configuration).
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads every setting through `lookup`, and each secret given by ARN
    /// (`META_APP_SECRET_ARN`, ...) from `secrets`, all at once (the fetches run
    /// concurrently). A Lambda cold start reads its environment this way.
    pub async fn load(
        lookup: impl Fn(&str) -> Option<String>,
        secrets: Option<Arc<dyn SecretSource>>,
    ) -> Result<Self, SettingsError> {
        let (values, mut problems) = secrets::resolve(&lookup, secrets).await;
        let combined = |name: &str| {
            if is_secret_arn_var(name) {
                return None;
            }
            values.get(name).cloned().or_else(|| lookup(name))
        };
        match Self::from_lookup(combined) {
            Ok(settings) if problems.is_empty() => Ok(settings),
            Ok(_) => Err(SettingsError { problems }),
            Err(e) => {
                problems.extend(e.problems);
                Err(SettingsError { problems })
            }
        }
    }

    /// Reads every setting through `lookup` (tests and the local server pass their own).
    /// Secrets are plain variables here; one given by ARN needs [`Settings::load`].
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let mut r = Reader {
            lookup,
            problems: Vec::new(),
        };
        for name in SECRET_VARS {
            let arn_var = format!("{name}{ARN_SUFFIX}");
            if r.get(&arn_var).is_some() {
                r.problems.push(format!(
                    "{arn_var}: a secret by ARN is read by Settings::load"
                ));
            }
        }
        let aws = read_aws(&mut r);
        let queue_urls = read_queue_urls(&r);
        let mut meta_app_secrets = Vec::new();
        for name in [vars::META_APP_SECRET, vars::META_APP_SECRET_PREVIOUS] {
            if let Some(secret) = r.parse(name, AppSecret::new) {
                meta_app_secrets.push(secret);
            }
        }
        let meta_app_id = r.parse(vars::META_APP_ID, MetaAppId::parse);
        let meta_verify_token = r.parse(vars::META_VERIFY_TOKEN, VerifyToken::new);
        let lookup = |name: &str| r.get(name);
        let graph = GraphConfig::from_lookup(lookup);
        let outbound = OutboundConfig::from_lookup(lookup);
        let bitrix = r
            .get(ENV_CLIENT_ID)
            .map(|_| BitrixConfig::from_lookup(lookup));
        let public_base_url = r.get(vars::PUBLIC_BASE_URL);
        let media_links = r.get(vars::MEDIA_LINK_KEY).map(|_| {
            MediaLinks::from_lookup(|name| {
                lookup(name).or_else(|| {
                    (name == vars::PUBLIC_BASE_URL).then(|| VERIFY_ONLY_BASE_URL.to_owned())
                })
            })
        });
        let graph = r.section(graph).unwrap_or_default();
        // Read once per process, so the warning appears once per cold start.
        let today = crate::clock::now_secs().div_euclid(86_400);
        if let Some(notice) = crate::graph::versions::start_notice(graph.version(), today) {
            tracing::warn!(version = graph.version(), "{notice}");
        }
        let instagram = r.section(instagram_config(
            &graph,
            r.get(ENV_INSTAGRAM_BASE_URL).as_deref(),
        ));
        let outbound = r.section(outbound).unwrap_or_default();
        let bitrix = bitrix.and_then(|b| r.section(b));
        let media_links = media_links.and_then(|m| r.section(m));
        let streaming = r
            .get(vars::MEDIA_PROXY_RESPONSE_MODE)
            .is_some_and(|m| m.eq_ignore_ascii_case("stream"));
        let max_bytes = r
            .parse(vars::MEDIA_MAX_BYTES, |v| {
                v.parse::<usize>().map_err(|_| "must be a number of bytes")
            })
            .unwrap_or(if streaming {
                DEFAULT_MAX_BYTES
            } else {
                BUFFERED_MEDIA_MAX_BYTES
            });
        let export_link_key = r.parse(vars::EXPORT_LINK_KEY, ExportLinkKey::from_hex);
        let export_link_key_previous =
            r.parse(vars::EXPORT_LINK_KEY_PREVIOUS, ExportLinkKey::from_hex);
        let session_key = r.parse(vars::SESSION_SIGNING_KEY, SessionKey::from_hex);
        let session_key_previous =
            r.parse(vars::SESSION_SIGNING_KEY_PREVIOUS, SessionKey::from_hex);
        let secrets_revision = r.get(vars::SECRETS_REVISION);
        let bcrypt_cost = r
            .parse(vars::BCRYPT_COST, |v| {
                v.parse::<u32>()
                    .map_err(|_| "must be a whole number".to_owned())
                    .and_then(|c| {
                        if c < MIN_BCRYPT_COST {
                            Err(format!("must be at least {MIN_BCRYPT_COST}"))
                        } else {
                            Ok(c)
                        }
                    })
            })
            .unwrap_or(MIN_BCRYPT_COST);
        let mail_from = r.get(vars::MAIL_FROM);
        let privacy_policy_version = r.parse(vars::PRIVACY_POLICY_VERSION, |v| {
            crate::accounts::policy::PolicyVersion::parse(v)
                .map(|p| p.as_str().to_owned())
                .ok_or("must be the policy's effective date, YYYY-MM-DD")
        });
        let admin_token_sha256 = r.parse(vars::ADMIN_TOKEN_SHA256, |v| {
            hex::decode(v)
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .ok_or("must be 64 hex digits")
        });
        let retention_max_items = r.parse(vars::RETENTION_MAX_ITEMS, |v| {
            v.parse::<u64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or("must be a positive whole number")
        });
        let metrics_namespace = r.parse(vars::METRICS_NAMESPACE, |v| {
            // CloudWatch's namespace rules; `AWS/` is reserved for AWS's own.
            let allowed = |c: char| c.is_ascii_alphanumeric() || "._-/#:".contains(c);
            (v.len() <= 255 && v.chars().all(allowed) && !v.starts_with("AWS/"))
                .then(|| v.to_owned())
                .ok_or("must be 1 to 255 of A-Z a-z 0-9 . _ - / # :, not starting with AWS/")
        });
        let retry_base = r.parse(vars::RETRY_BASE_MS, |v| {
            v.parse::<u64>()
                .ok()
                .filter(|n| *n > 0)
                .map(Duration::from_millis)
                .ok_or("must be a positive number of milliseconds")
        });
        let lease = r.parse(vars::LEASE_SECS, |v| {
            v.parse::<u64>()
                .ok()
                .filter(|n| (1..=43_200).contains(n))
                .map(Duration::from_secs)
                .ok_or("must be 1 to 43200 seconds")
        });
        let erasure_sweep = r.parse(vars::ERASURE_SWEEP_SECS, |v| {
            v.parse::<u64>()
                .ok()
                .filter(|n| *n <= 43_200)
                .map(Duration::from_secs)
                .ok_or("must be 0 to 43200 seconds")
        });
        let sync_retry = r.parse(vars::SYNC_RETRY, |v| {
            let parts: Vec<u64> = v
                .split(',')
                .map(|p| p.trim().parse::<u64>())
                .collect::<Result<_, _>>()
                .map_err(|_| "must be max_ms,attempts,min_span_ms")?;
            match parts[..] {
                [max, attempts, span] if max > 0 && attempts > 0 => Ok((
                    Duration::from_millis(max),
                    u32::try_from(attempts).map_err(|_| "too many attempts")?,
                    Duration::from_millis(span),
                )),
                _ => Err("must be max_ms,attempts,min_span_ms (positive)"),
            }
        });
        let sync_batch = r.parse(vars::SYNC_BATCH, |v| {
            v.parse::<usize>()
                .ok()
                .filter(|n| (1..=50).contains(n))
                .ok_or("must be a whole number from 1 to 50")
        });
        let onboarding = read_onboarding(&mut r);
        if !r.problems.is_empty() {
            return Err(SettingsError {
                problems: r.problems,
            });
        }
        Ok(Settings {
            aws,
            queue_urls,
            meta_app_secrets,
            meta_app_id,
            meta_verify_token,
            instagram: instagram.unwrap_or_else(|| graph.clone()),
            graph,
            outbound,
            bitrix,
            public_base_url,
            media_links,
            media_proxy: MediaProxySettings {
                streaming,
                max_bytes,
            },
            export_link_key,
            export_link_key_previous,
            session_key,
            session_key_previous,
            secrets_revision,
            bcrypt_cost,
            mail_from,
            privacy_policy_version,
            admin_token_sha256,
            retention_max_items,
            metrics_namespace,
            retry_base,
            lease,
            erasure_sweep,
            sync_retry,
            sync_batch,
            onboarding,
        })
    }

    /// The admin token's digest from the token itself (the local server is given the token).
    pub fn admin_token_digest(token: &str) -> [u8; 32] {
        Sha256::digest(token.as_bytes()).into()
    }
}

/// A comma-separated list of origins (`https://host[:port]`, http only on loopback, no path).
fn login_origins(value: &str) -> Result<Vec<String>, String> {
    let field = vars::META_LOGIN_ORIGINS;
    let origins: Vec<String> = value
        .split(',')
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .map(|o| {
            let o = web_url(field, o)?;
            let uri: http::Uri = o.parse().map_err(|_| format!("{field}: {o}"))?;
            match uri.path_and_query().map(|p| p.as_str()) {
                None | Some("") | Some("/") => Ok(o.trim_end_matches('/').to_owned()),
                Some(_) => Err(format!("{field}: origins have no path")),
            }
        })
        .collect::<Result<_, _>>()?;
    if origins.is_empty() {
        return Err(format!("{field}: at least one origin"));
    }
    Ok(origins)
}

fn read_onboarding<F: Fn(&str) -> Option<String>>(r: &mut Reader<F>) -> OnboardingSettings {
    use crate::onboarding::{instagram, whatsapp};
    let sdk_url = r
        .parse(vars::META_SDK_URL, |v| web_url(vars::META_SDK_URL, v))
        .unwrap_or_else(|| whatsapp::DEFAULT_SDK_URL.to_owned());
    let login_origins = r
        .parse(vars::META_LOGIN_ORIGINS, login_origins)
        .unwrap_or_else(|| {
            whatsapp::DEFAULT_LOGIN_ORIGINS
                .iter()
                .map(|o| (*o).to_owned())
                .collect()
        });
    let instagram_authorize_url = r
        .parse(vars::INSTAGRAM_AUTHORIZE_URL, |v| {
            web_url(vars::INSTAGRAM_AUTHORIZE_URL, v)
        })
        .unwrap_or_else(|| instagram::DEFAULT_AUTHORIZE_URL.to_owned());
    let instagram_redirect_uri = r.parse(vars::INSTAGRAM_REDIRECT_URI, |v| {
        web_url(vars::INSTAGRAM_REDIRECT_URI, v)
    });
    let oauth_url = r
        .get(vars::INSTAGRAM_OAUTH_BASE_URL)
        .unwrap_or_else(|| instagram::DEFAULT_OAUTH_BASE_URL.to_owned());
    let instagram_oauth = GraphConfig::default()
        .with_base_url(&oauth_url)
        .map_err(|e| format!("{}: {e}", vars::INSTAGRAM_OAUTH_BASE_URL));
    let instagram_oauth = r.section(instagram_oauth).unwrap_or_default();
    let instagram_app_id = r.parse(vars::INSTAGRAM_APP_ID, |v| {
        if v.len() <= 32 && v.bytes().all(|b| b.is_ascii_digit()) {
            Ok(v.to_owned())
        } else {
            Err("must be the app's numeric id")
        }
    });
    let instagram_app_secret = r.parse(vars::INSTAGRAM_APP_SECRET, |v| {
        crate::secret::Secret::parse(vars::INSTAGRAM_APP_SECRET, v)
    });
    let es_config_id = r.parse(vars::META_ES_CONFIG_ID, |v| {
        if v.len() <= 32 && v.bytes().all(|b| b.is_ascii_digit()) {
            Ok(v.to_owned())
        } else {
            Err("must be the configuration's numeric id")
        }
    });
    OnboardingSettings {
        es_config_id,
        sdk_url,
        login_origins,
        instagram_app_id,
        instagram_app_secret,
        instagram_redirect_uri,
        instagram_oauth,
        instagram_authorize_url,
    }
}

/// True for `META_APP_SECRET_ARN` and the like: consumed by [`Settings::load`].
fn is_secret_arn_var(name: &str) -> bool {
    name.strip_suffix(ARN_SUFFIX)
        .is_some_and(|base| SECRET_VARS.contains(&base))
}

/// The AWS resources, when any table variable is set: then all four tables and the key must
/// be.
fn read_aws<F: Fn(&str) -> Option<String>>(r: &mut Reader<F>) -> Option<AwsSettings> {
    let tables = [
        vars::DATA_TABLE,
        vars::ROUTES_TABLE,
        vars::KEYS_TABLE,
        vars::DEDUPE_TABLE,
    ];
    if tables.iter().all(|t| r.get(t).is_none()) {
        return None;
    }
    let mut missing = Vec::new();
    let mut need = |name: &str| {
        r.get(name).unwrap_or_else(|| {
            missing.push(name.to_owned());
            String::new()
        })
    };
    let names = TableNames {
        data: need(vars::DATA_TABLE),
        routes: need(vars::ROUTES_TABLE),
        keys: need(vars::KEYS_TABLE),
        dedupe: need(vars::DEDUPE_TABLE),
    };
    let kms_key_id = need(vars::KMS_KEY_ID);
    if !missing.is_empty() {
        r.problems.push(format!(
            "not set beside the other tables: {}",
            missing.join(", ")
        ));
        return None;
    }
    Some(AwsSettings {
        tables: names,
        kms_key_id,
        export_bucket: r.get(vars::EXPORT_BUCKET),
        tenant_data_role_arn: r.get(vars::TENANT_DATA_ROLE_ARN),
    })
}

/// The URLs of the platform queues and their dead-letter twins that are set.
fn read_queue_urls<F: Fn(&str) -> Option<String>>(r: &Reader<F>) -> HashMap<QueueName, String> {
    let mut queue_urls = HashMap::new();
    for spec in platform::specs() {
        // A worker may also send to its queue's dead-letter twin (the sync worker does), and
        // the redrive reads from it.
        let dlq = spec.name.dead_letter();
        if let Some(url) = r.get(&SqsQueue::url_env_var(&dlq)) {
            queue_urls.insert(dlq, url);
        }
        if let Some(url) = r.get(&SqsQueue::url_env_var(&spec.name)) {
            queue_urls.insert(spec.name, url);
        }
    }
    queue_urls
}

#[cfg(test)]
mod tests;
