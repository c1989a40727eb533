//! Instagram Messaging entries → events: each messaging item (messages, echoes, reactions,
//! edits, deletions, postbacks, reads), with the reasons for what is left out (see the
//! parent module's documentation).

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::ids::{BodyText, InstagramAccountId, Text};
use crate::meta::event::{
    AccountRef, Content, CustomerId, CustomerRef, EventKind, Media, MediaKind, Party, Referral,
    ReplyTo,
};
use crate::meta::ids::InstagramUserId;
use crate::meta::instagram as ig;
use crate::meta::item::Item;
use crate::meta::lenient::{event_text, label, to_unix_seconds};

use super::{event, message_id, non_empty, Entry, WebhookBatch};

pub(super) fn instagram_entry<'a, S: BodyText<'a>>(
    entry: &Item<'a, Entry<'a>>,
    batch: &mut WebhookBatch<S>,
) {
    let Some(entry) = entry.ok() else {
        batch.ignored.add("instagram:malformed_entry");
        return;
    };
    let account = entry
        .id
        .as_ref()
        .and_then(InstagramAccountId::<S>::from_body);
    for change in &entry.changes {
        let field = change
            .ok()
            .and_then(|c| c.field.as_deref())
            .unwrap_or("none");
        if field == "comments" || field == "live_comments" {
            let value = change
                .ok()
                .and_then(|c| c.value.as_ref()?.ok().map(|v| &**v));
            let live = field == "live_comments";
            super::comments::instagram_comment(value, account.as_ref(), entry.time, live, batch);
            continue;
        }
        if field == "mentions" {
            let value = change
                .ok()
                .and_then(|c| c.value.as_ref()?.ok().map(|v| &**v));
            super::comments::instagram_mention(value, account.as_ref(), entry.time, batch);
            continue;
        }
        batch
            .ignored
            .add(format!("instagram:field:{}", label(field)));
    }
    // Standby items (another app, such as Meta's agent, holds the conversation) are the
    // same items: the conversation stays whole in Bitrix24 (decision 0051).
    for m in entry.messaging.iter().chain(&entry.standby) {
        instagram_messaging(m, account.as_ref(), entry.time, batch);
    }
}

/// The minimum of a messaging item that failed to parse as a whole.
#[derive(Default, Deserialize)]
struct IgHead<'a> {
    #[serde(default, borrow)]
    sender: Option<ig::Party<'a>>,
    #[serde(default, borrow)]
    recipient: Option<ig::Party<'a>>,
    #[serde(default, deserialize_with = "crate::meta::lenient::int")]
    timestamp: Option<i64>,
    #[serde(default, borrow)]
    message: Option<IgHeadMessage<'a>>,
}

#[derive(Default, Deserialize)]
struct IgHeadMessage<'a> {
    #[serde(default, borrow, deserialize_with = "crate::meta::lenient::text")]
    mid: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "crate::meta::lenient::flag")]
    is_echo: bool,
}

fn instagram_messaging<'a, S: BodyText<'a>>(
    item: &Item<'a, ig::Messaging<'a>>,
    entry_account: Option<&InstagramAccountId<S>>,
    entry_time: Option<i64>,
    batch: &mut WebhookBatch<S>,
) {
    let (sender, recipient, ts_ms, is_echo) = match item {
        Item::Ok(ev) => (
            ev.sender.as_ref().and_then(|p| p.id.clone()),
            ev.recipient.as_ref().and_then(|p| p.id.clone()),
            ev.timestamp,
            ev.message.as_ref().is_some_and(|m| m.is_echo),
        ),
        Item::Bad(raw) => {
            let h: IgHead = serde_json::from_str(raw.get()).unwrap_or_default();
            (
                h.sender.and_then(|p| p.id),
                h.recipient.and_then(|p| p.id),
                h.timestamp,
                h.message.as_ref().is_some_and(|m| m.is_echo),
            )
        }
    };
    // Route by entry[].id; when it is unusable, by the business side of the item.
    let account = entry_account.cloned().or_else(|| {
        let business = if is_echo { &sender } else { &recipient };
        business.as_ref().and_then(InstagramAccountId::from_body)
    });
    let Some(account) = account else {
        batch.ignored.add("instagram:missing_account");
        return;
    };
    // The business is the sender of echoes and of anything it does from the Instagram app.
    let by_business = is_echo || sender.as_deref() == Some(account.as_str());
    let customer_side = if by_business { &recipient } else { &sender };
    let Some(customer_id) = customer_side.as_ref().and_then(InstagramUserId::from_body) else {
        batch.ignored.add("instagram:unidentified_customer");
        return;
    };
    let ig = IgItem {
        account: AccountRef::Instagram(account),
        customer: CustomerRef::new(CustomerId::Instagram(customer_id)),
        by: if by_business {
            Party::Business
        } else {
            Party::Customer
        },
        ts_ms: ts_ms.or(entry_time),
    };
    match item {
        Item::Ok(ev) => ig.dispatch(ev, batch),
        Item::Bad(raw) => ig.malformed(raw, batch),
    }
}

/// What one Instagram messaging item resolved to before its payload is read.
struct IgItem<S: Text> {
    account: AccountRef<S>,
    customer: CustomerRef<S>,
    by: Party,
    /// Milliseconds, as Instagram sends them.
    ts_ms: Option<i64>,
}

impl<'a, S: BodyText<'a>> IgItem<S> {
    fn push(&self, batch: &mut WebhookBatch<S>, provider: String, kind: EventKind<S>) {
        let ts = self.ts_ms.map(to_unix_seconds);
        let provider = S::from_string(provider);
        batch.events.push(event(&self.account, provider, ts, kind));
    }

    fn ts_text(&self) -> String {
        self.ts_ms.map(|t| t.to_string()).unwrap_or_default()
    }

    fn dispatch(&self, ev: &ig::Messaging<'a>, batch: &mut WebhookBatch<S>) {
        let customer = self.customer.clone();
        let who = customer.id.as_str().to_owned();
        if let Some(msg) = &ev.message {
            let Some(mid) = message_id(msg.mid.as_ref()) else {
                batch.ignored.add("instagram:malformed_message");
                return;
            };
            if msg.is_deleted {
                let kind = EventKind::Deleted {
                    customer,
                    message_id: mid.clone(),
                    by: self.by,
                };
                return self.push(batch, format!("ig:deleted:{mid}"), kind);
            }
            let content = ig_content(msg);
            let reply_to = msg.reply_to.as_ref().and_then(ig_reply_to);
            if self.by == Party::Business {
                let kind = EventKind::BusinessEcho {
                    customer,
                    message_id: mid.clone(),
                    content,
                    reply_to,
                    app_id: event_text(&msg.app_id),
                    from_agent: false,
                };
                self.push(batch, format!("ig:echo:{mid}"), kind);
            } else {
                let kind = EventKind::CustomerMessage {
                    customer,
                    message_id: mid.clone(),
                    content,
                    reply_to,
                    referral: msg.referral.as_ref().map(|r| Box::new(ig_referral(r))),
                    referred_product: None,
                    forwarded: false,
                    frequently_forwarded: false,
                };
                self.push(batch, format!("ig:msg:{mid}"), kind);
            }
        } else if let Some(edit) = &ev.message_edit {
            let Some(mid) = message_id(edit.mid.as_ref()) else {
                batch.ignored.add("instagram:malformed_edit");
                return;
            };
            let version = edit
                .num_edit
                .map(|n| n.to_string())
                .unwrap_or_else(|| self.ts_text());
            let content = match event_text(&edit.text) {
                Some(body) => Content::Text { body },
                None => Content::Unsupported {
                    type_name: S::from_string("edit".into()),
                    errors: Vec::new(),
                },
            };
            let kind = EventKind::Edited {
                customer,
                message_id: mid.clone(),
                content,
                by: self.by,
                edit_count: edit.num_edit,
            };
            self.push(batch, format!("ig:edit:{mid}:{version}"), kind);
        } else if let Some(r) = &ev.reaction {
            let Some(mid) = message_id(r.mid.as_ref()) else {
                batch.ignored.add("instagram:malformed_reaction");
                return;
            };
            let unreact = r.action.as_deref() == Some("unreact");
            let emoji = if unreact {
                None
            } else {
                non_empty(&r.emoji).or_else(|| non_empty(&r.reaction))
            };
            let action = if unreact { "unreact" } else { "react" };
            let provider = format!("ig:reaction:{mid}:{who}:{action}:{}", self.ts_text());
            let kind = EventKind::Reaction {
                customer,
                message_id: mid,
                emoji,
                by: self.by,
            };
            self.push(batch, provider, kind);
        } else if let Some(read) = &ev.read {
            if self.by == Party::Business {
                batch.ignored.add("instagram:read_by_business");
                return;
            }
            let mid = message_id(read.mid.as_ref());
            let mark = match (&mid, read.watermark) {
                (Some(m), _) => m.to_string(),
                (None, Some(w)) => w.to_string(),
                (None, None) => {
                    batch.ignored.add("instagram:malformed_read");
                    return;
                }
            };
            let kind = EventKind::Read {
                customer,
                message_id: mid,
                watermark: read.watermark,
            };
            self.push(batch, format!("ig:read:{who}:{mark}"), kind);
        } else if let Some((action, control)) = ev.thread_control() {
            let kind = EventKind::Handover {
                customer,
                action: S::from_string(action.to_owned()),
                new_owner_app_id: event_text(&control.new_owner_app_id)
                    .or_else(|| event_text(&control.requested_owner_app_id)),
                previous_owner_app_id: event_text(&control.previous_owner_app_id),
                ours: None,
            };
            self.push(
                batch,
                format!("ig:handover:{who}:{action}:{}", self.ts_text()),
                kind,
            );
        } else if let Some(pb) = &ev.postback {
            let mid = message_id(pb.mid.as_ref());
            let provider = match &mid {
                Some(m) => format!("ig:postback:{m}"),
                None => format!("ig:postback:{who}:{}", self.ts_text()),
            };
            let kind = EventKind::Postback {
                customer,
                message_id: mid,
                title: event_text(&pb.title),
                payload: event_text(&pb.payload),
            };
            self.push(batch, provider, kind);
        } else {
            let key = ev
                .other
                .as_deref()
                .map(label)
                .unwrap_or_else(|| "empty".into());
            batch.ignored.add(format!("instagram:{key}"));
        }
    }

    /// A messaging item whose payload does not parse: a message with a readable `mid` is
    /// kept as `Unsupported`, anything else is counted.
    fn malformed(&self, raw: &'a RawValue, batch: &mut WebhookBatch<S>) {
        let head: IgHead = serde_json::from_str(raw.get()).unwrap_or_default();
        let Some(mid) = head
            .message
            .as_ref()
            .and_then(|m| message_id(m.mid.as_ref()))
        else {
            batch.ignored.add("instagram:malformed_messaging");
            return;
        };
        batch.malformed.add("instagram:messaging:malformed");
        let content = Content::Unsupported {
            type_name: S::from_string("malformed".into()),
            errors: Vec::new(),
        };
        let (provider, kind) = if self.by == Party::Business {
            (
                format!("ig:echo:{mid}"),
                EventKind::BusinessEcho {
                    customer: self.customer.clone(),
                    message_id: mid,
                    content,
                    reply_to: None,
                    app_id: None,
                    from_agent: false,
                },
            )
        } else {
            (
                format!("ig:msg:{mid}"),
                EventKind::CustomerMessage {
                    customer: self.customer.clone(),
                    message_id: mid,
                    content,
                    reply_to: None,
                    referral: None,
                    referred_product: None,
                    forwarded: false,
                    frequently_forwarded: false,
                },
            )
        };
        self.push(batch, provider, kind);
    }
}

/// Text (or a quick reply) and every attachment, in order; one part stands alone.
fn ig_content<'a, S: BodyText<'a>>(msg: &ig::Message<'a>) -> Content<S> {
    let mut parts = Vec::new();
    if let Some(text) = non_empty(&msg.text) {
        parts.push(match &msg.quick_reply {
            Some(q) => Content::Button {
                payload: event_text(&q.payload),
                text: Some(text),
            },
            None => Content::Text { body: text },
        });
    }
    // Meta announced a transition (from November 2025) in which a post share came as two
    // attachments, the legacy `share` and the new `ig_post`, for the same media; `share` was
    // removed for posts on 2026-02-01. The operator sees the post once, as `ig_post`.
    let posts: Vec<&str> = msg
        .attachments
        .iter()
        .filter_map(Item::ok)
        .filter(|a| a.kind.as_deref() == Some("ig_post"))
        .filter_map(|a| a.payload.as_ref()?.ig_post_media_id.as_deref())
        .collect();
    parts.extend(
        msg.attachments
            .iter()
            .filter_map(Item::ok)
            .filter(|a| {
                let post = a
                    .payload
                    .as_ref()
                    .and_then(|p| p.ig_post_media_id.as_deref());
                !(a.kind.as_deref() == Some("share") && post.is_some_and(|id| posts.contains(&id)))
            })
            .map(ig_attachment),
    );
    if msg.is_unsupported {
        parts.push(Content::Unsupported {
            type_name: S::from_string("instagram_unsupported".into()),
            errors: Vec::new(),
        });
    }
    match parts.len() {
        0 => Content::Unsupported {
            type_name: S::from_string("empty".into()),
            errors: Vec::new(),
        },
        1 => parts.remove(0),
        _ => Content::Multiple { parts },
    }
}

fn ig_attachment<'a, S: BodyText<'a>>(a: &ig::Attachment<'a>) -> Content<S> {
    let kind = a.kind.as_deref().unwrap_or("missing");
    let payload = a.payload.as_ref();
    let url = payload.and_then(|p| event_text(&p.url));
    let media = |k: MediaKind| {
        let mut m = Media::new(k);
        m.url = url.clone();
        Content::Media(m)
    };
    match kind {
        "image" if payload.is_some_and(|p| p.sticker_id.is_some()) => media(MediaKind::Sticker),
        "image" => media(MediaKind::Image),
        "video" => media(MediaKind::Video),
        "audio" => media(MediaKind::Audio),
        "file" => media(MediaKind::File),
        "story_mention" => Content::StoryMention { url },
        "share" | "ig_reel" | "reel" | "ig_post" | "post" | "fallback" => Content::Share {
            share_type: S::from_string(kind.to_string()),
            url,
            title: payload.and_then(|p| event_text(&p.title)),
        },
        other => Content::Unsupported {
            type_name: S::from_string(label(other)),
            errors: Vec::new(),
        },
    }
}

fn ig_reply_to<'a, S: BodyText<'a>>(r: &ig::ReplyTo<'a>) -> Option<ReplyTo<S>> {
    if let Some(story) = &r.story {
        return Some(ReplyTo::Story {
            story_id: event_text(&story.id),
            url: event_text(&story.url),
        });
    }
    Some(ReplyTo::Message {
        message_id: message_id(r.mid.as_ref())?,
    })
}

fn ig_referral<'a, S: BodyText<'a>>(r: &ig::Referral<'a>) -> Referral<S> {
    let ads = r.ads_context_data.as_ref();
    Referral {
        source_type: event_text(&r.source).or_else(|| event_text(&r.kind)),
        source_id: event_text(&r.ad_id),
        headline: ads.and_then(|a| event_text(&a.ad_title)),
        media_url: ads.and_then(|a| event_text(&a.photo_url).or_else(|| event_text(&a.video_url))),
        ref_param: event_text(&r.ref_param),
        ..Referral::default()
    }
}
