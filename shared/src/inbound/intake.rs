//! The webhook side of the inbound relay: check the signature, split the delivery into
//! events, route each by its exact business account id, enqueue them all, and only then
//! acknowledge. Meta retries unacknowledged deliveries for days, so answering 5xx when the
//! queue is unavailable loses nothing; answering 200 before the queue accepted would.
//!
//! A suspended tenant's jobs are held instead of enqueued ([`crate::hold`]) and the delivery
//! is still acknowledged: they are released to the inbound queue when the tenant is resumed.
//!
//! Every job is sealed with its tenant's envelope before it leaves this function
//! ([`InboundJob::seal`]): queues and held events carry no personal data in clear.

use std::collections::HashMap;
use std::sync::Arc;

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::InboundJob;
use crate::hold::{HeldEvents, HoldError};
use crate::ids::{TenantId, Text};
use crate::meta::WebhookParseError;
use crate::meta::{
    split_webhook_borrowed, verify_signature_any, AccountRef, AppSecret, Content, EventKind,
    InboundEvent, MetaError, SignatureError,
};
use crate::metrics::Metrics;
use crate::queue::OutgoingMessage;
use crate::queue::{Queue, QueueName};
use crate::tenant::{ChannelRef, TenantDirectory};

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
    /// More events or array elements than Meta ever batches in one delivery: 413, nothing
    /// stored.
    #[error("{0}")]
    TooManyEvents(&'static str),
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
    metrics: Metrics,
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
            held: crate::hold::HeldEvents::of(&tenants),
            tenants,
            queue,
            inbound,
            metrics: Metrics::off(),
        }
    }

    /// Counts deliveries that could not be taken (503) in `metrics` (decision 0038).
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
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
        let result = self.take(signature, body).await;
        if let Err(IntakeError::Unavailable(_)) = &result {
            // Refused input (4xx) is not a failure of ours; an unavailable store or queue is.
            self.metrics.failure("webhook", "unavailable");
        }
        result
    }

    async fn take(
        &self,
        signature: Option<&str>,
        body: &[u8],
    ) -> Result<IntakeReport, IntakeError> {
        if body.len() > MAX_BODY_BYTES {
            return Err(IntakeError::TooLarge);
        }
        verify_signature_any(&self.secrets, signature, body)?;
        // Template webhooks update the tenants' template copies (decision 0050); the split
        // below counts those fields as not relayed.
        crate::templates::webhook::apply(
            &crate::templates::TemplateBook::new(self.tenants.store().clone()),
            body,
        )
        .await
        .map_err(|e| IntakeError::Unavailable(format!("templates: {e}")))?;
        // The events borrow their strings from `body`: sealed without a copy (decision 0103).
        let batch = match split_webhook_borrowed(body) {
            Ok(batch) => batch,
            Err(e) if e.is_ignorable() => {
                tracing::info!(reason = %e, "webhook object not relayed; acknowledged");
                return Ok(IntakeReport {
                    unsupported_object: true,
                    ..IntakeReport::default()
                });
            }
            Err(WebhookParseError::TooManyItems(what)) => {
                tracing::warn!(
                    reason = what,
                    "webhook delivery over the event cap; refused"
                );
                return Err(IntakeError::TooManyEvents(what));
            }
            Err(e) => return Err(IntakeError::Malformed(e)),
        };
        let mut batch = batch;
        let mut report = IntakeReport {
            ignored: batch.ignored.total(),
            ..IntakeReport::default()
        };
        for (reason, n) in batch.ignored.iter() {
            // Unreadable items are Meta sending something we cannot read: worth a warning.
            if reason.contains(":malformed") {
                tracing::warn!(reason, count = n, "webhook items unreadable; not relayed");
            } else {
                tracing::info!(reason, count = n, "webhook items not relayed");
            }
        }
        for (reason, n) in batch.malformed.iter() {
            tracing::warn!(
                reason,
                count = n,
                "webhook items unreadable; relayed as unsupported"
            );
        }
        // Account events arrive on the WABA: one event per connected number it concerns.
        for waba_update in std::mem::take(&mut batch.account_updates) {
            batch.events.extend(
                self.account_events(waba_update)
                    .await
                    .map_err(|e| IntakeError::Unavailable(format!("routing: {e}")))?,
            );
        }
        batch.clamp_timestamps(now_unix_seconds());

        // Each account's tenant, looked up once per delivery. A list: a delivery names one
        // account or a few, and the events' accounts are borrowed (compared, not copied).
        let mut owners: Vec<(AccountRef, Option<TenantId>)> = Vec::new();
        // Per tenant, once per delivery: Some(retention days) when it is suspended.
        let mut suspended: HashMap<TenantId, Option<u32>> = HashMap::new();
        // Held jobs per suspended tenant, in arrival order (tenants in first-seen order).
        let mut holds: Vec<(TenantId, u32, Vec<OutgoingMessage>)> = Vec::new();
        let mut messages = Vec::with_capacity(batch.events.len());
        // Per channel, once per delivery: whether its tenant imports the chat history.
        let mut history: HashMap<AccountRef, bool> = HashMap::new();
        let mut history_dropped = 0usize;
        for event in batch.events {
            let same = |a: &AccountRef| {
                a.channel() == event.account.channel() && a.id() == event.account.id()
            };
            let owner = match owners.iter().find(|(a, _)| same(a)) {
                Some((_, owner)) => owner.clone(),
                None => {
                    let account = event.account.to_owned_ref();
                    let owner = self
                        .tenants
                        .resolve(&ChannelRef::of(&account))
                        .await
                        .map_err(|e| IntakeError::Unavailable(format!("routing: {e}")))?;
                    owners.push((account, owner.clone()));
                    owner
                }
            };
            match owner {
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
                    if matches!(event.kind, EventKind::HistoryMessage { .. })
                        && !self
                            .imports_history(&mut history, &tenant, &event.account.to_owned_ref())
                            .await?
                    {
                        // Not opted in (decision 0052): not queued, not stored, not kept.
                        history_dropped += 1;
                        continue;
                    }
                    let retention = suspended.get(&tenant).copied().flatten();
                    let job = InboundJob::new(tenant.clone(), event);
                    // Sealed here, so no queue (nor the held copy) ever holds the event in
                    // clear. Warm, this is in-process work only (cached data key).
                    let mut message = job
                        .seal(self.tenants.envelope(), &self.inbound)
                        .await
                        .map_err(|e| IntakeError::Unavailable(format!("sealing job: {e}")))?;
                    if message.body.len() > crate::queue::MAX_BODY_BYTES {
                        // Too large for the queue: relayed without its content, so the
                        // operator learns a message could not be relayed and its neighbours
                        // still go through (rather than the delivery failing forever).
                        tracing::warn!(
                            event = job.event.kind.name(),
                            bytes = message.body.len(),
                            "webhook event too large for the queue; relayed as unsupported"
                        );
                        let event = job.event.to_owned_event().map_err(|e| {
                            IntakeError::Unavailable(format!("reading the event: {e}"))
                        })?;
                        let job = InboundJob::new(tenant.clone(), too_large(event));
                        message = job
                            .seal(self.tenants.envelope(), &self.inbound)
                            .await
                            .map_err(|e| IntakeError::Unavailable(format!("sealing job: {e}")))?;
                    }
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
        if history_dropped > 0 {
            tracing::info!(
                count = history_dropped,
                "chat history not imported (not opted in); dropped"
            );
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

impl WebhookIntake {
    /// The events of one account update: one per connected number of its WABA that it
    /// concerns (decision 0051), keyed by the WABA, the update and its time so a redelivery
    /// dedupes.
    async fn account_events<S: Text>(
        &self,
        w: crate::meta::account::WabaUpdate,
    ) -> Result<Vec<InboundEvent<S>>, crate::tenant::TenantError> {
        use sha2::{Digest, Sha256};
        let numbers = self
            .tenants
            .waba_numbers(&w.waba, w.number.as_deref())
            .await?;
        if numbers.is_empty() {
            tracing::info!(
                update = w.update.label(),
                "account event for a WABA without connected numbers; dropped"
            );
        }
        let digest =
            Sha256::digest(serde_json::to_vec(&(&w.update, w.time)).expect("an update serialises"));
        let key = format!("wa:account:{}:{}", w.waba, hex::encode(&digest[..16]));
        Ok(numbers
            .into_iter()
            .map(|n| InboundEvent {
                schema: crate::meta::EVENT_SCHEMA_VERSION,
                account: AccountRef::WhatsApp(n.number.into_text()),
                provider_event_id: S::from_string(key.clone()),
                timestamp: w.time,
                kind: EventKind::AccountUpdate {
                    update: w.update.clone(),
                },
            })
            .collect())
    }

    /// Whether `tenant` imports the Coexistence chat history of `account` (cached in `seen`).
    async fn imports_history(
        &self,
        seen: &mut HashMap<AccountRef, bool>,
        tenant: &TenantId,
        account: &AccountRef,
    ) -> Result<bool, IntakeError> {
        if let Some(on) = seen.get(account) {
            return Ok(*on);
        }
        let on = match account {
            AccountRef::WhatsApp(number) => {
                crate::coexistence::Coexistence::new(self.tenants.store().clone())
                    .settings(tenant, number)
                    .await
                    .map_err(|e| IntakeError::Unavailable(format!("coexistence settings: {e}")))?
                    .history_import
            }
            _ => false,
        };
        seen.insert(account.clone(), on);
        Ok(on)
    }
}

fn now_unix_seconds() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// `event` without what can be large (content, names, error texts): its id, customer and
/// time stay, so the conversation shows that something arrived and could not be relayed.
fn too_large(mut event: InboundEvent) -> InboundEvent {
    let note = || Content::Unsupported {
        type_name: "too_large".into(),
        errors: Vec::new(),
    };
    let note_error = || MetaError {
        title: Some("too_large".into()),
        ..MetaError::default()
    };
    match &mut event.kind {
        EventKind::CustomerMessage {
            customer,
            content,
            reply_to,
            referral,
            referred_product,
            ..
        } => {
            customer.name = None;
            customer.username = None;
            *content = note();
            *reply_to = None;
            *referral = None;
            *referred_product = None;
        }
        EventKind::BusinessEcho {
            customer,
            content,
            reply_to,
            app_id,
            ..
        } => {
            customer.name = None;
            customer.username = None;
            *content = note();
            *reply_to = None;
            *app_id = None;
        }
        EventKind::Edited {
            customer, content, ..
        } => {
            customer.name = None;
            customer.username = None;
            *content = note();
        }
        EventKind::Status {
            status,
            billing,
            recipient,
            ..
        } => {
            if let crate::meta::DeliveryStatus::Failed { errors } = status {
                *errors = vec![note_error()];
            }
            *billing = None;
            if let Some(r) = recipient {
                r.name = None;
                r.username = None;
            }
        }
        EventKind::AccountError { errors } => *errors = vec![note_error()],
        // Small by construction (codes and names Meta chose).
        EventKind::AccountUpdate { .. } => {}
        EventKind::Handover { customer, .. } => {
            customer.name = None;
            customer.username = None;
        }
        EventKind::HistoryMessage {
            customer, content, ..
        } => {
            customer.name = None;
            *content = note();
        }
        EventKind::ContactSync { name, .. } => *name = None,
        EventKind::HistoryProgress { .. } => {}
        // Ids only.
        EventKind::Mention { .. } => {}
        EventKind::Reaction { customer, .. }
        | EventKind::Deleted { customer, .. }
        | EventKind::Read { customer, .. } => {
            customer.name = None;
            customer.username = None;
        }
        EventKind::Postback {
            customer,
            title,
            payload,
            ..
        } => {
            customer.name = None;
            customer.username = None;
            *title = None;
            *payload = None;
        }
    }
    event
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use async_trait::async_trait;
    use serde_json::json;

    use super::*;
    use crate::app::Platform;
    use crate::faults::hooked::{HookedStore, StoreCall, StoreHook, Verdict};
    use crate::queue::embedded::EmbeddedQueue;
    use crate::queue::platform;
    use crate::store::embedded::EmbeddedStore;
    use crate::tenant::{
        ChannelKind, ChannelRef, Connection, RetentionDays, Secret, TenantName, PROFILE_SK,
    };
    use crate::vault::local::LocalVault;

    /// Counts reads of tenant profiles.
    #[derive(Default)]
    struct ProfileReads(AtomicUsize);

    #[async_trait]
    impl StoreHook for ProfileReads {
        async fn before(&self, call: &StoreCall<'_>) -> Verdict {
            if let StoreCall::Get { key, .. } = call {
                if key.sk == PROFILE_SK {
                    self.0.fetch_add(1, Ordering::Relaxed);
                }
            }
            Verdict::Run
        }
    }

    async fn tenant_with_number(p: &Platform, number: &str) -> TenantId {
        let id = p
            .tenants
            .create(TenantName::parse("T").unwrap(), RetentionDays::default())
            .await
            .unwrap()
            .id;
        let mut secrets = BTreeMap::new();
        secrets.insert("access_token", Secret::parse("a", "EAAtoken").unwrap());
        p.tenants
            .scope(&id)
            .await
            .unwrap()
            .unwrap()
            .connect(Connection {
                channel: ChannelRef::parse(ChannelKind::WhatsApp, number).unwrap(),
                details: BTreeMap::new(),
                secrets,
                authorized_by: None,
            })
            .await
            .unwrap();
        id
    }

    fn entry(number: &str, ids: &[&str]) -> serde_json::Value {
        let messages: Vec<_> = ids
            .iter()
            .map(|id| {
                json!({"from": "16505551234", "id": id, "timestamp": "1767261600",
                             "type": "text", "text": {"body": "hello"}})
            })
            .collect();
        json!({"id": "102290129340398", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": number},
            "contacts": [{"profile": {"name": "S"}, "wa_id": "16505551234"}],
            "messages": messages}}]})
    }

    #[tokio::test]
    async fn a_suspended_tenants_events_are_held_with_one_status_read_per_tenant() {
        let dir = tempfile::tempdir().unwrap();
        let inner = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
        let store = Arc::new(HookedStore::new(inner, ProfileReads::default()));
        let vault = Arc::new(LocalVault::open_or_create(dir.path()).unwrap());
        let p = Platform::new(store.clone(), vault);
        let queue = EmbeddedQueue::open(dir.path(), platform::specs()).unwrap();
        let suspended = tenant_with_number(&p, "106540352242922").await;
        let active = tenant_with_number(&p, "106540352242999").await;
        p.tenants
            .suspend(&suspended, "unpaid", "platform_admin")
            .await
            .unwrap();
        let secret = AppSecret::new("6f1c0e5ad2b94c7e8a3b1d0f9e2c4a7b").unwrap();
        let intake = WebhookIntake::new(
            vec![secret.clone()],
            VerifyToken::new("verify").unwrap(),
            p.tenants.clone(),
            Arc::new(queue.clone()),
            platform::name(platform::INBOUND),
        );
        let body = serde_json::to_vec(&json!({"object": "whatsapp_business_account", "entry": [
            entry("106540352242922", &["wamid.A1", "wamid.A2"]),
            entry("106540352242999", &["wamid.B1"]),
            entry("106540352242922", &["wamid.A3"]),
        ]}))
        .unwrap();
        store.hook().0.store(0, Ordering::Relaxed);
        let report = intake
            .accept(Some(&secret.sign(&body)), &body)
            .await
            .unwrap();
        assert_eq!((report.held, report.enqueued), (3, 1));
        assert_eq!(store.hook().0.load(Ordering::Relaxed), 2, "one per tenant");
        assert_eq!(
            queue
                .depth(&platform::name(platform::INBOUND))
                .await
                .unwrap(),
            1
        );
        let held = crate::hold::HeldEvents::of(&p.tenants);
        let (events, _) = held.list(&suspended, None, 10).await.unwrap();
        let mut jobs = Vec::new();
        for e in &events {
            jobs.push(
                InboundJob::open(
                    p.tenants.envelope(),
                    &platform::name(platform::INBOUND),
                    &e.message.body,
                )
                .await
                .unwrap(),
            );
        }
        let ids: Vec<&str> = jobs
            .iter()
            .map(|j| j.event.provider_event_id.as_str())
            .collect();
        assert_eq!(ids.len(), 3);
        assert!(ids[0].contains("A1") && ids[1].contains("A2") && ids[2].contains("A3"));
        assert!(jobs.iter().all(|j| j.tenant_id == suspended));
        assert_eq!(held.count(&active).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn an_event_too_large_for_the_queue_is_relayed_as_unsupported_with_its_neighbours() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
        let vault = Arc::new(LocalVault::open_or_create(dir.path()).unwrap());
        let p = Platform::new(store, vault);
        let queue = EmbeddedQueue::open(dir.path(), platform::specs()).unwrap();
        let tenant = tenant_with_number(&p, "106540352242922").await;
        let secret = AppSecret::new("6f1c0e5ad2b94c7e8a3b1d0f9e2c4a7b").unwrap();
        let inbound = platform::name(platform::INBOUND);
        let intake = WebhookIntake::new(
            vec![secret.clone()],
            VerifyToken::new("verify").unwrap(),
            p.tenants.clone(),
            Arc::new(queue.clone()),
            inbound.clone(),
        );
        let mut body = entry("106540352242922", &["wamid.A", "wamid.BIG", "wamid.C"]);
        let huge = "x".repeat(crate::queue::MAX_BODY_BYTES + 1);
        body["changes"][0]["value"]["messages"][1]["text"]["body"] = json!(huge);
        let body =
            serde_json::to_vec(&json!({"object": "whatsapp_business_account", "entry": [body]}))
                .unwrap();
        let report = intake
            .accept(Some(&secret.sign(&body)), &body)
            .await
            .unwrap();
        assert_eq!(report.enqueued, 3);
        let received = queue
            .receive(&inbound, 10, std::time::Duration::from_secs(30))
            .await
            .unwrap();
        let mut contents = Vec::new();
        for m in &received {
            let job = InboundJob::open(p.tenants.envelope(), &inbound, &m.body)
                .await
                .unwrap();
            assert_eq!(job.tenant_id, tenant);
            match job.event.kind {
                EventKind::CustomerMessage {
                    content, customer, ..
                } => {
                    assert_eq!(customer.id.as_str(), "16505551234");
                    contents.push((job.event.provider_event_id, content.text_for_crm()));
                }
                other => panic!("{other:?}"),
            }
        }
        contents.sort();
        assert_eq!(
            contents,
            [
                ("wa:msg:wamid.A".to_string(), "hello".to_string()),
                ("wa:msg:wamid.BIG".into(), "[unsupported: too_large]".into()),
                ("wa:msg:wamid.C".into(), "hello".into()),
            ]
        );
    }
}
