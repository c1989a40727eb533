//! Tenant-scoped AWS credentials (decision 0037): for each tenant a warm function works for,
//! one session of the tenant-data role, assumed with the session tag `tenant_id`, and the
//! DynamoDB, KMS and S3 clients signed with it. The role's policy allows only that tenant's
//! partitions, data keys and export prefix, so these clients cannot reach another tenant
//! whatever key the code builds.
//!
//! - **Lazy**: nothing is assumed at cold start; a tenant's first request assumes its role
//!   (one `AssumeRole`), later ones reuse the session.
//! - **Cached and refreshed**: the tenant's three clients share one credentials provider and
//!   one identity cache, which calls `AssumeRole` again before the one-hour session expires
//!   (role chaining caps sessions at an hour): at the first request within
//!   [`REFRESH_BEFORE_EXPIRY`] of the expiry, less a random jitter of up to half of it that
//!   the SDK's lazy cache adds, so between 5 and 2.5 minutes before. A failed `AssumeRole` fails
//!   that request with an error naming the role and the tenant ([`TenantSessionError`]); the
//!   next request tries again. The built clients are kept per tenant, at most [`MAX_TENANTS`]
//!   (then the least recently built half is dropped).
//! - Hand-written rather than aws-config's `AssumeRoleProvider` (which takes session tags):
//!   that provider builds its own STS client from the SDK configuration, without the
//!   clients' interceptors, so the IAM-coverage test could not check the `AssumeRole` calls
//!   against the roles, and they could not be counted.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_config::identity::IdentityCache;
use aws_credential_types::provider::{self, future, ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use aws_sdk_sts::types::Tag;

use super::services::AwsClientOptions;
use crate::ids::TenantId;
use crate::objects::fence::TenantObjects;
use crate::objects::s3::S3Objects;
use crate::objects::ObjectStore;
use crate::store::dynamo::{DynamoStore, TableNames};
use crate::store::fence::TenantStores;
use crate::store::TableStore;
use crate::vault::fence::{TenantVaults, CONTEXT_TENANT_ID};
use crate::vault::kms::KmsVault;
use crate::vault::KeyVault;

/// The session tag the tenant-data role's conditions read (`aws:PrincipalTag/tenant_id`).
pub const SESSION_TAG: &str = CONTEXT_TENANT_ID;
/// How long a session lasts: the most role chaining allows.
pub const SESSION_LENGTH: Duration = Duration::from_secs(3600);
/// How long before its expiry a session is replaced, at most: the SDK's lazy identity cache
/// subtracts a random jitter of up to half of it, so a session is replaced between this and
/// half of it before it expires (tested in the conformance suite, `tenant_session_refresh`).
pub const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(300);
/// Tenants whose clients a warm function keeps.
pub const MAX_TENANTS: usize = 1024;

/// Assumes the tenant-data role for one tenant.
#[derive(Debug)]
struct TenantRoleCredentials {
    sts: aws_sdk_sts::Client,
    role_arn: String,
    tenant: TenantId,
    calls: Arc<AtomicU64>,
}

/// A tenant's session could not be assumed (or renewed): the request that needed it fails
/// with this as the cause, naming the role and the tenant (an id, no personal data).
#[derive(Debug)]
pub struct TenantSessionError {
    pub role_arn: String,
    pub tenant: TenantId,
    source: Box<dyn std::error::Error + Send + Sync>,
}

impl std::fmt::Display for TenantSessionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "could not assume the tenant-data role {} for tenant {}: {}",
            self.role_arn,
            self.tenant,
            aws_sdk_sts::error::DisplayErrorContext(&*self.source)
        )
    }
}

impl std::error::Error for TenantSessionError {}

impl TenantRoleCredentials {
    fn failed(&self, e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> TenantSessionError {
        TenantSessionError {
            role_arn: self.role_arn.clone(),
            tenant: self.tenant.clone(),
            source: e.into(),
        }
    }

    async fn assume(&self) -> provider::Result {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let tag = Tag::builder()
            .key(SESSION_TAG)
            .value(self.tenant.as_str())
            .build()
            .map_err(provider::error::CredentialsError::invalid_configuration)?;
        let out = self
            .sts
            .assume_role()
            .role_arn(&self.role_arn)
            // The session name shows in CloudTrail: the tenant id, no personal data.
            .role_session_name(self.tenant.as_str())
            .duration_seconds(SESSION_LENGTH.as_secs() as i32)
            .tags(tag)
            .send()
            .await
            .map_err(|e| provider::error::CredentialsError::provider_error(self.failed(e)))?;
        let c = out.credentials().ok_or_else(|| {
            provider::error::CredentialsError::unhandled("AssumeRole returned no credentials")
        })?;
        let expiry = SystemTime::try_from(*c.expiration()).map_err(|e| {
            provider::error::CredentialsError::unhandled(format!("session expiry: {e}"))
        })?;
        Ok(Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            Some(c.session_token().to_owned()),
            Some(expiry),
            "tenant-data-role",
        ))
    }
}

impl ProvideCredentials for TenantRoleCredentials {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(self.assume())
    }
}

/// One tenant's clients, signed with its session.
struct TenantClients {
    store: Arc<dyn TableStore>,
    vault: Arc<dyn KeyVault>,
    objects: Option<Arc<dyn ObjectStore>>,
}

/// Clients built so far, and each tenant's (with the build number that made them).
type ClientCache = (u64, HashMap<TenantId, (u64, Arc<TenantClients>)>);

/// Every tenant's clients of one warm function.
pub struct TenantSessions {
    sdk: aws_config::SdkConfig,
    sts: aws_sdk_sts::Client,
    role_arn: String,
    tables: TableNames,
    kms_key_id: String,
    bucket: Option<String>,
    options: AwsClientOptions,
    clients: Mutex<ClientCache>,
    assume_calls: Arc<AtomicU64>,
}

impl TenantSessions {
    pub fn new(
        sdk: &aws_config::SdkConfig,
        role_arn: String,
        tables: TableNames,
        kms_key_id: String,
        bucket: Option<String>,
        options: AwsClientOptions,
    ) -> Self {
        // STS is called with the function's own role, recorded like its other clients.
        let mut sts = aws_sdk_sts::config::Builder::from(sdk);
        for interceptor in &options.interceptors {
            sts.push_interceptor(interceptor.clone());
        }
        TenantSessions {
            sdk: sdk.clone(),
            sts: aws_sdk_sts::Client::from_conf(sts.build()),
            role_arn,
            tables,
            kms_key_id,
            bucket,
            options,
            clients: Mutex::new((0, HashMap::new())),
            assume_calls: Arc::new(AtomicU64::new(0)),
        }
    }

    /// `AssumeRole` calls made so far (benchmarks and tests).
    pub fn assume_calls(&self) -> u64 {
        self.assume_calls.load(Ordering::Relaxed)
    }

    fn clients(&self, tenant: &TenantId) -> Arc<TenantClients> {
        let mut guard = self.clients.lock().expect("tenant sessions lock");
        let (built, cache) = &mut *guard;
        if let Some((_, clients)) = cache.get(tenant) {
            return clients.clone();
        }
        if cache.len() >= MAX_TENANTS {
            // Keep the newer half: a function serving this many tenants re-assumes the others.
            let mut ages: Vec<u64> = cache.values().map(|(n, _)| *n).collect();
            ages.sort_unstable();
            let cut = ages[ages.len() / 2];
            cache.retain(|_, (n, _)| *n >= cut);
        }
        *built += 1;
        let clients = Arc::new(self.build(tenant));
        cache.insert(tenant.clone(), (*built, clients.clone()));
        clients
    }

    fn build(&self, tenant: &TenantId) -> TenantClients {
        let provider = TenantRoleCredentials {
            sts: self.sts.clone(),
            role_arn: self.role_arn.clone(),
            tenant: tenant.clone(),
            calls: self.assume_calls.clone(),
        };
        // One provider and one cache for the tenant's three clients: one session each.
        let sdk = self
            .sdk
            .to_builder()
            .credentials_provider(SharedCredentialsProvider::new(provider))
            .identity_cache(
                IdentityCache::lazy()
                    .buffer_time(REFRESH_BEFORE_EXPIRY)
                    .build(),
            )
            .build();
        let mut interceptors = self.options.interceptors.clone();
        if let Some(scoped) = &self.options.tenant_interceptors {
            interceptors = scoped(tenant);
        }
        macro_rules! client {
            ($sdk_crate:ident $(, $extra:ident($value:expr))*) => {{
                let mut builder = $sdk_crate::config::Builder::from(&sdk);
                for interceptor in &interceptors {
                    builder.push_interceptor(interceptor.clone());
                }
                $sdk_crate::Client::from_conf(builder $(.$extra($value))*.build())
            }};
        }
        let store = DynamoStore::new(client!(aws_sdk_dynamodb), self.tables.clone());
        let vault = KmsVault::new(client!(aws_sdk_kms), self.kms_key_id.clone());
        let objects = self.bucket.as_ref().map(|bucket| {
            let client = client!(aws_sdk_s3, force_path_style(self.options.s3_path_style));
            Arc::new(S3Objects::new(client, bucket.clone())) as Arc<dyn ObjectStore>
        });
        TenantClients {
            store: Arc::new(store),
            vault: Arc::new(vault),
            objects,
        }
    }
}

impl TenantStores for TenantSessions {
    fn store_for(&self, tenant: &TenantId) -> Arc<dyn TableStore> {
        self.clients(tenant).store.clone()
    }
}

impl TenantVaults for TenantSessions {
    fn vault_for(&self, tenant: &TenantId) -> Arc<dyn KeyVault> {
        self.clients(tenant).vault.clone()
    }
}

impl TenantObjects for TenantSessions {
    fn objects_for(&self, tenant: &TenantId) -> Arc<dyn ObjectStore> {
        // Built whenever the function has an export bucket, as the fenced store is.
        self.clients(tenant)
            .objects
            .clone()
            .expect("tenant objects are asked for only when the bucket is set")
    }
}
