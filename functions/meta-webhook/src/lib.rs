//! meta-webhook: Meta's webhook endpoint for WhatsApp Cloud API and Instagram Messaging, one
//! route for both products (`/webhooks/meta`).
//!
//! - `GET`: the subscription handshake; answers `hub.challenge` as plain text when
//!   `hub.mode=subscribe` and `hub.verify_token` matches, else 403.
//! - `POST`: signature over the exact raw body first (401 if missing or wrong), then split,
//!   route and enqueue; 200 only once the queue accepted every event (503 otherwise, so Meta
//!   retries). A suspended tenant's events are held instead, and acknowledged the same way.
//!   Signed but malformed bodies get 400.
//!
//! The work is [`wappline::inbound::intake::WebhookIntake`]; this crate maps HTTP to it.

use lambda_http::http::{header, Method, Response, StatusCode};
use lambda_http::{Body, Request, RequestExt};
use wappline::app::{HttpFunction, Services, ServicesError};
use wappline::edge::{self, ApiError};
use wappline::inbound::intake::{IntakeError, WebhookIntake, MAX_BODY_BYTES};
use wappline::meta::SIGNATURE_HEADER;

/// The route, as template.yaml declares it.
pub const PATH: &str = "/webhooks/meta";

pub struct MetaWebhook {
    intake: WebhookIntake,
}

impl MetaWebhook {
    pub fn new(intake: WebhookIntake) -> Self {
        MetaWebhook { intake }
    }

    /// Serves one request. Never fails: every outcome is an HTTP response.
    pub async fn handle(&self, req: Request) -> Response<Body> {
        let result = match *req.method() {
            Method::GET => Ok(self.subscribe(&req)),
            Method::POST => self.deliver(&req).await,
            _ => Err(ApiError::method_not_allowed()),
        };
        match result {
            Ok(resp) => resp,
            Err(e) => e.into_response().map(Body::from),
        }
    }

    fn subscribe(&self, req: &Request) -> Response<Body> {
        let params = req.query_string_parameters();
        let challenge = self.intake.verify_subscription(
            params.first("hub.mode"),
            params.first("hub.verify_token"),
            params.first("hub.challenge"),
        );
        match challenge {
            Some(challenge) => {
                tracing::info!("webhook subscription verified");
                Response::builder()
                    .status(StatusCode::OK)
                    .header(header::CONTENT_TYPE, "text/plain")
                    .body(Body::from(challenge.to_owned()))
                    .expect("static response parts")
            }
            None => {
                tracing::warn!("webhook subscription handshake refused");
                ApiError::new(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    "verification failed: hub.mode must be subscribe with our verify token",
                )
                .into_response()
                .map(Body::from)
            }
        }
    }

    async fn deliver(&self, req: &Request) -> Result<Response<Body>, ApiError> {
        let signature = req
            .headers()
            .get(SIGNATURE_HEADER)
            .and_then(|v| v.to_str().ok());
        let body: &[u8] = req.body().as_ref();
        match self.intake.accept(signature, body).await {
            Ok(report) => {
                tracing::info!(
                    enqueued = report.enqueued,
                    held = report.held,
                    unrouted = report.unrouted,
                    ignored = report.ignored,
                    unsupported_object = report.unsupported_object,
                    "webhook delivery accepted"
                );
                Ok(edge::json(
                    StatusCode::OK,
                    &serde_json::json!({ "received": report.enqueued }),
                )
                .map(Body::from))
            }
            Err(IntakeError::Signature(e)) => {
                tracing::warn!(reason = %e, "webhook delivery with a bad signature refused");
                Err(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "invalid_signature",
                    e.to_string(),
                ))
            }
            Err(IntakeError::Malformed(e)) => {
                tracing::warn!(reason = %e, "signed webhook delivery unreadable; refused");
                Err(ApiError::bad_request(e.to_string()))
            }
            Err(IntakeError::TooLarge) => Err(ApiError::payload_too_large(MAX_BODY_BYTES)),
            Err(IntakeError::TooManyEvents(what)) => Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_many_events",
                what.to_string(),
            )),
            Err(IntakeError::Unavailable(detail)) => {
                tracing::error!(detail, "webhook delivery not enqueued; Meta will retry");
                Err(ApiError::unavailable())
            }
        }
    }
}

impl MetaWebhook {
    /// Built by the composition root, the same way for the Lambda and the local server.
    pub fn from_services(services: &Services) -> Result<Self, ServicesError> {
        Ok(Self::new(services.webhook_intake()?))
    }
}

#[async_trait::async_trait]
impl HttpFunction for MetaWebhook {
    async fn handle(&self, req: Request) -> Response<Body> {
        MetaWebhook::handle(self, req).await
    }
}
