//! Conversations and messages: the tenant-scoped repository the inbound and outbound paths
//! share.
//!
//! A conversation is one customer on one business account. Its id is a pseudonym derived
//! from tenant, account and customer (so keys never carry a phone number or user id), and it
//! is its own partition (`T#<t>#CONV#<id>`), so a busy tenant spreads over many partitions:
//!
//! | pk | sk | what |
//! |---|---|---|
//! | `T#<t>#CONV#<id>` | `META` | account, customer (encrypted), last inbound time, CRM chat id |
//! | `T#<t>#CONV#<id>` | `MSG#<ms, 13 digits>#<hash>` | one message, content encrypted |
//! | `T#<t>#MID#<hash of account + provider id>` | `MID` | provider message id → message |
//! | `T#<t>#CONVS` | `<id>` | the tenant's conversations (export, erasure) |
//!
//! Every item carries `expires_at` from the tenant's retention. Content and customer details
//! are encrypted with the tenant's data key, bound to their item and attribute.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::clock::now_secs;
use crate::crypto::{CryptoError, Envelope, FieldRef};
use crate::ids::TenantId;
use crate::meta::{AccountRef, Content, CustomerId, CustomerRef};
use crate::store::{
    AttrValue, Condition, Item, Key, Query, StoreError, Table, TableStore, Update, WriteOp,
    TTL_ATTR,
};

const META_SK: &str = "META";
const MID_SK: &str = "MID";
const MSG_PREFIX: &str = "MSG#";

#[derive(Debug, thiserror::Error)]
pub enum ConversationError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error("stored item is unreadable: {0}")]
    Corrupt(String),
}

/// A conversation's id: `c_` + 32 hex digits of SHA-256 over tenant, account and customer.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ConversationId(String);

impl ConversationId {
    pub fn derive(tenant: &TenantId, account: &AccountRef, customer: &CustomerId) -> Self {
        let mut h = Sha256::new();
        for part in [
            tenant.as_str(),
            account.channel().code(),
            account.id(),
            &customer.key(),
        ] {
            h.update((part.len() as u32).to_be_bytes());
            h.update(part.as_bytes());
        }
        ConversationId(format!("c_{}", &hex::encode(h.finalize())[..32]))
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
    fn code(self) -> &'static str {
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
    /// Sent by the tenant's own systems through the public send API.
    Api,
}

impl Origin {
    fn code(self) -> &'static str {
        match self {
            Origin::Customer => "customer",
            Origin::Operator => "operator",
            Origin::BusinessApp => "business_app",
            Origin::Api => "api",
        }
    }
    fn from_code(s: &str) -> Option<Self> {
        Some(match s {
            "customer" => Origin::Customer,
            "operator" => Origin::Operator,
            "business_app" => Origin::BusinessApp,
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
    pub fn code(self) -> &'static str {
        match self {
            MessageStatus::Sent => "sent",
            MessageStatus::Failed => "failed",
            MessageStatus::Delivered => "delivered",
            MessageStatus::Read => "read",
        }
    }
    fn from_code(s: &str) -> Option<Self> {
        Some(match s {
            "sent" => MessageStatus::Sent,
            "failed" => MessageStatus::Failed,
            "delivered" => MessageStatus::Delivered,
            "read" => MessageStatus::Read,
            _ => return None,
        })
    }
}

/// An approved WhatsApp template to send (business-initiated messages, or replies outside
/// the 24-hour window): name, language and the Cloud API's `components` as given.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TemplateMessage {
    pub name: String,
    pub language: String,
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub components: serde_json::Value,
}

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
    /// When the customer last wrote (Unix seconds): the 24-hour window starts here.
    pub last_inbound_at: Option<i64>,
    /// The Bitrix24 chat of this conversation, once synced.
    pub crm_chat_id: Option<String>,
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

/// The key of a message's provider-id index item (`T#<t>#MID#<hash>` / `MID`): SHA-256 over
/// channel, account and provider message id, length-prefixed. Conversations write it;
/// retention and erasure find it again from a stored message.
pub fn message_index_key(tenant: &TenantId, account: &AccountRef, provider_id: &str) -> Key {
    let mut h = Sha256::new();
    for part in [account.channel().code(), account.id(), provider_id] {
        h.update((part.len() as u32).to_be_bytes());
        h.update(part.as_bytes());
    }
    let digest = hex::encode(h.finalize());
    Key::new(
        tenant.sub_partition(&format!("MID#{}", &digest[..32])),
        MID_SK,
    )
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

/// The tenant-scoped conversation repository.
#[derive(Clone)]
pub struct Conversations {
    tenant: TenantId,
    store: Arc<dyn TableStore>,
    envelope: Arc<Envelope>,
}

fn message_sk(at_ms: i64, provider_message_id: &str) -> String {
    let digest = hex::encode(Sha256::digest(provider_message_id.as_bytes()));
    format!("{MSG_PREFIX}{:013}#{}", at_ms.max(0), &digest[..16])
}

fn retention_expiry(retention_days: u32) -> i64 {
    now_secs() + i64::from(retention_days) * 86_400
}

impl Conversations {
    pub fn new(tenant: TenantId, store: Arc<dyn TableStore>, envelope: Arc<Envelope>) -> Self {
        Conversations {
            tenant,
            store,
            envelope,
        }
    }

    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }

    pub fn partition(&self, id: &ConversationId) -> String {
        self.tenant.sub_partition(&format!("CONV#{id}"))
    }

    fn meta_key(&self, id: &ConversationId) -> Key {
        Key::new(self.partition(id), META_SK)
    }

    fn message_key(&self, at: &MessageRef) -> Key {
        Key::new(self.partition(&at.conversation), at.sk.clone())
    }

    fn index_key(&self, account: &AccountRef, provider_message_id: &str) -> Key {
        message_index_key(&self.tenant, account, provider_message_id)
    }

    /// The key of the provider-id index item of a message (for erasure and retention).
    pub fn index_key_of(&self, account: &AccountRef, provider_message_id: &str) -> Option<Key> {
        (!provider_message_id.is_empty()).then(|| self.index_key(account, provider_message_id))
    }

    async fn encrypt_json<T: Serialize>(
        &self,
        key: &Key,
        attr: &str,
        value: &T,
    ) -> Result<Vec<u8>, ConversationError> {
        let json = zeroize::Zeroizing::new(
            serde_json::to_vec(value).map_err(|e| ConversationError::Corrupt(e.to_string()))?,
        );
        let field = FieldRef::new(&self.tenant, Table::Data, key, attr);
        Ok(self.envelope.encrypt(field, &json).await?)
    }

    async fn decrypt_json<T: for<'de> Deserialize<'de>>(
        &self,
        key: &Key,
        attr: &str,
        blob: &[u8],
    ) -> Result<T, ConversationError> {
        let field = FieldRef::new(&self.tenant, Table::Data, key, attr);
        let json = zeroize::Zeroizing::new(self.envelope.decrypt(field, blob).await?);
        serde_json::from_slice(&json).map_err(|e| ConversationError::Corrupt(e.to_string()))
    }

    /// Creates or refreshes the conversation of `customer` on `account`: the customer's
    /// details (encrypted), and when `inbound_at` is given, the last time the customer wrote
    /// (kept as the latest of all, whatever order events arrive in).
    pub async fn record_customer(
        &self,
        account: &AccountRef,
        customer: &CustomerRef,
        inbound_at: Option<i64>,
        retention_days: u32,
    ) -> Result<ConversationId, ConversationError> {
        let id = ConversationId::derive(&self.tenant, account, &customer.id);
        let key = self.meta_key(&id);
        let existing = self.store.get(Table::Data, &key).await?;
        let now = now_secs();
        let expires = retention_expiry(retention_days);
        // Keep details Meta did not repeat this time (a status carries no profile name).
        let merged = match &existing {
            Some(item) => match item.get_b("customer") {
                Some(blob) => {
                    let mut old: CustomerRef = self.decrypt_json(&key, "customer", blob).await?;
                    if customer.name.is_some() {
                        old.name = customer.name.clone();
                    }
                    if customer.phone.is_some() {
                        old.phone = customer.phone.clone();
                    }
                    if customer.username.is_some() {
                        old.username = customer.username.clone();
                    }
                    if customer.parent_user_id.is_some() {
                        old.parent_user_id = customer.parent_user_id.clone();
                    }
                    old
                }
                None => customer.clone(),
            },
            None => customer.clone(),
        };
        let mut update = Update::new()
            .set("account", account_attr(account))
            .set(
                "customer",
                self.encrypt_json(&key, "customer", &merged).await?,
            )
            .set("updated_at", now)
            .set(TTL_ATTR, expires);
        if existing.is_none() {
            update = update.set("created_at", now);
        }
        let previous_inbound = existing.as_ref().and_then(|i| i.get_n("last_inbound_at"));
        if let Some(at) = inbound_at {
            if previous_inbound.is_none_or(|p| at > p) {
                update = update.set("last_inbound_at", at);
            }
        }
        self.store.update(Table::Data, &key, update, None).await?;
        // The list entry lives as long as its conversation: created with it, and its expiry
        // kept in step whenever the conversation's is.
        let list_key = Key::new(self.tenant.sub_partition("CONVS"), id.as_str());
        let mut listing = Update::new().set(TTL_ATTR, expires);
        if existing.is_none() {
            listing = listing.set("created_at", now);
        }
        self.store
            .update(Table::Data, &list_key, listing, None)
            .await?;
        Ok(id)
    }

    pub async fn meta(
        &self,
        id: &ConversationId,
    ) -> Result<Option<ConversationMeta>, ConversationError> {
        let key = self.meta_key(id);
        let Some(item) = self.store.get(Table::Data, &key).await? else {
            return Ok(None);
        };
        let account = item
            .get("account")
            .and_then(account_from_attr)
            .ok_or_else(|| ConversationError::Corrupt("conversation without account".into()))?;
        let blob = item
            .get_b("customer")
            .ok_or_else(|| ConversationError::Corrupt("conversation without customer".into()))?;
        let customer = self.decrypt_json(&key, "customer", blob).await?;
        Ok(Some(ConversationMeta {
            id: id.clone(),
            account,
            customer,
            created_at: item.get_n("created_at").unwrap_or(0),
            last_inbound_at: item.get_n("last_inbound_at"),
            crm_chat_id: item.get_s("crm_chat_id").map(str::to_owned),
        }))
    }

    /// Stores a message once: the message item and its provider-id index are written together
    /// only if neither exists. Returns the message's place and whether it was new.
    pub async fn store_message(
        &self,
        account: &AccountRef,
        conversation: &ConversationId,
        message: NewMessage,
        retention_days: u32,
    ) -> Result<(MessageRef, bool), ConversationError> {
        match self
            .store_message_with(account, conversation, message, retention_days, Vec::new())
            .await?
        {
            StoreOutcome::New(at) => Ok((at, true)),
            StoreOutcome::Existing(at) => Ok((at, false)),
            // Nothing extra was asked for, so nothing extra can refuse.
            StoreOutcome::Refused { .. } => Err(ConversationError::Corrupt(
                "a message write was refused without extra writes".into(),
            )),
        }
    }

    /// As [`Conversations::store_message`], with `extra` writes (e.g. a usage counter) in the
    /// same transaction: they happen exactly when the message is new, so a redelivered
    /// message never repeats them. When one of them fails its condition the message is not
    /// stored either ([`StoreOutcome::Refused`]).
    pub async fn store_message_with(
        &self,
        account: &AccountRef,
        conversation: &ConversationId,
        message: NewMessage,
        retention_days: u32,
        extra: Vec<WriteOp>,
    ) -> Result<StoreOutcome, ConversationError> {
        let index_key = self.index_key(account, &message.provider_message_id);
        if let Some(existing) = self.store.get(Table::Data, &index_key).await? {
            return Ok(StoreOutcome::Existing(index_target(&existing)?));
        }
        let at = MessageRef {
            conversation: conversation.clone(),
            sk: message_sk(message.at_ms, &message.provider_message_id),
        };
        let key = self.message_key(&at);
        let expires = retention_expiry(retention_days);
        let mut item = Item::new(&key)
            .with("provider_message_id", message.provider_message_id.as_str())
            .with("direction", message.direction.code())
            .with("origin", message.origin.code())
            .with("at_ms", message.at_ms)
            .with(
                "content",
                self.encrypt_json(&key, "content", &message.content).await?,
            )
            .with("created_at", now_secs())
            .with(TTL_ATTR, expires);
        if let Some(r) = &message.reply_to {
            item.set("reply_to", r.as_str());
        }
        if let Some(template) = &message.template {
            item.set(
                "template",
                self.encrypt_json(&key, "template", template).await?,
            );
        }
        if let Some(im) = &message.crm_im {
            item.set(
                "crm_im_chat_id",
                i64::try_from(im.chat_id).unwrap_or(i64::MAX),
            );
            item.set(
                "crm_im_message_id",
                i64::try_from(im.message_id).unwrap_or(i64::MAX),
            );
        }
        let index = Item::new(&index_key)
            .with("conversation", conversation.as_str())
            .with("message_sk", at.sk.as_str())
            .with(TTL_ATTR, expires);
        let has_extra = !extra.is_empty();
        let mut ops = vec![
            WriteOp::Put {
                table: Table::Data,
                item,
                condition: Some(Condition::NotExists),
            },
            WriteOp::Put {
                table: Table::Data,
                item: index,
                condition: Some(Condition::NotExists),
            },
        ];
        ops.extend(extra);
        let written = self.store.transact_write(ops).await;
        match written {
            Ok(()) => Ok(StoreOutcome::New(at)),
            // One of the extra writes refused: the message is not a duplicate.
            Err(StoreError::ConditionFailed {
                op_index: Some(i @ 2..),
            }) => Ok(StoreOutcome::Refused { op: Some(i - 2) }),
            // A concurrent or earlier attempt stored it: same message, same place.
            Err(StoreError::ConditionFailed { op_index }) => {
                match self.store.get(Table::Data, &index_key).await? {
                    Some(existing) => Ok(StoreOutcome::Existing(index_target(&existing)?)),
                    // The backend did not say which write failed and the message is not
                    // there: with extra writes, it was one of them.
                    None if has_extra && op_index.is_none() => {
                        Ok(StoreOutcome::Refused { op: None })
                    }
                    None => Ok(StoreOutcome::Existing(at)),
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Records the id the provider gave a message we sent (e.g. the `wamid` the Cloud API
    /// answered), so its statuses find it. Idempotent.
    pub async fn record_provider_id(
        &self,
        account: &AccountRef,
        at: &MessageRef,
        provider_message_id: &str,
        retention_days: u32,
    ) -> Result<(), ConversationError> {
        let index = Item::new(&self.index_key(account, provider_message_id))
            .with("conversation", at.conversation.as_str())
            .with("message_sk", at.sk.as_str())
            .with(TTL_ATTR, retention_expiry(retention_days));
        self.store.put(Table::Data, index, None).await?;
        self.update_existing(
            &self.message_key(at),
            Update::new().set("sent_provider_id", provider_message_id),
        )
        .await?;
        Ok(())
    }

    /// Finds a message by the provider's id on an account.
    pub async fn find_message(
        &self,
        account: &AccountRef,
        provider_message_id: &str,
    ) -> Result<Option<MessageRef>, ConversationError> {
        let index_key = self.index_key(account, provider_message_id);
        match self.store.get(Table::Data, &index_key).await? {
            Some(item) => Ok(Some(index_target(&item)?)),
            None => Ok(None),
        }
    }

    pub async fn message(
        &self,
        at: &MessageRef,
    ) -> Result<Option<StoredMessage>, ConversationError> {
        let key = self.message_key(at);
        match self.store.get(Table::Data, &key).await? {
            Some(item) => Ok(Some(self.decode_message(at.clone(), &key, &item).await?)),
            None => Ok(None),
        }
    }

    async fn decode_message(
        &self,
        at: MessageRef,
        key: &Key,
        item: &Item,
    ) -> Result<StoredMessage, ConversationError> {
        let content = match item.get_b("content") {
            Some(blob) => Some(self.decrypt_json(key, "content", blob).await?),
            None => None,
        };
        let reaction = match item.get_b("reaction") {
            Some(blob) => Some(self.decrypt_json::<String>(key, "reaction", blob).await?),
            None => None,
        };
        let template = match item.get_b("template") {
            Some(blob) => Some(self.decrypt_json(key, "template", blob).await?),
            None => None,
        };
        let crm_message_ids = match item.get("crm_message_ids") {
            Some(AttrValue::L(l)) => l
                .iter()
                .filter_map(|v| v.as_s().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        };
        Ok(StoredMessage {
            at,
            provider_message_id: item
                .get_s("provider_message_id")
                .unwrap_or_default()
                .to_owned(),
            direction: match item.get_s("direction") {
                Some("out") => Direction::Outbound,
                _ => Direction::Inbound,
            },
            origin: item
                .get_s("origin")
                .and_then(Origin::from_code)
                .unwrap_or(Origin::Customer),
            content,
            at_ms: item.get_n("at_ms").unwrap_or(0),
            reply_to: item.get_s("reply_to").map(str::to_owned),
            status: item.get_s("status").and_then(MessageStatus::from_code),
            edited: item.get_bool("edited").unwrap_or(false),
            deleted: item.get_bool("deleted").unwrap_or(false),
            reaction,
            crm_message_ids,
            sent_provider_id: item.get_s("sent_provider_id").map(str::to_owned),
            template,
            crm_im: match (
                item.get_n("crm_im_chat_id"),
                item.get_n("crm_im_message_id"),
            ) {
                (Some(chat), Some(message)) => Some(crate::bitrix::ImRef {
                    chat_id: u64::try_from(chat).unwrap_or_default(),
                    message_id: u64::try_from(message).unwrap_or_default(),
                }),
                _ => None,
            },
        })
    }

    /// Messages of a conversation in order, one page at a time.
    pub async fn messages(
        &self,
        id: &ConversationId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<StoredMessage>, Option<String>), ConversationError> {
        let pk = self.partition(id);
        let page = self
            .store
            .query(
                Table::Data,
                &Query::partition(pk.clone())
                    .begins_with(MSG_PREFIX)
                    .limit(limit)
                    .start_after(after.map(|sk| Key::new(pk.clone(), sk))),
            )
            .await?;
        let mut out = Vec::with_capacity(page.items.len());
        for item in &page.items {
            let key = item
                .key()
                .ok_or_else(|| ConversationError::Corrupt("message without key".into()))?;
            let at = MessageRef {
                conversation: id.clone(),
                sk: key.sk.clone(),
            };
            out.push(self.decode_message(at, &key, item).await?);
        }
        Ok((out, page.next.map(|k| k.sk)))
    }

    /// Moves a message's delivery status forward; false when it was already there or beyond
    /// (or the message is gone).
    pub async fn advance_status(
        &self,
        at: &MessageRef,
        status: MessageStatus,
    ) -> Result<bool, ConversationError> {
        let rank = status.rank();
        let forward = Condition::And(vec![
            Condition::Exists,
            Condition::Or(vec![
                Condition::AttrNotExists("status_rank".into()),
                Condition::LessThan("status_rank".into(), AttrValue::N(rank)),
            ]),
        ]);
        let update = Update::new()
            .set("status", status.code())
            .set("status_rank", rank)
            .set("status_at", now_secs());
        match self
            .store
            .update(Table::Data, &self.message_key(at), update, Some(forward))
            .await
        {
            Ok(_) => Ok(true),
            Err(StoreError::ConditionFailed { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Sets (or with `None` removes) the customer's reaction on a message.
    pub async fn set_reaction(
        &self,
        at: &MessageRef,
        emoji: Option<&str>,
    ) -> Result<bool, ConversationError> {
        let key = self.message_key(at);
        let update = match emoji {
            Some(e) => Update::new().set(
                "reaction",
                self.encrypt_json(&key, "reaction", &e.to_owned()).await?,
            ),
            None => Update::new().remove("reaction"),
        };
        self.update_existing(&key, update).await
    }

    /// Replaces a message's content after an edit.
    pub async fn edit_content(
        &self,
        at: &MessageRef,
        content: &Content,
    ) -> Result<bool, ConversationError> {
        let key = self.message_key(at);
        let update = Update::new()
            .set(
                "content",
                self.encrypt_json(&key, "content", content).await?,
            )
            .set("edited", true)
            .set("edited_at", now_secs());
        self.update_existing(&key, update).await
    }

    /// Marks a message deleted and erases its content and reaction.
    pub async fn mark_deleted(&self, at: &MessageRef) -> Result<bool, ConversationError> {
        let update = Update::new()
            .set("deleted", true)
            .set("deleted_at", now_secs())
            .remove("content")
            .remove("reaction");
        self.update_existing(&self.message_key(at), update).await
    }

    /// Remembers the Bitrix24 chat of a conversation.
    pub async fn set_crm_chat(
        &self,
        id: &ConversationId,
        chat_id: &str,
    ) -> Result<bool, ConversationError> {
        self.update_existing(
            &self.meta_key(id),
            Update::new().set("crm_chat_id", chat_id),
        )
        .await
    }

    /// Remembers the Bitrix24 message ids of a message (its sync is then done).
    pub async fn set_crm_message_ids(
        &self,
        at: &MessageRef,
        ids: &[String],
    ) -> Result<bool, ConversationError> {
        let list = AttrValue::L(ids.iter().map(|i| AttrValue::S(i.clone())).collect());
        self.update_existing(
            &self.message_key(at),
            Update::new()
                .set("crm_message_ids", list)
                .set("crm_synced_at", now_secs()),
        )
        .await
    }

    async fn update_existing(&self, key: &Key, update: Update) -> Result<bool, ConversationError> {
        match self
            .store
            .update(Table::Data, key, update, Some(Condition::Exists))
            .await
        {
            Ok(_) => Ok(true),
            Err(StoreError::ConditionFailed { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}

fn account_attr(account: &AccountRef) -> AttrValue {
    AttrValue::M(
        [
            (
                "channel".to_owned(),
                AttrValue::S(account.channel().name().into()),
            ),
            ("id".to_owned(), AttrValue::S(account.id().into())),
        ]
        .into_iter()
        .collect(),
    )
}

fn account_from_attr(v: &AttrValue) -> Option<AccountRef> {
    let AttrValue::M(m) = v else { return None };
    let channel = m.get("channel")?.as_s()?;
    let id = m.get("id")?.as_s()?;
    let json = serde_json::json!({ "channel": channel, "id": id });
    serde_json::from_value(json).ok()
}

fn index_target(item: &Item) -> Result<MessageRef, ConversationError> {
    let conversation = item
        .get_s("conversation")
        .and_then(|c| ConversationId::parse(c).ok())
        .ok_or_else(|| ConversationError::Corrupt("message index without conversation".into()))?;
    let sk = item
        .get_s("message_sk")
        .ok_or_else(|| ConversationError::Corrupt("message index without message".into()))?;
    Ok(MessageRef {
        conversation,
        sk: sk.to_owned(),
    })
}
