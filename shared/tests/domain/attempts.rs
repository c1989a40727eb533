//! Sync job attempt records (decision 0022) on both adapter families: counted per job and
//! tenant, the first failure's time kept, cleared on success.

use wappline::crm_sync::RetryPolicy;
use wappline::idempotency::{AttemptRecord, Attempts};
use wappline::ids::TenantId;

use crate::backends::Backend;
use crate::on_both_backends;

async fn attempts_are_counted_per_job_and_cleared(b: Backend) {
    let attempts = Attempts::new(b.store.clone(), "SYNCTRY");
    let t = TenantId::generate();
    let other = TenantId::generate();
    let first = attempts.failed(&t, "job-1", 1_000).await.unwrap();
    assert_eq!(
        first,
        AttemptRecord {
            count: 1,
            first_at_ms: 1_000
        }
    );
    let second = attempts.failed(&t, "job-1", 5_000).await.unwrap();
    assert_eq!(
        second,
        AttemptRecord {
            count: 2,
            first_at_ms: 1_000
        }
    );
    // Another job, or the same job id of another tenant, has its own record.
    assert_eq!(attempts.failed(&t, "job-2", 9_000).await.unwrap().count, 1);
    assert_eq!(
        attempts.failed(&other, "job-1", 9_000).await.unwrap().count,
        1
    );
    attempts.clear(&t, "job-1").await.unwrap();
    let again = attempts.failed(&t, "job-1", 20_000).await.unwrap();
    assert_eq!(
        again,
        AttemptRecord {
            count: 1,
            first_at_ms: 20_000
        }
    );
    // Exhausted only with both the attempts and the span.
    let policy = RetryPolicy::default();
    let many = AttemptRecord {
        count: policy.attempts,
        first_at_ms: 0,
    };
    assert!(!policy.exhausted(&many, 23 * 3_600_000));
    assert!(policy.exhausted(&many, 24 * 3_600_000));
}

on_both_backends!(attempts_are_counted_per_job_and_cleared);
