//! An Instagram comment's private reply records its attempt before the Graph API call, like
//! every other send (decision 0136). Before, it recorded none: a contact erasure that began
//! while the reply was on its way was never read again before the call (decision 0122), and
//! a redelivery after a lost answer sent the reply again at once, while the first call could
//! still be in flight, and then failed the message on Meta's refusal of a second reply
//! although the customer had the first.

use e2e_tests::harness::{sample, IG_ACCOUNT};
use serde_json::Value;
use wappline::meta::InstagramUserId;
use wappline::outbound::private_reply::EARLIER_ATTEMPT_WENT;

use super::*;
use crate::outbound_worker::{ig, statuses};

/// The commenter (the comment sample's `from.id`).
const IGSID: &str = "1254459154682919";
const COMMENT: &str = "17865799348089039";

impl Rig {
    /// The customer commented on the business's reel a minute ago and never wrote a direct
    /// message; the operator answers: the comment's private reply, queued.
    async fn comment_answered(&self, text: &str) -> MessageRef {
        self.graph.add_comment(IG_ACCOUNT, COMMENT, IGSID, 60);
        let mut v: Value = serde_json::from_slice(&sample("instagram-comment.json")).unwrap();
        v["entry"][0]["time"] = json!((wappline::clock::now_secs() - 60) * 1000);
        v["entry"][0]["changes"][0]["value"]["id"] = json!(COMMENT);
        self.inbound_webhook(&serde_json::to_vec(&v).unwrap()).await;
        let customer = CustomerRef::new(CustomerId::Instagram(
            InstagramUserId::parse(IGSID).unwrap(),
        ));
        let conversation = self
            .conversations()
            .record_customer(&ig(), &customer, None, 90)
            .await
            .unwrap();
        self.world
            .reply(&conversation, operator(text, Vec::new(), 78))
            .await
    }

    /// The private replies Meta took.
    fn private_replies(&self) -> usize {
        self.graph.private_replies().len()
    }
}

/// The person's erasure begins while the reply's attempt is recorded: the reply does not go.
#[tokio::test]
async fn an_erasure_begun_while_a_private_reply_is_recorded_sends_nothing() {
    let r = rig(Duration::from_secs(600)).await;
    let at = r.comment_answered("It is 49 EUR, in stock.").await;
    r.erasure_begins_as_the_attempt_is_recorded(&at).await;
    assert_eq!(r.private_replies(), 0, "nothing sent to the person");
    assert_eq!(r.status(&at).await, None, "never sent");
}

/// Meta took the reply, and every write of it failed (a process dying between Meta's answer
/// and our write). The redelivery waits out the reconcile window (a Graph API call's whole
/// timeout and a second: the first call may still be on its way) instead of replying again
/// at once. After the window the reply is tried again; Meta refuses a second reply to the
/// comment, and the operator reads that the first one most likely reached the customer, not
/// that it may show twice (a comment takes one reply).
#[tokio::test]
async fn a_private_reply_whose_answer_was_lost_waits_and_is_explained() {
    let r = rig_with(Duration::ZERO, Some(Duration::from_millis(200))).await;
    let at = r.comment_answered("It is 49 EUR, in stock.").await;
    r.store.hook().fail_records.store(1000, Ordering::SeqCst);
    assert!(matches!(r.deliver().await, Outcome::RetryAfter(_)));
    r.store.hook().fail_records.store(0, Ordering::SeqCst);
    assert_eq!(r.private_replies(), 1);
    r.sync_jobs().await;

    match r.deliver().await {
        Outcome::RetryAfter(wait) => assert!(wait >= Duration::from_millis(500), "{wait:?}"),
        other => panic!("replied again at once: {other:?}"),
    }
    assert_eq!(r.private_replies(), 1);

    tokio::time::sleep(Duration::from_millis(2_100)).await;
    assert_eq!(r.deliver().await, Outcome::Done);
    assert_eq!(r.private_replies(), 1, "Meta takes one reply per comment");
    assert_eq!(r.status(&at).await, Some(MessageStatus::Failed));
    assert_eq!(
        statuses(&r.sync_jobs().await),
        [(MessageStatus::Failed, Some(EARLIER_ATTEMPT_WENT.to_owned()))],
        "one note, that the first reply most likely went"
    );
}
