//! A customer's message whose person's erasure begins while the inbound worker stores it
//! (decision 0128). The worker checks the erasure's marker before it writes; an erasure that
//! marks the person after that check and deletes their conversation before the write would
//! leave the message behind, past the 30 days the privacy policy gives an erasure. The worker
//! reads the marker again once the message is stored: a message of the erased period is
//! removed again, and nothing is queued for Bitrix24. A message of an imported chat history is
//! read again the same way.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use e2e_tests::embedded_tenant::{only_inbound_job, queued_sync_actions, EmbeddedTenant};
use e2e_tests::harness::{sample, WA_NUMBER};
use e2e_tests::whatsapp_events;
use wappline::clock::{now_millis, now_secs};
use wappline::coexistence::{Coexistence, CoexistenceSettings};
use wappline::consumer::Outcome;
use wappline::conversation::erased::{cut_of, ErasedSubjects};
use wappline::conversation::ConversationId;
use wappline::faults::hooked::{HookedStore, StoreCall, StoreHook, Verdict};
use wappline::ids::{PhoneNumberId, TenantId};
use wappline::inbound::worker::InboundWorker;
use wappline::inbound::InboundJob;
use wappline::meta::split_webhook;
use wappline::store::{StoreError, Table, TableStore};
use wappline::usage::{Usage, UsageMonth};

const PHONE: &str = "16505551234";

/// How far the erasure has got when the message's transaction is about to be written.
#[derive(Clone, Copy)]
enum Meanwhile {
    /// Marked, its deletions running.
    Marked,
    /// Marked, everything deleted, and sealed with the cut.
    Sealed,
    /// Sealed, and then the removal of the message the worker stored fails (every later
    /// transaction answers the store unavailable) until the job's redelivery.
    SealedAndRemovalFails,
    /// Sealed, and every transaction after the first removal's fails until the job's
    /// redelivery: a process that stopped between removing the message and removing the
    /// conversation it opened, when those were two steps.
    SealedAndLaterTransactionsFail,
}

impl Meanwhile {
    /// The first of the transactions that fail (1 is the message's store), if any.
    fn failing_from(self) -> usize {
        match self {
            Meanwhile::SealedAndRemovalFails => 2,
            Meanwhile::SealedAndLaterTransactionsFail => 3,
            Meanwhile::Marked | Meanwhile::Sealed => usize::MAX,
        }
    }
}

/// Runs the erasure of the conversation the message goes into, once, just before the
/// transaction that stores it: after the worker's first check.
struct ErasureMeanwhile {
    inner: Arc<dyn TableStore>,
    tenant: TenantId,
    how_far: Meanwhile,
    ran: AtomicBool,
    /// Transactions seen so far.
    transactions: AtomicUsize,
    /// Transactions from [`Meanwhile::failing_from`] on answer the store unavailable while
    /// set.
    removal_fails: AtomicBool,
}

#[async_trait]
impl StoreHook for ErasureMeanwhile {
    async fn before(&self, call: &StoreCall<'_>) -> Verdict {
        if !matches!(call, StoreCall::Transact { .. }) {
            return Verdict::Run;
        }
        let nth = self.transactions.fetch_add(1, Ordering::SeqCst) + 1;
        if self.ran.swap(true, Ordering::SeqCst) {
            if self.removal_fails.load(Ordering::SeqCst) && nth >= self.how_far.failing_from() {
                return Verdict::Fail(StoreError::Unavailable("injected".into()));
            }
            return Verdict::Run;
        }
        let conversation = call
            .targets()
            .iter()
            .find_map(|(table, key)| {
                (*table == Table::Data)
                    .then(|| key.pk.rsplit_once("#CONV#").map(|(_, id)| id.to_owned()))
                    .flatten()
            })
            .expect("the message's transaction writes into its conversation");
        let conversation = ConversationId::parse(&conversation).unwrap();
        let erased = ErasedSubjects::new(self.inner.clone());
        let marked_at = now_millis();
        erased
            .mark(&self.tenant, &conversation, marked_at)
            .await
            .unwrap();
        if !matches!(self.how_far, Meanwhile::Marked) {
            erased
                .seal(&self.tenant, &conversation, cut_of(marked_at))
                .await
                .unwrap();
        }
        Verdict::Run
    }
}

/// The data-table items whose keys `pick` chooses.
async fn count_items(store: &Arc<dyn TableStore>, pick: impl Fn(&str, &str) -> bool) -> usize {
    let mut n = 0;
    let mut after = None;
    loop {
        let page = store.scan(Table::Data, after.as_ref(), 100).await.unwrap();
        n += page
            .items
            .iter()
            .filter(|i| pick(i.get_s("pk").unwrap_or(""), i.get_s("sk").unwrap_or("")))
            .count();
        match page.next {
            Some(next) => after = Some(next),
            None => return n,
        }
    }
}

/// What the webhook queues: a customer's text written a minute ago (before the erasure, in
/// its erased period), or a message of the chat history Meta sends for a Coexistence number.
#[derive(Clone, Copy)]
enum Event {
    Text,
    History,
    /// A message the business wrote from the WhatsApp Business app (Coexistence).
    Echo,
}

/// What the worker answered and what it left behind.
struct Left {
    outcome: Outcome,
    /// Message and provider-id index items.
    stored: usize,
    /// Sync jobs queued for Bitrix24.
    queued: usize,
    /// Messages counted in the tenant's inbound usage this month.
    counted: u64,
    /// Conversation items (`META`) and list entries.
    conversations: usize,
}

async fn erasure_during_the_store(how_far: Meanwhile, event: Event) -> Left {
    let EmbeddedTenant {
        platform,
        queue,
        tenant,
        dir: _dir,
        ..
    } = EmbeddedTenant::start([]).await;
    let hook = Arc::new(ErasureMeanwhile {
        inner: platform.store.clone(),
        tenant: tenant.clone(),
        how_far,
        ran: AtomicBool::new(false),
        transactions: AtomicUsize::new(0),
        removal_fails: AtomicBool::new(how_far.failing_from() != usize::MAX),
    });
    let store = Arc::new(HookedStore::new(
        platform.store.clone(),
        wappline::faults::hooked::SharedHook(hook.clone()),
    ));
    let worker = InboundWorker::new(
        store,
        platform.envelope.clone(),
        platform.tenants.clone(),
        queue.clone(),
    );
    let job = match event {
        Event::Text => {
            let body =
                whatsapp_events::text(PHONE, "Erin", "wamid.ERASING.IN", now_secs() - 60, "hi");
            only_inbound_job(&tenant, &body)
        }
        Event::Echo => {
            let mut batch = split_webhook(&sample("whatsapp-echo-coexistence.json")).unwrap();
            InboundJob::new(tenant.clone(), batch.events.remove(0))
        }
        Event::History => {
            // The tenant imports its chat history (decision 0052).
            Coexistence::new(platform.store.clone())
                .set(
                    &tenant,
                    &PhoneNumberId::parse(WA_NUMBER).unwrap(),
                    CoexistenceSettings {
                        history_import: true,
                        echo_author_id: None,
                    },
                    "test",
                )
                .await
                .unwrap();
            let mut batch = split_webhook(&sample("whatsapp-history.json")).unwrap();
            InboundJob::new(tenant.clone(), batch.events.remove(0))
        }
    };
    let first = worker.process(&job).await;
    assert!(hook.ran.load(Ordering::SeqCst), "the erasure ran meanwhile");
    let outcome = match first {
        // An error: the consumer answers it `Failed`, and the queue delivers the job again.
        Err(_) if hook.removal_fails.swap(false, Ordering::SeqCst) => {
            worker.process(&job).await.unwrap()
        }
        first => first.unwrap(),
    };
    Left {
        outcome,
        stored: count_items(&platform.store, |pk, sk| {
            sk.starts_with("MSG#") || pk.contains("#MID#")
        })
        .await,
        queued: queued_sync_actions(queue.as_ref()).await.len(),
        counted: Usage::new(platform.store.clone())
            .report(&tenant, UsageMonth::current(now_secs()))
            .await
            .unwrap()
            .inbound
            .total,
        conversations: count_items(&platform.store, |pk, sk| {
            sk == "META" && pk.contains("#CONV#") || pk.ends_with("#CONVS")
        })
        .await,
    }
}

#[tokio::test]
async fn a_message_stored_as_the_erasure_begins_is_removed_and_waits_for_it() {
    let left = erasure_during_the_store(Meanwhile::Marked, Event::Text).await;
    assert!(
        matches!(left.outcome, Outcome::RetryAfter(_)),
        "{:?}",
        left.outcome
    );
    assert_eq!(left.stored, 0, "the message and its index item are removed");
    assert_eq!(left.queued, 0, "nothing queued for Bitrix24");
    // Counted when it is relayed, if it is (decision 0130): not now, nor twice then.
    assert_eq!(left.counted, 0, "its count is taken back with it");
    // The conversation this delivery opened goes too (decision 0131).
    assert_eq!(left.conversations, 0, "no conversation of the person left");
}

#[tokio::test]
async fn a_message_stored_after_the_erasure_ran_is_removed_and_dropped() {
    let left = erasure_during_the_store(Meanwhile::Sealed, Event::Text).await;
    assert_eq!(left.outcome, Outcome::Done);
    assert_eq!(left.stored, 0, "the message and its index item are removed");
    assert_eq!(left.queued, 0, "nothing queued for Bitrix24");
    assert_eq!(
        left.counted, 0,
        "a message never relayed is not counted (decision 0130)"
    );
    assert_eq!(
        left.conversations, 0,
        "the conversation it opened is removed (decision 0131)"
    );
}

/// The removal after the second read fails (the store unavailable through its retries):
/// the job is retried, and its redelivery, which the job's first check of the now sealed
/// erasure stops before it stores anything, removes the message the first delivery left
/// (decision 0132). Before, it stayed until the tenant's retention.
#[tokio::test]
async fn a_message_whose_removal_failed_is_removed_by_the_redelivery() {
    let left = erasure_during_the_store(Meanwhile::SealedAndRemovalFails, Event::Text).await;
    assert_eq!(left.outcome, Outcome::Done);
    assert_eq!(left.stored, 0, "the message and its index item are removed");
    assert_eq!(left.queued, 0, "nothing queued for Bitrix24");
    // What the first delivery wrote besides, as the message says (decision 0133).
    assert_eq!(left.counted, 0, "its count is taken back with it");
    assert_eq!(
        left.conversations, 0,
        "the conversation the first delivery opened is removed"
    );
}

/// The message and the conversation its delivery opened go in one transaction (decision
/// 0133): when nothing after that transaction can be written, nothing of the person is
/// left. As two steps, a process stopped between them left the conversation, with the
/// person's name and number, and no redelivery found it again (the message was gone).
#[tokio::test]
async fn the_conversation_goes_in_the_same_write_as_the_message() {
    let left =
        erasure_during_the_store(Meanwhile::SealedAndLaterTransactionsFail, Event::Text).await;
    assert_eq!(left.outcome, Outcome::Done);
    assert_eq!(left.stored, 0, "the message and its index item are removed");
    assert_eq!(left.queued, 0, "nothing queued for Bitrix24");
    assert_eq!(left.counted, 0, "its count is taken back with it");
    assert_eq!(left.conversations, 0, "no conversation of the person left");
}

/// A message of the imported chat history (Coexistence) is read again the same way.
#[tokio::test]
async fn a_history_message_stored_as_the_erasure_begins_is_removed_and_waits_for_it() {
    let left = erasure_during_the_store(Meanwhile::Marked, Event::History).await;
    assert!(
        matches!(left.outcome, Outcome::RetryAfter(_)),
        "{:?}",
        left.outcome
    );
    assert_eq!(left.stored, 0, "the message and its index item are removed");
    assert_eq!(left.conversations, 0, "and the conversation it opened");
}

/// An echo of the business's own app is stored under its message id like a customer's
/// message; a redelivery finishes its failed removal too (decision 0133).
#[tokio::test]
async fn an_echo_whose_removal_failed_is_removed_by_the_redelivery() {
    let left = erasure_during_the_store(Meanwhile::SealedAndRemovalFails, Event::Echo).await;
    assert_eq!(left.outcome, Outcome::Done);
    assert_eq!(left.stored, 0, "the echo and its index item are removed");
    assert_eq!(left.queued, 0, "nothing queued for Bitrix24");
    assert_eq!(left.conversations, 0, "nor the conversation it opened");
}
