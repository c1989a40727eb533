//! The webhook side of the inbound relay: check the signature, split the delivery into
//! events, route each by its exact business account id, enqueue them all, and only then
//! acknowledge. Meta retries unacknowledged deliveries for days, so answering 5xx when the
//! queue is unavailable loses nothing; answering 200 before the queue accepted would.
//!
//! A suspended tenant's jobs are held instead of enqueued ([`crate::hold`]) and the delivery
//! is still acknowledged: they are released to the inbound queue when the tenant is resumed.

use std::collections::HashMap;
use std::sync::Arc;

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::InboundJob;
use crate::hold::{HeldEvents, HoldError};
use crate::ids::TenantId;
use crate::meta::WebhookParseError;
use crate::meta::{split_webhook, verify_signature_any, AccountRef, AppSecret, SignatureError};
use crate::queue::OutgoingMessage;
use crate::queue::{Queue, QueueName};
use crate::tenant::TenantDirectory;

/// Largest delivery we read. Meta's deliveries are far smaller (they batch up to 1,000
/// updates, typically a few KiB); anything bigger is not from Meta.
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// The verify token configured in the Meta app's webhook settings.
#[derive(Clone)]
pub struct VerifyToken(Zeroizing<String>);

impl VerifyToken {
    pub fn new(token: &str) -> Result<Self, String> {
        if token.is_empty() || token.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("the Meta verify token must be non-empty, without spaces".into());
        }
        Ok(VerifyToken(Zeroizing::new(token.to_owned())))
    }

    fn matches(&self, candidate: &str) -> bool {
        self.0.as_bytes().ct_eq(candidate.as_bytes()).into()
    }
}

impl std::fmt::Debug for VerifyToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VerifyToken(<redacted>)")
    }
}

/// What one accepted delivery became.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IntakeReport {
    /// Events enqueued for a tenant.
    pub enqueued: usize,
    /// Events of a suspended tenant, held until it is resumed.
    pub held: usize,
    /// Events for an account no tenant owns: counted and dropped.
    pub unrouted: usize,
    /// Items of the delivery that are not events we relay (see the parser's reasons).
    pub ignored: u32,
    /// The whole delivery was for a webhook object we do not relay.
    pub unsupported_object: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    /// Missing or wrong signature: 401, nothing stored.
    #[error(transparent)]
    Signature(#[from] SignatureError),
    /// Signed but not a webhook we can read: 400, nothing stored.
    #[error(transparent)]
    Malformed(WebhookParseError),
    /// Larger than [`MAX_BODY_BYTES`]: 413.
    #[error("webhook body larger than {MAX_BODY_BYTES} bytes")]
    TooLarge,
    /// Routing or the queue failed: 503, so Meta delivers again later.
    #[error("temporarily unavailable: {0}")]
    Unavailable(String),
}

/// The webhook's domain service. Build once per process.
#[derive(Clone)]
pub struct WebhookIntake {
    secrets: Arc<Vec<AppSecret>>,
    verify_token: VerifyToken,
    tenants: TenantDirectory,
    held: HeldEvents,
    queue: Arc<dyn Queue>,
    inbound: QueueName,
}

impl WebhookIntake {
    /// `secrets`: the app secrets whose signatures are accepted (the current one, and the
    /// previous one while rotating).
    pub fn new(
        secrets: Vec<AppSecret>,
        verify_token: VerifyToken,
        tenants: TenantDirectory,
        queue: Arc<dyn Queue>,
        inbound: QueueName,
    ) -> Self {
        WebhookIntake {
            secrets: Arc::new(secrets),
            verify_token,
            held: tenants.held_events(),
            tenants,
            queue,
            inbound,
        }
    }

    /// The subscription handshake: the challenge to echo when `hub.mode` is `subscribe` and
    /// `hub.verify_token` is ours, else None (answer 403).
    pub fn verify_subscription<'a>(
        &self,
        mode: Option<&str>,
        token: Option<&str>,
        challenge: Option<&'a str>,
    ) -> Option<&'a str> {
        let challenge = challenge.filter(|c| !c.is_empty() && c.len() <= 256)?;
        (mode == Some("subscribe") && token.is_some_and(|t| self.verify_token.matches(t)))
            .then_some(challenge)
    }

    /// Verifies, splits, routes and enqueues one delivery. Ok means every routed event was
    /// accepted by the queue.
    pub async fn accept(
        &self,
        signature: Option<&str>,
        body: &[u8],
    ) -> Result<IntakeReport, IntakeError> {
        if body.len() > MAX_BODY_BYTES {
            return Err(IntakeError::TooLarge);
        }
        verify_signature_any(&self.secrets, signature, body)?;
        let batch = match split_webhook(body) {
            Ok(batch) => batch,
            Err(e) if e.is_ignorable() => {
                tracing::info!(reason = %e, "webhook object not relayed; acknowledged");
                return Ok(IntakeReport {
                    unsupported_object: true,
                    ..IntakeReport::default()
                });
            }
            Err(e) => return Err(IntakeError::Malformed(e)),
        };
        let mut report = IntakeReport {
            ignored: batch.ignored.total(),
            ..IntakeReport::default()
        };
        for (reason, n) in batch.ignored.iter() {
            tracing::info!(reason, count = n, "webhook items not relayed");
        }

        let mut owners: HashMap<AccountRef, Option<TenantId>> = HashMap::new();
        // Per tenant, once per delivery: Some(retention days) when it is suspended.
        let mut suspended: HashMap<TenantId, Option<u32>> = HashMap::new();
        // Held jobs per suspended tenant, in arrival order (tenants in first-seen order).
        let mut holds: Vec<(TenantId, u32, Vec<OutgoingMessage>)> = Vec::new();
        let mut messages = Vec::with_capacity(batch.events.len());
        for event in batch.events {
            if !owners.contains_key(&event.account) {
                let owner = self
                    .tenants
                    .resolve(&event.account.to_channel_ref())
                    .await
                    .map_err(|e| IntakeError::Unavailable(format!("routing: {e}")))?;
                owners.insert(event.account.clone(), owner);
            }
            match owners.get(&event.account).cloned().flatten() {
                Some(tenant) => {
                    if !suspended.contains_key(&tenant) {
                        let profile =
                            self.tenants.profile(&tenant).await.map_err(|e| {
                                IntakeError::Unavailable(format!("tenant status: {e}"))
                            })?;
                        // A route without a profile (a tenant being erased) goes on as before:
                        // the worker drops it.
                        let hold = profile
                            .filter(|p| p.is_suspended())
                            .map(|p| p.retention_days);
                        suspended.insert(tenant.clone(), hold);
                    }
                    let retention = suspended.get(&tenant).copied().flatten();
                    let job = InboundJob::new(tenant.clone(), event);
                    let message = job
                        .to_message()
                        .map_err(|e| IntakeError::Unavailable(format!("encoding job: {e}")))?;
                    match retention {
                        Some(days) => match holds.iter_mut().find(|(t, _, _)| *t == tenant) {
                            Some((_, _, held)) => held.push(message),
                            None => holds.push((tenant, days, vec![message])),
                        },
                        None => messages.push(message),
                    }
                }
                None => {
                    report.unrouted += 1;
                    tracing::warn!(
                        channel = event.account.channel().name(),
                        account = event.account.id(),
                        "webhook event for an account no tenant owns; dropped"
                    );
                }
            }
        }
        // A failure here answers 503 and Meta redelivers the whole delivery: jobs held by an
        // earlier attempt are held twice, which the release tolerates (idempotent workers).
        for (tenant, days, jobs) in holds {
            let count = jobs.len();
            match self
                .held
                .hold(&tenant, &self.inbound, jobs.clone(), days)
                .await
            {
                Ok(n) => {
                    report.held += n;
                    tracing::info!(%tenant, held = n, "tenant suspended: webhook events held");
                }
                // Resumed since we read the status: the rest goes to the queue after all.
                Err(HoldError::NotSuspended { held }) => {
                    report.held += held;
                    tracing::info!(%tenant, held, enqueued = count - held,
                        "tenant resumed during the delivery; remaining events enqueued");
                    messages.extend(jobs.into_iter().skip(held));
                }
                Err(e) => return Err(IntakeError::Unavailable(format!("holding: {e}"))),
            }
        }
        report.enqueued = messages.len();
        if !messages.is_empty() {
            self.queue
                .send_batch(&self.inbound, messages)
                .await
                .map_err(|e| IntakeError::Unavailable(format!("enqueueing: {e}")))?;
        }
        Ok(report)
    }
}
