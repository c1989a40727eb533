//! A customer's message pushed under a hold on its own item (decision 0105), not the sync
//! job's `SYNC` idempotency record: no record written for it; a push whose record could not
//! be written, or whose hold another delivery took over, is posted once; a message too large
//! for the hold to save a write unit keeps the `SYNC` record.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::StatusCode;
use wappline::consumer::Outcome;
use wappline::crm_sync::SyncWorker;
use wappline::faults::hooked::{HookedStore, SharedHook, StoreCall, StoreHook, Verdict};
use wappline::queue::platform;
use wappline::store::{StoreError, Table};

use super::{Pause, Rig};
use e2e_tests::whatsapp_events;

/// The write that records a message's push done: its CRM ids stored on the message.
fn records_a_push(call: &StoreCall<'_>) -> bool {
    matches!(call, StoreCall::Update { table: Table::Data, update, .. }
        if update.set.iter().any(|(name, _)| name == "crm_message_ids"))
}

/// A read of a message's item.
fn reads_a_message(call: &StoreCall<'_>) -> bool {
    matches!(call, StoreCall::Get { table: Table::Data, key } if key.sk.starts_with("MSG#"))
}

/// A write of a sync job's idempotency record (`SYNC`: its hold or its completion).
fn writes_a_sync_record(call: &StoreCall<'_>) -> bool {
    matches!(call, StoreCall::Put { table: Table::Dedupe, item, .. }
        if item.key().is_some_and(|k| k.pk.contains("#SYNC#")))
}

/// Counts `SYNC` record writes and message reads; fails the first `throttle` push records (nothing written);
/// stops its caller at the first push record until the pause is let go, when given one.
struct PushHook {
    sync_records: AtomicUsize,
    message_reads: AtomicUsize,
    throttle: AtomicUsize,
    records_seen: AtomicUsize,
    pause: Option<Pause>,
}

impl PushHook {
    fn new(throttle: usize, pause: Option<Pause>) -> Arc<PushHook> {
        Arc::new(PushHook {
            sync_records: AtomicUsize::new(0),
            message_reads: AtomicUsize::new(0),
            throttle: AtomicUsize::new(throttle),
            records_seen: AtomicUsize::new(0),
            pause,
        })
    }
}

#[async_trait]
impl StoreHook for PushHook {
    async fn before(&self, call: &StoreCall<'_>) -> Verdict {
        if writes_a_sync_record(call) {
            self.sync_records.fetch_add(1, Ordering::SeqCst);
        }
        if reads_a_message(call) {
            self.message_reads.fetch_add(1, Ordering::SeqCst);
        }
        if records_a_push(call) {
            let first = self.records_seen.fetch_add(1, Ordering::SeqCst) == 0;
            if let (true, Some(pause)) = (first, &self.pause) {
                pause.stop().await;
            }
            let throttled = self
                .throttle
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| v.checked_sub(1))
                .is_ok();
            if throttled {
                return Verdict::Fail(StoreError::Unavailable("injected: throttled".into()));
            }
        }
        Verdict::Run
    }
}

fn hooked_worker(rig: &Rig, hook: &Arc<PushHook>) -> SyncWorker {
    rig.worker(Arc::new(HookedStore::new(
        rig.h.server.platform().store.clone(),
        SharedHook(hook.clone()),
    )))
}

/// One customer message, stored, its push queued (not run).
async fn one_message(rig: &Rig, id: &str, body: &str) {
    let delivery = whatsapp_events::text("16505550000", "Customer 0", id, 1_767_261_600, body);
    let (s, text) = rig.h.post_signed(&delivery).await;
    assert_eq!(s, StatusCode::OK, "{text}");
    rig.h
        .drain(platform::INBOUND, Duration::from_secs(30))
        .await;
    assert_eq!(rig.sync_depth().await, 1, "its push is queued");
}

async fn run_out(rig: &Rig, worker: &SyncWorker) {
    rig.run_until_empty(worker, 50, |_| Duration::from_secs(200))
        .await;
}

fn posts_of(rig: &Rig, id: &str) -> usize {
    rig.fake
        .messages_received()
        .iter()
        .filter(|m| m.external_message_id == id)
        .count()
}

/// The push is posted and recorded without the job's `SYNC` record; the write recording it
/// is throttled once, after the post: the retry finds the staged operation `sent`, posts
/// nothing more, and records it.
#[tokio::test]
async fn a_push_writes_no_sync_record_and_one_whose_record_failed_is_posted_once() {
    let rig = Rig::start().await;
    one_message(&rig, "wamid.push.once", "hello").await;
    let hook = PushHook::new(1, None);
    let worker = hooked_worker(&rig, &hook);
    rig.round(&worker).await;
    assert_eq!(
        posts_of(&rig, "wamid.push.once"),
        1,
        "posted by the first delivery"
    );
    assert_eq!(rig.sync_depth().await, 1, "the job is retried");
    run_out(&rig, &worker).await;
    assert_eq!(posts_of(&rig, "wamid.push.once"), 1, "posted once");
    assert_eq!(
        hook.records_seen.load(Ordering::SeqCst),
        2,
        "recorded on the retry"
    );
    assert_eq!(
        hook.sync_records.load(Ordering::SeqCst),
        0,
        "no SYNC record"
    );
    assert_eq!(rig.dead_lettered().await, 0);
    rig.h.server.shutdown().await;
}

/// Delivery A posts the message and records the answer, then stalls before recording the
/// push, past its lease and the record's visibility; delivery B takes the hold over and
/// finishes it. Neither posts it a second time, and A leaves the job to B.
#[tokio::test]
async fn a_push_taken_over_after_its_post_does_not_post_again() {
    let rig = Rig::start().await;
    one_message(&rig, "wamid.push.taken", "hello").await;
    let pause = Pause::default();
    let stalling = hooked_worker(&rig, &PushHook::new(0, Some(pause.clone())));
    let normal = rig.worker(rig.h.server.platform().store.clone());
    let a_outcome = rig
        .taken_over(&stalling, &normal, &pause, || {
            assert_eq!(posts_of(&rig, "wamid.push.taken"), 1, "A posted it")
        })
        .await;
    assert!(
        matches!(a_outcome, Outcome::RetryAfter(_)),
        "A leaves the job to B: {a_outcome:?}"
    );
    run_out(&rig, &normal).await;
    assert_eq!(posts_of(&rig, "wamid.push.taken"), 1, "posted once");
    assert_eq!(rig.dead_lettered().await, 0);
    rig.h.server.shutdown().await;
}

/// A message whose item is too large for an update of it to bill one write unit keeps the
/// job's `SYNC` record (a hold on it would bill more than the record's two small writes).
/// The message is read once: the read that found it too large serves the push.
#[tokio::test]
async fn a_large_message_keeps_the_sync_record() {
    let rig = Rig::start().await;
    one_message(&rig, "wamid.push.large", &"long words ".repeat(120)).await;
    let hook = PushHook::new(0, None);
    let worker = hooked_worker(&rig, &hook);
    run_out(&rig, &worker).await;
    assert_eq!(posts_of(&rig, "wamid.push.large"), 1, "posted once");
    assert_eq!(
        hook.sync_records.load(Ordering::SeqCst),
        2,
        "held and completed"
    );
    assert_eq!(
        hook.message_reads.load(Ordering::SeqCst),
        1,
        "the message read once"
    );
    assert_eq!(rig.dead_lettered().await, 0);
    rig.h.server.shutdown().await;
}
