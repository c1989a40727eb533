//! Each outbox operation of a flush is claimed and settled by its own conditional update, not
//! in a transaction with the others (decision 0086), and a conversation's operations still go
//! out in order when another flusher holds one of them.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use e2e_tests::fake_bitrix::FAKE_DOMAIN;
use wappline::crm_sync::outbox::{OpState, Outbox, StagedOp};
use wappline::crm_sync::{FlushConfig, PortalFlusher};
use wappline::faults::hooked::{HookedStore, StoreCall, StoreHook, Verdict};
use wappline::ids::TenantId;
use wappline::store::{Key, TableStore};

use super::{batch_commands, names_a_staged_operation, staged_post, Rig};

/// Counts the transactions that write staged operations.
#[derive(Default)]
struct CountsOperationTransactions {
    transactions: AtomicUsize,
}

#[async_trait]
impl StoreHook for CountsOperationTransactions {
    async fn before(&self, call: &StoreCall<'_>) -> Verdict {
        if matches!(call, StoreCall::Transact { .. }) && names_a_staged_operation(call) {
            self.transactions.fetch_add(1, Ordering::SeqCst);
        }
        Verdict::Run
    }
}

/// The send commands of each `batch` request the portal received, by request.
fn sends_per_request(rig: &Rig) -> Vec<usize> {
    batch_commands(rig)
        .iter()
        .map(|commands| {
            commands
                .iter()
                .filter(|c| c.starts_with("imconnector.send.messages"))
                .count()
        })
        .collect()
}

/// Sixteen messages of eight conversations, posted by one worker in flushes that carry
/// several operations: none of them claims or settles its operations in a transaction.
#[tokio::test]
async fn a_flush_of_several_operations_claims_and_settles_them_without_a_transaction() {
    let rig = Rig::start().await;
    let store = Arc::new(HookedStore::new(
        rig.h.server.platform().store.clone(),
        CountsOperationTransactions::default(),
    ));
    let worker = rig.worker(store.clone());
    let want = rig.customers_write(8, 2, "claims").await;
    rig.run_until_empty(&worker, 20, |_| Duration::ZERO).await;
    rig.assert_delivered_once_in_order(&want);
    let sends = sends_per_request(&rig);
    assert!(
        sends.iter().any(|&n| n >= 2),
        "a request carried several posts: {sends:?}"
    );
    assert_eq!(
        store.hook().transactions.load(Ordering::SeqCst),
        0,
        "no transaction over staged operations"
    );
    assert_eq!(rig.dead_lettered().await, 0);
    rig.h.server.shutdown().await;
}

/// Another flusher (a process whose portal lease ran out while it still worked) claims one
/// operation between this flusher's read of the ready operations and its claim of them.
struct TakenJustBefore {
    /// The outbox over the store underneath the hook: the other flusher's.
    other: Outbox,
    op: StagedOp,
    until_ms: i64,
    taken: AtomicBool,
}

#[async_trait]
impl StoreHook for TakenJustBefore {
    async fn before(&self, call: &StoreCall<'_>) -> Verdict {
        let claims_it = matches!(call, StoreCall::Update { key, .. } if **key == self.op.key);
        if claims_it && !self.taken.swap(true, Ordering::SeqCst) {
            let now = self.until_ms - 1;
            let taken = self
                .other
                .claim(
                    std::slice::from_ref(&self.op),
                    "another-flusher",
                    self.until_ms,
                    now,
                )
                .await
                .unwrap();
            assert_eq!(
                taken,
                vec![self.op.key.clone()],
                "the other flusher's claim"
            );
        }
        Verdict::Run
    }
}

/// Conversation X has two posts staged, Y one. Another flusher takes X's first post just
/// before this flush claims the three: the flush posts Y's and leaves X's second one pending,
/// unposted, behind the first. Once the other flusher's claim has run out, the next flush
/// posts X's two in order.
#[tokio::test]
async fn an_operation_another_flusher_holds_keeps_its_conversations_later_one_unposted() {
    let rig = Rig::start().await;
    let platform = rig.h.server.platform();
    let tenant = TenantId::parse(&rig.tenant).unwrap();
    let outbox = Outbox::new(platform.store.clone(), platform.envelope.clone());
    let (x, y) = (
        format!("c_{}", "a".repeat(32)),
        format!("c_{}", "b".repeat(32)),
    );
    let now = rig.now.load(Ordering::SeqCst);
    let staged: Vec<(Key, &str)> = vec![
        (Outbox::key(&tenant, &x, "x1"), "wamid.held.x1"),
        (Outbox::key(&tenant, &x, "x2"), "wamid.held.x2"),
        (Outbox::key(&tenant, &y, "y1"), "wamid.held.y1"),
    ];
    for (i, (key, id)) in staged.iter().enumerate() {
        let conversation = if i < 2 { &x } else { &y };
        let state = outbox
            .stage(
                &tenant,
                key,
                &staged_post(conversation, id, Vec::new()),
                now + i as i64,
            )
            .await
            .unwrap();
        assert_eq!(state, OpState::Pending);
    }
    let ready = outbox.ready(&tenant, now, 50).await.unwrap();
    let first = ready.iter().find(|o| o.key == staged[0].0).unwrap().clone();
    let other_until = now + 10_000;
    let hooked: Arc<dyn TableStore> = Arc::new(HookedStore::new(
        platform.store.clone(),
        TakenJustBefore {
            other: outbox.clone(),
            op: first,
            until_ms: other_until,
            taken: AtomicBool::new(false),
        },
    ));
    let clock_now = rig.now.clone();
    let flusher = |store: Arc<dyn TableStore>| {
        let now = clock_now.clone();
        PortalFlusher::new(
            Outbox::new(store.clone(), platform.envelope.clone()),
            store,
            crate::bitrix_client::client(&rig.fake),
            FlushConfig {
                budget: Duration::from_secs(3),
                ..FlushConfig::default()
            },
            Arc::new(move || now.load(Ordering::SeqCst)),
        )
    };
    let scope = platform.tenants.scope(&tenant).await.unwrap().unwrap();

    let report = flusher(hooked).flush(&scope).await.unwrap();
    assert_eq!(
        rig.fake.posts_of(FAKE_DOMAIN, "wamid.held.y1"),
        1,
        "{report:?}"
    );
    assert_eq!(
        rig.fake.posts_of(FAKE_DOMAIN, "wamid.held.x1"),
        0,
        "the other flusher's"
    );
    assert_eq!(
        rig.fake.posts_of(FAKE_DOMAIN, "wamid.held.x2"),
        0,
        "not before the post staged ahead of it: {report:?}"
    );
    assert_eq!(
        outbox.state(&staged[1].0).await.unwrap(),
        Some(OpState::Pending),
        "given back, not left claimed"
    );

    // The other flusher never settles (it died): its claim runs out, and X's posts go out in
    // the order they were staged.
    rig.now.store(other_until + 1, Ordering::SeqCst);
    flusher(platform.store.clone()).flush(&scope).await.unwrap();
    let order: Vec<String> = rig
        .fake
        .messages_received()
        .into_iter()
        .map(|m| m.external_message_id)
        .filter(|id| id.starts_with("wamid.held.x"))
        .collect();
    assert_eq!(order, ["wamid.held.x1", "wamid.held.x2"]);
    assert_eq!(rig.fake.duplicate_posts(), 0);
    rig.h.server.shutdown().await;
}

/// A claim shortened below a Bitrix24 request (`LEASE_SECS` under the client's timeout, as
/// the fault soak runs: 2 s and 2 s) is lengthened back, so that after its renewal before a
/// post it still protects the operations for the request's whole timeout, with a quarter to
/// spare for writing the answer (decision 0110). At 2 s and 2 s a post could land after
/// another flusher had taken its operations over and looked for it.
#[tokio::test]
async fn a_claim_is_never_shorter_than_a_request() {
    let rig = Rig::start().await;
    let platform = rig.h.server.platform();
    let flusher = |claim: Duration, timeout: Duration| {
        let mut config = crate::bitrix_client::config(&rig.fake);
        config.request_timeout = timeout;
        let client = wappline::bitrix::BitrixClient::new(config).unwrap();
        let now = rig.now.clone();
        PortalFlusher::new(
            Outbox::new(platform.store.clone(), platform.envelope.clone()),
            platform.store.clone(),
            client,
            FlushConfig {
                claim,
                ..FlushConfig::default()
            },
            Arc::new(move || now.load(Ordering::SeqCst)),
        )
    };
    let two = Duration::from_secs(2);
    let claim = flusher(two, two).config().claim;
    assert!(claim * 3 / 4 >= two, "{claim:?}");
    assert!(claim < Duration::from_secs(3), "{claim:?}");
    // A claim long enough already (the deployed 30 s for 20 s requests) is kept as it is.
    let deployed = flusher(Duration::from_secs(30), Duration::from_secs(20));
    assert_eq!(deployed.config().claim, Duration::from_secs(30));
}
