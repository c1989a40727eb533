//! A sync job hears the outcome of an operation its own process posts, without reading the
//! staged operation (decision 0084); one that another worker instance posts it still finds
//! by looking.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use e2e_tests::fake_bitrix::FAKE_DOMAIN;
use wappline::consumer::{process_batch, Outcome, QueueRecord};
use wappline::faults::hooked::{Answer, HookedStore, StoreCall, StoreHook, Verdict};
use wappline::queue::{platform, Queue};
use wappline::store::StoreError;

use super::{names_a_staged_operation, Rig};

/// Counts the reads (`GetItem`) of staged operations.
#[derive(Default)]
struct CountsOperationReads {
    reads: AtomicUsize,
}

#[async_trait]
impl StoreHook for CountsOperationReads {
    async fn before(&self, call: &StoreCall<'_>) -> Verdict {
        if matches!(call, StoreCall::Get { .. }) && names_a_staged_operation(call) {
            self.reads.fetch_add(1, Ordering::SeqCst);
        }
        Verdict::Run
    }
}

/// Eight conversations' messages in one round of one worker: every operation is posted by
/// the process's own flusher, and no job reads its operation to learn the outcome (the old
/// wait read it every `poll`).
#[tokio::test]
async fn jobs_whose_operations_their_process_posts_never_read_them() {
    let rig = Rig::start().await;
    let store = Arc::new(HookedStore::new(
        rig.h.server.platform().store.clone(),
        CountsOperationReads::default(),
    ));
    let worker = rig.worker(store.clone());
    let want = rig.customers_write(8, 2, "heard").await;
    rig.run_until_empty(&worker, 20, |longest| {
        assert_eq!(longest, None, "every job done in its round");
        Duration::ZERO
    })
    .await;
    rig.assert_delivered_once_in_order(&want);
    assert_eq!(
        store.hook().reads.load(Ordering::SeqCst),
        0,
        "no staged operation read after staging"
    );
    assert_eq!(rig.dead_lettered().await, 0);
    rig.h.server.shutdown().await;
}

/// The portal's lease is always someone else's (another instance holds it): the job cannot
/// post its operation itself. Counts its reads of staged operations, and says when it has
/// staged one.
#[derive(Default)]
struct LeaseHeldElsewhere {
    reads: AtomicUsize,
    staged: tokio::sync::Notify,
}

#[async_trait]
impl StoreHook for LeaseHeldElsewhere {
    async fn before(&self, call: &StoreCall<'_>) -> Verdict {
        match call {
            StoreCall::Put { item, .. } if item.key().is_some_and(|k| k.sk == "~lease") => {
                Verdict::Fail(StoreError::ConditionFailed { op_index: None })
            }
            StoreCall::Get { .. } if names_a_staged_operation(call) => {
                self.reads.fetch_add(1, Ordering::SeqCst);
                Verdict::Run
            }
            _ => Verdict::Run,
        }
    }

    fn answered(&self, call: &StoreCall<'_>, answer: Result<Answer<'_>, &StoreError>) {
        if matches!(call, StoreCall::Put { .. }) && names_a_staged_operation(call) && answer.is_ok()
        {
            self.staged.notify_one();
        }
    }
}

/// Job A's process never gets the portal's lease; another worker instance (B, its own
/// process) runs the next conversation's job, whose flush posts A's operation too. A hears
/// nothing from B and finds its outcome by looking: done, each message posted once.
#[tokio::test]
async fn a_job_whose_operation_another_instance_posts_finds_its_outcome() {
    let rig = Rig::start().await;
    let hook = Arc::new(HookedStore::new(
        rig.h.server.platform().store.clone(),
        LeaseHeldElsewhere::default(),
    ));
    let a = rig.worker(hook.clone());
    let b = rig.worker(rig.h.server.platform().store.clone());
    let queue = rig.h.server.queue();
    let name = platform::name(platform::SYNC);
    let first = rig.customers_write(1, 1, "elsewhere").await;
    let got = queue
        .receive(&name, 10, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    let records = vec![QueueRecord::from(&got[0])];
    let run_a = process_batch(&a, &records);
    let run_b = async {
        hook.hook().staged.notified().await;
        // Customer 1 writes; B's job stages its post and flushes the portal: both go out.
        let second = rig.customers_write(2, 1, "other").await;
        rig.round(&b).await;
        assert_eq!(
            rig.fake.posts_of(FAKE_DOMAIN, &first[0][0]),
            1,
            "B posted A's"
        );
        second
    };
    let (outcomes, second) = tokio::join!(run_a, run_b);
    assert!(matches!(outcomes[..], [Outcome::Done]), "{outcomes:?}");
    queue.ack(&name, &got[0].receipt).await.unwrap();
    assert!(
        hook.hook().reads.load(Ordering::SeqCst) >= 1,
        "A looked at its operation"
    );
    while rig.sync_depth().await > 0 {
        rig.round(&b).await;
    }
    for id in [&first[0][0], &second[1][0]] {
        assert_eq!(rig.fake.posts_of(FAKE_DOMAIN, id), 1, "{id} posted once");
    }
    assert_eq!(rig.fake.duplicate_posts(), 0);
    rig.h.server.shutdown().await;
}
