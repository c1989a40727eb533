//! Serde models of WhatsApp Cloud API webhook payloads (`object: "whatsapp_business_account"`),
//! as Meta's webhook reference documents them (checked 2026). Tolerant on purpose: unknown
//! fields are ignored, everything Meta may omit is optional, timestamps may be strings or
//! numbers, and arrays of items are kept raw so that each item is parsed on its own and one
//! odd item never costs the rest of the delivery.
//!
//! Identity fields, 2026: with usernames, a user's phone (`wa_id`, `from`, `to`,
//! `recipient_id`) may be absent; the business-scoped user id is always present as
//! `contacts[].user_id`, `messages[].from_user_id`, `message_echoes[].to_user_id` and
//! `statuses[].recipient_user_id` (omitted only on `failed` statuses sent to a phone).

use serde::Deserialize;
use serde_json::Value;

use super::lenient;

/// `entry[]`: one WhatsApp Business Account.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Entry {
    /// The WhatsApp Business Account id.
    #[serde(default, deserialize_with = "lenient::text")]
    pub id: Option<String>,
    #[serde(default, deserialize_with = "lenient::items")]
    pub changes: Vec<Value>,
}

/// `entry[].changes[]`: `field` names the webhook (`messages`, `smb_message_echoes`, …).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Change {
    #[serde(default)]
    pub field: Option<String>,
    #[serde(default)]
    pub value: Option<Value>,
}

/// `changes[].value` of the `messages` and `smb_message_echoes` fields.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ChangeValue {
    #[serde(default)]
    pub messaging_product: Option<String>,
    #[serde(default)]
    pub metadata: Option<Metadata>,
    #[serde(default, deserialize_with = "lenient::list")]
    pub contacts: Vec<Contact>,
    #[serde(default, deserialize_with = "lenient::items")]
    pub messages: Vec<Value>,
    #[serde(default, deserialize_with = "lenient::items")]
    pub message_echoes: Vec<Value>,
    #[serde(default, deserialize_with = "lenient::items")]
    pub statuses: Vec<Value>,
    /// Errors about the account or app rather than one message.
    #[serde(default, deserialize_with = "lenient::list")]
    pub errors: Vec<ErrorObject>,
}

/// The business phone number a change is about: `phone_number_id` is the routing id.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Metadata {
    #[serde(default, deserialize_with = "lenient::text")]
    pub display_phone_number: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub phone_number_id: Option<String>,
}

/// `value.contacts[]`: the WhatsApp user a message is from (or an echo/status is to).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Contact {
    #[serde(default)]
    pub profile: Option<Profile>,
    /// Phone number; may be omitted for users with a username (2026).
    #[serde(default, deserialize_with = "lenient::text")]
    pub wa_id: Option<String>,
    /// Business-scoped user id (BSUID), from April 2026.
    #[serde(default)]
    pub user_id: Option<String>,
    /// Parent BSUID, only for businesses enrolled in parent BSUIDs.
    #[serde(default)]
    pub parent_user_id: Option<String>,
    #[serde(default)]
    pub identity_key_hash: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Profile {
    #[serde(default)]
    pub name: Option<String>,
    /// The user's username, when they adopted one (2026).
    #[serde(default)]
    pub username: Option<String>,
}

/// The `{code, title, message, error_data.details, href}` error object Meta uses in
/// `value.errors`, `statuses[].errors` and `messages[].errors`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ErrorObject {
    #[serde(default, deserialize_with = "lenient::int")]
    pub code: Option<i64>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub error_data: Option<ErrorData>,
    #[serde(default)]
    pub href: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ErrorData {
    #[serde(default)]
    pub details: Option<String>,
}

/// `value.messages[]`: a message from a WhatsApp user. Its type-specific object is in
/// [`MessageBody`].
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Message {
    #[serde(default)]
    pub id: Option<String>,
    /// Sender's phone; may be omitted from 2026 (then only `from_user_id` is present).
    #[serde(default, deserialize_with = "lenient::text")]
    pub from: Option<String>,
    #[serde(default)]
    pub from_user_id: Option<String>,
    #[serde(default)]
    pub from_parent_user_id: Option<String>,
    /// Present only for messages sent in a group chat.
    #[serde(default)]
    pub group_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::int")]
    pub timestamp: Option<i64>,
    #[serde(default)]
    pub context: Option<Context>,
    /// Click-to-WhatsApp ad the conversation started from.
    #[serde(default)]
    pub referral: Option<Referral>,
    /// On `unsupported` (and legacy `unknown`) messages: why Meta could not deliver it.
    #[serde(default, deserialize_with = "lenient::list")]
    pub errors: Vec<ErrorObject>,
    #[serde(flatten)]
    pub body: MessageBody,
}

/// `value.message_echoes[]` (`smb_message_echoes` field, Coexistence): a message the business
/// sent from the WhatsApp Business app or a linked device; `from` is the business, `to` the
/// customer.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct MessageEcho {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub from: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub to: Option<String>,
    #[serde(default)]
    pub to_user_id: Option<String>,
    #[serde(default)]
    pub to_parent_user_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::int")]
    pub timestamp: Option<i64>,
    #[serde(default)]
    pub context: Option<Context>,
    #[serde(flatten)]
    pub body: MessageBody,
}

/// The `type` and its same-named object (`"type": "image", "image": {…}`), shared by incoming
/// messages, echoes and the new version inside an `edit`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct MessageBody {
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub text: Option<Text>,
    #[serde(default)]
    pub image: Option<Media>,
    #[serde(default)]
    pub audio: Option<Media>,
    #[serde(default)]
    pub video: Option<Media>,
    #[serde(default)]
    pub document: Option<Media>,
    #[serde(default)]
    pub sticker: Option<Media>,
    #[serde(default)]
    pub location: Option<Location>,
    #[serde(default, deserialize_with = "lenient::list")]
    pub contacts: Vec<SharedContact>,
    #[serde(default)]
    pub interactive: Option<Interactive>,
    #[serde(default)]
    pub button: Option<Button>,
    #[serde(default)]
    pub reaction: Option<Reaction>,
    #[serde(default)]
    pub order: Option<Order>,
    #[serde(default)]
    pub system: Option<System>,
    #[serde(default)]
    pub unsupported: Option<Unsupported>,
    /// Coexistence only; Meta documents it, but delivers user edits as `unsupported` with
    /// `unsupported.type = "edit"` for now (reference of 2026-06).
    #[serde(default)]
    pub edit: Option<Box<Edit>>,
    /// Coexistence only: a user deleted a message within two days.
    #[serde(default)]
    pub revoke: Option<Revoke>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Text {
    #[serde(default)]
    pub body: Option<String>,
}

/// `image`, `audio`, `video`, `document` and `sticker` objects. `id` is the media id for the
/// Graph API media endpoint; `url` (2025+) still needs the access token.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Media {
    #[serde(default, deserialize_with = "lenient::text")]
    pub id: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub mime_type: Option<String>,
    #[serde(default)]
    pub sha256: Option<String>,
    #[serde(default)]
    pub caption: Option<String>,
    #[serde(default)]
    pub filename: Option<String>,
    /// Audio: true for a voice recording.
    #[serde(default, deserialize_with = "lenient::flag")]
    pub voice: bool,
    /// Sticker: true for an animated sticker.
    #[serde(default, deserialize_with = "lenient::flag")]
    pub animated: bool,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Location {
    #[serde(default, deserialize_with = "lenient::float")]
    pub latitude: Option<f64>,
    #[serde(default, deserialize_with = "lenient::float")]
    pub longitude: Option<f64>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub address: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
}

/// A contact card shared by the user (`type: "contacts"`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SharedContact {
    #[serde(default)]
    pub name: Option<ContactName>,
    #[serde(default, deserialize_with = "lenient::list")]
    pub phones: Vec<ContactPhone>,
    #[serde(default, deserialize_with = "lenient::list")]
    pub emails: Vec<ContactEmail>,
    #[serde(default)]
    pub org: Option<ContactOrg>,
    #[serde(default, deserialize_with = "lenient::list")]
    pub urls: Vec<ContactUrl>,
    #[serde(default)]
    pub birthday: Option<String>,
    /// 2026: the raw vCard, and where the card came from (`contact_request` when the user
    /// tapped a REQUEST_CONTACT_INFO button).
    #[serde(default)]
    pub vcard: Option<String>,
    #[serde(default)]
    pub origin: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ContactName {
    #[serde(default)]
    pub formatted_name: Option<String>,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ContactPhone {
    #[serde(default, deserialize_with = "lenient::text")]
    pub phone: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub wa_id: Option<String>,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ContactEmail {
    #[serde(default)]
    pub email: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ContactOrg {
    #[serde(default)]
    pub company: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ContactUrl {
    #[serde(default)]
    pub url: Option<String>,
}

/// A reply to an interactive message: `button_reply`, `list_reply` or `nfm_reply` (a Flow).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Interactive {
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub button_reply: Option<Choice>,
    #[serde(default)]
    pub list_reply: Option<Choice>,
    #[serde(default)]
    pub nfm_reply: Option<FlowReply>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Choice {
    #[serde(default, deserialize_with = "lenient::text")]
    pub id: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
}

/// A WhatsApp Flow's completion: `response_json` is a JSON document as a string.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct FlowReply {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub response_json: Option<String>,
}

/// A quick-reply button of a template message (`type: "button"`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Button {
    #[serde(default)]
    pub payload: Option<String>,
    #[serde(default)]
    pub text: Option<String>,
}

/// `type: "reaction"`; `emoji` is omitted when the user removes their reaction.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Reaction {
    #[serde(default)]
    pub message_id: Option<String>,
    #[serde(default)]
    pub emoji: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Order {
    #[serde(default, deserialize_with = "lenient::text")]
    pub catalog_id: Option<String>,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default, deserialize_with = "lenient::list")]
    pub product_items: Vec<ProductItem>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ProductItem {
    #[serde(default, deserialize_with = "lenient::text")]
    pub product_retailer_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::uint")]
    pub quantity: Option<u64>,
    /// A JSON number (`7.99`); kept exact.
    #[serde(default)]
    pub item_price: Option<serde_json::Number>,
    #[serde(default)]
    pub currency: Option<String>,
}

/// `type: "system"`: the user changed their number (`user_changed_number`) or, from 2026,
/// their BSUID (`user_changed_user_id`). System messages carry no `contacts` array.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct System {
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub wa_id: Option<String>,
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    pub parent_user_id: Option<String>,
}

/// `type: "unsupported"`: `unsupported.type` names what Cloud API could not deliver
/// (`poll_creation`, `edit`, `pin`, …).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Unsupported {
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
}

/// `type: "edit"`: the new version of `original_message_id`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Edit {
    #[serde(default)]
    pub original_message_id: Option<String>,
    #[serde(default)]
    pub message: Option<EditedMessage>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct EditedMessage {
    #[serde(default)]
    pub context: Option<Context>,
    #[serde(flatten)]
    pub body: MessageBody,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Revoke {
    #[serde(default)]
    pub original_message_id: Option<String>,
}

/// `messages[].context`: a reply (`id` of the quoted message), a forward flag, or the product
/// a "Message business" button was tapped on.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Context {
    #[serde(default, deserialize_with = "lenient::text")]
    pub from: Option<String>,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default, deserialize_with = "lenient::flag")]
    pub forwarded: bool,
    #[serde(default, deserialize_with = "lenient::flag")]
    pub frequently_forwarded: bool,
    #[serde(default)]
    pub referred_product: Option<ReferredProduct>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ReferredProduct {
    #[serde(default, deserialize_with = "lenient::text")]
    pub catalog_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub product_retailer_id: Option<String>,
}

/// Click-to-WhatsApp ad attribution (first message after the ad tap only).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Referral {
    #[serde(default)]
    pub source_url: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub source_id: Option<String>,
    #[serde(default)]
    pub source_type: Option<String>,
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub headline: Option<String>,
    #[serde(default)]
    pub media_type: Option<String>,
    #[serde(default)]
    pub image_url: Option<String>,
    #[serde(default)]
    pub video_url: Option<String>,
    #[serde(default)]
    pub thumbnail_url: Option<String>,
    /// Omitted for ads in WhatsApp Status.
    #[serde(default)]
    pub ctwa_clid: Option<String>,
    #[serde(default)]
    pub welcome_message: Option<WelcomeMessage>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct WelcomeMessage {
    #[serde(default)]
    pub text: Option<String>,
}

/// `value.statuses[]`: what became of a message the business sent.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Status {
    #[serde(default)]
    pub id: Option<String>,
    /// `sent`, `delivered`, `read`, `played` (voice) or `failed`.
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default, deserialize_with = "lenient::int")]
    pub timestamp: Option<i64>,
    /// The user's phone, or the group id; omitted for a BSUID-only user (2026).
    #[serde(default, deserialize_with = "lenient::text")]
    pub recipient_id: Option<String>,
    #[serde(default)]
    pub recipient_user_id: Option<String>,
    #[serde(default)]
    pub recipient_parent_user_id: Option<String>,
    /// `group` for messages sent to a group.
    #[serde(default)]
    pub recipient_type: Option<String>,
    #[serde(default)]
    pub biz_opaque_callback_data: Option<String>,
    /// Omitted from v24.0 except for free entry point conversations.
    #[serde(default)]
    pub conversation: Option<Conversation>,
    #[serde(default)]
    pub pricing: Option<Pricing>,
    #[serde(default, deserialize_with = "lenient::list")]
    pub errors: Vec<ErrorObject>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Conversation {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default, deserialize_with = "lenient::int")]
    pub expiration_timestamp: Option<i64>,
    #[serde(default)]
    pub origin: Option<ConversationOrigin>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ConversationOrigin {
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Pricing {
    #[serde(default)]
    pub billable: Option<bool>,
    #[serde(default)]
    pub pricing_model: Option<String>,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub category: Option<String>,
}

/// The minimum of a message that failed to parse as a whole: enough to keep it as
/// "unsupported" rather than lose it.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct MessageHead {
    #[serde(default, deserialize_with = "lenient::text")]
    pub id: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub from: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub from_user_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::int")]
    pub timestamp: Option<i64>,
    #[serde(default, rename = "type", deserialize_with = "lenient::text")]
    pub kind: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub group_id: Option<String>,
}
