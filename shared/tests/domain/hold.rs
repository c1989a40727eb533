//! A store hook that holds one chosen write until the test releases it: the interleavings
//! of two writers of one item (a read, the other's whole write, then this write), held
//! deterministically instead of hoped for.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::Notify;
use wappline::faults::hooked::{HookedStore, SharedHook, StoreCall, StoreHook, Verdict};
use wappline::store::TableStore;

/// Once armed, holds the next update of an item whose sort key is `sk` until released;
/// every other call runs at once.
pub struct HoldNextUpdate {
    sk: String,
    armed: AtomicBool,
    held: Notify,
    release: Notify,
}

impl HoldNextUpdate {
    /// `store` behind a hook for updates of items with sort key `sk`, and the hook.
    pub fn over(store: Arc<dyn TableStore>, sk: &str) -> (Arc<dyn TableStore>, Arc<Self>) {
        let hook = Arc::new(HoldNextUpdate {
            sk: sk.to_owned(),
            armed: AtomicBool::new(false),
            held: Notify::new(),
            release: Notify::new(),
        });
        let store = Arc::new(HookedStore::new(store, SharedHook(hook.clone())));
        (store, hook)
    }

    /// Holds the next matching update; the future resolves once one is held.
    pub fn arm(&self) -> impl std::future::Future<Output = ()> + '_ {
        let held = self.held.notified();
        self.armed.store(true, Ordering::SeqCst);
        held
    }

    /// Lets the held update run.
    pub fn release(&self) {
        self.release.notify_one();
    }
}

#[async_trait]
impl StoreHook for HoldNextUpdate {
    async fn before(&self, call: &StoreCall<'_>) -> Verdict {
        if let StoreCall::Update { key, .. } = call {
            if key.sk == self.sk && self.armed.swap(false, Ordering::SeqCst) {
                self.held.notify_one();
                self.release.notified().await;
            }
        }
        Verdict::Run
    }
}
