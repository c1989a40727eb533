//! Serde models of WhatsApp Conversation Routing's two webhook fields, the ones Meta's
//! Business Agent uses (decision 0065), as Meta's 2026 references document them:
//!
//! - `standby` ("Standby webhooks", developers.facebook.com/documentation/business-messaging/
//!   whatsapp/webhooks/reference/standby/): while another responder (the agent) holds a
//!   conversation, copies of it reach the other apps on the number: `value.standby` holds the
//!   customer's `messages` (with `contacts`, as on the `messages` field), the holder's
//!   `message_echoes` and their `statuses`. An echo is `{id, timestamp, message}`, `message`
//!   being the exact Send API request body the holder sent (`to` or the BSUID `recipient`,
//!   `type` and the same-named object, `context.message_id` for a reply).
//! - `messaging_handovers` (…/webhooks/reference/messaging-handovers/): `value` is
//!   `{messaging_product, sender: {phone_number}, recipient: {display_phone_number,
//!   phone_number_id}, type, timestamp}` plus the object `type` names: `control_passed` (sent
//!   to the new owner when the holder passes the conversation) or `control_taken` (sent to
//!   the previous owner when the escalation partner takes it, by the thread control API or by
//!   sending a service message). Both carry `previous_owner_role` / `new_owner_role`
//!   (`ai_agent`, `escalation`, …), the deprecated `previous_owner_app_id`, and `metadata`,
//!   free text we do not read. Every field of the object is optional.

use std::borrow::Cow;

use serde::Deserialize;

use super::item::Item;
use super::lenient;
use super::whatsapp::{Contact, Message, Status};

/// `value.standby`.
#[derive(Debug, Default, Deserialize)]
pub struct Standby<'a> {
    #[serde(default, borrow, deserialize_with = "lenient::items")]
    pub contacts: Vec<Item<'a, Contact<'a>>>,
    /// The customer's messages, as on the `messages` field.
    #[serde(default, borrow, deserialize_with = "lenient::events")]
    pub messages: Vec<Item<'a, Message<'a>>>,
    /// What the conversation's holder sent.
    #[serde(default, borrow, deserialize_with = "lenient::events")]
    pub message_echoes: Vec<Item<'a, StandbyEcho<'a>>>,
    /// Statuses of the holder's messages: not relayed (they are the holder's business).
    #[serde(default, borrow, deserialize_with = "lenient::events")]
    pub statuses: Vec<Item<'a, Status<'a>>>,
}

/// `value.standby.message_echoes[]`.
#[derive(Debug, Default, Deserialize)]
pub struct StandbyEcho<'a> {
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub id: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "lenient::int")]
    pub timestamp: Option<i64>,
    /// The Send API request body: read with the message model (`to`, `recipient`, `type`
    /// and its object, `context.message_id`).
    #[serde(default, borrow)]
    pub message: Option<Box<Message<'a>>>,
}

/// `messaging_handovers` `value.sender`: the WhatsApp user; Meta may omit it.
#[derive(Debug, Default, Deserialize)]
pub struct HandoverSender<'a> {
    #[serde(default, borrow, deserialize_with = "lenient::text")]
    pub phone_number: Option<Cow<'a, str>>,
}

/// `control_passed` / `control_taken`. `metadata` (free text from the caller) is not read.
#[derive(Debug, Default, Deserialize)]
pub struct HandoverControl<'a> {
    #[serde(default, borrow, deserialize_with = "lenient::text")]
    pub previous_owner_app_id: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "lenient::text")]
    pub new_owner_app_id: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub previous_owner_role: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "lenient::opt_str")]
    pub new_owner_role: Option<Cow<'a, str>>,
}
