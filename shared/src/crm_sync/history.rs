//! The scheduled import of Coexistence chat history into Bitrix24 (decision 0052): the
//! sync-worker function's schedule (every 5 minutes in AWS, a timer in the local server)
//! takes, for each WhatsApp number whose history is imported, its oldest waiting past
//! messages and queues one ordinary CRM sync job each, at most [`POSTS_PER_RUN`] per number
//! per run.
//!
//! - **Paced**: the history reaches the portal through the same outbox, batches and shared
//!   limiter as live traffic (decision 0023), but only a run's share at a time: 250
//!   messages per 5 minutes are at most 5 `batch` requests of the portal's 600 in that time,
//!   so live messages always find the outbox short and the limiter's bucket nearly full.
//! - **In order**: a number's backlog is sorted by message time and queued oldest first;
//!   the sync queue keeps each conversation's order. The import waits until Meta reports
//!   the history complete (progress 100), declined, or silent for [`QUIET_SECS`]: Meta
//!   sends the newest phase first, and Bitrix24 shows messages in the order they are posted.
//! - **Resumable**: the backlog is the progress. Entries leave it only after their jobs are
//!   on the queue; a run that dies in between queues them again next time, with the same
//!   deduplication id, and the sync worker posts a message only once (it records the
//!   Bitrix24 ids on it). Turning the import off drops the backlog.

use std::sync::Arc;

use serde::Serialize;

use super::{SyncAction, SyncJob};
use crate::acting::acting_for;
use crate::clock::now_secs;
use crate::coexistence::Coexistence;
use crate::ids::{PhoneNumberId, TenantId};
use crate::queue::{platform, Queue, QueueName};
use crate::store::{StoreError, TableStore};

/// Past messages queued per number per run.
pub const POSTS_PER_RUN: usize = 250;
/// A history sync silent this long is imported as far as it came.
pub const QUIET_SECS: i64 = 30 * 60;

#[derive(Debug, thiserror::Error)]
pub enum HistoryImportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("queueing history: {0}")]
    Queue(String),
}

/// What one run did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct HistoryImportReport {
    /// Numbers whose history is imported.
    pub channels: usize,
    /// Past messages queued for Bitrix24.
    pub queued: usize,
    /// Numbers whose history Meta is still sending.
    pub waiting_for_meta: usize,
    /// Numbers whose backlog was dropped (the import was turned off).
    pub dropped: usize,
}

/// The scheduled history import. Build once per process.
#[derive(Clone)]
pub struct HistoryImport {
    coexistence: Coexistence,
    queue: Arc<dyn Queue>,
    sync: QueueName,
    per_run: usize,
}

impl HistoryImport {
    /// `queue` must reach the sync queue.
    pub fn new(store: Arc<dyn TableStore>, queue: Arc<dyn Queue>) -> Self {
        HistoryImport {
            coexistence: Coexistence::new(store),
            queue,
            sync: platform::name(platform::SYNC),
            per_run: POSTS_PER_RUN,
        }
    }

    /// Another pace (the local server's tests import a few at a time).
    pub fn with_posts_per_run(mut self, n: usize) -> Self {
        self.per_run = n.max(1);
        self
    }

    /// One run over every number whose history is imported; one number's failure is logged and does not
    /// stop the others.
    pub async fn run_once(&self) -> Result<HistoryImportReport, HistoryImportError> {
        let mut report = HistoryImportReport::default();
        for (tenant, number) in self.coexistence.pending_channels().await? {
            report.channels += 1;
            let one = acting_for(&tenant, self.import(&tenant, &number, &mut report)).await;
            if let Err(e) = one {
                tracing::warn!(%tenant, error = %e, "history import of a number failed; next run retries");
            }
        }
        Ok(report)
    }

    async fn import(
        &self,
        tenant: &TenantId,
        number: &PhoneNumberId,
        report: &mut HistoryImportReport,
    ) -> Result<(), HistoryImportError> {
        let settings = self.coexistence.settings(tenant, number).await?;
        if !settings.history_import {
            let n = self.coexistence.clear_backlog(tenant, number).await?;
            report.dropped += 1;
            tracing::info!(%tenant, dropped = n, "history import turned off; backlog dropped");
            return Ok(());
        }
        let state = self.coexistence.state(tenant, number).await?;
        let complete = state.meta_progress.is_some_and(|p| p >= 100) || state.declined;
        let quiet = state
            .last_chunk_at
            .is_none_or(|at| now_secs().saturating_sub(at) >= QUIET_SECS);
        if !complete && !quiet {
            report.waiting_for_meta += 1;
            return Ok(());
        }
        let batch = self
            .coexistence
            .next_batch(tenant, number, self.per_run)
            .await?;
        if batch.is_empty() {
            return Ok(());
        }
        let jobs = batch
            .iter()
            .map(|b| {
                SyncJob::new(
                    tenant.clone(),
                    b.conversation.clone(),
                    SyncAction::PushMessage {
                        message_sk: b.message_sk.clone(),
                    },
                    &format!("history:{}", b.message_sk),
                )
                .to_message()
            })
            .collect();
        self.queue
            .send_batch(&self.sync, jobs)
            .await
            .map_err(|e| HistoryImportError::Queue(e.to_string()))?;
        // Only now off the backlog: a run that dies before this line queues them again.
        self.coexistence.imported(tenant, number, &batch).await?;
        report.queued += batch.len();
        tracing::info!(%tenant, queued = batch.len(), "chat history queued for Bitrix24");
        Ok(())
    }
}
