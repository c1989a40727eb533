//! An attempt Meta may have taken, settled before the send's checks run again (decision
//! 0127): a delivery stopped between the Graph API call and recording Meta's answer, and
//! before its redelivery the customer service window closed. Before, the redelivery ran the
//! window check first and failed the message: the operator was told a reply the customer got
//! did not go. Now Meta's status settles it first (sent), and a delivery that must still wait
//! for that status waits instead of failing.

use wappline::store::{Key, Update};

use super::*;

/// The customer's last message as 25 hours old: the window closed since the attempt.
async fn close_the_window(r: &Rig, at: &MessageRef) {
    let partition = r.conversations().partition(&at.conversation);
    r.platform
        .store
        .update(
            Table::Data,
            &Key::new(partition, "META"),
            Update::new().set("last_inbound_at", wappline::clock::now_secs() - 25 * 3600),
            None,
        )
        .await
        .unwrap();
}

/// The first delivery sends and stops before recording anything of Meta's answer.
async fn sent_and_stopped(r: &Rig) {
    r.store.hook().fail_records.store(1000, Ordering::SeqCst);
    r.store.hook().fail_part_saves.store(1000, Ordering::SeqCst);
    assert!(matches!(r.deliver().await, Outcome::RetryAfter(_)));
    r.store.hook().fail_records.store(0, Ordering::SeqCst);
    r.store.hook().fail_part_saves.store(0, Ordering::SeqCst);
    assert_eq!(r.sends_to_customer(), 1);
}

/// Meta's `sent` of the first send, with the tag it carried.
async fn meta_confirms_the_first_send(r: &Rig) -> String {
    let sent = r.graph.sent().remove(0);
    let tag = sent.body["biz_opaque_callback_data"].as_str().unwrap();
    r.status_webhook(&sent.id, tag).await;
    sent.id
}

#[tokio::test]
async fn a_reply_meta_took_is_sent_though_the_window_closed_since() {
    let r = rig(Duration::from_secs(600)).await;
    let at = r.reply("your parcel left today").await;
    sent_and_stopped(&r).await;
    let wamid = meta_confirms_the_first_send(&r).await;
    close_the_window(&r, &at).await;

    assert_eq!(r.deliver().await, Outcome::Done);
    assert_eq!(r.sends_to_customer(), 1, "{:?}", r.sends_per_tag());
    let stored = r.message(&at).await;
    assert_eq!(stored.status, Some(MessageStatus::Sent), "not failed");
    assert_eq!(stored.sent_provider_id.as_deref(), Some(wamid.as_str()));
}

#[tokio::test]
async fn a_reply_whose_outcome_is_unknown_waits_though_the_window_closed_since() {
    let r = rig(Duration::from_secs(600)).await;
    let at = r.reply("your parcel left today").await;
    sent_and_stopped(&r).await;
    close_the_window(&r, &at).await;

    match r.deliver().await {
        Outcome::RetryAfter(wait) => assert!(wait >= Duration::from_secs(1), "{wait:?}"),
        other => panic!("decided before Meta's status could come: {other:?}"),
    }
    assert_eq!(r.status(&at).await, None, "neither sent nor failed yet");
    // The status comes: sent.
    meta_confirms_the_first_send(&r).await;
    assert_eq!(r.deliver().await, Outcome::Done);
    assert_eq!(r.status(&at).await, Some(MessageStatus::Sent));
    assert_eq!(r.sends_to_customer(), 1);
}

/// The text of a reply with two photos (three sends: a single photo would carry the text as
/// its caption) went out and its answer was lost; the window closed before the redelivery.
/// The text is recorded as sent (its statuses find the message), and the photos, not sent
/// yet, are refused by the window check.
#[tokio::test]
async fn the_part_meta_took_is_recorded_before_the_rest_is_refused() {
    let r = rig(Duration::from_secs(600)).await;
    let at = r.reply_with_photos("the photos you asked for").await;
    sent_and_stopped(&r).await;
    let wamid = meta_confirms_the_first_send(&r).await;
    close_the_window(&r, &at).await;
    assert_eq!(r.deliver().await, Outcome::Done);
    assert_eq!(r.sends_to_customer(), 1, "the photos were not sent");
    let stored = r.message(&at).await;
    assert_eq!(stored.sent_provider_id.as_deref(), Some(wamid.as_str()));
    assert_eq!(
        stored.status,
        Some(MessageStatus::Failed),
        "the photos did not go"
    );
}

/// The text of a reply with two photos went out, and its recording stopped between the job's
/// progress (saved) and the message (not written): the next delivery, which skips the part
/// the progress holds, records the text's wamid on the message before it sends the photos,
/// so the text's statuses and reads find the message.
#[tokio::test]
async fn a_part_saved_on_the_progress_but_not_on_the_message_is_recorded_again() {
    let r = rig(Duration::from_secs(600)).await;
    let at = r.reply_with_photos("the photos you asked for").await;
    // The message's writes fail, the progress's do not.
    r.store.hook().fail_records.store(1000, Ordering::SeqCst);
    assert!(matches!(r.deliver().await, Outcome::RetryAfter(_)));
    r.store.hook().fail_records.store(0, Ordering::SeqCst);
    let text_wamid = r.graph.sent()[0].id.clone();
    assert_eq!(r.sends_to_customer(), 1);

    assert_eq!(r.deliver().await, Outcome::Done);
    assert_eq!(
        r.sends_to_customer(),
        3,
        "the photos went, the text not again"
    );
    let found = r
        .conversations()
        .find_message(&wa(), &text_wamid)
        .await
        .unwrap();
    assert_eq!(
        found,
        Some(at.clone()),
        "the text's wamid finds the message"
    );
    assert_eq!(r.status(&at).await, Some(MessageStatus::Sent));
}
