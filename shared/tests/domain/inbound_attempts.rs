//! The inbound worker counts each job's own failed attempts and dead-letters it itself
//! (decision 0069), on the embedded queue and on SQS (moto):
//! - poison goes to the dead-letter queue at its first receive, unchanged;
//! - receives that were no attempt (a record skipped behind its group's failing head, a lost
//!   receive, a crash) do not use up a job's tries;
//! - a job whose own attempts all fail is moved to the dead-letter queue, unchanged, after
//!   the last, and nothing else is;
//! - a job that kills its worker every time it runs is moved to the dead-letter queue after
//!   a few such runs, not after the queue's 1,000-receive backstop (decision 0081).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use wappline::consumer::{Outcome, QueueRecord, RecordHandler};
use wappline::faults::hooked::{HookedStore, Verdict};
use wappline::own_attempts::MAX_ATTEMPTS;
use wappline::queue::embedded::EmbeddedQueue;
use wappline::queue::{platform, OutgoingMessage, Queue, ReceivedMessage};
use wappline::run_guard::{TRUSTED_RECEIVES, UNRETURNED_LIMIT};
use wappline::store::{StoreError, Table, TableStore};
use wappline::tenant::ChannelKind;

use crate::backends::{aws, embedded, sqs_platform_queues, Backend};
use crate::sealed_inbound::{inbound_world, is_attempt_bookkeeping};

const WA_NUMBER: &str = "106540352242922";

/// The sample text delivery with its message id replaced by `wamid`.
fn delivery(wamid: &str) -> Vec<u8> {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../events/meta-webhook/whatsapp-text.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    v["entry"][0]["changes"][0]["value"]["messages"][0]["id"] = serde_json::json!(wamid);
    serde_json::to_vec(&v).unwrap()
}

async fn case(backend: Backend, queue: Arc<dyn Queue>) {
    // The data table refuses writes while `down` is set: the job fails on our side. While
    // `deadly` is set, the job's first write of its own (any but the worker's records of its
    // runs and attempts, scopes `INRUN` and `INTRY`) kills the run instead: it never returns,
    // as when a job runs its instance out of memory.
    let down = Arc::new(AtomicBool::new(false));
    let deadly = Arc::new(AtomicBool::new(false));
    let deaths = Arc::new(AtomicU32::new(0));
    let (d, k, n) = (down.clone(), deadly.clone(), deaths.clone());
    let store: Arc<dyn TableStore> = Arc::new(HookedStore::with(backend.store.clone(), move |c| {
        let data_write = c.writes() && c.targets().iter().any(|(t, _)| *t == Table::Data);
        let bookkeeping = is_attempt_bookkeeping(c);
        if k.load(Ordering::SeqCst) && c.writes() && !bookkeeping {
            n.fetch_add(1, Ordering::SeqCst);
            panic!("injected: the run kills its instance");
        }
        if d.load(Ordering::SeqCst) && data_write {
            Verdict::Fail(StoreError::Unavailable("injected: down".into()))
        } else {
            Verdict::Run
        }
    }));
    let hooked = backend.with_store(store);
    let w = inbound_world(&hooked, &queue, &[(ChannelKind::WhatsApp, WA_NUMBER)]).await;
    let worker = w.worker.clone().with_dead_letter_queue(Some(queue.clone()));
    let dlq = w.inbound.dead_letter();
    let next = || async {
        let got = queue
            .receive(&w.inbound, 1, Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(got.len(), 1, "one job waiting");
        got.into_iter().next().unwrap()
    };
    // Handled as the consumer would: acknowledged when done, else back at once (the test
    // does not wait out the visibility timeout).
    let handle = |m: ReceivedMessage| {
        let worker = worker.clone();
        let queue = queue.clone();
        let inbound = w.inbound.clone();
        async move {
            let outcome = worker.handle(&QueueRecord::from(&m)).await;
            if outcome.is_done() {
                queue.ack(&inbound, &m.receipt).await.unwrap();
            } else {
                queue
                    .change_visibility(&inbound, &m.receipt, Duration::ZERO)
                    .await
                    .unwrap();
            }
            outcome
        }
    };
    // What waits in the dead-letter queue, taken off it (a FIFO group holds its next message
    // back while one is in flight).
    let dead = || async {
        let mut bodies = Vec::new();
        for m in queue
            .receive(&dlq, 10, Duration::from_secs(60))
            .await
            .unwrap()
        {
            queue.ack(&dlq, &m.receipt).await.unwrap();
            bodies.push(m.body);
        }
        bodies
    };

    // Poison: to the dead-letter queue at once, unchanged.
    let poison = "not a sealed job";
    queue
        .send_batch(
            &w.inbound,
            vec![OutgoingMessage::new(poison).grouped("poison", "poison-1")],
        )
        .await
        .unwrap();
    assert_eq!(handle(next().await).await, Outcome::Done);

    // A job received six times without being tried, then failing its first attempts: still
    // on its queue, and stored once the store is back.
    let body = delivery("wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQUZBQ0IzQjEwNkZBMUM1QTgxMgA=");
    let accepted = w.intake.accept(Some(&w.secret.sign(&body)), &body).await;
    assert_eq!(accepted.unwrap().enqueued, 1);
    for _ in 0..6 {
        let m = next().await;
        queue
            .change_visibility(&w.inbound, &m.receipt, Duration::ZERO)
            .await
            .unwrap();
    }
    down.store(true, Ordering::SeqCst);
    for attempt in 1..MAX_ATTEMPTS {
        assert_eq!(
            handle(next().await).await,
            Outcome::Failed,
            "attempt {attempt}"
        );
    }
    down.store(false, Ordering::SeqCst);
    assert_eq!(handle(next().await).await, Outcome::Done);
    let stored = w
        .count_data(|i| i.get_s("sk").is_some_and(|sk| sk.starts_with("MSG#")))
        .await;
    assert_eq!(stored, 1);

    // A job whose every attempt fails: moved by the worker after the last, unchanged.
    let body = delivery("wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQUZBQ0IzQjEwNkZBMUM1QTgxMwA=");
    w.intake
        .accept(Some(&w.secret.sign(&body)), &body)
        .await
        .unwrap();
    down.store(true, Ordering::SeqCst);
    let mut sealed = String::new();
    for attempt in 1..=MAX_ATTEMPTS {
        let m = next().await;
        sealed = m.body.clone();
        let expected = if attempt < MAX_ATTEMPTS {
            Outcome::Failed
        } else {
            Outcome::Done
        };
        assert_eq!(handle(m).await, expected, "attempt {attempt}");
    }
    down.store(false, Ordering::SeqCst);
    let nothing = queue
        .receive(&w.inbound, 10, Duration::from_secs(60))
        .await
        .unwrap();
    assert!(nothing.is_empty(), "the exhausted job left its queue");
    let mut moved = dead().await;
    moved.sort();
    let mut expected = vec![poison.to_owned(), sealed];
    expected.sort();
    assert_eq!(
        moved, expected,
        "the poison and the exhausted job, unchanged"
    );

    // A job that kills its worker. A run that dies is a handler that never returns: here a
    // panic in the task running it.
    let body = delivery("wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQUZBQ0IzQjEwNkZBMUM1QTgxNAA=");
    w.intake
        .accept(Some(&w.secret.sign(&body)), &body)
        .await
        .unwrap();
    let dies = |m: ReceivedMessage| {
        let worker = worker.clone();
        let queue = queue.clone();
        let inbound = w.inbound.clone();
        async move {
            let record = QueueRecord::from(&m);
            let ran = tokio::spawn(async move { worker.handle(&record).await });
            assert!(ran.await.is_err(), "the run died");
            // Its visibility timeout, waited out.
            queue
                .change_visibility(&inbound, &m.receipt, Duration::ZERO)
                .await
                .unwrap();
        }
    };
    deadly.store(true, Ordering::SeqCst);
    // Its trusted receives die unguarded; then guarded runs die, but one between them returns
    // (a failure of its own), and a run that returned is not one that died.
    for _ in 0..TRUSTED_RECEIVES + UNRETURNED_LIMIT - 1 {
        dies(next().await).await;
    }
    deadly.store(false, Ordering::SeqCst);
    down.store(true, Ordering::SeqCst);
    assert_eq!(handle(next().await).await, Outcome::Failed);
    down.store(false, Ordering::SeqCst);
    deadly.store(true, Ordering::SeqCst);
    dies(next().await).await;
    let deaths_before = deaths.load(Ordering::SeqCst);
    assert_eq!(deaths_before, TRUSTED_RECEIVES + UNRETURNED_LIMIT);
    // Its next receive moves it, unchanged, without running it again.
    let m = next().await;
    let sealed = m.body.clone();
    assert_eq!(handle(m).await, Outcome::Done);
    assert_eq!(
        deaths.load(Ordering::SeqCst),
        deaths_before,
        "not run again"
    );
    deadly.store(false, Ordering::SeqCst);
    let nothing = queue
        .receive(&w.inbound, 10, Duration::from_secs(60))
        .await
        .unwrap();
    assert!(nothing.is_empty(), "the deadly job left its queue");
    assert_eq!(dead().await, vec![sealed], "the deadly job, unchanged");
}

#[tokio::test]
async fn sqs_inbound_jobs_count_their_own_attempts() {
    case(aws().await, sqs_platform_queues("attempts").await).await;
}

#[tokio::test]
async fn embedded_inbound_jobs_count_their_own_attempts() {
    let backend = embedded().await;
    let dir = tempfile::tempdir().unwrap();
    let queue = EmbeddedQueue::open(dir.path(), platform::specs()).unwrap();
    case(backend, Arc::new(queue)).await;
}
