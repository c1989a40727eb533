//! A store hook that holds one chosen write (or read) until the test releases it: the
//! interleavings of two writers of one item (a read, the other's whole write, then this
//! write), held deterministically instead of hoped for.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::Notify;
use wappline::faults::hooked::{HookedStore, SharedHook, StoreCall, StoreHook, Verdict};
use wappline::store::TableStore;

/// Once armed, holds the next update or delete of an item whose sort key is `sk` until
/// released (or, armed for a read, the chosen read of such an item); every other call runs
/// at once.
pub struct HoldNextUpdate {
    sk: String,
    armed: AtomicBool,
    /// Reads of the item still to let through before the one held; 0 when no read is armed.
    reads_to_hold_at: AtomicUsize,
    held: Notify,
    release: Notify,
}

impl HoldNextUpdate {
    /// `store` behind a hook for updates of items with sort key `sk`, and the hook.
    pub fn over(store: Arc<dyn TableStore>, sk: &str) -> (Arc<dyn TableStore>, Arc<Self>) {
        let hook = Arc::new(HoldNextUpdate {
            sk: sk.to_owned(),
            armed: AtomicBool::new(false),
            reads_to_hold_at: AtomicUsize::new(0),
            held: Notify::new(),
            release: Notify::new(),
        });
        let store = Arc::new(HookedStore::new(store, SharedHook(hook.clone())));
        (store, hook)
    }

    /// Holds the next matching update or delete; the future resolves once one is held.
    pub fn arm(&self) -> impl std::future::Future<Output = ()> + '_ {
        let held = self.held.notified();
        self.armed.store(true, Ordering::SeqCst);
        held
    }

    /// Holds the `nth` next read of a matching item (1 for the next one); the future
    /// resolves once it is held.
    pub fn arm_read(&self, nth: usize) -> impl std::future::Future<Output = ()> + '_ {
        let held = self.held.notified();
        self.reads_to_hold_at.store(nth, Ordering::SeqCst);
        held
    }

    /// Runs `task` in a task of its own until the call `held` (from [`Self::arm`] or
    /// [`Self::arm_read`]) is held, then `meanwhile`, then lets the held call run; both
    /// outputs.
    pub async fn meanwhile<T, U>(
        &self,
        held: impl std::future::Future<Output = ()>,
        task: impl std::future::Future<Output = T> + Send + 'static,
        meanwhile: impl std::future::Future<Output = U>,
    ) -> (T, U)
    where
        T: Send + 'static,
    {
        let task = tokio::spawn(task);
        held.await;
        let between = meanwhile.await;
        self.release();
        (task.await.expect("the held task"), between)
    }

    /// Lets the held call run.
    pub fn release(&self) {
        self.release.notify_one();
    }
}

#[async_trait]
impl StoreHook for HoldNextUpdate {
    async fn before(&self, call: &StoreCall<'_>) -> Verdict {
        let hold = match call {
            StoreCall::Update { key, .. } | StoreCall::Delete { key, .. } => {
                key.sk == self.sk && self.armed.swap(false, Ordering::SeqCst)
            }
            StoreCall::Get { key, .. } if key.sk == self.sk => self
                .reads_to_hold_at
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok_and(|n| n == 1),
            _ => false,
        };
        if hold {
            self.held.notify_one();
            self.release.notified().await;
        }
        Verdict::Run
    }
}
