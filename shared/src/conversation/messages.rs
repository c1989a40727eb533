//! Messages: storing one exactly once (the message item and its provider-id index in one
//! transaction, with any extra writes such as a usage counter), finding one by the
//! provider's id, and reading one or a page of a conversation back, decrypted.

use super::customers::Opened;
use super::model::{
    ConversationId, Direction, IndexLookup, MessageRef, MessageStatus, NewMessage, Origin,
    StoreOutcome, StoredMessage, WrittenWith,
};
use super::{
    message_sk, retention_expiry, ConversationError, Conversations, INDEX_PK, MSG_PREFIX,
    SENT_INDEX_PK,
};
use crate::clock::now_secs;
use crate::crypto::CryptoError;
use crate::meta::AccountRef;
use crate::store::{
    AttrValue, Condition, Item, Key, Query, StoreError, Table, Update, WriteOp, TTL_ATTR,
};

/// The message's attribute holding the usage count its store added (decision 0133).
const COUNTED_ATTR: &str = "counted";
/// The message's attribute holding when the conversation its delivery opened was created.
const OPENED_ATTR: &str = "opened_conversation_ms";

/// How long a held early read is kept: the send it waits for is recorded within its
/// queue's retries, long before.
const EARLY_READ_DAYS: u32 = 2;

impl Conversations {
    /// Stores a message once: the message item and its provider-id index are written together
    /// only if neither exists. Returns the message's place and whether it was new.
    pub async fn store_message(
        &self,
        account: &AccountRef,
        conversation: &ConversationId,
        message: NewMessage,
        retention_days: u32,
    ) -> Result<(MessageRef, bool), ConversationError> {
        self.store_message_after(
            account,
            conversation,
            message,
            retention_days,
            IndexLookup::First,
        )
        .await
    }

    /// As [`Conversations::store_message`]; `lookup` says whether the caller has just looked
    /// the message up by its provider id ([`Conversations::find_message`]).
    pub async fn store_message_after(
        &self,
        account: &AccountRef,
        conversation: &ConversationId,
        message: NewMessage,
        retention_days: u32,
        lookup: IndexLookup,
    ) -> Result<(MessageRef, bool), ConversationError> {
        match self
            .store_message_with(
                account,
                conversation,
                message,
                retention_days,
                Vec::new(),
                lookup,
            )
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
    /// stored either ([`StoreOutcome::Refused`]). `lookup` says whether the caller has just
    /// looked the message up by its provider id ([`Conversations::find_message`]).
    pub async fn store_message_with(
        &self,
        account: &AccountRef,
        conversation: &ConversationId,
        message: NewMessage,
        retention_days: u32,
        extra: Vec<WriteOp>,
        lookup: IndexLookup,
    ) -> Result<StoreOutcome, ConversationError> {
        let index_key = self.index_key(account, &message.provider_message_id);
        if lookup == IndexLookup::First {
            if let Some(existing) = self.store.get(Table::Data, &index_key).await? {
                return Ok(StoreOutcome::Existing(index_target(&existing)?));
            }
        }
        let at = MessageRef {
            conversation: conversation.clone(),
            sk: message_sk(message.at_ms, &message.provider_message_id),
        };
        let key = self.message_key(&at);
        let expires = retention_expiry(retention_days);
        // Provider ids are personal data (a wamid holds the sender's number in base64):
        // encrypted, with the index item's key alongside for retention (issue 13).
        let mut item = Item::new(&key)
            .with(
                "provider_message_id",
                self.encrypt_json(&key, "provider_message_id", &message.provider_message_id)
                    .await?,
            )
            .with(INDEX_PK, index_key.pk.as_str())
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
            item.set("reply_to", self.encrypt_json(&key, "reply_to", r).await?);
        }
        if let Some(template) = &message.template {
            item.set(
                "template",
                self.encrypt_json(&key, "template", template).await?,
            );
        }
        // What this delivery wrote besides, for a later one that removes the message again.
        if let Some(count) = &message.written_with.count {
            item.set(COUNTED_ATTR, count.as_str());
        }
        if let Some(opened) = &message.written_with.opened {
            item.set(OPENED_ATTR, opened.created_at_ms());
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

    /// Removes a message this process has just stored, and its provider-id index item: a
    /// write that must not stay because the person's erasure began meanwhile (decision
    /// 0124). Deleting what is already gone is no error.
    pub async fn unstore_message(
        &self,
        account: &AccountRef,
        at: &MessageRef,
        provider_message_id: &str,
    ) -> Result<(), ConversationError> {
        self.store
            .delete(Table::Data, &self.message_key(at), None)
            .await?;
        self.store
            .delete(
                Table::Data,
                &self.index_key(account, provider_message_id),
                None,
            )
            .await?;
        Ok(())
    }

    /// As [`Self::unstore_message`], in one transaction with `extra` (the counter write that
    /// takes back what storing the message counted, decision 0130), on condition the
    /// message is still there: a second removal, or one after the erasure deleted the
    /// message, takes nothing back twice. Returns whether this call removed it.
    pub async fn unstore_message_with(
        &self,
        account: &AccountRef,
        at: &MessageRef,
        provider_message_id: &str,
        extra: Vec<WriteOp>,
    ) -> Result<bool, ConversationError> {
        let ops = self.unstore_ops(account, at, provider_message_id, extra);
        match self.store.transact_write(ops).await {
            Ok(()) => Ok(true),
            // The only condition is the message's: it is gone already (the index item may
            // not be, after a crash between two plain deletes).
            Err(StoreError::ConditionFailed { .. }) => {
                self.unstore_message(account, at, provider_message_id)
                    .await?;
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The writes of [`Self::unstore_message_with`]: the message, on condition it is there,
    /// its provider-id index item, and `extra`.
    pub(super) fn unstore_ops(
        &self,
        account: &AccountRef,
        at: &MessageRef,
        provider_message_id: &str,
        extra: Vec<WriteOp>,
    ) -> Vec<WriteOp> {
        let mut ops = vec![
            WriteOp::Delete {
                table: Table::Data,
                key: self.message_key(at),
                condition: Some(Condition::Exists),
            },
            WriteOp::Delete {
                table: Table::Data,
                key: self.index_key(account, provider_message_id),
                condition: None,
            },
        ];
        ops.extend(extra);
        ops
    }

    /// What the delivery that stored the message at `at` wrote besides it (decision 0133),
    /// and whether the message went out (the provider's id of our send recorded); None when
    /// the message is gone. A message stored before the decision says nothing it wrote.
    pub async fn written_with(
        &self,
        at: &MessageRef,
    ) -> Result<Option<(WrittenWith, bool)>, ConversationError> {
        let Some(item) = self.store.get(Table::Data, &self.message_key(at)).await? else {
            return Ok(None);
        };
        let with = WrittenWith {
            count: item.get_s(COUNTED_ATTR).map(str::to_owned),
            opened: item.get_n(OPENED_ATTR).map(Opened::from_created_at_ms),
        };
        Ok(Some((with, item.get(SENT_INDEX_PK).is_some())))
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
        let index_key = self.index_key(account, provider_message_id);
        let index = Item::new(&index_key)
            .with("conversation", at.conversation.as_str())
            .with("message_sk", at.sk.as_str())
            .with(TTL_ATTR, retention_expiry(retention_days));
        self.store.put(Table::Data, index, None).await?;
        let key = self.message_key(at);
        let sealed = self
            .encrypt_json(&key, "sent_provider_id", &provider_message_id)
            .await?;
        self.update_existing(
            &key,
            Update::new()
                .set("sent_provider_id", sealed)
                .set(SENT_INDEX_PK, index_key.pk.as_str()),
        )
        .await?;
        Ok(())
    }

    /// Keeps a read of `provider_message_id` that came before the send was recorded, for
    /// the send worker to apply once it records that id (decision 0114: Instagram's sends
    /// carry no tag of ours, so the read cannot wait on the send's progress as a WhatsApp
    /// status does, decision 0074). Beside the send's provider-id index item, in its
    /// partition: a hash, no personal data; gone after [`EARLY_READ_DAYS`]. Idempotent.
    pub async fn hold_early_read(
        &self,
        account: &AccountRef,
        provider_message_id: &str,
    ) -> Result<(), ConversationError> {
        let hold = Item::new(&self.early_read_key(account, provider_message_id))
            .with(TTL_ATTR, retention_expiry(EARLY_READ_DAYS));
        self.store.put(Table::Data, hold, None).await?;
        Ok(())
    }

    /// True when a read of `provider_message_id` was held before its send was recorded
    /// ([`Self::hold_early_read`]). Its provider id names one message only, so a hold found
    /// is always that message's, however late.
    pub async fn early_read(
        &self,
        account: &AccountRef,
        provider_message_id: &str,
    ) -> Result<bool, ConversationError> {
        let key = self.early_read_key(account, provider_message_id);
        Ok(self.store.get(Table::Data, &key).await?.is_some())
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
            Some(item) => readable(self.decode_message(at.clone(), &key, &item).await),
            None => Ok(None),
        }
    }

    /// An id stored encrypted (or, written before issue 13, in clear).
    async fn read_id(
        &self,
        key: &Key,
        item: &Item,
        attr: &str,
    ) -> Result<Option<String>, ConversationError> {
        match item.get(attr) {
            Some(AttrValue::B(blob)) => Ok(Some(self.decrypt_json(key, attr, blob).await?)),
            Some(AttrValue::S(s)) => Ok(Some(s.clone())),
            _ => Ok(None),
        }
    }

    pub(super) async fn decode_message(
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
        let provider_message_id = self
            .read_id(key, item, "provider_message_id")
            .await?
            .unwrap_or_default();
        let reply_to = self.read_id(key, item, "reply_to").await?;
        let sent_provider_id = self.read_id(key, item, "sent_provider_id").await?;
        let crm_message_ids = match item.get_b("crm_message_ids") {
            Some(blob) => self.decrypt_json(key, "crm_message_ids", blob).await?,
            None => crm_message_ids,
        };
        Ok(StoredMessage {
            at,
            provider_message_id,
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
            reply_to,
            status: item.get_s("status").and_then(MessageStatus::from_code),
            edited: item.get_bool("edited").unwrap_or(false),
            deleted: item.get_bool("deleted").unwrap_or(false),
            reaction,
            crm_message_ids,
            sent_provider_id,
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
            out.extend(readable(self.decode_message(at, &key, item).await)?);
        }
        Ok((out, page.next.map(|k| k.sk)))
    }

    /// The newest `within` messages of a conversation, newest first.
    pub async fn recent(
        &self,
        id: &ConversationId,
        within: usize,
    ) -> Result<Vec<StoredMessage>, ConversationError> {
        let query = Query::partition(self.partition(id))
            .begins_with(MSG_PREFIX)
            .limit(within.clamp(1, crate::store::MAX_PAGE_SIZE))
            .descending();
        let page = self.store.query(Table::Data, &query).await?;
        let mut out = Vec::with_capacity(page.items.len());
        for item in &page.items {
            let key = item
                .key()
                .ok_or_else(|| ConversationError::Corrupt("message without key".into()))?;
            let at = MessageRef {
                conversation: id.clone(),
                sk: key.sk.clone(),
            };
            out.extend(readable(self.decode_message(at, &key, item).await)?);
        }
        Ok(out)
    }

    /// The customer's newest message still stored (not deleted), looking back at most
    /// `within` messages: what a read receipt points at.
    pub async fn latest_from_customer(
        &self,
        id: &ConversationId,
        within: usize,
    ) -> Result<Option<StoredMessage>, ConversationError> {
        let pk = self.partition(id);
        let query = Query::partition(pk)
            .begins_with(MSG_PREFIX)
            .limit(within.clamp(1, crate::store::MAX_PAGE_SIZE))
            .descending();
        let page = self.store.query(Table::Data, &query).await?;
        for item in &page.items {
            let key = item
                .key()
                .ok_or_else(|| ConversationError::Corrupt("message without key".into()))?;
            let at = MessageRef {
                conversation: id.clone(),
                sk: key.sk.clone(),
            };
            let message = self.decode_message(at, &key, item).await?;
            if message.origin == Origin::Customer && !message.deleted {
                return Ok(Some(message));
            }
        }
        Ok(None)
    }
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

/// A message whose data key version has expired (decision 0071) is expired data: read as
/// absent, like an item past its own `expires_at` (decision 0004). The version outlives every
/// message it sealed unless a clock or a retention went wrong; then the message is gone, not
/// an error that would stop the conversation's reads.
pub(super) fn readable(
    decoded: Result<StoredMessage, ConversationError>,
) -> Result<Option<StoredMessage>, ConversationError> {
    match decoded {
        Ok(message) => Ok(Some(message)),
        Err(ConversationError::Crypto(CryptoError::KeyGone(version))) => {
            tracing::warn!(
                version,
                "message sealed by an expired data key read as expired"
            );
            Ok(None)
        }
        Err(e) => Err(e),
    }
}
