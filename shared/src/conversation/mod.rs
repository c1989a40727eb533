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
//! | `T#<t>#CONV#<id>` | `MSG#<ms, 13 digits>#<hash>` | one message, content encrypted (an Instagram comment's names the message that took its private reply, [`comments`]) |
//! | `T#<t>#MID#<hash of account + provider id>` | `MID` | provider message id → message |
//! | `T#<t>#CONVS` | `<id>` | the tenant's conversations (export, erasure) |
//! | `T#<t>#CUST#<keyed hash of an identity>` | `CUST` | another identity of a conversation's customer → its id ([`identity`]) |
//!
//! Every item carries `expires_at` from the tenant's retention. Content and customer details
//! are encrypted with the tenant's data key, bound to their item and attribute.
//!
//! Layout: [`model`] holds the types (ids, directions, statuses, messages as stored);
//! [`customers`] records a conversation's customer and reads its details; [`messages`]
//! stores messages exactly once and reads them back; [`updates`] changes stored messages
//! (status, reaction, edit, deletion, CRM ids). What every part needs (the repository, its
//! keys and the field encryption) is here, and every public type is re-exported here.

mod comments;
mod customers;
pub mod erased;
pub mod handover;
mod identity;
mod job_target;
mod mentions_chat;
mod messages;
mod model;
mod profile;
mod sync_hold;
mod thread_reads;
mod updates;

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::clock::now_secs;
use crate::crypto::{CryptoError, Envelope, FieldRef};
use crate::ids::TenantId;
use crate::meta::AccountRef;
use crate::store::{Condition, Key, StoreError, Table, TableStore, Update};

pub use comments::{StoredComment, PRIVATE_REPLY_SECS};
pub use customers::Opened;
pub(crate) use identity::over_passing_errors;
pub use identity::{identities, IdentityChange, ALIASES_ATTR, ALIAS_SK, ALIAS_TARGET};
pub use job_target::JobTarget;
pub use mentions_chat::{is_mentions_chat, mentions_customer, MENTIONS_CHAT_NAME};
pub use model::{
    ConversationId, ConversationMeta, Direction, IndexLookup, MessageRef, MessageStatus,
    NewMessage, Origin, StoreOutcome, StoredMessage, TemplateMessage, WrittenWith,
};
pub use profile::CustomerProfile;
pub use sync_hold::{PushHold, HOLD_ON_MESSAGE_MAX_BYTES};
pub use thread_reads::read_bound_at;

const META_SK: &str = "META";
pub const MID_SK: &str = "MID";
/// The sort key of a held early read, beside a provider-id index item (decision 0114).
const EARLY_READ_SK: &str = "READ";
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

/// The tenant-scoped conversation repository.
#[derive(Clone)]
pub struct Conversations {
    tenant: TenantId,
    store: Arc<dyn TableStore>,
    envelope: Arc<Envelope>,
}

/// A message item's pointer to its provider-id index item (a hash: no personal data), so
/// retention and erasure find the index without the encrypted id.
pub const INDEX_PK: &str = "index_pk";
/// The same for the id the provider gave a message we sent.
pub const SENT_INDEX_PK: &str = "sent_index_pk";

/// The message's sort key, our message id: its time and the provider id's digest, which is
/// also what the logs correlate it by (`crate::logging::provider_ref`, decision 0038).
fn message_sk(at_ms: i64, provider_message_id: &str) -> String {
    format!(
        "{MSG_PREFIX}{:013}#{}",
        at_ms.max(0),
        crate::logging::provider_ref(provider_message_id)
    )
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

    /// The key of a read held for the send of `provider_message_id` before it was recorded
    /// (decision 0114): beside the send's provider-id index item, in its partition.
    fn early_read_key(&self, account: &AccountRef, provider_message_id: &str) -> Key {
        Key::new(
            self.index_key(account, provider_message_id).pk,
            EARLY_READ_SK,
        )
    }

    /// The key of a held early read of a message's send (for erasure).
    pub fn early_read_key_of(
        &self,
        account: &AccountRef,
        provider_message_id: &str,
    ) -> Option<Key> {
        (!provider_message_id.is_empty()).then(|| self.early_read_key(account, provider_message_id))
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
        // Every item of a conversation carries the tenant's retention (`expires_at`), so the
        // data key version may expire after it (decision 0071).
        Ok(self.envelope.encrypt_expiring(field, &json).await?)
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
