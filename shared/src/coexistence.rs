//! WhatsApp Coexistence per channel (decision 0052): the tenant's choices for a number that
//! is also used in the WhatsApp Business app, where Meta's history sync stands, and the
//! backlog of past messages waiting to be imported into Bitrix24.
//!
//! Store layout:
//!
//! - `data` `T#<tenant>#COEX` / `<phone number id>`: the settings (`history_import`,
//!   `echo_author`) and the history's progress (`meta_progress`, `meta_phase`, `declined`,
//!   `last_chunk_at`, `imported`);
//! - `data` `T#<tenant>#HISTQ#<phone number id>` / `<at, 12 digits>#<conversation>#<message>`:
//!   one past message waiting to be imported (keyed ids only; the message itself is stored
//!   encrypted with its conversation), oldest first;
//! - `routes` `HISTORY` / `<tenant>#<phone number id>`: the index of numbers whose history
//!   is imported (written by the admin when turning the import on, removed when turning it
//!   off), for the scheduled import ([`crate::crm_sync::history`]).

use std::sync::Arc;

use serde::Serialize;

use crate::audit::{AuditAction, AuditLog};
use crate::clock::now_secs;
use crate::conversation::ConversationId;
use crate::ids::{PhoneNumberId, TenantId};
use crate::store::{
    AttrValue, Condition, Item, Key, Query, StoreError, Table, TableStore, Update, WriteOp,
    MAX_PAGE_SIZE,
};

/// The routes table's partition of channels with history waiting.
pub const HISTORY_INDEX_PK: &str = "HISTORY";
/// The tenant's sub-partition of per-number settings and progress.
pub const SETTINGS_SUFFIX: &str = "COEX";
const BACKLOG_SUFFIX: &str = "HISTQ";

/// What the tenant chose for one WhatsApp number.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CoexistenceSettings {
    /// Import the WhatsApp Business app's chat history into Bitrix24. Off by default: while
    /// off, `history` webhooks are dropped unread (decision 0052).
    pub history_import: bool,
    /// The Bitrix24 user (manager) messages sent from the WhatsApp Business app are posted
    /// as (`imconnector.send.messages` `message.user_id`). None: posted on the customer's
    /// side with a label, as before.
    pub echo_author_id: Option<u64>,
}

/// Where the history import of one number stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct HistoryState {
    /// Meta's overall progress of the history sync, in percent (100: complete).
    pub meta_progress: Option<i64>,
    pub meta_phase: Option<i64>,
    /// The business did not share its history.
    pub declined: bool,
    /// When the last history chunk arrived (Unix seconds).
    pub last_chunk_at: Option<i64>,
    /// Past messages handed to the CRM sync so far (posted within moments, in order).
    pub imported: i64,
}

/// The settings and the history's state, as the admin API and the console show them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CoexistenceView {
    pub phone_number_id: String,
    #[serde(flatten)]
    pub settings: CoexistenceSettings,
    pub history: HistoryState,
    /// Past messages stored and waiting for the import.
    pub history_waiting: usize,
}

/// One past message waiting for the import.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backlogged {
    key: Key,
    pub conversation: ConversationId,
    pub message_sk: String,
}

#[derive(Clone)]
pub struct Coexistence {
    store: Arc<dyn TableStore>,
}

fn settings_key(tenant: &TenantId, number: &PhoneNumberId) -> Key {
    Key::new(tenant.sub_partition(SETTINGS_SUFFIX), number.as_str())
}

fn backlog_partition(tenant: &TenantId, number: &PhoneNumberId) -> String {
    tenant.sub_partition(&format!("{BACKLOG_SUFFIX}#{}", number.as_str()))
}

fn index_key(tenant: &TenantId, number: &PhoneNumberId) -> Key {
    Key::new(
        HISTORY_INDEX_PK,
        format!("{}#{}", tenant.as_str(), number.as_str()),
    )
}

impl Coexistence {
    pub fn new(store: Arc<dyn TableStore>) -> Self {
        Coexistence { store }
    }

    async fn item(
        &self,
        tenant: &TenantId,
        number: &PhoneNumberId,
    ) -> Result<Option<Item>, StoreError> {
        self.store
            .get(Table::Data, &settings_key(tenant, number))
            .await
    }

    pub async fn settings(
        &self,
        tenant: &TenantId,
        number: &PhoneNumberId,
    ) -> Result<CoexistenceSettings, StoreError> {
        Ok(self
            .item(tenant, number)
            .await?
            .map(|i| settings_of(&i))
            .unwrap_or_default())
    }

    /// Stores the tenant's choices, by `actor` (as the audit log names who did it). Turning
    /// the import off also drops what waits for it (the scheduled import clears it), so
    /// nothing the tenant did not want is posted.
    ///
    /// Each setting that changes gets a `settings_changed` audit entry, written in the same
    /// transaction as the change: who echoes are posted as decides which Bitrix24 user
    /// speaks for the business, and which user's messages are never sent (decision 0052), so
    /// a change of it must be traceable (decision 0065). The entry names the number and the
    /// Bitrix24 user ids before and after (`none` when unset): ids, never names.
    pub async fn set(
        &self,
        tenant: &TenantId,
        number: &PhoneNumberId,
        settings: CoexistenceSettings,
        actor: &str,
    ) -> Result<(), StoreError> {
        let before = self.settings(tenant, number).await?;
        let mut update = Update::new()
            .set("history_import", settings.history_import)
            .set("updated_at", now_secs());
        update = match settings.echo_author_id {
            Some(id) => update.set("echo_author", i64::try_from(id).unwrap_or(i64::MAX)),
            None => update.remove("echo_author"),
        };
        let mut ops = vec![WriteOp::Update {
            table: Table::Data,
            key: settings_key(tenant, number),
            update,
            condition: None,
        }];
        let channel = format!("whatsapp:{}", number.as_str());
        let user = |id: Option<u64>| id.map_or_else(|| "none".to_owned(), |id| id.to_string());
        if before.echo_author_id != settings.echo_author_id {
            let (from, to) = (user(before.echo_author_id), user(settings.echo_author_id));
            ops.push(AuditLog::entry_write(
                tenant,
                AuditAction::SettingsChanged,
                actor,
                &[
                    ("setting", "echo_author"),
                    ("channel", &channel),
                    ("from", &from),
                    ("to", &to),
                ],
            )?);
        }
        if before.history_import != settings.history_import {
            let (from, to) = (
                before.history_import.to_string(),
                settings.history_import.to_string(),
            );
            ops.push(AuditLog::entry_write(
                tenant,
                AuditAction::SettingsChanged,
                actor,
                &[
                    ("setting", "history_import"),
                    ("channel", &channel),
                    ("from", &from),
                    ("to", &to),
                ],
            )?);
        }
        self.store.transact_write(ops).await?;
        if settings.history_import {
            // Listed for the scheduled import while on: history may arrive at any time.
            let index = Item::new(&index_key(tenant, number)).with("tenant", tenant.as_str());
            self.store.put(Table::Routes, index, None).await?;
        } else {
            self.clear_backlog(tenant, number).await?;
        }
        Ok(())
    }

    /// True when `user_id` is the echo author of one of the tenant's numbers. Bitrix24 tells
    /// connectors of the messages managers write in an Open Line; a message by the echo
    /// author can only be one of our echoes coming back, and must never be sent out.
    pub async fn is_echo_author(
        &self,
        tenant: &TenantId,
        user_id: u64,
    ) -> Result<bool, StoreError> {
        let Ok(id) = i64::try_from(user_id) else {
            return Ok(false);
        };
        let mut query =
            Query::partition(tenant.sub_partition(SETTINGS_SUFFIX)).limit(MAX_PAGE_SIZE);
        loop {
            let page = self.store.query(Table::Data, &query).await?;
            if page
                .items
                .iter()
                .any(|i| i.get_n("echo_author") == Some(id))
            {
                return Ok(true);
            }
            match page.next {
                Some(next) => query = query.start_after(Some(next)),
                None => return Ok(false),
            }
        }
    }

    pub async fn view(
        &self,
        tenant: &TenantId,
        number: &PhoneNumberId,
    ) -> Result<CoexistenceView, StoreError> {
        let item = self.item(tenant, number).await?;
        let waiting = self.count_backlog(tenant, number).await?;
        Ok(CoexistenceView {
            phone_number_id: number.as_str().to_owned(),
            settings: item.as_ref().map(settings_of).unwrap_or_default(),
            history: item.as_ref().map(state_of).unwrap_or_default(),
            history_waiting: waiting,
        })
    }

    pub async fn state(
        &self,
        tenant: &TenantId,
        number: &PhoneNumberId,
    ) -> Result<HistoryState, StoreError> {
        Ok(self
            .item(tenant, number)
            .await?
            .map(|i| state_of(&i))
            .unwrap_or_default())
    }

    /// Records one history chunk's progress (Meta's progress only moves forward).
    pub async fn record_progress(
        &self,
        tenant: &TenantId,
        number: &PhoneNumberId,
        phase: Option<i64>,
        progress: Option<i64>,
        declined: bool,
    ) -> Result<(), StoreError> {
        let key = settings_key(tenant, number);
        let mut update = Update::new().set("last_chunk_at", now_secs());
        if declined {
            update = update.set("declined", true);
        }
        if let Some(p) = progress {
            // Chunks of one number's history run in their customers' FIFO groups, side by
            // side: a chunk that reports less than what is recorded (processed late, or
            // beside a later one) leaves it. A condition, not a read: a read then a write
            // let the lower one land last.
            let mut forward = update.clone().set("meta_progress", p);
            if let Some(phase) = phase {
                forward = forward.set("meta_phase", phase);
            }
            let not_behind = Condition::Or(vec![
                Condition::AttrNotExists("meta_progress".into()),
                Condition::LessThan("meta_progress".into(), AttrValue::N(p.saturating_add(1))),
            ]);
            match self
                .store
                .update(Table::Data, &key, forward, Some(not_behind))
                .await
            {
                Ok(_) => return Ok(()),
                Err(StoreError::ConditionFailed { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        self.store.update(Table::Data, &key, update, None).await?;
        Ok(())
    }

    /// Adds a stored past message to the backlog (once: a redelivery finds it there).
    pub async fn queue_history(
        &self,
        tenant: &TenantId,
        number: &PhoneNumberId,
        at: i64,
        conversation: &ConversationId,
        message_sk: &str,
    ) -> Result<(), StoreError> {
        let sk = format!(
            "{:012}#{}#{message_sk}",
            at.clamp(0, 999_999_999_999),
            conversation.as_str()
        );
        let item = Item::new(&Key::new(backlog_partition(tenant, number), sk))
            .with("conversation", conversation.as_str())
            .with("message_sk", message_sk);
        match self
            .store
            .put(Table::Data, item, Some(Condition::NotExists))
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if e.is_condition_failed() => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Numbers whose history is imported, every tenant's (the scheduled import's work list).
    pub async fn pending_channels(&self) -> Result<Vec<(TenantId, PhoneNumberId)>, StoreError> {
        let mut out = Vec::new();
        let mut query = Query::partition(HISTORY_INDEX_PK).limit(MAX_PAGE_SIZE);
        loop {
            let page = self.store.query(Table::Routes, &query).await?;
            for item in &page.items {
                let Some(key) = item.key() else { continue };
                let Some((tenant, number)) = key.sk.split_once('#') else {
                    continue;
                };
                if let (Ok(t), Ok(n)) = (TenantId::parse(tenant), PhoneNumberId::parse(number)) {
                    out.push((t, n));
                }
            }
            match page.next {
                Some(next) => query = query.start_after(Some(next)),
                None => return Ok(out),
            }
        }
    }

    /// The oldest `limit` waiting messages of a number.
    pub async fn next_batch(
        &self,
        tenant: &TenantId,
        number: &PhoneNumberId,
        limit: usize,
    ) -> Result<Vec<Backlogged>, StoreError> {
        let query = Query::partition(backlog_partition(tenant, number))
            .limit(limit.clamp(1, MAX_PAGE_SIZE));
        let page = self.store.query(Table::Data, &query).await?;
        Ok(page
            .items
            .iter()
            .filter_map(|i| {
                Some(Backlogged {
                    key: i.key()?,
                    conversation: ConversationId::parse(i.get_s("conversation")?).ok()?,
                    message_sk: i.get_s("message_sk")?.to_owned(),
                })
            })
            .collect())
    }

    /// Records `done` as imported: off the backlog, counted.
    pub async fn imported(
        &self,
        tenant: &TenantId,
        number: &PhoneNumberId,
        done: &[Backlogged],
    ) -> Result<(), StoreError> {
        for b in done {
            self.store.delete(Table::Data, &b.key, None).await?;
        }
        let n = i64::try_from(done.len()).unwrap_or(i64::MAX);
        self.store
            .update(
                Table::Data,
                &settings_key(tenant, number),
                Update::new().add("imported", n),
                None,
            )
            .await?;
        Ok(())
    }

    /// Takes the number off the import's index.
    pub async fn unlist(
        &self,
        tenant: &TenantId,
        number: &PhoneNumberId,
    ) -> Result<(), StoreError> {
        self.store
            .delete(Table::Routes, &index_key(tenant, number), None)
            .await
    }

    /// Drops everything waiting for the import of `number`, and its index entry.
    pub async fn clear_backlog(
        &self,
        tenant: &TenantId,
        number: &PhoneNumberId,
    ) -> Result<usize, StoreError> {
        let mut n = 0;
        loop {
            let batch = self.next_batch(tenant, number, MAX_PAGE_SIZE).await?;
            if batch.is_empty() {
                break;
            }
            for b in &batch {
                self.store.delete(Table::Data, &b.key, None).await?;
            }
            n += batch.len();
        }
        self.unlist(tenant, number).await?;
        Ok(n)
    }

    async fn count_backlog(
        &self,
        tenant: &TenantId,
        number: &PhoneNumberId,
    ) -> Result<usize, StoreError> {
        let mut n = 0;
        let mut query = Query::partition(backlog_partition(tenant, number)).limit(MAX_PAGE_SIZE);
        loop {
            let page = self.store.query(Table::Data, &query).await?;
            n += page.items.len();
            match page.next {
                Some(next) => query = query.start_after(Some(next)),
                None => return Ok(n),
            }
        }
    }
}

fn settings_of(i: &Item) -> CoexistenceSettings {
    CoexistenceSettings {
        history_import: i.get_bool("history_import").unwrap_or(false),
        echo_author_id: i.get_n("echo_author").and_then(|n| u64::try_from(n).ok()),
    }
}

fn state_of(i: &Item) -> HistoryState {
    HistoryState {
        meta_progress: i.get_n("meta_progress"),
        meta_phase: i.get_n("meta_phase"),
        declined: i.get_bool("declined").unwrap_or(false),
        last_chunk_at: i.get_n("last_chunk_at"),
        imported: i.get_n("imported").unwrap_or(0),
    }
}
