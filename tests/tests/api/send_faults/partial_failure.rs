//! A reply of several parts whose later part Meta refuses for good after it reported an
//! earlier part delivered: the text of a reply reached the customer, its photos did not. The
//! message keeps `delivered` (`failed` does not outrank it), and the operator is still told,
//! once, which part did not go out and why. Before, the refused move queued nothing, and the
//! operator saw the reply as delivered, photos and all.

use wappline::outbound::OperatorFile;

use super::early_status::{portal, DELIVERY};
use super::*;

const PHOTO: &[u8] = b"\xff\xd8\xff\xe0fake jpeg bytes\xff\xd9";
/// Our reason for Meta's 131053 (`outbound::reasons`), on the second of three parts.
const REASON: &str = "part 2 of 3: 131053: the media file could not be processed by WhatsApp";

impl Rig {
    /// An operator's reply of a text and two photos (three sends) to a customer who wrote a
    /// minute ago.
    pub(super) async fn reply_with_photos(&self, text: &str) -> MessageRef {
        let file = |name: &str| OperatorFile {
            url: self.graph.add_cdn(name, "image/jpeg", PHOTO),
            name: Some(name.into()),
            mime_type: Some("image/jpeg".into()),
        };
        let files = vec![file("1.jpg"), file("2.jpg")];
        let mut customer = CustomerRef::new(CustomerId::WhatsAppPhone(
            WhatsAppPhone::parse(PHONE).unwrap(),
        ));
        customer.phone = Some(WhatsAppPhone::parse(PHONE).unwrap());
        let conversation = self.world.customer(&wa(), customer, 60).await;
        self.world
            .reply(&conversation, operator(text, files, 77))
            .await
    }
}

#[tokio::test]
async fn a_later_part_refused_after_an_earlier_part_was_delivered_reaches_the_operator_once() {
    let r = rig(Duration::from_secs(600)).await;
    let p = portal(&r).await;
    let at = r.reply_with_photos("the photos you asked for").await;
    // The text goes; Meta is down for the first photo, then refuses it for good.
    r.graph.pass_sends(1);
    r.graph.fail_sends(1, GraphFailure::ServerError);
    r.graph.fail_sends(1, GraphFailure::Code(131053));
    let first = r.deliver().await;
    assert!(
        matches!(first, Outcome::RetryAfter(_)),
        "{first:?}: {:?}",
        r.graph.sent()
    );
    assert_eq!(r.sends_to_customer(), 1, "the text only");
    r.meta_reports("delivered").await;
    assert_eq!(r.status(&at).await, Some(MessageStatus::Delivered));

    assert_eq!(r.deliver().await, Outcome::Done);
    p.sync(&r).await;
    assert_eq!(p.notes_saying(REASON), 1);
    assert_eq!(
        r.status(&at).await,
        Some(MessageStatus::Delivered),
        "the text was delivered"
    );
    assert_eq!(
        p.status_posts(DELIVERY),
        1,
        "Meta's `delivered` of the text (our `sent` waits for every part)"
    );

    // Delivered again without its idempotency record (a crash after the note was queued,
    // before the job was recorded done; the queue's at-least-once): the photos are not
    // tried again, and the note is the same sync job, posted once.
    let refused = r.graph.sent().len();
    r.forget_done(&at).await;
    assert_eq!(r.redeliver(&at).await, Outcome::Done);
    p.sync(&r).await;
    assert_eq!(
        r.graph.sent().len(),
        refused,
        "nothing sent after the operator was told it failed"
    );
    assert_eq!(p.notes_saying(REASON), 1);
    assert_eq!(r.status(&at).await, Some(MessageStatus::Delivered));
}
