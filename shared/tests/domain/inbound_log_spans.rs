//! A failed inbound job's correlation ids stay on its own log lines (decision 0038). The
//! fault soak showed other tenants' jobs logging under one failed job's span: its ids (tenant,
//! queue message, provider reference) stayed the current span of a worker thread while the
//! job counted its failed attempt, and every task that thread ran meanwhile logged under
//! them.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use wappline::consumer::{Outcome, QueueRecord, RecordHandler};
use wappline::faults::hooked::{HookedStore, Verdict};
use wappline::logging::MemoryLog;
use wappline::queue::embedded::EmbeddedQueue;
use wappline::queue::{platform, Queue};
use wappline::store::{StoreError, Table, TableStore};
use wappline::tenant::ChannelKind;

use crate::backends::embedded;
use crate::sealed_inbound::{inbound_world, is_attempt_bookkeeping};

// One thread runs every task, as a Lambda invocation's runtime thread runs the handler and
// whatever else is ready: a span left entered across an await is then the current span of
// the next task polled.
#[tokio::test(flavor = "current_thread")]
async fn a_failed_jobs_ids_are_not_on_other_tasks_log_lines() {
    // The binary's global capture: a subscriber of this thread only would miss the lines
    // whose call sites the other inbound tests, running at the same time, reached first
    // (tracing caches a call site as disabled for every thread). This test's lines are picked
    // out by the queue message's id and the bystander's own message.
    let captured = MemoryLog::global("info");

    // The data table refuses the job's writes: the job fails on our side, and the worker
    // then records the failed attempt (its own bookkeeping, which the store takes). Unlike
    // `inbound_attempts`' switch, which refuses that write too, the attempt's write must
    // reach the store and wait for its commit: that wait is where the span stayed entered.
    let backend = embedded().await;
    let down = Arc::new(AtomicBool::new(false));
    let d = down.clone();
    let store: Arc<dyn TableStore> = Arc::new(HookedStore::with(backend.store.clone(), move |c| {
        let bookkeeping = is_attempt_bookkeeping(c);
        let data_write = c.writes() && c.targets().iter().any(|(t, _)| *t == Table::Data);
        if d.load(Ordering::SeqCst) && data_write && !bookkeeping {
            Verdict::Fail(StoreError::Unavailable("injected: down".into()))
        } else {
            Verdict::Run
        }
    }));
    let hooked = backend.with_store(store);
    let dir = tempfile::tempdir().unwrap();
    let queue: Arc<dyn Queue> =
        Arc::new(EmbeddedQueue::open(dir.path(), platform::specs()).unwrap());
    let w = inbound_world(
        &hooked,
        &queue,
        &[(ChannelKind::WhatsApp, "106540352242922")],
    )
    .await;

    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../events/meta-webhook/whatsapp-text.json");
    let body = std::fs::read(path).unwrap();
    let accepted = w.intake.accept(Some(&w.secret.sign(&body)), &body).await;
    assert_eq!(accepted.unwrap().enqueued, 1);
    let received = queue
        .receive(&w.inbound, 1, Duration::from_secs(60))
        .await
        .unwrap();
    let record = QueueRecord::from(&received[0]);

    // Another task of the same thread logs while the job fails and counts its attempt.
    down.store(true, Ordering::SeqCst);
    let running = Arc::new(AtomicBool::new(true));
    let r = running.clone();
    let bystander = tokio::spawn(async move {
        while r.load(Ordering::SeqCst) {
            tracing::info!("bystander of the failed job");
            tokio::time::sleep(Duration::from_micros(100)).await;
        }
    });
    tokio::task::yield_now().await;
    let outcome = w.worker.handle(&record).await;
    running.store(false, Ordering::SeqCst);
    bystander.await.unwrap();
    assert_eq!(outcome, Outcome::Failed);

    let lines = captured.json_lines();
    let failed = lines
        .iter()
        .find(|l| {
            l["fields"]["message"] == "inbound job failed"
                && l["fields"]["message_id"] == record.message_id.as_str()
        })
        .expect("the failure is logged");
    assert_eq!(
        failed["span"]["name"], "inbound",
        "the failure carries the job's ids: {failed}"
    );
    let bystanders: Vec<_> = lines
        .iter()
        .filter(|l| l["fields"]["message"] == "bystander of the failed job")
        .collect();
    assert!(
        bystanders.len() >= 2,
        "the other task logged while the job ran"
    );
    for line in bystanders {
        assert!(
            line.get("span").is_none(),
            "another task's line carries the failed job's ids: {line}"
        );
    }
}
