//! A send through the public API while the person's erasure begins (decision 0125): the
//! intake reads the erasure's marker before it writes and again once the message is stored,
//! so a message stored after the erasure's query of the conversation does not stay.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use wappline::conversation::erased::{cut_of, ErasedSubjects};
use wappline::faults::hooked::{HookedStore, StoreCall, StoreHook, Verdict};
use wappline::meta::WhatsAppPhone;
use wappline::outbound::{Accepted, OutboundError};
use wappline::store::Key;
use wappline::usage::{ChannelCounts, Usage, UsageMonth};

use super::*;

/// Begins the person's erasure (writes its marker, in progress) once, just before the
/// transaction that stores the send's message: after the intake's first read of the marker.
struct ErasureBegins {
    inner: Arc<dyn TableStore>,
    tenant: TenantId,
    conversation: ConversationId,
    begun: AtomicBool,
    /// While set, every transaction after the one the erasure began before fails (the
    /// store unavailable): the intake's removal of the message fails.
    removal_fails: AtomicBool,
}

#[async_trait]
impl StoreHook for ErasureBegins {
    async fn before(&self, call: &StoreCall<'_>) -> Verdict {
        if !matches!(call, StoreCall::Transact { .. }) {
            return Verdict::Run;
        }
        if self.begun.swap(true, Ordering::SeqCst) {
            if self.removal_fails.load(Ordering::SeqCst) {
                return Verdict::Fail(wappline::store::StoreError::Unavailable("injected".into()));
            }
        } else {
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

/// An intake over a store whose hook begins the erasure of `conversation`'s person just
/// before the send's message is stored.
fn intake_erasing(
    w: &World,
    conversation: &ConversationId,
) -> (OutboundIntake, Arc<ErasureBegins>) {
    let hook = Arc::new(ErasureBegins {
        inner: w.platform.store.clone(),
        tenant: w.tenant.clone(),
        conversation: conversation.clone(),
        begun: AtomicBool::new(false),
        removal_fails: AtomicBool::new(false),
    });
    let store = Arc::new(HookedStore::new(
        w.platform.store.clone(),
        wappline::faults::hooked::SharedHook(hook.clone()),
    ));
    let intake = OutboundIntake::new(store, w.platform.envelope.clone(), w.queue.clone());
    (intake, hook)
}

/// The messages `conv` holds, and this month's outbound usage.
async fn kept(w: &World, conv: &ConversationId) -> (usize, ChannelCounts) {
    let messages = w.conversations().messages(conv, None, 100).await.unwrap().0;
    let month = UsageMonth::current(wappline::clock::now_secs());
    let usage = Usage::new(w.platform.store.clone());
    let sent = usage.report(&w.tenant, month).await.unwrap().outbound;
    (messages.len(), sent)
}

/// A text to the person known by `BSUID`, as the public API's request `request_id`.
async fn text_to_bsuid(
    intake: &OutboundIntake,
    w: &World,
    request_id: &str,
) -> Result<Accepted, OutboundError> {
    intake
        .accept_api_message(
            &w.platform.tenants,
            &w.tenant,
            &wa(),
            CustomerId::WhatsAppUser(WhatsAppUserId::parse(BSUID).unwrap()),
            ApiMessage::Text("Your order has shipped".into()),
            request_id,
        )
        .await
}

#[tokio::test]
async fn an_api_send_stored_as_the_erasure_begins_is_removed_and_not_sent() {
    let w = world().await;
    let conv = w.wa_customer(HOUR).await;
    let (intake, hook) = intake_erasing(&w, &conv);
    let before = kept(&w, &conv).await;

    let refused = text_to_bsuid(&intake, &w, "req-erasing").await;
    assert!(
        hook.begun.load(Ordering::SeqCst),
        "the erasure began during the send"
    );
    assert!(
        matches!(refused, Err(OutboundError::SubjectErased)),
        "{refused:?}"
    );
    // Nor counted: a refused send uses none of the quota (decision 0130).
    assert_eq!(kept(&w, &conv).await, before, "the message is not kept");
    assert!(w.run().await.is_empty(), "no send job queued");
    assert!(w.graph.sent().is_empty(), "nothing sent to the person");
}

/// A send to a person the business never wrote to, whose erasure begins while it is stored
/// (decision 0131): the conversation the send opened goes with the message, so the person is
/// not listed again, with their number, until the tenant's retention runs out.
#[tokio::test]
async fn an_api_send_that_opened_the_conversation_as_the_erasure_begins_leaves_none() {
    let w = world().await;
    let to = CustomerId::WhatsAppPhone(WhatsAppPhone::parse("16505550199").unwrap());
    let conv = ConversationId::derive(&w.platform.envelope, &w.tenant, &wa(), &to)
        .await
        .unwrap();
    let (intake, hook) = intake_erasing(&w, &conv);
    // The conversations' list the console and the export read.
    let list_entry = Key::new(w.tenant.sub_partition("CONVS"), conv.as_str());

    let refused = intake
        .accept_api_message(
            &w.platform.tenants,
            &w.tenant,
            &wa(),
            to,
            ApiMessage::Text("Your order has shipped".into()),
            "req-erasing-new",
        )
        .await;
    assert!(hook.begun.load(Ordering::SeqCst), "the erasure began");
    assert!(
        matches!(refused, Err(OutboundError::SubjectErased)),
        "{refused:?}"
    );
    assert!(
        w.conversations().meta(&conv).await.unwrap().is_none(),
        "the conversation the send opened is gone"
    );
    assert!(
        w.platform
            .store
            .get(Table::Data, &list_entry)
            .await
            .unwrap()
            .is_none(),
        "nor listed"
    );
    assert!(w.run().await.is_empty(), "no send job queued");
}

/// The intake's removal of a send stored as the erasure began fails (the store unavailable
/// through its retries): the caller is answered an error and retries the same request. The
/// retry finishes the removal, with the count the first try took (decision 0134), whether
/// the erasure is still running or sealed by then; before, the message stayed, and after
/// the seal the retry was even accepted and queued as a duplicate.
async fn a_retried_api_send_finishes_the_removal(sealed_before_the_retry: bool) {
    let w = world().await;
    let conv = w.wa_customer(HOUR).await;
    let (intake, hook) = intake_erasing(&w, &conv);
    hook.removal_fails.store(true, Ordering::SeqCst);
    let (messages, sent) = kept(&w, &conv).await;

    let first = text_to_bsuid(&intake, &w, "req-retried").await;
    assert!(hook.begun.load(Ordering::SeqCst), "the erasure began");
    assert!(
        matches!(first, Err(OutboundError::Conversation(_))),
        "the failed removal is an error the caller retries: {first:?}"
    );
    assert_eq!(
        kept(&w, &conv).await.0,
        messages + 1,
        "left behind by the failed removal"
    );
    hook.removal_fails.store(false, Ordering::SeqCst);
    if sealed_before_the_retry {
        ErasedSubjects::new(w.platform.store.clone())
            .seal(&w.tenant, &conv, cut_of(wappline::clock::now_millis()))
            .await
            .unwrap();
    }

    let retried = text_to_bsuid(&intake, &w, "req-retried").await;
    assert!(
        matches!(retried, Err(OutboundError::SubjectErased)),
        "{retried:?}"
    );
    assert_eq!(
        kept(&w, &conv).await,
        (messages, sent),
        "the message is removed, its count taken back with it"
    );
    assert!(w.run().await.is_empty(), "no send job queued");
    assert!(w.graph.sent().is_empty(), "nothing sent to the person");
}

#[tokio::test]
async fn a_retried_api_send_finishes_the_removal_while_the_erasure_runs() {
    a_retried_api_send_finishes_the_removal(false).await;
}

#[tokio::test]
async fn a_retried_api_send_finishes_the_removal_once_the_erasure_is_sealed() {
    a_retried_api_send_finishes_the_removal(true).await;
}
