//! The tenant a unit of work acts for (decision 0037).
//!
//! A worker's job, an admin API request on a tenant's routes, a public API call: each works
//! for exactly one tenant, known from its authenticated context (the sealed job, the
//! authorised path, the API key). [`acting_for`] runs that work with the tenant set for the
//! current task; the ports' fences ([`crate::store::fence`], [`crate::vault::fence`],
//! [`crate::objects::fence`]) then refuse any key outside the tenant's partitions and, on
//! AWS, sign the tenant's requests with credentials scoped to it. Set where the tenant is
//! authenticated, not passed down: the flows below need no change to be fenced, and a flow
//! that builds another tenant's key by mistake is refused instead of served.
//!
//! The scope is a task-local: work spawned onto another task leaves it (and then runs with
//! the function's own role, which the IAM-coverage test checks).

use std::future::Future;

use crate::ids::TenantId;

tokio::task_local! {
    static ACTING_FOR: TenantId;
}

/// Runs `work` acting for `tenant`.
pub async fn acting_for<F: Future>(tenant: &TenantId, work: F) -> F::Output {
    ACTING_FOR.scope(tenant.clone(), work).await
}

/// The tenant the current task acts for, if any.
pub fn current() -> Option<TenantId> {
    ACTING_FOR.try_with(Clone::clone).ok()
}

/// True when `pk` is one of `tenant`'s partition keys: `T#<tenant>` or `T#<tenant>#...`
/// (docs/data-model.md), the same patterns the tenant-data role's `dynamodb:LeadingKeys`
/// condition allows.
pub fn owns_partition(tenant: &TenantId, pk: &str) -> bool {
    let root = tenant.partition();
    match pk.strip_prefix(root.as_str()) {
        Some(rest) => rest.is_empty() || rest.starts_with('#'),
        None => false,
    }
}

/// The object-key prefix of `tenant`'s exports, `exports/<tenant>/` (the tenant-data role's
/// S3 resource).
pub fn export_prefix(tenant: &TenantId) -> String {
    format!("exports/{}/", tenant.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partition_is_the_tenants_root_or_below_it() {
        let t = TenantId::parse("tn_0123456789abcdef01234567").unwrap();
        assert!(owns_partition(&t, "T#tn_0123456789abcdef01234567"));
        assert!(owns_partition(&t, "T#tn_0123456789abcdef01234567#CONV#x"));
        // A longer id with the same prefix is another tenant's.
        assert!(!owns_partition(&t, "T#tn_0123456789abcdef012345678"));
        assert!(!owns_partition(&t, "T#tn_0123456789abcdef0123456"));
        assert!(!owns_partition(&t, "ROUTE#wa#1"));
    }

    #[tokio::test]
    async fn the_scope_holds_within_the_work_only() {
        let t = TenantId::generate();
        assert_eq!(current(), None);
        let inside = acting_for(&t, async { current() }).await;
        assert_eq!(inside, Some(t));
        assert_eq!(current(), None);
    }
}
