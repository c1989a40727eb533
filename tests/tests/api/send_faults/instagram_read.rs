//! An Instagram read that comes before the send worker recorded the reply's `mid` (decision
//! 0114). Instagram's Send API takes no tag of ours, so the read cannot wait on the send's
//! progress as a WhatsApp status does (decision 0074): the inbound worker keeps it beside the
//! send's index, the send worker looks for it once it records the `mid`. Each test runs the
//! CRM sync worker against the Bitrix24 fake and counts the portal's reading posts.

use e2e_tests::embedded_tenant::only_inbound_job;
use e2e_tests::harness::sample;
use serde_json::Value;
use tokio::sync::{oneshot, Notify};
use wappline::faults::hooked::HookedStore;
use wappline::inbound::worker::InboundWorker;
use wappline::inbound::InboundJob;
use wappline::meta::InstagramUserId;

use super::early_status::{portal, READING};
use super::*;
use crate::outbound_worker::ig;

/// The customer's Instagram-scoped id (the sample `instagram-read.json`'s sender).
const IGSID: &str = "1254459154682919";

/// Instagram's read receipt of the send `mid` (the sample `instagram-read.json`, its `read`
/// naming the message), as the webhook would have queued it.
fn read_job(tenant: &wappline::ids::TenantId, mid: &str) -> InboundJob {
    read_job_at(tenant, json!({ "mid": mid }), wappline::clock::now_secs())
}

/// The same with `read` as given (a `mid`, or a Messenger-style `watermark`), read at
/// `at` (Unix seconds).
pub(super) fn read_job_at(tenant: &wappline::ids::TenantId, read: Value, at: i64) -> InboundJob {
    let mut v: Value = serde_json::from_slice(&sample("instagram-read.json")).unwrap();
    let item = &mut v["entry"][0]["messaging"][0];
    item["read"] = read;
    item["timestamp"] = json!(at * 1000);
    only_inbound_job(tenant, v.to_string().as_bytes())
}

impl Rig {
    /// An operator's reply to a customer who wrote on Instagram a minute ago.
    async fn instagram_reply(&self, text: &str) -> MessageRef {
        self.instagram_reply_at(text, 77, wappline::clock::now_secs())
            .await
    }

    /// The operator's reply `im` (its Bitrix24 message id), written at `at` (Unix seconds).
    pub(super) async fn instagram_reply_at(&self, text: &str, im: u64, at: i64) -> MessageRef {
        let customer = CustomerRef::new(CustomerId::Instagram(
            InstagramUserId::parse(IGSID).unwrap(),
        ));
        let conversation = self.world.customer(&ig(), customer, 60).await;
        let mut message = operator(text, Vec::new(), im);
        message.at = at;
        self.world.reply(&conversation, message).await
    }

    /// Instagram's read of the one send made, handled by the inbound worker while the send
    /// worker writes that send's `mid` (before the write runs): the message cannot be found.
    fn instagram_reads_before_the_mid_write(&self) {
        let (graph, tenant, inbound) = (self.graph.clone(), self.tenant.clone(), self.inbound());
        *self.store.hook().meanwhile.lock().unwrap() = Some(Box::pin(async move {
            let sent = graph.sent().remove(0);
            let job = read_job(&tenant, &sent.id);
            assert_eq!(inbound.process(&job).await.unwrap(), Outcome::Done);
        }));
    }
}

/// The read comes while the send worker records the `mid`: the inbound worker finds no
/// message and keeps the read; the send worker, having recorded the `mid`, finds it and marks
/// the reply read. The operator sees it read once; Instagram repeating its webhook and the
/// send job delivered again post nothing more.
#[tokio::test]
async fn an_instagram_read_before_its_send_is_recorded_reaches_the_portal_once() {
    let r = rig(Duration::from_secs(600)).await;
    let p = portal(&r).await;
    let at = r.instagram_reply("read before recorded").await;
    r.instagram_reads_before_the_mid_write();
    assert_eq!(r.deliver().await, Outcome::Done);
    assert!(
        r.store.hook().meanwhile.lock().unwrap().is_none(),
        "the read came before the mid was written"
    );
    assert_eq!(r.graph.sent().len(), 1, "one send");
    p.sync(&r).await;
    assert_eq!(r.status(&at).await, Some(MessageStatus::Read));
    assert_eq!(p.status_posts(READING), 1);

    let mid = r.graph.sent().remove(0).id;
    let again = read_job(&r.tenant, &mid);
    assert_eq!(r.inbound().process(&again).await.unwrap(), Outcome::Done);
    assert_eq!(r.redeliver(&at).await, Outcome::Done);
    p.sync(&r).await;
    assert_eq!(p.status_posts(READING), 1);
    assert_eq!(r.graph.sent().len(), 1, "never sent again");
}

/// A read of a `mid` no send of ours ever got (another app's message on the account, or an
/// earlier copy of a reply sent again after a crash, decision 0111) is kept, and reads the
/// thread up to its time (decision 0116): our reply before it is read, once; a reply written
/// after it is not.
#[tokio::test]
async fn an_instagram_read_of_a_message_we_never_sent_reads_the_thread_up_to_its_time() {
    let r = rig(Duration::from_secs(600)).await;
    let p = portal(&r).await;
    let now = wappline::clock::now_secs();
    let before = r.instagram_reply_at("before the read", 77, now - 60).await;
    assert_eq!(r.deliver().await, Outcome::Done);
    let read = json!({ "mid": "aWdfaXRlbToxOklHTWVzc2FnZUlEOm5vdE91cnM" });
    let job = read_job_at(&r.tenant, read, now - 30);
    assert_eq!(r.inbound().process(&job).await.unwrap(), Outcome::Done);
    let after = r.instagram_reply_at("after the read", 78, now - 10).await;
    assert_eq!(r.deliver().await, Outcome::Done);
    // Instagram repeats its webhook: nothing more.
    assert_eq!(r.inbound().process(&job).await.unwrap(), Outcome::Done);
    p.sync(&r).await;
    assert_eq!(r.status(&before).await, Some(MessageStatus::Read));
    assert_eq!(r.status(&after).await, Some(MessageStatus::Sent));
    assert_eq!(p.status_posts_of(READING, 77), 1);
    assert_eq!(p.status_posts_of(READING, 78), 0);
}

/// Holds the inbound worker at its write of a held read: says so, then waits to be let go.
struct AtTheHold {
    reached: std::sync::Mutex<Option<oneshot::Sender<()>>>,
    go: Arc<Notify>,
}

#[async_trait]
impl StoreHook for AtTheHold {
    async fn before(&self, call: &StoreCall<'_>) -> Verdict {
        let at_hold = call.writes()
            && call
                .targets()
                .iter()
                .any(|(table, key)| *table == Table::Data && key.sk == "READ");
        let reached = if at_hold {
            self.reached.lock().unwrap().take()
        } else {
            None
        };
        if let Some(reached) = reached {
            let _ = reached.send(());
            self.go.notified().await;
        }
        Verdict::Run
    }
}

/// The other order: the inbound worker looks for the message before the `mid` is written,
/// the send worker writes it and looks for a held read before the inbound worker keeps one.
/// Neither finds the other's write at its first look; the inbound worker's second look, after
/// it keeps the read, finds the message and marks the reply read. Fails without that look.
#[tokio::test]
async fn an_instagram_read_kept_after_the_send_worker_looked_is_applied_by_the_inbound_worker() {
    let r = rig(Duration::from_secs(600)).await;
    let p = portal(&r).await;
    let at = r.instagram_reply("recorded while the read is kept").await;
    let (reached, at_hold) = oneshot::channel();
    let go = Arc::new(Notify::new());
    let inbound = InboundWorker::new(
        Arc::new(HookedStore::new(
            r.platform.store.clone(),
            AtTheHold {
                reached: std::sync::Mutex::new(Some(reached)),
                go: go.clone(),
            },
        )),
        r.platform.envelope.clone(),
        r.platform.tenants.clone(),
        r.queue.clone(),
    );
    // While the send worker writes the `mid`: the read is handled up to its hold (its first
    // look found nothing), and waits there.
    let (graph, tenant) = (r.graph.clone(), r.tenant.clone());
    let (done_tx, done) = oneshot::channel();
    *r.store.hook().meanwhile.lock().unwrap() = Some(Box::pin(async move {
        let mid = graph.sent().remove(0).id;
        tokio::spawn(async move {
            let outcome = inbound.process(&read_job(&tenant, &mid)).await.unwrap();
            let _ = done_tx.send(outcome);
        });
        at_hold.await.unwrap();
    }));
    assert_eq!(r.deliver().await, Outcome::Done);
    p.sync(&r).await;
    assert_eq!(
        r.status(&at).await,
        Some(MessageStatus::Sent),
        "the send worker found no held read"
    );
    go.notify_one();
    assert_eq!(done.await.unwrap(), Outcome::Done);
    p.sync(&r).await;
    assert_eq!(r.status(&at).await, Some(MessageStatus::Read));
    assert_eq!(p.status_posts(READING), 1);
}
