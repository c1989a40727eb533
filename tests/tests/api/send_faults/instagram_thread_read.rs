//! A customer's read of their Instagram thread reads our earlier replies too (decision
//! 0116): Instagram names the one message the customer's app showed last, and the operator
//! must see every reply before it read, each once, in Bitrix24.

use wappline::inbound::worker::InboundWorker;

use super::early_status::{portal, READING};
use super::instagram_read::read_job_at;
use super::*;

impl Rig {
    /// The operator's replies `ims`, written 10 s apart before `now` and each sent.
    async fn replies_sent_before(&self, ims: &[u64], now: i64) -> Vec<MessageRef> {
        let mut replies = Vec::new();
        for (i, im) in ims.iter().enumerate() {
            let at = now - 60 + 10 * i as i64;
            replies.push(
                self.instagram_reply_at(&format!("reply {im}"), *im, at)
                    .await,
            );
            assert_eq!(self.deliver().await, Outcome::Done);
        }
        replies
    }
}

/// Three replies, read by the last one's `mid`: all three read, one reading post each;
/// Instagram repeating the read posts nothing more; a fourth reply stays `sent` until read,
/// and its read stops at the replies already read.
#[tokio::test]
async fn a_read_of_the_last_reply_reads_the_replies_before_it_once() {
    let r = rig(Duration::from_secs(600)).await;
    let p = portal(&r).await;
    let now = wappline::clock::now_secs();
    let replies = r.replies_sent_before(&[101u64, 102, 103], now).await;
    let sent = r.graph.sent();
    assert_eq!(sent.len(), 3);
    let read = read_job_at(&r.tenant, json!({ "mid": sent[2].id }), now);
    assert_eq!(r.inbound().process(&read).await.unwrap(), Outcome::Done);
    assert_eq!(r.inbound().process(&read).await.unwrap(), Outcome::Done);
    p.sync(&r).await;
    for (reply, im) in replies.iter().zip([101u64, 102, 103]) {
        assert_eq!(r.status(reply).await, Some(MessageStatus::Read), "{im}");
        assert_eq!(p.status_posts_of(READING, im), 1, "{im}");
    }

    let fourth = r.instagram_reply_at("reply 104", 104, now).await;
    assert_eq!(r.deliver().await, Outcome::Done);
    p.sync(&r).await;
    assert_eq!(r.status(&fourth).await, Some(MessageStatus::Sent));
    let mid = r.graph.sent()[3].id.clone();
    let read = read_job_at(&r.tenant, json!({ "mid": mid }), now + 1);
    assert_eq!(r.inbound().process(&read).await.unwrap(), Outcome::Done);
    p.sync(&r).await;
    assert_eq!(r.status(&fourth).await, Some(MessageStatus::Read));
    for im in [101u64, 102, 103, 104] {
        assert_eq!(p.status_posts_of(READING, im), 1, "{im}");
    }
}

/// Messenger's form of a read, a time with no message (`read.watermark`, "all messages
/// that were sent before or at this timestamp were read"): our replies up to it are read,
/// a later one is not.
#[tokio::test]
async fn a_watermark_reads_the_replies_up_to_its_time() {
    let r = rig(Duration::from_secs(600)).await;
    let p = portal(&r).await;
    let now = wappline::clock::now_secs();
    let early = r.instagram_reply_at("early", 201, now - 60).await;
    assert_eq!(r.deliver().await, Outcome::Done);
    let late = r.instagram_reply_at("late", 202, now - 5).await;
    assert_eq!(r.deliver().await, Outcome::Done);
    let read = read_job_at(&r.tenant, json!({ "watermark": (now - 30) * 1000 }), now);
    assert_eq!(r.inbound().process(&read).await.unwrap(), Outcome::Done);
    p.sync(&r).await;
    assert_eq!(r.status(&early).await, Some(MessageStatus::Read));
    assert_eq!(r.status(&late).await, Some(MessageStatus::Sent));
    assert_eq!(p.status_posts_of(READING, 201), 1);
    assert_eq!(p.status_posts_of(READING, 202), 0);
}

/// The read's worker stops half way along the thread: the second reply is marked read, then
/// the store's answer is lost, and the job fails before that reply's status is queued. The
/// read delivered again walks past the reply it marked itself (it is `read` now, by this
/// read) instead of stopping there: every reply ends with its one reading post.
#[tokio::test]
async fn a_read_stopped_half_way_along_the_thread_finishes_on_its_redelivery() {
    let r = rig(Duration::from_secs(600)).await;
    let p = portal(&r).await;
    let now = wappline::clock::now_secs();
    let replies = r.replies_sent_before(&[301u64, 302, 303], now).await;
    let mid = r.graph.sent()[2].id.clone();
    let read = read_job_at(&r.tenant, json!({ "mid": mid }), now);
    let second = replies[1].sk.clone();
    let lost_once = AtomicBool::new(false);
    let stopping = InboundWorker::new(
        Arc::new(HookedStore::with(r.platform.store.clone(), move |call| {
            let marks_the_second =
                matches!(call, StoreCall::Update { key, .. } if key.sk == second);
            if marks_the_second && !lost_once.swap(true, Ordering::SeqCst) {
                Verdict::RunThenFail(StoreError::Unavailable("injected: answer lost".into()))
            } else {
                Verdict::Run
            }
        })),
        r.platform.envelope.clone(),
        r.platform.tenants.clone(),
        r.queue.clone(),
    );
    let stopped = stopping.process(&read).await;
    assert!(!matches!(stopped, Ok(Outcome::Done)), "{stopped:?}");
    assert_eq!(r.status(&replies[1]).await, Some(MessageStatus::Read));
    assert_eq!(r.inbound().process(&read).await.unwrap(), Outcome::Done);
    p.sync(&r).await;
    for (reply, im) in replies.iter().zip([301u64, 302, 303]) {
        assert_eq!(r.status(reply).await, Some(MessageStatus::Read), "{im}");
        assert_eq!(p.status_posts_of(READING, im), 1, "{im}");
    }
}
