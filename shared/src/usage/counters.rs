//! Counting messages: the counter increment goes into the same transaction that stores the
//! message, so a redelivery counts nothing; outbound sends over the quota are refused
//! atomically (the increment is conditioned on the total staying under the limit), inbound
//! messages over it are stored all the same and flagged.

use super::plan::QuotaExceeded;
use super::{
    attr, count, limit_i64, Usage, UsageError, UsageMonth, INBOUND_QUOTA, OUTBOUND_QUOTA,
    USAGE_KEEP_SECS,
};
use crate::conversation::{
    over_passing_errors, ConversationError, ConversationId, Conversations, IndexLookup, MessageRef,
    NewMessage, Opened, StoreOutcome,
};
use crate::ids::TenantId;
use crate::meta::{AccountRef, CustomerRef};
use crate::store::{AttrValue, Condition, Table, Update, WriteOp, TTL_ATTR};

/// Why a counted message write did not happen.
#[derive(Debug, thiserror::Error)]
pub enum CountError {
    #[error(transparent)]
    Quota(#[from] QuotaExceeded),
    #[error(transparent)]
    Conversation(#[from] ConversationError),
    #[error(transparent)]
    Usage(#[from] UsageError),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flow {
    In,
    Out,
}

/// What storing one message added to its tenant's counters, to take back when the message
/// is removed again right after (decision 0130: the person's erasure began meanwhile), so
/// a message that is neither relayed nor sent is not counted, nor counted twice when its
/// event comes again after the erasure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Counted {
    flow: Flow,
    /// When it was counted (Unix seconds): the month and day below.
    at: i64,
    channel: &'static str,
    month: UsageMonth,
    day: String,
    over_quota: bool,
}

impl Counted {
    fn new(flow: Flow, account: &AccountRef, now: i64, over_quota: bool) -> Self {
        Counted {
            flow,
            at: now,
            channel: channel_attr(flow, account),
            month: UsageMonth::current(now),
            day: attr::day(flow == Flow::In, super::day_of_month(now)),
            over_quota,
        }
    }

    /// As kept on the message it counts (decision 0133): `in|out <seconds> 0|1`, the flow,
    /// when it was counted and whether over the inbound quota.
    fn note(&self) -> String {
        let flow = match self.flow {
            Flow::In => "in",
            Flow::Out => "out",
        };
        format!("{flow} {} {}", self.at, u8::from(self.over_quota))
    }

    /// The count [`Self::note`] wrote down for a message on `account`; None for anything
    /// else (never a count made up).
    fn from_note(note: &str, account: &AccountRef) -> Option<Self> {
        let mut parts = note.split(' ');
        let flow = match parts.next()? {
            "in" => Flow::In,
            "out" => Flow::Out,
            _ => return None,
        };
        let at = parts.next()?.parse().ok()?;
        let over_quota = match parts.next()? {
            "0" => false,
            "1" => true,
            _ => return None,
        };
        if parts.next().is_some() {
            return None;
        }
        Some(Counted::new(flow, account, at, over_quota))
    }

    fn total(&self) -> &'static str {
        match self.flow {
            Flow::In => attr::IN_TOTAL,
            Flow::Out => attr::OUT_TOTAL,
        }
    }

    /// `delta` (1 or -1) added to every counter this message counts in.
    fn counters(&self, delta: i64) -> Update {
        let mut update = Update::new()
            .add(self.channel, delta)
            .add(self.total(), delta)
            .add(&self.day, delta);
        if self.over_quota {
            update = update.add(attr::IN_OVER_QUOTA, delta);
        }
        update
    }

    /// The counter increment, as a transaction write. `quota`: the limit the write must
    /// stay under (its condition).
    fn added(&self, tenant: &TenantId, quota: Option<u64>) -> WriteOp {
        let update = self
            .counters(1)
            .set("month", self.month.to_string())
            .set(TTL_ATTR, self.month.resets_at() + USAGE_KEEP_SECS);
        WriteOp::Update {
            table: Table::Data,
            key: self.month.usage_key(tenant),
            update,
            condition: quota.map(|l| under(self.total(), l)),
        }
    }

    /// The counter write that takes this count back: every counter the increment added
    /// to, less one. Unconditioned: the removal it goes with carries the condition.
    fn taken_back(&self, tenant: &TenantId) -> WriteOp {
        WriteOp::Update {
            table: Table::Data,
            key: self.month.usage_key(tenant),
            update: self.counters(-1),
            condition: None,
        }
    }
}

fn channel_attr(flow: Flow, account: &AccountRef) -> &'static str {
    match (flow, account) {
        (Flow::In, AccountRef::WhatsApp(_)) => attr::IN_WHATSAPP,
        (Flow::In, AccountRef::Instagram(_)) => attr::IN_INSTAGRAM,
        (Flow::Out, AccountRef::WhatsApp(_)) => attr::OUT_WHATSAPP,
        (Flow::Out, AccountRef::Instagram(_)) => attr::OUT_INSTAGRAM,
    }
}

/// `total < limit`, where an absent counter is 0 (a limit of 0 never holds).
fn under(total_attr: &str, limit: u64) -> Condition {
    let less = Condition::LessThan(total_attr.into(), AttrValue::N(limit_i64(limit)));
    if limit == 0 {
        less
    } else {
        Condition::Or(vec![Condition::AttrNotExists(total_attr.into()), less])
    }
}

impl Usage {
    /// The refusal for the tenant's outbound quota in `month`, as the counter now stands.
    async fn outbound_refusal(
        &self,
        tenant: &TenantId,
        month: UsageMonth,
        limit: u64,
    ) -> Result<QuotaExceeded, UsageError> {
        let item = self.counters(tenant, month).await?;
        Ok(QuotaExceeded {
            quota: OUTBOUND_QUOTA,
            limit,
            used: count(item.as_ref(), attr::OUT_TOTAL),
            resets_at: month.resets_at(),
        })
    }

    /// Refuses early when the tenant's outbound quota is already used up this month (saves
    /// opening a conversation for a send that cannot go). Only a hint: the counted store
    /// decides atomically.
    pub async fn check_outbound(&self, tenant: &TenantId, now: i64) -> Result<(), CountError> {
        let Some(limit) = self.plan(tenant).await?.monthly_outbound else {
            return Ok(());
        };
        let month = UsageMonth::current(now);
        let item = self.counters(tenant, month).await?;
        if count(item.as_ref(), attr::OUT_TOTAL) >= limit {
            return Err(self.outbound_refusal(tenant, month, limit).await?.into());
        }
        Ok(())
    }

    /// Stores a message we are to send and counts it against the outbound quota, in one
    /// transaction. `Ok((place, counted))`; a redelivery is `counted == None` and counts
    /// nothing; over quota, nothing is stored and the error says which quota and when it
    /// resets.
    pub async fn store_outbound(
        &self,
        conversations: &Conversations,
        account: &AccountRef,
        conversation: &ConversationId,
        mut message: NewMessage,
        retention_days: u32,
        now: i64,
    ) -> Result<(MessageRef, Option<Counted>), CountError> {
        let tenant = conversations.tenant();
        let limit = self.plan(tenant).await?.monthly_outbound;
        let counted = Counted::new(Flow::Out, account, now, false);
        let op = counted.added(tenant, limit);
        message.written_with.count = Some(counted.note());
        match store_counted(
            conversations,
            account,
            conversation,
            &message,
            retention_days,
            op,
            IndexLookup::First,
        )
        .await?
        {
            StoreOutcome::New(at) => Ok((at, Some(counted))),
            StoreOutcome::Existing(at) => Ok((at, None)),
            StoreOutcome::Refused { .. } => {
                let limit = limit.unwrap_or(0);
                Err(self
                    .outbound_refusal(tenant, counted.month, limit)
                    .await?
                    .into())
            }
        }
    }

    /// Stores a customer's message and counts it. Never refused for quota: over the inbound
    /// limit it is also counted in `in_over_quota` (exactly: the first attempt is conditioned
    /// on being under the limit, the second counts it as over). `lookup`: whether the caller
    /// has just looked the message up by its provider id and found none.
    #[allow(clippy::too_many_arguments)]
    pub async fn store_inbound(
        &self,
        conversations: &Conversations,
        account: &AccountRef,
        conversation: &ConversationId,
        mut message: NewMessage,
        retention_days: u32,
        now: i64,
        lookup: IndexLookup,
    ) -> Result<(MessageRef, Option<Counted>), CountError> {
        let tenant = conversations.tenant();
        let limit = self.plan(tenant).await?.monthly_inbound;
        let mut counted = Counted::new(Flow::In, account, now, false);
        let under_limit = counted.added(tenant, limit);
        message.written_with.count = Some(counted.note());
        let first = store_counted(
            conversations,
            account,
            conversation,
            &message,
            retention_days,
            under_limit,
            lookup,
        )
        .await?;
        let outcome = match first {
            StoreOutcome::Refused { .. } => {
                tracing::warn!(
                    %tenant,
                    quota = INBOUND_QUOTA,
                    limit = limit.unwrap_or(0),
                    month = %counted.month,
                    "inbound message over the tenant's quota; relayed and flagged"
                );
                counted.over_quota = true;
                let over = counted.added(tenant, None);
                message.written_with.count = Some(counted.note());
                store_counted(
                    conversations,
                    account,
                    conversation,
                    &message,
                    retention_days,
                    over,
                    lookup,
                )
                .await?
            }
            other => other,
        };
        match outcome {
            StoreOutcome::New(at) => Ok((at, Some(counted))),
            StoreOutcome::Existing(at) => Ok((at, None)),
            StoreOutcome::Refused { .. } => Err(ConversationError::Corrupt(
                "an unconditional counter write was refused".into(),
            )
            .into()),
        }
    }
}

impl Usage {
    /// Removes a message this process has just stored and counted (and its provider-id
    /// index item), and takes its count back, in one transaction: a write that must not
    /// stay because the person's erasure began meanwhile (decisions 0124, 0125, 0128,
    /// 0130). Returns whether this call removed it; a message already gone (removed
    /// before, or by the erasure) takes nothing back.
    pub async fn unstore(
        &self,
        conversations: &Conversations,
        account: &AccountRef,
        at: &MessageRef,
        provider_message_id: &str,
        counted: &Counted,
    ) -> Result<bool, ConversationError> {
        let op = counted.taken_back(conversations.tenant());
        over_passing_errors(|| {
            conversations.unstore_message_with(account, at, provider_message_id, vec![op.clone()])
        })
        .await
    }
}

/// What one delivery wrote for a message, to remove again when the person's erasure began
/// meanwhile (decisions 0124, 0125, 0128).
pub struct Written<'a> {
    /// The message (removed with its provider-id index item).
    pub stored: &'a MessageRef,
    pub provider_message_id: &'a str,
    /// What storing it counted in the tenant's usage, taken back with it (decision 0130), so
    /// the message is counted once if it comes again after the erasure's cut.
    pub count: Option<&'a Counted>,
    /// The conversation, when this delivery opened it, with the customer it was opened
    /// for: removed too while it holds nothing else (decision 0131), so the person is not
    /// listed again with their name and number.
    pub opened: Option<(&'a Opened, &'a CustomerRef)>,
}

impl Usage {
    /// Removes what `written` says one delivery wrote on `account`: the message, with its
    /// count taken back when it was counted, then the conversation it opened.
    pub async fn remove_written(
        &self,
        conversations: &Conversations,
        account: &AccountRef,
        written: Written<'_>,
    ) -> Result<(), ConversationError> {
        let Written {
            stored,
            provider_message_id,
            count,
            opened,
        } = written;
        match (opened, count) {
            // One transaction where it can be (decision 0133).
            (Some((opened, customer)), count) => {
                let extra = count
                    .map(|c| vec![c.taken_back(conversations.tenant())])
                    .unwrap_or_default();
                conversations
                    .unstore_opened(
                        account,
                        stored,
                        provider_message_id,
                        extra,
                        opened,
                        customer,
                    )
                    .await?;
            }
            (None, Some(count)) => {
                self.unstore(conversations, account, stored, provider_message_id, count)
                    .await?;
            }
            (None, None) => {
                conversations
                    .unstore_message(account, stored, provider_message_id)
                    .await?;
            }
        }
        Ok(())
    }

    /// Removes the message at `stored` that an earlier delivery of its event wrote and did
    /// not remove again (decision 0132), with what that delivery wrote besides as the
    /// message says (decision 0133): its count taken back, the conversation it opened for
    /// `customer`. A message that went out keeps its count: it was sent (decision 0134).
    /// Returns whether a message was there.
    pub async fn remove_left(
        &self,
        conversations: &Conversations,
        account: &AccountRef,
        stored: &MessageRef,
        provider_message_id: &str,
        customer: &CustomerRef,
    ) -> Result<bool, ConversationError> {
        let Some((with, sent)) = conversations.written_with(stored).await? else {
            // Gone meanwhile: its index item may not be.
            conversations
                .unstore_message(account, stored, provider_message_id)
                .await?;
            return Ok(false);
        };
        let count = with
            .count
            .as_deref()
            .filter(|_| !sent)
            .and_then(|note| Counted::from_note(note, account));
        let written = Written {
            stored,
            provider_message_id,
            count: count.as_ref(),
            opened: with.opened.as_ref().map(|o| (o, customer)),
        };
        self.remove_written(conversations, account, written).await?;
        Ok(true)
    }
}

/// The message and its counter write in one transaction, retried briefly when the backend
/// reports a passing conflict (concurrent transactions on the same counter item).
async fn store_counted(
    conversations: &Conversations,
    account: &AccountRef,
    conversation: &ConversationId,
    message: &NewMessage,
    retention_days: u32,
    op: WriteOp,
    lookup: IndexLookup,
) -> Result<StoreOutcome, ConversationError> {
    over_passing_errors(|| {
        conversations.store_message_with(
            account,
            conversation,
            message.clone(),
            retention_days,
            vec![op.clone()],
            lookup,
        )
    })
    .await
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::usage::testing::*;
    use crate::usage::{ChannelCounts, Plan};

    /// The note a message keeps of its count reads back as the same count, on the account
    /// it was counted on; a note that is not one of ours reads as no count, so nothing is
    /// taken back that was never added (decision 0133).
    #[test]
    fn a_count_reads_back_from_its_note_and_nothing_else_does() {
        for (flow, account, over) in [
            (Flow::In, wa(), false),
            (Flow::In, ig(), true),
            (Flow::Out, wa(), false),
            (Flow::Out, ig(), false),
        ] {
            let counted = Counted::new(flow, &account, NOV_2026, over);
            let note = counted.note();
            assert_eq!(Counted::from_note(&note, &account), Some(counted), "{note}");
        }
        assert_eq!(
            Counted::new(Flow::In, &wa(), NOV_2026, true).note(),
            "in 1795000000 1"
        );
        for junk in [
            "",
            "in",
            "in 1795000000",
            "in x 0",
            "in 1795000000 2",
            "in 1795000000 0 0",
            "sideways 1795000000 0",
            "in  1795000000 0",
        ] {
            assert_eq!(Counted::from_note(junk, &wa()), None, "{junk:?}");
        }
    }

    #[tokio::test]
    async fn the_limit_is_reached_exactly_and_the_next_month_starts_over() {
        let w = world().await;
        let plan = Plan {
            monthly_outbound: Some(3),
            monthly_inbound: None,
        };
        w.usage.set_plan(&w.tenant, plan).await.unwrap();
        for i in 0..3 {
            let (_, new) = w.send(&format!("m{i}"), NOV_2026).await.unwrap();
            assert!(new);
        }
        let refused = w.send("m3", NOV_2026).await.unwrap_err();
        let CountError::Quota(q) = refused else {
            panic!("expected a quota refusal, got {refused:?}");
        };
        assert_eq!(
            q,
            QuotaExceeded {
                quota: OUTBOUND_QUOTA,
                limit: 3,
                used: 3,
                resets_at: UsageMonth::parse("2026-12").unwrap().starts_at(),
            }
        );
        // The refused message was not stored: it can be sent next month, as new.
        assert!(w
            .conversations
            .find_message(&wa(), "m3")
            .await
            .unwrap()
            .is_none());
        assert!(w.usage.check_outbound(&w.tenant, NOV_2026).await.is_err());
        let november = w.report("2026-11").await;
        assert_eq!(november.outbound.total, 3);
        assert_eq!(november.outbound.whatsapp, 3);
        assert_eq!(november.outbound_remaining, Some(0));
        let december = UsageMonth::parse("2026-12").unwrap().starts_at();
        w.usage.check_outbound(&w.tenant, december).await.unwrap();
        let (_, new) = w.send("m3", december).await.unwrap();
        assert!(new);
        assert_eq!(w.report("2026-12").await.outbound.total, 1);
        assert_eq!(w.report("2026-11").await.outbound.total, 3);
        // A limit of 0 refuses even the first send.
        w.usage
            .set_plan(
                &w.tenant,
                Plan {
                    monthly_outbound: Some(0),
                    monthly_inbound: None,
                },
            )
            .await
            .unwrap();
        let jan = UsageMonth::parse("2027-01").unwrap().starts_at();
        assert!(matches!(
            w.send("m4", jan).await,
            Err(CountError::Quota(QuotaExceeded {
                limit: 0,
                used: 0,
                ..
            }))
        ));
    }

    #[tokio::test]
    async fn duplicates_count_once() {
        let w = world().await;
        let (first, new) = w.send("dup", NOV_2026).await.unwrap();
        assert!(new);
        let (again, new) = w.send("dup", NOV_2026).await.unwrap();
        assert!(!new);
        assert_eq!(first, again);
        let (_, new) = w.receive(&wa(), "in-dup").await;
        assert!(new);
        let (_, new) = w.receive(&wa(), "in-dup").await;
        assert!(!new);
        let r = w.report("2026-11").await;
        assert_eq!(r.outbound.total, 1);
        assert_eq!(r.inbound.total, 1);
    }

    #[tokio::test]
    async fn concurrent_sends_never_pass_the_limit() {
        let w = Arc::new(world().await);
        w.usage
            .set_plan(
                &w.tenant,
                Plan {
                    monthly_outbound: Some(7),
                    monthly_inbound: None,
                },
            )
            .await
            .unwrap();
        let tasks: Vec<_> = (0..24)
            .map(|i| {
                let w = w.clone();
                tokio::spawn(async move { w.send(&format!("c{i}"), NOV_2026).await })
            })
            .collect();
        let (mut ok, mut refused) = (0, 0);
        for t in tasks {
            match t.await.unwrap() {
                Ok((_, true)) => ok += 1,
                Err(CountError::Quota(q)) => {
                    assert_eq!(q.used, 7);
                    refused += 1
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!((ok, refused), (7, 17));
        assert_eq!(w.report("2026-11").await.outbound.total, 7);
    }

    #[tokio::test]
    async fn inbound_over_quota_is_stored_counted_and_flagged() {
        let w = world().await;
        w.usage
            .set_plan(
                &w.tenant,
                Plan {
                    monthly_outbound: None,
                    monthly_inbound: Some(2),
                },
            )
            .await
            .unwrap();
        w.receive(&wa(), "i1").await;
        w.receive(&ig(), "i2").await;
        let (at, new) = w.receive(&wa(), "i3").await;
        assert!(new, "inbound over quota is never dropped");
        assert!(w.conversations.message(&at).await.unwrap().is_some());
        w.receive(&wa(), "i3").await; // redelivered: not counted again
        let r = w.report("2026-11").await;
        assert_eq!(
            r.inbound,
            ChannelCounts {
                whatsapp: 2,
                instagram: 1,
                total: 3
            }
        );
        assert_eq!(r.in_over_quota, 1);
        assert_eq!(r.outbound, ChannelCounts::default());
        // Unlimited outbound: nothing is refused, and nothing remains to report.
        assert_eq!(r.outbound_remaining, None);
        assert_eq!(r.resets_at, "2026-12-01T00:00:00Z");
    }
}
