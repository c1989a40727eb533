//! Per-tenant usage counters and plan quotas.
//!
//! Each tenant has one counters item per UTC calendar month (`T#<t>` / `USAGE#<yyyy-mm>`):
//! messages in and out per channel, their totals, and how many inbound messages arrived over
//! the inbound quota. Counters are incremented with atomic `ADD`s **in the same transaction
//! that stores the message** ([`Conversations::store_message_with`]), so a redelivered
//! message (whose conditional put fails) is never counted twice, and a refused send is not
//! counted at all.
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

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clock::now_secs;
use crate::clock::rfc3339;
use crate::conversation::{
    ConversationError, ConversationId, Conversations, MessageRef, NewMessage, StoreOutcome,
};
use crate::ids::TenantId;
use crate::meta::AccountRef;
use crate::store::{
    AttrValue, Condition, Item, Key, StoreError, Table, TableStore, Update, WriteOp, TTL_ATTR,
};

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
}

/// Retries of a counted write the backend could not apply for a passing reason (DynamoDB
/// cancels concurrent transactions on the same counter item: a conflict, not a refusal).
const CONFLICT_RETRIES: u32 = 3;

#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A send refused because the tenant's monthly quota is used up.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("the {quota} quota of {limit} is used up ({used} this month); it resets at {}", rfc3339(*resets_at))]
pub struct QuotaExceeded {
    /// Which quota ([`OUTBOUND_QUOTA`]).
    pub quota: &'static str,
    pub limit: u64,
    /// What the month's counter holds.
    pub used: u64,
    /// Unix seconds of the first instant of the next month (UTC), when the counter restarts.
    pub resets_at: i64,
}

impl QuotaExceeded {
    /// `resets_at` as ISO-8601 UTC (`2026-12-01T00:00:00Z`).
    pub fn resets_at_iso(&self) -> String {
        rfc3339(self.resets_at)
    }

    /// Whole seconds from `now` until the reset (at least 1), for `Retry-After`.
    pub fn retry_after_secs(&self, now: i64) -> u64 {
        u64::try_from(self.resets_at.saturating_sub(now))
            .unwrap_or(0)
            .max(1)
    }
}

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

/// A UTC calendar month, written `yyyy-mm`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UsageMonth {
    year: i32,
    month: u8,
}

impl UsageMonth {
    pub fn new(year: i32, month: u8) -> Result<Self, UsageError> {
        if !(1970..=9998).contains(&year) || !(1..=12).contains(&month) {
            return Err(UsageError::Invalid(format!(
                "month: {year:04}-{month:02} is not a month from 1970-01 to 9998-12"
            )));
        }
        Ok(UsageMonth { year, month })
    }

    /// Parses `yyyy-mm` (exactly: `2026-11`).
    pub fn parse(s: &str) -> Result<Self, UsageError> {
        let bad = || UsageError::Invalid(format!("month: {s:?} is not yyyy-mm (e.g. 2026-11)"));
        let b = s.as_bytes();
        if b.len() != 7
            || b[4] != b'-'
            || !b
                .iter()
                .enumerate()
                .all(|(i, c)| i == 4 || c.is_ascii_digit())
        {
            return Err(bad());
        }
        let year: i32 = s[..4].parse().map_err(|_| bad())?;
        let month: u8 = s[5..].parse().map_err(|_| bad())?;
        Self::new(year, month)
    }

    /// The month that `now` (Unix seconds) falls in, UTC.
    pub fn current(now: i64) -> Self {
        let (year, month) = civil_from_days(now.div_euclid(86_400));
        UsageMonth {
            year: year.clamp(1970, 9998) as i32,
            month: month as u8,
        }
    }

    pub fn year(&self) -> i32 {
        self.year
    }

    pub fn month(&self) -> u8 {
        self.month
    }

    /// The month after this one.
    pub fn next(&self) -> Self {
        if self.month == 12 {
            UsageMonth {
                year: self.year + 1,
                month: 1,
            }
        } else {
            UsageMonth {
                year: self.year,
                month: self.month + 1,
            }
        }
    }

    /// Unix seconds of the month's first instant (UTC).
    pub fn starts_at(&self) -> i64 {
        days_from_civil(i64::from(self.year), i64::from(self.month)) * 86_400
    }

    /// Unix seconds of the first instant of the next month (UTC): when counters restart.
    pub fn resets_at(&self) -> i64 {
        self.next().starts_at()
    }

    fn usage_key(&self, tenant: &TenantId) -> Key {
        Key::new(tenant.partition(), format!("{USAGE_SK_PREFIX}{self}"))
    }
}

impl fmt::Display for UsageMonth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

impl Serialize for UsageMonth {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for UsageMonth {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        UsageMonth::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Days since 1970-01-01 of the first day of `month` in `year` (Howard Hinnant's
/// days_from_civil, day 1).
fn days_from_civil(year: i64, month: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Year and month of a day since 1970-01-01 (Howard Hinnant's civil_from_days).
fn civil_from_days(days: i64) -> (i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m)
}

/// A tenant's monthly limits; `None` is unlimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// Messages Wappline may send per month (operator replies and API sends); more are refused.
    pub monthly_outbound: Option<u64>,
    /// Customer messages per month; more are still relayed, and flagged as over quota.
    pub monthly_inbound: Option<u64>,
}

impl Plan {
    pub fn validate(&self) -> Result<(), UsageError> {
        for (name, limit) in [
            ("monthly_outbound", self.monthly_outbound),
            ("monthly_inbound", self.monthly_inbound),
        ] {
            if limit.is_some_and(|l| l > MAX_LIMIT) {
                return Err(UsageError::Invalid(format!(
                    "{name}: at most {MAX_LIMIT}, or null for unlimited"
                )));
            }
        }
        Ok(())
    }
}

impl Default for Plan {
    fn default() -> Self {
        DEFAULT_PLAN
    }
}

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

#[derive(Clone, Copy, PartialEq, Eq)]
enum Flow {
    In,
    Out,
}

fn channel_attr(flow: Flow, account: &AccountRef) -> &'static str {
    match (flow, account) {
        (Flow::In, AccountRef::WhatsApp(_)) => attr::IN_WHATSAPP,
        (Flow::In, AccountRef::Instagram(_)) => attr::IN_INSTAGRAM,
        (Flow::Out, AccountRef::WhatsApp(_)) => attr::OUT_WHATSAPP,
        (Flow::Out, AccountRef::Instagram(_)) => attr::OUT_INSTAGRAM,
    }
}

fn limit_i64(limit: u64) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

fn count(item: Option<&Item>, name: &str) -> u64 {
    item.and_then(|i| i.get_n(name))
        .map_or(0, |n| u64::try_from(n).unwrap_or(0))
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

/// Tenant usage: plans, counters, reports. Build once per process.
#[derive(Clone)]
pub struct Usage {
    store: Arc<dyn TableStore>,
}

impl Usage {
    pub fn new(store: Arc<dyn TableStore>) -> Self {
        Usage { store }
    }

    fn plan_key(tenant: &TenantId) -> Key {
        Key::new(tenant.partition(), PLAN_SK)
    }

    /// The tenant's plan as stored, `None` when it has none of its own.
    pub async fn stored_plan(&self, tenant: &TenantId) -> Result<Option<Plan>, UsageError> {
        let Some(item) = self.store.get(Table::Data, &Self::plan_key(tenant)).await? else {
            return Ok(None);
        };
        // An absent limit attribute is unlimited.
        let limit = |name: &str| item.get_n(name).map(|n| u64::try_from(n).unwrap_or(0));
        Ok(Some(Plan {
            monthly_outbound: limit("monthly_outbound"),
            monthly_inbound: limit("monthly_inbound"),
        }))
    }

    /// The plan in force for the tenant: its own, or [`DEFAULT_PLAN`].
    pub async fn plan(&self, tenant: &TenantId) -> Result<Plan, UsageError> {
        Ok(self.stored_plan(tenant).await?.unwrap_or(DEFAULT_PLAN))
    }

    /// Sets the tenant's plan (replacing any). It applies to the counters of the current
    /// month at once: lowering a limit below what is used refuses further sends this month.
    pub async fn set_plan(&self, tenant: &TenantId, plan: Plan) -> Result<(), UsageError> {
        plan.validate()?;
        let mut item = Item::new(&Self::plan_key(tenant)).with("updated_at", now_secs());
        if let Some(l) = plan.monthly_outbound {
            item.set("monthly_outbound", limit_i64(l));
        }
        if let Some(l) = plan.monthly_inbound {
            item.set("monthly_inbound", limit_i64(l));
        }
        self.store.put(Table::Data, item, None).await?;
        Ok(())
    }

    /// Removes the tenant's own plan: [`DEFAULT_PLAN`] applies again.
    pub async fn clear_plan(&self, tenant: &TenantId) -> Result<(), UsageError> {
        self.store
            .delete(Table::Data, &Self::plan_key(tenant), None)
            .await?;
        Ok(())
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

    /// The counter increment for one message, as a transaction write. `quota`: the limit the
    /// write must stay under (its condition); `over_quota`: also count it as over quota.
    fn increment(
        tenant: &TenantId,
        month: UsageMonth,
        flow: Flow,
        account: &AccountRef,
        quota: Option<u64>,
        over_quota: bool,
    ) -> WriteOp {
        let total = match flow {
            Flow::In => attr::IN_TOTAL,
            Flow::Out => attr::OUT_TOTAL,
        };
        let mut update = Update::new()
            .add(channel_attr(flow, account), 1)
            .add(total, 1)
            .set("month", month.to_string())
            .set(TTL_ATTR, month.resets_at() + USAGE_KEEP_SECS);
        if over_quota {
            update = update.add(attr::IN_OVER_QUOTA, 1);
        }
        WriteOp::Update {
            table: Table::Data,
            key: month.usage_key(tenant),
            update,
            condition: quota.map(|l| under(total, l)),
        }
    }

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
    /// transaction. `Ok((place, new))`; a redelivery is `new == false` and counts nothing;
    /// over quota, nothing is stored and the error says which quota and when it resets.
    pub async fn store_outbound(
        &self,
        conversations: &Conversations,
        account: &AccountRef,
        conversation: &ConversationId,
        message: NewMessage,
        retention_days: u32,
        now: i64,
    ) -> Result<(MessageRef, bool), CountError> {
        let tenant = conversations.tenant();
        let month = UsageMonth::current(now);
        let limit = self.plan(tenant).await?.monthly_outbound;
        let op = Self::increment(tenant, month, Flow::Out, account, limit, false);
        match store_counted(
            conversations,
            account,
            conversation,
            &message,
            retention_days,
            op,
        )
        .await?
        {
            StoreOutcome::New(at) => Ok((at, true)),
            StoreOutcome::Existing(at) => Ok((at, false)),
            StoreOutcome::Refused { .. } => {
                let limit = limit.unwrap_or(0);
                Err(self.outbound_refusal(tenant, month, limit).await?.into())
            }
        }
    }

    /// Stores a customer's message and counts it. Never refused for quota: over the inbound
    /// limit it is also counted in `in_over_quota` (exactly: the first attempt is conditioned
    /// on being under the limit, the second counts it as over).
    pub async fn store_inbound(
        &self,
        conversations: &Conversations,
        account: &AccountRef,
        conversation: &ConversationId,
        message: NewMessage,
        retention_days: u32,
        now: i64,
    ) -> Result<(MessageRef, bool), CountError> {
        let tenant = conversations.tenant();
        let month = UsageMonth::current(now);
        let limit = self.plan(tenant).await?.monthly_inbound;
        let under_limit = Self::increment(tenant, month, Flow::In, account, limit, false);
        let first = store_counted(
            conversations,
            account,
            conversation,
            &message,
            retention_days,
            under_limit,
        )
        .await?;
        let outcome = match first {
            StoreOutcome::Refused { .. } => {
                tracing::warn!(
                    %tenant,
                    quota = INBOUND_QUOTA,
                    limit = limit.unwrap_or(0),
                    month = %month,
                    "inbound message over the tenant's quota; relayed and flagged"
                );
                let over = Self::increment(tenant, month, Flow::In, account, None, true);
                store_counted(
                    conversations,
                    account,
                    conversation,
                    &message,
                    retention_days,
                    over,
                )
                .await?
            }
            other => other,
        };
        match outcome {
            StoreOutcome::New(at) => Ok((at, true)),
            StoreOutcome::Existing(at) => Ok((at, false)),
            StoreOutcome::Refused { .. } => Err(ConversationError::Corrupt(
                "an unconditional counter write was refused".into(),
            )
            .into()),
        }
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
) -> Result<StoreOutcome, ConversationError> {
    let mut attempt = 0;
    loop {
        let result = conversations
            .store_message_with(
                account,
                conversation,
                message.clone(),
                retention_days,
                vec![op.clone()],
            )
            .await;
        match result {
            Err(ConversationError::Store(StoreError::Unavailable(_)))
                if attempt < CONFLICT_RETRIES =>
            {
                attempt += 1;
                let mut jitter = [0u8; 1];
                let _ = crate::crypto::random_bytes(&mut jitter);
                let wait = 20 * (1u64 << attempt) + u64::from(jitter[0] % 20);
                tokio::time::sleep(Duration::from_millis(wait)).await;
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::Platform;
    use crate::conversation::{Direction, Origin};
    use crate::ids::{InstagramAccountId, PhoneNumberId};
    use crate::meta::{Content, CustomerId, CustomerRef, WhatsAppPhone};

    const NOV_2026: i64 = 1_795_000_000; // 2026-11-17
    const WA: &str = "106540352242922";
    const IG: &str = "17841405822304914";

    fn wa() -> AccountRef {
        AccountRef::WhatsApp(PhoneNumberId::parse(WA).unwrap())
    }

    fn ig() -> AccountRef {
        AccountRef::Instagram(InstagramAccountId::parse(IG).unwrap())
    }

    struct World {
        usage: Usage,
        conversations: Conversations,
        tenant: TenantId,
        conversation: ConversationId,
        _dir: tempfile::TempDir,
    }

    async fn world() -> World {
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

    fn message(id: &str, direction: Direction, origin: Origin) -> NewMessage {
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

    fn out(id: &str) -> NewMessage {
        message(id, Direction::Outbound, Origin::Api)
    }

    impl World {
        async fn send(&self, id: &str, now: i64) -> Result<(MessageRef, bool), CountError> {
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
        }

        async fn receive(&self, account: &AccountRef, id: &str) -> (MessageRef, bool) {
            let m = message(id, Direction::Inbound, Origin::Customer);
            self.usage
                .store_inbound(
                    &self.conversations,
                    account,
                    &self.conversation,
                    m,
                    30,
                    NOV_2026,
                )
                .await
                .unwrap()
        }

        async fn report(&self, month: &str) -> UsageReport {
            self.usage
                .report(&self.tenant, UsageMonth::parse(month).unwrap())
                .await
                .unwrap()
        }
    }

    #[test]
    fn months_parse_and_reset_at_the_next_month() {
        let nov = UsageMonth::parse("2026-11").unwrap();
        assert_eq!(nov.to_string(), "2026-11");
        assert_eq!(UsageMonth::current(NOV_2026), nov);
        assert_eq!(rfc3339(nov.starts_at()), "2026-11-01T00:00:00Z");
        assert_eq!(rfc3339(nov.resets_at()), "2026-12-01T00:00:00Z");
        // December rolls over into January of the next year.
        let dec = UsageMonth::parse("2026-12").unwrap();
        assert_eq!(nov.next(), dec);
        assert_eq!(dec.next(), UsageMonth::parse("2027-01").unwrap());
        assert_eq!(rfc3339(dec.resets_at()), "2027-01-01T00:00:00Z");
        assert_eq!(dec.resets_at(), 1_798_761_600);
        // Leap February, and the instants around a month's edge.
        let feb = UsageMonth::parse("2028-02").unwrap();
        assert_eq!(rfc3339(feb.resets_at()), "2028-03-01T00:00:00Z");
        assert_eq!(UsageMonth::current(dec.resets_at() - 1), dec);
        assert_eq!(UsageMonth::current(dec.resets_at()), dec.next());
        assert_eq!(UsageMonth::current(0).to_string(), "1970-01");
        for bad in [
            "2026-13", "2026-00", "2026-1", "26-11", "2026/11", "2026-1x", "+026-11", "",
        ] {
            assert!(UsageMonth::parse(bad).is_err(), "{bad}");
        }
        let json = serde_json::to_string(&nov).unwrap();
        assert_eq!(json, "\"2026-11\"");
        assert_eq!(serde_json::from_str::<UsageMonth>(&json).unwrap(), nov);
    }

    #[test]
    fn quota_errors_say_which_quota_and_when_it_resets() {
        let e = QuotaExceeded {
            quota: OUTBOUND_QUOTA,
            limit: 2,
            used: 2,
            resets_at: UsageMonth::parse("2026-12").unwrap().resets_at(),
        };
        assert_eq!(
            e.to_string(),
            "the monthly_outbound_messages quota of 2 is used up (2 this month); it resets at 2027-01-01T00:00:00Z"
        );
        assert_eq!(e.retry_after_secs(e.resets_at - 90), 90);
        assert_eq!(e.retry_after_secs(e.resets_at + 5), 1);
    }

    #[tokio::test]
    async fn plans_default_until_set_and_validate() {
        let w = world().await;
        assert_eq!(w.usage.plan(&w.tenant).await.unwrap(), DEFAULT_PLAN);
        assert!(w.report("2026-11").await.default_plan);
        let plan = Plan {
            monthly_outbound: Some(5),
            monthly_inbound: None,
        };
        w.usage.set_plan(&w.tenant, plan).await.unwrap();
        assert_eq!(w.usage.plan(&w.tenant).await.unwrap(), plan);
        assert_eq!(
            w.usage.stored_plan(&TenantId::generate()).await.unwrap(),
            None
        );
        let too_big = Plan {
            monthly_outbound: Some(MAX_LIMIT + 1),
            monthly_inbound: None,
        };
        assert!(matches!(
            w.usage.set_plan(&w.tenant, too_big).await,
            Err(UsageError::Invalid(_))
        ));
        assert_eq!(w.usage.plan(&w.tenant).await.unwrap(), plan);
        w.usage.clear_plan(&w.tenant).await.unwrap();
        assert_eq!(w.usage.plan(&w.tenant).await.unwrap(), DEFAULT_PLAN);
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
