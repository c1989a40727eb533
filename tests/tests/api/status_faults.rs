//! A delivery status Meta reported reaches the sync queue (and so the operator's Bitrix24
//! chat) even when the inbound worker's first try stops between moving the message's status
//! and queueing the sync job (issue 17: the fault soak lost one now and then). The inbound
//! worker runs over an embedded store and queue wrapped so that a test fails exactly one
//! call: the status write (it took effect, its answer was lost: a DynamoDB timeout, or a
//! process that died right after it), or the sync queue's send of the status job.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use e2e_tests::embedded_tenant::{
    inbound_until_done, only_inbound_job, queued_sync_actions, EmbeddedTenant,
};
use e2e_tests::harness::WA_NUMBER;
use e2e_tests::whatsapp_events;
use serde_json::json;
use wappline::app::Platform;
use wappline::bitrix::ImRef;
use wappline::conversation::{Conversations, MessageRef, MessageStatus};
use wappline::crm_sync::SyncAction;
use wappline::faults::hooked::{HookedStore, StoreCall, StoreHook, Verdict};
use wappline::ids::{PhoneNumberId, TenantId};
use wappline::inbound::worker::InboundWorker;
use wappline::inbound::InboundJob;
use wappline::meta::{AccountRef, CustomerId, CustomerRef, WhatsAppPhone};
use wappline::outbound::{OperatorMessage, OutboundIntake};
use wappline::queue::embedded::EmbeddedQueue;
use wappline::queue::{
    platform, OutgoingMessage, Queue, QueueDepth, QueueError, QueueName, ReceivedMessage,
};
use wappline::store::StoreError;

const PHONE: &str = "16505551234";
const WAMID: &str = "wamid.HBgLMTY1MDU1NTEyMzQVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA";

/// Takes one from `n` if any is left: this call is one that fails.
fn take(n: &AtomicUsize) -> bool {
    n.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| v.checked_sub(1))
        .is_ok()
}

/// Loses the answer of the next n status writes (they take effect): a hook of the store.
struct StatusWriteLost {
    lose: AtomicUsize,
}

#[async_trait]
impl StoreHook for StatusWriteLost {
    async fn before(&self, call: &StoreCall<'_>) -> Verdict {
        match call {
            StoreCall::Update { update, .. }
                if update.set.iter().any(|(k, _)| k == "status_rank") && take(&self.lose) =>
            {
                Verdict::RunThenFail(StoreError::Unavailable("injected: answer lost".into()))
            }
            _ => Verdict::Run,
        }
    }
}

/// The queue, refusing the next n sends to the sync queue (nothing is queued).
struct SyncSendRefused {
    inner: Arc<EmbeddedQueue>,
    refuse: AtomicUsize,
}

#[async_trait]
impl Queue for SyncSendRefused {
    async fn send_batch(
        &self,
        queue: &QueueName,
        messages: Vec<OutgoingMessage>,
    ) -> Result<(), QueueError> {
        if *queue == platform::name(platform::SYNC) && take(&self.refuse) {
            return Err(QueueError::Unavailable("injected: internal error".into()));
        }
        self.inner.send_batch(queue, messages).await
    }
    async fn receive(
        &self,
        queue: &QueueName,
        max: usize,
        visibility: Duration,
    ) -> Result<Vec<ReceivedMessage>, QueueError> {
        self.inner.receive(queue, max, visibility).await
    }
    async fn ack(&self, queue: &QueueName, receipt: &str) -> Result<(), QueueError> {
        self.inner.ack(queue, receipt).await
    }
    async fn change_visibility(
        &self,
        queue: &QueueName,
        receipt: &str,
        visibility: Duration,
    ) -> Result<(), QueueError> {
        self.inner
            .change_visibility(queue, receipt, visibility)
            .await
    }
    async fn approximate_depth(&self, queue: &QueueName) -> Result<QueueDepth, QueueError> {
        self.inner.approximate_depth(queue).await
    }
}

struct Rig {
    platform: Platform,
    queue: Arc<EmbeddedQueue>,
    store: Arc<HookedStore<StatusWriteLost>>,
    sync_queue: Arc<SyncSendRefused>,
    tenant: TenantId,
    /// The operator's reply Meta reports on, sent as `WAMID`.
    reply: MessageRef,
    _dir: tempfile::TempDir,
}

fn wa() -> AccountRef {
    AccountRef::WhatsApp(PhoneNumberId::parse(WA_NUMBER).unwrap())
}

/// A tenant whose operator answered a customer, the answer sent to Meta as `WAMID` and
/// recorded so (what the send worker does with the Cloud API's answer).
async fn rig() -> Rig {
    let EmbeddedTenant {
        platform,
        queue,
        tenant,
        dir,
        ..
    } = EmbeddedTenant::start([]).await;
    let conversations = Conversations::new(
        tenant.clone(),
        platform.store.clone(),
        platform.envelope.clone(),
    );
    let mut customer = CustomerRef::new(CustomerId::WhatsAppPhone(
        WhatsAppPhone::parse(PHONE).unwrap(),
    ));
    customer.phone = Some(WhatsAppPhone::parse(PHONE).unwrap());
    let conversation = conversations
        .record_customer(&wa(), &customer, Some(wappline::clock::now_secs() - 60), 90)
        .await
        .unwrap();
    let intake = OutboundIntake::new(
        platform.store.clone(),
        platform.envelope.clone(),
        queue.clone(),
    );
    let reply = intake
        .accept_operator_message(
            &tenant,
            &conversation,
            OperatorMessage {
                im: ImRef {
                    chat_id: 4242,
                    message_id: 77,
                },
                text: Some("Your order ships today".to_owned()),
                files: Vec::new(),
                at: wappline::clock::now_secs(),
            },
            90,
        )
        .await
        .unwrap()
        .message;
    conversations
        .record_provider_id(&wa(), &reply, WAMID, 90)
        .await
        .unwrap();
    let store = Arc::new(HookedStore::new(
        platform.store.clone(),
        StatusWriteLost {
            lose: AtomicUsize::new(0),
        },
    ));
    let sync_queue = Arc::new(SyncSendRefused {
        inner: queue.clone(),
        refuse: AtomicUsize::new(0),
    });
    Rig {
        platform,
        queue,
        store,
        sync_queue,
        tenant,
        reply,
        _dir: dir,
    }
}

impl Rig {
    /// Meta's webhook of `status` for the reply (status messages webhook reference:
    /// https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/messages/status/
    /// sent, delivered, read, failed, and `played` for a voice message), as the job the
    /// webhook queues.
    fn status_job(&self, status: &str) -> InboundJob {
        let body = whatsapp_events::delivery(json!({
            "statuses": [{"id": WAMID, "status": status,
                "timestamp": wappline::clock::now_secs().to_string(),
                "recipient_id": PHONE}]
        }));
        only_inbound_job(&self.tenant, &body)
    }

    /// The inbound worker over the failing store and queue.
    fn worker(&self) -> InboundWorker {
        InboundWorker::new(
            self.store.clone(),
            self.platform.envelope.clone(),
            self.platform.tenants.clone(),
            self.sync_queue.clone(),
        )
    }

    /// The statuses of the reply in the sync queue, as its jobs carry them.
    async fn queued_statuses(&self) -> Vec<MessageStatus> {
        queued_sync_actions(self.queue.as_ref())
            .await
            .into_iter()
            .filter_map(|action| match action {
                SyncAction::Status {
                    message_sk, status, ..
                } if message_sk == self.reply.sk => Some(status),
                _ => None,
            })
            .collect()
    }

    async fn stored_status(&self) -> Option<MessageStatus> {
        Conversations::new(
            self.tenant.clone(),
            self.platform.store.clone(),
            self.platform.envelope.clone(),
        )
        .message(&self.reply)
        .await
        .unwrap()
        .unwrap()
        .status
    }
}

/// The status write took effect but its answer was lost: the retry finds the status already
/// there, and must queue the sync job all the same.
#[tokio::test]
async fn a_status_whose_write_answer_was_lost_still_reaches_the_sync_queue() {
    let rig = rig().await;
    rig.store.hook().lose.store(1, Ordering::SeqCst);
    let tries = inbound_until_done(&rig.worker(), &rig.status_job("read")).await;
    assert_eq!(tries, 2, "the first try failed on the lost answer");
    assert_eq!(rig.stored_status().await, Some(MessageStatus::Read));
    assert_eq!(rig.queued_statuses().await, vec![MessageStatus::Read]);
}

/// The sync queue refused the status job after the status was written: the retry queues it.
#[tokio::test]
async fn a_status_job_the_sync_queue_refused_is_queued_by_the_retry() {
    let rig = rig().await;
    rig.sync_queue.refuse.store(1, Ordering::SeqCst);
    let tries = inbound_until_done(&rig.worker(), &rig.status_job("delivered")).await;
    assert_eq!(tries, 2, "the first try failed on the refused send");
    assert_eq!(rig.queued_statuses().await, vec![MessageStatus::Delivered]);
}

/// What the retry may queue again is only its own job: a later status of another event that
/// finds the message already there or beyond queues nothing (no extra call to Bitrix24).
#[tokio::test]
async fn a_status_already_there_from_another_event_queues_nothing() {
    let rig = rig().await;
    let worker = rig.worker();
    inbound_until_done(&worker, &rig.status_job("read")).await;
    // Meta's "played" is a read (a voice message heard); "delivered" comes late.
    inbound_until_done(&worker, &rig.status_job("played")).await;
    inbound_until_done(&worker, &rig.status_job("delivered")).await;
    assert_eq!(rig.queued_statuses().await, vec![MessageStatus::Read]);
}
