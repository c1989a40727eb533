//! Services: the one composition root. It builds the adapters once per process (the AWS ones
//! for a Lambda function, the embedded ones for the local server) and every use case from
//! them and the [`Settings`]. The Lambda functions and the local server call the same
//! builders, so a service wired for one is wired for the other, and a missing setting is
//! refused at cold start with its variable's name instead of answering 503 later.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use super::settings::{vars, Settings};
use super::tenant_sessions::TenantSessions;
use super::Platform;
use crate::accounts::{Accounts, AccountsConfig, Mailer, OutboxMailer, PasswordHasher, SesMailer};
use crate::api_keys::ApiKeys;
use crate::audit::AuditLog;
use crate::bitrix::{BitrixClient, ENV_CLIENT_ID};
use crate::conversation::erased::ErasedSubjects;
use crate::crm_sync::{
    CustomerProfiles, FlushConfig, Parking, PortalProbe, RetryPolicy as SyncRetryPolicy, SyncWorker,
};
use crate::graph::{GraphClient, HostPolicy};
use crate::hold::Suspension;
use crate::inbound::intake::WebhookIntake;
use crate::inbound::worker::InboundWorker;
use crate::media::{MediaLinks, MediaProxy};
use crate::metrics::{Metrics, Sink};
use crate::objects::embedded::EmbeddedObjects;
use crate::objects::fence::FencedObjects;
use crate::objects::s3::S3Objects;
use crate::objects::ObjectStore;
use crate::outbound::{OutboundClients, OutboundIntake, OutboundRetryPolicy, OutboundWorker};
use crate::ownership::OwnershipProof;
use crate::portal::install::PortalSetup;
use crate::queue::embedded::EmbeddedQueue;
use crate::queue::sqs::SqsQueue;
use crate::queue::{platform, Queue, QueueName};
use crate::retention::RetentionRun;
use crate::revocation::Revocations;
use crate::store::dynamo::DynamoStore;
use crate::store::embedded::EmbeddedStore;
use crate::store::fence::FencedStore;
use crate::usage::Usage;
use crate::vault::fence::FencedVault;
use crate::vault::kms::KmsVault;
use crate::vault::local::LocalVault;

// The builders of self-service onboarding (decision 0040).
mod line_status;
mod onboarding;
mod portal;
mod privacy;
mod templates;

/// Why a service could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ServicesError {
    /// A setting the service needs is not set.
    #[error("{service} needs {setting}, which is not set")]
    Missing {
        service: &'static str,
        setting: String,
    },
    /// A setting is set but unusable together with the others.
    #[error("{service}: {reason}")]
    Invalid {
        service: &'static str,
        reason: String,
    },
    /// An adapter could not be opened (a file, a client).
    #[error("{0}")]
    Adapter(String),
}

pub(super) fn missing(service: &'static str, setting: &str) -> ServicesError {
    // A secret is given on Lambda by its ARN: name both ways.
    let setting = if super::secrets::SECRET_VARS.contains(&setting) {
        format!("{setting} (or {setting}{})", super::secrets::ARN_SUFFIX)
    } else {
        setting.to_owned()
    };
    ServicesError::Missing { service, setting }
}

pub(super) fn invalid(service: &'static str, reason: impl ToString) -> ServicesError {
    ServicesError::Invalid {
        service,
        reason: reason.to_string(),
    }
}

/// Creates `dir` if needed and makes it private to its owner (0700): the embedded files
/// hold tenants' (encrypted) data and the local wrapping key.
fn private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Makes what the adapters created directly in `dir` private too: files 0600 (the redb
/// databases are created with the process umask), folders 0700 (objects, outbox).
fn private_entries(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    for entry in std::fs::read_dir(dir)? {
        use std::os::unix::fs::PermissionsExt;
        let entry = entry?;
        let mode = if entry.file_type()?.is_dir() {
            0o700
        } else {
            0o600
        };
        std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

/// How [`Services::aws_with`] builds the AWS clients beyond the SDK configuration.
#[derive(Clone, Default)]
pub struct AwsClientOptions {
    /// Run on every call of every client, after the SDK's own interceptors. The type is the
    /// smithy runtime's, shared by every AWS SDK crate (re-exported by each).
    pub interceptors: Vec<aws_sdk_dynamodb::config::SharedInterceptor>,
    /// S3 addressed by path (`<endpoint>/<bucket>/<key>`): an emulator on loopback has no
    /// bucket subdomains. AWS itself uses virtual-hosted addressing (false).
    pub s3_path_style: bool,
    /// The interceptors of a tenant's scoped clients instead of `interceptors` (the
    /// IAM-coverage test labels those calls with the tenant's session, decision 0037).
    pub tenant_interceptors: Option<TenantInterceptors>,
}

/// Builds the interceptors of one tenant's scoped clients.
pub type TenantInterceptors = Arc<
    dyn Fn(&crate::ids::TenantId) -> Vec<aws_sdk_dynamodb::config::SharedInterceptor> + Send + Sync,
>;

/// The embedded adapters' own handles, for the local server's TTL purge and inspection.
#[derive(Clone)]
pub struct EmbeddedHandles {
    pub store: EmbeddedStore,
    pub queue: EmbeddedQueue,
}

/// The adapters and settings of one process, and the builders of its use cases.
#[derive(Clone)]
pub struct Services {
    pub settings: Settings,
    pub platform: Platform,
    pub queue: Arc<dyn Queue>,
    /// The recorder every flow counts its facts in (decision 0038); off unless set.
    pub metrics: Metrics,
    /// The queues this process may send to: on AWS those whose URL is set; embedded, all.
    queues: HashSet<QueueName>,
    objects: Option<Arc<dyn ObjectStore>>,
    mailer: Option<Arc<dyn Mailer>>,
    embedded: Option<EmbeddedHandles>,
    /// The tenant sessions on AWS when `TENANT_DATA_ROLE_ARN` is set (decision 0037).
    sessions: Option<Arc<TenantSessions>>,
}

impl Services {
    /// The tenant sessions, when this function's work for a tenant is signed with them.
    pub fn tenant_sessions(&self) -> Option<&TenantSessions> {
        self.sessions.as_deref()
    }

    /// A Lambda function's cold start: JSON logs, the settings from the environment, the AWS
    /// adapters.
    /// The secrets given by ARN are read from Secrets Manager here, once (decision 0035).
    pub async fn from_env() -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        crate::logging::init_json();
        let sdk = super::aws_sdk_config().await;
        let source = super::SecretsManagerSource::new(aws_sdk_secretsmanager::Client::new(&sdk));
        let started = std::time::Instant::now();
        let settings =
            Settings::load(|name| std::env::var(name).ok(), Some(Arc::new(source))).await?;
        // The cold-start cost of the secrets, for the record (decision 0035).
        tracing::info!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "settings and secrets read"
        );
        // On Lambda the metrics are lines of the function's log (stdout), read by CloudWatch.
        let metrics = Metrics::new(
            settings
                .metrics_namespace
                .clone()
                .unwrap_or_else(|| crate::metrics::DEFAULT_NAMESPACE.to_owned()),
            Sink::Stdout,
        );
        Ok(Self::aws_with(settings, &sdk, AwsClientOptions::default())?.with_metrics(metrics))
    }

    /// The AWS adapters, from one SDK configuration shared by every client.
    pub async fn aws(settings: Settings) -> Result<Self, ServicesError> {
        let sdk = super::aws_sdk_config().await;
        Self::aws_with(settings, &sdk, AwsClientOptions::default())
    }

    /// The AWS adapters from a given SDK configuration, with `options` applied to every
    /// client. The Lambda functions use [`Services::aws`]; the IAM-coverage test builds each
    /// function this way against an emulator, with an interceptor that records every call
    /// the function's flows put on the wire.
    pub fn aws_with(
        settings: Settings,
        sdk: &aws_config::SdkConfig,
        options: AwsClientOptions,
    ) -> Result<Self, ServicesError> {
        let aws = settings
            .aws
            .clone()
            .ok_or_else(|| missing("the AWS adapters", vars::DATA_TABLE))?;
        // Each client's configuration takes the shared interceptors on top of the SDK's own.
        macro_rules! client {
            ($sdk_crate:ident $(, $extra:ident($value:expr))*) => {{
                let mut builder = $sdk_crate::config::Builder::from(sdk);
                for interceptor in &options.interceptors {
                    builder.push_interceptor(interceptor.clone());
                }
                $sdk_crate::Client::from_conf(builder $(.$extra($value))*.build())
            }};
        }
        let store = DynamoStore::new(client!(aws_sdk_dynamodb), aws.tables.clone());
        let vault = KmsVault::new(client!(aws_sdk_kms), aws.kms_key_id.clone());
        let queues = settings.queue_urls.keys().cloned().collect();
        let queue = SqsQueue::new(client!(aws_sdk_sqs), settings.queue_urls.clone());
        let objects = aws.export_bucket.clone().map(|bucket| {
            let client = client!(aws_sdk_s3, force_path_style(options.s3_path_style));
            Arc::new(S3Objects::new(client, bucket)) as Arc<dyn ObjectStore>
        });
        // Work for one tenant is signed with that tenant's session (decision 0037).
        let sessions = aws.tenant_data_role_arn.clone().map(|role| {
            Arc::new(TenantSessions::new(
                sdk,
                role,
                aws.tables.clone(),
                aws.kms_key_id.clone(),
                aws.export_bucket.clone(),
                options.clone(),
            ))
        });
        let tenant_stores = sessions
            .clone()
            .map(|s| s as Arc<dyn crate::store::fence::TenantStores>);
        let tenant_vaults = sessions
            .clone()
            .map(|s| s as Arc<dyn crate::vault::fence::TenantVaults>);
        let tenant_objects = sessions
            .clone()
            .map(|s| s as Arc<dyn crate::objects::fence::TenantObjects>);
        let store = FencedStore::new(Arc::new(store), tenant_stores);
        let vault = FencedVault::new(Arc::new(vault), tenant_vaults);
        let objects = objects
            .map(|o| Arc::new(FencedObjects::new(o, tenant_objects)) as Arc<dyn ObjectStore>);
        let mailer = settings
            .mail_from
            .as_ref()
            .map(|from| Arc::new(SesMailer::new(client!(aws_sdk_sesv2), from)) as Arc<dyn Mailer>);
        Ok(Services {
            platform: Platform::new(Arc::new(store), Arc::new(vault)),
            queue: Arc::new(queue),
            metrics: Metrics::off(),
            queues,
            objects,
            mailer,
            embedded: None,
            sessions,
            settings,
        })
    }

    /// The embedded adapters: files under `data_dir`, a local wrapping key instead of KMS,
    /// account email as `.eml` files in `<data_dir>/outbox`.
    pub fn embedded(settings: Settings, data_dir: &Path) -> Result<Self, ServicesError> {
        Self::embedded_tapped(settings, data_dir, &crate::faults::ports::Tap::default())
    }

    /// [`Services::embedded`] with `tap` on every port, under the tenant fence: the soak's
    /// seeded faults and the cost model's meter (decision 0053).
    pub fn embedded_tapped(
        settings: Settings,
        data_dir: &Path,
        tap: &crate::faults::ports::Tap,
    ) -> Result<Self, ServicesError> {
        Self::embedded_hooked(settings, data_dir, tap, None)
    }

    /// [`Services::embedded_tapped`] with `hook` shown every store call that passed the tenant
    /// fence: a test sees which tenant each call acted for (decision 0037).
    pub fn embedded_hooked(
        settings: Settings,
        data_dir: &Path,
        tap: &crate::faults::ports::Tap,
        hook: Option<crate::faults::hooked::SharedHook>,
    ) -> Result<Self, ServicesError> {
        let adapter = |e: &dyn std::fmt::Display| ServicesError::Adapter(e.to_string());
        private_dir(data_dir).map_err(|e| adapter(&e))?;
        let store = EmbeddedStore::open(data_dir).map_err(|e| adapter(&e))?;
        let vault = LocalVault::open_or_create(data_dir).map_err(|e| adapter(&e))?;
        let queue = EmbeddedQueue::open(data_dir, platform::specs()).map_err(|e| adapter(&e))?;
        let objects = EmbeddedObjects::open(data_dir).map_err(|e| adapter(&e))?;
        let mailer = OutboxMailer::new(data_dir.join("outbox"), "Wappline <no-reply@localhost>")
            .map_err(|e| adapter(&e))?;
        private_entries(data_dir).map_err(|e| adapter(&e))?;
        let raw_store: Arc<dyn crate::store::TableStore> = Arc::new(store.clone());
        let raw_vault: Arc<dyn crate::vault::KeyVault> = Arc::new(vault);
        let raw_queue: Arc<dyn Queue> = Arc::new(queue.clone());
        let raw_objects: Arc<dyn ObjectStore> = Arc::new(objects);
        // The soak's faults and the cost model's meter sit under the fence (decision 0053).
        let tapped = tap.faults.is_some() || tap.meter.is_some();
        let (raw_store, raw_vault, raw_queue, raw_objects) = if tapped {
            (
                tap.store(raw_store),
                tap.vault(raw_vault),
                tap.queue(raw_queue),
                tap.objects(raw_objects),
            )
        } else {
            (raw_store, raw_vault, raw_queue, raw_objects)
        };
        let raw_store = match hook {
            Some(hook) => Arc::new(crate::faults::hooked::HookedStore::new(raw_store, hook)),
            None => raw_store,
        };
        // The same tenant fence as on AWS, without scoped credentials (decision 0037).
        let fenced_store = FencedStore::new(raw_store, None);
        let vault = FencedVault::new(raw_vault, None);
        let objects = FencedObjects::new(raw_objects, None);
        Ok(Services {
            platform: Platform::new(Arc::new(fenced_store), Arc::new(vault)),
            queue: raw_queue,
            metrics: Metrics::off(),
            queues: platform::specs().into_iter().map(|s| s.name).collect(),
            objects: Some(Arc::new(objects)),
            sessions: None,
            mailer: Some(Arc::new(mailer)),
            embedded: Some(EmbeddedHandles { store, queue }),
            settings,
        })
    }

    /// Counts the flows' facts in `metrics` (decision 0038): every use case built after this
    /// records into it.
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// The embedded adapters' handles (None on AWS).
    pub fn embedded_handles(&self) -> Option<&EmbeddedHandles> {
        self.embedded.as_ref()
    }

    /// The platform queue `name`, when this process may send to it.
    pub fn queue_name(
        &self,
        service: &'static str,
        name: &str,
    ) -> Result<QueueName, ServicesError> {
        let name = platform::name(name);
        if self.queues.contains(&name) {
            Ok(name)
        } else {
            Err(missing(service, &SqsQueue::url_env_var(&name)))
        }
    }

    fn require_queues(&self, service: &'static str, names: &[&str]) -> Result<(), ServicesError> {
        names
            .iter()
            .try_for_each(|n| self.queue_name(service, n).map(|_| ()))
    }

    fn public_base_url(&self, service: &'static str) -> Result<&str, ServicesError> {
        self.settings
            .public_base_url
            .as_deref()
            .ok_or_else(|| missing(service, vars::PUBLIC_BASE_URL))
    }

    /// The Meta app secret (and the previous one while rotating): signatures and signed
    /// requests are checked against them.
    fn meta_app_secrets(
        &self,
        service: &'static str,
    ) -> Result<Vec<crate::meta::AppSecret>, ServicesError> {
        if self.settings.meta_app_secrets.is_empty() {
            return Err(missing(service, vars::META_APP_SECRET));
        }
        Ok(self.settings.meta_app_secrets.clone())
    }

    /// Graph API hosts: Meta's, plus loopback when the Graph API itself is a loopback fake.
    fn meta_hosts(&self) -> HostPolicy {
        HostPolicy::meta().with_loopback(self.settings.graph.is_loopback())
    }

    pub fn graph_client(&self) -> Result<GraphClient, ServicesError> {
        Ok(GraphClient::new(self.settings.graph.clone())
            .map_err(|e| invalid("the Graph API client", e))?
            .with_hosts(self.meta_hosts()))
    }

    pub fn bitrix_client(&self, service: &'static str) -> Result<BitrixClient, ServicesError> {
        let config = self
            .settings
            .bitrix
            .clone()
            .ok_or_else(|| missing(service, ENV_CLIENT_ID))?;
        BitrixClient::new(config).map_err(|e| invalid(service, e))
    }

    /// meta-webhook: verifies Meta's deliveries and queues one inbound job per event.
    pub fn webhook_intake(&self) -> Result<WebhookIntake, ServicesError> {
        const S: &str = "meta-webhook";
        let secrets = self.meta_app_secrets(S)?;
        let verify = self
            .settings
            .meta_verify_token
            .clone()
            .ok_or_else(|| missing(S, vars::META_VERIFY_TOKEN))?;
        Ok(WebhookIntake::new(
            secrets,
            verify,
            self.platform.tenants.clone(),
            self.queue.clone(),
            self.queue_name(S, platform::INBOUND)?,
        )
        .with_metrics(self.metrics.clone()))
    }

    /// inbound-worker: stores each event and queues its CRM sync.
    pub fn inbound_worker(&self) -> Result<InboundWorker, ServicesError> {
        self.require_queues("inbound-worker", &[platform::SYNC])?;
        Ok(InboundWorker::new(
            self.platform.store.clone(),
            self.platform.envelope.clone(),
            self.platform.tenants.clone(),
            self.queue.clone(),
        )
        .with_metrics(self.metrics.clone())
        .with_mailer(self.mailer.clone())
        .with_app_ids(
            self.settings
                .meta_app_id
                .iter()
                .map(|a| a.as_str().to_owned())
                .chain(self.settings.onboarding.instagram_app_id.clone())
                .collect(),
        )
        .with_line_status(self.line_status())
        .with_mentions(crate::inbound::mention::MentionReader::new(
            self.graph_client()?,
            self.instagram_client("inbound-worker")?,
        ))
        .with_dead_letter_queue(self.dead_letter_queue(platform::INBOUND))
        .with_lease(self.lease()))
    }

    /// The queue port through which a worker moves its own exhausted jobs to the dead-letter
    /// queue of `queue` (decisions 0022, 0069): when that queue is configured, or embedded.
    /// Otherwise the queue's own redrive moves them.
    fn dead_letter_queue(&self, queue: &str) -> Option<Arc<dyn Queue>> {
        (self.queues.contains(&platform::name(queue).dead_letter()) || self.embedded.is_some())
            .then(|| self.queue.clone())
    }

    /// How long a crashed worker's hold blocks a retry (decision 0053).
    pub fn lease(&self) -> std::time::Duration {
        self.settings.lease.unwrap_or(platform::VISIBILITY)
    }

    /// Signed links to the media proxy, with the hosts it may fetch from.
    fn media_links(&self) -> Option<MediaLinks> {
        self.settings
            .media_links
            .clone()
            .map(|links| links.with_hosts(self.meta_hosts()))
    }

    /// sync-worker: messages and statuses into the tenant's Bitrix24 Open Line. Files go as
    /// media links when `MEDIA_LINK_KEY` is set, else as a text label.
    pub fn sync_worker(&self) -> Result<SyncWorker, ServicesError> {
        const S: &str = "sync-worker";
        let mut worker = SyncWorker::new(
            self.platform.store.clone(),
            self.platform.envelope.clone(),
            self.platform.tenants.clone(),
            self.bitrix_client(S)?,
        );
        let mut retry = SyncRetryPolicy::default();
        if let Some(base) = self.settings.retry_base {
            retry.base = base;
        }
        if let Some((max, attempts, min_span)) = self.settings.sync_retry {
            (retry.max, retry.attempts, retry.min_span) = (max, attempts, min_span);
        }
        worker = worker
            .with_retry_policy(retry)
            .with_metrics(self.metrics.clone())
            .with_lease(self.lease());
        if self.settings.sync_batch.is_some() || self.settings.lease.is_some() {
            let mut flush = FlushConfig::default();
            if let Some(max_per_call) = self.settings.sync_batch {
                flush.max_per_call = max_per_call;
            }
            // A shortened lease shortens how long a crashed flusher holds its portal too.
            if let Some(lease) = self.settings.lease {
                flush.claim = flush.claim.min(lease);
            }
            worker = worker.with_flush_config(flush);
        }
        // Exhausted jobs are moved by the worker itself (decision 0022).
        if let Some(queue) = self.dead_letter_queue(platform::SYNC) {
            worker = worker.with_dead_letter_queue(queue);
        }
        if let Some(links) = self.media_links() {
            // Links must name where Bitrix24 fetches them.
            self.public_base_url(S)?;
            worker = worker.with_media_links(Arc::new(links));
        }
        // Instagram customers' names and pictures, from the User Profile API.
        let instagram = GraphClient::new(self.settings.instagram.clone())
            .map_err(|e| invalid(S, e))?
            .with_hosts(self.meta_hosts());
        worker = worker.with_profiles(CustomerProfiles::new(self.graph_client()?, instagram));
        Ok(worker.with_parking(self.crm_parking(S)?))
    }

    /// The parked work of unreachable portals (decision 0025); released jobs go back to the
    /// sync queue.
    fn crm_parking(&self, service: &'static str) -> Result<Parking, ServicesError> {
        self.require_queues(service, &[platform::SYNC])?;
        Ok(Parking::new(
            self.platform.store.clone(),
            self.platform.envelope.clone(),
            self.queue.clone(),
        )
        .with_metrics(self.metrics.clone()))
    }

    /// sync-worker's schedule: probes parked portals and releases their work.
    pub fn portal_probe(&self) -> Result<PortalProbe, ServicesError> {
        const S: &str = "sync-worker";
        Ok(PortalProbe::new(
            self.crm_parking(S)?,
            self.platform.tenants.clone(),
            self.bitrix_client(S)?,
        ))
    }

    /// The sync worker's scheduled import of Coexistence chat history (decision 0052).
    pub fn history_import(&self) -> Result<crate::crm_sync::HistoryImport, ServicesError> {
        self.require_queues("the history import", &[platform::SYNC])?;
        Ok(crate::crm_sync::HistoryImport::new(
            self.platform.store.clone(),
            self.queue.clone(),
        ))
    }

    /// The outbound intake: operator replies and API sends, stored and queued.
    pub fn outbound_intake(&self) -> Result<OutboundIntake, ServicesError> {
        self.require_queues("the outbound intake", &[platform::OUTBOUND])?;
        Ok(OutboundIntake::new(
            self.platform.store.clone(),
            self.platform.envelope.clone(),
            self.queue.clone(),
        )
        .with_metrics(self.metrics.clone()))
    }

    /// outbound-worker: sends through the WhatsApp Cloud API and the Instagram APIs.
    pub fn outbound_worker(&self) -> Result<OutboundWorker, ServicesError> {
        const S: &str = "outbound-worker";
        self.require_queues(S, &[platform::OUTBOUND, platform::SYNC])?;
        let clients =
            OutboundClients::new(self.settings.graph.clone(), self.settings.instagram.clone())
                .map_err(|e| invalid(S, e))?;
        let mut config = self.settings.outbound;
        if let Some(base) = self.settings.retry_base {
            config.retry = OutboundRetryPolicy {
                base: base / 2,
                rate_limited: base,
                pair_rate: base / 3,
                ..OutboundRetryPolicy::default()
            };
        }
        Ok(OutboundWorker::new(
            self.platform.store.clone(),
            self.platform.envelope.clone(),
            self.platform.tenants.clone(),
            self.queue.clone(),
            clients,
        )
        .with_config(config)
        .with_metrics(self.metrics.clone())
        .with_dead_letter_queue(self.dead_letter_queue(platform::OUTBOUND))
        .with_lease(self.lease()))
    }

    /// Users, sessions, invitations and password resets.
    pub fn accounts(&self) -> Result<Accounts, ServicesError> {
        const S: &str = "accounts";
        let key = self
            .settings
            .session_key
            .clone()
            .ok_or_else(|| missing(S, vars::SESSION_SIGNING_KEY))?;
        let hasher = PasswordHasher::new(self.settings.bcrypt_cost).map_err(|e| invalid(S, e))?;
        let accounts = Accounts::new(
            self.platform.store.clone(),
            self.platform.tenants.clone(),
            AccountsConfig::new(hasher, key)
                .with_previous_session_key(self.settings.session_key_previous.clone())
                .with_public_base_url(self.settings.public_base_url.clone())
                .with_policy_version(self.settings.privacy_policy_version.clone()),
        );
        // Without a mailer, invitation tokens are only handed to the inviting admin and
        // self-service password reset answers 503.
        Ok(match &self.mailer {
            Some(mailer) => accounts.with_mailer(mailer.clone()),
            None => accounts,
        })
    }

    /// The email run of a changed privacy policy (decision 0047): the erasure worker's
    /// account-maintenance schedule, the local server's schedules.
    pub fn policy_mailing(&self) -> crate::accounts::policy::PolicyMailing {
        crate::accounts::policy::PolicyMailing::new(
            self.platform.store.clone(),
            self.platform.tenants.clone(),
            self.mailer.clone(),
            self.settings.privacy_policy_version.clone(),
            self.settings.public_base_url.clone(),
        )
    }

    /// media-proxy: serves media links to Bitrix24.
    pub fn media_proxy(&self) -> Result<MediaProxy, ServicesError> {
        const S: &str = "media-proxy";
        let links = self
            .media_links()
            .ok_or_else(|| missing(S, vars::MEDIA_LINK_KEY))?;
        Ok(
            MediaProxy::new(links, self.platform.tenants.clone(), self.graph_client()?)
                .with_max_bytes(self.settings.media_proxy.max_bytes)
                .with_erased_subjects(ErasedSubjects::new(self.platform.store.clone())),
        )
    }

    /// retention: re-stamps expiry after a tenant's retention changed.
    pub fn retention(&self) -> RetentionRun {
        RetentionRun::new(self.platform.store.clone(), self.platform.tenants.clone())
    }

    /// `GET /health` (decision 0038).
    pub fn health(&self) -> super::health::Health {
        super::health::Health::new(self.platform.store.clone())
    }

    pub fn api_keys(&self) -> ApiKeys {
        ApiKeys::new(self.platform.store.clone())
    }

    pub fn audit(&self) -> AuditLog {
        AuditLog::new(self.platform.store.clone())
    }

    pub fn usage(&self) -> Usage {
        Usage::new(self.platform.store.clone())
    }

    /// Suspending and resuming tenants; resuming releases held jobs to the relay queues.
    pub fn suspension(&self) -> Result<Suspension, ServicesError> {
        self.require_queues(
            "suspension",
            &[platform::INBOUND, platform::OUTBOUND, platform::SYNC],
        )?;
        Ok(Suspension::new(
            self.platform.tenants.clone(),
            self.queue.clone(),
        ))
    }

    /// Disconnecting channels and revoking our access at the providers (decision 0036): the
    /// Graph API, the Instagram Login host and, when configured, the Bitrix24 application
    /// with the events handler URL we bound.
    pub fn revocations(&self) -> Result<Revocations, ServicesError> {
        const S: &str = "revocations";
        let instagram = GraphClient::new(self.settings.instagram.clone())
            .map_err(|e| invalid(S, e))?
            .with_hosts(self.meta_hosts());
        let mut revocations = Revocations::new(
            self.platform.tenants.clone(),
            self.graph_client()?,
            instagram,
        );
        if self.settings.bitrix.is_some() {
            if let Ok(endpoint) = self.bitrix_endpoint(S) {
                revocations = revocations.with_bitrix(
                    self.bitrix_client(S)?,
                    PortalSetup::new(endpoint).events_url(),
                );
            }
        }
        Ok(revocations)
    }

    /// Ownership proof of the admin API's connects (decision 0032). Always built: a kind
    /// whose provider settings are missing (`META_APP_ID` with the app secret, the Bitrix24
    /// application) is refused at connect time, naming the setting, never claimed unproven.
    pub fn ownership_proof(&self) -> Result<OwnershipProof, ServicesError> {
        const S: &str = "the ownership proof";
        let instagram = GraphClient::new(self.settings.instagram.clone())
            .map_err(|e| invalid(S, e))?
            .with_hosts(self.meta_hosts());
        let mut proof = OwnershipProof::new(self.graph_client()?, instagram);
        if let (Some(id), Some(secret)) = (
            self.settings.meta_app_id.clone(),
            self.settings.meta_app_secrets.first(),
        ) {
            proof = proof.with_meta_app(id, secret);
        }
        if self.settings.bitrix.is_some() {
            proof = proof.with_bitrix(self.bitrix_client(S)?);
        }
        Ok(proof)
    }
}

#[cfg(test)]
mod tests;
