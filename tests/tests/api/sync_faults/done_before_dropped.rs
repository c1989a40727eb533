//! A sync job is recorded done before its staged operation is dropped (decision 0080). The
//! fault soak posted an operator reply's status to Bitrix24 twice, from one process with no
//! answer lost: the job's delivery posted it, dropped the staged operation, then failed to
//! record the job done (the store throttled that write), or had its hold taken over by a
//! second delivery once its lease ran out. The next delivery found nothing staged, staged
//! the status afresh and posted it again. A status post cannot be looked up in the chat, so
//! only the staged operation's `sent` outcome can stop the repeat.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use wappline::bitrix::ImRef;
use wappline::consumer::Outcome;
use wappline::conversation::{Conversations, Direction, MessageStatus, NewMessage, Origin};
use wappline::crm_sync::{SyncAction, SyncJob, SyncWorker};
use wappline::faults::hooked::{HookedStore, StoreCall, StoreHook, Verdict};
use wappline::ids::{PhoneNumberId, TenantId};
use wappline::meta::{AccountRef, Content, WhatsAppPhone};
use wappline::queue::{platform, Queue};
use wappline::store::{StoreError, Table};

use super::{Pause, Rig};
use e2e_tests::harness::WA_NUMBER;

/// Bitrix24's id of the operator's reply whose status is posted.
const IM_MESSAGE: u64 = 900_001;

/// Takes one from `n` if any is left.
fn take(n: &AtomicUsize) -> bool {
    n.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| v.checked_sub(1))
        .is_ok()
}

/// The write that records a job done: its idempotency record put as `completed`.
fn completes_a_job(call: &StoreCall<'_>) -> bool {
    matches!(call, StoreCall::Put { table: Table::Dedupe, item, .. }
        if item.get_s("status") == Some("completed"))
}

/// Throttles the next n writes that record a job done (nothing is written).
struct CompletionThrottled {
    times: AtomicUsize,
}

#[async_trait]
impl StoreHook for CompletionThrottled {
    async fn before(&self, call: &StoreCall<'_>) -> Verdict {
        if completes_a_job(call) && take(&self.times) {
            return Verdict::Fail(StoreError::Unavailable("injected: throttled".into()));
        }
        Verdict::Run
    }
}

/// Stops its caller at the first write that records a job done, until the pause is let go:
/// a delivery held up (a loaded machine) after its post was answered and recorded.
struct PausesAtCompletion {
    seen: AtomicUsize,
    pause: Pause,
}

#[async_trait]
impl StoreHook for PausesAtCompletion {
    async fn before(&self, call: &StoreCall<'_>) -> Verdict {
        if completes_a_job(call) && self.seen.fetch_add(1, Ordering::SeqCst) == 0 {
            self.pause.stop().await;
        }
        Verdict::Run
    }
}

/// Customer 0's conversation, synced, with an operator's reply in it that Bitrix24 knows as
/// `IM_MESSAGE`; the sync job of the reply's `delivered` status is queued.
async fn a_delivered_status_queued(rig: &Rig, normal: &SyncWorker) {
    rig.customers_write(1, 1, "status").await;
    while rig.sync_depth().await > 0 {
        rig.round(normal).await;
    }
    let platform = rig.h.server.platform();
    let tenant = TenantId::parse(&rig.tenant).unwrap();
    let conversations = Conversations::new(
        tenant.clone(),
        platform.store.clone(),
        platform.envelope.clone(),
    );
    let account = AccountRef::WhatsApp(PhoneNumberId::parse(WA_NUMBER).unwrap());
    let conversation = conversations
        .conversation_of_phone(&account, &WhatsAppPhone::parse("16505550000").unwrap())
        .await
        .unwrap()
        .expect("customer 0 wrote");
    let reply = NewMessage {
        provider_message_id: "wamid.reply.delivered".into(),
        direction: Direction::Outbound,
        origin: Origin::Operator,
        content: Content::Text {
            body: "on its way".into(),
        },
        at_ms: wappline::clock::now_millis(),
        reply_to: None,
        crm_im: Some(ImRef {
            chat_id: 901,
            message_id: IM_MESSAGE,
        }),
        template: None,
        written_with: Default::default(),
    };
    let (at, _) = conversations
        .store_message(&account, &conversation, reply, 30)
        .await
        .unwrap();
    let job = SyncJob::new(
        tenant,
        conversation,
        SyncAction::Status {
            message_sk: at.sk,
            status: MessageStatus::Delivered,
            failure: None,
        },
        "meta-status-delivered",
    );
    rig.h
        .server
        .queue()
        .send_batch(&platform::name(platform::SYNC), vec![job.to_message()])
        .await
        .unwrap();
}

/// The reply's delivery statuses Bitrix24 got.
fn status_posts(rig: &Rig) -> usize {
    rig.fake
        .batch_commands()
        .into_iter()
        .chain(rig.fake.calls())
        .filter(|c| c.method == "imconnector.send.status.delivery")
        .count()
}

/// Runs the sync queue with `worker` until it is empty, the clock moved past every lease
/// and retry delay between rounds.
async fn run_out(rig: &Rig, worker: &SyncWorker) {
    rig.run_until_empty(worker, 50, |_| Duration::from_secs(200))
        .await;
}

/// The write recording the job done is throttled once, after the status was posted and its
/// answer recorded: the retry finds the staged operation `sent` and posts nothing more.
#[tokio::test]
async fn a_status_whose_job_could_not_be_recorded_done_is_posted_once() {
    let rig = Rig::start().await;
    let normal = rig.worker(rig.h.server.platform().store.clone());
    a_delivered_status_queued(&rig, &normal).await;
    let throttled = rig.worker(Arc::new(HookedStore::new(
        rig.h.server.platform().store.clone(),
        CompletionThrottled {
            times: AtomicUsize::new(1),
        },
    )));
    rig.round(&throttled).await;
    assert_eq!(status_posts(&rig), 1, "posted by the first delivery");
    assert_eq!(rig.sync_depth().await, 1, "the job is retried");
    run_out(&rig, &throttled).await;
    assert_eq!(status_posts(&rig), 1, "posted once");
    assert_eq!(rig.dead_lettered().await, 0);
    rig.h.server.shutdown().await;
}

/// Delivery A posts the status and records the answer, then stalls before recording the job
/// done, past its lease and the record's visibility; delivery B takes the job over and
/// finishes it. Neither posts it a second time, and A leaves the job to B.
#[tokio::test]
async fn a_job_taken_over_after_its_post_does_not_post_again() {
    let rig = Rig::start().await;
    let normal = rig.worker(rig.h.server.platform().store.clone());
    a_delivered_status_queued(&rig, &normal).await;
    let pause = Pause::default();
    let stalling = rig.worker(Arc::new(HookedStore::new(
        rig.h.server.platform().store.clone(),
        PausesAtCompletion {
            seen: AtomicUsize::new(0),
            pause: pause.clone(),
        },
    )));
    let a_outcome = rig
        .taken_over(&stalling, &normal, &pause, || {
            assert_eq!(status_posts(&rig), 1, "A posted it")
        })
        .await;
    assert!(
        !matches!(a_outcome, Outcome::Failed),
        "A leaves the job to B: {a_outcome:?}"
    );
    run_out(&rig, &normal).await;
    assert_eq!(status_posts(&rig), 1, "posted once");
    assert_eq!(rig.dead_lettered().await, 0);
    rig.h.server.shutdown().await;
}
