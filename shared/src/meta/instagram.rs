//! Serde models of Instagram Messaging webhook payloads (`object: "instagram"`), as Meta's
//! Instagram Platform and Messenger Platform references document them. Tolerant like the
//! WhatsApp models: unknown fields ignored, everything optional, items read one by one,
//! strings borrowed from the body.
//!
//! Who is who: `entry[].id` is the business's Instagram professional account. For a
//! customer's message `sender` is the customer (IGSID) and `recipient` the business; for an
//! echo (`message.is_echo`, sent by the business from the Instagram app or the API) it is the
//! other way round. Timestamps are milliseconds.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;

use super::item::Item;
use super::lenient;

/// `entry[].messaging[]`: exactly one of `message`, `message_edit`, `reaction`, `read`,
/// `postback` (or a field we do not relay, such as `referral` alone, named by `other`).
#[derive(Debug, Default)]
pub struct Messaging<'a> {
    pub sender: Option<Party<'a>>,
    pub recipient: Option<Party<'a>>,
    pub timestamp: Option<i64>,
    pub message: Option<Box<Message<'a>>>,
    pub message_edit: Option<MessageEdit<'a>>,
    pub reaction: Option<Reaction<'a>>,
    pub read: Option<Read<'a>>,
    pub postback: Option<Postback<'a>>,
    /// Handover Protocol (`messaging_handover`): control passed to, taken by, or requested
    /// by an app (Meta's agent among them).
    pub pass_thread_control: Option<ThreadControl<'a>>,
    pub take_thread_control: Option<ThreadControl<'a>>,
    pub request_thread_control: Option<ThreadControl<'a>>,
    /// The first key (in byte order) other than `sender`, `recipient` and `timestamp`:
    /// what an item of a kind we do not relay is counted under.
    pub other: Option<Cow<'a, str>>,
}

/// A key, borrowed when it has no escapes.
pub(super) struct Key<'a>(pub(super) Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

/// `timestamp`, read leniently.
struct Lenient(Option<i64>);

impl<'de> Deserialize<'de> for Lenient {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        lenient::int(d).map(Lenient)
    }
}

// By hand rather than derived: an item of a kind we do not relay is counted under its key,
// which the derive would skip unseen.
impl<'de> Deserialize<'de> for Messaging<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Messaging<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a messaging item")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Messaging<'de>, A::Error> {
                fn once<'de, T: Deserialize<'de>, A: MapAccess<'de>>(
                    slot: &mut Option<T>,
                    seen: &mut bool,
                    name: &'static str,
                    map: &mut A,
                ) -> Result<(), A::Error> {
                    if std::mem::replace(seen, true) {
                        return Err(de::Error::duplicate_field(name));
                    }
                    *slot = map.next_value::<Option<T>>()?;
                    Ok(())
                }
                let mut m = Messaging::default();
                let mut seen = [false; 11];
                while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
                    if !matches!(&*key, "sender" | "recipient" | "timestamp")
                        && m.other.as_deref().is_none_or(|o| *key < *o)
                    {
                        m.other = Some(key.clone());
                    }
                    match &*key {
                        "sender" => once(&mut m.sender, &mut seen[0], "sender", &mut map)?,
                        "recipient" => once(&mut m.recipient, &mut seen[1], "recipient", &mut map)?,
                        "timestamp" => {
                            if std::mem::replace(&mut seen[2], true) {
                                return Err(de::Error::duplicate_field("timestamp"));
                            }
                            m.timestamp = map.next_value::<Lenient>()?.0;
                        }
                        "message" => once(&mut m.message, &mut seen[3], "message", &mut map)?,
                        "message_edit" => {
                            once(&mut m.message_edit, &mut seen[4], "message_edit", &mut map)?
                        }
                        "reaction" => once(&mut m.reaction, &mut seen[5], "reaction", &mut map)?,
                        "read" => once(&mut m.read, &mut seen[6], "read", &mut map)?,
                        "postback" => once(&mut m.postback, &mut seen[7], "postback", &mut map)?,
                        "pass_thread_control" => once(
                            &mut m.pass_thread_control,
                            &mut seen[8],
                            "pass_thread_control",
                            &mut map,
                        )?,
                        "take_thread_control" => once(
                            &mut m.take_thread_control,
                            &mut seen[9],
                            "take_thread_control",
                            &mut map,
                        )?,
                        "request_thread_control" => once(
                            &mut m.request_thread_control,
                            &mut seen[10],
                            "request_thread_control",
                            &mut map,
                        )?,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(m)
            }
        }
        d.deserialize_map(V)
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct Party<'a> {
    #[serde(default, borrow, deserialize_with = "lenient::text")]
    pub id: Option<Cow<'a, str>>,
}

/// `messaging[].message`.
#[derive(Debug, Default, Deserialize)]
pub struct Message<'a> {
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub mid: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub text: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "lenient::items")]
    pub attachments: Vec<Item<'a, Attachment<'a>>>,
    #[serde(default, borrow)]
    pub reply_to: Option<ReplyTo<'a>>,
    #[serde(default, borrow)]
    pub quick_reply: Option<QuickReply<'a>>,
    #[serde(default, borrow)]
    pub referral: Option<Referral<'a>>,
    /// Sent by the business (Instagram app, or any app using the API).
    #[serde(default, deserialize_with = "lenient::flag")]
    pub is_echo: bool,
    /// The sender unsent (deleted) the message `mid`.
    #[serde(default, deserialize_with = "lenient::flag")]
    pub is_deleted: bool,
    /// A message type the API does not deliver.
    #[serde(default, deserialize_with = "lenient::flag")]
    pub is_unsupported: bool,
    /// On echoes of API sends: the sending app (Messenger documents it; kept when present).
    #[serde(default, borrow, deserialize_with = "lenient::text")]
    pub app_id: Option<Cow<'a, str>>,
}

/// `attachments[]`: `type` is `image`, `video`, `audio`, `file`, `share`, `story_mention`,
/// `ig_reel`, `reel`, `ig_post` or `fallback`; `payload.url` is a CDN URL.
#[derive(Debug, Default, Deserialize)]
pub struct Attachment<'a> {
    #[serde(
        default,
        borrow,
        rename = "type",
        deserialize_with = "lenient::opt_str"
    )]
    pub kind: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub payload: Option<AttachmentPayload<'a>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct AttachmentPayload<'a> {
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub url: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub title: Option<Cow<'a, str>>,
    /// Set on the "like" heart and other stickers sent as images.
    #[serde(default, borrow, deserialize_with = "lenient::text")]
    pub sticker_id: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "lenient::text")]
    pub reel_video_id: Option<Cow<'a, str>>,
    /// `ig_post` (and, until February 2026, `share`) attachments: the shared post's media id
    /// ("Instagram Post Shares: New Attachment Type and Transition Period").
    #[serde(default, borrow, deserialize_with = "lenient::text")]
    pub ig_post_media_id: Option<Cow<'a, str>>,
}

/// A reply to one of our messages (`mid`) or to the business's story (`story`).
#[derive(Debug, Default, Deserialize)]
pub struct ReplyTo<'a> {
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub mid: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub story: Option<Story<'a>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Story<'a> {
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub url: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "lenient::text")]
    pub id: Option<Cow<'a, str>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct QuickReply<'a> {
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub payload: Option<Cow<'a, str>>,
}

/// Click-to-Instagram-Direct ad or ig.me link attribution.
#[derive(Debug, Default, Deserialize)]
pub struct Referral<'a> {
    #[serde(default, borrow, rename = "ref", deserialize_with = "lenient::opt_str")]
    pub ref_param: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "lenient::text")]
    pub ad_id: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub source: Option<Cow<'a, str>>,
    #[serde(
        default,
        borrow,
        rename = "type",
        deserialize_with = "lenient::opt_str"
    )]
    pub kind: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub ads_context_data: Option<AdsContext<'a>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct AdsContext<'a> {
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub ad_title: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub photo_url: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub video_url: Option<Cow<'a, str>>,
}

/// `message_edit`: `mid` now reads `text`; `num_edit` counts edits so far.
#[derive(Debug, Default, Deserialize)]
pub struct MessageEdit<'a> {
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub mid: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub text: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "lenient::uint")]
    pub num_edit: Option<u64>,
}

/// `reaction` (field `message_reactions`): `action` is `react` or `unreact`.
#[derive(Debug, Default, Deserialize)]
pub struct Reaction<'a> {
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub mid: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub action: Option<Cow<'a, str>>,
    /// A name: `love`, `like`, `laugh`, `wow`, `sad`, `angry`, `other`.
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub reaction: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub emoji: Option<Cow<'a, str>>,
}

/// `read` (field `messaging_seen`): the customer saw our message `mid`; older payloads carry
/// a `watermark` (everything sent before it was seen) instead.
#[derive(Debug, Default, Deserialize)]
pub struct Read<'a> {
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub mid: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "lenient::int")]
    pub watermark: Option<i64>,
}

/// `postback` (field `messaging_postbacks`): an icebreaker or template button was tapped.
#[derive(Debug, Default, Deserialize)]
pub struct Postback<'a> {
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub mid: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub title: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub payload: Option<Cow<'a, str>>,
}

/// `pass_thread_control` / `take_thread_control` / `request_thread_control` of a
/// `messaging_handovers` item (Messenger Platform "messaging_handovers Webhook Event
/// Reference", which Instagram's conversation routing shares): the apps' ids, and the
/// metadata the app that acted passed along.
#[derive(Debug, Default, Deserialize)]
pub struct ThreadControl<'a> {
    #[serde(default, borrow, deserialize_with = "lenient::text")]
    pub previous_owner_app_id: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "lenient::text")]
    pub new_owner_app_id: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "lenient::text")]
    pub requested_owner_app_id: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "lenient::text")]
    pub metadata: Option<Cow<'a, str>>,
}

impl<'a> Messaging<'a> {
    /// The handover action of the item (`pass`, `take`, `request`) with its details.
    pub fn thread_control(&self) -> Option<(&'static str, &ThreadControl<'a>)> {
        if let Some(c) = &self.pass_thread_control {
            return Some(("pass", c));
        }
        if let Some(c) = &self.take_thread_control {
            return Some(("take", c));
        }
        self.request_thread_control.as_ref().map(|c| ("request", c))
    }
}

/// `changes[].value.from` of the `comments` field: the commenter (Meta, "Instagram
/// Platform > Webhooks > Examples", comments payload; webhooks reference
/// `FBInstagramCommentsField`).
#[derive(Debug, Default, Deserialize)]
pub struct CommentFrom<'a> {
    /// The commenter's Instagram-scoped id (IGSID).
    #[serde(default, borrow, deserialize_with = "lenient::text")]
    pub id: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "lenient::text")]
    pub username: Option<Cow<'a, str>>,
}

/// `changes[].value.media` of the `comments` field: the post, reel or story commented on.
#[derive(Debug, Default, Deserialize)]
pub struct CommentMedia<'a> {
    #[serde(default, borrow, deserialize_with = "lenient::text")]
    pub id: Option<Cow<'a, str>>,
    /// `FEED`, `REELS`, `STORY`, `AD`…
    #[serde(default, borrow, deserialize_with = "lenient::text")]
    pub media_product_type: Option<Cow<'a, str>>,
}
