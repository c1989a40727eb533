//! Per-tenant usage counters and plan quotas.
//!
//! Each tenant has one counters item per UTC calendar month (`T#<t>` / `USAGE#<yyyy-mm>`):
//! messages in and out per channel, their totals, and how many inbound messages arrived over
//! the inbound quota. Counters are incremented with atomic `ADD`s **in the same transaction
//! that stores the message** ([`Conversations::store_message_with`]), so a redelivered
//! message (whose conditional put fails) is never counted twice, and a refused send is not
//! counted at all.
//!
//! [`Conversations::store_message_with`]: crate::conversation::Conversations::store_message_with
//!
//! A tenant's [`Plan`] (`T#<t>` / `PLAN`) sets its monthly limits; without one,
//! [`DEFAULT_PLAN`] applies.
//! - Outbound (operator replies, public API sends) over the limit is refused: the counter's
//!   increment carries the condition `out_total < limit`, so concurrent sends can never
//!   together pass the limit. The refusal is a [`QuotaExceeded`] naming the quota, the limit
//!   and when it resets.
//! - Inbound is never dropped: a customer message over the inbound limit is stored, relayed,
//!   counted, and also counted in `in_over_quota` (with a warning naming the tenant).
//!
//! What counts: new customer messages and postbacks (in), operator replies and API sends
//! (out). Statuses, reactions, edits and deletions are not messages and never count. Echoes
//! of what the business sent from Meta's own apps are not counted either: they did not go
//! through Wappline's send path, and a quota cannot refuse what was already sent.
//!
//! Layout: [`month`] (the UTC calendar month counters are kept by), [`plan`] (plans, the
//! quota refusal, reading and setting a tenant's plan), [`counters`] (counting messages in
//! the transaction that stores them, and refusing sends over quota) and [`report`] (a
//! month's usage as the admin API shows it). Everything public is re-exported here.

pub mod counters;
pub mod month;
pub mod plan;
pub mod report;

use std::sync::Arc;

use crate::ids::TenantId;
use crate::store::{Item, StoreError, Table, TableStore};

pub use counters::{CountError, Counted, Written};
pub use month::UsageMonth;
pub use plan::{Plan, QuotaExceeded};
pub use report::{ChannelCounts, DayCount, UsageReport};

/// Sort key of a tenant's plan, in its root partition.
pub const PLAN_SK: &str = "PLAN";
/// Sort-key prefix of a tenant's monthly counters: `USAGE#<yyyy-mm>`.
pub const USAGE_SK_PREFIX: &str = "USAGE#";
/// The plan of a tenant that has none set: a starter allowance that a normal small business
/// does not reach, and that stops a runaway integration from sending without bound.
pub const DEFAULT_PLAN: Plan = Plan {
    monthly_outbound: Some(10_000),
    monthly_inbound: Some(50_000),
};
/// The name of the outbound quota in errors and reports.
pub const OUTBOUND_QUOTA: &str = "monthly_outbound_messages";
/// The name of the inbound quota in reports and logs.
pub const INBOUND_QUOTA: &str = "monthly_inbound_messages";
/// Counters are kept this long after their month ends (a year of history, plus slack).
pub const USAGE_KEEP_SECS: i64 = 400 * 86_400;
/// Largest limit a plan may set (keeps every count inside the store's i64 numbers).
pub const MAX_LIMIT: u64 = 1_000_000_000_000;

/// Counter attributes of the usage item.
pub mod attr {
    pub const IN_WHATSAPP: &str = "in_whatsapp";
    pub const IN_INSTAGRAM: &str = "in_instagram";
    pub const OUT_WHATSAPP: &str = "out_whatsapp";
    pub const OUT_INSTAGRAM: &str = "out_instagram";
    pub const IN_TOTAL: &str = "in_total";
    pub const OUT_TOTAL: &str = "out_total";
    pub const IN_OVER_QUOTA: &str = "in_over_quota";

    /// A day's counter on the month's item (`in_d05`, `out_d31`): the console's chart of
    /// messages per day. Same item, same update, no extra write.
    pub fn day(inbound: bool, day: u32) -> String {
        format!("{}_d{day:02}", if inbound { "in" } else { "out" })
    }
}

/// The day of the month (1-31, UTC) of Unix seconds `now`.
pub fn day_of_month(now: i64) -> u32 {
    let (_, _, d) = crate::clock::civil_from_days(now.div_euclid(86_400));
    u32::try_from(d).unwrap_or(1)
}

#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn limit_i64(limit: u64) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

fn count(item: Option<&Item>, name: &str) -> u64 {
    item.and_then(|i| i.get_n(name))
        .map_or(0, |n| u64::try_from(n).unwrap_or(0))
}

/// Tenant usage: plans, counters, reports. Build once per process.
#[derive(Clone)]
pub struct Usage {
    store: Arc<dyn TableStore>,
}

impl Usage {
    pub fn new(store: Arc<dyn TableStore>) -> Self {
        Usage { store }
    }

    async fn counters(
        &self,
        tenant: &TenantId,
        month: UsageMonth,
    ) -> Result<Option<Item>, UsageError> {
        Ok(self
            .store
            .get(Table::Data, &month.usage_key(tenant))
            .await?)
    }
}

/// What the usage tests share: a tenant with one WhatsApp conversation on embedded adapters.
#[cfg(test)]
mod testing {
    use super::*;
    use crate::app::Platform;
    use crate::conversation::{
        ConversationId, Conversations, Direction, MessageRef, NewMessage, Origin,
    };
    use crate::ids::{InstagramAccountId, PhoneNumberId};
    use crate::meta::{AccountRef, Content, CustomerId, CustomerRef, WhatsAppPhone};

    pub(crate) const NOV_2026: i64 = 1_795_000_000; // 2026-11-17
    pub(crate) const WA: &str = "106540352242922";
    pub(crate) const IG: &str = "17841405822304914";

    pub(crate) fn wa() -> AccountRef {
        AccountRef::WhatsApp(PhoneNumberId::parse(WA).unwrap())
    }

    pub(crate) fn ig() -> AccountRef {
        AccountRef::Instagram(InstagramAccountId::parse(IG).unwrap())
    }

    pub(crate) struct World {
        pub(crate) usage: Usage,
        pub(crate) conversations: Conversations,
        pub(crate) tenant: TenantId,
        pub(crate) conversation: ConversationId,
        pub(crate) _dir: tempfile::TempDir,
    }

    pub(crate) async fn world() -> World {
        let dir = tempfile::tempdir().unwrap();
        let platform = Platform::embedded(dir.path()).unwrap();
        let tenant = TenantId::generate();
        let conversations = Conversations::new(
            tenant.clone(),
            platform.store.clone(),
            platform.envelope.clone(),
        );
        let customer = CustomerRef::new(CustomerId::WhatsAppPhone(
            WhatsAppPhone::parse("16505551234").unwrap(),
        ));
        let conversation = conversations
            .record_customer(&wa(), &customer, None, 30)
            .await
            .unwrap();
        World {
            usage: Usage::new(platform.store.clone()),
            conversations,
            tenant,
            conversation,
            _dir: dir,
        }
    }

    pub(crate) fn message(id: &str, direction: Direction, origin: Origin) -> NewMessage {
        NewMessage::from_provider(
            id,
            direction,
            origin,
            Content::Text {
                body: "hello".into(),
            },
            NOV_2026,
            None,
        )
    }

    pub(crate) fn out(id: &str) -> NewMessage {
        message(id, Direction::Outbound, Origin::Api)
    }

    impl World {
        pub(crate) async fn send(
            &self,
            id: &str,
            now: i64,
        ) -> Result<(MessageRef, bool), CountError> {
            self.usage
                .store_outbound(
                    &self.conversations,
                    &wa(),
                    &self.conversation,
                    out(id),
                    30,
                    now,
                )
                .await
                .map(|(at, counted)| (at, counted.is_some()))
        }

        pub(crate) async fn receive(&self, account: &AccountRef, id: &str) -> (MessageRef, bool) {
            let m = message(id, Direction::Inbound, Origin::Customer);
            self.usage
                .store_inbound(
                    &self.conversations,
                    account,
                    &self.conversation,
                    m,
                    30,
                    NOV_2026,
                    crate::conversation::IndexLookup::First,
                )
                .await
                .map(|(at, counted)| (at, counted.is_some()))
                .unwrap()
        }

        pub(crate) async fn report(&self, month: &str) -> UsageReport {
            self.usage
                .report(&self.tenant, UsageMonth::parse(month).unwrap())
                .await
                .unwrap()
        }
    }
}
