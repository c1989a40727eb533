//! The portal's lease and request budget are shared through the store (decision 0023): two
//! processes (two instances on one store) never flush one portal at once, never exceed its
//! budget together, and both respect a block set by either after a rate-limit answer.

use std::time::Duration;

use wappline::crm_sync::gate::{PortalLease, PortalLimiter};
use wappline::ids::TenantId;

use crate::backends::Backend;
use crate::on_both_backends;

async fn two_processes_share_one_portal_budget(b: Backend) {
    let tenant = TenantId::generate();
    let other = TenantId::generate();
    let a = PortalLimiter::new(b.store.clone(), 2.0, 5);
    let c = PortalLimiter::new(b.store.clone(), 2.0, 5);
    let t0 = 1_000_000;
    let mut granted = 0;
    for i in 0..20 {
        let limiter = if i % 2 == 0 { &a } else { &c };
        if limiter.try_acquire(&tenant, t0).await.unwrap().is_ok() {
            granted += 1;
        }
    }
    assert_eq!(granted, 5, "the burst, shared by both");
    // Refilled at 2/s: half a second later, one more for either.
    assert!(c.try_acquire(&tenant, t0 + 500).await.unwrap().is_ok());
    assert!(a.try_acquire(&tenant, t0 + 500).await.unwrap().is_err());
    // Another portal has its own budget.
    assert!(a.try_acquire(&other, t0).await.unwrap().is_ok());

    // One process hears QUERY_LIMIT_EXCEEDED: both wait out the block.
    a.block(&tenant, t0 + 10_000, Duration::from_secs(3))
        .await
        .unwrap();
    let wait = c
        .try_acquire(&tenant, t0 + 11_000)
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(wait, Duration::from_secs(2));
    // A shorter block never shortens a longer one.
    c.block(&tenant, t0 + 11_000, Duration::from_millis(100))
        .await
        .unwrap();
    assert!(a.try_acquire(&tenant, t0 + 12_000).await.unwrap().is_err());
    // The budget starts empty when the block ends, then refills at 2/s.
    let wait = a
        .try_acquire(&tenant, t0 + 13_000)
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(wait, Duration::from_millis(500), "empty after");
    assert!(a.try_acquire(&tenant, t0 + 13_500).await.unwrap().is_ok());
}

async fn one_flusher_per_portal_until_its_lease_runs_out(b: Backend) {
    let tenant = TenantId::generate();
    let p1 = PortalLease::new(b.store.clone());
    let p2 = PortalLease::new(b.store.clone());
    let ttl = Duration::from_secs(30);
    let t0 = 5_000_000;
    assert!(p1.acquire(&tenant, "one", t0, ttl).await.unwrap());
    assert!(!p2.acquire(&tenant, "two", t0 + 1_000, ttl).await.unwrap());
    // The holder extends it.
    assert!(p1.acquire(&tenant, "one", t0 + 20_000, ttl).await.unwrap());
    assert!(!p2.acquire(&tenant, "two", t0 + 40_000, ttl).await.unwrap());
    // A crashed holder blocks nobody past its lease.
    assert!(p2.acquire(&tenant, "two", t0 + 50_001, ttl).await.unwrap());
    // Releasing someone else's lease does nothing.
    p1.release(&tenant, "one").await.unwrap();
    assert!(!p1.acquire(&tenant, "one", t0 + 51_000, ttl).await.unwrap());
    p2.release(&tenant, "two").await.unwrap();
    assert!(p1.acquire(&tenant, "one", t0 + 51_000, ttl).await.unwrap());
}

on_both_backends!(
    two_processes_share_one_portal_budget,
    one_flusher_per_portal_until_its_lease_runs_out
);
