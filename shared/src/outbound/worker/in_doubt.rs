//! An attempt an earlier delivery of the job recorded and did not see the outcome of (it
//! stopped between the Graph API call and recording Meta's answer), settled before the send's
//! checks run again (decision 0127). The checks (the channel still connected, its token, a
//! ban or restriction, the template, the customer service window, a comment's private reply)
//! decide whether to *send*. A part Meta took is not theirs to refuse: the window may have
//! closed, or the number been restricted, in the minutes between the attempt and the
//! redelivery, and failing the message then would tell the operator that a reply the
//! customer got did not go.
//!
//! - Meta's status confirmed the attempt: the part is recorded as sent before the checks. It
//!   was the message's last part: the message is sent, and no check runs. Otherwise the
//!   checks apply to the parts still to go.
//! - No status yet, within the reconcile window: the delivery waits, before the checks.
//! - No status for a whole window: Meta did not take it (decision 0055). The checks run, as
//!   for a first send, and the send loop sends it again.

use std::time::Duration;

use super::reconcile::Recording;
use super::templated::went_as_template;
use super::{OutboundWorker, SendError};
use crate::conversation::{ConversationMeta, Origin, StoredMessage};
use crate::meta::AccountRef;
use crate::metrics::direction;
use crate::outbound::attempt::{Attempt, EarlyStatus};
use crate::outbound::OutboundJob;

/// What an attempt of an earlier delivery says before the checks.
pub(super) enum InDoubt {
    /// No attempt in doubt, or one Meta did not take, or a confirmed part that was not the
    /// last: the checks run for what is still to go.
    None,
    /// Meta's status of the attempt may still come: ask again after this.
    Wait(Duration),
    /// Meta took the message's last part: everything went out.
    AllSent,
}

impl OutboundWorker {
    /// Settles what an earlier delivery left: the last part recorded on the progress but not
    /// on the message is recorded again, and the attempt on record (`prior`), when its part
    /// is not recorded as sent in `sent_parts`, is settled: a confirmed part is recorded
    /// (into `sent_parts`, with the job's early status read again into `early`).
    pub(super) async fn settle_in_doubt(
        &self,
        r: &Recording<'_>,
        (sent_parts, recorded): (&mut Vec<Option<String>>, Option<&str>),
        prior: Option<&Attempt>,
        early: &mut Option<EarlyStatus>,
    ) -> Result<InDoubt, SendError> {
        // The last part the progress holds as sent, whose provider id the message does not
        // hold (`recorded`: each part's recording writes the progress, then the message): the
        // second write failed after its retries, or the process died between the two. The
        // send loop skips a part the progress holds, so it is written again here, or that
        // part's statuses and Instagram reads would never find the message.
        let last = sent_parts
            .iter()
            .enumerate()
            .rev()
            .find_map(|(i, part)| part.as_deref().map(|id| (i, id)));
        if let Some((index, id)) = last {
            if recorded != Some(id) {
                tracing::info!(part = index, "a part's provider id recorded again");
                self.record_sent(r, false, sent_parts, index).await?;
            }
        }
        let Some(attempt) = prior.filter(|a| sent_parts.get(a.part).is_none_or(Option::is_none))
        else {
            return Ok(InDoubt::None);
        };
        let Some(provider_id) = &attempt.confirmed else {
            return Ok(match self.unheard_wait(attempt) {
                Some(wait) => InDoubt::Wait(wait),
                None => InDoubt::None,
            });
        };
        self.metrics.duplicate("outbound");
        tracing::info!(
            attempt = attempt.number,
            part = attempt.part,
            "an earlier attempt reached Meta (its status came back); not sent again"
        );
        tracing::Span::current().record("provider_ref", crate::logging::provider_ref(provider_id));
        if sent_parts.len() <= attempt.part {
            sent_parts.resize(attempt.part + 1, None);
        }
        sent_parts[attempt.part] = Some(provider_id.clone());
        // The progress is written when parts may follow (their number is known only after
        // the checks): their delivery must find this one sent. For the last part, as the
        // send loop does (decision 0111).
        let again = attempt.number > 1 || !attempt.last;
        *early = self
            .part_sent(r, again, sent_parts, attempt.part, early.take())
            .await?;
        Ok(if attempt.last {
            InDoubt::AllSent
        } else {
            InDoubt::None
        })
    }

    /// A message went out: counted, and on WhatsApp an operator's (or the API's) service
    /// message took the conversation back from Meta's agent (decision 0065).
    pub(super) async fn relayed(
        &self,
        job: &OutboundJob,
        meta: &ConversationMeta,
        message: &StoredMessage,
    ) -> Result<(), SendError> {
        self.metrics
            .relayed(direction::OUTBOUND, meta.account.channel().name());
        if matches!(meta.account, AccountRef::WhatsApp(_))
            && matches!(message.origin, Origin::Operator | Origin::Api)
            && !went_as_template(message)
        {
            super::super::handover::answered_on_whatsapp(&self.store, meta, &job.tenant_id).await?;
        }
        Ok(())
    }
}
