//! WhatsApp Cloud API entries → events: each change's messages, echoes, statuses and
//! account errors, in that order, with the reasons for what is left out (see the parent
//! module's documentation).

use std::borrow::Cow;

use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use crate::ids::Text;
use crate::ids::{BodyText, PhoneNumberId};
use crate::meta::event::{
    AccountRef, Billing, Content, CustomerId, CustomerRef, DeliveryStatus, EventKind, Location,
    Media, MediaKind, Order, OrderItem, Party, Referral, ReferredProduct, ReplyTo, SharedContact,
    SharedPhone,
};
use crate::meta::ids::{bsuid_key, phone_key, WhatsAppPhone, WhatsAppUserId};
use crate::meta::item::Item;
use crate::meta::lenient::{event_text, label};
use crate::meta::whatsapp as wa;

use super::{event, message_id, meta_errors, non_empty, Entry, WebhookBatch};

pub(super) fn whatsapp_entry<'a, S: BodyText<'a>>(
    entry: &Item<'a, Entry<'a>>,
    batch: &mut WebhookBatch<S>,
) {
    let Some(entry) = entry.ok() else {
        batch.ignored.add("whatsapp:malformed_entry");
        return;
    };
    for change in &entry.changes {
        let Some(change) = change.ok() else {
            batch.ignored.add("whatsapp:malformed_change");
            continue;
        };
        let field = change.field.as_deref().unwrap_or_default();
        if crate::meta::account::ACCOUNT_FIELDS.contains(&field) {
            account_change(entry, field, change, batch);
            continue;
        }
        if field == "history" || field == "smb_app_state_sync" {
            super::coexistence::coexistence_change(field, change.value.as_ref(), batch);
            continue;
        }
        if field == "standby" || field == "messaging_handovers" {
            super::routing::routing_change(field, change.value.as_ref(), batch);
            continue;
        }
        if field != "messages" && field != "smb_message_echoes" {
            batch
                .ignored
                .add(format!("whatsapp:field:{}", label(field)));
            continue;
        }
        let Some(value) = change.value.as_ref().and_then(Item::ok) else {
            batch.ignored.add("whatsapp:malformed_change");
            continue;
        };
        let account = value
            .metadata
            .as_ref()
            .and_then(|m| m.phone_number_id.as_ref())
            .and_then(PhoneNumberId::from_body);
        let Some(account) = account else {
            let items = value.messages.len()
                + value.message_echoes.len()
                + value.statuses.len()
                + value.errors.iter().filter_map(Item::ok).count();
            let items = u32::try_from(items.max(1)).unwrap_or(u32::MAX);
            batch
                .ignored
                .add_n("whatsapp:missing_phone_number_id", items);
            continue;
        };
        let ctx = WaChange {
            account: AccountRef::WhatsApp(account),
            contacts: &value.contacts,
        };
        for m in &value.messages {
            ctx.message(m, batch);
        }
        for e in &value.message_echoes {
            ctx.echo(e, batch);
        }
        for s in &value.statuses {
            ctx.status(s, batch);
        }
        if value.errors.iter().any(|e| e.ok().is_some()) {
            ctx.account_errors(&value.errors, batch);
        }
    }
}

/// An account or number event: on the WABA (`entry[].id`), routed by the intake.
fn account_change<S: Text>(
    entry: &Entry<'_>,
    field: &str,
    change: &wa::Change<'_>,
    batch: &mut WebhookBatch<S>,
) {
    let waba = entry
        .id
        .as_deref()
        .and_then(|id| crate::ids::WabaId::parse(id).ok());
    let value = change.value.as_ref().and_then(Item::ok).map(|v| &**v);
    let update = value.and_then(|v| crate::meta::account::account_update(field, v));
    match (waba, update) {
        (Some(waba), Some(update)) => {
            batch
                .account_updates
                .push(crate::meta::account::WabaUpdate {
                    waba,
                    time: entry.time,
                    number: value.and_then(crate::meta::account::named_number),
                    update,
                })
        }
        _ => batch.ignored.add(format!("whatsapp:malformed_{field}")),
    }
}

/// What all items of one WhatsApp change share.
pub(super) struct WaChange<'c, 'a, S: Text> {
    pub(super) account: AccountRef<S>,
    pub(super) contacts: &'c [Item<'a, wa::Contact<'a>>],
}

/// What [`bsuid_key`] and [`phone_key`] give for an optional string of the body.
fn key<'r>(s: Option<&'r Cow<'_, str>>, key: fn(&str) -> Option<&str>) -> Option<&'r str> {
    s.and_then(|s| key(s))
}

impl<'a, S: BodyText<'a>> WaChange<'_, 'a, S> {
    /// The customer an item names, completed from `value.contacts`: the contact whose BSUID
    /// or phone matches, or the only contact when nothing contradicts it. Identity is the
    /// BSUID when there is one, else the phone.
    pub(super) fn customer(
        &self,
        user_id: Option<&Cow<'a, str>>,
        phone: Option<&Cow<'a, str>>,
        parent_user_id: Option<&Cow<'a, str>>,
    ) -> Option<CustomerRef<S>> {
        // Ids are compared by what they hold once parsed, borrowed from the body when `S`
        // borrows: the item's are checked once, here; each contact's once in the loop and
        // once more only if its id completes the customer's.
        let item_uid = user_id.and_then(WhatsAppUserId::<S>::from_body);
        let item_ph = phone.and_then(WhatsAppPhone::<S>::from_body);
        let uid_key = item_uid.as_ref().map(|u| u.as_str());
        let ph_key = item_ph.as_ref().map(|p| p.as_str());
        let compatible = |u: Option<&str>, p: Option<&str>| {
            (uid_key.is_none() || u.is_none() || u == uid_key)
                && (ph_key.is_none() || p.is_none() || p == ph_key)
        };
        let matches = |u: Option<&str>, p: Option<&str>| {
            (uid_key.is_some() && u == uid_key) || (ph_key.is_some() && p == ph_key)
        };
        // Contacts that did not parse are left out, as if absent.
        let mut found = None;
        let (mut first, mut count) = (None, 0);
        for c in self.contacts.iter().filter_map(Item::ok) {
            let u = key(c.user_id.as_ref(), bsuid_key);
            let p = key(c.wa_id.as_ref(), phone_key);
            if matches(u, p) && compatible(u, p) {
                found = Some((c, u, p));
                break;
            }
            count += 1;
            if count == 1 {
                first = Some((c, u, p));
            } else if count == 2 {
                first = None;
            }
        }
        // Else the only contact (the loop saw them all), when nothing contradicts it.
        let contact = found.or_else(|| first.filter(|(_, u, p)| compatible(*u, *p)));
        let (mut uid, mut ph) = (item_uid, item_ph);
        let mut parent = parent_user_id.and_then(WhatsAppUserId::from_body);
        let (mut name, mut username) = (None, None);
        if let Some((c, _, _)) = contact {
            uid = uid.or_else(|| c.user_id.as_ref().and_then(WhatsAppUserId::from_body));
            ph = ph.or_else(|| c.wa_id.as_ref().and_then(WhatsAppPhone::from_body));
            parent = parent.or_else(|| {
                c.parent_user_id
                    .as_ref()
                    .and_then(WhatsAppUserId::from_body)
            });
            if let Some(p) = &c.profile {
                name = non_empty(&p.name);
                username = non_empty(&p.username);
            }
        }
        let id = match (uid, &ph) {
            (Some(u), _) => CustomerId::WhatsAppUser(u),
            (None, Some(p)) => CustomerId::WhatsAppPhone(p.clone()),
            (None, None) => return None,
        };
        Some(CustomerRef {
            id,
            phone: ph,
            parent_user_id: parent,
            name,
            username,
        })
    }

    pub(super) fn message(&self, item: &Item<'a, wa::Message<'a>>, batch: &mut WebhookBatch<S>) {
        let msg = match item {
            Item::Ok(m) => m,
            Item::Bad(raw) => return self.malformed_message(raw, batch),
        };
        if msg.group_id.is_some() {
            batch.ignored.add("whatsapp:group_message");
            return;
        }
        let Some(id) = message_id(msg.id.as_ref()) else {
            batch.ignored.add("whatsapp:malformed_message");
            return;
        };
        let Some(customer) = self.customer(
            msg.from_user_id.as_ref(),
            msg.from.as_ref(),
            msg.from_parent_user_id.as_ref(),
        ) else {
            batch.ignored.add("whatsapp:unidentified_customer");
            return;
        };
        // Joined rather than `format!`ed: one allocation of the exact length, no formatter.
        let provider = S::from_string(["wa:msg:", id.as_str()].concat());
        let kind = match is_special(msg)
            .then(|| special(msg, customer.clone(), Party::Customer))
            .flatten()
        {
            Some(kind) => kind,
            None => {
                let ctx = msg.context.as_deref();
                EventKind::CustomerMessage {
                    customer,
                    message_id: id,
                    content: wa_content(msg, &msg.errors),
                    reply_to: wa_reply_to(ctx),
                    referral: msg.referral.as_ref().map(|r| Box::new(wa_referral(r))),
                    referred_product: ctx.and_then(|c| c.referred_product.as_ref()).map(|p| {
                        ReferredProduct {
                            catalog_id: event_text(&p.catalog_id),
                            product_retailer_id: event_text(&p.product_retailer_id),
                        }
                    }),
                    forwarded: ctx.is_some_and(|c| c.forwarded || c.frequently_forwarded),
                    frequently_forwarded: ctx.is_some_and(|c| c.frequently_forwarded),
                }
            }
        };
        batch
            .events
            .push(event(&self.account, provider, msg.timestamp, kind));
    }

    /// A message whose type-specific part does not parse: kept as `Unsupported` when its id
    /// and sender can still be read, so the conversation shows that something arrived.
    fn malformed_message(&self, raw: &'a RawValue, batch: &mut WebhookBatch<S>) {
        let head: wa::MessageHead = serde_json::from_str(raw.get()).unwrap_or_default();
        if head.group_id.is_some() {
            batch.ignored.add("whatsapp:group_message");
            return;
        }
        let Some(id) = message_id(head.id.as_ref()) else {
            batch.ignored.add("whatsapp:malformed_message");
            return;
        };
        let Some(customer) = self.customer(head.from_user_id.as_ref(), head.from.as_ref(), None)
        else {
            batch.ignored.add("whatsapp:unidentified_customer");
            return;
        };
        let type_name = label(head.kind.as_deref().unwrap_or("malformed"));
        batch.malformed.add(format!("whatsapp:message:{type_name}"));
        let kind = EventKind::CustomerMessage {
            customer,
            message_id: id.clone(),
            content: Content::Unsupported {
                type_name: S::from_string(type_name),
                errors: Vec::new(),
            },
            reply_to: None,
            referral: None,
            referred_product: None,
            forwarded: false,
            frequently_forwarded: false,
        };
        batch.events.push(event(
            &self.account,
            S::from_string(format!("wa:msg:{id}")),
            head.timestamp,
            kind,
        ));
    }

    fn echo(&self, item: &Item<'a, wa::Message<'a>>, batch: &mut WebhookBatch<S>) {
        let Some(echo) = item.ok() else {
            batch.ignored.add("whatsapp:malformed_echo");
            return;
        };
        let Some(id) = message_id(echo.id.as_ref()) else {
            batch.ignored.add("whatsapp:malformed_echo");
            return;
        };
        let Some(customer) = self.customer(
            echo.to_user_id.as_ref(),
            echo.to.as_ref(),
            echo.to_parent_user_id.as_ref(),
        ) else {
            batch.ignored.add("whatsapp:unidentified_customer");
            return;
        };
        let effect = is_special(echo)
            .then(|| special(echo, customer.clone(), Party::Business))
            .flatten();
        let kind = effect.unwrap_or_else(|| EventKind::BusinessEcho {
            customer,
            message_id: id.clone(),
            content: wa_content(echo, &[]),
            reply_to: wa_reply_to(echo.context.as_deref()),
            app_id: None,
            from_agent: false,
        });
        batch.events.push(event(
            &self.account,
            S::from_string(["wa:echo:", id.as_str()].concat()),
            echo.timestamp,
            kind,
        ));
    }

    fn status(&self, item: &Item<'a, wa::Status<'a>>, batch: &mut WebhookBatch<S>) {
        let Some(s) = item.ok() else {
            batch.ignored.add("whatsapp:malformed_status");
            return;
        };
        let Some(id) = message_id(s.id.as_ref()) else {
            batch.ignored.add("whatsapp:malformed_status");
            return;
        };
        let name = s.status.as_deref().unwrap_or_default();
        let status = match name {
            "sent" => DeliveryStatus::Sent,
            "delivered" => DeliveryStatus::Delivered,
            "read" => DeliveryStatus::Read,
            "played" => DeliveryStatus::Played,
            "failed" => DeliveryStatus::Failed {
                errors: meta_errors(&s.errors),
            },
            other => {
                batch
                    .ignored
                    .add(format!("whatsapp:status:{}", label(other)));
                return;
            }
        };
        let recipient = if s.recipient_type.as_deref() == Some("group") {
            None
        } else {
            self.customer(
                s.recipient_user_id.as_ref(),
                s.recipient_id.as_ref(),
                s.recipient_parent_user_id.as_ref(),
            )
        };
        let billing = (s.pricing.is_some() || s.conversation.is_some()).then(|| {
            let p = s.pricing.as_ref();
            let c = s.conversation.as_ref();
            Billing {
                billable: p.and_then(|p| p.billable),
                pricing_model: p.and_then(|p| event_text(&p.pricing_model)),
                pricing_type: p.and_then(|p| event_text(&p.kind)),
                category: p.and_then(|p| event_text(&p.category)),
                conversation_id: c.and_then(|c| event_text(&c.id)),
                conversation_origin: c
                    .and_then(|c| c.origin.as_ref())
                    .and_then(|o| event_text(&o.kind)),
                conversation_expires_at: c.and_then(|c| c.expiration_timestamp),
            }
        });
        let provider = S::from_string(["wa:status:", id.as_str(), ":", name].concat());
        let kind = EventKind::Status {
            message_id: id,
            recipient,
            status,
            billing,
            callback: event_text(&s.biz_opaque_callback_data),
        };
        batch
            .events
            .push(event(&self.account, provider, s.timestamp, kind));
    }

    /// `value.errors` carries no id nor time: the key is a digest of the errors, so a
    /// redelivery of the same errors dedupes.
    fn account_errors(
        &self,
        errors: &[Item<'a, wa::ErrorObject<'a>>],
        batch: &mut WebhookBatch<S>,
    ) {
        let errors = meta_errors::<S>(errors);
        let digest = Sha256::digest(serde_json::to_vec(&errors).unwrap_or_default());
        let provider = S::from_string(format!("wa:errors:{}", hex::encode(&digest[..16])));
        batch.events.push(event(
            &self.account,
            provider,
            None,
            EventKind::AccountError { errors },
        ));
    }
}

/// Whether [`special`] may apply: asked first, so that the customer is cloned only for
/// the rare messages that are other effects.
fn is_special(body: &wa::Message) -> bool {
    matches!(body.kind.as_deref(), Some("reaction" | "edit" | "revoke"))
}

/// Reactions, edits and revokes are messages on the wire but other effects here.
fn special<'a, S: BodyText<'a>>(
    body: &wa::Message<'a>,
    customer: CustomerRef<S>,
    by: Party,
) -> Option<EventKind<S>> {
    match body.kind.as_deref()? {
        "reaction" => {
            let r = body.reaction.as_ref()?;
            Some(EventKind::Reaction {
                customer,
                message_id: message_id(r.message_id.as_ref())?,
                emoji: non_empty(&r.emoji),
                by,
            })
        }
        "edit" => {
            let e = body.edit.as_ref()?;
            let content = match &e.message {
                Some(m) => wa_content(m, &[]),
                None => Content::Unsupported {
                    type_name: S::from_string("edit".into()),
                    errors: Vec::new(),
                },
            };
            Some(EventKind::Edited {
                customer,
                message_id: message_id(e.original_message_id.as_ref())?,
                content,
                by,
                edit_count: None,
            })
        }
        "revoke" => Some(EventKind::Deleted {
            customer,
            message_id: message_id(body.revoke.as_ref()?.original_message_id.as_ref())?,
            by,
        }),
        _ => None,
    }
}

pub(super) fn wa_reply_to<'a, S: BodyText<'a>>(
    ctx: Option<&wa::Context<'a>>,
) -> Option<ReplyTo<S>> {
    let ctx = ctx?;
    let id = message_id(ctx.id.as_ref().or(ctx.message_id.as_ref()))?;
    Some(ReplyTo::Message { message_id: id })
}

fn wa_referral<'a, S: BodyText<'a>>(r: &wa::Referral<'a>) -> Referral<S> {
    Referral {
        source_type: event_text(&r.source_type),
        source_id: event_text(&r.source_id),
        source_url: event_text(&r.source_url),
        headline: event_text(&r.headline),
        body: event_text(&r.body),
        media_type: event_text(&r.media_type),
        media_url: event_text(&r.image_url).or_else(|| event_text(&r.video_url)),
        thumbnail_url: event_text(&r.thumbnail_url),
        click_id: event_text(&r.ctwa_clid),
        welcome_text: r.welcome_message.as_ref().and_then(|w| event_text(&w.text)),
        ref_param: None,
    }
}

fn wa_media<'a, S: BodyText<'a>>(kind: MediaKind, m: &wa::Media<'a>) -> Content<S> {
    Content::Media(Media {
        kind,
        media_id: event_text(&m.id),
        url: event_text(&m.url),
        mime_type: event_text(&m.mime_type),
        caption: event_text(&m.caption),
        filename: event_text(&m.filename),
        sha256: event_text(&m.sha256),
        voice: m.voice,
        animated: m.animated,
    })
}

/// The content of a message, an echo or an edit. A type we do not know, or a known type
/// whose object is missing, becomes `Unsupported` with the type's name.
pub(super) fn wa_content<'a, S: BodyText<'a>>(
    body: &wa::Message<'a>,
    errors: &[Item<'a, wa::ErrorObject<'a>>],
) -> Content<S> {
    let kind = body.kind.as_deref().unwrap_or("missing");
    let content = match kind {
        "text" => body
            .text
            .as_ref()
            .and_then(|t| event_text(&t.body))
            .map(|body| Content::Text { body }),
        "image" => body.image.as_ref().map(|m| wa_media(MediaKind::Image, m)),
        "audio" => body.audio.as_ref().map(|m| wa_media(MediaKind::Audio, m)),
        "video" => body.video.as_ref().map(|m| wa_media(MediaKind::Video, m)),
        "document" => body
            .document
            .as_ref()
            .map(|m| wa_media(MediaKind::Document, m)),
        "sticker" => body
            .sticker
            .as_ref()
            .map(|m| wa_media(MediaKind::Sticker, m)),
        "location" => body.location.as_ref().map(|l| {
            Content::Location(Location {
                latitude: l.latitude,
                longitude: l.longitude,
                name: event_text(&l.name),
                address: event_text(&l.address),
                url: event_text(&l.url),
            })
        }),
        "contacts" => {
            let contacts: Vec<SharedContact<S>> = body
                .contacts
                .iter()
                .filter_map(Item::ok)
                .map(shared_contact)
                .collect();
            (!contacts.is_empty()).then_some(Content::Contacts { contacts })
        }
        "interactive" => body.interactive.as_deref().map(interactive),
        "button" => body.button.as_ref().map(|b| Content::Button {
            payload: event_text(&b.payload),
            text: event_text(&b.text),
        }),
        "order" => body.order.as_ref().map(|o| {
            Content::Order(Order {
                catalog_id: event_text(&o.catalog_id),
                text: event_text(&o.text),
                items: o
                    .product_items
                    .iter()
                    .filter_map(Item::ok)
                    .map(|i| OrderItem {
                        product_retailer_id: event_text(&i.product_retailer_id),
                        quantity: i.quantity,
                        item_price: i.item_price.clone(),
                        currency: event_text(&i.currency),
                    })
                    .collect(),
            })
        }),
        "system" => body.system.as_ref().map(|s| Content::System {
            body: event_text(&s.body),
            system_type: event_text(&s.kind),
            new_phone: s.wa_id.as_ref().and_then(WhatsAppPhone::from_body),
            new_user_id: s.user_id.as_ref().and_then(WhatsAppUserId::from_body),
            previous_user_id: s
                .previous_user_id
                .as_ref()
                .and_then(WhatsAppUserId::from_body),
        }),
        "unsupported" => Some(Content::Unsupported {
            type_name: S::from_string(label(
                body.unsupported
                    .as_ref()
                    .and_then(|u| u.kind.as_deref())
                    .unwrap_or("unsupported"),
            )),
            errors: meta_errors(errors),
        }),
        _ => None,
    };
    content.unwrap_or_else(|| Content::Unsupported {
        type_name: S::from_string(label(kind)),
        errors: meta_errors(errors),
    })
}

fn interactive<'a, S: BodyText<'a>>(i: &wa::Interactive<'a>) -> Content<S> {
    let sub = i.kind.as_deref().unwrap_or("missing");
    let choice = |c: &wa::Choice<'a>| Content::InteractiveReply {
        reply_type: S::from_string(sub.to_string()),
        id: event_text(&c.id),
        title: event_text(&c.title),
        description: event_text(&c.description),
        response_json: None,
    };
    let reply = match sub {
        "button_reply" => i.button_reply.as_ref().map(choice),
        "list_reply" => i.list_reply.as_ref().map(choice),
        "nfm_reply" => i.nfm_reply.as_ref().map(|f| Content::InteractiveReply {
            reply_type: S::from_string(sub.to_string()),
            id: event_text(&f.name),
            title: event_text(&f.body),
            description: None,
            response_json: event_text(&f.response_json),
        }),
        _ => None,
    };
    reply.unwrap_or_else(|| Content::Unsupported {
        type_name: S::from_string(format!("interactive.{}", label(sub))),
        errors: Vec::new(),
    })
}

fn shared_contact<'a, S: BodyText<'a>>(c: &wa::SharedContact<'a>) -> SharedContact<S> {
    let name = c.name.as_ref().and_then(|n| {
        non_empty(&n.formatted_name).or_else(|| {
            let parts: Vec<&str> = [n.first_name.as_deref(), n.last_name.as_deref()]
                .into_iter()
                .flatten()
                .collect();
            (!parts.is_empty()).then(|| S::from_string(parts.join(" ")))
        })
    });
    SharedContact {
        name,
        phones: c
            .phones
            .iter()
            .filter_map(Item::ok)
            .map(|p| SharedPhone {
                phone: event_text(&p.phone),
                wa_id: event_text(&p.wa_id),
                phone_type: event_text(&p.kind),
            })
            .collect(),
        emails: c
            .emails
            .iter()
            .filter_map(Item::ok)
            .filter_map(|e| event_text(&e.email))
            .collect(),
        organization: c.org.as_ref().and_then(|o| event_text(&o.company)),
        urls: c
            .urls
            .iter()
            .filter_map(Item::ok)
            .filter_map(|u| event_text(&u.url))
            .collect(),
    }
}
