//! The all-in-one local server: serves every HTTP function of template.yaml on one port with
//! the same routes, on the embedded adapters (redb files and a local wrapping key under the
//! data directory: no cloud, no Docker, no network).
//!
//! HTTP requests are turned into the same `lambda_http::Request` values API Gateway would
//! produce and handed to the same handler code the Lambda functions run.

/// The allocator of the local server's binary (and of the bench that measures it): mimalloc,
/// 10 % less CPU a message than glibc's on the whole inbound path (decision 0109).
pub use mimalloc::MiMalloc as Allocator;

pub mod background;
pub mod consumers;
mod dispatch;
mod keys;
pub mod listener;
pub mod schedules;

use dispatch::{dispatch, function_of_path};
use keys::{
    load_or_create_export_key, load_or_create_media_key, load_or_create_session_key,
    load_or_create_token,
};

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use admin_api::AdminApi;
use bitrix_webhook::BitrixWebhook;
use console::Console;
use data_deletion::DataDeletion;
use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequestContext;
use lambda_http::aws_lambda_events::query_map::QueryMap;
use lambda_http::request::RequestContext;
use lambda_http::RequestExt;
use media_proxy::MediaProxyFunction;
use meta_webhook::MetaWebhook;
use public_api::PublicApi;
use wappline::app::runtime::metered;
use wappline::app::settings::vars as settings_vars;
use wappline::app::{HttpFunction, Platform, Services, ServicesError, Settings};
use wappline::bitrix;
use wappline::consumer::RecordHandler;
use wappline::graph;
use wappline::media::DEFAULT_MAX_BYTES;
use wappline::metrics::{Metrics, Sink};
use wappline::outbound::ENV_INSTAGRAM_BASE_URL;
use wappline::queue::embedded::EmbeddedQueue;
use wappline::queue::platform;

use background::Background;
use consumers::Consumer;
use listener::{BodyError, Limits};

/// Largest request body the local server reads (API Gateway's payload limit is 10 MB).
const MAX_REQUEST_BYTES: usize = 10 * 1024 * 1024;
/// Polling loops on the sync queue (Lambda runs one invocation per message group).
const SYNC_CONSUMERS: usize = 8;
/// Polling loops on the inbound queue, unless `--inbound-consumers` says otherwise. FIFO
/// groups keep each conversation in order across loops (a group with a message in flight is
/// offered to no one), and concurrent loops' writes share the embedded files' fsyncs
/// (decision 0054), where one loop's are all sequential. Each message's store writes wait for
/// a flush one after the other, so the messages in flight set the rate while the store's
/// writer has room: 32, not 16, since the writes became batches of one transaction
/// (decision 0107: 1,946 messages/s on average against 1,748 with 16, alternated; 64 no
/// better, 1,904).
const INBOUND_CONSUMERS: u16 = 32;

/// Configuration, from flags or the environment.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "local-server",
    version,
    about = "Run Wappline locally on embedded storage"
)]
pub struct LocalConfig {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "WAPPLINE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Directory for the embedded tables, queues and the local wrapping key.
    #[arg(long, env = "WAPPLINE_DATA_DIR", default_value = ".local-data")]
    pub data_dir: PathBuf,

    /// Platform admin bearer token. When absent, one is generated once and kept in
    /// `<data-dir>/admin-token`.
    #[arg(long, env = "WAPPLINE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// Meta app secret, for X-Hub-Signature-256 and signed_request checks.
    #[arg(long, env = "META_APP_SECRET", hide_env_values = true)]
    pub meta_app_secret: Option<String>,

    /// Meta app id: with the app secret, the app access token that proves WhatsApp
    /// connections through `debug_token`. Without it WhatsApp connects are refused.
    #[arg(long, env = "META_APP_ID")]
    pub meta_app_id: Option<String>,

    /// Verify token for Meta's webhook subscription handshake.
    #[arg(long, env = "META_VERIFY_TOKEN", hide_env_values = true)]
    pub meta_verify_token: Option<String>,

    /// Graph API base URL (point it at a fake for tests; plain http only on loopback).
    #[arg(
        long,
        env = "GRAPH_API_BASE_URL",
        default_value = "https://graph.facebook.com"
    )]
    pub graph_api_base_url: String,

    /// Instagram API base URL for sends with Instagram-login tokens (a fake for tests; plain
    /// http only on loopback). Default: the Graph API base URL when that is loopback, else
    /// `https://graph.instagram.com`.
    #[arg(long, env = "INSTAGRAM_API_BASE_URL")]
    pub instagram_api_base_url: Option<String>,

    /// Embedded Signup: the Facebook Login for Business configuration id the console
    /// launches Meta's SDK with (decision 0040).
    #[arg(long, env = "META_ES_CONFIG_ID")]
    pub meta_es_config_id: Option<String>,

    /// Where the console loads Meta's JavaScript SDK from (a fake for tests).
    #[arg(long, env = "META_SDK_URL")]
    pub meta_sdk_url: Option<String>,

    /// The origins Embedded Signup's popup posts its session info from (comma separated;
    /// default Facebook's; a fake for tests).
    #[arg(long, env = "META_LOGIN_ORIGINS")]
    pub meta_login_origins: Option<String>,

    /// Instagram Login's app id. With the secret, Instagram accounts connect themselves.
    #[arg(long, env = "INSTAGRAM_APP_ID")]
    pub instagram_app_id: Option<String>,

    /// Instagram Login's app secret.
    #[arg(long, env = "INSTAGRAM_APP_SECRET", hide_env_values = true)]
    pub instagram_app_secret: Option<String>,

    /// The redirect URI registered with the Instagram app. Default:
    /// `<public base URL>/app/onboarding/instagram/callback`.
    #[arg(long, env = "INSTAGRAM_REDIRECT_URI")]
    pub instagram_redirect_uri: Option<String>,

    /// Instagram's OAuth host for the code exchange (default `https://api.instagram.com`; a
    /// fake for tests).
    #[arg(long, env = "INSTAGRAM_OAUTH_BASE_URL")]
    pub instagram_oauth_base_url: Option<String>,

    /// Instagram's authorization window (default
    /// `https://www.instagram.com/oauth/authorize`; a fake for tests).
    #[arg(long, env = "INSTAGRAM_AUTHORIZE_URL")]
    pub instagram_authorize_url: Option<String>,

    /// Bitrix24 application client_id. Without it (and the secret) nothing is synced to
    /// Bitrix24: sync jobs wait in their queue.
    #[arg(long, env = "WAPPLINE_BITRIX_CLIENT_ID")]
    pub bitrix_client_id: Option<String>,

    /// Bitrix24 application client_secret.
    #[arg(long, env = "WAPPLINE_BITRIX_CLIENT_SECRET", hide_env_values = true)]
    pub bitrix_client_secret: Option<String>,

    /// Bitrix24 OAuth token endpoint (point it at a fake for tests).
    #[arg(long, env = "WAPPLINE_BITRIX_OAUTH_URL")]
    pub bitrix_oauth_url: Option<String>,

    /// Reach every Bitrix24 portal at `<url>/<domain>/rest/` instead of
    /// `https://<domain>/rest/` (a loopback fake; plain http only on loopback).
    #[arg(long, env = "WAPPLINE_BITRIX_PORTAL_BASE_URL")]
    pub bitrix_portal_base_url: Option<String>,

    /// Limit on one whole Bitrix24 REST call, in milliseconds (default 20 s): a hanging
    /// portal fails the call, which is retried later like any failure.
    #[arg(long, env = "WAPPLINE_BITRIX_TIMEOUT_MS")]
    pub bitrix_timeout_ms: Option<String>,

    /// Limit on one whole Graph API request, in milliseconds (default 20 s). The send
    /// worker waits at least this long (plus a second) before it sends again a message
    /// whose first send's outcome it does not know (decision 0110).
    #[arg(long, env = "GRAPH_API_TIMEOUT_MS")]
    pub graph_timeout_ms: Option<String>,

    /// Base URL under which this server is reachable by Bitrix24 (media links point here).
    /// Default: `http://<listen address>`.
    #[arg(long, env = "WAPPLINE_PUBLIC_BASE_URL")]
    pub public_base_url: Option<String>,

    /// The privacy policy's current version, its effective date `YYYY-MM-DD`: users who have
    /// not acknowledged it see a notice in the console, and the schedules email each of them
    /// once (decision 0047).
    #[arg(long, env = "WAPPLINE_PRIVACY_POLICY_VERSION")]
    pub privacy_policy_version: Option<String>,
    /// Lifetime of the media links Bitrix24 downloads files from, in seconds (default 300;
    /// decision 0048). They are made just before the Bitrix24 call that carries them.
    #[arg(long, env = "WAPPLINE_MEDIA_LINK_TTL_SECS")]
    pub media_link_ttl_secs: Option<String>,

    /// How often the scheduled jobs (tenant erasure sweep, retention, the probe of parked
    /// Bitrix24 portals) run, in seconds.
    #[arg(long, env = "WAPPLINE_SCHEDULE_SECS", default_value_t = 60)]
    pub schedule_secs: u64,

    /// Coexistence chat history: past messages queued per WhatsApp number per scheduled
    /// run (default 250; decision 0052).
    #[arg(long, env = "WAPPLINE_HISTORY_POSTS_PER_RUN")]
    pub history_posts_per_run: Option<usize>,

    /// First retry delay, in milliseconds, for jobs that failed for a passing reason
    /// (doubled per attempt, at most an hour).
    #[arg(long, env = "WAPPLINE_RETRY_BASE_MS", default_value_t = 30_000)]
    pub retry_base_ms: u64,

    /// CRM sync retry limits as `max_ms,attempts,min_span_ms` (default: an hour, 40 attempts,
    /// 24 hours; decision 0022).
    #[arg(long, env = "WAPPLINE_SYNC_RETRY")]
    pub sync_retry: Option<String>,

    /// CRM sync: operations per Bitrix24 request, 1 to 50 (default 50; decision 0023).
    #[arg(long, env = "WAPPLINE_SYNC_BATCH")]
    pub sync_batch: Option<String>,

    /// bcrypt cost of user passwords (12 or more). Raising it re-hashes each password at
    /// its user's next sign-in.
    #[arg(long, env = "WAPPLINE_BCRYPT_COST", default_value_t = wappline::accounts::MIN_BCRYPT_COST)]
    pub bcrypt_cost: u32,

    /// Connections served at once; more wait unaccepted in the kernel's backlog.
    #[arg(long, env = "WAPPLINE_MAX_CONNECTIONS", default_value_t = 1024)]
    pub max_connections: usize,

    /// Seconds a client has to send a request's headers (and an idle keep-alive connection
    /// stays open).
    #[arg(long, env = "WAPPLINE_HEADER_TIMEOUT_SECS", default_value_t = 10)]
    pub header_timeout_secs: u64,

    /// Seconds a client has to send a request's body (408 after that).
    #[arg(long, env = "WAPPLINE_BODY_TIMEOUT_SECS", default_value_t = 30)]
    pub body_timeout_secs: u64,

    /// Seconds a write to a client may wait without the client taking a byte; then the
    /// connection is closed (a client that stops reading frees its place).
    #[arg(long, env = "WAPPLINE_WRITE_TIMEOUT_SECS", default_value_t = 30)]
    pub write_timeout_secs: u64,

    /// How much lower the background work (queue consumers, schedules) runs than the HTTP
    /// listener: added to the server's nice value, 0 to 19 (0: the same priority). The
    /// webhook is answered first when both want the CPU; the background catches up.
    #[arg(long, env = "WAPPLINE_BACKGROUND_NICE", default_value_t = background::DEFAULT_NICE)]
    pub background_nice: i32,

    /// Threads of the background runtime (default: one per core).
    #[arg(long, env = "WAPPLINE_BACKGROUND_THREADS")]
    pub background_threads: Option<usize>,

    /// Polling loops on the inbound queue (default 32): messages in flight at once, whose
    /// store writes share the embedded files' durable commits. 1 to 256.
    #[arg(long, env = "WAPPLINE_INBOUND_CONSUMERS", default_value_t = INBOUND_CONSUMERS,
          value_parser = clap::value_parser!(u16).range(1..=256))]
    pub inbound_consumers: u16,

    /// Do not write the metrics (CloudWatch Embedded Metric Format lines, the ones the Lambda
    /// functions write) to the log. Written every `--metrics-secs` seconds otherwise.
    #[arg(long, env = "WAPPLINE_NO_METRICS")]
    pub no_metrics: bool,

    /// Seconds between two writes of the metrics to the log.
    #[arg(long, env = "WAPPLINE_METRICS_SECS", default_value_t = 60)]
    pub metrics_secs: u64,

    /// A recorder to count into instead of the log's (tests read what the flows counted).
    #[arg(skip)]
    pub metrics: Option<Metrics>,

    /// Seconds a crashed worker's hold on a job blocks its retry: the relay workers'
    /// idempotency leases, the portal flush claim and the consumers' visibility timeout
    /// (default 180, the queues' visibility timeout on AWS).
    #[arg(long, env = "WAPPLINE_LEASE_SECS")]
    pub lease_secs: Option<u64>,

    /// Seconds after a contact erasure completes before its second pass erases the same
    /// conversations again (default the lease; 0 runs it at once).
    #[arg(long, env = "WAPPLINE_ERASURE_SWEEP_SECS")]
    pub erasure_sweep_secs: Option<u64>,

    /// Seeded faults and a meter on every port (the soak and the cost model, decision 0053).
    #[arg(skip)]
    pub tap: Option<wappline::faults::ports::Tap>,

    /// A hook shown every store call under the tenant fence (tests: which tenant each call
    /// acted for).
    #[arg(skip)]
    pub store_hook: Option<wappline::faults::hooked::SharedHook>,
}

impl LocalConfig {
    /// A configuration for tests: loopback, a free port, the given data dir and token.
    pub fn for_tests(data_dir: &Path, admin_token: &str) -> Self {
        LocalConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: data_dir.to_owned(),
            admin_token: Some(admin_token.to_owned()),
            meta_app_secret: None,
            meta_app_id: None,
            meta_verify_token: None,
            graph_api_base_url: "http://127.0.0.1:9".into(),
            bitrix_client_id: None,
            bitrix_client_secret: None,
            bitrix_oauth_url: None,
            bitrix_portal_base_url: None,
            bitrix_timeout_ms: None,
            graph_timeout_ms: None,
            retry_base_ms: 100,
            sync_retry: None,
            sync_batch: None,
            public_base_url: None,
            privacy_policy_version: None,
            media_link_ttl_secs: None,
            instagram_api_base_url: None,
            meta_es_config_id: None,
            meta_sdk_url: None,
            meta_login_origins: None,
            instagram_app_id: None,
            instagram_app_secret: None,
            instagram_redirect_uri: None,
            instagram_oauth_base_url: None,
            instagram_authorize_url: None,
            schedule_secs: 1,
            history_posts_per_run: None,
            bcrypt_cost: wappline::accounts::MIN_BCRYPT_COST,
            max_connections: 1024,
            header_timeout_secs: 10,
            body_timeout_secs: 30,
            write_timeout_secs: 30,
            background_nice: background::DEFAULT_NICE,
            background_threads: None,
            inbound_consumers: INBOUND_CONSUMERS,
            // Tests read the log for other things.
            no_metrics: true,
            metrics_secs: 60,
            metrics: None,
            lease_secs: None,
            // The second pass of a contact erasure at once (decision 0137): tests wait for
            // the erasure queue to empty.
            erasure_sweep_secs: Some(0),
            tap: None,
            store_hook: None,
        }
    }

    /// The background runtime's layout, checked: a wrong setting stops the start.
    fn background_layout(&self) -> Result<background::Layout, String> {
        let threads = match self.background_threads {
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(2, |n| n.get()),
        };
        background::Layout::new(threads, self.background_nice)
    }

    fn limits(&self) -> Limits {
        Limits {
            max_connections: self.max_connections.max(1),
            header_read_timeout: Duration::from_secs(self.header_timeout_secs.max(1)),
            body_read_timeout: Duration::from_secs(self.body_timeout_secs.max(1)),
            write_timeout: Duration::from_secs(self.write_timeout_secs.max(1)),
            max_body_bytes: MAX_REQUEST_BYTES,
        }
    }
}

/// Every function's handler, built once by the same code the Lambda functions run.
struct Functions {
    admin: AdminApi,
    /// The tenant web console, under `/app`.
    console: Console,
    /// None until a Meta app secret and verify token are configured.
    meta: Option<MetaWebhook>,
    media: MediaProxyFunction,
    public: PublicApi,
    /// None until a Bitrix24 application is configured.
    bitrix: Option<BitrixWebhook>,
    /// None until a Meta app secret is configured.
    data_deletion: Option<DataDeletion>,
}

/// A running local server. Dropped without [`LocalServer::shutdown`], its listener stops and
/// its background tasks are dropped where they wait (decision 0094).
pub struct LocalServer {
    platform: Platform,
    queue: EmbeddedQueue,
    addr: SocketAddr,
    data_dir: PathBuf,
    generated_token_file: Option<PathBuf>,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    /// The consumers' and schedules' runtime (decision 0094); the listener runs on the
    /// runtime that started the server.
    background: Background,
    /// The sync worker's run that shows restrictions' ends (decision 0066), for tests that
    /// run it at a time of their choosing.
    restriction_ends: Option<wappline::portal::restriction_ends::RestrictionEnds>,
}

impl LocalConfig {
    /// The platform's [`Settings`], as the Lambda functions read them from their environment:
    /// the flags under the same variable names, and the signing keys kept in the data dir.
    fn settings(&self, admin_token: &str, public_base: &str) -> Result<Settings, String> {
        let dir = &self.data_dir;
        let mut vars: HashMap<&str, String> = HashMap::from([
            (settings_vars::PUBLIC_BASE_URL, public_base.to_owned()),
            (
                settings_vars::ADMIN_TOKEN_SHA256,
                hex::encode(Settings::admin_token_digest(admin_token)),
            ),
            (graph::ENV_BASE_URL, self.graph_api_base_url.clone()),
            (settings_vars::BCRYPT_COST, self.bcrypt_cost.to_string()),
            (
                settings_vars::RETRY_BASE_MS,
                self.retry_base_ms.max(1).to_string(),
            ),
            // Local media answers are not bound by Lambda's response size.
            (
                settings_vars::MEDIA_MAX_BYTES,
                DEFAULT_MAX_BYTES.to_string(),
            ),
            (
                settings_vars::SESSION_SIGNING_KEY,
                load_or_create_session_key(dir)?,
            ),
            (
                settings_vars::EXPORT_LINK_KEY,
                load_or_create_export_key(dir)?,
            ),
            (
                settings_vars::MEDIA_LINK_KEY,
                load_or_create_media_key(dir)?,
            ),
        ]);
        let optional = [
            (settings_vars::META_APP_SECRET, &self.meta_app_secret),
            (settings_vars::META_APP_ID, &self.meta_app_id),
            (settings_vars::META_VERIFY_TOKEN, &self.meta_verify_token),
            (ENV_INSTAGRAM_BASE_URL, &self.instagram_api_base_url),
            (bitrix::ENV_CLIENT_ID, &self.bitrix_client_id),
            (bitrix::ENV_CLIENT_SECRET, &self.bitrix_client_secret),
            (bitrix::ENV_OAUTH_URL, &self.bitrix_oauth_url),
            (bitrix::ENV_PORTAL_BASE_URL, &self.bitrix_portal_base_url),
            (bitrix::ENV_TIMEOUT_MS, &self.bitrix_timeout_ms),
            (graph::ENV_TIMEOUT_MS, &self.graph_timeout_ms),
            (settings_vars::SYNC_RETRY, &self.sync_retry),
            (
                settings_vars::PRIVACY_POLICY_VERSION,
                &self.privacy_policy_version,
            ),
            (settings_vars::SYNC_BATCH, &self.sync_batch),
            (wappline::media::ENV_TTL_SECS, &self.media_link_ttl_secs),
            (
                settings_vars::LEASE_SECS,
                &self.lease_secs.map(|s| s.to_string()),
            ),
            (
                settings_vars::ERASURE_SWEEP_SECS,
                &self.erasure_sweep_secs.map(|s| s.to_string()),
            ),
            (settings_vars::META_ES_CONFIG_ID, &self.meta_es_config_id),
            (settings_vars::META_SDK_URL, &self.meta_sdk_url),
            (settings_vars::META_LOGIN_ORIGINS, &self.meta_login_origins),
            (settings_vars::INSTAGRAM_APP_ID, &self.instagram_app_id),
            (
                settings_vars::INSTAGRAM_APP_SECRET,
                &self.instagram_app_secret,
            ),
            (
                settings_vars::INSTAGRAM_OAUTH_BASE_URL,
                &self.instagram_oauth_base_url,
            ),
            (
                settings_vars::INSTAGRAM_AUTHORIZE_URL,
                &self.instagram_authorize_url,
            ),
        ];
        let redirect = self.instagram_redirect_uri.clone().unwrap_or_else(|| {
            format!(
                "{}{}",
                public_base.trim_end_matches('/'),
                wappline::onboarding::instagram::REDIRECT_PATH
            )
        });
        vars.insert(settings_vars::INSTAGRAM_REDIRECT_URI, redirect);
        for (name, value) in optional {
            if let Some(v) = value {
                vars.insert(name, v.clone());
            }
        }
        Settings::from_lookup(|name| vars.get(name).cloned()).map_err(|e| e.to_string())
    }
}

/// An optional integration: built when configured, else None with a warning.
fn optional<T>(built: Result<T, ServicesError>, what: &str) -> Result<Option<T>, String> {
    match built {
        Ok(t) => Ok(Some(t)),
        Err(ServicesError::Missing { setting, .. }) => {
            tracing::warn!(%setting, "not configured: {what}");
            Ok(None)
        }
        Err(e) => Err(e.to_string()),
    }
}

impl LocalServer {
    /// Opens the embedded storage, binds the listener and starts serving.
    pub async fn start(config: LocalConfig) -> Result<Self, String> {
        let layout = config.background_layout()?;
        if !(1..=256).contains(&config.inbound_consumers) {
            return Err(format!(
                "--inbound-consumers must be 1 to 256, not {}",
                config.inbound_consumers
            ));
        }
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| format!("cannot create data dir {}: {e}", config.data_dir.display()))?;
        let (token, generated_token_file) = match &config.admin_token {
            Some(t) if !t.is_empty() => (t.clone(), None),
            _ => {
                let (t, path) = load_or_create_token(&config.data_dir)?;
                (t, Some(path))
            }
        };
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let public_base = config
            .public_base_url
            .clone()
            .unwrap_or_else(|| format!("http://{addr}"));
        let settings = config.settings(&token, &public_base)?;
        let tap = config.tap.clone().unwrap_or_default();
        let hook = config.store_hook.clone();
        let mut services = Services::embedded_hooked(settings, &config.data_dir, &tap, hook)
            .map_err(|e| e.to_string())?;
        if let Some(metrics) = config.metrics.clone() {
            services = services.with_metrics(metrics);
        } else if !config.no_metrics {
            // The same lines as on Lambda, in this server's log (decision 0038).
            let namespace = services
                .settings
                .metrics_namespace
                .clone()
                .unwrap_or_else(|| wappline::metrics::DEFAULT_NAMESPACE.to_owned());
            services = services.with_metrics(Metrics::new(namespace, Sink::Stderr));
        }
        let e = |e: ServicesError| e.to_string();
        let functions = Arc::new(Functions {
            admin: AdminApi::from_services(&services).map_err(e)?,
            console: Console::from_services(&services).map_err(e)?,
            meta: optional(
                MetaWebhook::from_services(&services),
                "Meta's webhook (--meta-app-secret, --meta-verify-token); /webhooks/meta answers 503",
            )?,
            media: MediaProxyFunction::from_services(&services).map_err(e)?,
            public: PublicApi::from_services(&services).map_err(e)?,
            bitrix: optional(
                BitrixWebhook::from_services(&services),
                "the Bitrix24 application (--bitrix-client-id, --bitrix-client-secret); /bitrix/* answers 503",
            )?,
            data_deletion: optional(
                DataDeletion::from_services(&services),
                "Meta's data deletion callback (--meta-app-secret); /data-deletion answers 503",
            )?,
        });
        // The queue consumers, as Lambda's SQS event source mappings run them in AWS.
        // Their records are counted as the Lambda runners count them.
        let meter = tap.meter.clone();
        let consumer =
            |queue: &'static str, handler: Arc<dyn RecordHandler>, services: &Services| Consumer {
                queue: platform::name(queue),
                visibility: services.lease(),
                handler,
                meter: meter.clone(),
            };
        fn counted<H: RecordHandler>(
            handler: H,
            services: &Services,
            queue: &'static str,
        ) -> Arc<dyn RecordHandler> {
            Arc::new(metered(handler, services, queue))
        }
        let mut consumers = vec![
            consumer(
                platform::INBOUND,
                counted(
                    services.inbound_worker().map_err(e)?,
                    &services,
                    platform::INBOUND,
                ),
                &services,
            ),
            consumer(
                platform::OUTBOUND,
                counted(
                    services.outbound_worker().map_err(e)?,
                    &services,
                    platform::OUTBOUND,
                ),
                &services,
            ),
            consumer(
                platform::EXPORTS,
                counted(
                    services.export_worker().map_err(e)?,
                    &services,
                    platform::EXPORTS,
                ),
                &services,
            ),
            consumer(
                platform::ERASURE,
                counted(
                    services.erasure_worker().map_err(e)?,
                    &services,
                    platform::ERASURE,
                ),
                &services,
            ),
        ];
        if let Some(sync) = optional(
            services.sync_worker(),
            "CRM sync (the Bitrix24 application); its jobs wait in their queue",
        )? {
            consumers.push(consumer(
                platform::SYNC,
                counted(sync, &services, platform::SYNC),
                &services,
            ));
        }
        let (shutdown, rx) = watch::channel(false);
        let background = Background::start(layout)?;
        let on_background = background.handle().clone();
        let mut workers = JoinSet::new();
        for consumer in consumers {
            // CRM sync talks to many tenants' portals: several loops, so one slow portal
            // holds back only its own conversation, not the next batches (decision 0022).
            let loops = if consumer.queue == platform::name(platform::SYNC) {
                SYNC_CONSUMERS
            } else if consumer.queue == platform::name(platform::INBOUND) {
                usize::from(config.inbound_consumers)
            } else {
                1
            };
            for _ in 0..loops {
                workers.spawn_on(
                    consumers::run(services.queue.clone(), consumer.clone(), rx.clone()),
                    &on_background,
                );
            }
        }
        let handles = services
            .embedded_handles()
            .cloned()
            .expect("the local server runs on the embedded adapters");
        for schedule in schedules::platform(&services, &handles, config.schedule_secs).map_err(e)? {
            workers.spawn_on(schedules::run(schedule, rx.clone()), &on_background);
        }
        if let Some(schedule) = schedules::history_import(
            &services,
            config.schedule_secs,
            config.history_posts_per_run,
        )
        .map_err(e)?
        {
            workers.spawn_on(schedules::run(schedule, rx.clone()), &on_background);
        }
        if services.metrics.is_on() {
            workers.spawn_on(
                schedules::flush_metrics(
                    services.metrics.clone(),
                    Duration::from_secs(config.metrics_secs.max(1)),
                    rx.clone(),
                ),
                &on_background,
            );
        }
        let limits = config.limits();
        let handle = move |req: hyper::Request<Incoming>, peer| {
            let functions = functions.clone();
            let meter = meter.clone();
            async move {
                // Each request is one API Gateway request and one invocation of the function
                // its path routes to (the cost model, decision 0053).
                let function = function_of_path(req.uri().path());
                let started = std::time::Instant::now();
                let answer = dispatch(&functions, req, peer, &limits).await;
                if let Some(meter) = &meter {
                    meter.count("API Gateway", "HTTP API request", 1.0);
                    meter.invocation(function, started.elapsed());
                }
                answer
            }
        };
        let task = tokio::spawn(async move {
            listener::serve(listener, limits, handle, rx).await;
            while workers.join_next().await.is_some() {}
        });
        tracing::info!(%addr, "local server started");
        Ok(LocalServer {
            restriction_ends: services.restriction_ends(),
            platform: services.platform.clone(),
            queue: handles.queue,
            addr,
            data_dir: config.data_dir,
            generated_token_file,
            shutdown,
            task,
            background,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The storage the server runs on, for tests and diagnostics in the same process (the
    /// embedded files cannot be opened twice).
    pub fn platform(&self) -> &Platform {
        &self.platform
    }

    /// The restriction-end run of the sync worker's schedule (None without the Bitrix24
    /// application), to run at a chosen time.
    pub fn restriction_ends(&self) -> Option<&wappline::portal::restriction_ends::RestrictionEnds> {
        self.restriction_ends.as_ref()
    }

    /// The embedded queues, for tests and diagnostics in the same process.
    pub fn queue(&self) -> &EmbeddedQueue {
        &self.queue
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn generated_token_file(&self) -> Option<&Path> {
        self.generated_token_file.as_deref()
    }

    /// Stops accepting, drops open connections, and waits until every handle on the
    /// storage is released (so the same data dir can be opened again).
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        // The listener's task ends once every consumer and schedule has returned, so the
        // background runtime has nothing left to run when it is dropped here.
        let _ = self.task.await;
        drop(self.background);
    }
}
