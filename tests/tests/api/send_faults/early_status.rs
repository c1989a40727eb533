//! Meta's status of an operator reply that comes before the send worker recorded the reply's
//! wamid (decision 0074): after a crash between Meta's answer and our write, or while that
//! write is retried. The inbound worker cannot find the message then; it keeps the status
//! on the send's progress with the attempt it confirms, and the send worker applies it once
//! it records the send. Each test runs the CRM sync worker against the Bitrix24 fake and
//! counts what the operator's portal received: the status once, and nothing more when Meta
//! repeats its webhook.

use e2e_tests::embedded_tenant::{only_inbound_job, portal_connection};
use e2e_tests::fake_bitrix::{
    FakeBitrix, FAKE_CLIENT_ID, FAKE_CLIENT_SECRET, FAKE_DOMAIN, FAKE_MEMBER_ID,
};
use e2e_tests::fake_graph::SentMessage;
use e2e_tests::harness::sample;
use serde_json::Value;
use tokio::sync::{oneshot, Notify};
use wappline::bitrix::{BitrixClient, BitrixConfig};
use wappline::consumer::process_batch;
use wappline::crm_sync::{SyncWorker, WaitConfig};
use wappline::faults::hooked::SharedHook;
use wappline::ids::TenantId;
use wappline::inbound::worker::InboundWorker;
use wappline::inbound::InboundJob;
use wappline::queue::{platform, Queue};
use wappline::tenant::Secret;

use super::*;

pub(super) const DELIVERY: &str = "imconnector.send.status.delivery";
pub(super) const READING: &str = "imconnector.send.status.reading";
/// The Bitrix24 message the operator's reply is (`Rig::reply`).
const IM_MESSAGE: u64 = 77;
/// The reason in the failed status sample.
pub(super) const FAILED_REASON: &str =
    "131049: This message was not delivered to maintain healthy ecosystem engagement.";

/// The send-fault rig with the tenant's Bitrix24 portal on the fake, and the sync worker
/// that posts to it.
pub(super) struct Portal {
    fake: FakeBitrix,
    worker: SyncWorker,
}

pub(super) async fn portal(r: &Rig) -> Portal {
    let fake = FakeBitrix::start().await;
    r.scope
        .connect(portal_connection(&fake, FAKE_DOMAIN, FAKE_MEMBER_ID, 7))
        .await
        .unwrap();
    let config = BitrixConfig::new(
        FAKE_CLIENT_ID,
        Secret::from_decrypted(FAKE_CLIENT_SECRET.into()),
    )
    .unwrap()
    .with_oauth_url(&fake.oauth_url())
    .unwrap()
    .with_portal_base_url(&fake.base_url())
    .unwrap();
    let worker = SyncWorker::new(
        r.platform.store.clone(),
        r.platform.envelope.clone(),
        r.platform.tenants.clone(),
        BitrixClient::new(config).unwrap(),
    )
    .with_wait(WaitConfig {
        poll: Duration::from_millis(5),
        max_wait: Duration::from_secs(5),
    });
    Portal { fake, worker }
}

impl Portal {
    /// Runs the sync queue until it is empty, as its consumer would.
    pub(super) async fn sync(&self, r: &Rig) {
        let name = platform::name(platform::SYNC);
        for _ in 0..20 {
            let got = r
                .queue
                .receive(&name, 10, Duration::from_secs(60))
                .await
                .unwrap();
            if got.is_empty() {
                return;
            }
            let records: Vec<QueueRecord> = got.iter().map(QueueRecord::from).collect();
            for (m, outcome) in got.iter().zip(process_batch(&self.worker, &records).await) {
                if outcome.is_done() {
                    r.queue.ack(&name, &m.receipt).await.unwrap();
                } else {
                    r.queue
                        .change_visibility(&name, &m.receipt, Duration::ZERO)
                        .await
                        .unwrap();
                }
            }
        }
        panic!("the sync queue never emptied");
    }

    /// The status posts (`method`) the portal received for the operator's reply.
    pub(super) fn status_posts(&self, method: &str) -> usize {
        self.status_posts_of(method, IM_MESSAGE)
    }

    /// Posts of `method` for the operator's Bitrix24 message `im`.
    pub(super) fn status_posts_of(&self, method: &str, im: u64) -> usize {
        self.fake
            .batch_commands()
            .into_iter()
            .chain(self.fake.calls())
            .filter(|c| c.method == method)
            .flat_map(|c| c.params["MESSAGES"].as_array().cloned().unwrap_or_default())
            // A batch command's parameters arrive form-encoded: numbers as strings.
            .filter(|m| {
                let id = &m["im"]["message_id"];
                *id == json!(im) || *id == json!(im.to_string())
            })
            .count()
    }

    /// The notes (system messages for the operator) the portal received that say `text`.
    pub(super) fn notes_saying(&self, text: &str) -> usize {
        self.fake
            .messages_received()
            .iter()
            .filter(|m| m.external_message_id.starts_with("note."))
            .filter(|m| m.text.as_deref().is_some_and(|t| t.contains(text)))
            .count()
    }
}

/// Meta's webhook of `status` (the sample of that status) for the send `sent`, carrying its
/// `biz_opaque_callback_data` as every status of a send does, as the job the webhook queues.
pub(super) fn status_job(tenant: &TenantId, sent: &SentMessage, status: &str) -> InboundJob {
    let mut v: Value =
        serde_json::from_slice(&sample(&format!("whatsapp-status-{status}.json"))).unwrap();
    // The sample's first status (the read sample has a `played` of another message too).
    let statuses = &mut v["entry"][0]["changes"][0]["value"]["statuses"];
    *statuses = json!([statuses[0].take()]);
    let s = &mut statuses[0];
    s["id"] = json!(sent.id);
    s["recipient_id"] = json!(PHONE);
    s["timestamp"] = json!(wappline::clock::now_secs().to_string());
    s["biz_opaque_callback_data"] = sent.body["biz_opaque_callback_data"].clone();
    only_inbound_job(tenant, v.to_string().as_bytes())
}

impl Rig {
    pub(super) fn inbound(&self) -> InboundWorker {
        InboundWorker::new(
            self.platform.store.clone(),
            self.platform.envelope.clone(),
            self.platform.tenants.clone(),
            self.queue.clone(),
        )
    }

    /// Meta's `status` of the one send made, through the inbound worker.
    pub(super) async fn meta_reports(&self, status: &str) {
        let sent = self.graph.sent().remove(0);
        let job = status_job(&self.tenant, &sent, status);
        assert_eq!(self.inbound().process(&job).await.unwrap(), Outcome::Done);
    }

    /// Meta's `status` of the one send made, handled whole by the inbound worker just before
    /// the send worker's next write of the wamid runs (or fails): Meta's status overtaking
    /// that write.
    pub(super) fn meta_reports_before_the_wamid_write(&self, status: &'static str) {
        let (graph, tenant, inbound) = (self.graph.clone(), self.tenant.clone(), self.inbound());
        *self.store.hook().meanwhile.lock().unwrap() = Some(Box::pin(async move {
            let sent = graph.sent().remove(0);
            let job = status_job(&tenant, &sent, status);
            assert_eq!(inbound.process(&job).await.unwrap(), Outcome::Done);
        }));
    }

    /// The reply sent once to Meta, whose process then crashed before writing anything (every
    /// write after the call fails): its wamid is not recorded.
    pub(super) async fn crash_after_the_send(&self) {
        self.store.hook().fail_records.store(1000, Ordering::SeqCst);
        assert!(matches!(self.deliver().await, Outcome::RetryAfter(_)));
        self.store.hook().fail_records.store(0, Ordering::SeqCst);
        assert_eq!(self.sends_to_customer(), 1);
    }
}

/// A crash between Meta's answer and our write, and Meta's `delivered` before the
/// redelivery: the redelivery records the send from the status's tag, and the operator sees
/// the reply delivered. Bitrix24 shows both "accepted by Meta" (our `sent`) and `delivered`
/// with `imconnector.send.status.delivery`: two posts, and no third for Meta's repeats.
#[tokio::test]
async fn a_delivered_status_before_the_wamid_was_recorded_reaches_the_portal_once() {
    let r = rig(Duration::from_secs(600)).await;
    let p = portal(&r).await;
    let at = r.reply("delivered before recorded").await;
    r.crash_after_the_send().await;
    r.meta_reports("delivered").await;
    p.sync(&r).await;
    assert_eq!(
        p.status_posts(DELIVERY),
        0,
        "nothing known of the reply yet"
    );

    assert_eq!(r.deliver().await, Outcome::Done);
    p.sync(&r).await;
    assert_eq!(r.sends_to_customer(), 1, "{:?}", r.sends_per_tag());
    assert_eq!(r.status(&at).await, Some(MessageStatus::Delivered));
    assert_eq!(p.status_posts(DELIVERY), 2, "sent, then delivered");

    // Meta repeats its webhook; then the redelivered send job runs once more.
    r.meta_reports("delivered").await;
    p.sync(&r).await;
    assert_eq!(p.status_posts(DELIVERY), 2);
    assert_eq!(p.status_posts(READING), 0);
}

/// The same with Meta's `failed`: the operator gets the note with Meta's reason, once.
#[tokio::test]
async fn a_failed_status_before_the_wamid_was_recorded_tells_the_operator_once() {
    let r = rig(Duration::from_secs(600)).await;
    let p = portal(&r).await;
    let at = r.reply("failed before recorded").await;
    r.crash_after_the_send().await;
    r.meta_reports("failed").await;
    assert_eq!(r.deliver().await, Outcome::Done);
    p.sync(&r).await;
    assert_eq!(r.sends_to_customer(), 1, "{:?}", r.sends_per_tag());
    assert_eq!(r.status(&at).await, Some(MessageStatus::Failed));
    assert_eq!(p.notes_saying(FAILED_REASON), 1);

    r.meta_reports("failed").await;
    p.sync(&r).await;
    assert_eq!(p.notes_saying(FAILED_REASON), 1);
}

/// Meta's `read` and then a late `delivered` (webhooks come in no set order) both come
/// before the redelivery: the highest is kept and applied.
#[tokio::test]
async fn the_highest_of_the_early_statuses_reaches_the_portal() {
    let r = rig(Duration::from_secs(600)).await;
    let p = portal(&r).await;
    let at = r.reply("read before recorded").await;
    r.crash_after_the_send().await;
    r.meta_reports("read").await;
    r.meta_reports("delivered").await;
    assert_eq!(r.deliver().await, Outcome::Done);
    p.sync(&r).await;
    assert_eq!(r.status(&at).await, Some(MessageStatus::Read));
    assert_eq!(p.status_posts(READING), 1);
    assert_eq!(p.status_posts(DELIVERY), 1, "our own sent");

    // The same redelivery again (the queue's at-least-once), and Meta's repeats.
    assert_eq!(r.redeliver(&at).await, Outcome::Done);
    r.meta_reports("read").await;
    r.meta_reports("delivered").await;
    p.sync(&r).await;
    assert_eq!(p.status_posts(READING), 1);
    assert_eq!(p.status_posts(DELIVERY), 1);
}

/// Meta's `read` overtakes the write of the wamid while that write is retried in place (its
/// first try failed): the send worker reads the progress once more after its write and
/// applies the status.
#[tokio::test]
async fn a_status_that_overtakes_a_retried_wamid_write_reaches_the_portal_once() {
    let r = rig(Duration::from_secs(600)).await;
    let p = portal(&r).await;
    let at = r.reply("overtaken while retried").await;
    r.meta_reports_before_the_wamid_write("read");
    r.store.hook().fail_records.store(1, Ordering::SeqCst);
    assert_eq!(r.deliver().await, Outcome::Done);
    assert!(
        r.store.hook().meanwhile.lock().unwrap().is_none(),
        "the status came between the tries"
    );
    p.sync(&r).await;
    assert_eq!(r.sends_to_customer(), 1, "{:?}", r.sends_per_tag());
    assert_eq!(r.status(&at).await, Some(MessageStatus::Read));
    assert_eq!(p.status_posts(READING), 1);

    r.meta_reports("read").await;
    p.sync(&r).await;
    assert_eq!(p.status_posts(READING), 1);
}

/// With Meta's `delivered` handled just before the wamid's write, the send job delivered
/// once: the reply sent once and `delivered`, and two delivery posts at the portal (our own
/// `sent`, then Meta's `delivered`).
async fn delivered_overtaken(r: &Rig, p: &Portal, at: &MessageRef) {
    r.meta_reports_before_the_wamid_write("delivered");
    assert_eq!(r.deliver().await, Outcome::Done);
    assert!(
        r.store.hook().meanwhile.lock().unwrap().is_none(),
        "the status came before the wamid's write"
    );
    p.sync(r).await;
    assert_eq!(r.sends_to_customer(), 1, "{:?}", r.sends_per_tag());
    assert_eq!(r.status(at).await, Some(MessageStatus::Delivered));
    assert_eq!(p.status_posts(DELIVERY), 2, "sent, then delivered");
}

/// Meta's `delivered` overtakes the first try of the wamid's write, and that try succeeds:
/// the status came while the send worker waited for the Graph API's answer or wrote it (the
/// fault soak on a starved machine, decision 0110: four replies of 773 ended `sent`). The
/// inbound worker kept it on the progress, not finding the message; the send worker reads
/// the progress once more after its write and applies it.
#[tokio::test]
async fn a_status_that_overtakes_a_first_try_wamid_write_reaches_the_portal_once() {
    let r = rig(Duration::from_secs(600)).await;
    let p = portal(&r).await;
    let at = r.reply("overtaken at the first try").await;
    delivered_overtaken(&r, &p, &at).await;

    r.meta_reports("delivered").await;
    p.sync(&r).await;
    assert_eq!(p.status_posts(DELIVERY), 2);
}

/// The soak's order (issue 17): the process crashed after Meta took the reply; Meta's `sent`
/// confirms the attempt; the redelivery reads the progress (the attempt confirmed, nothing
/// held yet) and settles the part from the confirmation. While it goes on towards its write
/// of the wamid, Meta's `delivered` is handled whole: kept on the progress, and the message
/// looked up once more, not found yet. The redelivery's write then succeeds at its first
/// try. It reads the progress once more after writing the part (as after every part,
/// decision 0110), and applies the `delivered`.
#[tokio::test]
async fn a_status_kept_while_a_reconciled_send_is_recorded_reaches_the_portal_once() {
    let r = rig(Duration::from_secs(600)).await;
    let p = portal(&r).await;
    let at = r.reply("kept while reconciled").await;
    r.crash_after_the_send().await;
    r.meta_reports("sent").await;
    delivered_overtaken(&r, &p, &at).await;

    // Meta repeats its webhooks, and the send job is delivered once more.
    r.meta_reports("sent").await;
    r.meta_reports("delivered").await;
    assert_eq!(r.redeliver(&at).await, Outcome::Done);
    p.sync(&r).await;
    assert_eq!(p.status_posts(DELIVERY), 2);
    assert_eq!(r.status(&at).await, Some(MessageStatus::Delivered));
}

/// Holds the inbound worker right before it keeps a status on a send's progress, until the
/// test lets it go on.
#[derive(Default)]
struct HoldGate {
    reached: Notify,
    release: Notify,
}

#[async_trait]
impl StoreHook for HoldGate {
    async fn before(&self, call: &StoreCall<'_>) -> Verdict {
        if let StoreCall::Update {
            table: Table::Dedupe,
            update,
            ..
        } = call
        {
            if update.set.iter().any(|(k, _)| k == "early_st") {
                self.reached.notify_one();
                self.release.notified().await;
            }
        }
        Verdict::Run
    }
}

/// The send worker writes the wamid (at its first try, so it reads nothing more) after the
/// inbound worker looked for the message and before it kept Meta's `delivered` on the
/// progress: the inbound worker looks again, finds the message and moves the status on
/// itself. The send job was done before; nothing would apply the kept status.
#[tokio::test]
async fn a_status_kept_just_after_a_first_try_write_is_moved_on_by_the_inbound_worker() {
    let r = rig(Duration::from_secs(600)).await;
    let p = portal(&r).await;
    let at = r.reply("recorded meanwhile").await;
    let gate = Arc::new(HoldGate::default());
    let inbound = InboundWorker::new(
        Arc::new(HookedStore::new(
            r.platform.store.clone(),
            SharedHook(gate.clone()),
        )),
        r.platform.envelope.clone(),
        r.platform.tenants.clone(),
        r.queue.clone(),
    );
    let (graph, tenant, held) = (r.graph.clone(), r.tenant.clone(), gate.clone());
    let (started, status_handled) = oneshot::channel();
    // Meta's status comes right after its answer: the inbound worker handles it up to its
    // hold while the send worker is about to write the wamid.
    *r.store.hook().meanwhile.lock().unwrap() = Some(Box::pin(async move {
        let sent = graph.sent().remove(0);
        let job = status_job(&tenant, &sent, "delivered");
        let handling = tokio::spawn(async move { inbound.process(&job).await.unwrap() });
        held.reached.notified().await;
        started.send(handling).unwrap();
    }));
    assert_eq!(r.deliver().await, Outcome::Done);
    gate.release.notify_one();
    let handling = status_handled.await.unwrap();
    assert_eq!(handling.await.unwrap(), Outcome::Done);
    p.sync(&r).await;
    assert_eq!(r.sends_to_customer(), 1, "{:?}", r.sends_per_tag());
    assert_eq!(r.status(&at).await, Some(MessageStatus::Delivered));
    assert_eq!(p.status_posts(DELIVERY), 2, "sent, then delivered");
}
