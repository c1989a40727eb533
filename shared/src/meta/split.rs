//! One webhook delivery → every canonical event in it.
//!
//! Meta batches: one POST can hold several entries, each with several changes (WhatsApp) or
//! messaging items (Instagram), each change with several messages, echoes and statuses.
//! Everything is returned, in delivery order (entries in order; within a WhatsApp change:
//! messages, then echoes, then statuses, then account errors). Duplicates are kept:
//! deduplication is the worker's job, by `provider_event_id`.
//!
//! The JSON is parsed once; each item is then read on its own, so one odd item is counted
//! and skipped (or kept as `Unsupported`), never an error for the batch. Items that are not
//! ours to relay are counted in [`Ignored`] under these reasons, for the caller's log:
//!
//! - `whatsapp:field:<field>`: a webhook field other than `messages` / `smb_message_echoes`
//!   (`history`, `smb_app_state_sync`, `user_preferences`, `account_update`, …);
//! - `whatsapp:missing_phone_number_id`: a change without a valid `metadata.phone_number_id`
//!   (counted once per item it held, at least once): without it nothing can be routed;
//! - `whatsapp:group_message`: a message in a group chat (Open Lines are one-to-one);
//! - `whatsapp:status:<status>`: a status other than sent/delivered/read/played/failed;
//! - `whatsapp:unidentified_customer` / `instagram:unidentified_customer`: neither a valid
//!   BSUID nor phone (WhatsApp), or no valid IGSID (Instagram);
//! - `whatsapp:malformed_<entry|change|message|echo|status>`, `instagram:malformed_<…>`:
//!   unreadable, or without a valid message id;
//! - `instagram:standby`: events of conversations another app controls (handover);
//! - `instagram:field:<field>`: `changes[]` items (comments, mentions…);
//! - `instagram:missing_account`: no valid account id in `entry[].id` nor on the business side;
//! - `instagram:read_by_business`: the business read a customer's message;
//! - `instagram:<key>`: a messaging item of another kind (`referral` alone, `optin`, …);
//! - `object:<name>`: in a top-level array, an element of an unsupported `object`.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::ids::{InstagramAccountId, PhoneNumberId};

use super::event::{
    AccountRef, Billing, Content, CustomerId, CustomerRef, DeliveryStatus, EventKind, InboundEvent,
    Location, Media, MediaKind, MetaError, Order, OrderItem, Party, Referral, ReferredProduct,
    ReplyTo, SharedContact, SharedPhone, EVENT_SCHEMA_VERSION,
};
use super::ids::{InstagramUserId, MessageId, WhatsAppPhone, WhatsAppUserId};
use super::lenient::{label, to_unix_seconds};
use super::{instagram as ig, whatsapp as wa};

/// `object` of WhatsApp Cloud API webhooks.
pub const WHATSAPP_OBJECT: &str = "whatsapp_business_account";
/// `object` of Instagram Messaging webhooks.
pub const INSTAGRAM_OBJECT: &str = "instagram";

/// Every event of one delivery, and what was left out.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WebhookBatch {
    pub events: Vec<InboundEvent>,
    pub ignored: Ignored,
}

/// Counts of items not turned into events, by reason (see the module documentation). The
/// reasons are fixed words and Meta field names, never ids or message content: safe to log.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct Ignored(BTreeMap<String, u32>);

impl Ignored {
    fn add(&mut self, reason: impl Into<String>) {
        self.add_n(reason, 1);
    }

    fn add_n(&mut self, reason: impl Into<String>, n: u32) {
        *self.0.entry(reason.into()).or_default() += n;
    }

    pub fn total(&self) -> u32 {
        self.0.values().sum()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn get(&self, reason: &str) -> u32 {
        self.0.get(reason).copied().unwrap_or(0)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, u32)> {
        self.0.iter().map(|(k, v)| (k.as_str(), *v))
    }
}

/// Why a body could not be split. Messages never quote the body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookParseError {
    /// Not JSON at all: answer 400 (the signature was valid, so log it: Meta sent junk).
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    /// JSON, but not shaped like a Meta webhook (no `object`, no `entry` array): answer 400.
    #[error("not a Meta webhook: {0}")]
    NotAWebhook(&'static str),
    /// A well-formed webhook for a product we do not relay (`page`, `user`, …): answer 200 so
    /// Meta does not retry, and ignore it. The name is sanitised.
    #[error("unsupported webhook object {0:?}")]
    UnsupportedObject(String),
}

impl WebhookParseError {
    /// True when the caller should acknowledge (200) and drop, rather than reject (400).
    pub fn is_ignorable(&self) -> bool {
        matches!(self, WebhookParseError::UnsupportedObject(_))
    }
}

/// Parses a (signature-verified) webhook body once and returns every event of every entry,
/// change, message, status and echo in it. A body may be one webhook object or, tolerated,
/// an array of them.
pub fn split_webhook(raw_body: &[u8]) -> Result<WebhookBatch, WebhookParseError> {
    let root: Value = serde_json::from_slice(raw_body).map_err(|e| {
        WebhookParseError::MalformedJson(format!(
            "{:?} error at line {} column {}",
            e.classify(),
            e.line(),
            e.column()
        ))
    })?;
    let mut batch = WebhookBatch::default();
    match &root {
        Value::Array(items) => {
            if items.is_empty() {
                return Err(WebhookParseError::NotAWebhook("empty array"));
            }
            let mut supported = false;
            let mut first_unsupported = None;
            for item in items {
                match split_object(item, &mut batch) {
                    Ok(()) => supported = true,
                    Err(WebhookParseError::UnsupportedObject(name)) => {
                        batch.ignored.add(format!("object:{name}"));
                        first_unsupported.get_or_insert(name);
                    }
                    Err(e) => return Err(e),
                }
            }
            if !supported {
                return Err(WebhookParseError::UnsupportedObject(
                    first_unsupported.unwrap_or_default(),
                ));
            }
        }
        other => split_object(other, &mut batch)?,
    }
    Ok(batch)
}

fn split_object(v: &Value, batch: &mut WebhookBatch) -> Result<(), WebhookParseError> {
    let obj = v
        .as_object()
        .ok_or(WebhookParseError::NotAWebhook("body is not a JSON object"))?;
    let object = obj
        .get("object")
        .and_then(Value::as_str)
        .ok_or(WebhookParseError::NotAWebhook("missing \"object\" string"))?;
    if object != WHATSAPP_OBJECT && object != INSTAGRAM_OBJECT {
        return Err(WebhookParseError::UnsupportedObject(label(object)));
    }
    let entries = obj
        .get("entry")
        .and_then(Value::as_array)
        .ok_or(WebhookParseError::NotAWebhook("missing \"entry\" array"))?;
    for entry in entries {
        if object == WHATSAPP_OBJECT {
            whatsapp_entry(entry, batch);
        } else {
            instagram_entry(entry, batch);
        }
    }
    Ok(())
}

fn event(
    account: &AccountRef,
    provider_event_id: String,
    timestamp: Option<i64>,
    kind: EventKind,
) -> InboundEvent {
    InboundEvent {
        schema: EVENT_SCHEMA_VERSION,
        account: account.clone(),
        provider_event_id,
        timestamp,
        kind,
    }
}

fn message_id(s: Option<&str>) -> Option<MessageId> {
    s.and_then(|s| MessageId::parse(s).ok())
}

fn non_empty(s: &Option<String>) -> Option<String> {
    s.as_ref().filter(|s| !s.trim().is_empty()).cloned()
}

fn meta_errors(errors: &[wa::ErrorObject]) -> Vec<MetaError> {
    errors
        .iter()
        .map(|e| MetaError {
            code: e.code,
            title: e.title.clone(),
            message: e.message.clone(),
            details: e.error_data.as_ref().and_then(|d| d.details.clone()),
            href: e.href.clone(),
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// WhatsApp

fn whatsapp_entry(raw: &Value, batch: &mut WebhookBatch) {
    let Ok(entry) = wa::Entry::deserialize(raw) else {
        batch.ignored.add("whatsapp:malformed_entry");
        return;
    };
    for raw_change in &entry.changes {
        let Ok(change) = wa::Change::deserialize(raw_change) else {
            batch.ignored.add("whatsapp:malformed_change");
            continue;
        };
        let field = change.field.as_deref().unwrap_or_default();
        if field != "messages" && field != "smb_message_echoes" {
            batch
                .ignored
                .add(format!("whatsapp:field:{}", label(field)));
            continue;
        }
        let Some(value) = change
            .value
            .as_ref()
            .and_then(|v| wa::ChangeValue::deserialize(v).ok())
        else {
            batch.ignored.add("whatsapp:malformed_change");
            continue;
        };
        let account = value
            .metadata
            .as_ref()
            .and_then(|m| m.phone_number_id.as_deref())
            .and_then(|id| PhoneNumberId::parse(id).ok());
        let Some(account) = account else {
            let items = value.messages.len()
                + value.message_echoes.len()
                + value.statuses.len()
                + value.errors.len();
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
        if !value.errors.is_empty() {
            ctx.account_errors(&value.errors, batch);
        }
    }
}

/// What all items of one WhatsApp change share.
struct WaChange<'a> {
    account: AccountRef,
    contacts: &'a [wa::Contact],
}

impl WaChange<'_> {
    /// The customer an item names, completed from `value.contacts`: the contact whose BSUID
    /// or phone matches, or the only contact when nothing contradicts it. Identity is the
    /// BSUID when there is one, else the phone.
    fn customer(
        &self,
        user_id: Option<&str>,
        phone: Option<&str>,
        parent_user_id: Option<&str>,
    ) -> Option<CustomerRef> {
        let mut uid = user_id.and_then(|s| WhatsAppUserId::parse(s).ok());
        let mut ph = phone.and_then(|s| WhatsAppPhone::parse(s).ok());
        let contact_uid = |c: &wa::Contact| {
            c.user_id
                .as_deref()
                .and_then(|s| WhatsAppUserId::parse(s).ok())
        };
        let contact_ph = |c: &wa::Contact| {
            c.wa_id
                .as_deref()
                .and_then(|s| WhatsAppPhone::parse(s).ok())
        };
        let compatible = |c: &wa::Contact| {
            let u = contact_uid(c);
            let p = contact_ph(c);
            (uid.is_none() || u.is_none() || u == uid) && (ph.is_none() || p.is_none() || p == ph)
        };
        let matches = |c: &wa::Contact| {
            (uid.is_some() && contact_uid(c) == uid) || (ph.is_some() && contact_ph(c) == ph)
        };
        let contact = self
            .contacts
            .iter()
            .find(|c| matches(c) && compatible(c))
            .or_else(|| match self.contacts {
                [only] if compatible(only) => Some(only),
                _ => None,
            });
        let mut parent = parent_user_id.and_then(|s| WhatsAppUserId::parse(s).ok());
        let (mut name, mut username) = (None, None);
        if let Some(c) = contact {
            uid = uid.or_else(|| contact_uid(c));
            ph = ph.or_else(|| contact_ph(c));
            parent = parent.or_else(|| {
                c.parent_user_id
                    .as_deref()
                    .and_then(|s| WhatsAppUserId::parse(s).ok())
            });
            if let Some(p) = &c.profile {
                name = non_empty(&p.name);
                username = non_empty(&p.username);
            }
        }
        let id = match (&uid, &ph) {
            (Some(u), _) => CustomerId::WhatsAppUser(u.clone()),
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

    fn message(&self, raw: &Value, batch: &mut WebhookBatch) {
        let msg = match wa::Message::deserialize(raw) {
            Ok(m) => m,
            Err(_) => return self.malformed_message(raw, batch),
        };
        if msg.group_id.is_some() {
            batch.ignored.add("whatsapp:group_message");
            return;
        }
        let Some(id) = message_id(msg.id.as_deref()) else {
            batch.ignored.add("whatsapp:malformed_message");
            return;
        };
        let Some(customer) = self.customer(
            msg.from_user_id.as_deref(),
            msg.from.as_deref(),
            msg.from_parent_user_id.as_deref(),
        ) else {
            batch.ignored.add("whatsapp:unidentified_customer");
            return;
        };
        let provider = format!("wa:msg:{id}");
        let kind = match special(&msg.body, customer.clone(), Party::Customer) {
            Some(kind) => kind,
            None => {
                let ctx = msg.context.as_ref();
                EventKind::CustomerMessage {
                    customer,
                    message_id: id,
                    content: wa_content(&msg.body, &msg.errors),
                    reply_to: wa_reply_to(ctx),
                    referral: msg.referral.as_ref().map(|r| Box::new(wa_referral(r))),
                    referred_product: ctx.and_then(|c| c.referred_product.as_ref()).map(|p| {
                        ReferredProduct {
                            catalog_id: p.catalog_id.clone(),
                            product_retailer_id: p.product_retailer_id.clone(),
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
    fn malformed_message(&self, raw: &Value, batch: &mut WebhookBatch) {
        let head = wa::MessageHead::deserialize(raw).unwrap_or_default();
        if head.group_id.is_some() {
            batch.ignored.add("whatsapp:group_message");
            return;
        }
        let Some(id) = message_id(head.id.as_deref()) else {
            batch.ignored.add("whatsapp:malformed_message");
            return;
        };
        let Some(customer) =
            self.customer(head.from_user_id.as_deref(), head.from.as_deref(), None)
        else {
            batch.ignored.add("whatsapp:unidentified_customer");
            return;
        };
        let kind = EventKind::CustomerMessage {
            customer,
            message_id: id.clone(),
            content: Content::Unsupported {
                type_name: label(head.kind.as_deref().unwrap_or("malformed")),
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
            format!("wa:msg:{id}"),
            head.timestamp,
            kind,
        ));
    }

    fn echo(&self, raw: &Value, batch: &mut WebhookBatch) {
        let Ok(echo) = wa::MessageEcho::deserialize(raw) else {
            batch.ignored.add("whatsapp:malformed_echo");
            return;
        };
        let Some(id) = message_id(echo.id.as_deref()) else {
            batch.ignored.add("whatsapp:malformed_echo");
            return;
        };
        let Some(customer) = self.customer(
            echo.to_user_id.as_deref(),
            echo.to.as_deref(),
            echo.to_parent_user_id.as_deref(),
        ) else {
            batch.ignored.add("whatsapp:unidentified_customer");
            return;
        };
        let kind = special(&echo.body, customer.clone(), Party::Business).unwrap_or_else(|| {
            EventKind::BusinessEcho {
                customer,
                message_id: id.clone(),
                content: wa_content(&echo.body, &[]),
                reply_to: wa_reply_to(echo.context.as_ref()),
                app_id: None,
            }
        });
        batch.events.push(event(
            &self.account,
            format!("wa:echo:{id}"),
            echo.timestamp,
            kind,
        ));
    }

    fn status(&self, raw: &Value, batch: &mut WebhookBatch) {
        let Ok(s) = wa::Status::deserialize(raw) else {
            batch.ignored.add("whatsapp:malformed_status");
            return;
        };
        let Some(id) = message_id(s.id.as_deref()) else {
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
                s.recipient_user_id.as_deref(),
                s.recipient_id.as_deref(),
                s.recipient_parent_user_id.as_deref(),
            )
        };
        let billing = (s.pricing.is_some() || s.conversation.is_some()).then(|| {
            let p = s.pricing.clone().unwrap_or_default();
            let c = s.conversation.clone().unwrap_or_default();
            Billing {
                billable: p.billable,
                pricing_model: p.pricing_model,
                pricing_type: p.kind,
                category: p.category,
                conversation_id: c.id,
                conversation_origin: c.origin.and_then(|o| o.kind),
                conversation_expires_at: c.expiration_timestamp,
            }
        });
        let provider = format!("wa:status:{id}:{name}");
        let kind = EventKind::Status {
            message_id: id,
            recipient,
            status,
            billing,
        };
        batch
            .events
            .push(event(&self.account, provider, s.timestamp, kind));
    }

    /// `value.errors` carries no id nor time: the key is a digest of the errors, so a
    /// redelivery of the same errors dedupes.
    fn account_errors(&self, errors: &[wa::ErrorObject], batch: &mut WebhookBatch) {
        let errors = meta_errors(errors);
        let digest = Sha256::digest(serde_json::to_vec(&errors).unwrap_or_default());
        let provider = format!("wa:errors:{}", hex::encode(&digest[..16]));
        batch.events.push(event(
            &self.account,
            provider,
            None,
            EventKind::AccountError { errors },
        ));
    }
}

/// Reactions, edits and revokes are messages on the wire but other effects here.
fn special(body: &wa::MessageBody, customer: CustomerRef, by: Party) -> Option<EventKind> {
    match body.kind.as_deref()? {
        "reaction" => {
            let r = body.reaction.as_ref()?;
            Some(EventKind::Reaction {
                customer,
                message_id: message_id(r.message_id.as_deref())?,
                emoji: non_empty(&r.emoji),
                by,
            })
        }
        "edit" => {
            let e = body.edit.as_ref()?;
            let content = match &e.message {
                Some(m) => wa_content(&m.body, &[]),
                None => Content::Unsupported {
                    type_name: "edit".into(),
                    errors: Vec::new(),
                },
            };
            Some(EventKind::Edited {
                customer,
                message_id: message_id(e.original_message_id.as_deref())?,
                content,
                by,
                edit_count: None,
            })
        }
        "revoke" => Some(EventKind::Deleted {
            customer,
            message_id: message_id(body.revoke.as_ref()?.original_message_id.as_deref())?,
            by,
        }),
        _ => None,
    }
}

fn wa_reply_to(ctx: Option<&wa::Context>) -> Option<ReplyTo> {
    let id = message_id(ctx?.id.as_deref())?;
    Some(ReplyTo::Message { message_id: id })
}

fn wa_referral(r: &wa::Referral) -> Referral {
    Referral {
        source_type: r.source_type.clone(),
        source_id: r.source_id.clone(),
        source_url: r.source_url.clone(),
        headline: r.headline.clone(),
        body: r.body.clone(),
        media_type: r.media_type.clone(),
        media_url: r.image_url.clone().or_else(|| r.video_url.clone()),
        thumbnail_url: r.thumbnail_url.clone(),
        click_id: r.ctwa_clid.clone(),
        welcome_text: r.welcome_message.as_ref().and_then(|w| w.text.clone()),
        ref_param: None,
    }
}

fn wa_media(kind: MediaKind, m: &wa::Media) -> Content {
    Content::Media(Media {
        kind,
        media_id: m.id.clone(),
        url: m.url.clone(),
        mime_type: m.mime_type.clone(),
        caption: m.caption.clone(),
        filename: m.filename.clone(),
        sha256: m.sha256.clone(),
        voice: m.voice,
        animated: m.animated,
    })
}

/// The content of a message, an echo or an edit. A type we do not know, or a known type
/// whose object is missing, becomes `Unsupported` with the type's name.
fn wa_content(body: &wa::MessageBody, errors: &[wa::ErrorObject]) -> Content {
    let kind = body.kind.as_deref().unwrap_or("missing");
    let content = match kind {
        "text" => body
            .text
            .as_ref()
            .and_then(|t| t.body.clone())
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
                name: l.name.clone(),
                address: l.address.clone(),
                url: l.url.clone(),
            })
        }),
        "contacts" => (!body.contacts.is_empty()).then(|| Content::Contacts {
            contacts: body.contacts.iter().map(shared_contact).collect(),
        }),
        "interactive" => body.interactive.as_ref().map(interactive),
        "button" => body.button.as_ref().map(|b| Content::Button {
            payload: b.payload.clone(),
            text: b.text.clone(),
        }),
        "order" => body.order.as_ref().map(|o| {
            Content::Order(Order {
                catalog_id: o.catalog_id.clone(),
                text: o.text.clone(),
                items: o
                    .product_items
                    .iter()
                    .map(|i| OrderItem {
                        product_retailer_id: i.product_retailer_id.clone(),
                        quantity: i.quantity,
                        item_price: i.item_price.clone(),
                        currency: i.currency.clone(),
                    })
                    .collect(),
            })
        }),
        "system" => body.system.as_ref().map(|s| Content::System {
            body: s.body.clone(),
            system_type: s.kind.clone(),
            new_phone: s
                .wa_id
                .as_deref()
                .and_then(|p| WhatsAppPhone::parse(p).ok()),
            new_user_id: s
                .user_id
                .as_deref()
                .and_then(|u| WhatsAppUserId::parse(u).ok()),
        }),
        "unsupported" => Some(Content::Unsupported {
            type_name: label(
                body.unsupported
                    .as_ref()
                    .and_then(|u| u.kind.as_deref())
                    .unwrap_or("unsupported"),
            ),
            errors: meta_errors(errors),
        }),
        _ => None,
    };
    content.unwrap_or_else(|| Content::Unsupported {
        type_name: label(kind),
        errors: meta_errors(errors),
    })
}

fn interactive(i: &wa::Interactive) -> Content {
    let sub = i.kind.as_deref().unwrap_or("missing");
    let choice = |c: &wa::Choice| Content::InteractiveReply {
        reply_type: sub.to_string(),
        id: c.id.clone(),
        title: c.title.clone(),
        description: c.description.clone(),
        response_json: None,
    };
    let reply = match sub {
        "button_reply" => i.button_reply.as_ref().map(choice),
        "list_reply" => i.list_reply.as_ref().map(choice),
        "nfm_reply" => i.nfm_reply.as_ref().map(|f| Content::InteractiveReply {
            reply_type: sub.to_string(),
            id: f.name.clone(),
            title: f.body.clone(),
            description: None,
            response_json: f.response_json.clone(),
        }),
        _ => None,
    };
    reply.unwrap_or_else(|| Content::Unsupported {
        type_name: format!("interactive.{}", label(sub)),
        errors: Vec::new(),
    })
}

fn shared_contact(c: &wa::SharedContact) -> SharedContact {
    let name = c.name.as_ref().and_then(|n| {
        non_empty(&n.formatted_name).or_else(|| {
            let parts: Vec<&str> = [n.first_name.as_deref(), n.last_name.as_deref()]
                .into_iter()
                .flatten()
                .collect();
            (!parts.is_empty()).then(|| parts.join(" "))
        })
    });
    SharedContact {
        name,
        phones: c
            .phones
            .iter()
            .map(|p| SharedPhone {
                phone: p.phone.clone(),
                wa_id: p.wa_id.clone(),
                phone_type: p.kind.clone(),
            })
            .collect(),
        emails: c.emails.iter().filter_map(|e| e.email.clone()).collect(),
        organization: c.org.as_ref().and_then(|o| o.company.clone()),
        urls: c.urls.iter().filter_map(|u| u.url.clone()).collect(),
    }
}

// ---------------------------------------------------------------------------------------
// Instagram

fn instagram_entry(raw: &Value, batch: &mut WebhookBatch) {
    let Ok(entry) = ig::Entry::deserialize(raw) else {
        batch.ignored.add("instagram:malformed_entry");
        return;
    };
    if !entry.standby.is_empty() {
        let n = u32::try_from(entry.standby.len()).unwrap_or(u32::MAX);
        batch.ignored.add_n("instagram:standby", n);
    }
    for change in &entry.changes {
        let field = change
            .get("field")
            .and_then(Value::as_str)
            .unwrap_or("none");
        batch
            .ignored
            .add(format!("instagram:field:{}", label(field)));
    }
    let account = entry
        .id
        .as_deref()
        .and_then(|id| InstagramAccountId::parse(id).ok());
    for m in &entry.messaging {
        instagram_messaging(m, account.as_ref(), entry.time, batch);
    }
}

/// The minimum of a messaging item that failed to parse as a whole.
#[derive(Default, Deserialize)]
struct IgHead {
    #[serde(default)]
    sender: Option<ig::Party>,
    #[serde(default)]
    recipient: Option<ig::Party>,
    #[serde(default, deserialize_with = "super::lenient::int")]
    timestamp: Option<i64>,
    #[serde(default)]
    message: Option<IgHeadMessage>,
}

#[derive(Default, Deserialize)]
struct IgHeadMessage {
    #[serde(default, deserialize_with = "super::lenient::text")]
    mid: Option<String>,
    #[serde(default, deserialize_with = "super::lenient::flag")]
    is_echo: bool,
}

fn instagram_messaging(
    raw: &Value,
    entry_account: Option<&InstagramAccountId>,
    entry_time: Option<i64>,
    batch: &mut WebhookBatch,
) {
    let parsed = ig::Messaging::deserialize(raw);
    let (sender, recipient, ts_ms, is_echo) = match &parsed {
        Ok(ev) => (
            ev.sender.as_ref().and_then(|p| p.id.clone()),
            ev.recipient.as_ref().and_then(|p| p.id.clone()),
            ev.timestamp,
            ev.message.as_ref().is_some_and(|m| m.is_echo),
        ),
        Err(_) => {
            let h = IgHead::deserialize(raw).unwrap_or_default();
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
        business
            .as_deref()
            .and_then(|id| InstagramAccountId::parse(id).ok())
    });
    let Some(account) = account else {
        batch.ignored.add("instagram:missing_account");
        return;
    };
    // The business is the sender of echoes and of anything it does from the Instagram app.
    let by_business = is_echo || sender.as_deref() == Some(account.as_str());
    let customer_side = if by_business { &recipient } else { &sender };
    let Some(customer_id) = customer_side
        .as_deref()
        .and_then(|id| InstagramUserId::parse(id).ok())
    else {
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
    match parsed {
        Ok(ev) => ig.dispatch(ev, raw, batch),
        Err(_) => ig.malformed(raw, batch),
    }
}

/// What one Instagram messaging item resolved to before its payload is read.
struct IgItem {
    account: AccountRef,
    customer: CustomerRef,
    by: Party,
    /// Milliseconds, as Instagram sends them.
    ts_ms: Option<i64>,
}

impl IgItem {
    fn push(&self, batch: &mut WebhookBatch, provider: String, kind: EventKind) {
        let ts = self.ts_ms.map(to_unix_seconds);
        batch.events.push(event(&self.account, provider, ts, kind));
    }

    fn ts_text(&self) -> String {
        self.ts_ms.map(|t| t.to_string()).unwrap_or_default()
    }

    fn dispatch(&self, ev: ig::Messaging, raw: &Value, batch: &mut WebhookBatch) {
        let customer = self.customer.clone();
        let who = customer.id.as_str().to_owned();
        if let Some(msg) = ev.message {
            let Some(mid) = message_id(msg.mid.as_deref()) else {
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
            let content = ig_content(&msg);
            let reply_to = msg.reply_to.as_ref().and_then(ig_reply_to);
            if self.by == Party::Business {
                let kind = EventKind::BusinessEcho {
                    customer,
                    message_id: mid.clone(),
                    content,
                    reply_to,
                    app_id: msg.app_id.clone(),
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
        } else if let Some(edit) = ev.message_edit {
            let Some(mid) = message_id(edit.mid.as_deref()) else {
                batch.ignored.add("instagram:malformed_edit");
                return;
            };
            let version = edit
                .num_edit
                .map(|n| n.to_string())
                .unwrap_or_else(|| self.ts_text());
            let content = match edit.text {
                Some(body) => Content::Text { body },
                None => Content::Unsupported {
                    type_name: "edit".into(),
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
        } else if let Some(r) = ev.reaction {
            let Some(mid) = message_id(r.mid.as_deref()) else {
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
        } else if let Some(read) = ev.read {
            if self.by == Party::Business {
                batch.ignored.add("instagram:read_by_business");
                return;
            }
            let mid = message_id(read.mid.as_deref());
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
        } else if let Some(pb) = ev.postback {
            let mid = message_id(pb.mid.as_deref());
            let provider = match &mid {
                Some(m) => format!("ig:postback:{m}"),
                None => format!("ig:postback:{who}:{}", self.ts_text()),
            };
            let kind = EventKind::Postback {
                customer,
                message_id: mid,
                title: pb.title,
                payload: pb.payload,
            };
            self.push(batch, provider, kind);
        } else {
            let key = raw
                .as_object()
                .and_then(|o| {
                    o.keys()
                        .find(|k| !matches!(k.as_str(), "sender" | "recipient" | "timestamp"))
                })
                .map(|k| label(k))
                .unwrap_or_else(|| "empty".into());
            batch.ignored.add(format!("instagram:{key}"));
        }
    }

    /// A messaging item whose payload does not parse: a message with a readable `mid` is
    /// kept as `Unsupported`, anything else is counted.
    fn malformed(&self, raw: &Value, batch: &mut WebhookBatch) {
        let head = IgHead::deserialize(raw).unwrap_or_default();
        let Some(mid) = head
            .message
            .as_ref()
            .and_then(|m| message_id(m.mid.as_deref()))
        else {
            batch.ignored.add("instagram:malformed_messaging");
            return;
        };
        let content = Content::Unsupported {
            type_name: "malformed".into(),
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
fn ig_content(msg: &ig::Message) -> Content {
    let mut parts = Vec::new();
    if let Some(text) = non_empty(&msg.text) {
        parts.push(match &msg.quick_reply {
            Some(q) => Content::Button {
                payload: q.payload.clone(),
                text: Some(text),
            },
            None => Content::Text { body: text },
        });
    }
    parts.extend(msg.attachments.iter().map(ig_attachment));
    if msg.is_unsupported {
        parts.push(Content::Unsupported {
            type_name: "instagram_unsupported".into(),
            errors: Vec::new(),
        });
    }
    match parts.len() {
        0 => Content::Unsupported {
            type_name: "empty".into(),
            errors: Vec::new(),
        },
        1 => parts.remove(0),
        _ => Content::Multiple { parts },
    }
}

fn ig_attachment(a: &ig::Attachment) -> Content {
    let kind = a.kind.as_deref().unwrap_or("missing");
    let payload = a.payload.clone().unwrap_or_default();
    let media = |k: MediaKind| {
        let mut m = Media::new(k);
        m.url = payload.url.clone();
        Content::Media(m)
    };
    match kind {
        "image" if payload.sticker_id.is_some() => media(MediaKind::Sticker),
        "image" => media(MediaKind::Image),
        "video" => media(MediaKind::Video),
        "audio" => media(MediaKind::Audio),
        "file" => media(MediaKind::File),
        "story_mention" => Content::StoryMention { url: payload.url },
        "share" | "ig_reel" | "reel" | "ig_post" | "post" | "fallback" => Content::Share {
            share_type: kind.to_string(),
            url: payload.url,
            title: payload.title,
        },
        other => Content::Unsupported {
            type_name: label(other),
            errors: Vec::new(),
        },
    }
}

fn ig_reply_to(r: &ig::ReplyTo) -> Option<ReplyTo> {
    if let Some(story) = &r.story {
        return Some(ReplyTo::Story {
            story_id: story.id.clone(),
            url: story.url.clone(),
        });
    }
    Some(ReplyTo::Message {
        message_id: message_id(r.mid.as_deref())?,
    })
}

fn ig_referral(r: &ig::Referral) -> Referral {
    let ads = r.ads_context_data.clone().unwrap_or_default();
    Referral {
        source_type: r.source.clone().or_else(|| r.kind.clone()),
        source_id: r.ad_id.clone(),
        headline: ads.ad_title,
        media_url: ads.photo_url.or(ads.video_url),
        ref_param: r.ref_param.clone(),
        ..Referral::default()
    }
}
