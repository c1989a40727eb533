//! A conversation's customer: recording (or refreshing) the conversation with the customer's
//! details, encrypted, merged with what was stored before, and reading it back.

use super::identity::{
    customer_write_over, identities, merge_alias_pks, over_concurrent_writes, over_passing_errors,
    ALIASES_ATTR, ALIAS_TARGET, CUSTOMER_REV, FORMER_ATTR,
};
use super::model::{ConversationId, ConversationMeta, MessageRef};
use super::{retention_expiry, ConversationError, Conversations};
use crate::clock::now_secs;
use crate::meta::{AccountRef, CustomerId, CustomerRef, WhatsAppPhone};
use crate::store::{
    AttrValue, Condition, Key, Query, StoreError, Table, Update, WriteOp, TTL_ATTR,
};

/// The conversation's attribute holding the business's saved name, encrypted.
const SAVED_NAME: &str = "saved_name";

/// The conversation's creation time in milliseconds.
const CREATED_AT_MS: &str = "created_at_ms";
/// The customer revision a conversation's first write leaves ([`customer_write_over`]).
const OPENED_REV: i64 = 1;

/// A conversation [`Conversations::open_customer`] opened: when, as it wrote it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Opened {
    created_at_ms: i64,
}

impl Opened {
    /// As kept on the message it was opened for (decision 0133).
    pub(super) fn created_at_ms(&self) -> i64 {
        self.created_at_ms
    }

    pub(super) fn from_created_at_ms(created_at_ms: i64) -> Self {
        Opened { created_at_ms }
    }
}

/// How much longer than its conversation a list entry is given when it is written, so that
/// it is written again at most once a day while the conversation goes on (decision 0105). The
/// entry holds the conversation's id and when it began: no content, no phone number.
const LIST_SLACK_SECS: i64 = 86_400;

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
        self.open_customer(account, customer, inbound_at, retention_days)
            .await
            .map(|(id, _)| id)
    }

    /// As [`Self::record_customer`], saying whether this call opened the conversation (wrote
    /// its `META` where there was none): what [`Self::forget_opened`] needs to remove it
    /// again.
    pub async fn open_customer(
        &self,
        account: &AccountRef,
        customer: &CustomerRef,
        inbound_at: Option<i64>,
        retention_days: u32,
    ) -> Result<(ConversationId, Option<Opened>), ConversationError> {
        // Another delivery of this customer may write them between our read and our write:
        // merged again from what it stored (decision 0115).
        over_concurrent_writes(|| {
            self.record_customer_once(account, customer, inbound_at, retention_days)
        })
        .await
    }

    /// Removes the conversation `id` that this stage opened (`opened`, from
    /// [`Self::open_customer`]) for `customer` on `account`, when it is still only what this
    /// stage wrote: no message in it, and its `META` not written since (the customer
    /// revision and the creation time this stage wrote). Its `META`, list entry and
    /// aliases go in one transaction. For a stage that removed its message again because
    /// the person's erasure began meanwhile (decision 0131): the erasure may have emptied
    /// the conversation before this stage opened it again, and the shell, with the person's
    /// name and number, would have stayed (and been listed) until the tenant's retention.
    /// Returns whether it was removed.
    pub async fn forget_opened(
        &self,
        account: &AccountRef,
        id: &ConversationId,
        opened: &Opened,
        customer: &CustomerRef,
    ) -> Result<bool, ConversationError> {
        if !self.messages_of(id, 1).await?.is_empty() {
            return Ok(false);
        }
        let ops = self.forget_ops(account, id, opened, customer).await?;
        self.remove_unless_changed(ops).await
    }

    /// Writes `ops` in one transaction, retried over throttling: a failure here is not
    /// retried by the job, whose next delivery stops at the marker's first check (decision
    /// 0132). False when one of their conditions failed: written since (another delivery of
    /// the person), or gone (the erasure).
    async fn remove_unless_changed(&self, ops: Vec<WriteOp>) -> Result<bool, ConversationError> {
        let written =
            over_passing_errors(|| async { Ok(self.store.transact_write(ops.clone()).await?) })
                .await;
        match written {
            Ok(()) => Ok(true),
            Err(ConversationError::Store(StoreError::ConditionFailed { .. })) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Removes the message at `at` (with its provider-id index item and `extra`, the count
    /// taken back) and the conversation this stage opened for it, in one transaction when it
    /// is the conversation's only message (decision 0133): two steps would leave the
    /// conversation, with the person's name and number, when the process stopped between
    /// them, and no later delivery would find it (the message that led to it is gone).
    /// Otherwise, or when a condition fails (the conversation written since, the message
    /// gone), as the two steps: [`Self::unstore_message_with`], then
    /// [`Self::forget_opened`]. Returns whether this call removed the message.
    #[allow(clippy::too_many_arguments)]
    pub async fn unstore_opened(
        &self,
        account: &AccountRef,
        at: &MessageRef,
        provider_message_id: &str,
        extra: Vec<WriteOp>,
        opened: &Opened,
        customer: &CustomerRef,
    ) -> Result<bool, ConversationError> {
        let first = self.messages_of(&at.conversation, 2).await?;
        if first.len() == 1 && first[0].get_s("sk") == Some(at.sk.as_str()) {
            let mut ops = self.unstore_ops(account, at, provider_message_id, extra.clone());
            ops.extend(
                self.forget_ops(account, &at.conversation, opened, customer)
                    .await?,
            );
            if self.remove_unless_changed(ops).await? {
                return Ok(true);
            }
        }
        let removed = over_passing_errors(|| {
            self.unstore_message_with(account, at, provider_message_id, extra.clone())
        })
        .await?;
        self.forget_opened(account, &at.conversation, opened, customer)
            .await?;
        Ok(removed)
    }

    /// Up to `limit` message items of conversation `id`, in order.
    async fn messages_of(
        &self,
        id: &ConversationId,
        limit: usize,
    ) -> Result<Vec<crate::store::Item>, ConversationError> {
        let messages = Query::partition(self.partition(id))
            .begins_with(super::MSG_PREFIX)
            .limit(limit);
        Ok(self.store.query(Table::Data, &messages).await?.items)
    }

    /// The writes that remove conversation `id` (its `META`, list entry and aliases) on
    /// condition it is still what `opened` wrote for `customer`: the customer revision of a
    /// first write and the same creation time; an alias only where it still points here
    /// (or is gone), never one another conversation of the person took since.
    async fn forget_ops(
        &self,
        account: &AccountRef,
        id: &ConversationId,
        opened: &Opened,
        customer: &CustomerRef,
    ) -> Result<Vec<WriteOp>, ConversationError> {
        let mut ops = vec![
            WriteOp::Delete {
                table: Table::Data,
                key: self.meta_key(id),
                condition: Some(Condition::And(vec![
                    Condition::Equals(CUSTOMER_REV.into(), AttrValue::N(OPENED_REV)),
                    Condition::Equals(CREATED_AT_MS.into(), AttrValue::N(opened.created_at_ms)),
                ])),
            },
            WriteOp::Delete {
                table: Table::Data,
                key: Key::new(self.tenant.sub_partition("CONVS"), id.as_str()),
                condition: None,
            },
        ];
        for key in self.alias_keys(account, customer, id).await? {
            ops.push(WriteOp::Delete {
                table: Table::Data,
                key,
                condition: Some(Condition::Or(vec![
                    Condition::AttrNotExists(ALIAS_TARGET.into()),
                    Condition::Equals(ALIAS_TARGET.into(), AttrValue::S(id.as_str().into())),
                ])),
            });
        }
        Ok(ops)
    }

    /// One try of [`Self::record_customer`]: fails with a failed condition when the customer
    /// was written since it was read.
    async fn record_customer_once(
        &self,
        account: &AccountRef,
        customer: &CustomerRef,
        inbound_at: Option<i64>,
        retention_days: u32,
    ) -> Result<(ConversationId, Option<Opened>), ConversationError> {
        // The conversation any identity of this delivery leads to (decision 0049), so a
        // customer first seen by phone and later by BSUID stays one conversation.
        let found = self.find_customer(account, customer).await?;
        let (id, existing, old, mut former) = match found {
            Some(f) => (f.id, Some(f.item), Some(f.customer), f.former),
            None => (
                self.fresh_id(account, customer).await?,
                None,
                None,
                Vec::new(),
            ),
        };
        let key = self.meta_key(&id);
        let now = now_secs();
        let expires = retention_expiry(retention_days);
        // A delivery under an identity the customer had before a change (sent before it,
        // delivered after) leaves their current identity as it is.
        let stale = former.contains(&customer.id);
        // Keep details Meta did not repeat this time (a status carries no profile name).
        let merged = match &old {
            Some(old) => {
                let mut old = old.clone();
                // A BSUID replaces a phone as the id; a phone never replaces a BSUID.
                if !stale && matches!(customer.id, CustomerId::WhatsAppUser(_)) {
                    if let CustomerId::WhatsAppPhone(p) = &old.id {
                        // The phone it was known by stays one of its identities.
                        old.phone.get_or_insert_with(|| p.clone());
                    }
                    old.id = customer.id.clone();
                }
                if customer.name.is_some() {
                    old.name = customer.name.clone();
                }
                if !stale && customer.phone.is_some() {
                    old.phone = customer.phone.clone();
                }
                if customer.username.is_some() {
                    old.username = customer.username.clone();
                }
                if !stale && customer.parent_user_id.is_some() {
                    old.parent_user_id = customer.parent_user_id.clone();
                }
                old
            }
            None => customer.clone(),
        };
        // A phone replaced without a notice is kept as a former identity (erasure finds it).
        let dropped: Vec<CustomerId> = old
            .as_ref()
            .map(|o| {
                let now = identities(&merged);
                identities(o)
                    .into_iter()
                    .filter(|i| !now.contains(i) && !former.contains(i))
                    .collect()
            })
            .unwrap_or_default();
        // Aliases are written when the identities change, and refreshed when the
        // conversation's expiry moves by more than a day, so they live as long as it does.
        let aliases_due = match (&old, &existing) {
            (Some(old), Some(item)) => {
                identities(old) != identities(&merged)
                    || item
                        .get_n(TTL_ATTR)
                        .is_none_or(|t| t.saturating_add(86_400) < expires)
            }
            _ => true,
        };
        let alias_keys = if aliases_due {
            self.alias_keys(account, &merged, &id).await?
        } else {
            Vec::new()
        };
        let (unchanged, rev) = customer_write_over(existing.as_ref());
        let mut update = Update::new()
            .set("account", account_attr(account))
            .set(CUSTOMER_REV, rev)
            .set(
                "customer",
                self.encrypt_json(&key, "customer", &merged).await?,
            )
            .set("updated_at", now)
            .set(TTL_ATTR, expires);
        if !alias_keys.is_empty() {
            let listed = existing.as_ref().and_then(|i| i.get_s(ALIASES_ATTR));
            update = update.set(ALIASES_ATTR, merge_alias_pks(listed, &alias_keys, &[]));
        }
        if !dropped.is_empty() {
            former.extend(dropped);
            update = update.set(
                FORMER_ATTR,
                self.encrypt_json(&key, FORMER_ATTR, &former).await?,
            );
        }
        let opened = existing.is_none().then(|| Opened {
            created_at_ms: crate::clock::now_millis(),
        });
        if let Some(opened) = &opened {
            // Milliseconds too: an erasure's marker (ms) must tell a conversation begun just
            // before it from one begun again just after, within the same second.
            update = update
                .set("created_at", now)
                .set(CREATED_AT_MS, opened.created_at_ms);
        }
        let previous_inbound = existing.as_ref().and_then(|i| i.get_n("last_inbound_at"));
        if let Some(at) = inbound_at {
            if previous_inbound.is_none_or(|p| at > p) {
                update = update.set("last_inbound_at", at);
            }
        }
        self.store
            .update(Table::Data, &key, update, Some(unchanged))
            .await?;
        // The list entry lives at least as long as its conversation (the retention re-stamp,
        // the export and the erasures find conversations through it): created with it, and
        // pushed a day past the conversation's expiry whenever that expiry passes its own, so
        // a conversation's messages within a day cost one read of it instead of one write
        // each (decision 0105). Its expiry is read, not assumed, so an entry the retention
        // re-stamp shortened (or one a crash left behind) is written again.
        let list_key = Key::new(self.tenant.sub_partition("CONVS"), id.as_str());
        let listed_until = match &existing {
            Some(_) => self
                .store
                .get(Table::Data, &list_key)
                .await?
                .map(|entry| entry.get_n(TTL_ATTR)),
            None => None,
        };
        if listed_until.is_none_or(|until| until.is_none_or(|t| t < expires)) {
            let mut listing = Update::new().set(TTL_ATTR, expires.saturating_add(LIST_SLACK_SECS));
            if listed_until.is_none() {
                listing = listing.set("created_at", now);
            }
            self.store
                .update(Table::Data, &list_key, listing, None)
                .await?;
        }
        self.put_aliases(&alias_keys, &id, expires).await?;
        Ok((id, opened))
    }

    /// The conversation of the customer with `phone` on `account`: theirs by phone, or the
    /// one their phone is an alias of (a customer known by BSUID). None when we never talked.
    pub async fn conversation_of_phone(
        &self,
        account: &AccountRef,
        phone: &WhatsAppPhone,
    ) -> Result<Option<ConversationId>, ConversationError> {
        // The phone's own conversation, or the one it is an alias of (decision 0049).
        self.conversation_of(account, &CustomerId::WhatsAppPhone(phone.clone()))
            .await
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
        let former_ids = match item.get_b(FORMER_ATTR) {
            Some(blob) => self.decrypt_json(&key, FORMER_ATTR, blob).await?,
            None => Vec::new(),
        };
        let profile = match item.get_b("profile") {
            Some(blob) => Some(self.decrypt_json(&key, "profile", blob).await?),
            None => None,
        };
        Ok(Some(ConversationMeta {
            profile,
            id: id.clone(),
            account,
            customer,
            created_at: item.get_n("created_at").unwrap_or(0),
            created_at_ms: item
                .get_n(CREATED_AT_MS)
                .or_else(|| item.get_n("created_at").map(|s| s.saturating_mul(1000)))
                .unwrap_or(0),
            last_inbound_at: item.get_n("last_inbound_at"),
            crm_chat_id: item.get_s("crm_chat_id").map(str::to_owned),
            former_ids,
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
