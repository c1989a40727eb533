//! Who holds a conversation under Meta's Handover Protocol, on real adapters: the latest
//! change by its time is kept, whatever order the changes arrive in, and one written by
//! another worker between this one's read and its write is not overwritten by an older one.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use wappline::conversation::handover::{Handovers, ThreadOwner};
use wappline::conversation::ConversationId;
use wappline::faults::hooked::{HookedStore, StoreCall, StoreHook, Verdict};
use wappline::ids::TenantId;
use wappline::store::TableStore;

use crate::backends::Backend;
use crate::on_both_backends;

const AGENT: &str = "1217981644879628";

fn agent(since: i64) -> ThreadOwner {
    ThreadOwner {
        app_id: Some(AGENT.into()),
        ours: false,
        since,
    }
}

fn operators(since: i64) -> ThreadOwner {
    ThreadOwner {
        app_id: None,
        ours: true,
        since,
    }
}

fn conversation() -> ConversationId {
    ConversationId::parse("c_a9b91b120e26916956c9479298128524").unwrap()
}

async fn an_older_change_arriving_late_changes_nothing(b: Backend) {
    let handovers = Handovers::new(TenantId::generate(), b.store.clone());
    let c = conversation();
    assert!(handovers.record(&c, &agent(100)).await.unwrap());
    assert!(handovers.record(&c, &operators(300)).await.unwrap());
    assert!(!handovers.record(&c, &agent(200)).await.unwrap());
    assert_eq!(handovers.owner(&c).await.unwrap(), Some(operators(300)));
    // One in the same second as the recorded one is taken as the later.
    assert!(handovers.record(&c, &agent(300)).await.unwrap());
    assert_eq!(handovers.owner(&c).await.unwrap(), Some(agent(300)));
}

/// Writes a newer change (the operators' take-back at 400) once, just before the first
/// write of a handover record: another worker's, between this one's read and its write.
struct TakenBackMeanwhile {
    inner: Arc<dyn TableStore>,
    tenant: TenantId,
    done: AtomicBool,
}

#[async_trait]
impl StoreHook for TakenBackMeanwhile {
    async fn before(&self, call: &StoreCall<'_>) -> Verdict {
        let handover = matches!(call, StoreCall::Put { item, .. }
            if item.get_s("sk").is_some_and(|sk| sk.starts_with("HANDOVER#")));
        if handover && !self.done.swap(true, Ordering::SeqCst) {
            Handovers::new(self.tenant.clone(), self.inner.clone())
                .record(&conversation(), &operators(400))
                .await
                .unwrap();
        }
        Verdict::Run
    }
}

async fn a_change_recorded_meanwhile_is_not_overwritten_by_an_older_one(b: Backend) {
    let tenant = TenantId::generate();
    let c = conversation();
    Handovers::new(tenant.clone(), b.store.clone())
        .record(&c, &agent(100))
        .await
        .unwrap();
    let hook = Arc::new(TakenBackMeanwhile {
        inner: b.store.clone(),
        tenant: tenant.clone(),
        done: AtomicBool::new(false),
    });
    let hooked: Arc<dyn TableStore> = Arc::new(HookedStore::new(
        b.store.clone(),
        wappline::faults::hooked::SharedHook(hook.clone()),
    ));
    let handovers = Handovers::new(tenant, hooked);
    // Read at 100 (the agent's), then the take-back at 400 lands, then this write of 350.
    let changed = handovers.record(&c, &agent(350)).await.unwrap();
    assert!(
        hook.done.load(Ordering::SeqCst),
        "the take-back came between"
    );
    assert!(!changed);
    assert_eq!(handovers.owner(&c).await.unwrap(), Some(operators(400)));
}

on_both_backends!(
    an_older_change_arriving_late_changes_nothing,
    a_change_recorded_meanwhile_is_not_overwritten_by_an_older_one,
);
