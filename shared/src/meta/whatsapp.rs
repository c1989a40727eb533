//! Serde models of WhatsApp Cloud API webhook payloads (`object: "whatsapp_business_account"`),
//! as Meta's webhook reference documents them (checked 2026). Tolerant on purpose: unknown
//! fields are ignored, everything Meta may omit is optional, timestamps may be strings or
//! numbers, and arrays of items hold [`Item`]s so that one odd item never costs the rest of
//! the delivery. Strings are borrowed from the body (`Cow`: owned only when escaped).
//!
//! Identity fields, 2026: with usernames, a user's phone (`wa_id`, `from`, `to`,
//! `recipient_id`) may be absent; the business-scoped user id is always present as
//! `contacts[].user_id`, `messages[].from_user_id`, `message_echoes[].to_user_id` and
//! `statuses[].recipient_user_id` (omitted only on `failed` statuses sent to a phone).

use std::borrow::Cow;

use serde::Deserialize;

use super::item::Item;
use super::lenient;

/// `entry[].changes[]`: `field` names the webhook (`messages`, `smb_message_echoes`, …).
/// `value` is read on its own: a field we do not relay may carry anything there. It is boxed
/// because it is large (every field of every change kind, about a kilobyte): read into its
/// box once, it is not copied again as the change moves into its `Item` and its `Vec`.
#[derive(Debug, Default, Deserialize)]
pub struct Change<'a> {
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub field: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub value: Option<Item<'a, Box<ChangeValue<'a>>>>,
}

/// `changes[].value` of the `messages` and `smb_message_echoes` fields. The larger objects
/// of the rarer fields (routing, handovers, bans) are boxed, so that the value's own box
/// stays within glibc's per-thread cache (`item::SMALL_ALLOCATION`): every `messages`
/// change allocates and frees one.
#[derive(Debug, Default, Deserialize)]
pub struct ChangeValue<'a> {
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub messaging_product: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub metadata: Option<Metadata<'a>>,
    #[serde(default, borrow, deserialize_with = "lenient::items")]
    pub contacts: Vec<Item<'a, Contact<'a>>>,
    #[serde(default, borrow, deserialize_with = "lenient::events")]
    pub messages: Vec<Item<'a, Message<'a>>>,
    /// Coexistence echoes: the same shape as messages, `to` being the customer.
    #[serde(default, borrow, deserialize_with = "lenient::events")]
    pub message_echoes: Vec<Item<'a, Message<'a>>>,
    #[serde(default, borrow, deserialize_with = "lenient::events")]
    pub statuses: Vec<Item<'a, Status<'a>>>,
    /// Errors about the account or app rather than one message.
    #[serde(default, borrow, deserialize_with = "lenient::items")]
    pub errors: Vec<Item<'a, ErrorObject<'a>>>,
    // Account and number events (`super::account`): `account_update`,
    // `phone_number_quality_update`, `phone_number_name_update`, `business_capability_update`.
    #[serde(default, borrow, deserialize_with = "lenient::text")]
    pub event: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "lenient::text")]
    pub display_phone_number: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "lenient::text")]
    pub phone_number: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "lenient::items")]
    pub restriction_info: Vec<Item<'a, RestrictionInfo<'a>>>,
    #[serde(default, borrow)]
    pub ban_info: Option<Box<BanInfo<'a>>>,
    #[serde(default, borrow)]
    pub violation_info: Option<ViolationInfo<'a>>,
    #[serde(default, borrow)]
    pub waba_info: Option<WabaInfo<'a>>,
    #[serde(default, borrow, deserialize_with = "lenient::text")]
    pub old_limit: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "lenient::text")]
    pub max_daily_conversations_per_business: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "lenient::int")]
    pub max_phone_numbers_per_business: Option<i64>,
    #[serde(default, deserialize_with = "lenient::int")]
    pub max_phone_numbers_per_waba: Option<i64>,
    #[serde(default, borrow, deserialize_with = "lenient::text")]
    pub decision: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "lenient::text")]
    pub requested_verified_name: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "lenient::text")]
    pub rejection_reason: Option<Cow<'a, str>>,
    /// Conversation Routing `standby` field (Meta's Business Agent holds the conversation).
    #[serde(default, borrow)]
    pub standby: Option<Box<super::routing::Standby<'a>>>,
    // Conversation Routing `messaging_handovers` field: the customer, the number, which
    // notification (`type`), when, and the notification's object.
    #[serde(default, borrow)]
    pub sender: Option<super::routing::HandoverSender<'a>>,
    #[serde(default, borrow)]
    pub recipient: Option<Box<Metadata<'a>>>,
    #[serde(
        default,
        borrow,
        rename = "type",
        deserialize_with = "lenient::opt_str"
    )]
    pub kind: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "lenient::int")]
    pub timestamp: Option<i64>,
    #[serde(default, borrow)]
    pub control_passed: Option<Box<super::routing::HandoverControl<'a>>>,
    #[serde(default, borrow)]
    pub control_taken: Option<Box<super::routing::HandoverControl<'a>>>,
    /// Coexistence chat history (`history` field).
    #[serde(default, borrow, deserialize_with = "lenient::items")]
    pub history: Vec<Item<'a, super::coexistence::HistoryChunk<'a>>>,
    /// Coexistence app contacts (`smb_app_state_sync` field).
    #[serde(default, borrow, deserialize_with = "lenient::items")]
    pub state_sync: Vec<Item<'a, super::coexistence::StateSync<'a>>>,
    // Instagram `comments` (an Instagram entry's `changes[]` share this struct): the comment
    // id, its text, the commenter and the media commented on.
    #[serde(default, borrow, deserialize_with = "lenient::text")]
    pub id: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "lenient::text")]
    pub text: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub from: Option<super::instagram::CommentFrom<'a>>,
    #[serde(default, borrow)]
    pub media: Option<super::instagram::CommentMedia<'a>>,
    #[serde(default, borrow, deserialize_with = "lenient::text")]
    pub parent_id: Option<Cow<'a, str>>,
    // Instagram `mentions`: the media the business was @mentioned on, and the comment when
    // the mention is in one (decision 0067).
    #[serde(default, borrow, deserialize_with = "lenient::text")]
    pub media_id: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "lenient::text")]
    pub comment_id: Option<Cow<'a, str>>,
}

/// `account_update` `restriction_info[]`.
#[derive(Debug, Default, Deserialize)]
pub struct RestrictionInfo<'a> {
    #[serde(default, borrow, deserialize_with = "lenient::text")]
    pub restriction_type: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "lenient::text")]
    pub expiration: Option<Cow<'a, str>>,
}

/// `account_update` `ban_info`.
#[derive(Debug, Default, Deserialize)]
pub struct BanInfo<'a> {
    #[serde(default, borrow, deserialize_with = "lenient::text")]
    pub waba_ban_state: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "lenient::text")]
    pub waba_ban_date: Option<Cow<'a, str>>,
}

/// `account_update` `violation_info`.
#[derive(Debug, Default, Deserialize)]
pub struct ViolationInfo<'a> {
    #[serde(default, borrow, deserialize_with = "lenient::text")]
    pub violation_type: Option<Cow<'a, str>>,
}

/// `account_update` `waba_info` (partner events).
#[derive(Debug, Default, Deserialize)]
pub struct WabaInfo<'a> {
    #[serde(default, borrow, deserialize_with = "lenient::text")]
    pub partner_app_id: Option<Cow<'a, str>>,
}

/// `value.messages[]` (a message from a WhatsApp user), `value.message_echoes[]`
/// (`smb_message_echoes` field, Coexistence: a message the business sent from the WhatsApp
/// Business app; `from` is the business, `to` the customer) and the new version inside an
/// `edit`: one struct for the three, whose `type` names the same-named object
/// (`"type": "image", "image": {…}`). The type-specific objects are boxed: a message holds
/// one of them.
#[derive(Debug, Default, Deserialize)]
pub struct Message<'a> {
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub id: Option<Cow<'a, str>>,
    /// Sender's phone; may be omitted from 2026 (then only `from_user_id` is present).
    #[serde(default, borrow, deserialize_with = "lenient::text")]
    pub from: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub from_user_id: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub from_parent_user_id: Option<Cow<'a, str>>,
    /// Echoes: the customer's phone and BSUIDs.
    #[serde(default, borrow, deserialize_with = "lenient::text")]
    pub to: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub to_user_id: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub to_parent_user_id: Option<Cow<'a, str>>,
    /// Send API request bodies (standby echoes, decision 0065): the customer's BSUID when
    /// the sender addressed them by it rather than by `to`.
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub recipient: Option<Cow<'a, str>>,
    /// Present only for messages sent in a group chat.
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub group_id: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "lenient::int")]
    pub timestamp: Option<i64>,
    #[serde(default, borrow)]
    pub context: Option<Box<Context<'a>>>,
    /// Click-to-WhatsApp ad the conversation started from.
    #[serde(default, borrow)]
    pub referral: Option<Box<Referral<'a>>>,
    /// On `unsupported` (and legacy `unknown`) messages: why Meta could not deliver it.
    #[serde(default, borrow, deserialize_with = "lenient::items")]
    pub errors: Vec<Item<'a, ErrorObject<'a>>>,
    #[serde(
        default,
        borrow,
        rename = "type",
        deserialize_with = "lenient::opt_str"
    )]
    pub kind: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub text: Option<Text<'a>>,
    #[serde(default, borrow)]
    pub image: Option<Box<Media<'a>>>,
    #[serde(default, borrow)]
    pub audio: Option<Box<Media<'a>>>,
    #[serde(default, borrow)]
    pub video: Option<Box<Media<'a>>>,
    #[serde(default, borrow)]
    pub document: Option<Box<Media<'a>>>,
    #[serde(default, borrow)]
    pub sticker: Option<Box<Media<'a>>>,
    #[serde(default, borrow)]
    pub location: Option<Box<Location<'a>>>,
    #[serde(default, borrow, deserialize_with = "lenient::items")]
    pub contacts: Vec<Item<'a, SharedContact<'a>>>,
    #[serde(default, borrow)]
    pub interactive: Option<Box<Interactive<'a>>>,
    #[serde(default, borrow)]
    pub button: Option<Box<Button<'a>>>,
    #[serde(default, borrow)]
    pub reaction: Option<Box<Reaction<'a>>>,
    #[serde(default, borrow)]
    pub order: Option<Box<Order<'a>>>,
    #[serde(default, borrow)]
    pub system: Option<Box<System<'a>>>,
    #[serde(default, borrow)]
    pub unsupported: Option<Unsupported<'a>>,
    /// Coexistence only; Meta documents it, but delivers user edits as `unsupported` with
    /// `unsupported.type = "edit"` for now (reference of 2026-06).
    #[serde(default, borrow)]
    pub edit: Option<Box<Edit<'a>>>,
    /// Coexistence only: a user deleted a message within two days.
    #[serde(default, borrow)]
    pub revoke: Option<Revoke<'a>>,
}

/// The minimum of a message that failed to parse as a whole: enough to keep it as
/// "unsupported" rather than lose it. A `type` that is not a string reads as absent.
#[derive(Debug, Default, Deserialize)]
pub struct MessageHead<'a> {
    #[serde(default, borrow, deserialize_with = "lenient::text")]
    pub id: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "lenient::text")]
    pub from: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "lenient::text")]
    pub from_user_id: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "lenient::int")]
    pub timestamp: Option<i64>,
    #[serde(default, borrow, rename = "type", deserialize_with = "lenient::string")]
    pub kind: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "lenient::text")]
    pub group_id: Option<Cow<'a, str>>,
}

/// The business phone number a change is about: `phone_number_id` is the routing id.
#[derive(Debug, Default, Deserialize)]
pub struct Metadata<'a> {
    #[serde(default, borrow, deserialize_with = "lenient::text")]
    pub display_phone_number: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "lenient::text")]
    pub phone_number_id: Option<Cow<'a, str>>,
}

/// `value.contacts[]`: the WhatsApp user a message is from (or an echo/status is to).
#[derive(Debug, Default, Deserialize)]
pub struct Contact<'a> {
    #[serde(default, borrow)]
    pub profile: Option<Profile<'a>>,
    /// Phone number; may be omitted for users with a username (2026).
    #[serde(default, borrow, deserialize_with = "lenient::text")]
    pub wa_id: Option<Cow<'a, str>>,
    /// Business-scoped user id (BSUID), from April 2026.
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub user_id: Option<Cow<'a, str>>,
    /// Parent BSUID, only for businesses enrolled in parent BSUIDs.
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub parent_user_id: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub identity_key_hash: Option<Cow<'a, str>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Profile<'a> {
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub name: Option<Cow<'a, str>>,
    /// The user's username, when they adopted one (2026).
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub username: Option<Cow<'a, str>>,
}

/// The `{code, title, message, error_data.details, href}` error object Meta uses in
/// `value.errors`, `statuses[].errors` and `messages[].errors`.
#[derive(Debug, Default, Deserialize)]
pub struct ErrorObject<'a> {
    #[serde(default, deserialize_with = "lenient::int")]
    pub code: Option<i64>,
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub title: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub message: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub error_data: Option<ErrorData<'a>>,
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub href: Option<Cow<'a, str>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ErrorData<'a> {
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub details: Option<Cow<'a, str>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Text<'a> {
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub body: Option<Cow<'a, str>>,
}

/// `image`, `audio`, `video`, `document` and `sticker` objects. `id` is the media id for the
/// Graph API media endpoint; `url` (2025+) still needs the access token.
#[derive(Debug, Default, Deserialize)]
pub struct Media<'a> {
    #[serde(default, borrow, deserialize_with = "lenient::text")]
    pub id: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub url: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub mime_type: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub sha256: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub caption: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub filename: Option<Cow<'a, str>>,
    /// Audio: true for a voice recording.
    #[serde(default, deserialize_with = "lenient::flag")]
    pub voice: bool,
    /// Sticker: true for an animated sticker.
    #[serde(default, deserialize_with = "lenient::flag")]
    pub animated: bool,
}

#[derive(Debug, Default, Deserialize)]
pub struct Location<'a> {
    #[serde(default, deserialize_with = "lenient::float")]
    pub latitude: Option<f64>,
    #[serde(default, deserialize_with = "lenient::float")]
    pub longitude: Option<f64>,
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub name: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub address: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub url: Option<Cow<'a, str>>,
}

/// A contact card shared by the user (`type: "contacts"`).
#[derive(Debug, Default, Deserialize)]
pub struct SharedContact<'a> {
    #[serde(default, borrow)]
    pub name: Option<ContactName<'a>>,
    #[serde(default, borrow, deserialize_with = "lenient::items")]
    pub phones: Vec<Item<'a, ContactPhone<'a>>>,
    #[serde(default, borrow, deserialize_with = "lenient::items")]
    pub emails: Vec<Item<'a, ContactEmail<'a>>>,
    #[serde(default, borrow)]
    pub org: Option<ContactOrg<'a>>,
    #[serde(default, borrow, deserialize_with = "lenient::items")]
    pub urls: Vec<Item<'a, ContactUrl<'a>>>,
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub birthday: Option<Cow<'a, str>>,
    /// 2026: the raw vCard, and where the card came from (`contact_request` when the user
    /// tapped a REQUEST_CONTACT_INFO button).
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub vcard: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub origin: Option<Cow<'a, str>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ContactName<'a> {
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub formatted_name: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub first_name: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub last_name: Option<Cow<'a, str>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ContactPhone<'a> {
    #[serde(default, borrow, deserialize_with = "lenient::text")]
    pub phone: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "lenient::text")]
    pub wa_id: Option<Cow<'a, str>>,
    #[serde(
        default,
        borrow,
        rename = "type",
        deserialize_with = "lenient::opt_str"
    )]
    pub kind: Option<Cow<'a, str>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ContactEmail<'a> {
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub email: Option<Cow<'a, str>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ContactOrg<'a> {
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub company: Option<Cow<'a, str>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ContactUrl<'a> {
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub url: Option<Cow<'a, str>>,
}

/// A reply to an interactive message: `button_reply`, `list_reply` or `nfm_reply` (a Flow).
#[derive(Debug, Default, Deserialize)]
pub struct Interactive<'a> {
    #[serde(
        default,
        borrow,
        rename = "type",
        deserialize_with = "lenient::opt_str"
    )]
    pub kind: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub button_reply: Option<Choice<'a>>,
    #[serde(default, borrow)]
    pub list_reply: Option<Choice<'a>>,
    #[serde(default, borrow)]
    pub nfm_reply: Option<FlowReply<'a>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Choice<'a> {
    #[serde(default, borrow, deserialize_with = "lenient::text")]
    pub id: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub title: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub description: Option<Cow<'a, str>>,
}

/// A WhatsApp Flow's completion: `response_json` is a JSON document as a string.
#[derive(Debug, Default, Deserialize)]
pub struct FlowReply<'a> {
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub name: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub body: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub response_json: Option<Cow<'a, str>>,
}

/// A quick-reply button of a template message (`type: "button"`).
#[derive(Debug, Default, Deserialize)]
pub struct Button<'a> {
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub payload: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub text: Option<Cow<'a, str>>,
}

/// `type: "reaction"`; `emoji` is omitted when the user removes their reaction.
#[derive(Debug, Default, Deserialize)]
pub struct Reaction<'a> {
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub message_id: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub emoji: Option<Cow<'a, str>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Order<'a> {
    #[serde(default, borrow, deserialize_with = "lenient::text")]
    pub catalog_id: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub text: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "lenient::items")]
    pub product_items: Vec<Item<'a, ProductItem<'a>>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ProductItem<'a> {
    #[serde(default, borrow, deserialize_with = "lenient::text")]
    pub product_retailer_id: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "lenient::uint")]
    pub quantity: Option<u64>,
    /// A JSON number (`7.99`); kept exact.
    #[serde(default)]
    pub item_price: Option<serde_json::Number>,
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub currency: Option<Cow<'a, str>>,
}

/// `type: "system"`: the user changed their number (`user_changed_number`) or, from 2026,
/// their BSUID (`user_changed_user_id`). System messages carry no `contacts` array. Since
/// August 2026 both carry the BSUID before the change (`previous_user_id`) beside the new one
/// (WhatsApp changelog, 2026-08-11; "System messages webhook reference").
#[derive(Debug, Default, Deserialize)]
pub struct System<'a> {
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub body: Option<Cow<'a, str>>,
    #[serde(
        default,
        borrow,
        rename = "type",
        deserialize_with = "lenient::opt_str"
    )]
    pub kind: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "lenient::text")]
    pub wa_id: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub user_id: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub parent_user_id: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub previous_user_id: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub previous_parent_user_id: Option<Cow<'a, str>>,
}

/// `type: "unsupported"`: `unsupported.type` names what Cloud API could not deliver
/// (`poll_creation`, `edit`, `pin`, …).
#[derive(Debug, Default, Deserialize)]
pub struct Unsupported<'a> {
    #[serde(
        default,
        borrow,
        rename = "type",
        deserialize_with = "lenient::opt_str"
    )]
    pub kind: Option<Cow<'a, str>>,
}

/// `type: "edit"`: the new version of `original_message_id`.
#[derive(Debug, Default, Deserialize)]
pub struct Edit<'a> {
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub original_message_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub message: Option<Message<'a>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Revoke<'a> {
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub original_message_id: Option<Cow<'a, str>>,
}

/// `messages[].context`: a reply (`id` of the quoted message), a forward flag, or the product
/// a "Message business" button was tapped on.
#[derive(Debug, Default, Deserialize)]
pub struct Context<'a> {
    #[serde(default, borrow, deserialize_with = "lenient::text")]
    pub from: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub id: Option<Cow<'a, str>>,
    /// Send API request bodies (standby echoes) name the replied-to message `message_id`.
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub message_id: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "lenient::flag")]
    pub forwarded: bool,
    #[serde(default, deserialize_with = "lenient::flag")]
    pub frequently_forwarded: bool,
    #[serde(default, borrow)]
    pub referred_product: Option<ReferredProduct<'a>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ReferredProduct<'a> {
    #[serde(default, borrow, deserialize_with = "lenient::text")]
    pub catalog_id: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "lenient::text")]
    pub product_retailer_id: Option<Cow<'a, str>>,
}

/// Click-to-WhatsApp ad attribution (first message after the ad tap only).
#[derive(Debug, Default, Deserialize)]
pub struct Referral<'a> {
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub source_url: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "lenient::text")]
    pub source_id: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub source_type: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub body: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub headline: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub media_type: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub image_url: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub video_url: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub thumbnail_url: Option<Cow<'a, str>>,
    /// Omitted for ads in WhatsApp Status.
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub ctwa_clid: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub welcome_message: Option<WelcomeMessage<'a>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct WelcomeMessage<'a> {
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub text: Option<Cow<'a, str>>,
}

/// `value.statuses[]`: what became of a message the business sent.
#[derive(Debug, Default, Deserialize)]
pub struct Status<'a> {
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub id: Option<Cow<'a, str>>,
    /// `sent`, `delivered`, `read`, `played` (voice) or `failed`.
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub status: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "lenient::int")]
    pub timestamp: Option<i64>,
    /// The user's phone, or the group id; omitted for a BSUID-only user (2026).
    #[serde(default, borrow, deserialize_with = "lenient::text")]
    pub recipient_id: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub recipient_user_id: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub recipient_parent_user_id: Option<Cow<'a, str>>,
    /// `group` for messages sent to a group.
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub recipient_type: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub biz_opaque_callback_data: Option<Cow<'a, str>>,
    /// Omitted from v24.0 except for free entry point conversations.
    #[serde(default, borrow)]
    pub conversation: Option<Conversation<'a>>,
    #[serde(default, borrow)]
    pub pricing: Option<Pricing<'a>>,
    #[serde(default, borrow, deserialize_with = "lenient::items")]
    pub errors: Vec<Item<'a, ErrorObject<'a>>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Conversation<'a> {
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub id: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "lenient::int")]
    pub expiration_timestamp: Option<i64>,
    #[serde(default, borrow)]
    pub origin: Option<ConversationOrigin<'a>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ConversationOrigin<'a> {
    #[serde(
        default,
        borrow,
        rename = "type",
        deserialize_with = "lenient::opt_str"
    )]
    pub kind: Option<Cow<'a, str>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Pricing<'a> {
    #[serde(default)]
    pub billable: Option<bool>,
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub pricing_model: Option<Cow<'a, str>>,
    #[serde(
        default,
        borrow,
        rename = "type",
        deserialize_with = "lenient::opt_str"
    )]
    pub kind: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub category: Option<Cow<'a, str>>,
}
