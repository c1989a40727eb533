//! The one canonical inbound event every Meta webhook item becomes, whatever the product or
//! payload shape. It is the inbound queue's message body (JSON), so it is versioned
//! ([`EVENT_SCHEMA_VERSION`]), carries the exact routing id of the business account, and a
//! provider event id that is unique per effect and serves as the idempotency key.

use serde::{Deserialize, Serialize};

use crate::ids::ChannelKind;
use crate::ids::{InstagramAccountId, InvalidId, PhoneNumberId, Text};

use super::ids::{InstagramUserId, MessageId, WhatsAppPhone, WhatsAppUserId};

// A message's content has a module of its own (`super::content`); its types are named from
// here too, where the events that carry it are.
pub use super::content::{
    Content, Location, Media, MediaKind, Order, OrderItem, SharedContact, SharedPhone,
};

/// Version of the [`InboundEvent`] JSON shape; bump on an incompatible change.
pub const EVENT_SCHEMA_VERSION: u32 = 1;

/// One effect of a webhook delivery: a message, an edit, a status, a reaction…
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InboundEvent<S: Text = String> {
    pub schema: u32,
    /// The business account the event belongs to: the exact routing id.
    pub account: AccountRef<S>,
    /// Unique per effect, stable across Meta's redeliveries: the idempotency key (scoped to
    /// `account`). Built as `<product>:<what>:<Meta ids…>`, e.g. `wa:msg:wamid.…`,
    /// `wa:status:wamid.…:read`, `ig:reaction:<mid>:<igsid>:react:<ms>`.
    pub provider_event_id: S,
    /// When it happened (unix seconds), as Meta reports it; absent only where Meta sends no
    /// time (account-level errors).
    pub timestamp: Option<i64>,
    pub kind: EventKind<S>,
}

impl<S: Text> InboundEvent<S> {
    /// The owned event, as the inbound worker reads it from this event's job: its JSON read
    /// back. For the intake's rare paths that need to own or rewrite a borrowed event.
    pub fn to_owned_event(&self) -> Result<InboundEvent, serde_json::Error> {
        serde_json::from_slice(&serde_json::to_vec(self)?)
    }

    /// The customer the event is about, when there is one (not for account errors, nor for
    /// statuses whose recipient Meta did not identify).
    pub fn customer(&self) -> Option<&CustomerRef<S>> {
        match &self.kind {
            EventKind::CustomerMessage { customer, .. }
            | EventKind::BusinessEcho { customer, .. }
            | EventKind::Edited { customer, .. }
            | EventKind::Deleted { customer, .. }
            | EventKind::Reaction { customer, .. }
            | EventKind::Read { customer, .. }
            | EventKind::Handover { customer, .. }
            | EventKind::Postback { customer, .. }
            | EventKind::HistoryMessage { customer, .. }
            | EventKind::ContactSync { customer, .. } => Some(customer),
            EventKind::Status { recipient, .. } => recipient.as_ref(),
            EventKind::AccountError { .. }
            | EventKind::AccountUpdate { .. }
            | EventKind::HistoryProgress { .. }
            | EventKind::Mention { .. } => None,
        }
    }

    /// The provider's id of the message the event is about (a wamid, an Instagram mid), when
    /// there is one. Personal data: log only its digest.
    pub fn message_id(&self) -> Option<&str> {
        match &self.kind {
            EventKind::CustomerMessage { message_id, .. }
            | EventKind::BusinessEcho { message_id, .. }
            | EventKind::Edited { message_id, .. }
            | EventKind::Deleted { message_id, .. }
            | EventKind::Reaction { message_id, .. }
            | EventKind::Status { message_id, .. }
            | EventKind::HistoryMessage { message_id, .. } => Some(message_id.as_str()),
            EventKind::Read { message_id, .. } | EventKind::Postback { message_id, .. } => {
                message_id.as_ref().map(|m| m.as_str())
            }
            EventKind::AccountError { .. }
            | EventKind::AccountUpdate { .. }
            | EventKind::Handover { .. }
            | EventKind::HistoryProgress { .. }
            | EventKind::ContactSync { .. }
            | EventKind::Mention { .. } => None,
        }
    }
}

/// The business account, typed by product: WhatsApp `metadata.phone_number_id`, Instagram
/// `entry[].id`. Serialised as `{"channel": "whatsapp", "id": "106540352242922"}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "channel", content = "id")]
pub enum AccountRef<S: Text = String> {
    #[serde(rename = "whatsapp")]
    WhatsApp(PhoneNumberId<S>),
    #[serde(rename = "instagram")]
    Instagram(InstagramAccountId<S>),
}

/// Why an account named in an API request is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountParseError {
    #[error("channel: must be whatsapp or instagram")]
    Channel,
    #[error("account_id: {0}")]
    Id(InvalidId),
}

impl AccountRef {
    /// An account as the APIs name it: `channel` (`whatsapp` or `instagram`) and its exact id.
    pub fn parse(channel: &str, id: &str) -> Result<Self, AccountParseError> {
        match channel {
            "whatsapp" => PhoneNumberId::parse(id)
                .map(AccountRef::WhatsApp)
                .map_err(AccountParseError::Id),
            "instagram" => InstagramAccountId::parse(id)
                .map(AccountRef::Instagram)
                .map_err(AccountParseError::Id),
            _ => Err(AccountParseError::Channel),
        }
    }
}

impl<S: Text> AccountRef<S> {
    /// The owned account (the routing tables' key).
    pub fn to_owned_ref(&self) -> AccountRef {
        match self {
            AccountRef::WhatsApp(id) => AccountRef::WhatsApp(id.to_owned_id()),
            AccountRef::Instagram(id) => AccountRef::Instagram(id.to_owned_id()),
        }
    }

    pub fn channel(&self) -> ChannelKind {
        match self {
            AccountRef::WhatsApp(_) => ChannelKind::WhatsApp,
            AccountRef::Instagram(_) => ChannelKind::Instagram,
        }
    }

    pub fn id(&self) -> &str {
        match self {
            AccountRef::WhatsApp(id) => id.as_str(),
            AccountRef::Instagram(id) => id.as_str(),
        }
    }
}

/// A customer's identity within one business account.
///
/// WhatsApp: the business-scoped user id when Meta sends one (always, from April 2026), else
/// the phone (older payloads; `failed` statuses of messages sent to a phone). Instagram: the
/// Instagram-scoped user id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", content = "value")]
pub enum CustomerId<S: Text = String> {
    #[serde(rename = "whatsapp_user")]
    WhatsAppUser(WhatsAppUserId<S>),
    #[serde(rename = "whatsapp_phone")]
    WhatsAppPhone(WhatsAppPhone<S>),
    #[serde(rename = "instagram")]
    Instagram(InstagramUserId<S>),
}

impl CustomerId {
    /// A customer id as the APIs name it on `account`'s channel: on WhatsApp a business-scoped
    /// user id (`CC.xxxx`) or a phone number, on Instagram an Instagram-scoped id.
    pub fn parse_for(account: &AccountRef, s: &str) -> Result<Self, InvalidId> {
        match account {
            AccountRef::WhatsApp(_) if s.contains('.') => {
                WhatsAppUserId::parse(s).map(CustomerId::WhatsAppUser)
            }
            AccountRef::WhatsApp(_) => WhatsAppPhone::parse(s).map(CustomerId::WhatsAppPhone),
            AccountRef::Instagram(_) => InstagramUserId::parse(s).map(CustomerId::Instagram),
        }
    }
}

impl<S: Text> CustomerId<S> {
    pub fn as_str(&self) -> &str {
        match self {
            CustomerId::WhatsAppUser(id) => id.as_str(),
            CustomerId::WhatsAppPhone(p) => p.as_str(),
            CustomerId::Instagram(id) => id.as_str(),
        }
    }

    /// A key that cannot collide across id kinds (`bsuid:…`, `phone:…`, `igsid:…`).
    pub fn key(&self) -> String {
        match self {
            CustomerId::WhatsAppUser(id) => format!("bsuid:{id}"),
            CustomerId::WhatsAppPhone(p) => format!("phone:{p}"),
            CustomerId::Instagram(id) => format!("igsid:{id}"),
        }
    }
}

/// Who the customer is, with what Meta told about them in this delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerRef<S: Text = String> {
    pub id: CustomerId<S>,
    /// WhatsApp phone, when Meta included it (it may not, for users with a username).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<WhatsAppPhone<S>>,
    /// WhatsApp parent BSUID, for businesses enrolled in them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_user_id: Option<WhatsAppUserId<S>>,
    /// Profile name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<S>,
    /// WhatsApp username (2026), when the user has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<S>,
}

impl<S: Text> CustomerRef<S> {
    pub fn new(id: CustomerId<S>) -> Self {
        CustomerRef {
            id,
            phone: None,
            parent_user_id: None,
            name: None,
            username: None,
        }
    }
}

/// Who did it: edits, deletions and reactions come from either side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Party {
    Customer,
    /// The business, from the WhatsApp Business app (Coexistence) or the Instagram app.
    Business,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventKind<S: Text = String> {
    /// The customer wrote.
    CustomerMessage {
        customer: CustomerRef<S>,
        message_id: MessageId<S>,
        content: Content<S>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reply_to: Option<ReplyTo<S>>,
        /// Ad (or ig.me link) the conversation started from. Boxed: rare and large.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        referral: Option<Box<Referral<S>>>,
        /// The product a "Message business" button was tapped on.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        referred_product: Option<ReferredProduct<S>>,
        #[serde(default)]
        forwarded: bool,
        #[serde(default)]
        frequently_forwarded: bool,
    },
    /// The business wrote from the WhatsApp Business app (Coexistence `smb_message_echoes`)
    /// or Instagram (`is_echo`). Show it as outgoing; never send it again. An Instagram echo
    /// of our own send has the `mid` the Send API returned: the worker skips those.
    BusinessEcho {
        customer: CustomerRef<S>,
        message_id: MessageId<S>,
        content: Content<S>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reply_to: Option<ReplyTo<S>>,
        /// The app that sent it, when Meta says.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        app_id: Option<S>,
        /// Sent by the app that held a WhatsApp conversation on Meta's side (Meta's
        /// Business Agent), read from a `standby` echo (decision 0065), not by the business.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        from_agent: bool,
    },
    /// `message_id` now reads `content`.
    Edited {
        customer: CustomerRef<S>,
        message_id: MessageId<S>,
        content: Content<S>,
        by: Party,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        edit_count: Option<u64>,
    },
    /// `message_id` was deleted (WhatsApp revoke, Instagram unsend).
    Deleted {
        customer: CustomerRef<S>,
        message_id: MessageId<S>,
        by: Party,
    },
    /// A reaction to `message_id`; `emoji: None` removes the reaction.
    Reaction {
        customer: CustomerRef<S>,
        message_id: MessageId<S>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        emoji: Option<S>,
        by: Party,
    },
    /// A WhatsApp delivery status of a message the business sent.
    Status {
        message_id: MessageId<S>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        recipient: Option<CustomerRef<S>>,
        status: DeliveryStatus<S>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        billing: Option<Billing<S>>,
        /// `biz_opaque_callback_data`: the tag the business gave the message when sending it
        /// (the send worker's attempt tag, decision 0055).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        callback: Option<S>,
    },
    /// The customer saw our message `message_id` (Instagram), or everything before
    /// `watermark` (older Instagram payloads, milliseconds).
    Read {
        customer: CustomerRef<S>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message_id: Option<MessageId<S>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        watermark: Option<i64>,
    },
    /// The customer tapped an Instagram icebreaker or template button.
    Postback {
        customer: CustomerRef<S>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message_id: Option<MessageId<S>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        title: Option<S>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        payload: Option<S>,
    },
    /// Errors about the WhatsApp account or app (`value.errors`), not about one message.
    AccountError { errors: Vec<MetaError<S>> },
    /// A WhatsApp account or number event (restriction, ban, quality, name, limits), routed
    /// to this number by the intake from its WABA.
    AccountUpdate {
        update: super::account::AccountUpdate,
    },
    /// Instagram Handover Protocol: the conversation's control changed (`pass`, `take`,
    /// `request`), for instance to or from Meta's agent. WhatsApp Conversation Routing
    /// (decision 0065): `control_passed`, `control_taken`, or `standby` (a customer message
    /// arrived on the `standby` field: another responder holds the conversation).
    Handover {
        customer: CustomerRef<S>,
        action: S,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        new_owner_app_id: Option<S>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        previous_owner_app_id: Option<S>,
        /// Whether the operators' app holds the conversation now, when the notification
        /// itself says so (WhatsApp: `control_passed` goes to the new owner, `control_taken`
        /// and standby copies to an app that does not hold it). None: decided by comparing
        /// `new_owner_app_id` with our app ids (Instagram).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ours: Option<bool>,
    },
    /// A past message of the WhatsApp Business app's chat history (Coexistence `history`),
    /// from either side. Imported only when the tenant opted in for the channel.
    HistoryMessage {
        customer: CustomerRef<S>,
        message_id: MessageId<S>,
        content: Content<S>,
        by: Party,
    },
    /// Where the history sync stands, once per chunk; `declined`: the business did not
    /// share its history (error 2593109).
    HistoryProgress {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        phase: Option<i64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        chunk_order: Option<i64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        progress: Option<i64>,
        #[serde(default)]
        declined: bool,
    },
    /// The Instagram business was @mentioned (`mentions` field, decision 0067): in a comment
    /// (`comment_id`) or in the caption of someone's media (`comment_id: None`), on
    /// `media_id`. Meta sends the ids only; what was written is read from the Graph API.
    /// It concerns no customer of a conversation: the mentioner is not identified.
    Mention {
        media_id: S,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        comment_id: Option<S>,
    },
    /// The business saved (`name: Some`) or removed (`name: None`) the customer in its
    /// WhatsApp Business app contacts (Coexistence `smb_app_state_sync`).
    ContactSync {
        customer: CustomerRef<S>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<S>,
    },
}

impl<S: Text> EventKind<S> {
    /// The kind's name, as serialised (`customer_message`, `status`, …): safe to log.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::CustomerMessage { .. } => "customer_message",
            EventKind::BusinessEcho { .. } => "business_echo",
            EventKind::Edited { .. } => "edited",
            EventKind::Deleted { .. } => "deleted",
            EventKind::Reaction { .. } => "reaction",
            EventKind::Status { .. } => "status",
            EventKind::Read { .. } => "read",
            EventKind::Postback { .. } => "postback",
            EventKind::AccountError { .. } => "account_error",
            EventKind::AccountUpdate { .. } => "account_update",
            EventKind::Handover { .. } => "handover",
            EventKind::HistoryMessage { .. } => "history_message",
            EventKind::HistoryProgress { .. } => "history_progress",
            EventKind::ContactSync { .. } => "contact_sync",
            EventKind::Mention { .. } => "mention",
        }
    }
}

/// Where a delivery status stands. Meta sends them out of order; the worker only moves
/// forward.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum DeliveryStatus<S: Text = String> {
    Sent,
    Delivered,
    Read,
    /// A voice message was played.
    Played,
    Failed {
        errors: Vec<MetaError<S>>,
    },
}

/// Pricing and conversation details of a status, for usage accounting.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Billing<S: Text = String> {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billable: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pricing_model: Option<S>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pricing_type: Option<S>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<S>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<S>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_origin: Option<S>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_expires_at: Option<i64>,
}

/// Meta's error object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetaError<S: Text = String> {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<S>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<S>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<S>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub href: Option<S>,
}

/// What a message quotes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "to", rename_all = "snake_case")]
pub enum ReplyTo<S: Text = String> {
    /// A message in this conversation (usually one the business sent).
    Message { message_id: MessageId<S> },
    /// The business's Instagram story.
    Story {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        story_id: Option<S>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        url: Option<S>,
    },
}

/// Ad attribution: WhatsApp Click-to-WhatsApp `referral`, Instagram ad or ig.me `referral`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Referral<S: Text = String> {
    /// `ad`, `post` (WhatsApp) or `ADS`, `SHORTLINK` (Instagram).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_type: Option<S>,
    /// The ad id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_id: Option<S>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_url: Option<S>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headline: Option<S>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<S>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<S>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_url: Option<S>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbnail_url: Option<S>,
    /// WhatsApp `ctwa_clid`, for Meta's Conversions API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub click_id: Option<S>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub welcome_text: Option<S>,
    /// Instagram `ref` parameter of an ig.me link or ad.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ref_param: Option<S>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReferredProduct<S: Text = String> {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog_id: Option<S>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_retailer_id: Option<S>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_json_shape_is_stable() {
        let ev = InboundEvent {
            schema: EVENT_SCHEMA_VERSION,
            account: AccountRef::WhatsApp(PhoneNumberId::parse("106540352242922").unwrap()),
            provider_event_id: "wa:msg:wamid.X".into(),
            timestamp: Some(1749416383),
            kind: EventKind::CustomerMessage {
                customer: CustomerRef {
                    phone: Some(WhatsAppPhone::parse("16505551234").unwrap()),
                    name: Some("Sheena Nelson".into()),
                    ..CustomerRef::new(CustomerId::WhatsAppUser(
                        WhatsAppUserId::parse("US.13491208655302741918").unwrap(),
                    ))
                },
                message_id: MessageId::parse("wamid.X").unwrap(),
                content: Content::Text { body: "Hi".into() },
                reply_to: None,
                referral: None,
                referred_product: None,
                forwarded: false,
                frequently_forwarded: false,
            },
        };
        let json = serde_json::to_value(&ev).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "schema": 1,
                "account": {"channel": "whatsapp", "id": "106540352242922"},
                "provider_event_id": "wa:msg:wamid.X",
                "timestamp": 1749416383,
                "kind": {
                    "kind": "customer_message",
                    "customer": {
                        "id": {"type": "whatsapp_user", "value": "US.13491208655302741918"},
                        "phone": "16505551234",
                        "name": "Sheena Nelson"
                    },
                    "message_id": "wamid.X",
                    "content": {"type": "text", "body": "Hi"},
                    "forwarded": false,
                    "frequently_forwarded": false
                }
            })
        );
        let back: InboundEvent = serde_json::from_value(json).unwrap();
        assert_eq!(back, ev);
        assert_eq!(
            back.account,
            AccountRef::WhatsApp(PhoneNumberId::parse("106540352242922").unwrap())
        );
    }

    #[test]
    fn junk_ids_do_not_deserialize() {
        let bad = serde_json::json!({"channel": "whatsapp", "id": "12a"});
        assert!(serde_json::from_value::<AccountRef>(bad).is_err());
        let bad = serde_json::json!({"type": "whatsapp_user", "value": "16505551234"});
        assert!(serde_json::from_value::<CustomerId>(bad).is_err());
    }
}
