//! Meta's statuses of an earlier copy of a reply (decision 0111). The process crashed after
//! Meta took the reply's send and before its wamid was written; no status came within the
//! reconcile window, so the redelivery sent the reply again (decision 0055's at-least-once):
//! the customer has two copies. Meta reports on both, and the first copy's `delivered` or
//! `read` says the customer has the reply: it reaches the reply's message and the
//! operator's portal, once, like the second copy's. Its `failed` says nothing of the copy
//! the message holds. Found by the fault soak starved of CPU, which reported `read` for the
//! first copy only, and lost it.

use super::early_status::{portal, status_job, FAILED_REASON, READING};
use super::*;

/// A Graph API call limited to 200 ms: a reconcile window of two seconds (decision 0110).
const CALL: Duration = Duration::from_millis(200);
/// Past the window, counted in whole seconds of the attempt's age.
const PAST_THE_WINDOW: Duration = Duration::from_millis(2_100);

impl Rig {
    /// Meta's `status` of the `n`th send made (0: the first copy), through the inbound worker.
    async fn meta_reports_on(&self, n: usize, status: &str) {
        let sent = self.graph.sent().remove(n);
        let job = status_job(&self.tenant, &sent, status);
        assert_eq!(self.inbound().process(&job).await.unwrap(), Outcome::Done);
    }

    /// The reply sent once, the process crashed before writing its wamid, and no status came
    /// within the window.
    async fn first_copy_lost_track_of(&self) {
        self.crash_after_the_send().await;
        tokio::time::sleep(PAST_THE_WINDOW).await;
    }
}

/// The second copy is recorded when the first copy's `read` comes: it reaches the reply.
/// Meta's repeats, the second copy's own statuses and the first copy's `failed` change
/// nothing more.
#[tokio::test]
async fn a_read_of_the_first_copy_after_the_second_is_recorded_reaches_the_portal_once() {
    let r = rig_with(Duration::ZERO, Some(CALL)).await;
    let p = portal(&r).await;
    let at = r.reply("sent twice").await;
    r.first_copy_lost_track_of().await;
    assert_eq!(r.deliver().await, Outcome::Done);
    assert_eq!(r.sends_to_customer(), 2, "{:?}", r.sends_per_tag());
    let stored = r.conversations().message(&at).await.unwrap().unwrap();
    assert_eq!(
        stored.sent_provider_id.as_deref(),
        Some(r.graph.sent()[1].id.as_str()),
        "the message holds the second copy"
    );

    r.meta_reports_on(0, "read").await;
    p.sync(&r).await;
    assert_eq!(r.status(&at).await, Some(MessageStatus::Read));
    assert_eq!(p.status_posts(READING), 1);

    r.meta_reports_on(0, "read").await;
    r.meta_reports_on(1, "delivered").await;
    r.meta_reports_on(1, "read").await;
    r.meta_reports_on(0, "failed").await;
    p.sync(&r).await;
    assert_eq!(r.status(&at).await, Some(MessageStatus::Read));
    assert_eq!(p.status_posts(READING), 1);
    assert_eq!(p.notes_saying(FAILED_REASON), 0);
    assert_eq!(r.sends_to_customer(), 2);
}

/// The first copy's `read` comes while the second copy's wamid is being written: kept on the
/// send's progress, and applied by the send worker once it recorded the second copy.
#[tokio::test]
async fn a_read_of_the_first_copy_before_the_second_is_recorded_reaches_the_portal_once() {
    let r = rig_with(Duration::ZERO, Some(CALL)).await;
    let p = portal(&r).await;
    let at = r.reply("read while sent again").await;
    r.first_copy_lost_track_of().await;
    // The next write to the data table after the second attempt is recorded: its wamid's.
    r.store.hook().attempted.store(false, Ordering::SeqCst);
    r.meta_reports_before_the_wamid_write("read");
    assert_eq!(r.deliver().await, Outcome::Done);
    assert!(
        r.store.hook().meanwhile.lock().unwrap().is_none(),
        "the status came before the second copy's wamid was written"
    );
    assert_eq!(r.sends_to_customer(), 2, "{:?}", r.sends_per_tag());
    p.sync(&r).await;
    assert_eq!(r.status(&at).await, Some(MessageStatus::Read));
    assert_eq!(p.status_posts(READING), 1);

    r.meta_reports_on(0, "read").await;
    assert_eq!(r.redeliver(&at).await, Outcome::Done);
    p.sync(&r).await;
    assert_eq!(p.status_posts(READING), 1);
    assert_eq!(r.sends_to_customer(), 2);
}

/// A status naming an attempt that was never made (a later number than the one on record)
/// goes nowhere: the tag is ours, the attempt is not.
#[tokio::test]
async fn a_status_of_an_attempt_not_yet_made_goes_nowhere() {
    let r = rig(Duration::from_secs(600)).await;
    let p = portal(&r).await;
    let at = r.reply("one copy").await;
    r.crash_after_the_send().await;
    let mut sent = r.graph.sent().remove(0);
    let tag = sent.body["biz_opaque_callback_data"].as_str().unwrap();
    sent.body["biz_opaque_callback_data"] = json!(tag.replace(".0.1", ".0.2"));
    let job = status_job(&r.tenant, &sent, "read");
    assert_eq!(r.inbound().process(&job).await.unwrap(), Outcome::Done);
    assert!(matches!(r.deliver().await, Outcome::RetryAfter(_)));
    p.sync(&r).await;
    assert_eq!(p.status_posts(READING), 0);
    assert_eq!(r.status(&at).await, None, "its send not recorded yet");
}
