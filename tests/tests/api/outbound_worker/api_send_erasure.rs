//! A send through the public API while the person's erasure begins (decision 0125): the
//! intake reads the erasure's marker before it writes and again once the message is stored,
//! so a message stored after the erasure's query of the conversation does not stay.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use wappline::conversation::erased::ErasedSubjects;
use wappline::faults::hooked::{HookedStore, StoreCall, StoreHook, Verdict};
use wappline::outbound::OutboundError;
use wappline::usage::{Usage, UsageMonth};

use super::*;

/// Begins the person's erasure (writes its marker, in progress) once, just before the
/// transaction that stores the send's message: after the intake's first read of the marker.
struct ErasureBegins {
    inner: Arc<dyn TableStore>,
    tenant: TenantId,
    conversation: ConversationId,
    begun: AtomicBool,
}

#[async_trait]
impl StoreHook for ErasureBegins {
    async fn before(&self, call: &StoreCall<'_>) -> Verdict {
        if matches!(call, StoreCall::Transact { .. }) && !self.begun.swap(true, Ordering::SeqCst) {
            ErasedSubjects::new(self.inner.clone())
                .mark(
                    &self.tenant,
                    &self.conversation,
                    wappline::clock::now_millis(),
                )
                .await
                .unwrap();
        }
        Verdict::Run
    }
}

#[tokio::test]
async fn an_api_send_stored_as_the_erasure_begins_is_removed_and_not_sent() {
    let w = world().await;
    let conv = w.wa_customer(HOUR).await;
    let hook = Arc::new(ErasureBegins {
        inner: w.platform.store.clone(),
        tenant: w.tenant.clone(),
        conversation: conv.clone(),
        begun: AtomicBool::new(false),
    });
    let store = Arc::new(HookedStore::new(
        w.platform.store.clone(),
        wappline::faults::hooked::SharedHook(hook.clone()),
    ));
    let intake = OutboundIntake::new(store, w.platform.envelope.clone(), w.queue.clone());
    let stored = || async {
        w.conversations()
            .messages(&conv, None, 100)
            .await
            .unwrap()
            .0
    };
    let before = stored().await.len();
    let usage = Usage::new(w.platform.store.clone());
    let month = UsageMonth::current(wappline::clock::now_secs());
    let sent_this_month = || async { usage.report(&w.tenant, month).await.unwrap().outbound };
    let counted_before = sent_this_month().await;

    let refused = intake
        .accept_api_message(
            &w.platform.tenants,
            &w.tenant,
            &wa(),
            CustomerId::WhatsAppUser(WhatsAppUserId::parse(BSUID).unwrap()),
            ApiMessage::Text("Your order has shipped".into()),
            "req-erasing",
        )
        .await;
    assert!(
        hook.begun.load(Ordering::SeqCst),
        "the erasure began during the send"
    );
    assert!(
        matches!(refused, Err(OutboundError::SubjectErased)),
        "{refused:?}"
    );
    assert_eq!(stored().await.len(), before, "the message is not kept");
    assert_eq!(
        sent_this_month().await,
        counted_before,
        "a refused send uses none of the quota (decision 0130)"
    );
    assert!(w.run().await.is_empty(), "no send job queued");
    assert!(w.graph.sent().is_empty(), "nothing sent to the person");
}
