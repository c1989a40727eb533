//! Erasure: jobs on the `erasure` queue, one kind each, every one idempotent and resumable.
//!
//! - `contact` (this module): a tenant's customer asks to be forgotten. Requested through the
//!   admin API with the channel, the business account and the customer's id on that channel;
//!   the worker finds every conversation of that customer on that account (by derived id, and
//!   by comparing the decrypted customer details of the tenant's conversations, so a request
//!   by phone number also finds a conversation keyed by a business-scoped user id), and
//!   deletes its messages, the provider-id index items, the conversation, its list entry and
//!   the idempotency records that can be derived from it. Records that cannot be derived
//!   (reaction and CRM-sync records) hold no content and expire within 8 days.
//! - `meta_user`: Meta's Data Deletion Callback (see `meta_deletion`).
//! - tenant accounts ([`tenant`]): after a cancellable grace period, by a scheduled sweep.
//!
//! A request is recorded first (state `pending`), the job is queued, and the worker marks it
//! `completed` with its date; the customer's id is kept only encrypted and is removed from the
//! request when it completes. Every step deletes by key, so a crash part-way is finished by the
//! queue's redelivery. One lease after completion the job comes back for a second pass over
//! the same conversations ([`sweep`], decision 0137).

mod conversation;
mod mail;
mod sweep;
pub mod tenant;

pub(crate) use conversation::erase_conversation;

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::audit::{AuditAction, AuditLog};
use crate::clock::{now_secs, Clock, SystemClock};
use crate::conversation::erased::{cut_of, ErasedSubjects};
use crate::conversation::{identities, ConversationId, Conversations};
use crate::crypto::{CryptoError, Envelope, FieldRef};
use crate::hold::HeldEvents;
use crate::ids::TenantId;
use crate::inbound::InboundJob;
use crate::meta::{AccountRef, CustomerId};
use crate::queue::{platform, OutgoingMessage, Queue, QueueName};
use crate::store::{Condition, Item, Key, Query, StoreError, Table, TableStore, Update};

/// One erasure job (the `erasure` queue's message body), by kind.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ErasureJob {
    Contact {
        tenant_id: TenantId,
        request_id: String,
    },
    MetaUser {
        request_id: String,
    },
}

impl ErasureJob {
    pub fn to_message(&self) -> OutgoingMessage {
        OutgoingMessage::new(serde_json::to_string(self).expect("erasure jobs serialise"))
    }

    /// Parses a queue body; None when it is not an erasure job.
    pub fn from_body(body: &str) -> Option<Self> {
        serde_json::from_str(body).ok()
    }

    /// The erasure request the job runs.
    pub fn request_id(&self) -> &str {
        match self {
            ErasureJob::Contact { request_id, .. } | ErasureJob::MetaUser { request_id } => {
                request_id
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ErasureError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error(transparent)]
    Conversation(#[from] crate::conversation::ConversationError),
    #[error("queue unavailable: {0}")]
    Queue(String),
    #[error("no such erasure request")]
    NotFound,
    #[error("stored request is unreadable: {0}")]
    Corrupt(String),
}

/// A contact erasure request as the tenant's admins see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ContactErasureStatus {
    pub request_id: String,
    pub state: String,
    pub requested_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<i64>,
    /// Conversations erased (known once completed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conversations_erased: Option<i64>,
    /// When the second pass erased the conversations again (decision 0137), Unix seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub second_pass_at: Option<i64>,
}

/// What the request stores about the customer, encrypted.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Subject {
    account: AccountRef,
    customer: CustomerId,
}

/// Contact erasure: requests and the work.
#[derive(Clone)]
pub struct ContactErasure {
    exports: Option<crate::export::Exports>,
    mailer: Option<Arc<dyn crate::accounts::Mailer>>,
    store: Arc<dyn TableStore>,
    envelope: Arc<Envelope>,
    queue: Arc<dyn Queue>,
    erasure: QueueName,
    audit: AuditLog,
    clock: Arc<dyn Clock>,
    /// How long after completion the second pass runs (decision 0137).
    sweep_after: Duration,
}

/// The sub-partition of a tenant's contact erasure requests.
pub const REQUESTS_SUFFIX: &str = "ERASURE";
/// A contact erasure request's attributes: who asked (`user:<id>`, `platform_admin`, ...),
/// and when the completion email went.
const REQUESTED_BY_ATTR: &str = "requested_by";

/// The request's cursor (decision 0057): the conversations found (ids, comma-separated),
/// those marked, when they were marked, how many are erased, and the cut once sealed.
const CURSOR_TARGETS: &str = "cursor_targets";
const CURSOR_MARKED: &str = "cursor_marked";
const CURSOR_MARKED_AT_MS: &str = "cursor_marked_at_ms";
const CURSOR_DONE: &str = "cursor_done";
const THROUGH_MS: &str = "through_ms";

/// The conversations to erase, the conversations marked, and when they were marked.
type Found = (Vec<ConversationId>, Vec<ConversationId>, i64);

/// How far a request's work got.
struct Cursor {
    found: Option<Found>,
    done: usize,
    through_ms: Option<i64>,
}

impl Cursor {
    /// The conversation ids saved under `attr`.
    fn ids(item: &Item, attr: &str) -> Result<Vec<ConversationId>, ErasureError> {
        item.get_s(attr)
            .unwrap_or_default()
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|s| {
                ConversationId::parse(s)
                    .map_err(|_| ErasureError::Corrupt("a cursor's conversation id".into()))
            })
            .collect()
    }

    fn read(item: &Item) -> Result<Cursor, ErasureError> {
        let ids = |attr: &str| Cursor::ids(item, attr);
        let found = match item.get_n(CURSOR_MARKED_AT_MS) {
            Some(at) => Some((ids(CURSOR_TARGETS)?, ids(CURSOR_MARKED)?, at)),
            None => None,
        };
        Ok(Cursor {
            found,
            done: item.get_n(CURSOR_DONE).unwrap_or(0).max(0) as usize,
            through_ms: item.get_n(THROUGH_MS),
        })
    }

    /// What to save once the conversations are found and marked. The ids are keyed hashes
    /// (decision 0033): they name no one.
    fn found_update((targets, marked, at): &Found) -> Update {
        let join = |ids: &[ConversationId]| {
            ids.iter()
                .map(ConversationId::as_str)
                .collect::<Vec<_>>()
                .join(",")
        };
        Update::new()
            .set("state", "in_progress")
            .set(CURSOR_TARGETS, format!(",{}", join(targets)))
            .set(CURSOR_MARKED, format!(",{}", join(marked)))
            .set(CURSOR_MARKED_AT_MS, *at)
            .set(CURSOR_DONE, 0i64)
    }
}

fn request_key(tenant: &TenantId, request_id: &str) -> Key {
    Key::new(tenant.sub_partition(REQUESTS_SUFFIX), request_id)
}

impl ContactErasure {
    pub fn new(store: Arc<dyn TableStore>, envelope: Arc<Envelope>, queue: Arc<dyn Queue>) -> Self {
        ContactErasure {
            exports: None,
            mailer: None,
            audit: AuditLog::new(store.clone()),
            store,
            envelope,
            queue,
            erasure: platform::name(platform::ERASURE),
            clock: Arc::new(SystemClock),
            sweep_after: platform::VISIBILITY,
        }
    }

    /// How long after completion the erased conversations are erased again (decision
    /// 0137): at least the longest a relay job can hold its work (the queues' visibility
    /// timeout, or the local server's lease).
    pub fn with_sweep_after(mut self, after: Duration) -> Self {
        self.sweep_after = after;
        self
    }

    /// The clock the erasure's cut and completion are read from (tests control the
    /// boundary with it).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Exports of the tenant are withdrawn when one of its customers is erased (a tenant
    /// export holds every customer).
    pub fn with_exports(mut self, exports: crate::export::Exports) -> Self {
        self.exports = Some(exports);
        self
    }

    /// The user who asked for an erasure is emailed when it completes.
    pub fn with_mailer(mut self, mailer: Arc<dyn crate::accounts::Mailer>) -> Self {
        self.mailer = Some(mailer);
        self
    }

    /// Records the request and queues the work; returns the request id. `actor` (as
    /// `Principal::actor` names it) is kept: a user is emailed when the request completes.
    pub async fn request(
        &self,
        tenant: &TenantId,
        account: AccountRef,
        customer: CustomerId,
        actor: &str,
    ) -> Result<String, ErasureError> {
        let mut id = [0u8; 12];
        crate::crypto::random_bytes(&mut id)?;
        let request_id = format!("er_{}", hex::encode(id));
        let key = request_key(tenant, &request_id);
        let subject = serde_json::to_vec(&Subject { account, customer })
            .map_err(|e| ErasureError::Corrupt(e.to_string()))?;
        let blob = self
            .envelope
            .encrypt(
                FieldRef::new(tenant, Table::Data, &key, "subject"),
                &subject,
            )
            .await?;
        let item = Item::new(&key)
            .with("kind", "contact")
            .with("state", "pending")
            .with("requested_at", now_secs())
            .with(REQUESTED_BY_ATTR, actor)
            .with("subject", blob);
        self.store
            .put(Table::Data, item, Some(Condition::NotExists))
            .await?;
        self.audit
            .record(
                tenant,
                AuditAction::ErasureRequested,
                actor,
                &[("kind", "contact"), ("request_id", &request_id)],
            )
            .await?;
        let job = ErasureJob::Contact {
            tenant_id: tenant.clone(),
            request_id: request_id.clone(),
        };
        self.queue
            .send_batch(&self.erasure, vec![job.to_message()])
            .await
            .map_err(|e| ErasureError::Queue(e.to_string()))?;
        Ok(request_id)
    }

    pub async fn status(
        &self,
        tenant: &TenantId,
        request_id: &str,
    ) -> Result<ContactErasureStatus, ErasureError> {
        let item = self
            .store
            .get(Table::Data, &request_key(tenant, request_id))
            .await?
            .ok_or(ErasureError::NotFound)?;
        Ok(ContactErasureStatus {
            request_id: request_id.to_owned(),
            state: item.get_s("state").unwrap_or_default().to_owned(),
            requested_at: item.get_n("requested_at").unwrap_or(0),
            completed_at: item.get_n("completed_at"),
            conversations_erased: item.get_n("conversations_erased"),
            second_pass_at: item.get_n(sweep::SWEPT_AT),
        })
    }

    /// Does the work of a request; safe to run again after a crash or on a redelivery, which
    /// goes on from the request's cursor (decision 0057): what was found and marked, how many
    /// conversations are erased, the cut once every one is. `Some(wait)`: completed, and its
    /// second pass (decision 0137) is due after `wait`; run it again then.
    pub async fn process(
        &self,
        tenant: &TenantId,
        request_id: &str,
    ) -> Result<Option<Duration>, ErasureError> {
        let key = request_key(tenant, request_id);
        let Some(item) = self.store.get(Table::Data, &key).await? else {
            tracing::info!("erasure request gone; job dropped");
            return Ok(None);
        };
        if item.get_s("state") == Some("completed") {
            return self.sweep(tenant, request_id).await;
        }
        let blob = item
            .get_b("subject")
            .ok_or_else(|| ErasureError::Corrupt("request without subject".into()))?;
        let subject: Subject = serde_json::from_slice(&zeroize::Zeroizing::new(
            self.envelope
                .decrypt(FieldRef::new(tenant, Table::Data, &key, "subject"), blob)
                .await?,
        ))
        .map_err(|e| ErasureError::Corrupt(e.to_string()))?;
        let conversations =
            Conversations::new(tenant.clone(), self.store.clone(), self.envelope.clone());
        let erased = ErasedSubjects::new(self.store.clone());
        let mut cursor = Cursor::read(&item)?;
        let account = serde_json::to_string(&subject.account)
            .map_err(|e| ErasureError::Corrupt(e.to_string()))?;
        let (targets, marked, marked_at_ms) = match cursor.found.take() {
            Some(found) => found,
            None => {
                let found = self.find_and_mark(tenant, &subject, &conversations).await?;
                self.save(&key, Cursor::found_update(&found)).await?;
                found
            }
        };
        let through_ms = match cursor.through_ms {
            Some(through) => through,
            None => {
                let cut = cut_of(marked_at_ms);
                let account = Some(&subject.account);
                for (i, id) in targets.iter().enumerate().skip(cursor.done) {
                    // A conversation begun after the cut under the same id is kept (another
                    // run of this request may have completed it meanwhile).
                    erase_conversation(&self.store, &conversations, account, id, Some(cut)).await?;
                    self.save(&key, Update::new().set(CURSOR_DONE, (i + 1) as i64))
                        .await?;
                }
                // The seal comes after the cut, so a conversation the person begins after
                // the seal is after the cut too (at most a second's wait).
                loop {
                    let now = self.clock.now_millis();
                    if now > cut {
                        break;
                    }
                    self.clock
                        .sleep(Duration::from_millis((cut - now + 1) as u64))
                        .await;
                }
                self.save(&key, Update::new().set(THROUGH_MS, cut)).await?;
                cut
            }
        };
        for id in &marked {
            conversation::retrying(|| async { Ok(erased.seal(tenant, id, through_ms).await?) })
                .await
                .map_err(|e| {
                    ErasureError::Corrupt(format!("sealing an erased-subject marker: {e}"))
                })?;
        }
        if let Some(exports) = &self.exports {
            exports
                .delete_all(tenant)
                .await
                .map_err(|e| ErasureError::Corrupt(format!("withdrawing exports: {e}")))?;
        }
        // After the cut's second: a message stamped after completion is always new.
        let completed_at = self.clock.now_millis().div_euclid(1000);
        // Before the request is marked completed, so a redelivery of a job that stopped in
        // between still sends it; the claim in `notify` keeps it to one email.
        self.notify(tenant, &key, &item, completed_at, targets.len() as i64)
            .await?;
        self.store
            .update(
                Table::Data,
                &key,
                Update::new()
                    .set("state", "completed")
                    .set("completed_at", completed_at)
                    .set("conversations_erased", targets.len() as i64)
                    // The second pass erases the conversations again (decision 0137).
                    .set(
                        sweep::SWEEP_DUE_MS,
                        self.clock.now_millis() + self.sweep_after.as_millis() as i64,
                    )
                    .set(sweep::SWEEP_ACCOUNT, account)
                    .remove("subject")
                    .remove(CURSOR_MARKED),
                Some(Condition::Exists),
            )
            .await?;
        self.audit
            .record(
                tenant,
                AuditAction::ErasureCompleted,
                "system",
                &[
                    ("kind", "contact"),
                    ("request_id", request_id),
                    ("conversations", &targets.len().to_string()),
                ],
            )
            .await?;
        self.sweep(tenant, request_id).await
    }

    /// Writes to the request, which must still exist.
    async fn save(&self, key: &Key, update: Update) -> Result<(), ErasureError> {
        conversation::retrying(|| async {
            self.store
                .update(Table::Data, key, update.clone(), Some(Condition::Exists))
                .await?;
            Ok(())
        })
        .await
    }

    /// Finds the subject's conversations and marks them erased, in progress: before
    /// anything is deleted, so work in flight for this person stops or waits from now on
    /// (also the conversation the subject's id derives to, which may not be stored yet, and
    /// what every identity of the found customers derives to, decision 0049). Purges the
    /// tenant's held events about them. Returns the conversations to erase, those marked,
    /// and when they were marked.
    async fn find_and_mark(
        &self,
        tenant: &TenantId,
        subject: &Subject,
        conversations: &Conversations,
    ) -> Result<Found, ErasureError> {
        let derived =
            ConversationId::derive(&self.envelope, tenant, &subject.account, &subject.customer)
                .await?;
        let targets = self.find(conversations, tenant, subject, &derived).await?;
        let mut marked: Vec<ConversationId> = targets.clone();
        marked.push(derived.clone());
        for id in &targets {
            if let Some(meta) = conversations.meta(id).await? {
                for identity in identities(&meta.customer)
                    .into_iter()
                    .chain(meta.former_ids.iter().cloned())
                {
                    let d =
                        ConversationId::derive(&self.envelope, tenant, &meta.account, &identity)
                            .await?;
                    if !marked.contains(&d) {
                        marked.push(d);
                    }
                }
            }
        }
        let erased = ErasedSubjects::new(self.store.clone());
        let marked_at_ms = self.clock.now_millis();
        for id in &marked {
            conversation::retrying(|| async { Ok(erased.mark(tenant, id, marked_at_ms).await?) })
                .await
                .map_err(|e| ErasureError::Corrupt(format!("erased-subject marker: {e}")))?;
        }
        self.purge_held(tenant, &marked).await?;
        Ok((targets, marked, marked_at_ms))
    }

    /// Emails the requesting user (if a user made the request and still exists) that the
    /// request is complete, at most once: the request is marked before sending, and unmarked
    /// if the send fails so the redelivery retries.
    async fn notify(
        &self,
        tenant: &TenantId,
        key: &Key,
        request: &Item,
        completed_at: i64,
        conversations: i64,
    ) -> Result<(), ErasureError> {
        let Some(mailer) = &self.mailer else {
            return Ok(());
        };
        let Some(user) = request
            .get_s(REQUESTED_BY_ATTR)
            .and_then(|a| a.strip_prefix("user:"))
        else {
            return Ok(());
        };
        let users = crate::accounts::users::list_users(self.store.as_ref(), tenant)
            .await
            .map_err(|e| ErasureError::Corrupt(format!("reading the requester: {e}")))?;
        let Some(to) = users.into_iter().find(|u| u.id.as_str() == user) else {
            return Ok(());
        };
        let mail = mail::contact_erased(tenant, key.sk.as_str(), completed_at, conversations);
        mail::send_once(
            self.store.as_ref(),
            Table::Data,
            key,
            mailer.as_ref(),
            &[mail.to(to.email)],
        )
        .await?;
        Ok(())
    }

    /// Deletes the tenant's held events (a suspended tenant's webhooks) about the erased
    /// conversations, so resuming the tenant releases nothing of the person.
    async fn purge_held(
        &self,
        tenant: &TenantId,
        conversations: &[ConversationId],
    ) -> Result<(), ErasureError> {
        let held = HeldEvents::new(self.store.clone(), self.envelope.clone());
        let inbound = platform::name(platform::INBOUND);
        let mut after = None;
        loop {
            let (events, next) = held
                .list(tenant, after, 100)
                .await
                .map_err(|e| ErasureError::Corrupt(format!("held events: {e}")))?;
            for event in &events {
                if event.queue != inbound {
                    continue;
                }
                let Ok(job) = InboundJob::open(&self.envelope, &inbound, &event.message.body).await
                else {
                    continue;
                };
                let Some(customer) = job.event.customer() else {
                    continue;
                };
                let about = ConversationId::derive(
                    &self.envelope,
                    tenant,
                    &job.event.account,
                    &customer.id,
                )
                .await?;
                if conversations.contains(&about) {
                    self.store.delete(Table::Data, &event.key, None).await?;
                }
            }
            match next {
                Some(k) => after = Some(k),
                None => return Ok(()),
            }
        }
    }

    /// The customer's conversations on the account: `derived` (the one the subject's id
    /// derives to) when stored, and any whose stored customer has that id or phone.
    async fn find(
        &self,
        conversations: &Conversations,
        tenant: &TenantId,
        subject: &Subject,
        derived: &ConversationId,
    ) -> Result<Vec<ConversationId>, ErasureError> {
        let mut found = Vec::new();
        if conversations.meta(derived).await?.is_some() {
            found.push(derived.clone());
        }
        // The conversation the id leads to now (an alias after a change of identity).
        if let Some(id) = conversations
            .conversation_of(&subject.account, &subject.customer)
            .await?
        {
            if !found.contains(&id) {
                found.push(id);
            }
        }
        let wanted = subject.customer.as_str().trim_start_matches('+').to_owned();
        let list_pk = tenant.sub_partition("CONVS");
        let mut query = Query::partition(list_pk).limit(100);
        loop {
            let page = self.store.query(Table::Data, &query).await?;
            for item in &page.items {
                let Some(id) = item.get_s("sk").and_then(|s| ConversationId::parse(s).ok()) else {
                    continue;
                };
                if found.contains(&id) {
                    continue;
                }
                let Some(meta) = conversations.meta(&id).await? else {
                    continue;
                };
                let phone = meta
                    .customer
                    .phone
                    .as_ref()
                    .map(|p| p.as_str().trim_start_matches('+').to_owned());
                // Identities the customer had before a change of number or BSUID count too
                // (decision 0049).
                let former = meta
                    .former_ids
                    .iter()
                    .any(|f| f.as_str().trim_start_matches('+') == wanted);
                let same = meta.account == subject.account
                    && (meta.customer.id.as_str().trim_start_matches('+') == wanted
                        || phone.as_deref() == Some(wanted.as_str())
                        || former);
                if same {
                    found.push(id);
                }
            }
            match page.next {
                Some(next) => query = query.start_after(Some(next)),
                None => break,
            }
        }
        Ok(found)
    }
}

/// Runs Meta users' data deletion requests (the `meta_deletion` module); a trait so the
/// erasure worker dispatches to it without knowing how it works.
#[async_trait::async_trait]
pub trait MetaUserErasures: Send + Sync {
    async fn process(&self, request_id: &str) -> Result<(), String>;
}

/// The erasure-worker handler: every kind of erasure job, each retried by the queue on
/// failure (and dead-lettered after the queue's receive limit).
#[derive(Clone)]
pub struct ErasureWorker {
    contacts: ContactErasure,
    meta_users: Option<Arc<dyn MetaUserErasures>>,
}

impl ErasureWorker {
    pub fn new(contacts: ContactErasure) -> Self {
        ErasureWorker {
            contacts,
            meta_users: None,
        }
    }

    pub fn with_meta_users(mut self, meta_users: Arc<dyn MetaUserErasures>) -> Self {
        self.meta_users = Some(meta_users);
        self
    }
}

#[async_trait::async_trait]
impl crate::consumer::RecordHandler for ErasureWorker {
    async fn handle(&self, record: &crate::consumer::QueueRecord) -> crate::consumer::Outcome {
        use crate::consumer::Outcome;
        let job: ErasureJob = match serde_json::from_str(&record.body) {
            Ok(job) => job,
            Err(_) => {
                tracing::error!(message_id = %record.message_id, "unreadable erasure job");
                return Outcome::Failed;
            }
        };
        let result = match &job {
            ErasureJob::Contact {
                tenant_id,
                request_id,
            } => {
                // One tenant's contact: its scoped credentials (decision 0037).
                let process = self.contacts.process(tenant_id, request_id);
                crate::acting::acting_for(tenant_id, process)
                    .await
                    .map_err(|e| e.to_string())
            }
            // A Meta user's channels may belong to several tenants: the function's role.
            ErasureJob::MetaUser { request_id } => match &self.meta_users {
                Some(m) => m.process(request_id).await.map(|()| None),
                None => Err("Meta data deletion is not configured".into()),
            },
        };
        match result {
            Ok(None) => Outcome::Done,
            // Completed; its second pass comes back then (decision 0137).
            Ok(Some(wait)) => Outcome::RetryAfter(wait),
            Err(e) => {
                tracing::warn!(message_id = %record.message_id, error = %e, "erasure job failed; will be retried");
                Outcome::Failed
            }
        }
    }
}
