//! A tenant's usage in one month as the admin API shows it: the counters per direction and
//! channel, the plan in force and what is left of the outbound quota.

use serde::Serialize;

use super::{attr, count, Plan, Usage, UsageError, UsageMonth, DEFAULT_PLAN};
use crate::clock::rfc3339;
use crate::ids::TenantId;

/// Messages of one direction in a month, per channel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ChannelCounts {
    pub whatsapp: u64,
    pub instagram: u64,
    pub total: u64,
}

/// A tenant's usage in one month, with its plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UsageReport {
    pub month: UsageMonth,
    pub inbound: ChannelCounts,
    pub outbound: ChannelCounts,
    /// Inbound messages that arrived over the inbound quota (relayed all the same).
    pub in_over_quota: u64,
    pub plan: Plan,
    /// True when the tenant has no plan of its own and [`DEFAULT_PLAN`] applies.
    pub default_plan: bool,
    /// Sends left this month under the outbound quota (`None`: unlimited).
    pub outbound_remaining: Option<u64>,
    /// When the month's counters restart: ISO-8601 UTC, and Unix seconds.
    pub resets_at: String,
    pub resets_at_unix: i64,
}

impl Usage {
    /// The tenant's usage in `month` (the month so far, for the current one).
    pub async fn report(
        &self,
        tenant: &TenantId,
        month: UsageMonth,
    ) -> Result<UsageReport, UsageError> {
        let stored = self.stored_plan(tenant).await?;
        let plan = stored.unwrap_or(DEFAULT_PLAN);
        let item = self.counters(tenant, month).await?;
        let item = item.as_ref();
        let outbound = ChannelCounts {
            whatsapp: count(item, attr::OUT_WHATSAPP),
            instagram: count(item, attr::OUT_INSTAGRAM),
            total: count(item, attr::OUT_TOTAL),
        };
        Ok(UsageReport {
            month,
            inbound: ChannelCounts {
                whatsapp: count(item, attr::IN_WHATSAPP),
                instagram: count(item, attr::IN_INSTAGRAM),
                total: count(item, attr::IN_TOTAL),
            },
            in_over_quota: count(item, attr::IN_OVER_QUOTA),
            outbound_remaining: plan
                .monthly_outbound
                .map(|l| l.saturating_sub(outbound.total)),
            outbound,
            plan,
            default_plan: stored.is_none(),
            resets_at: rfc3339(month.resets_at()),
            resets_at_unix: month.resets_at(),
        })
    }
}

/// One day's messages (UTC), for the console's chart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DayCount {
    pub day: u32,
    pub inbound: u64,
    pub outbound: u64,
}

impl Usage {
    /// Every day of `month`, with its counts (zero for days without messages, and for days
    /// counted before per-day counters existed).
    pub async fn daily(
        &self,
        tenant: &TenantId,
        month: UsageMonth,
    ) -> Result<Vec<DayCount>, UsageError> {
        let item = self.counters(tenant, month).await?;
        let days = (month.next().starts_at() - month.starts_at()) / 86_400;
        Ok((1..=u32::try_from(days).unwrap_or(31))
            .map(|day| DayCount {
                day,
                inbound: count(item.as_ref(), &attr::day(true, day)),
                outbound: count(item.as_ref(), &attr::day(false, day)),
            })
            .collect())
    }
}
