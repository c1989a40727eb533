//! A claim that ran out is a death of its flusher only if that flusher may have died
//! (decision 0117): one whose flush failed for a while in this very process, or is still
//! going here, killed nothing. In the fault soak, two injected crashes and one lost store
//! answer while a post was claimed made three deaths and dead-lettered it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Notify;
use wappline::crm_sync::outbox::{OpState, Outbox};
use wappline::crm_sync::{FlushConfig, PortalFlusher};
use wappline::faults::hooked::{HookedStore, SharedHook, StoreCall, StoreHook, Verdict};
use wappline::ids::TenantId;
use wappline::store::{Key, StoreError, Table, TableStore};
use wappline::tenant::TenantScope;

use super::{names_a_staged_operation, staged_post, Rig};

/// What the store does with a staged operation's updates after its first (the claim), while
/// armed: fails them as a store briefly unavailable (moving the clock past the claim, so
/// the flush stops retrying and returns its error), or holds them until released.
#[derive(Default)]
struct AfterTheClaim {
    fail: AtomicBool,
    hold: AtomicBool,
    held: Notify,
    release: Notify,
    updates: Mutex<HashMap<String, usize>>,
    now: Mutex<Option<Arc<AtomicI64>>>,
}

#[async_trait]
impl StoreHook for AfterTheClaim {
    async fn before(&self, call: &StoreCall<'_>) -> Verdict {
        let StoreCall::Update { key, .. } = call else {
            return Verdict::Run;
        };
        if !names_a_staged_operation(call) {
            return Verdict::Run;
        }
        let nth = {
            let mut updates = self.updates.lock().unwrap();
            let n = updates.entry(key.sk.clone()).or_insert(0);
            *n += 1;
            *n
        };
        if nth < 2 {
            return Verdict::Run;
        }
        if self.fail.load(Ordering::SeqCst) {
            if let Some(now) = self.now.lock().unwrap().as_ref() {
                now.fetch_add(claim_ms() + 1_000, Ordering::SeqCst);
            }
            return Verdict::Fail(StoreError::Unavailable("injected: answer lost".into()));
        }
        if self.hold.swap(false, Ordering::SeqCst) {
            self.held.notify_one();
            self.release.notified().await;
        }
        Verdict::Run
    }
}

fn claim_ms() -> i64 {
    FlushConfig::default().claim.as_millis() as i64
}

struct Set {
    rig: Rig,
    hook: Arc<AfterTheClaim>,
    store: Arc<dyn TableStore>,
    scope: TenantScope,
    key: Key,
}

/// One post staged for the rig's tenant; the store behind the hook.
async fn set() -> Set {
    let rig = Rig::start().await;
    let platform = rig.h.server.platform();
    let tenant = TenantId::parse(&rig.tenant).unwrap();
    let conversation = format!("c_{}", "a".repeat(32));
    let key = Outbox::key(&tenant, &conversation, "e1");
    let outbox = Outbox::new(platform.store.clone(), platform.envelope.clone());
    let now = rig.now.load(Ordering::SeqCst);
    outbox
        .stage(
            &tenant,
            &key,
            &staged_post(&conversation, "wamid.living", Vec::new()),
            now,
        )
        .await
        .unwrap();
    let hook = Arc::new(AfterTheClaim::default());
    *hook.now.lock().unwrap() = Some(rig.now.clone());
    let store: Arc<dyn TableStore> = Arc::new(HookedStore::new(
        platform.store.clone(),
        SharedHook(hook.clone()),
    ));
    let scope = platform.tenants.scope(&tenant).await.unwrap().unwrap();
    Set {
        rig,
        hook,
        store,
        scope,
        key,
    }
}

impl Set {
    /// A flusher as one process builds it, over the hooked store.
    fn flusher(&self) -> PortalFlusher {
        let platform = self.rig.h.server.platform();
        let clock = self.rig.now.clone();
        PortalFlusher::new(
            Outbox::new(self.store.clone(), platform.envelope.clone()),
            self.store.clone(),
            crate::bitrix_client::client(&self.rig.fake),
            FlushConfig::default(),
            Arc::new(move || clock.load(Ordering::SeqCst)),
        )
    }

    async fn deaths(&self) -> i64 {
        let platform = self.rig.h.server.platform();
        let item = platform.store.get(Table::Data, &self.key).await.unwrap();
        item.and_then(|i| i.get_n("deaths")).unwrap_or(0)
    }

    async fn state(&self) -> Option<OpState> {
        let platform = self.rig.h.server.platform();
        Outbox::new(platform.store.clone(), platform.envelope.clone())
            .state(&self.key)
            .await
            .unwrap()
    }

    /// The first flush posts, and cannot record the answer: the store is unavailable until
    /// the claim runs out, and the flush returns that error.
    async fn a_flush_fails_after_the_claim(&self, flusher: &PortalFlusher) {
        self.hook.fail.store(true, Ordering::SeqCst);
        let failed = flusher.flush(&self.scope).await;
        assert!(failed.is_err_and(|e| e.is_transient()));
        self.hook.fail.store(false, Ordering::SeqCst);
        assert!(matches!(self.state().await, Some(OpState::InFlight { .. })));
    }
}

/// The flush that failed for a while ran in this process, which is alive: the next flush
/// here takes the post over (ambiguous, as the first may have posted it) without a death.
#[tokio::test]
async fn a_flush_that_failed_for_a_while_here_is_no_death() {
    let s = set().await;
    let flusher = s.flusher();
    s.a_flush_fails_after_the_claim(&flusher).await;
    flusher.flush(&s.scope).await.unwrap();
    assert!(matches!(s.state().await, Some(OpState::Done(_))));
    assert_eq!(s.deaths().await, 0, "no flusher died");
    s.rig.h.server.shutdown().await;
}

/// The same claim taken over by another process (a flusher of its own, as a Lambda
/// instance or the local server after a restart): it cannot tell, and counts a death, as
/// before.
#[tokio::test]
async fn a_claim_of_another_process_that_ran_out_is_a_death() {
    let s = set().await;
    s.a_flush_fails_after_the_claim(&s.flusher()).await;
    s.flusher().flush(&s.scope).await.unwrap();
    assert!(matches!(s.state().await, Some(OpState::Done(_))));
    assert_eq!(s.deaths().await, 1);
    s.rig.h.server.shutdown().await;
}

/// A flush still going here, only slower than its claim (held before it records the
/// answer): another flush of this process leaves its post alone; the first one settles
/// it. Posted once, no death.
#[tokio::test]
async fn a_flush_still_going_here_keeps_its_claim() {
    let s = set().await;
    let flusher = s.flusher();
    s.hook.hold.store(true, Ordering::SeqCst);
    let first = tokio::spawn({
        let (flusher, scope) = (flusher.clone(), s.scope.clone());
        async move { flusher.flush(&scope).await.map(|_| ()) }
    });
    s.hook.held.notified().await;
    s.rig
        .advance(FlushConfig::default().claim + Duration::from_secs(1));
    flusher.flush(&s.scope).await.unwrap();
    assert!(
        matches!(s.state().await, Some(OpState::InFlight { .. })),
        "still the first flush's"
    );
    assert_eq!(s.deaths().await, 0);
    s.hook.release.notify_one();
    first.await.unwrap().unwrap();
    assert!(matches!(s.state().await, Some(OpState::Done(_))));
    assert_eq!(
        s.rig
            .fake
            .posts_of(e2e_tests::fake_bitrix::FAKE_DOMAIN, "wamid.living"),
        1
    );
    assert_eq!(s.deaths().await, 0);
    s.rig.h.server.shutdown().await;
}
