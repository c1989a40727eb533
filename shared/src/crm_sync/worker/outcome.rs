//! A job's run under its idempotency record, waiting for a staged operation's outcome, and
//! the note an operator gets when Bitrix24 kept a customer's message without some of its
//! files (decision 0066).

use std::time::Duration;

use tokio::time::Instant;

use super::{SyncError, SyncWorker, FLUSH_EVERY_POLLS};
use crate::bitrix::{imconnector, ConnectorId, OpenLineId};
use crate::consumer::Outcome;
use crate::conversation::{ConversationMeta, StoredMessage};
use crate::crm_sync::chat::{media_of, note_message};
use crate::crm_sync::outbox::{CrmOp, MissingFiles, OpOutcome, OpState, Outbox, PostLookup};
use crate::crm_sync::settled::SettleWatch;
use crate::crm_sync::SyncJob;
use crate::idempotency::Begin;
use crate::meta::Media;
use crate::store::Key;
use crate::tenant::TenantScope;

/// A posted operation's outcome as the job reads it.
pub(super) struct Sent {
    pub crm_chat_id: Option<String>,
    pub missing: MissingFiles,
}

impl SyncWorker {
    /// Starts listening for what this process's flusher settles at `key`: made before the
    /// operation is staged, so no outcome written after the staging goes unheard.
    pub(super) fn watch_outcome(&self, key: &Key) -> SettleWatch {
        self.flusher.settlements().watch(key)
    }

    /// Waits for the outcome of the operation staged at `key` (in `state` now), taking the
    /// portal's lease now and then to post it itself. None when it was removed meanwhile (a
    /// contact erasure); a failed operation is the job's error (it stays staged, with its
    /// ambiguity, for the retry).
    ///
    /// An outcome this process's flusher writes is heard through `heard` (made before the
    /// staging) without reading the operation (decision 0084). One that another process
    /// writes (its flusher holds the portal's lease) is found by looking at the operation:
    /// first after `poll`, then less and less often, down to once per flush attempt.
    pub(super) async fn outcome_of(
        &self,
        scope: &TenantScope,
        key: &Key,
        heard: &mut SettleWatch,
        mut state: OpState,
    ) -> Result<Option<Sent>, SyncError> {
        let started = Instant::now();
        let deadline = started + self.wait.max_wait;
        let flush_every = self.wait.poll * FLUSH_EVERY_POLLS;
        let mut next_flush = started;
        let mut look_pause = self.wait.poll;
        let mut next_look = started + look_pause;
        let outcome = loop {
            if let OpState::Done(outcome) = state {
                break outcome;
            }
            let wake = if self.flushed_here(scope) {
                // This process posts the portal now and tells what it settles: no look, and
                // no try for the lease it holds. If that flush ends without telling us (it
                // last asked for ready operations before ours was staged), a try comes first.
                next_flush = Instant::now();
                (next_flush + self.wait.poll).min(deadline)
            } else {
                if Instant::now() >= next_flush {
                    // Try to become the portal's flusher now and then (it may have gone),
                    // not on every look: each try is a conditional write.
                    self.try_flush(scope).await?;
                    next_flush = Instant::now() + flush_every;
                }
                next_look.min(next_flush)
            };
            if let Some(outcome) = heard.heard_by(wake).await {
                break outcome;
            }
            let now = Instant::now();
            let look_due = now >= next_look && now < next_flush && !self.flushed_here(scope);
            if now < deadline && !look_due {
                continue;
            }
            state = match self.outbox.state(key).await? {
                Some(s) => s,
                None => return Ok(None),
            };
            if matches!(state, OpState::Done(_)) {
                continue;
            }
            if now >= deadline {
                return Err(SyncError::Waiting(
                    self.wait.poll.max(Duration::from_secs(1)),
                ));
            }
            look_pause = (look_pause * 2).min(flush_every);
            next_look = (now + look_pause).min(deadline);
        };
        match outcome {
            OpOutcome::Sent {
                crm_chat_id,
                missing,
            } => Ok(Some(Sent {
                crm_chat_id,
                missing,
            })),
            OpOutcome::Failed {
                kind,
                code,
                retry_after_ms,
                operation_level,
            } => Err(SyncError::Operation {
                kind,
                code,
                retry_after: retry_after_ms.map(Duration::from_millis),
                operation_level,
            }),
        }
    }

    /// Whether a flusher of this process is flushing the portal of `scope` now.
    fn flushed_here(&self, scope: &TenantScope) -> bool {
        self.flusher.settlements().is_flushing(scope.tenant())
    }

    /// One try to flush the portal: a portal no longer connected ends the wait, any other
    /// failure leaves it to the next try (or to whichever process holds the lease).
    async fn try_flush(&self, scope: &TenantScope) -> Result<(), SyncError> {
        if let Err(e) = self.flusher.flush(scope).await {
            match SyncError::from(e) {
                e @ SyncError::NotConnected(_) => return Err(e),
                e => tracing::warn!(error = %e, "portal flush failed"),
            }
        }
        Ok(())
    }

    /// Runs `work` (the job up to its outcome, returning the keys of the operations it
    /// staged) under the job's idempotency record, then records the job done and drops what
    /// it staged.
    pub(super) async fn under_hold(
        &self,
        job: &SyncJob,
        work: impl std::future::Future<Output = Result<Vec<Key>, SyncError>>,
    ) -> Result<Outcome, SyncError> {
        let held = match self.idempotency.begin(&job.tenant_id, &job.effect).await? {
            Begin::Started(held) => held,
            Begin::AlreadyDone => {
                self.metrics.duplicate("sync");
                // The delivery that completed it may have stopped before dropping its staged
                // operations (they are dropped only after the record says done).
                return Ok(self.drop_staged(&staged_keys(job)).await);
            }
            Begin::InProgress { retry_after } => return Ok(Outcome::RetryAfter(retry_after)),
        };
        let staged = match work.await {
            Ok(staged) => staged,
            Err(e) => {
                self.idempotency.release(&held).await;
                return Err(e);
            }
        };
        // The job is recorded done before its staged operations are dropped (decision 0080).
        // A staged operation that is gone would be staged afresh and posted again by any
        // delivery that still runs the job: one whose completion write failed here, or one
        // that took the job over when this delivery's lease ran out. Until the record says
        // done, such a delivery finds the operation `sent` and takes its outcome instead.
        if !self.idempotency.complete_held(&held).await? {
            // Another delivery took the job over while this one worked: it finishes it.
            // This record comes back to find the job done (or still held).
            tracing::info!("sync job taken over by another delivery; left to it");
            return Ok(Outcome::RetryAfter(Duration::from_secs(1)));
        }
        Ok(self.drop_staged(&staged).await)
    }

    /// Forgets the staged operations of a job recorded done. One that could not be dropped
    /// is not posted again (its state is `sent`), but every flush would read it until it
    /// expires: the record comes back, finds the job done and drops it then.
    pub(super) async fn drop_staged(&self, keys: &[Key]) -> Outcome {
        for key in keys {
            if let Err(e) = self.outbox.remove(key).await {
                tracing::warn!(error = %e, "could not drop a done job's staged operation");
                return Outcome::RetryAfter(Duration::from_secs(1));
            }
        }
        Outcome::Done
    }

    /// Tells the operator, in the chat, that Bitrix24 kept the customer's message without
    /// `missing` of its files (the portal could not download our links: Meta no longer has
    /// the media, or the link failed). A second operation staged under the job: its own key
    /// and message id derive from the job's effect, so a redelivered job finds it staged or
    /// sent and does not post it again. The caller records the post as synced only after
    /// this returns, and removes the note's item only after that, so a redelivery either
    /// stages it again (not yet posted) or finds the post synced. Returns the note's key.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn note_missing_files(
        &self,
        job: &SyncJob,
        scope: &TenantScope,
        meta: &ConversationMeta,
        message: &StoredMessage,
        connector: &ConnectorId,
        line: OpenLineId,
        crm_chat_id: Option<String>,
        missing: &MissingFiles,
    ) -> Result<Key, SyncError> {
        let effect = files_note_effect(&job.effect);
        let key = Outbox::key(&job.tenant_id, job.conversation.as_str(), &effect);
        let media = message
            .content
            .as_ref()
            .map(|c| media_of(c))
            .unwrap_or_default();
        let crm = note_message(meta, &effect, missing_files_note(missing, &media));
        let op = CrmOp {
            method: imconnector::SEND_MESSAGES.to_owned(),
            params: imconnector::messages_params(connector, line, vec![crm.to_param()?])?,
            lookup: Some(PostLookup {
                external_id: crm.message_id.clone(),
                crm_chat_id,
            }),
            files: Vec::new(),
        };
        let mut heard = self.watch_outcome(&key);
        let state = self
            .outbox
            .stage(&job.tenant_id, &key, &op, (self.clock)())
            .await?;
        self.outcome_of(scope, &key, &mut heard, state).await?;
        tracing::info!(files = missing.count, "noted files Bitrix24 did not keep");
        Ok(key)
    }
}

/// Where a job's operations are staged: its own, and the note of files Bitrix24 did not keep
/// (`note_missing_files`).
pub(super) fn staged_keys(job: &SyncJob) -> Vec<Key> {
    let conversation = job.outbox_scope();
    vec![
        Outbox::key(&job.tenant_id, conversation, &job.effect),
        Outbox::key(
            &job.tenant_id,
            conversation,
            &files_note_effect(&job.effect),
        ),
    ]
}

/// The effect id of the note of a job's files Bitrix24 did not keep.
pub(super) fn files_note_effect(job_effect: &str) -> String {
    format!("files.{job_effect}")
}

/// The note's text: how many files, and their kinds and names (never their content).
pub(super) fn missing_files_note(missing: &MissingFiles, media: &[&Media]) -> String {
    let described: Vec<String> = missing
        .of
        .iter()
        .filter_map(|i| media.get(*i as usize))
        .map(|m| match m.filename.as_deref().filter(|n| !n.is_empty()) {
            Some(name) => format!("{} \u{201c}{name}\u{201d}", m.kind.name()),
            None => m.kind.name().to_owned(),
        })
        .collect();
    // When the answer could not tell which files it lacks, every file sent is named.
    let which = if described.len() == missing.count as usize {
        ":"
    } else {
        ", among:"
    };
    format!(
        "[the customer sent {} file(s) that Bitrix24 could not download{which} {}]",
        missing.count,
        described.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::MediaKind;

    #[test]
    fn the_note_names_the_files_missing_and_only_those() {
        let mut doc = Media::new(MediaKind::Document);
        doc.filename = Some("price list.pdf".into());
        let image = Media::new(MediaKind::Image);
        let media = [&image, &doc];
        let one = MissingFiles {
            count: 1,
            of: vec![1],
        };
        assert_eq!(
            missing_files_note(&one, &media),
            "[the customer sent 1 file(s) that Bitrix24 could not download: document \u{201c}price list.pdf\u{201d}]"
        );
        let unknown = MissingFiles {
            count: 1,
            of: vec![0, 1],
        };
        assert_eq!(
            missing_files_note(&unknown, &media),
            "[the customer sent 1 file(s) that Bitrix24 could not download, among: image, document \u{201c}price list.pdf\u{201d}]"
        );
    }
}
