//! Deleting one erased conversation in batches (decision 0057): each page of messages
//! becomes the keys of everything that points at them, deleted 25 at a time
//! ([`TableStore::delete_batch`]: one `BatchWriteItem` on DynamoDB, one transaction
//! embedded), then the messages themselves. A batch that meets a transient store error is
//! sent again after a pause, so a long conversation does not spend the job's receives on
//! the store's occasional throttling; the work is resumable anyway, since what is deleted
//! is gone and the next page is read from the start.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::ErasureError;
use crate::conversation::{
    identities, ConversationError, ConversationId, ConversationMeta, Conversations,
};
use crate::crm_sync::outbox::Outbox;
use crate::idempotency::Idempotency;
use crate::meta::AccountRef;
use crate::outbound::OutboundJob;
use crate::queue::platform;
use crate::store::{Key, Query, StoreError, Table, TableStore, MAX_BATCH_WRITE_ITEMS};

/// Messages read per page.
const PAGE: usize = 100;
/// Attempts of one step against transient store errors, and the first pause (quadrupled).
const ATTEMPTS: u32 = 4;
const FIRST_PAUSE: Duration = Duration::from_millis(100);

/// Throttling and brief unavailability, which the next attempt usually gets past.
fn transient(e: &ErasureError) -> bool {
    matches!(
        e,
        ErasureError::Store(StoreError::Unavailable(_))
            | ErasureError::Conversation(ConversationError::Store(StoreError::Unavailable(_)))
    )
}

/// Runs an idempotent step, again after a pause when it meets a transient error.
pub(super) async fn retrying<T, F, Fut>(mut step: F) -> Result<T, ErasureError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ErasureError>>,
{
    let mut pause = FIRST_PAUSE;
    let mut attempt = 1;
    loop {
        match step().await {
            Err(e) if attempt < ATTEMPTS && transient(&e) => {
                tokio::time::sleep(pause).await;
                pause *= 4;
                attempt += 1;
            }
            result => return result,
        }
    }
}

/// Deletes `keys` in batches of [`MAX_BATCH_WRITE_ITEMS`] (each key once); returns how many
/// keys were named.
pub(super) async fn delete_all(
    store: &Arc<dyn TableStore>,
    keys: Vec<(Table, Key)>,
) -> Result<usize, ErasureError> {
    let mut seen = HashSet::new();
    let keys: Vec<(Table, Key)> = keys
        .into_iter()
        .filter(|k| seen.insert(k.clone()))
        .collect();
    for batch in keys.chunks(MAX_BATCH_WRITE_ITEMS) {
        retrying(|| async { Ok(store.delete_batch(batch.to_vec()).await?) }).await?;
    }
    Ok(keys.len())
}

/// Deletes one conversation of `conversations`' tenant: its messages with what points at
/// them (provider-id index items, the inbound and send idempotency records and send progress
/// derived from each message, the CRM operations staged for it), anything else left in its
/// partition, then its list entry. `account` is the conversation's business account, which
/// the derived keys need; without it (a conversation whose `META` is gone) only the
/// partition and list entry go. Returns the number of items deleted (absent ones included).
///
/// `through`: a contact erasure's cut. A customer's conversation id does not change, so the
/// conversation they begin after the cut (decision 0057: the person writing again, relayed)
/// lives under the id being erased. It is kept: a run of the erasure that goes on after
/// another run completed the request (a redelivery while the first ran on, a slow run) stops
/// at it instead of deleting it. Each page of messages is read before the conversation's
/// `META` is checked, and a new conversation's `META` is written before its first message,
/// so a page holding a new message is never deleted. `None` (an account erasure): all goes.
pub(crate) async fn erase_conversation(
    store: &Arc<dyn TableStore>,
    conversations: &Conversations,
    account: Option<&AccountRef>,
    id: &ConversationId,
    through: Option<i64>,
) -> Result<usize, ErasureError> {
    let tenant = conversations.tenant();
    let inbound = Idempotency::new(store.clone(), "IN", platform::VISIBILITY);
    let outbound = Idempotency::new(store.clone(), "OUT", platform::VISIBILITY);
    let pk = conversations.partition(id);
    let mut deleted = 0;
    // One read of the conversation for both uses below (none when neither needs it).
    let meta = match (account, through) {
        (None, None) => None,
        _ => retrying(|| async { Ok(conversations.meta(id).await?) }).await?,
    };
    if kept(meta.as_ref(), id, through) {
        return Ok(deleted);
    }
    // The customer's aliases (decision 0049), while the conversation still says who it is.
    if let (Some(account), Some(meta)) = (account, meta) {
        let all: Vec<_> = identities(&meta.customer)
            .into_iter()
            .chain(meta.former_ids)
            .collect();
        retrying(|| async { Ok(conversations.delete_aliases(account, &all).await?) }).await?;
        deleted += all.len();
    }
    // Messages first (with what points at them, before the message), the conversation item
    // last, so a crash leaves the conversation findable for the retry.
    loop {
        let (messages, _) =
            retrying(|| async { Ok(conversations.messages(id, None, PAGE).await?) }).await?;
        if messages.is_empty() {
            break;
        }
        if begun_after(conversations, id, through).await? {
            return Ok(deleted);
        }
        let mut pointers = Vec::new();
        let mut own = Vec::with_capacity(messages.len());
        for m in &messages {
            if let Some(account) = account {
                let ch = account.channel().code();
                for provider_id in [Some(&m.provider_message_id), m.sent_provider_id.as_ref()]
                    .into_iter()
                    .flatten()
                {
                    if let Some(index) = conversations.index_key_of(account, provider_id) {
                        pointers.push((Table::Data, index));
                    }
                    // A read held for the send (decision 0114; no personal data, gone in
                    // two days anyway): nothing of the person's messages stays behind.
                    if m.sent_provider_id.as_ref() == Some(provider_id) {
                        if let Some(hold) = conversations.early_read_key_of(account, provider_id) {
                            pointers.push((Table::Data, hold));
                        }
                    }
                    let events = [
                        format!("{ch}:msg:{provider_id}"),
                        format!("{ch}:echo:{provider_id}"),
                        format!("{ch}:deleted:{provider_id}"),
                        format!("{ch}:status:{provider_id}:sent"),
                        format!("{ch}:status:{provider_id}:delivered"),
                        format!("{ch}:status:{provider_id}:read"),
                        format!("{ch}:status:{provider_id}:failed"),
                        format!("{ch}:status:{provider_id}:played"),
                        // An Instagram comment (decision 0062).
                        format!("{ch}:comment:{provider_id}"),
                    ];
                    for event in events {
                        let key =
                            inbound.key_for(tenant, &format!("{ch}:{}:{event}", account.id()));
                        pointers.push((Table::Dedupe, key));
                    }
                }
            }
            let job = OutboundJob::new(tenant.clone(), &m.at);
            pointers.push((Table::Dedupe, outbound.key_for(tenant, &job.effect)));
            // The send progress holds the provider ids of the parts sent.
            pointers.push((
                Table::Dedupe,
                crate::outbound::progress_key(tenant, &job.effect),
            ));
            own.push((Table::Data, Key::new(pk.clone(), m.at.sk.clone())));
        }
        deleted += delete_all(store, pointers).await?;
        deleted += delete_all(store, own).await?;
    }
    if begun_after(conversations, id, through).await? {
        return Ok(deleted);
    }
    // Operations staged for the CRM (decision 0023): a post not yet made is never made.
    let staged = Query::partition(Outbox::partition(tenant))
        .begins_with(Outbox::conversation_prefix(id.as_str()))
        .limit(PAGE);
    deleted += drain(store, Table::Data, &staged).await?;
    // Who holds the Instagram conversation (decision 0051; app ids only, but it names the
    // conversation).
    crate::conversation::handover::Handovers::new(tenant.clone(), store.clone())
        .forget(id)
        .await?;
    deleted += 1;
    // Anything else left in the partition (future item kinds, the `META` last of all), then
    // the list entry; read before checked, as the messages are.
    let rest = Query::partition(pk.clone()).limit(PAGE);
    loop {
        let page = retrying(|| async { Ok(store.query(Table::Data, &rest).await?) }).await?;
        if page.items.is_empty() {
            break;
        }
        if begun_after(conversations, id, through).await? {
            return Ok(deleted);
        }
        let keys = page
            .items
            .iter()
            .filter_map(|i| i.key())
            .map(|k| (Table::Data, k))
            .collect();
        deleted += delete_all(store, keys).await?;
    }
    if begun_after(conversations, id, through).await? {
        return Ok(deleted);
    }
    let list_entry = Key::new(tenant.sub_partition("CONVS"), id.as_str());
    deleted += delete_all(store, vec![(Table::Data, list_entry)]).await?;
    Ok(deleted)
}

/// Deletes every item `query` finds, querying again from the start until it finds none (so
/// the query must not match what deleting leaves). Returns the number deleted.
async fn drain(
    store: &Arc<dyn TableStore>,
    table: Table,
    query: &Query,
) -> Result<usize, ErasureError> {
    let mut deleted = 0;
    loop {
        let page = retrying(|| async { Ok(store.query(table, query).await?) }).await?;
        if page.items.is_empty() {
            return Ok(deleted);
        }
        let keys = page
            .items
            .iter()
            .filter_map(|i| i.key())
            .map(|k| (table, k))
            .collect();
        deleted += delete_all(store, keys).await?;
    }
}

/// Whether the conversation now under `id` began after `through` (a contact erasure's cut):
/// the person writing again, which the erasure keeps. Reads its `META` afresh.
async fn begun_after(
    conversations: &Conversations,
    id: &ConversationId,
    through: Option<i64>,
) -> Result<bool, ErasureError> {
    if through.is_none() {
        return Ok(false);
    }
    let meta = retrying(|| async { Ok(conversations.meta(id).await?) }).await?;
    Ok(kept(meta.as_ref(), id, through))
}

/// Whether `meta` (the conversation under `id`) began after `through`, so is kept.
fn kept(meta: Option<&ConversationMeta>, id: &ConversationId, through: Option<i64>) -> bool {
    let after = matches!((meta, through), (Some(m), Some(t)) if m.created_at_ms > t);
    if after {
        tracing::info!(conversation = %id, "conversation begun after the erasure's cut; kept");
    }
    after
}
