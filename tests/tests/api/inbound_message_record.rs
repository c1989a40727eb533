//! A customer's message is its own idempotency record (decision 0096): the inbound worker takes
//! no hold on the event's idempotency record for it, finds a redelivery by the message's
//! index item before it writes anything, and still records the event done for a redelivery
//! too late to rely on that item. The worker runs over an embedded store wrapped so that a
//! test counts the idempotency writes and fails exactly the calls it names.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use e2e_tests::embedded_tenant::{
    inbound_until_done, only_inbound_job, queued_sync_actions, EmbeddedTenant,
};
use e2e_tests::whatsapp_events;
use wappline::app::Platform;
use wappline::clock::now_secs;
use wappline::conversation::Conversations;
use wappline::crm_sync::SyncAction;
use wappline::faults::hooked::{HookedStore, StoreCall, StoreHook, Verdict};
use wappline::ids::TenantId;
use wappline::inbound::worker::InboundWorker;
use wappline::inbound::InboundJob;
use wappline::queue::embedded::EmbeddedQueue;
use wappline::store::{Item, StoreError, Table};
use wappline::usage::{Usage, UsageMonth};

const PHONE: &str = "16505551234";

/// Takes one from `n` if any is left: this call is one that fails.
fn take(n: &AtomicUsize) -> bool {
    n.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| v.checked_sub(1))
        .is_ok()
}

/// Counts the inbound events' idempotency writes, and fails the next n calls of each kind.
#[derive(Default)]
struct Faults {
    /// Conditional puts of an `IN` record: holds taken (`Idempotency::begin`).
    holds: AtomicUsize,
    /// Unconditional puts of an `IN` record: the event recorded done.
    done: AtomicUsize,
    /// The message's transaction fails and writes nothing.
    refuse_transaction: AtomicUsize,
    /// The message's transaction is written, but its answer is lost.
    lose_transaction_answer: AtomicUsize,
    /// The write recording the event done fails.
    refuse_done: AtomicUsize,
}

fn is_inbound_record(table: Table, item: &Item) -> bool {
    table == Table::Dedupe && item.get_s("sk") == Some("IN")
}

#[async_trait]
impl StoreHook for Faults {
    async fn before(&self, call: &StoreCall<'_>) -> Verdict {
        // Not `Unavailable`: the message's store retries that at once by itself.
        let failed = || StoreError::Backend("injected: internal error".into());
        match call {
            StoreCall::Put {
                table,
                item,
                condition,
            } if is_inbound_record(*table, item) => {
                if condition.is_some() {
                    self.holds.fetch_add(1, Ordering::SeqCst);
                } else if take(&self.refuse_done) {
                    return Verdict::Fail(failed());
                } else {
                    self.done.fetch_add(1, Ordering::SeqCst);
                }
                Verdict::Run
            }
            StoreCall::Transact { .. } if take(&self.refuse_transaction) => Verdict::Fail(failed()),
            StoreCall::Transact { .. } if take(&self.lose_transaction_answer) => {
                Verdict::RunThenFail(failed())
            }
            _ => Verdict::Run,
        }
    }
}

struct Rig {
    platform: Platform,
    queue: Arc<EmbeddedQueue>,
    store: Arc<HookedStore<Faults>>,
    tenant: TenantId,
    _dir: tempfile::TempDir,
}

async fn rig() -> Rig {
    let EmbeddedTenant {
        platform,
        queue,
        tenant,
        dir,
        ..
    } = EmbeddedTenant::start([]).await;
    let store = Arc::new(HookedStore::new(platform.store.clone(), Faults::default()));
    Rig {
        platform,
        queue,
        store,
        tenant,
        _dir: dir,
    }
}

impl Rig {
    /// The job the webhook queues for a text `id` from `name`, stamped by Meta at `stamped`.
    fn text_job(&self, id: &str, name: &str, stamped: i64) -> InboundJob {
        let body = whatsapp_events::text(PHONE, name, id, stamped, "Is my order ready?");
        only_inbound_job(&self.tenant, &body)
    }

    fn worker(&self) -> InboundWorker {
        InboundWorker::new(
            self.store.clone(),
            self.platform.envelope.clone(),
            self.platform.tenants.clone(),
            self.queue.clone(),
        )
    }

    fn faults(&self) -> &Faults {
        self.store.hook()
    }

    async fn data_items(&self) -> Vec<Item> {
        let mut items = Vec::new();
        let mut after = None;
        loop {
            let page = self
                .platform
                .store
                .scan(Table::Data, after.as_ref(), 100)
                .await
                .unwrap();
            items.extend(page.items);
            match page.next {
                Some(next) => after = Some(next),
                None => return items,
            }
        }
    }

    /// The message items and their provider-id index items stored.
    async fn stored(&self) -> (Vec<Item>, Vec<Item>) {
        let items = self.data_items().await;
        let messages = items
            .iter()
            .filter(|i| i.get_s("sk").is_some_and(|sk| sk.starts_with("MSG#")))
            .cloned()
            .collect();
        let index = items
            .iter()
            .filter(|i| i.get_s("pk").is_some_and(|pk| pk.contains("#MID#")))
            .cloned()
            .collect();
        (messages, index)
    }

    async fn counted_inbound(&self) -> u64 {
        Usage::new(self.platform.store.clone())
            .report(&self.tenant, UsageMonth::current(now_secs()))
            .await
            .unwrap()
            .inbound
            .total
    }

    /// The message keys of the push jobs in the sync queue.
    async fn queued_pushes(&self) -> Vec<String> {
        queued_sync_actions(self.queue.as_ref())
            .await
            .into_iter()
            .filter_map(|action| match action {
                SyncAction::PushMessage { message_sk } => Some(message_sk),
                _ => None,
            })
            .collect()
    }

    async fn customer_name(&self) -> Option<String> {
        let (messages, _) = self.stored().await;
        let pk = messages[0].get_s("pk").unwrap();
        let conversation = pk.rsplit("#CONV#").next().unwrap();
        Conversations::new(
            self.tenant.clone(),
            self.platform.store.clone(),
            self.platform.envelope.clone(),
        )
        .meta(&wappline::conversation::ConversationId::parse(conversation).unwrap())
        .await
        .unwrap()
        .unwrap()
        .customer
        .name
    }
}

/// One message, counted once, and one push of it queued.
async fn assert_once(rig: &Rig, when: &str) {
    let (messages, index) = rig.stored().await;
    assert_eq!(
        (messages.len(), index.len()),
        (1, 1),
        "{when}: stored items"
    );
    assert_eq!(rig.counted_inbound().await, 1, "{when}: counted");
    let pushes = rig.queued_pushes().await;
    assert_eq!(pushes.len(), 1, "{when}: queued pushes {pushes:?}");
    assert_eq!(
        Some(pushes[0].as_str()),
        messages[0].get_s("sk"),
        "{when}: the push names the message"
    );
}

/// The cut itself: a customer's message writes its event's record once (done), with no hold
/// before it. Each hold is a conditional put, one write unit a message.
#[tokio::test]
async fn a_customer_message_takes_no_hold_on_its_event_record() {
    let rig = rig().await;
    let worker = rig.worker();
    for i in 0..3 {
        let job = rig.text_job(&format!("wamid.record-{i}"), "Ann", now_secs());
        assert_eq!(inbound_until_done(&worker, &job).await, 1);
    }
    assert_eq!(rig.faults().holds.load(Ordering::SeqCst), 0, "holds taken");
    assert_eq!(rig.faults().done.load(Ordering::SeqCst), 3, "recorded done");
    assert_eq!(rig.counted_inbound().await, 3);
}

/// A redelivery after each step of the first delivery (the message's transaction failed,
/// its answer was lost after it was written, the event's record could not be written)
/// stores, counts and queues the message once, and so does one more after the job is done.
#[tokio::test]
async fn a_message_redelivered_after_each_step_is_stored_counted_and_queued_once() {
    for (step, arm) in [
        (
            "transaction failed",
            &(|f: &Faults| f.refuse_transaction.store(1, Ordering::SeqCst)) as &dyn Fn(&Faults),
        ),
        ("transaction's answer lost", &|f: &Faults| {
            f.lose_transaction_answer.store(1, Ordering::SeqCst)
        }),
        ("record of the event failed", &|f: &Faults| {
            f.refuse_done.store(1, Ordering::SeqCst)
        }),
    ] {
        let rig = rig().await;
        let worker = rig.worker();
        let job = rig.text_job("wamid.redelivered", "Ann", now_secs());
        arm(rig.faults());
        assert_eq!(inbound_until_done(&worker, &job).await, 2, "{step}: tries");
        inbound_until_done(&worker, &job).await;
        assert_once(&rig, step).await;
    }
}

/// Two deliveries of the same event at once (a delivery that outlived its visibility): the
/// message's transaction lets one store it; both queue the same push, deduplicated.
#[tokio::test]
async fn two_deliveries_at_once_store_and_count_the_message_once() {
    let rig = rig().await;
    let worker = rig.worker();
    let job = rig.text_job("wamid.twice-at-once", "Ann", now_secs());
    let (a, b) = tokio::join!(worker.process(&job), worker.process(&job));
    a.unwrap();
    b.unwrap();
    assert_once(&rig, "at once").await;
}

/// A redelivery of a message stored before does not write its conversation again with what
/// the event said then: the customer's name from a later message stays.
#[tokio::test]
async fn a_redelivery_does_not_rewrite_the_conversation() {
    let rig = rig().await;
    let worker = rig.worker();
    let first = rig.text_job("wamid.first", "Ann Old", now_secs());
    inbound_until_done(&worker, &first).await;
    inbound_until_done(
        &worker,
        &rig.text_job("wamid.second", "Ann New", now_secs()),
    )
    .await;
    inbound_until_done(&worker, &first).await;
    assert_eq!(rig.customer_name().await.as_deref(), Some("Ann New"));
}

/// A message whose index item is gone (expired under a short retention) and whose
/// redelivery comes too late to rely on it is not stored again: the event's record, written
/// after the first delivery without a hold, says it was done.
#[tokio::test]
async fn a_late_redelivery_of_an_expired_message_does_not_store_it_again() {
    // The worker relies on the index item for 23 hours after Meta's stamp.
    const RELIED_ON_SECS: i64 = 23 * 3_600;
    let rig = rig().await;
    let worker = rig.worker();
    // Inside the window by a margin a loaded machine cannot eat before the first delivery
    // runs; the redelivery comes after the margin has passed.
    const MARGIN_SECS: i64 = 10;
    let job = rig.text_job(
        "wamid.expired",
        "Ann",
        now_secs() - RELIED_ON_SECS + MARGIN_SECS,
    );
    inbound_until_done(&worker, &job).await;
    assert_eq!(
        rig.faults().holds.load(Ordering::SeqCst),
        0,
        "no hold taken"
    );
    // What retention's expiry does to the message and its index item.
    let (messages, index) = rig.stored().await;
    for item in messages.iter().chain(&index) {
        rig.platform
            .store
            .delete(Table::Data, &item.key().unwrap(), None)
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_secs(MARGIN_SECS as u64 + 1)).await;
    inbound_until_done(&worker, &job).await;
    let (messages, index) = rig.stored().await;
    assert_eq!((messages.len(), index.len()), (0, 0), "stored again");
    assert_eq!(rig.counted_inbound().await, 1);
}
