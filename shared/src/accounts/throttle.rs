//! Throttling of failed sign-ins, per account (tenant + email, whether or not such a user
//! exists, so the answer tells nothing) and per source address.
//!
//! Failures are counted in fixed 15-minute windows with atomic counters in the dedupe table;
//! an attempt is refused while the current and the previous window together hold the limit,
//! which bounds an attacker to `limit` guesses per 15-30 minutes per account however the
//! attempts straddle a window edge. Keys are SHA-256 hashes, so the table never holds an
//! email or an address; items expire by TTL.

use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::store::{Key, StoreError, Table, TableStore, Update, TTL_ATTR};

const WINDOW_SECS: i64 = 15 * 60;

/// Limits on failed sign-ins per window pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThrottlePolicy {
    pub per_account: i64,
    pub per_address: i64,
}

impl Default for ThrottlePolicy {
    fn default() -> Self {
        // Five guesses per account; an office behind one NAT may mistype more often.
        ThrottlePolicy {
            per_account: 5,
            per_address: 50,
        }
    }
}

#[derive(Clone)]
pub struct SignInThrottle {
    store: Arc<dyn TableStore>,
    policy: ThrottlePolicy,
}

fn hashed(kind: &str, parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0u8]);
    }
    format!("AUTHFAIL#{kind}#{}", hex::encode(h.finalize()))
}

impl SignInThrottle {
    pub fn new(store: Arc<dyn TableStore>, policy: ThrottlePolicy) -> Self {
        SignInThrottle { store, policy }
    }

    fn keys(&self, account: (&str, &str), address: Option<&str>) -> Vec<(String, i64)> {
        let mut keys = vec![(
            hashed("A", &[account.0, account.1]),
            self.policy.per_account,
        )];
        if let Some(addr) = address {
            keys.push((hashed("IP", &[addr]), self.policy.per_address));
        }
        keys
    }

    /// `Err(seconds to wait)` while the account or the address is over its limit.
    pub async fn check(
        &self,
        account: (&str, &str),
        address: Option<&str>,
        now: i64,
    ) -> Result<Result<(), i64>, StoreError> {
        let window = now.div_euclid(WINDOW_SECS);
        for (pk, limit) in self.keys(account, address) {
            let mut failures = 0;
            for w in [window - 1, window] {
                if let Some(item) = self
                    .store
                    .get(Table::Dedupe, &Key::new(&pk, w.to_string()))
                    .await?
                {
                    failures += item.get_n("failures").unwrap_or(0);
                }
            }
            if failures >= limit {
                return Ok(Err(((window + 1) * WINDOW_SECS - now).max(1)));
            }
        }
        Ok(Ok(()))
    }

    /// Counts one failed attempt against the account and the address.
    pub async fn record_failure(
        &self,
        account: (&str, &str),
        address: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError> {
        let window = now.div_euclid(WINDOW_SECS);
        for (pk, _) in self.keys(account, address) {
            let update = Update::new()
                .add("failures", 1)
                // Kept through the next window, which still counts it.
                .set(TTL_ATTR, (window + 2) * WINDOW_SECS);
            self.store
                .update(
                    Table::Dedupe,
                    &Key::new(pk, window.to_string()),
                    update,
                    None,
                )
                .await?;
        }
        Ok(())
    }

    /// Forgets the account's failures after a successful sign-in (the address keeps its
    /// count: one good password must not reset a spray across many accounts).
    pub async fn clear_account(&self, account: (&str, &str), now: i64) -> Result<(), StoreError> {
        let window = now.div_euclid(WINDOW_SECS);
        let pk = hashed("A", &[account.0, account.1]);
        for w in [window - 1, window] {
            self.store
                .delete(Table::Dedupe, &Key::new(&pk, w.to_string()), None)
                .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::embedded::EmbeddedStore;

    fn throttle(dir: &std::path::Path) -> SignInThrottle {
        let store = Arc::new(EmbeddedStore::open(dir).unwrap());
        SignInThrottle::new(
            store,
            ThrottlePolicy {
                per_account: 3,
                per_address: 5,
            },
        )
    }

    #[tokio::test]
    async fn an_account_is_throttled_after_its_limit_and_freed_later() {
        let dir = tempfile::tempdir().unwrap();
        let t = throttle(dir.path());
        let acct = ("tn_a", "a@example.com");
        // Real times: the store expires items by the wall clock.
        let now = crate::clock::now_secs().div_euclid(WINDOW_SECS) * WINDOW_SECS + 10;
        for _ in 0..3 {
            assert_eq!(t.check(acct, Some("1.2.3.4"), now).await.unwrap(), Ok(()));
            t.record_failure(acct, Some("1.2.3.4"), now).await.unwrap();
        }
        let wait = t
            .check(acct, Some("1.2.3.4"), now)
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(wait, WINDOW_SECS - 10);
        // Another account from another address is not affected.
        assert_eq!(
            t.check(("tn_a", "b@example.com"), Some("5.6.7.8"), now)
                .await
                .unwrap(),
            Ok(())
        );
        // The next window still counts the previous one; the one after does not.
        assert!(t
            .check(acct, None, now + WINDOW_SECS)
            .await
            .unwrap()
            .is_err());
        assert_eq!(
            t.check(acct, None, now + 2 * WINDOW_SECS).await.unwrap(),
            Ok(())
        );
    }

    #[tokio::test]
    async fn an_address_spraying_many_accounts_is_throttled() {
        let dir = tempfile::tempdir().unwrap();
        let t = throttle(dir.path());
        let now = crate::clock::now_secs();
        for i in 0..5 {
            let email = format!("u{i}@example.com");
            t.record_failure(("tn_a", &email), Some("9.9.9.9"), now)
                .await
                .unwrap();
        }
        let fresh = ("tn_a", "fresh@example.com");
        assert!(t.check(fresh, Some("9.9.9.9"), now).await.unwrap().is_err());
        assert_eq!(t.check(fresh, Some("8.8.8.8"), now).await.unwrap(), Ok(()));
    }

    #[tokio::test]
    async fn success_clears_the_account_count() {
        let dir = tempfile::tempdir().unwrap();
        let t = throttle(dir.path());
        let acct = ("tn_a", "a@example.com");
        let now = crate::clock::now_secs();
        for _ in 0..3 {
            t.record_failure(acct, None, now).await.unwrap();
        }
        assert!(t.check(acct, None, now).await.unwrap().is_err());
        t.clear_account(acct, now).await.unwrap();
        assert_eq!(t.check(acct, None, now).await.unwrap(), Ok(()));
    }
}
