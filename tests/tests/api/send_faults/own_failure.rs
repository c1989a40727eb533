//! The send worker's own `failed` (decision 0078): Meta refused the send for good, the worker
//! moved the message to `failed`, and its process died before the sync job with the
//! operator's note was queued. The redelivery finds the message failed and does not send it
//! again; it queues the note again from the reason kept on the send's progress. The CRM sync
//! worker runs against the Bitrix24 fake, which counts the notes the operator got.

use wappline::outbound::OutboundJob;

use super::early_status::portal;
use super::*;

/// Our reason for Meta's 131026 (`outbound::reasons`).
const REASON: &str = "131026: message undeliverable";

#[tokio::test]
async fn our_own_failure_reaches_the_operator_once_after_a_crash_before_its_note() {
    let r = rig(Duration::from_secs(600)).await;
    let p = portal(&r).await;
    let at = r.reply("undeliverable").await;
    r.graph.fail_sends(1, GraphFailure::Code(131026));
    r.store.hook().lose_failed_moves.store(1, Ordering::SeqCst);
    assert!(matches!(r.deliver().await, Outcome::RetryAfter(_)));
    assert_eq!(
        r.store.hook().lose_failed_moves.load(Ordering::SeqCst),
        0,
        "the move was made, then the process died"
    );
    assert_eq!(r.status(&at).await, Some(MessageStatus::Failed));
    p.sync(&r).await;
    assert_eq!(p.notes_saying(REASON), 0, "no note queued yet");

    // The redelivery: the message failed before, so nothing is sent; the note is queued.
    assert_eq!(r.deliver().await, Outcome::Done);
    p.sync(&r).await;
    assert_eq!(p.notes_saying(REASON), 1);
    assert_eq!(r.sends_to_customer(), 0, "{:?}", r.sends_per_tag());
    assert_eq!(r.status(&at).await, Some(MessageStatus::Failed));

    // Delivered again after it was done (the queue's at-least-once), and once more without
    // its idempotency record (a crash after the note was queued, before the job was
    // acknowledged): the same sync job, posted once.
    let job = OutboundJob::new(r.tenant.clone(), &at);
    let record = |id: &str| QueueRecord {
        message_id: id.into(),
        body: serde_json::to_string(&job).unwrap(),
        receive_count: 3,
        group_id: None,
    };
    assert_eq!(r.worker.handle(&record("again")).await, Outcome::Done);
    r.forget_done(&at).await;
    assert_eq!(r.worker.handle(&record("forgotten")).await, Outcome::Done);
    p.sync(&r).await;
    assert_eq!(p.notes_saying(REASON), 1);
    assert_eq!(r.sends_to_customer(), 0);
}
