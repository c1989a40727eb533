//! Every service an `AdminApi` needs, on the embedded adapters in one directory.

use std::path::Path;
use std::sync::Arc;

use admin_api::{AdminServices, AdminToken, Erasure, ExportsApi};
use wappline::accounts::{Accounts, AccountsConfig, PasswordHasher, SessionKey};
use wappline::api_keys::ApiKeys;
use wappline::app::Platform;
use wappline::audit::AuditLog;
use wappline::erasure::tenant::TenantErasure;
use wappline::erasure::ContactErasure;
use wappline::export::{ExportLinkKey, Exports};
use wappline::graph::{GraphClient, GraphConfig};
use wappline::hold::Suspension;
use wappline::objects::embedded::EmbeddedObjects;
use wappline::ownership::OwnershipProof;
use wappline::portal::install::{public_base_url, ConnectionCodes};
use wappline::queue::embedded::EmbeddedQueue;
use wappline::queue::{platform as queues, Queue};
use wappline::tenant::release::ChannelRelease;
use wappline::usage::Usage;

/// Install URLs of Bitrix24 connection codes start with this.
pub const PUBLIC_BASE: &str = "https://wappline.example/";

/// The services of `platform` (opened on `dir`), with the platform token `token`.
pub fn services(platform: &Platform, dir: &Path, token: &str) -> AdminServices {
    let queue: Arc<dyn Queue> = Arc::new(EmbeddedQueue::open(dir, queues::specs()).unwrap());
    let exports = Exports::new(
        platform.store.clone(),
        platform.envelope.clone(),
        Arc::new(EmbeddedObjects::open(dir).unwrap()),
        ExportLinkKey::generate().unwrap(),
        format!("{PUBLIC_BASE}exports/download"),
    );
    AdminServices {
        tenants: platform.tenants.clone(),
        token: AdminToken::from_plaintext(token),
        accounts: Accounts::new(
            platform.store.clone(),
            platform.tenants.clone(),
            AccountsConfig::new(
                PasswordHasher::new(12).unwrap(),
                SessionKey::generate().unwrap(),
            ),
        ),
        usage: Usage::new(platform.store.clone()),
        suspension: Suspension::new(platform.tenants.clone(), queue.clone()),
        api_keys: ApiKeys::new(platform.store.clone()),
        audit: AuditLog::new(platform.store.clone()),
        release: ChannelRelease::new(None),
        // Nothing here connects channels; an unreachable loopback Graph refuses any claim.
        ownership: {
            let graph = || {
                GraphClient::new(
                    GraphConfig::default()
                        .with_base_url("http://127.0.0.1:9")
                        .unwrap(),
                )
                .unwrap()
            };
            OwnershipProof::new(graph(), graph())
        },
        exports: ExportsApi {
            exports: exports.clone(),
            queue: queue.clone(),
            queue_name: queues::name(queues::EXPORTS),
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
            public_base_url(PUBLIC_BASE).unwrap(),
        ),
    }
}
