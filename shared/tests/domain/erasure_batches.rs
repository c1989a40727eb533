//! Contact erasure of long conversations (decision 0057): it deletes in batches, goes on
//! from its cursor after a failed attempt, finishes a 5,000-message conversation within
//! one job's receives under the soak's store faults, and lands its cut on a whole second
//! (tested both ways with a controlled clock).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wappline::clock::Clock;
use wappline::conversation::erased::{Erased, ErasedSubjects, Verdict};
use wappline::conversation::{ConversationId, Conversations, Direction};
use wappline::crypto::{CachePolicy, Envelope};
use wappline::erasure::ContactErasure;
use wappline::faults::hooked::{self, HookedStore, StoreCall};
use wappline::faults::ports::Tap;
use wappline::faults::{FaultPlan, FaultRates};
use wappline::ids::TenantId;
use wappline::queue::embedded::EmbeddedQueue;
use wappline::queue::{platform, Queue};
use wappline::store::TableStore;

use crate::backends::Backend;
use crate::erasure::{account, customer, text};

/// A clock the test moves: the erasure's waits advance it instead of sleeping.
pub(crate) struct ManualClock(AtomicI64);

impl ManualClock {
    pub(crate) fn at(ms: i64) -> Arc<Self> {
        Arc::new(ManualClock(AtomicI64::new(ms)))
    }
}

#[async_trait::async_trait]
impl Clock for ManualClock {
    fn now_millis(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
    async fn sleep(&self, by: Duration) {
        self.0.fetch_add(by.as_millis() as i64, Ordering::SeqCst);
    }
}

/// A store that counts the requests reaching `inner`, and the count. `batched: false` sends
/// each batch as single deletes (the port's default), which is what the erasure did before
/// it batched: one `DeleteItem` per item.
pub(crate) fn counting(
    inner: Arc<dyn TableStore>,
    batched: bool,
) -> (Arc<dyn TableStore>, Arc<AtomicU64>) {
    let requests = Arc::new(AtomicU64::new(0));
    let seen = requests.clone();
    let store = HookedStore::with(inner, move |_: &StoreCall<'_>| {
        seen.fetch_add(1, Ordering::Relaxed);
        hooked::Verdict::Run
    });
    let store: Arc<dyn TableStore> = if batched {
        Arc::new(store)
    } else {
        Arc::new(store.one_by_one())
    };
    (store, requests)
}

fn envelope(b: &Backend) -> Arc<Envelope> {
    Arc::new(Envelope::new(
        b.store.clone(),
        b.vault.clone(),
        CachePolicy::default(),
    ))
}

/// A conversation of `n` inbound messages (stored as the inbound worker stores them, 32 at
/// a time), with the inbound idempotency record of each.
pub(crate) async fn long_conversation(
    b: &Backend,
    t: &TenantId,
    n: usize,
) -> (Conversations, ConversationId) {
    let envelope = envelope(b);
    let c = Conversations::new(t.clone(), b.store.clone(), envelope);
    let alice = customer("US.777777777777777777", "16505550077");
    let conv = c
        .record_customer(&account(), &alice, Some(1), 90)
        .await
        .unwrap();
    let mut next = 0;
    while next < n {
        let mut tasks = tokio::task::JoinSet::new();
        for m in next..(next + 32).min(n) {
            let (c, conv) = (c.clone(), conv.clone());
            tasks.spawn(async move {
                c.store_message(
                    &account(),
                    &conv,
                    text(
                        &format!("wamid.LONG{m:05}"),
                        "long conversation secret",
                        1_000 + m as i64,
                        Direction::Inbound,
                    ),
                    90,
                )
                .await
                .unwrap();
            });
        }
        while let Some(r) = tasks.join_next().await {
            r.unwrap();
        }
        next = (next + 32).min(n);
    }
    (c, conv)
}

fn erasure(store: Arc<dyn TableStore>, b: &Backend, queue: Arc<dyn Queue>) -> ContactErasure {
    ContactErasure::new(store, envelope(b), queue)
}

fn queue() -> (Arc<dyn Queue>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let q = EmbeddedQueue::open(dir.path(), platform::specs()).unwrap();
    (Arc::new(q), dir)
}

/// The soak's store faults (0.25 % of calls fail, one in 20,000 crashes the process) on a
/// 5,000-message conversation: the job finishes within the queue's 5 receives, each a new
/// process after a crash, and in batches: item by item it would be about 60,000 requests.
async fn a_long_conversation_erases_within_one_jobs_receives_under_faults(b: Backend) {
    let t = TenantId::generate();
    let (c, conv) = long_conversation(&b, &t, 5_000).await;
    let (queue, _dir) = queue();
    let request = erasure(b.store.clone(), &b, queue.clone())
        .request(
            &t,
            account(),
            customer("US.777777777777777777", "16505550077").id,
            "platform_admin",
        )
        .await
        .unwrap();
    let plan = Arc::new(FaultPlan::new(20261204, FaultRates::SOAK));
    plan.arm(true);
    let (store, counted) = counting(Tap::faults(plan.clone()).store(b.store.clone()), true);
    let mut done_in = None;
    for receive in 1..=5 {
        // Each receive is a fresh process (a crash killed the last one).
        plan.restarted();
        let job = erasure(store.clone(), &b, queue.clone());
        if job.process(&t, &request).await.is_ok() {
            done_in = Some(receive);
            break;
        }
    }
    plan.arm(false);
    let requests = counted.load(Ordering::SeqCst);
    println!(
        "erased 5,000 messages in {done_in:?} receives, {requests} requests, faults {:?}",
        plan.injected_by_kind()
    );
    assert!(done_in.is_some(), "the erasure ran out of receives");
    assert!(requests < 4_000, "{requests} requests: not in batches");
    let (left, _) = c.messages(&conv, None, 100).await.unwrap();
    assert!(left.is_empty());
    assert!(c.meta(&conv).await.unwrap().is_none());
    let status = erasure(b.store.clone(), &b, queue)
        .status(&t, &request)
        .await
        .unwrap();
    assert_eq!(status.state, "completed");
}

/// The cut is the last millisecond of the second the markers were written in; the markers
/// are sealed and the request completes only after it, at a later whole second. Both ends
/// of a second, with a controlled clock.
async fn the_cut_ends_the_marking_second_and_completion_is_after_it(b: Backend) {
    for (marked_at, cut) in [
        (1_795_000_000_400, 1_795_000_000_999),
        (1_795_000_000_999, 1_795_000_000_999),
        (1_795_000_001_000, 1_795_000_001_999),
    ] {
        let t = TenantId::generate();
        let (_c, conv) = long_conversation(&b, &t, 3).await;
        let (queue, _dir) = queue();
        let clock = ManualClock::at(marked_at);
        let job = erasure(b.store.clone(), &b, queue).with_clock(clock.clone());
        let request = job
            .request(
                &t,
                account(),
                customer("US.777777777777777777", "16505550077").id,
                "platform_admin",
            )
            .await
            .unwrap();
        job.process(&t, &request).await.unwrap();
        let erased = ErasedSubjects::new(b.store.clone())
            .erasure(&t, &conv)
            .await
            .unwrap();
        assert_eq!(erased, Some(Erased::Through(cut)), "marked at {marked_at}");
        let e = erased.unwrap();
        let second = cut / 1000;
        // A redelivery of anything stamped in the cut's second or before: dropped.
        assert_eq!(e.event(Some(second)), Verdict::Erased);
        assert_eq!(e.event(Some(second - 1)), Verdict::Erased);
        // The person writing in the next second: a new conversation.
        assert_eq!(e.event(Some(second + 1)), Verdict::New);
        // Completion is after the cut, so whatever is written after it is new.
        let status = job.status(&t, &request).await.unwrap();
        assert_eq!(status.state, "completed");
        let completed_at = status.completed_at.unwrap();
        assert!(
            completed_at > second,
            "completed at {completed_at}, cut {cut}"
        );
        assert_eq!(e.event(Some(completed_at)), Verdict::New);
        assert!(clock.now_millis() > cut);
    }
}

/// Requests and time to erase conversations of 1,000 and 5,000 messages (`ERASURE_SIZES`,
/// comma-separated), item by item (as before) and in batches (`ERASURE_MODES`: `items`,
/// `batches` or both): the figures of docs/performance.md.
async fn erasure_requests_and_time(b: Backend) {
    let env = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.into());
    let sizes: Vec<usize> = env("ERASURE_SIZES", "1000,5000")
        .split(',')
        .map(|n| n.trim().parse().expect("a size"))
        .collect();
    let modes = env("ERASURE_MODES", "items,batches");
    let modes: Vec<bool> = [("items", false), ("batches", true)]
        .into_iter()
        .filter(|(name, _)| modes.contains(name))
        .map(|(_, batched)| batched)
        .collect();
    for n in sizes {
        for batched in modes.iter().copied() {
            let t = TenantId::generate();
            let (c, conv) = long_conversation(&b, &t, n).await;
            let (queue, _dir) = queue();
            let (store, counted) = counting(b.store.clone(), batched);
            let job = erasure(store, &b, queue);
            let request = job
                .request(
                    &t,
                    account(),
                    customer("US.777777777777777777", "16505550077").id,
                    "platform_admin",
                )
                .await
                .unwrap();
            counted.store(0, Ordering::SeqCst);
            let started = Instant::now();
            job.process(&t, &request).await.unwrap();
            let took = started.elapsed();
            assert!(c.meta(&conv).await.unwrap().is_none());
            println!(
                "erasure figures: {n} messages, {}: {} store requests, {:.2} s",
                if batched { "batched" } else { "item by item" },
                counted.load(Ordering::SeqCst),
                took.as_secs_f64()
            );
        }
    }
}

mod embedded {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_long_conversation_erases_within_one_jobs_receives_under_faults() {
        super::a_long_conversation_erases_within_one_jobs_receives_under_faults(
            crate::backends::embedded().await,
        )
        .await;
    }
    #[tokio::test]
    async fn the_cut_ends_the_marking_second_and_completion_is_after_it() {
        super::the_cut_ends_the_marking_second_and_completion_is_after_it(
            crate::backends::embedded().await,
        )
        .await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "minutes; the figures of docs/performance.md"]
    async fn erasure_requests_and_time() {
        super::erasure_requests_and_time(crate::backends::embedded().await).await;
    }
}

mod aws {
    #[tokio::test]
    async fn the_cut_ends_the_marking_second_and_completion_is_after_it() {
        super::the_cut_ends_the_marking_second_and_completion_is_after_it(
            crate::backends::aws().await,
        )
        .await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "minutes; the figures of docs/performance.md"]
    async fn erasure_requests_and_time() {
        super::erasure_requests_and_time(crate::backends::aws().await).await;
    }
}
