//! The inbound worker counts each job's own failed attempts and dead-letters it itself
//! (decision 0069), on the embedded queue and on SQS (moto):
//! - poison goes to the dead-letter queue at its first receive, unchanged;
//! - receives that were no attempt (a record skipped behind its group's failing head, a lost
//!   receive, a crash) do not use up a job's tries;
//! - a job whose own attempts all fail is moved to the dead-letter queue, unchanged, after
//!   the last, and nothing else is.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use wappline::consumer::{Outcome, QueueRecord, RecordHandler};
use wappline::faults::hooked::{HookedStore, Verdict};
use wappline::own_attempts::MAX_ATTEMPTS;
use wappline::queue::embedded::EmbeddedQueue;
use wappline::queue::sqs::{provision_queues, SqsQueue};
use wappline::queue::{platform, OutgoingMessage, Queue, ReceivedMessage};
use wappline::store::{StoreError, Table, TableStore};
use wappline::tenant::ChannelKind;

use crate::backends::{aws, embedded, Backend};
use crate::sealed_inbound::inbound_world;
use crate::support::{aws_config, unique};

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
    // The data table refuses writes while `down` is set: the job fails on our side.
    let down = Arc::new(AtomicBool::new(false));
    let d = down.clone();
    let store: Arc<dyn TableStore> = Arc::new(HookedStore::with(backend.store.clone(), move |c| {
        let data_write = c.writes() && c.targets().iter().any(|(t, _)| *t == Table::Data);
        if d.load(Ordering::SeqCst) && data_write {
            Verdict::Fail(StoreError::Unavailable("injected: down".into()))
        } else {
            Verdict::Run
        }
    }));
    let hooked = Backend {
        store,
        vault: backend.vault.clone(),
        _dir: None,
    };
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
    let dead = || async {
        queue
            .receive(&dlq, 10, Duration::from_secs(60))
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.body)
            .collect::<Vec<_>>()
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
    let mut dead = dead().await;
    dead.sort();
    let mut expected = vec![poison.to_owned(), sealed];
    expected.sort();
    assert_eq!(
        dead, expected,
        "the poison and the exhausted job, unchanged"
    );
}

#[tokio::test]
async fn sqs_inbound_jobs_count_their_own_attempts() {
    let config = aws_config().await;
    let client = aws_sdk_sqs::Client::new(&config);
    let urls = provision_queues(&client, &unique("attempts"), &platform::specs())
        .await
        .unwrap();
    case(aws().await, Arc::new(SqsQueue::new(client, urls))).await;
}

#[tokio::test]
async fn embedded_inbound_jobs_count_their_own_attempts() {
    let backend = embedded().await;
    let dir = tempfile::tempdir().unwrap();
    let queue = EmbeddedQueue::open(dir.path(), platform::specs()).unwrap();
    case(backend, Arc::new(queue)).await;
}
