//! A conversation's customer: recording (or refreshing) the conversation with the customer's
//! details, encrypted, merged with what was stored before, and reading it back.

use super::model::{ConversationId, ConversationMeta};
use super::{retention_expiry, ConversationError, Conversations};
use crate::clock::now_secs;
use crate::meta::{AccountRef, CustomerId, CustomerRef, WhatsAppPhone};
use crate::store::{AttrValue, Condition, Key, Table, Update, TTL_ATTR};

/// The sub-partition of phone aliases (keyed conversation id → keyed conversation id).
pub const ALIAS_SUFFIX: &str = "CALIAS";
/// The conversation's attribute holding the business's saved name, encrypted.
const SAVED_NAME: &str = "saved_name";

impl Conversations {
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
        let id =
            ConversationId::derive(&self.envelope, &self.tenant, account, &customer.id).await?;
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
            // Milliseconds too: an erasure's marker (ms) must tell a conversation begun just
            // before it from one begun again just after, within the same second.
            update = update
                .set("created_at", now)
                .set("created_at_ms", crate::clock::now_millis());
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
        self.record_phone_alias(account, customer, &id, &existing)
            .await?;
        Ok(id)
    }

    /// Coexistence contacts and history name customers by phone only: a customer known by
    /// BSUID gets an alias from their phone's conversation id to theirs, written when the
    /// phone is first learnt (keyed ids only; removed with the conversation's erasure).
    async fn record_phone_alias(
        &self,
        account: &AccountRef,
        customer: &CustomerRef,
        id: &ConversationId,
        existing: &Option<crate::store::Item>,
    ) -> Result<(), ConversationError> {
        let Some(phone) = &customer.phone else {
            return Ok(());
        };
        if matches!(customer.id, CustomerId::WhatsAppPhone(_)) {
            return Ok(());
        }
        let had_phone = existing
            .as_ref()
            .is_some_and(|i| i.get_bool("phone_alias").unwrap_or(false));
        if had_phone {
            return Ok(());
        }
        let alias = ConversationId::derive(
            &self.envelope,
            &self.tenant,
            account,
            &CustomerId::WhatsAppPhone(phone.clone()),
        )
        .await?;
        let key = Key::new(self.tenant.sub_partition(ALIAS_SUFFIX), alias.as_str());
        // No expiry of its own: it holds keyed ids only, and a retention change could not
        // restamp it; it points at nothing once its conversation expires, and erasure
        // removes it with the conversation.
        let update = Update::new().set("conversation", id.as_str());
        self.store.update(Table::Data, &key, update, None).await?;
        let mark = Update::new().set("phone_alias", true);
        self.store
            .update(Table::Data, &self.meta_key(id), mark, None)
            .await?;
        Ok(())
    }

    /// Removes the phone alias pointing at conversation `id` (its erasure).
    pub async fn remove_phone_alias(
        &self,
        account: &AccountRef,
        id: &ConversationId,
    ) -> Result<(), ConversationError> {
        let Some(phone) = self.meta(id).await?.and_then(|m| m.customer.phone) else {
            return Ok(());
        };
        let alias = ConversationId::derive(
            &self.envelope,
            &self.tenant,
            account,
            &CustomerId::WhatsAppPhone(phone),
        )
        .await?;
        let key = Key::new(self.tenant.sub_partition(ALIAS_SUFFIX), alias.as_str());
        self.store.delete(Table::Data, &key, None).await?;
        Ok(())
    }

    /// The conversation of the customer with `phone` on `account`: theirs by phone, or the
    /// one their phone is an alias of (a customer known by BSUID). None when we never talked.
    pub async fn conversation_of_phone(
        &self,
        account: &AccountRef,
        phone: &WhatsAppPhone,
    ) -> Result<Option<ConversationId>, ConversationError> {
        let by_phone = ConversationId::derive(
            &self.envelope,
            &self.tenant,
            account,
            &CustomerId::WhatsAppPhone(phone.clone()),
        )
        .await?;
        if self.meta(&by_phone).await?.is_some() {
            return Ok(Some(by_phone));
        }
        let key = Key::new(self.tenant.sub_partition(ALIAS_SUFFIX), by_phone.as_str());
        let Some(item) = self.store.get(Table::Data, &key).await? else {
            return Ok(None);
        };
        let Some(id) = item
            .get_s("conversation")
            .and_then(|s| ConversationId::parse(s).ok())
        else {
            return Ok(None);
        };
        Ok(self.meta(&id).await?.map(|_| id))
    }

    /// Sets (or, with None, clears) the name the business saved for the customer in its
    /// WhatsApp Business app (Coexistence contacts). It wins over the profile name: it is
    /// what the business calls them. Returns false when there is no such conversation.
    pub async fn set_saved_name(
        &self,
        id: &ConversationId,
        name: Option<&str>,
    ) -> Result<bool, ConversationError> {
        let key = self.meta_key(id);
        if self.store.get(Table::Data, &key).await?.is_none() {
            return Ok(false);
        }
        let update = match name {
            Some(n) => Update::new().set(
                SAVED_NAME,
                self.encrypt_json(&key, SAVED_NAME, &n.to_owned()).await?,
            ),
            None => Update::new().remove(SAVED_NAME),
        };
        self.store
            .update(Table::Data, &key, update, Some(Condition::Exists))
            .await?;
        Ok(true)
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
        let mut customer: CustomerRef = self.decrypt_json(&key, "customer", blob).await?;
        if let Some(saved) = item.get_b(SAVED_NAME) {
            customer.name = Some(self.decrypt_json(&key, SAVED_NAME, saved).await?);
        }
        Ok(Some(ConversationMeta {
            id: id.clone(),
            account,
            customer,
            created_at: item.get_n("created_at").unwrap_or(0),
            created_at_ms: item
                .get_n("created_at_ms")
                .or_else(|| item.get_n("created_at").map(|s| s.saturating_mul(1000)))
                .unwrap_or(0),
            last_inbound_at: item.get_n("last_inbound_at"),
            crm_chat_id: item.get_s("crm_chat_id").map(str::to_owned),
        }))
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
