//! Exactly one send per part under store failures (decision 0055), a child of the send
//! worker: the attempt recorded before each Graph API call, the provider id recorded after
//! it (retried in place), and what a redelivery does with an attempt whose outcome it does
//! not know.
//!
//! - A store failure before the call (recording the attempt) sends nothing: the job is
//!   retried.
//! - Meta answered with an error: nothing went out; the attempt is dropped.
//! - Meta took it: the provider id is written before anything else, in place up to
//!   [`super::RECORD_TRIES`] times; a redelivery then finds the part sent and never sends it
//!   again.
//! - Meta's answer was lost, or we failed (or crashed) between its answer and our write: the
//!   attempt stays on record without an outcome. The next delivery looks at it: a WhatsApp
//!   status webhook carrying the attempt's tag (`biz_opaque_callback_data`, recorded by the
//!   inbound worker) settles it as sent, with its wamid, and nothing is sent again. Without
//!   one the delivery waits until the attempt is one reconcile window old (the queue's
//!   visibility timeout, and never less than a Graph API call can last), then sends again:
//!   at-least-once. Meta reports every message it took with a status carrying the tag
//!   (sent, delivered, read or failed), so silence for that long means it did not take it;
//!   on Instagram, whose sends carry no tag of ours, the operator is told in Bitrix24 that
//!   the message went again and may show twice (not for a comment's private reply, which
//!   Instagram takes once: a second is refused, decision 0136).
//! - A status webhook that came before the send was recorded (it settled an attempt, or came
//!   during the Graph API call or the provider id's write) left its status on the progress
//!   item (it could not find the message): applied once the sends are recorded, after the
//!   message's own `sent` (decision 0074). After writing each part, the progress is read
//!   once more: Meta's statuses of that send may have been kept since the delivery's first
//!   read (decisions 0101, 0110).

use std::time::Duration;

use super::{Context, OutboundWorker, PartResult, SendError, RECORD_PAUSE, RECORD_TRIES};
use crate::clock::now_secs;
use crate::conversation::erased::ErasedSubjects;
use crate::conversation::{Conversations, MessageStatus};
use crate::graph::GraphError;
use crate::meta::AccountRef;
use crate::outbound::attempt::{Attempt, EarlyStatus};
use crate::outbound::private_reply::CommentRoute;
use crate::outbound::OutboundJob;

/// True when Meta may have run the request although we got no answer from it: the
/// connection failed after it was opened, the answer timed out or could not be read.
pub(super) fn may_have_run(e: &GraphError) -> bool {
    matches!(
        e,
        GraphError::Unavailable { status: None, .. }
            | GraphError::Protocol(_)
            | GraphError::TooLarge { .. }
    )
}

impl OutboundWorker {
    /// Before part `part` is sent: an attempt of it on record (`prior`, read with the job's
    /// progress) is one Meta never confirmed for a whole reconcile window, since a confirmed
    /// one and one still awaited were settled before the checks (`in_doubt.rs`, decision
    /// 0127). It is sent again (at-least-once); on Instagram, whose sends carry no tag of
    /// ours, the operator is told it may show twice.
    pub(super) async fn before_resend(
        &self,
        cx: &Context<'_>,
        prior: Option<&Attempt>,
        part: usize,
    ) -> Result<(), SendError> {
        let Some(attempt) = prior.filter(|a| a.part == part) else {
            return Ok(());
        };
        tracing::warn!(
            attempt = attempt.number,
            part,
            "no status of an earlier attempt within the reconcile window; sent again"
        );
        // A private reply cannot show twice: Instagram takes one per comment, and refuses a
        // second (decision 0136).
        let private_reply = matches!(cx.comment, CommentRoute::PrivateReply(_));
        if matches!(cx.meta.account, AccountRef::Instagram(_)) && !private_reply {
            // No tag of ours comes back on Instagram: we cannot know, so the operator is told.
            self.enqueue_status(
                cx.job,
                MessageStatus::Failed,
                Some(
                    "Instagram did not confirm an earlier attempt to send this message (our \
                     service failed while sending it); it was sent again and the customer may \
                     see it twice"
                        .into(),
                ),
                &format!("send-unconfirmed:{}", attempt.tag),
            )
            .await?;
        }
        Ok(())
    }

    /// How long to wait for Meta's status of `attempt`, unconfirmed: None once it is one
    /// reconcile window old (its part is then sent again).
    pub(super) fn unheard_wait(&self, attempt: &Attempt) -> Option<Duration> {
        let age = Duration::from_secs(now_secs().saturating_sub(attempt.at).max(0) as u64);
        let window = self.reconcile_window();
        (age < window).then(|| {
            tracing::info!(
                attempt = attempt.number,
                part = attempt.part,
                "an earlier attempt's outcome is unknown; waiting for Meta's status"
            );
            (window - age).max(Duration::from_secs(1))
        })
    }

    /// How old an attempt without an outcome must be before its part is sent again: the
    /// configured window (the queue's visibility timeout, or a shortened lease), but never
    /// less than the longest a Graph API call can still be on its way (the clients' request
    /// timeout) plus one second, since an attempt's time is kept in whole seconds (decision
    /// 0110). A window shorter than the call let a redelivery send a part again while the
    /// first send was still in flight: the fault soak on a starved machine saw it.
    pub(super) fn reconcile_window(&self) -> Duration {
        let call = self
            .clients
            .graph
            .config()
            .request_timeout
            .max(self.clients.instagram.config().request_timeout);
        let whole_seconds =
            Duration::from_secs(call.as_secs() + u64::from(call.subsec_nanos() > 0));
        self.reconcile.max(whole_seconds + Duration::from_secs(1))
    }

    /// Records a new attempt of part `index` right before its Graph API call; `Err`: nothing
    /// was sent and the job is retried.
    pub(super) async fn begin_attempt(
        &self,
        cx: &Context<'_>,
        index: usize,
        prior: Option<&Attempt>,
    ) -> Result<Attempt, PartResult> {
        match self
            .progress
            .begin_attempt(
                &cx.job.tenant_id,
                &cx.job.effect,
                (index, index + 1 == cx.parts),
                prior,
            )
            .await
        {
            Ok(Some(attempt)) => match self.erased_meanwhile(cx).await {
                Ok(false) => Ok(attempt),
                erased => {
                    // Nothing was sent: the next delivery need not wait to reconcile it.
                    if let Err(e) = self
                        .progress
                        .drop_attempt(&cx.job.tenant_id, &cx.job.effect, &attempt)
                        .await
                    {
                        tracing::warn!(error = %e, "dropping an attempt not made failed");
                    }
                    Err(match erased {
                        Ok(_) => PartResult::Erased,
                        Err(e) => PartResult::Ours(e),
                    })
                }
            },
            Ok(None) => Err(PartResult::Ours(SendError::AttemptTaken)),
            Err(e) => Err(PartResult::Ours(e.into())),
        }
    }

    /// Whether the person's erasure began since the job was loaded (decision 0122): read
    /// after the attempt is written. A contact erasure writes its marker before it deletes
    /// anything, so one that began before the attempt was recorded is seen here, and one
    /// that begins after finds the send already under way, as decision 0029 allows.
    async fn erased_meanwhile(&self, cx: &Context<'_>) -> Result<bool, SendError> {
        Ok(ErasedSubjects::new(self.store.clone())
            .covers(
                &cx.job.tenant_id,
                &cx.job.conversation,
                cx.meta.created_at_ms,
            )
            .await?)
    }

    /// Meta answered the send of `attempt` with an error, or not at all: the part's result.
    pub(super) async fn failed_send(
        &self,
        cx: &Context<'_>,
        attempt: &Attempt,
        error: &GraphError,
        disposition: crate::outbound::reasons::Disposition,
    ) -> PartResult {
        if may_have_run(error) {
            return PartResult::Unknown(disposition);
        }
        // Nothing went out: the next delivery sends without waiting. Should this write fail,
        // that delivery waits out the reconcile window first; nothing is lost or doubled.
        if let Err(e) = self
            .progress
            .drop_attempt(&cx.job.tenant_id, &cx.job.effect, attempt)
            .await
        {
            tracing::warn!(error = %e, "dropping a refused send's attempt failed");
        }
        PartResult::Stop(disposition)
    }

    /// Applies the early status of the job (decision 0074): Meta's delivered, read or failed
    /// of a send that was not recorded when it came. Called once the sends are recorded and
    /// the message's own `sent` is queued. Its sync job's occurrence is the status itself, so
    /// a redelivery that applies it again queues the same job (posted once).
    pub(super) async fn apply_early(
        &self,
        conversations: &Conversations,
        job: &OutboundJob,
        early: Option<EarlyStatus>,
    ) -> Result<(), SendError> {
        let Some(early) = early.filter(EarlyStatus::beyond_sent) else {
            return Ok(());
        };
        tracing::info!(
            status = early.status.code(),
            "a status Meta reported before the send was recorded; applied"
        );
        let occurrence = format!("early-status:{}", early.status.code());
        if self
            .advance_and_enqueue(conversations, job, early.status, early.failure, &occurrence)
            .await?
        {
            self.metrics.early_status("applied");
        }
        Ok(())
    }

    /// `early`, or a read Instagram reported of `provider_id` before this send was recorded,
    /// which the inbound worker kept for us (decision 0114; read once the send is recorded,
    /// as the inbound worker looks for the message once more after it keeps one). Instagram
    /// only: its sends carry no tag of ours, so such a read is not on the send's progress.
    pub(super) async fn with_early_read(
        &self,
        conversations: &Conversations,
        account: &AccountRef,
        provider_id: &str,
        early: Option<EarlyStatus>,
    ) -> Result<Option<EarlyStatus>, SendError> {
        if !matches!(account, AccountRef::Instagram(_)) || provider_id.is_empty() {
            return Ok(early);
        }
        if conversations.early_read(account, provider_id).await? {
            tracing::info!("a read Instagram reported before the send was recorded; applied");
            return Ok(Some(EarlyStatus {
                status: MessageStatus::Read,
                failure: None,
            }));
        }
        Ok(early)
    }

    /// Records that part `index` went out as `sent_parts[index]`: the progress of a
    /// multi-part message and the message's provider id, retried in place. The progress is
    /// written for a one-part message too when the part was sent `again` by a later attempt:
    /// an earlier one may have reached Meta as well, and its statuses find the message
    /// through the progress (decision 0111).
    pub(super) async fn record_sent(
        &self,
        r: &Recording<'_>,
        again: bool,
        sent_parts: &[Option<String>],
        index: usize,
    ) -> Result<(), SendError> {
        let at = &r.job.message_ref();
        let provider_id = sent_parts[index].as_deref().unwrap_or_default();
        let mut pause = RECORD_PAUSE;
        let mut tries = 0;
        loop {
            tries += 1;
            let written: Result<(), SendError> = async {
                if sent_parts.len() > 1 || again {
                    self.progress
                        .save(&r.job.tenant_id, &r.job.effect, sent_parts)
                        .await?;
                }
                r.conversations
                    .record_provider_id(r.account, at, provider_id, r.retention)
                    .await?;
                Ok(())
            }
            .await;
            match written {
                Ok(()) => return Ok(()),
                Err(e) if tries < RECORD_TRIES => {
                    tracing::warn!(error = %e, tries, "recording a sent part failed; retrying");
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Part `index` went out as `sent_parts[index]`: recorded ([`Self::record_sent`]), then
    /// the job's early status read once more and returned (over `early`). Meta's statuses of
    /// this send may have come at any time since this delivery read the progress: during the
    /// Graph API call, while its answer was written (retried or not), or before, when a
    /// status settled the part. Not finding the message, the inbound worker kept them on the
    /// progress for us (decisions 0074, 0101, 0110), so it is read once more now that the
    /// message can be found. The inbound worker looks for the message once more after it
    /// keeps a status, so a status kept after this read is moved on by it: one of the two
    /// always applies it.
    pub(super) async fn part_sent(
        &self,
        r: &Recording<'_>,
        again: bool,
        sent_parts: &[Option<String>],
        index: usize,
        early: Option<EarlyStatus>,
    ) -> Result<Option<EarlyStatus>, SendError> {
        self.record_sent(r, again, sent_parts, index).await?;
        let early = self
            .progress
            .early_status(&r.job.tenant_id, &r.job.effect)
            .await?
            .or(early);
        let provider_id = sent_parts[index].as_deref().unwrap_or_default();
        self.with_early_read(r.conversations, r.account, provider_id, early)
            .await
    }
}

/// What recording a sent part writes to: the job's progress and its message.
pub(super) struct Recording<'a> {
    pub job: &'a OutboundJob,
    pub account: &'a AccountRef,
    pub conversations: &'a Conversations,
    pub retention: u32,
}
