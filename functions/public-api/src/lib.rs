//! public-api: the tenants' own systems send WhatsApp and Instagram messages here, with a
//! tenant API key (`Authorization: Bearer wpl_...`, scope `send`).
//!
//! - `POST /v1/messages`: `{"channel": "whatsapp"|"instagram", "account_id": "...", "to":
//!   "...", "text": "..."}` or with `"template": {"name", "language", "components"}`
//!   (and optionally `"category"`: `AUTHENTICATION`, `MARKETING` or `UTILITY`)
//!   (WhatsApp). Answers 202 once the send is queued; the same window, quota and error rules
//!   apply as to operator replies. An `Idempotency-Key` header makes retries safe: the same
//!   key and tenant never queue a second message.
//! - Over the tenant's monthly outbound quota: 429 `quota_exceeded`, naming the quota, its
//!   limit, what is used and when it resets (`resets_at` ISO-8601 UTC, `resets_at_unix`),
//!   with `Retry-After` in seconds until then; nothing is queued. A suspended tenant: 403
//!   `tenant_suspended`.
//!
//! The tenant always comes from the key, never from the body; an account not connected to
//! that tenant is 404, whoever owns it.
//!
//! - `GET /health`: the deployment's health, without authentication (decision 0038; what it
//!   checks: `wappline::app::health`). Served here because this function is small and
//!   already on the HTTP API; the local server routes the path here too.

use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use serde::Deserialize;
use wappline::api_keys::{ApiKeyError, ApiKeyScope, ApiKeys};
use wappline::app::health::Health;
use wappline::app::{HttpFunction, Services, ServicesError};
use wappline::conversation::TemplateMessage;
use wappline::edge::{self, ApiError};
use wappline::meta::{AccountRef, CustomerId};
use wappline::outbound::{ApiMessage, OutboundError, OutboundIntake};
use wappline::tenant::TenantDirectory;

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
pub const MESSAGES_PATH: &str = "/v1/messages";
pub use wappline::app::health::PATH as HEALTH_PATH;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SendRequest {
    channel: String,
    account_id: String,
    to: String,
    text: Option<String>,
    template: Option<TemplateRequest>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TemplateRequest {
    name: String,
    language: String,
    #[serde(default)]
    components: serde_json::Value,
    /// Optional: the template's category as Meta names it, so a send Meta would refuse
    /// (an authentication template to a customer known only by BSUID) is refused first.
    #[serde(default)]
    category: Option<String>,
}

pub struct PublicApi {
    keys: ApiKeys,
    tenants: TenantDirectory,
    outbound: OutboundIntake,
    health: Option<Health>,
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::bad_request(msg)
}

impl PublicApi {
    pub fn new(keys: ApiKeys, tenants: TenantDirectory, outbound: OutboundIntake) -> Self {
        PublicApi {
            keys,
            tenants,
            outbound,
            health: None,
        }
    }

    /// Serves `GET /health` with `health` (404 without).
    pub fn with_health(mut self, health: Health) -> Self {
        self.health = Some(health);
        self
    }

    /// Serves one request. Never fails: every outcome is an HTTP response.
    pub async fn handle(&self, req: Request) -> Response<Body> {
        match self.route(&req).await {
            Ok(r) => r.map(Body::from),
            Err(e) => {
                if e.status.is_server_error() {
                    tracing::error!(
                        status = e.status.as_u16(),
                        code = e.code,
                        "public API request failed"
                    );
                }
                e.into_response().map(Body::from)
            }
        }
    }

    async fn route(&self, req: &Request) -> Result<Response<String>, ApiError> {
        let path = req.uri().path().trim_end_matches('/');
        if let (true, Some(health)) = (path.ends_with(HEALTH_PATH), &self.health) {
            if req.method() != Method::GET {
                return Err(ApiError::method_not_allowed());
            }
            let (status, body) = health.check().await;
            return Ok(edge::json(status, &body));
        }
        if !path.ends_with(MESSAGES_PATH) {
            return Err(ApiError::not_found("no such route"));
        }
        if req.method() != Method::POST {
            return Err(ApiError::method_not_allowed());
        }
        let presented = req
            .headers()
            .get(lambda_http::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(ApiError::unauthorized)?;
        let principal = match self.keys.authenticate(presented).await {
            Ok(p) => p,
            Err(ApiKeyError::Invalid) => return Err(ApiError::unauthorized()),
            Err(e) => {
                tracing::error!(error = %e, "API key check failed");
                return Err(ApiError::unavailable());
            }
        };
        if principal.scope != ApiKeyScope::Send {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "this API key may not send messages",
            ));
        }
        let body: &[u8] = req.body().as_ref();
        if body.len() > MAX_BODY_BYTES {
            return Err(ApiError::payload_too_large(MAX_BODY_BYTES));
        }
        let SendBody {
            account,
            to,
            message,
        } = read_send_body(body)?;
        let request_id = match req
            .headers()
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
        {
            Some(k)
                if !k.is_empty() && k.len() <= 128 && k.bytes().all(|b| b.is_ascii_graphic()) =>
            {
                format!("{}:{k}", principal.key_id)
            }
            Some(_) => return Err(bad("Idempotency-Key: 1 to 128 visible ASCII characters")),
            None => {
                let mut b = [0u8; 16];
                wappline::crypto::random_bytes(&mut b).map_err(|_| ApiError::internal())?;
                hex_string(&b)
            }
        };
        // The key's tenant, and only it, with its scoped credentials (decision 0037).
        let accept = self.outbound.accept_api_message(
            &self.tenants,
            &principal.tenant,
            &account,
            to,
            message,
            &request_id,
        );
        let accepted = wappline::acting::acting_for(&principal.tenant, accept).await;
        match accepted {
            Ok(a) => Ok(edge::json(
                StatusCode::ACCEPTED,
                &serde_json::json!({
                    "status": "queued",
                    "conversation_id": a.message.conversation.as_str(),
                    "duplicate": a.duplicate,
                }),
            )),
            Err(OutboundError::UnknownAccount) => {
                tracing::info!(
                    key = principal.key_id,
                    "send to an account the key's tenant does not hold"
                );
                Err(ApiError::not_found("no such connected account"))
            }
            Err(OutboundError::Invalid(m)) => Err(bad(m)),
            Err(OutboundError::QuotaExceeded(q)) => {
                tracing::info!(tenant = %principal.tenant, quota = q.quota, limit = q.limit,
                    "public API send refused: quota used up");
                Err(ApiError::quota_exceeded(&q, wappline::clock::now_secs()))
            }
            Err(OutboundError::SubjectErased) => {
                tracing::info!(tenant = %principal.tenant, "public API send refused: the person is being erased");
                Err(ApiError::subject_being_erased())
            }
            Err(OutboundError::TenantSuspended) => {
                tracing::info!(tenant = %principal.tenant, "public API send refused: tenant suspended");
                Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "tenant_suspended",
                    "this tenant is suspended and may not send messages",
                ))
            }
            Err(e) => {
                tracing::error!(error = %e, "public API send not queued");
                Err(ApiError::unavailable())
            }
        }
    }
}

/// A send request as read from the body, before the key's tenant and the store are involved.
pub struct SendBody {
    pub account: AccountRef,
    pub to: CustomerId,
    pub message: ApiMessage,
}

/// Reads and checks a `POST /v1/messages` body: every check that needs no key, tenant or
/// store. A refused body is a 400 saying what is wrong. Public so that the fuzzer reads
/// bodies exactly as the handler does.
pub fn read_send_body(body: &[u8]) -> Result<SendBody, ApiError> {
    let request: SendRequest = edge::parse_json(body)?;
    let account =
        AccountRef::parse(&request.channel, &request.account_id).map_err(|e| bad(e.to_string()))?;
    let to = CustomerId::parse_for(&account, &request.to).map_err(|e| bad(format!("to: {e}")))?;
    let message = match (request.text, request.template) {
        (Some(text), None) => ApiMessage::Text(text),
        (None, Some(t)) => {
            let ok = |s: &str, max: usize| {
                !s.is_empty()
                    && s.len() <= max
                    && s.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            };
            if !ok(&t.name, 512) {
                return Err(bad("template.name: letters, digits and '_' only"));
            }
            if !ok(&t.language, 16) {
                return Err(bad("template.language: a language code like en_US"));
            }
            if !(t.components.is_null() || t.components.is_array()) {
                return Err(bad("template.components: must be an array"));
            }
            let category = match t.category.map(|c| c.to_ascii_uppercase()) {
                None => None,
                Some(c) if ["AUTHENTICATION", "MARKETING", "UTILITY"].contains(&c.as_str()) => {
                    Some(c)
                }
                Some(_) => {
                    return Err(bad(
                        "template.category: one of AUTHENTICATION, MARKETING, UTILITY",
                    ))
                }
            };
            ApiMessage::Template(TemplateMessage {
                name: t.name,
                language: t.language,
                components: t.components,
                category,
            })
        }
        _ => return Err(bad("give exactly one of text and template")),
    };
    Ok(SendBody {
        account,
        to,
        message,
    })
}

fn hex_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl PublicApi {
    /// Built by the composition root, the same way for the Lambda and the local server.
    pub fn from_services(services: &Services) -> Result<Self, ServicesError> {
        Ok(Self::new(
            services.api_keys(),
            services.platform.tenants.clone(),
            services.outbound_intake()?,
        )
        .with_health(services.health()))
    }
}

#[async_trait::async_trait]
impl HttpFunction for PublicApi {
    async fn handle(&self, req: Request) -> Response<Body> {
        PublicApi::handle(self, req).await
    }
}
