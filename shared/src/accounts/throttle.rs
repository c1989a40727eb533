//! Throttling of failed sign-ins, per account (tenant + email, whether or not such a user
//! exists, so the answer tells nothing) and per source address.
//!
//! Attempts are counted before their password is checked, in fixed 15-minute windows with
//! atomic counters in the dedupe table (a success is given back); an attempt is refused when
//! the current and the previous window together count more than the limit,
//! which bounds an attacker to `limit` guesses per 15-30 minutes per account however the
//! attempts straddle a window edge. Keys are SHA-256 hashes, so the table never holds an
//! email or an address; items expire by TTL.

use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::store::{Key, StoreError, Table, TableStore, Update, TTL_ATTR};

const WINDOW_SECS: i64 = 15 * 60;
const FAILURES: &str = "failures";

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

    /// Counts an attempt against the account and the address *before* its password is
    /// checked, with one atomic `ADD` per counter that returns the new count, so parallel
    /// guesses cannot all read a count under the limit and all be tried. `Err(seconds to
    /// wait)` when this attempt is over the limit: its password must not be checked. A
    /// successful attempt is given back with [`SignInThrottle::succeeded`].
    pub async fn begin(
        &self,
        account: (&str, &str),
        address: Option<&str>,
        now: i64,
    ) -> Result<Result<(), i64>, StoreError> {
        let window = now.div_euclid(WINDOW_SECS);
        let mut over = false;
        for (pk, limit) in self.keys(account, address) {
            let update = Update::new()
                .add(FAILURES, 1)
                // Kept through the next window, which still counts it.
                .set(TTL_ATTR, (window + 2) * WINDOW_SECS);
            let counted = self
                .store
                .update(
                    Table::Dedupe,
                    &Key::new(&pk, window.to_string()),
                    update,
                    None,
                )
                .await?;
            let previous = self
                .store
                .get(Table::Dedupe, &Key::new(&pk, (window - 1).to_string()))
                .await?
                .and_then(|i| i.get_n(FAILURES))
                .unwrap_or(0);
            over |= counted.get_n(FAILURES).unwrap_or(0) + previous > limit;
        }
        Ok(if over {
            Err(((window + 1) * WINDOW_SECS - now).max(1))
        } else {
            Ok(())
        })
    }

    /// A counted attempt succeeded: the account's failures are forgotten, and the address
    /// gets this attempt back (it keeps its other failures: one good password must not reset
    /// a spray across many accounts).
    pub async fn succeeded(
        &self,
        account: (&str, &str),
        address: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError> {
        let window = now.div_euclid(WINDOW_SECS);
        let pk = hashed("A", &[account.0, account.1]);
        for w in [window - 1, window] {
            self.store
                .delete(Table::Dedupe, &Key::new(&pk, w.to_string()), None)
                .await?;
        }
        if let Some(addr) = address {
            self.store
                .update(
                    Table::Dedupe,
                    &Key::new(hashed("IP", &[addr]), window.to_string()),
                    Update::new().add(FAILURES, -1),
                    Some(crate::store::Condition::Exists),
                )
                .await
                .or_else(|e| {
                    if e.is_condition_failed() {
                        Ok(Default::default())
                    } else {
                        Err(e)
                    }
                })?;
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
            assert_eq!(t.begin(acct, Some("1.2.3.4"), now).await.unwrap(), Ok(()));
        }
        let wait = t
            .begin(acct, Some("1.2.3.4"), now)
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(wait, WINDOW_SECS - 10);
        // Another account from another address is not affected.
        assert_eq!(
            t.begin(("tn_a", "b@example.com"), Some("5.6.7.8"), now)
                .await
                .unwrap(),
            Ok(())
        );
        // The next window still counts the previous one; the one after does not.
        assert!(t
            .begin(acct, None, now + WINDOW_SECS)
            .await
            .unwrap()
            .is_err());
        assert_eq!(
            t.begin(acct, None, now + 2 * WINDOW_SECS).await.unwrap(),
            Ok(())
        );
    }

    #[tokio::test]
    async fn parallel_guesses_cannot_pass_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let t = throttle(dir.path());
        let now = crate::clock::now_secs();
        let attempts = (0..20).map(|_| {
            let t = t.clone();
            tokio::spawn(async move { t.begin(("tn_a", "a@example.com"), None, now).await })
        });
        let mut let_through = 0;
        for a in attempts {
            if a.await.unwrap().unwrap().is_ok() {
                let_through += 1;
            }
        }
        assert_eq!(let_through, 3, "exactly the limit is tried");
    }

    #[tokio::test]
    async fn an_address_spraying_many_accounts_is_throttled() {
        let dir = tempfile::tempdir().unwrap();
        let t = throttle(dir.path());
        let now = crate::clock::now_secs();
        for i in 0..5 {
            let email = format!("u{i}@example.com");
            assert_eq!(
                t.begin(("tn_a", &email), Some("9.9.9.9"), now)
                    .await
                    .unwrap(),
                Ok(())
            );
        }
        let fresh = ("tn_a", "fresh@example.com");
        assert!(t.begin(fresh, Some("9.9.9.9"), now).await.unwrap().is_err());
        assert_eq!(t.begin(fresh, Some("8.8.8.8"), now).await.unwrap(), Ok(()));
    }

    #[tokio::test]
    async fn success_clears_the_account_count_and_gives_the_address_its_attempt_back() {
        let dir = tempfile::tempdir().unwrap();
        let t = throttle(dir.path());
        let acct = ("tn_a", "a@example.com");
        let now = crate::clock::now_secs();
        for _ in 0..3 {
            t.begin(acct, None, now).await.unwrap().unwrap();
        }
        assert!(t.begin(acct, None, now).await.unwrap().is_err());
        t.succeeded(acct, None, now).await.unwrap();
        assert_eq!(t.begin(acct, None, now).await.unwrap(), Ok(()));
        // Five good sign-ins from one address never count against it.
        for i in 0..6 {
            let who = ("tn_a", &*format!("ok{i}@example.com"));
            t.begin(who, Some("7.7.7.7"), now).await.unwrap().unwrap();
            t.succeeded(who, Some("7.7.7.7"), now).await.unwrap();
        }
    }
}
