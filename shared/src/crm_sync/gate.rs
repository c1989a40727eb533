//! What lets one process at a time post into a portal, at a pace the portal accepts, whatever
//! the number of processes (decision 0023). Both live in the store, in the tenant's `CRMOUT`
//! partition next to the staged operations:
//!
//! - [`PortalLease`]: who flushes the portal's outbox now. A conditional write with an expiry,
//!   so a crashed holder blocks nobody for longer than the lease.
//! - [`PortalLimiter`]: the portal's request budget, a token bucket (Bitrix24's documented
//!   limit is a leaky bucket per portal: 2 requests/s after a burst of 50) shared by every
//!   process; `QUERY_LIMIT_EXCEEDED` and `OPERATION_TIME_LIMIT` answers block it for their
//!   retry time, so no process tries again before.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::now_secs;
use crate::ids::TenantId;
use crate::store::{AttrValue, Condition, Item, Key, StoreError, Table, TableStore, TTL_ATTR};

use super::outbox::Outbox;

const LEASE_SK: &str = "~lease";
const RATE_SK: &str = "~rate";
const HOLDER: &str = "holder";
const UNTIL_MS: &str = "until_ms";
const MILLI_TOKENS: &str = "milli_tokens";
const AT_MS: &str = "at_ms";
const BLOCKED_UNTIL_MS: &str = "blocked_until_ms";
/// Limiter and lease items are dropped a day after their last use.
const STATE_TTL_SECS: i64 = 24 * 3600;

/// The portal's flush lease.
#[derive(Clone)]
pub struct PortalLease {
    store: Arc<dyn TableStore>,
}

impl PortalLease {
    pub fn new(store: Arc<dyn TableStore>) -> Self {
        PortalLease { store }
    }

    fn key(tenant: &TenantId) -> Key {
        Key::new(Outbox::partition(tenant), LEASE_SK)
    }

    /// Takes (or extends) the lease for `holder` until `now_ms + ttl`; false when another
    /// holder's lease is still running.
    pub async fn acquire(
        &self,
        tenant: &TenantId,
        holder: &str,
        now_ms: i64,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let item = Item::new(&Self::key(tenant))
            .with(HOLDER, holder)
            .with(UNTIL_MS, now_ms + ttl.as_millis() as i64)
            .with(TTL_ATTR, now_secs() + STATE_TTL_SECS);
        let condition = Condition::Or(vec![
            Condition::NotExists,
            Condition::LessThan(UNTIL_MS.into(), AttrValue::N(now_ms)),
            Condition::Equals(HOLDER.into(), AttrValue::S(holder.to_owned())),
        ]);
        match self.store.put(Table::Data, item, Some(condition)).await {
            Ok(()) => Ok(true),
            Err(e) if e.is_condition_failed() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Gives the lease up (if still ours).
    pub async fn release(&self, tenant: &TenantId, holder: &str) -> Result<(), StoreError> {
        match self
            .store
            .delete(
                Table::Data,
                &Self::key(tenant),
                Some(Condition::Equals(
                    HOLDER.into(),
                    AttrValue::S(holder.to_owned()),
                )),
            )
            .await
        {
            Err(e) if e.is_condition_failed() => Ok(()),
            other => other,
        }
    }
}

/// The portal's shared request budget.
#[derive(Clone)]
pub struct PortalLimiter {
    store: Arc<dyn TableStore>,
    per_second: f64,
    burst: f64,
}

impl PortalLimiter {
    /// `per_second` requests on average, `burst` at once.
    pub fn new(store: Arc<dyn TableStore>, per_second: f64, burst: u32) -> Self {
        PortalLimiter {
            store,
            per_second: per_second.max(0.01),
            burst: f64::from(burst.max(1)),
        }
    }

    fn key(tenant: &TenantId) -> Key {
        Key::new(Outbox::partition(tenant), RATE_SK)
    }

    /// Takes one request from the portal's budget at `now_ms`, or says how long until one is
    /// free (or the block ends). Optimistic: the write is conditional on the state read.
    pub async fn try_acquire(
        &self,
        tenant: &TenantId,
        now_ms: i64,
    ) -> Result<Result<(), Duration>, StoreError> {
        let key = Self::key(tenant);
        for _ in 0..8 {
            let live = self.store.get(Table::Data, &key).await?;
            let (tokens, blocked_until, condition) = match &live {
                None => (self.burst, 0, Condition::NotExists),
                Some(item) => {
                    let at = item.get_n(AT_MS).unwrap_or(now_ms);
                    let stored = item.get_n(MILLI_TOKENS).unwrap_or(0) as f64 / 1000.0;
                    let refill = (now_ms - at).max(0) as f64 / 1000.0 * self.per_second;
                    (
                        (stored + refill).min(self.burst),
                        item.get_n(BLOCKED_UNTIL_MS).unwrap_or(0),
                        Condition::Equals(AT_MS.into(), AttrValue::N(at)),
                    )
                }
            };
            if now_ms < blocked_until {
                return Ok(Err(Duration::from_millis((blocked_until - now_ms) as u64)));
            }
            if tokens < 1.0 {
                let wait = (1.0 - tokens) / self.per_second;
                return Ok(Err(
                    Duration::from_secs_f64(wait).max(Duration::from_millis(1))
                ));
            }
            let item = Item::new(&key)
                .with(MILLI_TOKENS, ((tokens - 1.0) * 1000.0) as i64)
                .with(AT_MS, now_ms)
                .with(BLOCKED_UNTIL_MS, blocked_until)
                .with(TTL_ATTR, now_secs() + STATE_TTL_SECS);
            match self.store.put(Table::Data, item, Some(condition)).await {
                Ok(()) => return Ok(Ok(())),
                Err(e) if e.is_condition_failed() => continue,
                Err(e) => return Err(e),
            }
        }
        // Heavy contention: let the caller wait one slot.
        Ok(Err(Duration::from_secs_f64(1.0 / self.per_second)))
    }

    /// The portal said it is over its limit: nobody calls it before `now_ms + retry_after`,
    /// and the budget starts empty after that.
    pub async fn block(
        &self,
        tenant: &TenantId,
        now_ms: i64,
        retry_after: Duration,
    ) -> Result<(), StoreError> {
        let until = now_ms + retry_after.as_millis() as i64;
        let item = Item::new(&Self::key(tenant))
            .with(MILLI_TOKENS, 0i64)
            .with(AT_MS, until)
            .with(BLOCKED_UNTIL_MS, until)
            .with(TTL_ATTR, now_secs() + STATE_TTL_SECS);
        // Never shorten a longer block someone else set.
        match self
            .store
            .put(
                Table::Data,
                item,
                Some(Condition::Or(vec![
                    Condition::NotExists,
                    Condition::AttrNotExists(BLOCKED_UNTIL_MS.into()),
                    Condition::LessThan(BLOCKED_UNTIL_MS.into(), AttrValue::N(until)),
                ])),
            )
            .await
        {
            Err(e) if e.is_condition_failed() => Ok(()),
            other => other,
        }
    }
}
