//! Instagram `comments` and `live_comments` changes → customer messages holding a
//! [`Content::Comment`].
//!
//! Payload (Instagram API with Instagram Login; Meta, "Instagram Platform > Webhooks >
//! Examples", comments payload, and the webhooks reference's `FBInstagramCommentsField`):
//! `entry[].changes[]` with `field: "comments"` and `value: {id, from: {id, username},
//! text, media: {id, media_product_type}, parent_id?}`. It carries no time of its own:
//! `entry[].time` (when Meta sent it, milliseconds) stands for it.
//!
//! A comment on the account's live video while it is broadcast comes the same way with
//! `field: "live_comments"` (the examples page: "`field` set to `comments` or
//! `live_comments`"; the reference's `FBInstagramLiveCommentsField` has the same members;
//! Meta sends them only while the media is on broadcast). It is marked `live`: its private
//! reply is accepted only during the broadcast ("Instagram Platform > Send a Private Reply to
//! a Commenter", decision 0067). Comment ids are unique across both fields, so a live
//! comment has the same provider event id shape.
//!
//! The comment id is the message id (`ig:comment:<id>` the provider event id), so a
//! redelivery is one message, and the operator's answer can name it as the private reply's
//! recipient (decision 0062).

use crate::ids::{BodyText, InstagramAccountId};
use crate::meta::event::{AccountRef, Content, CustomerId, CustomerRef, EventKind};
use crate::meta::ids::InstagramUserId;
use crate::meta::lenient::{event_text, to_unix_seconds};
use crate::meta::whatsapp::ChangeValue;

use super::{event, message_id, non_empty, WebhookBatch};

pub(super) fn instagram_comment<'a, S: BodyText<'a>>(
    value: Option<&ChangeValue<'a>>,
    account: Option<&InstagramAccountId<S>>,
    entry_time: Option<i64>,
    live: bool,
    batch: &mut WebhookBatch<S>,
) {
    let Some(account) = account else {
        batch.ignored.add("instagram:missing_account");
        return;
    };
    let from = value.and_then(|v| v.from.as_ref());
    let (Some(v), Some(comment_id), Some(from_id)) = (
        value,
        value.and_then(|v| message_id::<S>(v.id.as_ref())),
        from.and_then(|f| f.id.as_ref()),
    ) else {
        batch.ignored.add("instagram:malformed_comment");
        return;
    };
    // The business answering in the thread is not a customer.
    if from_id.as_ref() == account.as_str() {
        batch.ignored.add("instagram:own_comment");
        return;
    }
    let Some(igsid) = InstagramUserId::from_body(from_id) else {
        batch.ignored.add("instagram:unidentified_customer");
        return;
    };
    let mut customer = CustomerRef::new(CustomerId::Instagram(igsid));
    customer.username = from.and_then(|f| event_text(&f.username));
    let media = v.media.as_ref();
    let content = Content::Comment {
        comment_id: S::from_string(comment_id.as_str().to_owned()),
        text: non_empty(&v.text),
        media_id: media.and_then(|m| event_text(&m.id)),
        media_product_type: media.and_then(|m| event_text(&m.media_product_type)),
        live,
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
        S::from_string(format!("ig:comment:{comment_id}")),
        entry_time.map(to_unix_seconds),
        kind,
    ));
}

/// An Instagram `mentions` change → an [`EventKind::Mention`] (decision 0067).
///
/// Payload (Meta, "Instagram Platform > Mentions" and the IG User `mentioned_comment` /
/// `mentioned_media` references, which take the ids "included in the Webhook notification
/// payload"): `entry[].changes[]` with `field: "mentions"` and `value: {media_id,
/// comment_id}` for a mention in a comment, `value: {media_id}` for one in a caption. Nothing
/// else: not who wrote it, nor what. The event id is `ig:mention:<media_id>` plus
/// `:<comment_id>`, so a redelivery is one event.
pub(super) fn instagram_mention<'a, S: BodyText<'a>>(
    value: Option<&ChangeValue<'a>>,
    account: Option<&InstagramAccountId<S>>,
    entry_time: Option<i64>,
    batch: &mut WebhookBatch<S>,
) {
    let Some(account) = account else {
        batch.ignored.add("instagram:missing_account");
        return;
    };
    let Some(media_id) = value.and_then(|v| message_id::<S>(v.media_id.as_ref())) else {
        batch.ignored.add("instagram:malformed_mention");
        return;
    };
    let comment_id = value.and_then(|v| message_id::<S>(v.comment_id.as_ref()));
    let provider = S::from_string(match &comment_id {
        Some(c) => format!("ig:mention:{media_id}:{c}"),
        None => format!("ig:mention:{media_id}"),
    });
    let kind = EventKind::Mention {
        media_id: S::from_string(media_id.as_str().to_owned()),
        comment_id: comment_id.map(|c| S::from_string(c.as_str().to_owned())),
    };
    batch.events.push(event(
        &AccountRef::Instagram(account.clone()),
        provider,
        entry_time.map(to_unix_seconds),
        kind,
    ));
}
