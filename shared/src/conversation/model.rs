//! The conversation and message types: the pseudonymous conversation id, which way a
//! message went and where it came from, its delivery status, a message to store and a
//! message as stored (decrypted), and what storing one did.

use serde::{Deserialize, Serialize};

use crate::crypto::{CryptoError, Envelope};
use crate::ids::TenantId;
use crate::meta::{AccountRef, Content, CustomerId, CustomerRef};

/// A conversation's id: `c_` + the first 32 hex digits of a keyed hash of channel, account
/// and customer under the tenant's secret ([`Envelope::keyed_id`], decision 0033).
///
/// It keys the conversation's partition, is Bitrix24's chat id and appears in logs. An
/// unkeyed hash of a phone number is reversed by hashing every number (about 10^10 tries);
/// this one cannot be computed without the tenant's key, and after the tenant's keys are
/// shredded it cannot be linked to anyone at all.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ConversationId(String);

/// The keyed-id label of conversation ids.
const CONVERSATION_LABEL: &str = "conversation";
/// How many conversation ids one identity may derive to ([`ConversationId::derive_generation`]).
pub(super) const IDENTITY_GENERATIONS: u32 = 8;

impl ConversationId {
    /// The conversation of `customer` on `account` for the tenant.
    pub async fn derive(
        envelope: &Envelope,
        tenant: &TenantId,
        account: &AccountRef,
        customer: &CustomerId,
    ) -> Result<Self, CryptoError> {
        Self::derive_generation(envelope, tenant, account, customer, 0).await
    }

    /// Generation 0 is [`ConversationId::derive`]; later ones are for a customer whose
    /// derived id is taken by a conversation that moved to another identity (a WhatsApp
    /// number that changed hands, decision 0049).
    pub async fn derive_generation(
        envelope: &Envelope,
        tenant: &TenantId,
        account: &AccountRef,
        customer: &CustomerId,
        generation: u32,
    ) -> Result<Self, CryptoError> {
        let key = customer.key();
        let nth = generation.to_string();
        let mut parts = vec![account.channel().code(), account.id(), key.as_str()];
        if generation > 0 {
            parts.push(nth.as_str());
        }
        let digest = envelope
            .keyed_id(tenant, CONVERSATION_LABEL, &parts)
            .await?;
        Ok(ConversationId(format!("c_{}", &digest[..32])))
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        let ok = s.len() == 34
            && s.starts_with("c_")
            && s[2..]
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if ok {
            Ok(ConversationId(s.to_owned()))
        } else {
            Err("conversation id must be c_ followed by 32 lowercase hex digits".into())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ConversationId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        ConversationId::parse(&s)
    }
}
impl From<ConversationId> for String {
    fn from(c: ConversationId) -> String {
        c.0
    }
}
impl std::fmt::Display for ConversationId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which way a message went.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// From the customer.
    Inbound,
    /// From the business: an operator in Bitrix24, or the business's own app (echo).
    Outbound,
}

impl Direction {
    pub(super) fn code(self) -> &'static str {
        match self {
            Direction::Inbound => "in",
            Direction::Outbound => "out",
        }
    }
}

/// Where an outbound message came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    Customer,
    /// Sent by us on an operator's behalf.
    Operator,
    /// Sent from the WhatsApp Business app or the Instagram app (an echo): shown, never sent.
    BusinessApp,
    /// Sent by Meta's Business Agent while it held a WhatsApp conversation (a `standby`
    /// echo, decision 0065): shown, never sent, never posted as the echo author.
    Agent,
    /// Sent by the tenant's own systems through the public send API.
    Api,
}

impl Origin {
    pub(super) fn code(self) -> &'static str {
        match self {
            Origin::Customer => "customer",
            Origin::Operator => "operator",
            Origin::BusinessApp => "business_app",
            Origin::Agent => "business_agent",
            Origin::Api => "api",
        }
    }
    pub(super) fn from_code(s: &str) -> Option<Self> {
        Some(match s {
            "customer" => Origin::Customer,
            "operator" => Origin::Operator,
            "business_app" => Origin::BusinessApp,
            "business_agent" => Origin::Agent,
            "api" => Origin::Api,
            _ => return None,
        })
    }
}

/// Delivery state of an outbound message. Only moves forward (a late "delivered" never
/// overwrites "read"); `Failed` overrides only `Sent`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageStatus {
    Sent,
    Failed,
    Delivered,
    Read,
}

impl MessageStatus {
    pub fn rank(self) -> i64 {
        match self {
            MessageStatus::Sent => 1,
            MessageStatus::Failed => 2,
            MessageStatus::Delivered => 3,
            MessageStatus::Read => 4,
        }
    }
    /// The status of a rank ([`MessageStatus::rank`]), as stored beside a send's progress.
    pub fn from_rank(rank: i64) -> Option<Self> {
        [
            MessageStatus::Sent,
            MessageStatus::Failed,
            MessageStatus::Delivered,
            MessageStatus::Read,
        ]
        .into_iter()
        .find(|s| s.rank() == rank)
    }
    pub fn code(self) -> &'static str {
        match self {
            MessageStatus::Sent => "sent",
            MessageStatus::Failed => "failed",
            MessageStatus::Delivered => "delivered",
            MessageStatus::Read => "read",
        }
    }
    pub(super) fn from_code(s: &str) -> Option<Self> {
        Some(match s {
            "sent" => MessageStatus::Sent,
            "failed" => MessageStatus::Failed,
            "delivered" => MessageStatus::Delivered,
            "read" => MessageStatus::Read,
            _ => return None,
        })
    }
}

/// Templates are stored as the Graph client sends them.
pub use crate::graph::TemplateMessage;

/// A message to store.
#[derive(Clone, Debug)]
pub struct NewMessage {
    pub provider_message_id: String,
    pub direction: Direction,
    pub origin: Origin,
    pub content: Content,
    /// When it was sent (Unix milliseconds): orders the conversation.
    pub at_ms: i64,
    /// The provider id of the message this one replies to.
    pub reply_to: Option<String>,
    /// For operator messages: Bitrix24's own ids, which statuses are reported against.
    pub crm_im: Option<crate::bitrix::ImRef>,
    /// For template sends: the template (stored encrypted; its parameters may be personal).
    pub template: Option<TemplateMessage>,
    /// What the delivery storing it wrote besides (decision 0133), kept on the message.
    pub written_with: WrittenWith,
}

/// What the delivery that stores a message wrote besides it (decision 0133), kept on the
/// message item: a later delivery of the same event that must remove the message again
/// (the person's erasure began meanwhile, decision 0132) takes these back with it, as the
/// delivery that stored it would have. No personal data: a count's month and day, a time.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WrittenWith {
    /// The usage count storing it added, as the usage module writes it down.
    pub count: Option<String>,
    /// The conversation the delivery opened for it (decision 0131).
    pub opened: Option<super::customers::Opened>,
}

impl NewMessage {
    /// A message as a provider delivered it (`at`: Unix seconds), with no CRM ids or template.
    pub fn from_provider(
        provider_message_id: &str,
        direction: Direction,
        origin: Origin,
        content: Content,
        at: i64,
        reply_to: Option<String>,
    ) -> Self {
        NewMessage {
            provider_message_id: provider_message_id.to_owned(),
            direction,
            origin,
            content,
            at_ms: at.saturating_mul(1000),
            reply_to,
            crm_im: None,
            template: None,
            written_with: WrittenWith::default(),
        }
    }
}

/// Where a stored message is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageRef {
    pub conversation: ConversationId,
    pub sk: String,
}

/// A conversation as stored, decrypted.
#[derive(Clone, Debug, PartialEq)]
pub struct ConversationMeta {
    pub id: ConversationId,
    pub account: AccountRef,
    pub customer: CustomerRef,
    pub created_at: i64,
    /// The same instant in Unix milliseconds.
    pub created_at_ms: i64,
    /// When the customer last wrote (Unix seconds): the 24-hour window starts here.
    pub last_inbound_at: Option<i64>,
    /// The Bitrix24 chat of this conversation, once synced.
    pub crm_chat_id: Option<String>,
    /// Identities the customer had before a change of number or BSUID (decision 0049).
    pub former_ids: Vec<CustomerId>,
    /// The customer's profile as the channel reported it (Instagram), once fetched.
    pub profile: Option<super::CustomerProfile>,
}

/// A message as stored, decrypted.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredMessage {
    pub at: MessageRef,
    pub provider_message_id: String,
    pub direction: Direction,
    pub origin: Origin,
    /// None once the message was deleted (revoked or unsent): its content is erased.
    pub content: Option<Content>,
    pub at_ms: i64,
    pub reply_to: Option<String>,
    pub status: Option<MessageStatus>,
    pub edited: bool,
    pub deleted: bool,
    /// The customer's reaction (emoji), if any.
    pub reaction: Option<String>,
    pub crm_message_ids: Vec<String>,
    /// Bitrix24's own ids of an operator message (from its `OnImConnectorMessageAdd`), which
    /// delivery and read statuses are reported against.
    pub crm_im: Option<crate::bitrix::ImRef>,
    /// The id the provider gave the message when we sent it (operator messages).
    pub sent_provider_id: Option<String>,
    pub template: Option<TemplateMessage>,
}

/// Whether [`Conversations::store_message_with`] looks the message up by its provider id
/// before it writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IndexLookup {
    /// Look it up first: a message stored before is returned without a write.
    First,
    /// The caller has just looked it up ([`Conversations::find_message`]) and found none:
    /// write at once. The write's condition still refuses a message stored meanwhile.
    AlreadyDone,
}

/// What [`Conversations::store_message_with`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreOutcome {
    /// Stored now, with the extra writes.
    New(MessageRef),
    /// Stored before (a redelivery): nothing written.
    Existing(MessageRef),
    /// An extra write failed its condition (its index in `extra`, where the backend says):
    /// nothing written.
    Refused { op: Option<usize> },
}
