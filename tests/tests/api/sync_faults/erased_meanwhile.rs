//! A push whose person's erasure begins while the sync worker stages it (decision 0129): the
//! job checked the erasure's marker when it was loaded; an erasure that marks the person and
//! deletes their conversation's staged operations before this one is staged would leave it
//! to a flusher, which would post the erased person's message to Bitrix24. The worker reads
//! the marker again once the operation is staged, and withdraws it while no flusher holds it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use wappline::conversation::erased::ErasedSubjects;
use wappline::conversation::ConversationId;
use wappline::faults::hooked::{HookedStore, SharedHook, StoreCall, StoreHook, Verdict};
use wappline::ids::TenantId;
use wappline::store::TableStore;

use super::*;

/// Marks the person of the first operation staged as being erased, just before the staging
/// write runs: after the job's check at its load.
struct ErasureBegins {
    inner: Arc<dyn TableStore>,
    tenant: TenantId,
    begun: AtomicBool,
}

#[async_trait]
impl StoreHook for ErasureBegins {
    async fn before(&self, call: &StoreCall<'_>) -> Verdict {
        let StoreCall::Put { item, .. } = call else {
            return Verdict::Run;
        };
        if !names_a_staged_operation(call) || self.begun.swap(true, Ordering::SeqCst) {
            return Verdict::Run;
        }
        // `op#<conversation>#<effect>`.
        let sk = item.get_s("sk").unwrap_or_default();
        let conversation = sk
            .strip_prefix("op#")
            .and_then(|rest| rest.split_once('#'))
            .map(|(conversation, _)| conversation)
            .expect("a staged operation names its conversation");
        ErasedSubjects::new(self.inner.clone())
            .mark(
                &self.tenant,
                &ConversationId::parse(conversation).unwrap(),
                now_millis(),
            )
            .await
            .unwrap();
        Verdict::Run
    }
}

#[tokio::test]
async fn a_push_staged_as_the_erasure_begins_is_withdrawn_and_never_posted() {
    let rig = Rig::start().await;
    let hook = Arc::new(ErasureBegins {
        inner: rig.h.server.platform().store.clone(),
        tenant: TenantId::parse(&rig.tenant).unwrap(),
        begun: AtomicBool::new(false),
    });
    let store = Arc::new(HookedStore::new(
        rig.h.server.platform().store.clone(),
        SharedHook(hook.clone()),
    ));
    let worker = rig.worker(store);
    rig.customers_write(1, 1, "erasing").await;
    rig.run_until_empty(&worker, 5, |_| Duration::ZERO).await;
    assert!(
        hook.begun.load(Ordering::SeqCst),
        "the erasure began as it was staged"
    );
    assert!(
        rig.fake.messages_received().is_empty(),
        "nothing of the person posted: {:?}",
        rig.fake.messages_received()
    );
    let staged = rig
        .h
        .all_items(Table::Data)
        .await
        .into_iter()
        .filter(|i| i.get_s("sk").is_some_and(|sk| sk.starts_with("op#")))
        .count();
    assert_eq!(staged, 0, "no staged operation left");
    assert_eq!(rig.dead_lettered().await, 0);
    rig.h.server.shutdown().await;
}
