//! The one canonical inbound event every Meta webhook item becomes, whatever the product or
//! payload shape. It is the inbound queue's message body (JSON), so it is versioned
//! ([`EVENT_SCHEMA_VERSION`]), carries the exact routing id of the business account, and a
//! provider event id that is unique per effect and serves as the idempotency key.

use serde::{Deserialize, Serialize};

use crate::ids::ChannelKind;
use crate::ids::{InstagramAccountId, InvalidId, PhoneNumberId};

use super::ids::{InstagramUserId, MessageId, WhatsAppPhone, WhatsAppUserId};

/// Version of the [`InboundEvent`] JSON shape; bump on an incompatible change.
pub const EVENT_SCHEMA_VERSION: u32 = 1;

/// One effect of a webhook delivery: a message, an edit, a status, a reaction…
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InboundEvent {
    pub schema: u32,
    /// The business account the event belongs to: the exact routing id.
    pub account: AccountRef,
    /// Unique per effect, stable across Meta's redeliveries: the idempotency key (scoped to
    /// `account`). Built as `<product>:<what>:<Meta ids…>`, e.g. `wa:msg:wamid.…`,
    /// `wa:status:wamid.…:read`, `ig:reaction:<mid>:<igsid>:react:<ms>`.
    pub provider_event_id: String,
    /// When it happened (unix seconds), as Meta reports it; absent only where Meta sends no
    /// time (account-level errors).
    pub timestamp: Option<i64>,
    pub kind: EventKind,
}

impl InboundEvent {
    /// The customer the event is about, when there is one (not for account errors, nor for
    /// statuses whose recipient Meta did not identify).
    pub fn customer(&self) -> Option<&CustomerRef> {
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
            | EventKind::HistoryProgress { .. } => None,
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
            | EventKind::ContactSync { .. } => None,
        }
    }
}

/// The business account, typed by product: WhatsApp `metadata.phone_number_id`, Instagram
/// `entry[].id`. Serialised as `{"channel": "whatsapp", "id": "106540352242922"}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "channel", content = "id")]
pub enum AccountRef {
    #[serde(rename = "whatsapp")]
    WhatsApp(PhoneNumberId),
    #[serde(rename = "instagram")]
    Instagram(InstagramAccountId),
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
pub enum CustomerId {
    #[serde(rename = "whatsapp_user")]
    WhatsAppUser(WhatsAppUserId),
    #[serde(rename = "whatsapp_phone")]
    WhatsAppPhone(WhatsAppPhone),
    #[serde(rename = "instagram")]
    Instagram(InstagramUserId),
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
pub struct CustomerRef {
    pub id: CustomerId,
    /// WhatsApp phone, when Meta included it (it may not, for users with a username).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<WhatsAppPhone>,
    /// WhatsApp parent BSUID, for businesses enrolled in them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_user_id: Option<WhatsAppUserId>,
    /// Profile name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// WhatsApp username (2026), when the user has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
}

impl CustomerRef {
    pub fn new(id: CustomerId) -> Self {
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
pub enum EventKind {
    /// The customer wrote.
    CustomerMessage {
        customer: CustomerRef,
        message_id: MessageId,
        content: Content,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reply_to: Option<ReplyTo>,
        /// Ad (or ig.me link) the conversation started from. Boxed: rare and large.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        referral: Option<Box<Referral>>,
        /// The product a "Message business" button was tapped on.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        referred_product: Option<ReferredProduct>,
        #[serde(default)]
        forwarded: bool,
        #[serde(default)]
        frequently_forwarded: bool,
    },
    /// The business wrote from the WhatsApp Business app (Coexistence `smb_message_echoes`)
    /// or Instagram (`is_echo`). Show it as outgoing; never send it again. An Instagram echo
    /// of our own send has the `mid` the Send API returned: the worker skips those.
    BusinessEcho {
        customer: CustomerRef,
        message_id: MessageId,
        content: Content,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reply_to: Option<ReplyTo>,
        /// The app that sent it, when Meta says.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        app_id: Option<String>,
    },
    /// `message_id` now reads `content`.
    Edited {
        customer: CustomerRef,
        message_id: MessageId,
        content: Content,
        by: Party,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        edit_count: Option<u64>,
    },
    /// `message_id` was deleted (WhatsApp revoke, Instagram unsend).
    Deleted {
        customer: CustomerRef,
        message_id: MessageId,
        by: Party,
    },
    /// A reaction to `message_id`; `emoji: None` removes the reaction.
    Reaction {
        customer: CustomerRef,
        message_id: MessageId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        emoji: Option<String>,
        by: Party,
    },
    /// A WhatsApp delivery status of a message the business sent.
    Status {
        message_id: MessageId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        recipient: Option<CustomerRef>,
        status: DeliveryStatus,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        billing: Option<Billing>,
        /// `biz_opaque_callback_data`: the tag the business gave the message when sending it
        /// (the send worker's attempt tag, decision 0055).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        callback: Option<String>,
    },
    /// The customer saw our message `message_id` (Instagram), or everything before
    /// `watermark` (older Instagram payloads, milliseconds).
    Read {
        customer: CustomerRef,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message_id: Option<MessageId>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        watermark: Option<i64>,
    },
    /// The customer tapped an Instagram icebreaker or template button.
    Postback {
        customer: CustomerRef,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message_id: Option<MessageId>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        title: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        payload: Option<String>,
    },
    /// Errors about the WhatsApp account or app (`value.errors`), not about one message.
    AccountError { errors: Vec<MetaError> },
    /// A WhatsApp account or number event (restriction, ban, quality, name, limits), routed
    /// to this number by the intake from its WABA.
    AccountUpdate {
        update: super::account::AccountUpdate,
    },
    /// Instagram Handover Protocol: the conversation's control changed (`pass`, `take`,
    /// `request`), for instance to or from Meta's agent.
    Handover {
        customer: CustomerRef,
        action: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        new_owner_app_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        previous_owner_app_id: Option<String>,
    },
    /// A past message of the WhatsApp Business app's chat history (Coexistence `history`),
    /// from either side. Imported only when the tenant opted in for the channel.
    HistoryMessage {
        customer: CustomerRef,
        message_id: MessageId,
        content: Content,
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
    /// The business saved (`name: Some`) or removed (`name: None`) the customer in its
    /// WhatsApp Business app contacts (Coexistence `smb_app_state_sync`).
    ContactSync {
        customer: CustomerRef,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
}

impl EventKind {
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
        }
    }
}

/// Where a delivery status stands. Meta sends them out of order; the worker only moves
/// forward.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum DeliveryStatus {
    Sent,
    Delivered,
    Read,
    /// A voice message was played.
    Played,
    Failed {
        errors: Vec<MetaError>,
    },
}

/// Pricing and conversation details of a status, for usage accounting.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Billing {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billable: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pricing_model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pricing_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_origin: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_expires_at: Option<i64>,
}

/// Meta's error object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetaError {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub href: Option<String>,
}

/// What a message quotes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "to", rename_all = "snake_case")]
pub enum ReplyTo {
    /// A message in this conversation (usually one the business sent).
    Message { message_id: MessageId },
    /// The business's Instagram story.
    Story {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        story_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        url: Option<String>,
    },
}

/// Ad attribution: WhatsApp Click-to-WhatsApp `referral`, Instagram ad or ig.me `referral`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Referral {
    /// `ad`, `post` (WhatsApp) or `ADS`, `SHORTLINK` (Instagram).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_type: Option<String>,
    /// The ad id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headline: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbnail_url: Option<String>,
    /// WhatsApp `ctwa_clid`, for Meta's Conversions API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub click_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub welcome_text: Option<String>,
    /// Instagram `ref` parameter of an ig.me link or ad.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ref_param: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReferredProduct {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_retailer_id: Option<String>,
}

/// A message's content, the same for both products.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Content {
    Text {
        body: String,
    },
    Media(Media),
    Location(Location),
    /// Contact cards the customer shared.
    Contacts {
        contacts: Vec<SharedContact>,
    },
    /// A tap on an interactive message: `button_reply`, `list_reply`, or `nfm_reply` (a
    /// WhatsApp Flow, answers in `response_json`).
    InteractiveReply {
        reply_type: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        title: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        response_json: Option<String>,
    },
    /// A template quick-reply button (WhatsApp) or a quick reply (Instagram).
    Button {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        payload: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<String>,
    },
    Order(Order),
    /// A WhatsApp system notice: the customer changed their number or their BSUID.
    System {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        body: Option<String>,
        /// `user_changed_number`, `user_changed_user_id`, …
        #[serde(default, skip_serializing_if = "Option::is_none")]
        system_type: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        new_phone: Option<WhatsAppPhone>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        new_user_id: Option<WhatsAppUserId>,
        /// The BSUID before the change (2026-08), which finds the customer when `from` has
        /// no phone.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        previous_user_id: Option<WhatsAppUserId>,
    },
    /// An Instagram post, reel or link the customer shared (`share`, `ig_reel`, `reel`,
    /// `ig_post`, `fallback`).
    Share {
        share_type: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        url: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        title: Option<String>,
    },
    /// The customer commented on one of the business's Instagram posts, reels or stories
    /// (`comments` field). It does not open the messaging window; the operator's answer goes
    /// as a private reply to `comment_id` (decision 0062).
    Comment {
        comment_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        media_id: Option<String>,
        /// `FEED`, `REELS`, `STORY`, `AD`…
        #[serde(default, skip_serializing_if = "Option::is_none")]
        media_product_type: Option<String>,
    },
    /// The customer mentioned the business in their Instagram story (the URL expires).
    StoryMention {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        url: Option<String>,
    },
    /// Several parts in one message (Instagram text plus attachments, several attachments).
    Multiple {
        parts: Vec<Content>,
    },
    /// A type we do not relay, or Meta did not deliver; kept so the CRM shows something.
    Unsupported {
        type_name: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        errors: Vec<MetaError>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaKind {
    Image,
    Audio,
    Video,
    Document,
    Sticker,
    /// An Instagram file attachment.
    File,
}

impl MediaKind {
    pub fn name(self) -> &'static str {
        match self {
            MediaKind::Image => "image",
            MediaKind::Audio => "audio",
            MediaKind::Video => "video",
            MediaKind::Document => "document",
            MediaKind::Sticker => "sticker",
            MediaKind::File => "file",
        }
    }
}

/// A media attachment: WhatsApp gives a media id (fetched through the Graph API with the
/// tenant's token), Instagram a CDN URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Media {
    pub kind: MediaKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caption: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// A voice recording (WhatsApp audio).
    #[serde(default)]
    pub voice: bool,
    #[serde(default)]
    pub animated: bool,
}

impl Media {
    pub fn new(kind: MediaKind) -> Self {
        Media {
            kind,
            media_id: None,
            url: None,
            mime_type: None,
            caption: None,
            filename: None,
            sha256: None,
            voice: false,
            animated: false,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Location {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latitude: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub longitude: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// A shared contact card, summarised.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedContact {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub phones: Vec<SharedPhone>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub emails: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedPhone {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// Set when the number is on WhatsApp.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wa_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_type: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default)]
    pub items: Vec<OrderItem>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderItem {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_retailer_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantity: Option<u64>,
    /// Exact as Meta sent it (`7.99`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_price: Option<serde_json::Number>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
}

impl Content {
    /// Plain text for the CRM chat: the text itself, a caption, or a short bracketed label
    /// saying what arrived. Files travel separately (as URLs), so media gives only words.
    pub fn text_for_crm(&self) -> String {
        fn join(parts: &[Option<&str>], sep: &str) -> String {
            parts
                .iter()
                .flatten()
                .filter(|s| !s.is_empty())
                .copied()
                .collect::<Vec<_>>()
                .join(sep)
        }
        match self {
            Content::Text { body } => body.clone(),
            Content::Media(m) => match (&m.caption, &m.filename) {
                (Some(c), _) if !c.is_empty() => c.clone(),
                (_, Some(f)) if !f.is_empty() => format!("[{}: {f}]", m.kind.name()),
                _ if m.voice => "[voice message]".into(),
                _ => format!("[{}]", m.kind.name()),
            },
            Content::Location(l) => {
                let coords = match (l.latitude, l.longitude) {
                    (Some(lat), Some(lon)) => Some(format!("{lat}, {lon}")),
                    _ => None,
                };
                let text = join(
                    &[l.name.as_deref(), l.address.as_deref(), coords.as_deref()],
                    " — ",
                );
                format!("[location] {text}").trim_end().to_string()
            }
            Content::Contacts { contacts } => {
                let cards: Vec<String> = contacts
                    .iter()
                    .map(|c| {
                        let phones: Vec<&str> =
                            c.phones.iter().filter_map(|p| p.phone.as_deref()).collect();
                        join(&[c.name.as_deref(), Some(&phones.join(", "))], ": ")
                    })
                    .collect();
                format!("[contact] {}", cards.join("; "))
                    .trim_end()
                    .to_string()
            }
            Content::InteractiveReply {
                title,
                id,
                reply_type,
                ..
            } => title
                .clone()
                .or_else(|| id.clone())
                .unwrap_or_else(|| format!("[{reply_type}]")),
            Content::Button { text, payload } => text
                .clone()
                .or_else(|| payload.clone())
                .unwrap_or_else(|| "[button]".into()),
            Content::Order(o) => {
                let n: u64 = o.items.iter().map(|i| i.quantity.unwrap_or(1)).sum();
                let mut s = format!("[order: {n} item(s)]");
                if let Some(t) = o.text.as_deref().filter(|t| !t.is_empty()) {
                    s.push(' ');
                    s.push_str(t);
                }
                s
            }
            Content::System { body, .. } => body.clone().unwrap_or_else(|| "[system]".into()),
            Content::Share {
                share_type,
                url,
                title,
            } => format!(
                "[{share_type}] {}",
                join(&[title.as_deref(), url.as_deref()], " ")
            )
            .trim_end()
            .to_string(),
            Content::Comment {
                text,
                media_id,
                media_product_type,
                ..
            } => {
                let on = match media_product_type.as_deref() {
                    Some("REELS") => "reel",
                    Some("STORY") => "story",
                    Some("AD") => "ad",
                    Some("LIVE") => "live video",
                    _ => "post",
                };
                format!(
                    "[comment on {}] {}",
                    join(&[Some(on), media_id.as_deref()], " "),
                    text.as_deref().unwrap_or_default()
                )
                .trim_end()
                .to_string()
            }
            Content::StoryMention { url } => {
                format!("[story mention] {}", url.as_deref().unwrap_or_default())
                    .trim_end()
                    .to_string()
            }
            Content::Multiple { parts } => parts
                .iter()
                .map(Content::text_for_crm)
                .collect::<Vec<_>>()
                .join("\n"),
            Content::Unsupported { type_name, .. } => format!("[unsupported: {type_name}]"),
        }
    }
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

    #[test]
    fn crm_text() {
        let mut m = Media::new(MediaKind::Image);
        assert_eq!(Content::Media(m.clone()).text_for_crm(), "[image]");
        m.caption = Some("look".into());
        assert_eq!(Content::Media(m).text_for_crm(), "look");
        let loc = Content::Location(Location {
            latitude: Some(37.48),
            longitude: Some(-122.15),
            name: Some("Philz Coffee".into()),
            ..Default::default()
        });
        assert_eq!(
            loc.text_for_crm(),
            "[location] Philz Coffee — 37.48, -122.15"
        );
        let u = Content::Unsupported {
            type_name: "poll_creation".into(),
            errors: vec![],
        };
        assert_eq!(u.text_for_crm(), "[unsupported: poll_creation]");
    }
}
