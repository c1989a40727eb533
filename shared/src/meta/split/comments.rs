//! Instagram `comments` changes → customer messages holding a [`Content::Comment`].
//!
//! Payload (Instagram API with Instagram Login; Meta, "Instagram Platform > Webhooks >
//! Examples", comments payload, and the webhooks reference's `FBInstagramCommentsField`):
//! `entry[].changes[]` with `field: "comments"` and `value: {id, from: {id, username},
//! text, media: {id, media_product_type}, parent_id?}`. It carries no time of its own:
//! `entry[].time` (when Meta sent it, milliseconds) stands for it.
//!
//! The comment id is the message id (`ig:comment:<id>` the provider event id), so a
//! redelivery is one message, and the operator's answer can name it as the private reply's
//! recipient (decision 0062).

use crate::ids::InstagramAccountId;
use crate::meta::event::{AccountRef, Content, CustomerId, CustomerRef, EventKind};
use crate::meta::ids::InstagramUserId;
use crate::meta::lenient::{own, to_unix_seconds};
use crate::meta::whatsapp::ChangeValue;

use super::{event, message_id, non_empty, WebhookBatch};

pub(super) fn instagram_comment(
    value: Option<&ChangeValue<'_>>,
    account: Option<&InstagramAccountId>,
    entry_time: Option<i64>,
    batch: &mut WebhookBatch,
) {
    let Some(account) = account else {
        batch.ignored.add("instagram:missing_account");
        return;
    };
    let from = value.and_then(|v| v.from.as_ref());
    let (Some(v), Some(comment_id), Some(from_id)) = (
        value,
        value.and_then(|v| message_id(v.id.as_deref())),
        from.and_then(|f| f.id.as_deref()),
    ) else {
        batch.ignored.add("instagram:malformed_comment");
        return;
    };
    // The business answering in the thread is not a customer.
    if from_id == account.as_str() {
        batch.ignored.add("instagram:own_comment");
        return;
    }
    let Ok(igsid) = InstagramUserId::parse(from_id) else {
        batch.ignored.add("instagram:unidentified_customer");
        return;
    };
    let mut customer = CustomerRef::new(CustomerId::Instagram(igsid));
    customer.username = from.and_then(|f| own(&f.username));
    let media = v.media.as_ref();
    let content = Content::Comment {
        comment_id: comment_id.as_str().to_owned(),
        text: non_empty(&v.text),
        media_id: media.and_then(|m| own(&m.id)),
        media_product_type: media.and_then(|m| own(&m.media_product_type)),
    };
    let kind = EventKind::CustomerMessage {
        customer,
        message_id: comment_id.clone(),
        content,
        reply_to: None,
        referral: None,
        referred_product: None,
        forwarded: false,
        frequently_forwarded: false,
    };
    batch.events.push(event(
        &AccountRef::Instagram(account.clone()),
        format!("ig:comment:{comment_id}"),
        entry_time.map(to_unix_seconds),
        kind,
    ));
}
