//! Wiring: builds the adapters once per process (a Lambda cold start, or the local server's
//! start) and hands out the domain services that share them.

use std::path::Path;
use std::sync::Arc;

use crate::crypto::{CachePolicy, Envelope};
use crate::store::dynamo::{DynamoStore, TableNames};
use crate::store::embedded::EmbeddedStore;
use crate::store::TableStore;
use crate::tenant::TenantDirectory;
use crate::vault::kms::KmsVault;
use crate::vault::local::LocalVault;
use crate::vault::KeyVault;

/// The storage-side services every function shares.
#[derive(Clone)]
pub struct Platform {
    pub store: Arc<dyn TableStore>,
    pub envelope: Arc<Envelope>,
    pub tenants: TenantDirectory,
}

impl Platform {
    pub fn new(store: Arc<dyn TableStore>, vault: Arc<dyn KeyVault>) -> Self {
        let envelope = Arc::new(Envelope::new(store.clone(), vault, CachePolicy::default()));
        let tenants = TenantDirectory::new(store.clone(), envelope.clone());
        Platform {
            store,
            envelope,
            tenants,
        }
    }

    /// AWS adapters configured from the Lambda environment (`DATA_TABLE`, ... , `KMS_KEY_ID`;
    /// `AWS_ENDPOINT_URL` is honoured by the SDK itself, for emulators).
    pub async fn from_aws_env(sdk: &aws_config::SdkConfig) -> Result<Self, String> {
        let names = TableNames::from_env().map_err(|e| e.to_string())?;
        let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(sdk), names);
        let vault = KmsVault::from_env(aws_sdk_kms::Client::new(sdk)).map_err(|e| e.to_string())?;
        Ok(Self::new(Arc::new(store), Arc::new(vault)))
    }

    /// Embedded adapters: files under `data_dir`, a local wrapping key instead of KMS.
    pub fn embedded(data_dir: &Path) -> Result<Self, String> {
        Self::embedded_with_store(data_dir).map(|(platform, _)| platform)
    }

    /// As [`Platform::embedded`], also handing out the embedded store itself (the local
    /// server runs its TTL purge, which DynamoDB does on its own in AWS).
    pub fn embedded_with_store(data_dir: &Path) -> Result<(Self, EmbeddedStore), String> {
        let store = EmbeddedStore::open(data_dir).map_err(|e| e.to_string())?;
        let vault = LocalVault::open_or_create(data_dir).map_err(|e| e.to_string())?;
        Ok((Self::new(Arc::new(store.clone()), Arc::new(vault)), store))
    }
}

/// One SDK configuration from the environment, shared by every client of the process.
pub async fn aws_sdk_config() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}

/// The export service from the Lambda environment: `EXPORT_BUCKET` (S3), `EXPORT_LINK_KEY`
/// (hex, at least 32 bytes) and `PUBLIC_BASE_URL` (downloads at
/// `<PUBLIC_BASE_URL>/exports/download/<token>`).
pub fn exports_from_env(
    sdk: &aws_config::SdkConfig,
    platform: &Platform,
) -> Result<crate::export::Exports, String> {
    let bucket = crate::objects::s3::bucket_from_env()
        .ok_or_else(|| "EXPORT_BUCKET is not set".to_owned())?;
    let key = std::env::var("EXPORT_LINK_KEY")
        .map_err(|_| "EXPORT_LINK_KEY is not set".to_owned())
        .and_then(|k| {
            crate::export::ExportLinkKey::from_hex(k.trim())
                .map_err(|e| format!("EXPORT_LINK_KEY: {e}"))
        })?;
    let base =
        std::env::var("PUBLIC_BASE_URL").map_err(|_| "PUBLIC_BASE_URL is not set".to_owned())?;
    let objects = crate::objects::s3::S3Objects::new(aws_sdk_s3::Client::new(sdk), bucket);
    Ok(crate::export::Exports::new(
        platform.store.clone(),
        platform.envelope.clone(),
        Arc::new(objects),
        key,
        format!("{}/exports/download", base.trim_end_matches('/')),
    ))
}

/// User accounts from the Lambda environment: `SESSION_SIGNING_KEY` (hex, at least 32 bytes;
/// signs access tokens), `BCRYPT_COST` (default 12, never lower) and `MAIL_FROM` (an SES
/// verified sender; when empty, no email is sent: invitation tokens are only handed to the
/// inviting admin, and self-service password reset answers 503).
pub fn accounts_from_env(
    sdk: &aws_config::SdkConfig,
    platform: &Platform,
) -> Result<crate::accounts::Accounts, String> {
    use crate::accounts::{Accounts, AccountsConfig, PasswordHasher, SessionKey, MIN_BCRYPT_COST};
    let key = std::env::var("SESSION_SIGNING_KEY")
        .map_err(|_| "SESSION_SIGNING_KEY is not set".to_owned())
        .and_then(|k| SessionKey::from_hex(&k).map_err(|e| format!("SESSION_SIGNING_KEY: {e}")))?;
    let cost = match std::env::var("BCRYPT_COST") {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse()
            .map_err(|_| "BCRYPT_COST must be a whole number".to_owned())?,
        _ => MIN_BCRYPT_COST,
    };
    let hasher = PasswordHasher::new(cost).map_err(|e| format!("BCRYPT_COST: {e}"))?;
    let accounts = Accounts::new(
        platform.store.clone(),
        platform.tenants.clone(),
        AccountsConfig::new(hasher, key),
    );
    Ok(match std::env::var("MAIL_FROM") {
        Ok(from) if !from.trim().is_empty() => accounts.with_mailer(std::sync::Arc::new(
            crate::accounts::SesMailer::new(aws_sdk_sesv2::Client::new(sdk), from.trim()),
        )),
        _ => accounts,
    })
}
