//! Every service an `AdminApi` needs, on the embedded adapters in one directory.

use std::path::Path;
use std::sync::Arc;

use admin_api::{AdminServices, AdminToken, Erasure, ExportsApi, Onboarding};
use wappline::accounts::{Accounts, AccountsConfig, PasswordHasher, SessionKey};
use wappline::api_keys::ApiKeys;
use wappline::app::Platform;
use wappline::audit::AuditLog;
use wappline::erasure::tenant::TenantErasure;
use wappline::erasure::ContactErasure;
use wappline::export::{ExportLinkKey, Exports};
use wappline::graph::{GraphClient, GraphConfig};
use wappline::hold::Suspension;
use wappline::ids::MetaAppId;
use wappline::meta::AppSecret;
use wappline::objects::embedded::EmbeddedObjects;
use wappline::ownership::OwnershipProof;
use wappline::portal::install::{public_base_url, ConnectionCodes};
use wappline::queue::embedded::EmbeddedQueue;
use wappline::queue::{platform as queues, Queue};
use wappline::revocation::Revocations;
use wappline::usage::Usage;

/// Install URLs of Bitrix24 connection codes start with this.
pub const PUBLIC_BASE: &str = "https://wappline.example/";

/// The Meta app the sample events' WhatsApp token was issued for (see [`meta_fake`]).
pub const SAMPLE_APP_ID: &str = "670843887433847";
const SAMPLE_APP_SECRET: &str = "sample-app-secret";
const SAMPLE_WABA: &str = "102290129340398";
const SAMPLE_NUMBER: &str = "106540352242922";

/// A loopback stand-in for the two Graph calls that prove a WhatsApp connect, in Meta's
/// documented formats: `debug_token` (asked with the sample app's token) says any input token
/// is valid for the sample app with both WhatsApp permissions on the sample WABA, and the
/// WABA's `phone_numbers` lists the sample number. Its base URL.
fn meta_fake() -> String {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream);
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            let mut authorization = String::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if line.to_ascii_lowercase().starts_with("authorization:") {
                    authorization = line[14..].trim().to_owned();
                }
            }
            let path = request_line.split(' ').nth(1).unwrap_or_default();
            let app_token = format!("Bearer {SAMPLE_APP_ID}|{SAMPLE_APP_SECRET}");
            let body = if path.contains("/debug_token?") && authorization == app_token {
                serde_json::json!({"data": {
                    "app_id": SAMPLE_APP_ID, "type": "SYSTEM_USER", "is_valid": true,
                    "expires_at": 0,
                    "scopes": ["whatsapp_business_management", "whatsapp_business_messaging"],
                    "granular_scopes": [
                        {"scope": "whatsapp_business_management", "target_ids": [SAMPLE_WABA]},
                        {"scope": "whatsapp_business_messaging", "target_ids": [SAMPLE_WABA]}]}})
            } else if path.contains(&format!("/{SAMPLE_WABA}/phone_numbers")) {
                serde_json::json!({"data": [{"id": SAMPLE_NUMBER,
                    "display_phone_number": "+1 555-0100", "verified_name": "Sample"}],
                    "paging": {"cursors": {"before": "QVFI", "after": "QVFJ"}}})
            } else {
                serde_json::json!({"error": {"message": "Invalid OAuth access token.",
                    "type": "OAuthException", "code": 190}})
            };
            let body = body.to_string();
            let status = if body.contains("\"error\"") {
                "401 Unauthorized"
            } else {
                "200 OK"
            };
            let mut stream = reader.into_inner();
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    base
}

/// Connects are proven against [`meta_fake`].
fn ownership_proof() -> OwnershipProof {
    let graph =
        GraphClient::new(GraphConfig::default().with_base_url(&meta_fake()).unwrap()).unwrap();
    OwnershipProof::new(graph.clone(), graph).with_meta_app(
        MetaAppId::parse(SAMPLE_APP_ID).unwrap(),
        &AppSecret::new(SAMPLE_APP_SECRET).unwrap(),
    )
}

/// Revocations against a Graph API nobody listens on: the disconnect still goes through,
/// the provider steps stay pending.
fn revocations(platform: &Platform) -> Revocations {
    let graph =
        GraphClient::new(GraphConfig::default().with_base_url(&meta_fake()).unwrap()).unwrap();
    Revocations::new(platform.tenants.clone(), graph.clone(), graph)
}

/// The connect flows, unconfigured (their own tests run on the local server with the fakes).
fn onboarding(platform: &Platform) -> Onboarding {
    use wappline::onboarding::{
        EmbeddedSignup, InstagramLogin, LoginStateKey, PageSettings, DEFAULT_AUTHORIZE_URL,
    };
    let graph =
        GraphClient::new(GraphConfig::default().with_base_url(&meta_fake()).unwrap()).unwrap();
    Onboarding {
        signup: EmbeddedSignup::new(
            graph.clone(),
            None,
            ownership_proof(),
            revocations(platform),
            AuditLog::new(platform.store.clone()),
        ),
        instagram: InstagramLogin::new(
            graph.clone(),
            graph,
            None,
            DEFAULT_AUTHORIZE_URL.to_owned(),
            LoginStateKey::from_bytes(&[9u8; 32]).unwrap(),
            ownership_proof(),
            revocations(platform),
            AuditLog::new(platform.store.clone()),
        ),
        page: PageSettings {
            meta_app_id: None,
            es_config_id: None,
            sdk_url: "https://connect.facebook.net/en_US/sdk.js".to_owned(),
            instagram_login: false,
        },
    }
}

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
        revocations: revocations(platform),
        ownership: ownership_proof(),
        templates: wappline::templates::sync::TemplateSync::new(
            platform.tenants.clone(),
            GraphClient::new(GraphConfig::default().with_base_url(&meta_fake()).unwrap()).unwrap(),
        ),
        providers: None,
        onboarding: onboarding(platform),
        exports: ExportsApi {
            exports: exports.clone(),
            requests: wappline::export::ExportRequests::new(
                exports.clone(),
                queue.clone(),
                queues::name(queues::EXPORTS),
            ),
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
