//! A part that could not go out now. Our own pacing only waits. An outage or one of Meta's
//! limits counts as one of the job's own attempts (decision 0069) and is retried after a
//! delay that grows with them; after the last, the operator is told and the job goes to the
//! dead-letter queue. A permanent refusal marks the message failed.

use super::{Context, OutboundWorker, SendError};
use crate::consumer::{Outcome, QueueRecord};
use crate::conversation::{Conversations, MessageStatus};
use crate::outbound::reasons::Disposition;
use crate::own_attempts::Failure;

impl OutboundWorker {
    /// A part could not go out now: retry later, or give up and tell the operator.
    /// `Ok(Outcome::Failed)` means given up: [`OutboundWorker::process`] dead-letters it.
    pub(super) async fn stopped(
        &self,
        cx: &Context<'_>,
        conversations: &Conversations,
        record: &QueueRecord,
        disposition: Disposition,
        part: usize,
        parts: usize,
    ) -> Result<Outcome, SendError> {
        let retry = &self.config.retry;
        let job = cx.job;
        let class = match &disposition {
            // Our own pacing, not a failure.
            Disposition::Paced(_) => None,
            Disposition::PairRate(_) => Some("pair_rate"),
            Disposition::RateLimited(_) => Some("rate_limited"),
            Disposition::Transient => Some("transient"),
            Disposition::Permanent(_) => Some("permanent"),
        };
        if let Some(class) = class {
            self.metrics.failure("outbound", class);
        }
        // Meta's outages and limits are failed attempts of the job's own; the receives the
        // queue counts are not (skips behind its group's head, pacing, crashes).
        let attempts = match &disposition {
            Disposition::Paced(_) | Disposition::Permanent(_) => record.receive_count,
            Disposition::PairRate(_) | Disposition::RateLimited(_) | Disposition::Transient => {
                match self.own.failed(&job.tenant_id, record).await {
                    Failure::Retry { attempts } => attempts,
                    Failure::Uncounted => record.receive_count.min(self.own.limit() - 1),
                    Failure::Exhausted { attempts } => {
                        return self
                            .give_up(job, attempts, class.unwrap_or("transient"))
                            .await;
                    }
                }
            }
        };
        let wait = match disposition {
            Disposition::Paced(wait) => wait,
            Disposition::PairRate(after) => {
                self.pacers
                    .recipient
                    .penalize(&super::recipient_key(cx.meta));
                retry.pair_rate(attempts, after)
            }
            Disposition::RateLimited(after) => {
                match &cx.meta.account {
                    crate::meta::AccountRef::WhatsApp(n) => self.pacers.whatsapp.penalize(n),
                    crate::meta::AccountRef::Instagram(a) => self.pacers.instagram.penalize(a),
                }
                retry.rate_limited(attempts, after)
            }
            Disposition::Transient => retry.transient(attempts),
            Disposition::Permanent(reason) => {
                let reason = if parts > 1 {
                    format!("part {} of {parts}: {reason}", part + 1)
                } else {
                    reason
                };
                return self.fail(job, conversations, reason).await;
            }
        };
        tracing::info!(
            tenant = %job.tenant_id,
            conversation = %job.conversation,
            attempts,
            wait_ms = wait.as_millis() as u64,
            "send deferred"
        );
        Ok(Outcome::RetryAfter(wait))
    }

    /// The job's last attempt failed: the operator is told, without marking the message
    /// failed, so a redrive from the dead-letter queue can still send it.
    async fn give_up(
        &self,
        job: &crate::outbound::OutboundJob,
        attempts: u32,
        class: &'static str,
    ) -> Result<Outcome, SendError> {
        let why = match class {
            "transient" => format!("Meta could not be reached after {attempts} attempts"),
            _ => format!("Meta kept refusing it for its rate limits after {attempts} attempts"),
        };
        self.enqueue_status(
            job,
            MessageStatus::Failed,
            Some(format!(
                "{why}; the message is kept for an administrator to resend"
            )),
            "send-gave-up",
        )
        .await?;
        tracing::warn!(
            tenant = %job.tenant_id,
            conversation = %job.conversation,
            attempts,
            class,
            "send still failing; job goes to the dead-letter queue"
        );
        Ok(Outcome::Failed)
    }
}
