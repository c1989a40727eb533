//! Plans and quotas: a tenant's monthly limits (its own, or [`DEFAULT_PLAN`]), how they are
//! read and set, and the refusal a send gets once the outbound quota is used up.

use serde::{Deserialize, Serialize};

use super::{limit_i64, Usage, UsageError, DEFAULT_PLAN, MAX_LIMIT, PLAN_SK};
use crate::clock::now_secs;
use crate::clock::rfc3339;
use crate::ids::TenantId;
use crate::store::{Item, Key, Table};

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

impl Usage {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::testing::*;
    use crate::usage::{UsageMonth, OUTBOUND_QUOTA};

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
}
