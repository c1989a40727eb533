//! Exactly one send per operator reply under store failures around the Cloud API call
//! (issue 17, decision 0055). The send worker runs over an embedded store wrapped so that
//! a test can fail the write of the send attempt (before the call) or every write that
//! records the sent message (after the call: a store outage, or a process that died between
//! Meta's answer and our write). Each test counts, at the Graph API fake, the sends per
//! recipient and per `biz_opaque_callback_data`.

// Meta's statuses that come before the send's wamid is recorded (decision 0074).
mod early_status;
// Meta's statuses of an earlier copy of a part sent again (decision 0111).
mod earlier_copy;
// Instagram's reads that come before the send's `mid` is recorded (decision 0114).
mod instagram_read;
// A read of the thread reads every reply before it (decision 0116).
mod instagram_thread_read;
// A later part refused after Meta reported an earlier part delivered.
mod partial_failure;
// A send job whose person's erasure began while it recorded its attempt (decision 0122).
mod erased_meanwhile;
// An attempt Meta may have taken, settled before the checks run again (decision 0127).
mod in_doubt;
// An Instagram comment's private reply records its attempt (decision 0136).
mod private_reply;
// The send worker's own `failed` after a delivery stopped before queueing its note (decision
// 0078).
mod own_failure;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use e2e_tests::fake_graph::GraphFailure;
use e2e_tests::whatsapp_events;
use serde_json::json;
use wappline::consumer::{Outcome, QueueRecord, RecordHandler};
use wappline::conversation::{MessageRef, MessageStatus};
use wappline::faults::hooked::{HookedStore, StoreCall, StoreHook, Verdict};
use wappline::meta::{CustomerId, CustomerRef, WhatsAppPhone};
use wappline::outbound::OutboundClients;
use wappline::store::{Key, StoreError, Table};

use crate::outbound_worker::{operator, test_config, wa, worker_over, World};

const PHONE: &str = "16505551234";

/// The hook on the send worker's store, failing its writes on command.
#[derive(Default)]
struct SendFaults {
    /// Fail the next n writes of a send attempt (the job's progress item).
    fail_attempts: AtomicUsize,
    /// Fail the next n writes to the data table made after an attempt was recorded: the
    /// writes that record the sent message.
    fail_records: AtomicUsize,
    attempted: AtomicBool,
    /// Run once, at the first write to the data table after an attempt was recorded (the
    /// write of the sent message's wamid), before that write runs or fails: what happens
    /// while the send worker records the send (Meta's status overtaking it).
    meanwhile: std::sync::Mutex<Option<Meanwhile>>,
    /// Run the next n writes that move a message to `failed`, then fail them: the process
    /// died right after the move, before the operator's note was queued.
    lose_failed_moves: AtomicUsize,
    /// Run once, before the next write of a send attempt: what happens while the send worker
    /// records it, before it asks Meta.
    before_attempt: std::sync::Mutex<Option<Meanwhile>>,
    /// Fail the next n writes of the sent parts to the job's progress (with `fail_records`:
    /// a process that died between Meta's answer and any write of it).
    fail_part_saves: AtomicUsize,
}

type Meanwhile = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

impl SendFaults {
    fn is_progress(key: &Key) -> bool {
        key.pk.contains("OUTP#")
    }

    fn check(&self, table: Table, key: &Key) -> Result<(), StoreError> {
        let take = |n: &AtomicUsize| {
            n.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| v.checked_sub(1))
                .is_ok()
        };
        if table == Table::Dedupe && Self::is_progress(key) {
            if take(&self.fail_attempts) {
                return Err(StoreError::Unavailable("injected: before the call".into()));
            }
            self.attempted.store(true, Ordering::SeqCst);
        }
        if table == Table::Data && self.attempted.load(Ordering::SeqCst) && take(&self.fail_records)
        {
            return Err(StoreError::Unavailable("injected: after the call".into()));
        }
        Ok(())
    }
}

#[async_trait]
impl StoreHook for SendFaults {
    async fn before(&self, call: &StoreCall<'_>) -> Verdict {
        if !call.writes() {
            return Verdict::Run;
        }
        if let StoreCall::Update {
            table: Table::Dedupe,
            key,
            update,
            ..
        } = call
        {
            let saves_parts = update.set.iter().any(|(k, _)| k == "parts");
            if Self::is_progress(key)
                && saves_parts
                && self
                    .fail_part_saves
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| v.checked_sub(1))
                    .is_ok()
            {
                return Verdict::Fail(StoreError::Unavailable(
                    "injected: the parts not saved".into(),
                ));
            }
            if Self::is_progress(key) && update.set.iter().any(|(k, _)| k == "att") {
                let before = self.before_attempt.lock().unwrap().take();
                if let Some(before) = before {
                    before.await;
                }
            }
        }
        if let StoreCall::Update {
            table: Table::Data,
            update,
            ..
        } = call
        {
            let to_failed = update
                .set
                .iter()
                .any(|(k, v)| k == "status" && v.as_s() == Some("failed"));
            if to_failed
                && self
                    .lose_failed_moves
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| v.checked_sub(1))
                    .is_ok()
            {
                return Verdict::RunThenFail(StoreError::Unavailable(
                    "injected: died after the move".into(),
                ));
            }
        }
        for (table, key) in call.targets() {
            let checked = self.check(table, &key);
            let meanwhile = match table {
                Table::Data if self.attempted.load(Ordering::SeqCst) => {
                    self.meanwhile.lock().unwrap().take()
                }
                _ => None,
            };
            if let Some(meanwhile) = meanwhile {
                meanwhile.await;
            }
            if let Err(e) = checked {
                return Verdict::Fail(e);
            }
        }
        Verdict::Run
    }
}

/// The send worker's world, its worker over the store with the fault hook.
struct Rig {
    world: World,
    store: Arc<HookedStore<SendFaults>>,
}

/// The tests read the world (its Graph API fake, its conversations) through the rig.
impl std::ops::Deref for Rig {
    type Target = World;

    fn deref(&self) -> &World {
        &self.world
    }
}

async fn rig(reconcile: Duration) -> Rig {
    rig_with(reconcile, None).await
}

/// As [`rig`], with the Graph API clients' request timeout set to `call` when given.
async fn rig_with(reconcile: Duration, call: Option<Duration>) -> Rig {
    let mut hooked = None;
    let world = World::start(None, |platform, queue, clients| {
        let store =
            Arc::new(HookedStore::new(platform.store.clone(), SendFaults::default()).one_by_one());
        hooked = Some(store.clone());
        let clients = match call {
            Some(timeout) => {
                let mut config = clients.graph.config().clone();
                config.request_timeout = timeout;
                OutboundClients::new(config.clone(), config).unwrap()
            }
            None => clients,
        };
        worker_over(store, platform, queue, clients, test_config()).with_reconcile_window(reconcile)
    })
    .await;
    Rig {
        world,
        store: hooked.unwrap(),
    }
}

impl Rig {
    /// An operator's reply to a customer who wrote a minute ago.
    async fn reply(&self, text: &str) -> MessageRef {
        let mut customer = CustomerRef::new(CustomerId::WhatsAppPhone(
            WhatsAppPhone::parse(PHONE).unwrap(),
        ));
        customer.phone = Some(WhatsAppPhone::parse(PHONE).unwrap());
        let conversation = self.world.customer(&wa(), customer, 60).await;
        self.world
            .reply(&conversation, operator(text, Vec::new(), 77))
            .await
    }

    /// One delivery of the queued job (left in the queue unless done), as the queue would
    /// redeliver it.
    async fn deliver(&self) -> Outcome {
        let outcomes = self.world.run_at_most(1).await;
        outcomes.into_iter().next().expect("a queued send job")
    }

    /// The send job of `at` delivered once more, straight to the worker (the queue's
    /// at-least-once, past its deduplication window).
    async fn redeliver(&self, at: &MessageRef) -> Outcome {
        let job = wappline::outbound::OutboundJob::new(self.tenant.clone(), at);
        let record = QueueRecord {
            message_id: "redelivered".into(),
            body: serde_json::to_string(&job).unwrap(),
            receive_count: 1,
            group_id: None,
        };
        self.worker.handle(&record).await
    }

    /// Sends Meta took, per (recipient, `biz_opaque_callback_data`).
    fn sends_per_tag(&self) -> BTreeMap<(String, String), usize> {
        let mut out = BTreeMap::new();
        for m in self.graph.sent() {
            let to = m.body["to"].as_str().unwrap_or_default().to_owned();
            let tag = m.body["biz_opaque_callback_data"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            *out.entry((to, tag)).or_insert(0) += 1;
        }
        out
    }

    /// Sends Meta took for the customer.
    fn sends_to_customer(&self) -> usize {
        self.graph
            .sent()
            .iter()
            .filter(|m| m.body["to"] == PHONE)
            .count()
    }

    /// Meta's `sent` status of a message we sent, carrying its `biz_opaque_callback_data`
    /// (Cloud API webhooks, `statuses` object), through the inbound worker.
    async fn status_webhook(&self, wamid: &str, tag: &str) {
        let body = whatsapp_events::delivery(json!({
            "statuses": [{"id": wamid, "status": "sent",
                "timestamp": wappline::clock::now_secs().to_string(),
                "recipient_id": PHONE, "biz_opaque_callback_data": tag}]
        }));
        self.inbound_webhook(&body).await;
    }

    async fn status(&self, at: &MessageRef) -> Option<MessageStatus> {
        self.message(at).await.status
    }
}

/// The attempt cannot be recorded: nothing is sent, and the retry sends it once.
#[tokio::test]
async fn a_store_failure_before_the_call_sends_nothing_and_the_retry_sends_once() {
    let r = rig(Duration::from_secs(600)).await;
    let at = r.reply("before the call").await;
    r.store.hook().fail_attempts.store(1, Ordering::SeqCst);
    assert!(matches!(r.deliver().await, Outcome::RetryAfter(_)));
    assert_eq!(r.sends_to_customer(), 0, "nothing went out");
    assert_eq!(r.deliver().await, Outcome::Done);
    let sends = r.sends_per_tag();
    assert_eq!(sends.len(), 1, "{sends:?}");
    let ((to, tag), n) = sends.into_iter().next().unwrap();
    assert_eq!((to.as_str(), n), (PHONE, 1));
    assert!(tag.starts_with("wl1.") && tag.ends_with(".0.1"), "{tag}");
    assert_eq!(r.status(&at).await, Some(MessageStatus::Sent));
}

/// Meta took the send and recording it fails twice: recorded in place, never sent again,
/// also when the job is delivered once more.
#[tokio::test]
async fn a_store_failure_after_the_call_is_retried_in_place_and_never_resends() {
    let r = rig(Duration::from_secs(600)).await;
    let at = r.reply("after the call").await;
    r.store.hook().fail_records.store(2, Ordering::SeqCst);
    assert_eq!(r.deliver().await, Outcome::Done);
    assert_eq!(
        r.store.hook().fail_records.load(Ordering::SeqCst),
        0,
        "both failed"
    );
    assert_eq!(r.sends_to_customer(), 1);
    let sent = r.graph.sent();
    let stored = r.conversations().message(&at).await.unwrap().unwrap();
    assert_eq!(
        stored.sent_provider_id.as_deref(),
        Some(sent[0].id.as_str())
    );
    // The same job once more (the queue's at-least-once, past its deduplication window):
    // nothing goes out.
    assert_eq!(r.redeliver(&at).await, Outcome::Done);
    assert_eq!(r.sends_to_customer(), 1, "{:?}", r.sends_per_tag());
}

/// Meta took the send, then every write failed (a process dying between Meta's answer and
/// our write): the redelivery does not send again but waits for Meta's status, whose
/// `biz_opaque_callback_data` names the attempt; once it came, the message is recorded as
/// sent with Meta's id, and nothing more goes out.
#[tokio::test]
async fn a_crash_between_the_answer_and_the_write_is_settled_by_metas_status() {
    let r = rig(Duration::from_secs(600)).await;
    let at = r.reply("crash between").await;
    r.store.hook().fail_records.store(1000, Ordering::SeqCst);
    assert!(matches!(r.deliver().await, Outcome::RetryAfter(_)));
    r.store.hook().fail_records.store(0, Ordering::SeqCst);
    assert_eq!(r.sends_to_customer(), 1);
    // Redelivered before Meta's status: it waits, and sends nothing.
    for _ in 0..3 {
        match r.deliver().await {
            Outcome::RetryAfter(wait) => assert!(wait >= Duration::from_secs(1), "{wait:?}"),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(r.sends_to_customer(), 1, "{:?}", r.sends_per_tag());
    let sent = r.graph.sent().remove(0);
    let tag = sent.body["biz_opaque_callback_data"]
        .as_str()
        .unwrap()
        .to_owned();
    r.status_webhook(&sent.id, &tag).await;
    assert_eq!(r.deliver().await, Outcome::Done);
    assert_eq!(r.sends_to_customer(), 1, "{:?}", r.sends_per_tag());
    let stored = r.conversations().message(&at).await.unwrap().unwrap();
    assert_eq!(stored.sent_provider_id.as_deref(), Some(sent.id.as_str()));
    assert_eq!(stored.status, Some(MessageStatus::Sent));
}

/// A status whose tag is not the attempt on record (another job's, an old attempt's, or
/// not ours) settles nothing.
#[tokio::test]
async fn a_status_with_another_tag_confirms_nothing() {
    let r = rig(Duration::from_secs(600)).await;
    r.reply("crash between").await;
    r.store.hook().fail_records.store(1000, Ordering::SeqCst);
    assert!(matches!(r.deliver().await, Outcome::RetryAfter(_)));
    r.store.hook().fail_records.store(0, Ordering::SeqCst);
    let sent = r.graph.sent().remove(0);
    let tag = sent.body["biz_opaque_callback_data"].as_str().unwrap();
    let other = tag.replace(".0.1", ".0.2");
    r.status_webhook(&sent.id, &other).await;
    r.status_webhook(&sent.id, "{\"source\":\"crm\"}").await;
    assert!(matches!(r.deliver().await, Outcome::RetryAfter(_)));
    assert_eq!(r.sends_to_customer(), 1);
}

/// No status came within the reconcile window: Meta reports every message it took, so the
/// send is made again (at-least-once), with the next attempt's tag. The window is at least
/// a Graph API call and a second (decision 0110): with calls limited to 200 ms, two whole
/// seconds of the attempt's age.
#[tokio::test]
async fn an_unconfirmed_attempt_is_sent_again_after_the_window() {
    let r = rig_with(Duration::ZERO, Some(Duration::from_millis(200))).await;
    let at = r.reply("never confirmed").await;
    r.store.hook().fail_records.store(1000, Ordering::SeqCst);
    assert!(matches!(r.deliver().await, Outcome::RetryAfter(_)));
    r.store.hook().fail_records.store(0, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    assert_eq!(r.deliver().await, Outcome::Done);
    let tags: Vec<String> = r.sends_per_tag().into_keys().map(|(_, t)| t).collect();
    assert_eq!(tags.len(), 2, "{tags:?}");
    assert!(
        tags[0].ends_with(".0.1") && tags[1].ends_with(".0.2"),
        "{tags:?}"
    );
    assert_eq!(r.status(&at).await, Some(MessageStatus::Sent));
}

/// A reconcile window shorter than a Graph API call (a shortened lease) does not send a
/// part again while its first send may still be on its way (decision 0110): the fault
/// soak, starved of CPU with two-second leases, saw a redelivery send again a reply whose
/// first send was still in flight. The redelivery waits for the call's whole timeout.
#[tokio::test]
async fn a_window_shorter_than_a_call_waits_for_the_call() {
    let r = rig_with(Duration::ZERO, Some(Duration::from_secs(20))).await;
    r.reply("maybe still on its way").await;
    r.store.hook().fail_records.store(1000, Ordering::SeqCst);
    assert!(matches!(r.deliver().await, Outcome::RetryAfter(_)));
    r.store.hook().fail_records.store(0, Ordering::SeqCst);
    match r.deliver().await {
        Outcome::RetryAfter(wait) => assert!(wait >= Duration::from_secs(19), "{wait:?}"),
        other => panic!("sent again at once: {other:?}"),
    }
    assert_eq!(r.sends_to_customer(), 1);
}

/// Meta answered the send with an error: nothing went out, so the attempt is dropped and
/// the retry sends at once, without waiting for a status that cannot come.
#[tokio::test]
async fn a_refused_send_is_retried_without_waiting() {
    let r = rig(Duration::from_secs(600)).await;
    let at = r.reply("refused once").await;
    r.graph.fail_sends(1, GraphFailure::ServerError);
    assert!(matches!(r.deliver().await, Outcome::RetryAfter(_)));
    assert_eq!(r.sends_to_customer(), 0);
    assert_eq!(r.deliver().await, Outcome::Done);
    assert_eq!(r.sends_to_customer(), 1, "{:?}", r.sends_per_tag());
    assert_eq!(r.status(&at).await, Some(MessageStatus::Sent));
}
