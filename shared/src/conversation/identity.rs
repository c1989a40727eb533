//! Which conversation a customer's identities lead to (decision 0049).
//!
//! A WhatsApp customer has up to two identities on one business number: the business-scoped
//! user id (BSUID, `bsuid:…`) and the phone (`phone:…`); Meta sends the phone, the BSUID or
//! both, and both change over time (`user_changed_number` regenerates the BSUID,
//! `user_changed_user_id` replaces it). The conversation id is derived from the identity the
//! conversation was *first* seen by and never changes, because it is Bitrix24's chat and user
//! id: a second chat for the same person is what this module prevents.
//!
//! - A conversation answers to its stored customer's current id and phone. An identity that
//!   does not derive to the conversation's id gets an alias item,
//!   `T#<t>#CUST#<keyed hash of channel, account, identity>` / `CUST` → conversation id (a
//!   pseudonym: no personal data in the key or the item), with the conversation's expiry.
//! - Finding: for each identity of the incoming customer (the id first, then the phone), the
//!   conversation it derives to, then its alias; the first whose stored customer answers to
//!   that identity wins. A conversation found by phone whose customer has another BSUID is
//!   someone else's (a number given to a new person) and is not used.
//! - Identities a customer no longer answers to are kept encrypted in the conversation
//!   (`former_ids`), so an erasure by an old phone or BSUID still finds it; their aliases are
//!   deleted, so the old number no longer routes to this customer.

use super::model::{ConversationId, IDENTITY_GENERATIONS};
use super::{ConversationError, Conversations};
use crate::meta::{AccountRef, Content, CustomerId, CustomerRef, WhatsAppPhone, WhatsAppUserId};
use crate::store::{AttrValue, Condition, Item, Key, StoreError, Table, TTL_ATTR};

/// The sort key of alias items.
pub const ALIAS_SK: &str = "CUST";
/// `META`'s list of the partition keys of its aliases (hashes: no personal data), so retention
/// re-stamps them with the conversation without the tenant's keys.
pub const ALIASES_ATTR: &str = "alias_pks";
/// The keyed-id label of alias keys (distinct from conversation ids').
const ALIAS_LABEL: &str = "customer-alias";
/// The alias item's attribute naming its conversation.
pub const ALIAS_TARGET: &str = "conversation";
/// The encrypted attribute of `META` with the identities the customer had before.
pub(super) const FORMER_ATTR: &str = "former_ids";
/// `META`'s count of writes of its customer (decision 0115). One customer's deliveries can
/// be recorded at once (by BSUID alone and by phone they run in two inbound FIFO groups,
/// decision 0097); each write of the customer is conditioned on the count it read, so a
/// write that would undo a concurrent one fails and is merged again from what is stored.
pub(super) const CUSTOMER_REV: &str = "customer_rev";
/// How often a write of the customer is merged again after a concurrent one before the
/// job is left to its queue's retry.
const CUSTOMER_WRITE_ATTEMPTS: usize = 5;

/// The write of a conversation's customer over what was read (`read`: the `META` item, None
/// when there was none): the condition that nobody wrote the customer since, and the count
/// to store with it.
pub(super) fn customer_write_over(read: Option<&Item>) -> (Condition, AttrValue) {
    match read {
        None => (Condition::AttrNotExists("customer".into()), AttrValue::N(1)),
        Some(item) => match item.get_n(CUSTOMER_REV) {
            Some(rev) => (
                Condition::Equals(CUSTOMER_REV.into(), AttrValue::N(rev)),
                AttrValue::N(rev.saturating_add(1)),
            ),
            // Written before the count existed.
            None => (
                Condition::And(vec![
                    Condition::Exists,
                    Condition::AttrNotExists(CUSTOMER_REV.into()),
                ]),
                AttrValue::N(1),
            ),
        },
    }
}

/// Runs `once` (a read of the customer, a merge and a [`customer_write_over`] write) again
/// while its write loses to a concurrent one, up to [`CUSTOMER_WRITE_ATTEMPTS`] times.
pub(super) async fn over_concurrent_writes<T, F, Fut>(mut once: F) -> Result<T, ConversationError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ConversationError>>,
{
    let mut attempt = 1;
    loop {
        match once().await {
            Err(ConversationError::Store(StoreError::ConditionFailed { .. }))
                if attempt < CUSTOMER_WRITE_ATTEMPTS =>
            {
                attempt += 1;
            }
            done => return done,
        }
    }
}

/// Attempts of a write the backend could not apply for a passing reason.
const PASSING_ERROR_ATTEMPTS: u32 = 4;

/// Runs `write` again, briefly (40 to 180 ms, jittered), while the backend answers it
/// unavailable: throttling, or DynamoDB cancelling concurrent transactions on one item (a
/// counter) — a conflict, not a refusal. Up to [`PASSING_ERROR_ATTEMPTS`] attempts.
pub(crate) async fn over_passing_errors<T, F, Fut>(mut write: F) -> Result<T, ConversationError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ConversationError>>,
{
    let mut attempt = 1;
    loop {
        match write().await {
            Err(ConversationError::Store(StoreError::Unavailable(_)))
                if attempt < PASSING_ERROR_ATTEMPTS =>
            {
                let mut jitter = [0u8; 1];
                let _ = crate::crypto::random_bytes(&mut jitter);
                let wait = 20 * (1u64 << attempt) + u64::from(jitter[0] % 20);
                tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
                attempt += 1;
            }
            done => return done,
        }
    }
}

/// The identities `customer` is known by in this delivery: the id, then the phone.
pub fn identities(customer: &CustomerRef) -> Vec<CustomerId> {
    let mut ids = vec![customer.id.clone()];
    if let Some(p) = &customer.phone {
        let phone = CustomerId::WhatsAppPhone(p.clone());
        if phone != customer.id {
            ids.push(phone);
        }
    }
    ids
}

/// Whether a conversation whose customer is `stored` (and was `former`) is the one
/// `identity` leads to, given who wrote (`incoming`, when a message says).
fn answers_to(
    stored: &CustomerRef,
    former: &[CustomerId],
    identity: &CustomerId,
    incoming: Option<&CustomerRef>,
) -> bool {
    let answers = match identity {
        CustomerId::WhatsAppPhone(p) => stored.id == *identity || stored.phone.as_ref() == Some(p),
        // A BSUID is never given to anyone else: one the customer had before still leads to
        // them (a message sent before a change and delivered after it).
        CustomerId::WhatsAppUser(_) => stored.id == *identity || former.contains(identity),
        other => stored.id == *other,
    };
    // One phone, two BSUIDs: Meta gives a new BSUID with a new number, so this is a number
    // that now belongs to someone else (or reached us before its `user_changed_number`).
    let contradicted = match (incoming.map(|c| &c.id), &stored.id) {
        (Some(theirs @ CustomerId::WhatsAppUser(_)), CustomerId::WhatsAppUser(_)) => {
            *theirs != stored.id && !former.contains(theirs)
        }
        _ => false,
    };
    answers && !contradicted
}

/// A stored conversation a customer leads to.
pub(super) struct Found {
    pub id: ConversationId,
    pub item: Item,
    pub customer: CustomerRef,
    pub former: Vec<CustomerId>,
}

/// A customer's change of number or BSUID (WhatsApp `system` messages).
#[derive(Clone, Debug, Default)]
pub struct IdentityChange {
    /// Every identity the customer may have been known by before.
    pub old: Vec<CustomerId>,
    pub new_user_id: Option<WhatsAppUserId>,
    pub new_parent_user_id: Option<WhatsAppUserId>,
    /// Set for `user_changed_number`.
    pub new_phone: Option<WhatsAppPhone>,
}

impl IdentityChange {
    /// The change a WhatsApp `system` message announces about `customer` (who it is from),
    /// if it is one.
    pub fn from_notice(customer: &CustomerRef, content: &Content) -> Option<Self> {
        let Content::System {
            system_type,
            new_phone,
            new_user_id,
            previous_user_id,
            ..
        } = content
        else {
            return None;
        };
        let number = match system_type.as_deref() {
            Some("user_changed_number") => true,
            Some("user_changed_user_id") => false,
            _ => return None,
        };
        let mut old: Vec<CustomerId> = previous_user_id
            .iter()
            .map(|u| CustomerId::WhatsAppUser(u.clone()))
            .collect();
        for identity in identities(customer) {
            // `from` may already name the new identity.
            let new = match &identity {
                CustomerId::WhatsAppUser(u) => new_user_id.as_ref() == Some(u),
                CustomerId::WhatsAppPhone(p) => number && new_phone.as_ref() == Some(p),
                CustomerId::Instagram(_) => true,
            };
            if !new && !old.contains(&identity) {
                old.push(identity);
            }
        }
        Some(IdentityChange {
            old,
            new_user_id: new_user_id.clone(),
            new_parent_user_id: None,
            new_phone: if number { new_phone.clone() } else { None },
        })
    }

    /// Who the customer is after the change, when no stored conversation knew them before.
    pub fn new_customer(&self, notice_from: &CustomerRef) -> CustomerRef {
        let mut customer = notice_from.clone();
        if let Some(phone) = &self.new_phone {
            customer.phone = Some(phone.clone());
            customer.id = CustomerId::WhatsAppPhone(phone.clone());
        }
        if let Some(user) = &self.new_user_id {
            customer.id = CustomerId::WhatsAppUser(user.clone());
        }
        customer
    }
}

impl Conversations {
    fn alias_pk(&self, digest: &str) -> String {
        self.tenant
            .sub_partition(&format!("CUST#{}", &digest[..32]))
    }

    pub(super) async fn alias_key(
        &self,
        account: &AccountRef,
        identity: &CustomerId,
    ) -> Result<Key, ConversationError> {
        let digest = self
            .envelope
            .keyed_id(
                &self.tenant,
                ALIAS_LABEL,
                &[account.channel().code(), account.id(), &identity.key()],
            )
            .await?;
        Ok(Key::new(self.alias_pk(&digest), ALIAS_SK))
    }

    async fn alias(
        &self,
        account: &AccountRef,
        identity: &CustomerId,
    ) -> Result<Option<ConversationId>, ConversationError> {
        let key = self.alias_key(account, identity).await?;
        Ok(self
            .store
            .get(Table::Data, &key)
            .await?
            .and_then(|i| i.get_s(ALIAS_TARGET).map(str::to_owned))
            .and_then(|s| ConversationId::parse(&s).ok()))
    }

    /// The conversation at `id` if it is stored and answers to `identity`.
    async fn load_answering(
        &self,
        id: &ConversationId,
        identity: &CustomerId,
        incoming: Option<&CustomerRef>,
    ) -> Result<Option<Found>, ConversationError> {
        let key = self.meta_key(id);
        let Some(item) = self.store.get(Table::Data, &key).await? else {
            return Ok(None);
        };
        self.stored_answering(id, item, std::slice::from_ref(identity), incoming)
            .await
    }

    /// The conversation `id` stored as `item` if its customer answers to one of `identities`
    /// (the customer decrypted once for all of them).
    async fn stored_answering(
        &self,
        id: &ConversationId,
        item: Item,
        identities: &[CustomerId],
        incoming: Option<&CustomerRef>,
    ) -> Result<Option<Found>, ConversationError> {
        let key = self.meta_key(id);
        let Some(blob) = item.get_b("customer") else {
            return Ok(None);
        };
        let customer: CustomerRef = self.decrypt_json(&key, "customer", blob).await?;
        let former: Vec<CustomerId> = match item.get_b(FORMER_ATTR) {
            Some(blob) => self.decrypt_json(&key, FORMER_ATTR, blob).await?,
            None => Vec::new(),
        };
        if !identities
            .iter()
            .any(|identity| answers_to(&customer, &former, identity, incoming))
        {
            return Ok(None);
        }
        Ok(Some(Found {
            id: id.clone(),
            item,
            customer,
            former,
        }))
    }

    /// The stored conversation `identity` leads to on `account`: the one it derives to, else
    /// its alias; only if that conversation's customer answers to it.
    async fn find_identity(
        &self,
        account: &AccountRef,
        identity: &CustomerId,
        incoming: Option<&CustomerRef>,
    ) -> Result<Option<Found>, ConversationError> {
        let derived =
            ConversationId::derive(&self.envelope, &self.tenant, account, identity).await?;
        if let Some(found) = self.load_answering(&derived, identity, incoming).await? {
            return Ok(Some(found));
        }
        match self.alias(account, identity).await? {
            Some(target) if target != derived => {
                self.load_answering(&target, identity, incoming).await
            }
            _ => Ok(None),
        }
    }

    /// The stored conversation of `customer` on `account`, by any identity of this delivery.
    pub(super) async fn find_customer(
        &self,
        account: &AccountRef,
        customer: &CustomerRef,
    ) -> Result<Option<Found>, ConversationError> {
        for identity in identities(customer) {
            if let Some(found) = self
                .find_identity(account, &identity, Some(customer))
                .await?
            {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// The conversation `identity` leads to now, if one is stored (erasure, exports).
    pub async fn conversation_of(
        &self,
        account: &AccountRef,
        identity: &CustomerId,
    ) -> Result<Option<ConversationId>, ConversationError> {
        Ok(self
            .find_identity(account, identity, None)
            .await?
            .map(|f| f.id))
    }

    /// The id of a new conversation for `customer`: the one its id derives to, unless that
    /// is taken by a conversation that answers to someone else now (its customer changed
    /// number and the number went to a new person), then the next generation.
    ///
    /// One taken by a conversation that answers to `customer` is theirs, created by another
    /// of their deliveries since we looked for them (two inbound FIFO groups, decision 0097):
    /// its id is returned, so the caller's write as a new conversation fails its condition
    /// and the next try finds it, instead of a second conversation and a second Bitrix24
    /// chat for one person.
    pub(super) async fn fresh_id(
        &self,
        account: &AccountRef,
        customer: &CustomerRef,
    ) -> Result<ConversationId, ConversationError> {
        let mut last = None;
        for generation in 0..IDENTITY_GENERATIONS {
            let id = ConversationId::derive_generation(
                &self.envelope,
                &self.tenant,
                account,
                &customer.id,
                generation,
            )
            .await?;
            let Some(item) = self.store.get(Table::Data, &self.meta_key(&id)).await? else {
                return Ok(id);
            };
            if self
                .stored_answering(&id, item, &identities(customer), Some(customer))
                .await?
                .is_some()
            {
                return Ok(id);
            }
            last = Some(id);
        }
        // Every generation taken (a number recycled that often): the last one is shared.
        Ok(last.expect("at least one generation"))
    }

    /// The alias keys `customer` needs for conversation `id`: those of its identities that do
    /// not derive to it.
    pub(super) async fn alias_keys(
        &self,
        account: &AccountRef,
        customer: &CustomerRef,
        id: &ConversationId,
    ) -> Result<Vec<Key>, ConversationError> {
        let mut keys = Vec::new();
        for identity in identities(customer) {
            let derived =
                ConversationId::derive(&self.envelope, &self.tenant, account, &identity).await?;
            if derived != *id {
                keys.push(self.alias_key(account, &identity).await?);
            }
        }
        Ok(keys)
    }

    /// Points each of `keys` at conversation `id`, with its expiry.
    pub(super) async fn put_aliases(
        &self,
        keys: &[Key],
        id: &ConversationId,
        expires: i64,
    ) -> Result<(), ConversationError> {
        for key in keys {
            let item = Item::new(key)
                .with(ALIAS_TARGET, id.as_str())
                .with(TTL_ATTR, expires);
            self.store.put(Table::Data, item, None).await?;
        }
        Ok(())
    }

    /// Deletes the aliases of `identities` (absent ones included).
    pub async fn delete_aliases(
        &self,
        account: &AccountRef,
        identities: &[CustomerId],
    ) -> Result<(), ConversationError> {
        for identity in identities {
            let key = self.alias_key(account, identity).await?;
            self.store.delete(Table::Data, &key, None).await?;
        }
        Ok(())
    }

    /// Moves the customer of `change.old` to their new identities, keeping the conversation
    /// (and so the Bitrix24 chat) and its history. Returns the conversation and its customer
    /// as now stored, or None when no conversation answers to the old identities (never
    /// seen, or already moved by an earlier delivery of the same notice).
    pub async fn rekey(
        &self,
        account: &AccountRef,
        change: &IdentityChange,
    ) -> Result<Option<(ConversationId, CustomerRef)>, ConversationError> {
        over_concurrent_writes(|| self.rekey_once(account, change)).await
    }

    /// One try of [`Self::rekey`]: fails with a failed condition when the customer was
    /// written since it was read.
    async fn rekey_once(
        &self,
        account: &AccountRef,
        change: &IdentityChange,
    ) -> Result<Option<(ConversationId, CustomerRef)>, ConversationError> {
        let mut found = None;
        for identity in &change.old {
            found = self.find_identity(account, identity, None).await?;
            if found.is_some() {
                break;
            }
        }
        let Some(found) = found else {
            return Ok(None);
        };
        let before = identities(&found.customer);
        let mut customer = found.customer.clone();
        if let Some(phone) = &change.new_phone {
            customer.phone = Some(phone.clone());
            // A new number regenerates the BSUID; when the notice does not carry the new one,
            // the next message does (and is matched by the new phone meanwhile).
            customer.id = CustomerId::WhatsAppPhone(phone.clone());
            customer.parent_user_id = None;
        }
        if let Some(user) = &change.new_user_id {
            customer.id = CustomerId::WhatsAppUser(user.clone());
        }
        if change.new_parent_user_id.is_some() {
            customer.parent_user_id = change.new_parent_user_id.clone();
        }
        let after = identities(&customer);
        let dropped: Vec<CustomerId> = before.into_iter().filter(|i| !after.contains(i)).collect();
        let mut former = found.former.clone();
        for identity in &dropped {
            if !former.contains(identity) {
                former.push(identity.clone());
            }
        }
        former.retain(|i| !after.contains(i));
        let key = self.meta_key(&found.id);
        let expires = found.item.get_n(TTL_ATTR).unwrap_or(i64::MAX);
        let keys = self.alias_keys(account, &customer, &found.id).await?;
        // A former phone stops leading here (numbers are given to new people); a former
        // BSUID keeps leading here, for messages delivered after the change.
        let phones: Vec<CustomerId> = dropped
            .iter()
            .filter(|i| matches!(i, CustomerId::WhatsAppPhone(_)))
            .cloned()
            .collect();
        let mut gone = Vec::new();
        for identity in &phones {
            gone.push(self.alias_key(account, identity).await?.pk);
        }
        let listed = merge_alias_pks(found.item.get_s(ALIASES_ATTR), &keys, &gone);
        let (unchanged, rev) = customer_write_over(Some(&found.item));
        let update = crate::store::Update::new()
            .set(
                "customer",
                self.encrypt_json(&key, "customer", &customer).await?,
            )
            .set(
                FORMER_ATTR,
                self.encrypt_json(&key, FORMER_ATTR, &former).await?,
            )
            .set(ALIASES_ATTR, listed)
            .set(CUSTOMER_REV, rev)
            .set("updated_at", crate::clock::now_secs());
        self.store
            .update(Table::Data, &key, update, Some(unchanged))
            .await?;
        self.delete_aliases(account, &phones).await?;
        self.put_aliases(&keys, &found.id, expires).await?;
        Ok(Some((found.id, customer)))
    }
}

/// `META`'s alias list with `added` and without `removed`: comma-separated partition keys.
pub(super) fn merge_alias_pks(existing: Option<&str>, added: &[Key], removed: &[String]) -> String {
    let mut pks: Vec<String> = existing
        .unwrap_or_default()
        .split(',')
        .filter(|p| !p.is_empty() && !removed.iter().any(|r| r == p))
        .map(str::to_owned)
        .collect();
    for key in added {
        if !pks.contains(&key.pk) {
            pks.push(key.pk.clone());
        }
    }
    pks.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phone(s: &str) -> WhatsAppPhone {
        WhatsAppPhone::parse(s).unwrap()
    }
    fn user(s: &str) -> WhatsAppUserId {
        WhatsAppUserId::parse(s).unwrap()
    }

    #[test]
    fn a_conversation_answers_to_its_current_identities_only() {
        let mut stored = CustomerRef::new(CustomerId::WhatsAppUser(user("US.1")));
        stored.phone = Some(phone("15550001"));
        let none: &[CustomerId] = &[];
        let bsuid = |s: &str| CustomerId::WhatsAppUser(user(s));
        let number = |s: &str| CustomerId::WhatsAppPhone(phone(s));
        assert!(answers_to(&stored, none, &bsuid("US.1"), None));
        assert!(answers_to(&stored, none, &number("15550001"), None));
        assert!(!answers_to(&stored, none, &number("15550002"), None));
        assert!(!answers_to(&stored, none, &bsuid("US.2"), None));
        // A BSUID it had before still leads to it; a phone it had before does not.
        let former = [bsuid("US.2"), number("15550002")];
        assert!(answers_to(&stored, &former, &bsuid("US.2"), None));
        assert!(!answers_to(&stored, &former, &number("15550002"), None));
        // The same phone with another BSUID: the number went to someone else.
        let mut other = CustomerRef::new(bsuid("US.3"));
        other.phone = Some(phone("15550001"));
        assert!(!answers_to(
            &stored,
            none,
            &number("15550001"),
            Some(&other)
        ));
        // A phone-first customer now writing with their BSUID is the same person.
        let first = CustomerRef::new(number("15550001"));
        assert!(answers_to(&first, none, &number("15550001"), Some(&other)));
    }

    #[test]
    fn identities_are_the_id_then_the_phone() {
        let mut c = CustomerRef::new(CustomerId::WhatsAppUser(user("US.1")));
        assert_eq!(identities(&c).len(), 1);
        c.phone = Some(phone("15550001"));
        assert_eq!(
            identities(&c),
            vec![
                CustomerId::WhatsAppUser(user("US.1")),
                CustomerId::WhatsAppPhone(phone("15550001"))
            ]
        );
        let p = CustomerRef {
            phone: Some(phone("15550001")),
            ..CustomerRef::new(CustomerId::WhatsAppPhone(phone("15550001")))
        };
        assert_eq!(identities(&p).len(), 1);
    }
}
