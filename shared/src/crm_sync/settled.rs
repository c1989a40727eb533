//! Word of settled operations inside one process (decision 0084). The flusher tells the jobs
//! of its own process that wait on an operation it has just settled what outcome it wrote,
//! so they need not read the operation to learn it. Only outcomes whose write landed are told
//! (the write is conditional on the attempt's claim, which another flusher may have taken
//! over): what a job hears is what the store holds. A job waiting on an operation that
//! another process posts hears nothing and looks at the store now and then
//! (`SyncWorker::outcome_of`); the word only spares reads, the store stays the truth.
//!
//! It also knows which portals a flusher of this process is flushing now: a job waiting on
//! such a portal neither looks at its operation nor tries to take the lease (a write that
//! would fail), since the flush posts every ready operation and tells it; once the flush
//! ends, the job looks and tries again as before.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;
use tokio::time::Instant;

use super::outbox::OpOutcome;
use crate::ids::TenantId;
use crate::store::Key;

/// The staged operations jobs of this process wait on, by key, and the portals it flushes.
/// Clones share them.
#[derive(Clone, Default)]
pub(crate) struct Settlements {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default)]
struct Inner {
    waited: HashMap<Key, Waited>,
    /// Flushes running (or taking the lease) per tenant.
    flushing: HashMap<TenantId, usize>,
}

/// A flush of one portal by this process, from before it takes the lease until it has given
/// it up.
pub(crate) struct Flushing {
    tenant: TenantId,
    settlements: Settlements,
}

/// One operation waited on: its outcome once told, and how many jobs wait on it (a job and
/// another delivery of it that took it over may both wait in one process).
struct Waited {
    outcome: watch::Sender<Option<OpOutcome>>,
    watchers: usize,
}

/// One job's ear for one operation. It hears only outcomes settled after it was made: one
/// told before belongs to an earlier staging (a failed operation is staged again by the
/// job's retry). So a job makes it before it stages the operation.
pub(crate) struct SettleWatch {
    key: Key,
    outcome: watch::Receiver<Option<OpOutcome>>,
    settlements: Settlements,
}

impl Settlements {
    /// Starts listening for the outcome of the operation at `key`.
    pub(crate) fn watch(&self, key: &Key) -> SettleWatch {
        let mut inner = self.lock();
        let entry = inner.waited.entry(key.clone()).or_insert_with(|| Waited {
            outcome: watch::channel(None).0,
            watchers: 0,
        });
        entry.watchers += 1;
        SettleWatch {
            key: key.clone(),
            outcome: entry.outcome.subscribe(),
            settlements: self.clone(),
        }
    }

    /// Tells whoever waits on `key` in this process that `outcome` is written for it.
    pub(crate) fn settled(&self, key: &Key, outcome: &OpOutcome) {
        if let Some(waited) = self.lock().waited.get(key) {
            waited.outcome.send_replace(Some(outcome.clone()));
        }
    }

    /// Marks `tenant`'s portal as flushed by this process until the mark is dropped.
    pub(crate) fn flushing(&self, tenant: &TenantId) -> Flushing {
        *self.lock().flushing.entry(tenant.clone()).or_default() += 1;
        Flushing {
            tenant: tenant.clone(),
            settlements: self.clone(),
        }
    }

    /// Whether a flusher of this process is flushing `tenant`'s portal now.
    pub(crate) fn is_flushing(&self, tenant: &TenantId) -> bool {
        self.lock().flushing.contains_key(tenant)
    }

    /// Operations waited on now (for tests of the bookkeeping).
    #[cfg(test)]
    fn waited(&self) -> usize {
        self.lock().waited.len()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The maps are consistent after every statement: a panic elsewhere leaves them usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl SettleWatch {
    /// The outcome told since the watch was made, waiting for it until `until` at most.
    pub(crate) async fn heard_by(&mut self, until: Instant) -> Option<OpOutcome> {
        // The sender lives as long as a watch of its key: `changed` never sees it closed.
        let told = self.outcome.has_changed().unwrap_or(false)
            || matches!(
                tokio::time::timeout_at(until, self.outcome.changed()).await,
                Ok(Ok(()))
            );
        if told {
            self.outcome.borrow_and_update().clone()
        } else {
            None
        }
    }
}

impl Drop for SettleWatch {
    fn drop(&mut self) {
        let mut inner = self.settlements.lock();
        if let Some(w) = inner.waited.get_mut(&self.key) {
            w.watchers -= 1;
            if w.watchers == 0 {
                inner.waited.remove(&self.key);
            }
        }
    }
}

impl Drop for Flushing {
    fn drop(&mut self) {
        let mut inner = self.settlements.lock();
        if let Some(n) = inner.flushing.get_mut(&self.tenant) {
            *n -= 1;
            if *n == 0 {
                inner.flushing.remove(&self.tenant);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::crm_sync::outbox::MissingFiles;

    fn sent(chat: &str) -> OpOutcome {
        OpOutcome::Sent {
            crm_chat_id: Some(chat.into()),
            missing: MissingFiles::default(),
        }
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_millis(20)
    }

    #[tokio::test]
    async fn a_watch_hears_the_outcome_told_after_it_was_made() {
        let settlements = Settlements::default();
        let key = Key::new("T#t#CRMOUT", "op#c#e");
        let mut watch = settlements.watch(&key);
        assert_eq!(watch.heard_by(soon()).await, None, "nothing told yet");
        let teller = settlements.clone();
        let told = key.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(5)).await;
            teller.settled(&told, &sent("1"));
        });
        let far = Instant::now() + Duration::from_secs(10);
        assert_eq!(watch.heard_by(far).await, Some(sent("1")));
    }

    #[tokio::test]
    async fn an_outcome_told_before_the_watch_or_of_another_key_is_not_heard() {
        let settlements = Settlements::default();
        let key = Key::new("T#t#CRMOUT", "op#c#e");
        let first = settlements.watch(&key);
        // An earlier staging's outcome, told while another job still watched it.
        settlements.settled(&key, &sent("old"));
        let mut second = settlements.watch(&key);
        settlements.settled(&Key::new("T#t#CRMOUT", "op#c#other"), &sent("2"));
        assert_eq!(second.heard_by(soon()).await, None);
        drop(first);
        settlements.settled(&key, &sent("new"));
        assert_eq!(second.heard_by(soon()).await, Some(sent("new")));
    }

    #[tokio::test]
    async fn the_last_watch_of_a_key_forgets_it() {
        let settlements = Settlements::default();
        let key = Key::new("T#t#CRMOUT", "op#c#e");
        let a = settlements.watch(&key);
        let b = settlements.watch(&key);
        drop(a);
        assert_eq!(settlements.waited(), 1);
        drop(b);
        assert_eq!(settlements.waited(), 0);
        // Nobody waits: told to nobody, kept by nobody.
        settlements.settled(&key, &sent("1"));
        assert_eq!(settlements.waited(), 0);
    }

    #[test]
    fn a_portal_is_flushed_until_its_last_flush_ends() {
        let settlements = Settlements::default();
        let tenant = TenantId::generate();
        let other = TenantId::generate();
        let one = settlements.flushing(&tenant);
        let two = settlements.flushing(&tenant);
        assert!(settlements.is_flushing(&tenant));
        assert!(!settlements.is_flushing(&other));
        drop(one);
        assert!(settlements.is_flushing(&tenant));
        drop(two);
        assert!(!settlements.is_flushing(&tenant));
    }
}
