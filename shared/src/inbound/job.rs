//! The inbound queue's message: one Meta webhook event, routed to its tenant by the intake,
//! sealed with the tenant's envelope (docs/decisions/0026-sealed-inbound-jobs.md).
//!
//! The event holds personal data: the customer's phone number or Instagram id, name and
//! username, the message content (texts, captions, media links) and provider message ids
//! (a wamid is base64 of the sender's number and more). None of it is in the queue body in
//! clear: the body is
//!
//! ```text
//! {"v":2,"tenant_id":"tn_…","job_id":"<64 hex>","sealed":"<base64 of the envelope blob>"}
//! ```
//!
//! - `sealed` is the event's JSON, AES-256-GCM under the tenant's data key, its AAD binding
//!   the tenant, the queue the job is meant for and the job id ([`JobRef`]): a sealed part
//!   copied into another job or onto another queue does not open;
//! - `job_id` is also the FIFO deduplication id, and the group id is another keyed id (per
//!   tenant, account and customer): both are HMACs under the tenant's key
//!   ([`Envelope::keyed_id`]), so neither can be reversed to a phone number by hashing every
//!   number;
//! - `tenant_id` stays in clear: the worker needs it to pick the key, and it names our
//!   customer (the business), not theirs.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::conversation::IdentityChange;
use crate::crypto::{CryptoError, Envelope, JobRef};
use crate::ids::{TenantId, Text};
use crate::meta::{Content, CustomerId, EventKind, InboundEvent};
use crate::queue::{OutgoingMessage, QueueName};

/// Version of the sealed job body.
pub const INBOUND_JOB_VERSION: u32 = 2;
/// The plaintext body written before jobs were sealed; still read, so jobs queued (or
/// dead-lettered) before the upgrade are not lost, never written by the intake.
pub const LEGACY_PLAIN_JOB_VERSION: u32 = 1;
/// Keyed-id label of the FIFO group (tenant, account, customer).
const GROUP_LABEL: &str = "inbound-group";
/// Keyed-id label of the job id (the event's idempotency key).
const JOB_ID_LABEL: &str = "inbound-job";
/// Hex characters of the group id kept (SQS allows 128).
const GROUP_ID_LEN: usize = 40;

/// One event for the inbound worker, routed to its tenant (in memory only; on the queue it
/// is sealed, see [`InboundJob::seal`]).
///
/// The intake seals events borrowed from the webhook body (`InboundJob<Cow<str>>`, decision
/// 0103); the worker opens owned ones. Both serialise to the same bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct InboundJob<S: Text = String> {
    pub tenant_id: TenantId,
    pub event: InboundEvent<S>,
}

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Sealing or opening failed: `Undecryptable` for a tampered or moved job, `KeyGone`
    /// once the tenant's keys are shredded, a vault or store error when they are unavailable.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// Not a body this build reads. Only the kind of problem, never the body's content.
    #[error("unreadable inbound job: {0}")]
    Unreadable(&'static str),
}

/// The sealed body on the queue.
#[derive(Serialize, Deserialize)]
struct SealedBody {
    v: u32,
    tenant_id: TenantId,
    job_id: String,
    sealed: String,
    /// When the intake sealed it (Unix ms): the start of the webhook-to-Bitrix24 latency
    /// (decision 0038). A time, nothing about the event; absent from older bodies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    received_ms: Option<i64>,
}

/// The v1 body: the event in clear.
#[derive(Serialize, Deserialize)]
struct PlainBody {
    v: u32,
    tenant_id: TenantId,
    event: InboundEvent,
}

#[derive(Deserialize)]
struct VersionOnly {
    v: u32,
}

#[derive(Deserialize)]
struct TenantOnly {
    tenant_id: TenantId,
}

/// The tenant a queued job names in clear (both versions), before it is opened: its work,
/// opening included, runs with that tenant's scoped credentials (decision 0037). A job
/// whose clear tenant was changed cannot be opened: the seal binds the tenant.
pub fn tenant_of(body: &str) -> Option<TenantId> {
    serde_json::from_str::<TenantOnly>(body)
        .ok()
        .map(|t| t.tenant_id)
}

fn json_kind(e: &serde_json::Error) -> &'static str {
    // The category only: serde's message may quote the body.
    match e.classify() {
        serde_json::error::Category::Io => "io",
        serde_json::error::Category::Syntax => "syntax",
        serde_json::error::Category::Data => "data",
        serde_json::error::Category::Eof => "eof",
    }
}

fn digest(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for part in parts {
        h.update((part.len() as u32).to_be_bytes());
        h.update(part.as_bytes());
    }
    hex::encode(h.finalize())
}

impl<S: Text> InboundJob<S> {
    pub fn new(tenant_id: TenantId, event: InboundEvent<S>) -> Self {
        InboundJob { tenant_id, event }
    }

    /// The event's idempotency key: account plus the provider's event id (unique per effect
    /// and stable across Meta's redeliveries).
    pub fn idempotency_key(&self) -> String {
        format!(
            "{}:{}:{}",
            self.event.account.channel().code(),
            self.event.account.id(),
            self.event.provider_event_id.as_ref()
        )
    }

    fn group_parts(&self) -> [String; 3] {
        let customer = group_key(&self.event);
        [
            self.event.account.channel().code().to_owned(),
            self.event.account.id().to_owned(),
            customer,
        ]
    }

    /// The queue message for `queue`, sealed with the tenant's envelope. Grouped per tenant +
    /// account + customer (one conversation's events are processed in order) and deduplicated
    /// by a keyed id of the idempotency key (a webhook redelivered within the queue's 5-minute
    /// window is not even enqueued twice): both ids are stable across redeliveries because
    /// they are HMACs, not random.
    pub async fn seal(
        &self,
        envelope: &Envelope,
        queue: &QueueName,
    ) -> Result<OutgoingMessage, JobError> {
        let tenant = &self.tenant_id;
        let [channel, account, customer] = self.group_parts();
        let group = envelope
            .keyed_id(tenant, GROUP_LABEL, &[&channel, &account, &customer])
            .await?;
        let job_id = envelope
            .keyed_id(tenant, JOB_ID_LABEL, &[&self.idempotency_key()])
            .await?;
        let plain = Zeroizing::new(
            serde_json::to_vec(&self.event).map_err(|e| JobError::Unreadable(json_kind(&e)))?,
        );
        let blob = envelope
            .encrypt_job(JobRef::new(tenant, queue.as_str(), &job_id), &plain)
            .await?;
        let body = serde_json::to_string(&SealedBody {
            v: INBOUND_JOB_VERSION,
            tenant_id: tenant.clone(),
            job_id: job_id.clone(),
            sealed: B64.encode(blob),
            received_ms: Some(crate::clock::now_millis()),
        })
        .map_err(|e| JobError::Unreadable(json_kind(&e)))?;
        Ok(OutgoingMessage::new(body).grouped(&group[..GROUP_ID_LEN], job_id))
    }
}

impl InboundJob {
    /// When the intake sealed the job `body` (Unix ms), if the body says: read from its clear
    /// part, without opening it.
    pub fn received_ms(body: &str) -> Option<i64> {
        serde_json::from_str::<SealedBody>(body).ok()?.received_ms
    }

    /// Reads a job body received from `queue`: a sealed job is opened (it must have been
    /// sealed for this queue and this job id), a v1 plaintext job is read as it is.
    pub async fn open(
        envelope: &Envelope,
        queue: &QueueName,
        body: &str,
    ) -> Result<InboundJob, JobError> {
        let version: VersionOnly =
            serde_json::from_str(body).map_err(|e| JobError::Unreadable(json_kind(&e)))?;
        match version.v {
            INBOUND_JOB_VERSION => {
                let sealed: SealedBody =
                    serde_json::from_str(body).map_err(|e| JobError::Unreadable(json_kind(&e)))?;
                let blob = B64
                    .decode(sealed.sealed.as_bytes())
                    .map_err(|_| JobError::Unreadable("sealed part is not base64"))?;
                let plain = Zeroizing::new(
                    envelope
                        .decrypt_job(
                            JobRef::new(&sealed.tenant_id, queue.as_str(), &sealed.job_id),
                            &blob,
                        )
                        .await?,
                );
                let event: InboundEvent = serde_json::from_slice(&plain)
                    .map_err(|e| JobError::Unreadable(json_kind(&e)))?;
                Ok(InboundJob::new(sealed.tenant_id, event))
            }
            LEGACY_PLAIN_JOB_VERSION => {
                let plain: PlainBody =
                    serde_json::from_str(body).map_err(|e| JobError::Unreadable(json_kind(&e)))?;
                Ok(InboundJob::new(plain.tenant_id, plain.event))
            }
            _ => Err(JobError::Unreadable("unknown job version")),
        }
    }

    /// The v1 body, the event in clear, with its unkeyed group and deduplication ids: what
    /// the intake wrote before jobs were sealed. Never enqueued by this build; tests and the
    /// inbound benchmark use it to check that old jobs are still read and to compare sizes
    /// and costs.
    pub fn to_legacy_plain_message(&self) -> Result<OutgoingMessage, serde_json::Error> {
        let body = serde_json::to_string(&PlainBody {
            v: LEGACY_PLAIN_JOB_VERSION,
            tenant_id: self.tenant_id.clone(),
            event: self.event.clone(),
        })?;
        let [channel, account, customer] = self.group_parts();
        let group = digest(&[self.tenant_id.as_str(), &channel, &account, &customer]);
        let dedup = digest(&[self.tenant_id.as_str(), &self.idempotency_key()]);
        Ok(OutgoingMessage::new(body).grouped(&group[..GROUP_ID_LEN], dedup))
    }
}

/// The customer identity an event's FIFO group is keyed on, so that one customer's events
/// run in one group whichever identities each delivery names them by (decisions 0063, 0097).
///
/// - **The phone when the event names one**, else the id (a BSUID, an Instagram id). Meta
///   names a WhatsApp customer by BSUID and phone in their messages and statuses, but by phone
///   alone in `messaging_handovers` and in the `system` notices of a change of number or BSUID.
///   Keyed on the BSUID, a handover ran in a group of its own beside the customer's messages
///   and could overtake them, so who held the chat followed arrival order, not Meta's.
/// - **A change of number or BSUID is keyed on the identity the customer changes *from***: the
///   old phone when the notice tells it (`from`, unless `from` already names the new number),
///   else the previous BSUID. The notice then waits behind every earlier event of the
///   customer, so it always finds the conversation they opened (decision 0063). A change of
///   BSUID keeps the phone, so it stays in the customer's one group.
///
/// The key of that identity ([`CustomerId::key`]), empty for an event about no customer.
fn group_key<S: Text>(event: &InboundEvent<S>) -> String {
    let Some(customer) = event.customer() else {
        return String::new();
    };
    if let EventKind::CustomerMessage {
        content: Content::System { .. },
        ..
    } = &event.kind
    {
        // A notice (rare) of a change of number or BSUID, read as the worker reads it.
        if let Some(old) = event.to_owned_event().ok().as_ref().and_then(changed_from) {
            return old.key();
        }
    }
    match &customer.phone {
        Some(phone) => CustomerId::WhatsAppPhone(phone.clone()).key(),
        None => customer.id.key(),
    }
}

/// The identity a notice of a change of number or BSUID changes from.
fn changed_from(event: &InboundEvent) -> Option<CustomerId> {
    let (EventKind::CustomerMessage { content, .. }, Some(customer)) =
        (&event.kind, event.customer())
    else {
        return None;
    };
    let change = IdentityChange::from_notice(customer, content)?;
    let phone = change
        .old
        .iter()
        .find(|id| matches!(id, CustomerId::WhatsAppPhone(_)));
    phone.or(change.old.first()).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::Platform;
    use crate::meta::split_webhook;
    use crate::queue::platform;
    use crate::tenant::{RetentionDays, TenantName};

    /// A customer text whose wamid carries the sender's number (as Meta's do).
    const DELIVERY: &str = r#"{"object":"whatsapp_business_account","entry":[{"id":"102290129340398",
        "changes":[{"field":"messages","value":{"messaging_product":"whatsapp",
        "metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"},
        "contacts":[{"profile":{"name":"Sheena Nelson"},"wa_id":"16505551234"}],
        "messages":[{"from":"16505551234",
        "id":"wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQ1NzgyQjE4Njg3RTZDRjhBNDgyRgA=",
        "timestamp":"1767261600","type":"text","text":{"body":"Is the blue sofa still available?"}}]}}]}]}"#;
    const PERSONAL: [&str; 5] = [
        "16505551234",
        "Sheena Nelson",
        "blue sofa",
        "wamid.HBgL",
        // The number as it sits, base64-encoded, inside the wamid.
        "MTY1MDU1NTEyMzQ",
    ];

    async fn setup() -> (tempfile::TempDir, Platform, InboundJob) {
        let dir = tempfile::tempdir().unwrap();
        let p = Platform::embedded(dir.path()).unwrap();
        let tenant = p
            .tenants
            .create(TenantName::parse("Acme").unwrap(), RetentionDays::default())
            .await
            .unwrap()
            .id;
        let event = split_webhook(DELIVERY.as_bytes()).unwrap().events.remove(0);
        (dir, p, InboundJob::new(tenant, event))
    }

    fn inbound() -> QueueName {
        platform::name(platform::INBOUND)
    }

    /// The body with its `job_id` replaced.
    fn with_job_id(body: &str, job_id: &str) -> String {
        let mut v: serde_json::Value = serde_json::from_str(body).unwrap();
        v["job_id"] = job_id.into();
        v.to_string()
    }

    #[tokio::test]
    async fn a_sealed_job_holds_no_personal_data_and_opens_to_the_same_job() {
        let (_dir, p, job) = setup().await;
        let legacy = job.to_legacy_plain_message().unwrap();
        let sealed = job.seal(&p.envelope, &inbound()).await.unwrap();
        for plain in PERSONAL {
            // The unsealed job carried each of them: the check below can fail.
            assert!(legacy.body.contains(plain), "{plain} not in the v1 body");
            for part in [
                &sealed.body,
                sealed.group_id.as_ref().unwrap(),
                sealed.dedup_id.as_ref().unwrap(),
            ] {
                assert!(!part.contains(plain), "{plain} in the sealed message");
            }
        }
        let opened = InboundJob::open(&p.envelope, &inbound(), &sealed.body)
            .await
            .unwrap();
        assert_eq!(opened, job);
        // Stable across Meta's redeliveries: same group, same deduplication id.
        let again = job.seal(&p.envelope, &inbound()).await.unwrap();
        assert_eq!(
            (again.group_id, again.dedup_id),
            (sealed.group_id.clone(), sealed.dedup_id.clone())
        );
        assert_ne!(again.body, sealed.body, "fresh nonce per seal");
        // The job id in the body is the deduplication id.
        let v: serde_json::Value = serde_json::from_str(&sealed.body).unwrap();
        assert_eq!(v["job_id"].as_str(), sealed.dedup_id.as_deref());
        assert_eq!(v["v"], INBOUND_JOB_VERSION);
    }

    #[tokio::test]
    async fn a_sealed_job_moved_to_another_queue_job_or_tenant_does_not_open() {
        let (_dir, p, job) = setup().await;
        let sealed = job.seal(&p.envelope, &inbound()).await.unwrap();
        let undecryptable = |r: Result<InboundJob, JobError>| {
            matches!(r, Err(JobError::Crypto(CryptoError::Undecryptable)))
        };
        // Read from another queue (the outbound queue, say).
        let other_queue = platform::name(platform::OUTBOUND);
        assert!(undecryptable(
            InboundJob::open(&p.envelope, &other_queue, &sealed.body).await
        ));
        // Put under another job's id (another event's sealed part replayed).
        let other_id = "0".repeat(64);
        assert!(undecryptable(
            InboundJob::open(
                &p.envelope,
                &inbound(),
                &with_job_id(&sealed.body, &other_id)
            )
            .await
        ));
        // Claimed for another tenant: that tenant's key does not open it.
        let stranger = p
            .tenants
            .create(
                TenantName::parse("Other").unwrap(),
                RetentionDays::default(),
            )
            .await
            .unwrap()
            .id;
        // (It has keys of its own: its first job created them.)
        InboundJob::new(stranger.clone(), job.event.clone())
            .seal(&p.envelope, &inbound())
            .await
            .unwrap();
        let mut v: serde_json::Value = serde_json::from_str(&sealed.body).unwrap();
        v["tenant_id"] = stranger.as_str().into();
        assert!(undecryptable(
            InboundJob::open(&p.envelope, &inbound(), &v.to_string()).await
        ));
        // A flipped byte of the sealed part.
        let mut v: serde_json::Value = serde_json::from_str(&sealed.body).unwrap();
        let mut blob = B64.decode(v["sealed"].as_str().unwrap()).unwrap();
        let last = blob.len() - 1;
        blob[last] ^= 1;
        v["sealed"] = B64.encode(blob).into();
        assert!(undecryptable(
            InboundJob::open(&p.envelope, &inbound(), &v.to_string()).await
        ));
        // Unchanged, it still opens (the failures above are the binding, not the setup).
        assert!(InboundJob::open(&p.envelope, &inbound(), &sealed.body)
            .await
            .is_ok());
    }

    #[tokio::test]
    async fn group_and_job_ids_are_keyed_per_tenant_and_die_with_its_keys() {
        let (_dir, p, job) = setup().await;
        let sealed = job.seal(&p.envelope, &inbound()).await.unwrap();
        let legacy = job.to_legacy_plain_message().unwrap();
        // Not the unkeyed hashes anyone could recompute from a guessed number.
        assert_ne!(sealed.group_id, legacy.group_id);
        assert_ne!(sealed.dedup_id, legacy.dedup_id);
        let other = p
            .tenants
            .create(
                TenantName::parse("Other").unwrap(),
                RetentionDays::default(),
            )
            .await
            .unwrap()
            .id;
        let theirs = InboundJob::new(other, job.event.clone())
            .seal(&p.envelope, &inbound())
            .await
            .unwrap();
        assert_ne!(theirs.group_id, sealed.group_id);
        assert_ne!(theirs.dedup_id, sealed.dedup_id);
        // A rotation keeps the ids (one conversation keeps its FIFO group).
        p.envelope.rotate(&job.tenant_id).await.unwrap();
        let rotated = job.seal(&p.envelope, &inbound()).await.unwrap();
        assert_eq!(rotated.group_id, sealed.group_id);
        assert_eq!(rotated.dedup_id, sealed.dedup_id);
        // Shredded keys: the job can never be opened again.
        p.envelope.shred(&job.tenant_id).await.unwrap();
        assert!(matches!(
            InboundJob::open(&p.envelope, &inbound(), &sealed.body).await,
            Err(JobError::Crypto(CryptoError::KeyGone(_)))
        ));
    }

    #[tokio::test]
    async fn v1_plaintext_jobs_queued_before_sealing_are_still_read() {
        let (_dir, p, job) = setup().await;
        let legacy = job.to_legacy_plain_message().unwrap();
        let opened = InboundJob::open(&p.envelope, &inbound(), &legacy.body)
            .await
            .unwrap();
        assert_eq!(opened, job);
        for junk in ["{}", "not json", r#"{"v":3,"tenant_id":"x"}"#] {
            assert!(matches!(
                InboundJob::open(&p.envelope, &inbound(), junk).await,
                Err(JobError::Unreadable(_))
            ));
        }
    }
}
