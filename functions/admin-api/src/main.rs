//! admin-api Lambda: builds the clients once at cold start, then serves requests.

use std::sync::Arc;

use admin_api::{AdminApi, AdminServices, AdminToken, Erasure, ExportsApi, DOWNLOAD_PREFIX};
use lambda_http::{run, service_fn, Error, Request};
use wappline::api_keys::ApiKeys;
use wappline::app::{accounts_from_env, aws_sdk_config, exports_from_env, Platform};
use wappline::audit::AuditLog;
use wappline::bitrix::install::{public_base_url, ConnectionCodes, ENV_PUBLIC_BASE_URL};
use wappline::erasure::tenant::TenantErasure;
use wappline::erasure::ContactErasure;
use wappline::graph::{GraphClient, GraphConfig};
use wappline::hold::Suspension;
use wappline::queue::platform;
use wappline::queue::sqs::SqsQueue;
use wappline::tenant::release::ChannelRelease;
use wappline::usage::Usage;

#[tokio::main]
async fn main() -> Result<(), Error> {
    wappline::logging::init_json();
    let token = AdminToken::from_sha256_hex(&std::env::var("ADMIN_TOKEN_SHA256")?)?;
    let sdk = aws_sdk_config().await;
    let platform = Platform::from_aws_env(&sdk).await?;
    let queue = Arc::new(SqsQueue::from_env(
        aws_sdk_sqs::Client::new(&sdk),
        &[
            platform::name(platform::ERASURE),
            platform::name(platform::EXPORTS),
            // Resuming a tenant releases its held webhook jobs to these.
            platform::name(platform::INBOUND),
            platform::name(platform::OUTBOUND),
            platform::name(platform::SYNC),
        ],
    )?);
    let exports = exports_from_env(&sdk, &platform)?;
    // Bitrix24 connection codes need the public address of /bitrix/install.
    let public_base = std::env::var(ENV_PUBLIC_BASE_URL)
        .map_err(|_| format!("{ENV_PUBLIC_BASE_URL} is required"))?;
    let api = AdminApi::new(AdminServices {
        tenants: platform.tenants.clone(),
        token,
        accounts: accounts_from_env(&sdk, &platform)?,
        usage: Usage::new(platform.store.clone()),
        suspension: Suspension::new(platform.tenants.clone(), queue.clone()),
        api_keys: ApiKeys::new(platform.store.clone()),
        audit: AuditLog::new(platform.store.clone()),
        release: ChannelRelease::new(Some(GraphClient::new(GraphConfig::from_lookup(|k| {
            std::env::var(k).ok()
        })?)?)),
        exports: ExportsApi {
            exports: exports.clone(),
            queue: queue.clone(),
            queue_name: platform::name(platform::EXPORTS),
        },
        erasure: Erasure {
            contacts: ContactErasure::new(platform.store.clone(), platform.envelope.clone(), queue)
                .with_exports(exports.clone()),
            tenants: TenantErasure::new(
                platform.store.clone(),
                platform.envelope.clone(),
                platform.tenants.clone(),
            )
            .with_exports(exports),
        },
        bitrix_codes: (
            ConnectionCodes::new(platform.store.clone()),
            public_base_url(&public_base)?,
        ),
    });
    let api = Arc::new(api);
    run(service_fn(move |req: Request| {
        let api = api.clone();
        async move {
            // The public download route of export links is served here too (and /auth/*,
            // by handle).
            if req.uri().path().starts_with(DOWNLOAD_PREFIX) {
                return Ok::<_, Error>(api.download(req).await);
            }
            Ok::<_, Error>(api.handle(req).await)
        }
    }))
    .await
}
