//! Account erasure sweep: store calls and time per 10,000 items of the erased tenant, with a
//! second tenant of the same size in the same tables (the sweep's cost must not depend on
//! it). Run with `cargo bench -p wappline --bench tenant_sweep`; figures go to
//! docs/performance.md.
//!
//! Embedded store and local vault (no network): the figures count our calls, which on
//! DynamoDB are one request each.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wappline::app::Platform;
use wappline::conversation::{Conversations, Direction, NewMessage, Origin};
use wappline::erasure::tenant::TenantErasure;
use wappline::faults::hooked::{HookedStore, StoreCall, Verdict};
use wappline::ids::{PhoneNumberId, TenantId};
use wappline::meta::{AccountRef, Content, CustomerId, CustomerRef, WhatsAppPhone, WhatsAppUserId};
use wappline::store::embedded::EmbeddedStore;
use wappline::store::{Table, TableStore};
use wappline::tenant::{RetentionDays, TenantName};
use wappline::vault::local::LocalVault;

const CONVERSATIONS: usize = 50;
const MESSAGES: usize = 100;

/// Counts calls by kind: [get, put, update, delete, query, scan, transact].
#[derive(Default)]
struct Counts([AtomicU64; 7]);

impl Counts {
    fn hit(&self, call: &StoreCall<'_>) {
        let i = match call {
            StoreCall::Get { .. } => 0,
            StoreCall::Put { .. } => 1,
            StoreCall::Update { .. } => 2,
            // Batches run as single deletes (below), as the figures have always counted.
            StoreCall::Delete { .. } | StoreCall::DeleteBatch { .. } => 3,
            StoreCall::Query { .. } => 4,
            StoreCall::Scan { .. } => 5,
            StoreCall::Transact { .. } => 6,
        };
        self.0[i].fetch_add(1, Ordering::Relaxed);
    }
}

async fn fill(p: &Platform, store: &Arc<dyn TableStore>, name: &str) -> TenantId {
    let tenant = p
        .tenants
        .create(TenantName::parse(name).unwrap(), RetentionDays::default())
        .await
        .unwrap()
        .id;
    let account = AccountRef::WhatsApp(PhoneNumberId::parse("106540352242922").unwrap());
    let c = Conversations::new(tenant.clone(), store.clone(), p.envelope.clone());
    for n in 0..CONVERSATIONS {
        let mut customer = CustomerRef::new(CustomerId::WhatsAppUser(
            WhatsAppUserId::parse(&format!("US.{:018}", n + 1)).unwrap(),
        ));
        customer.phone = Some(WhatsAppPhone::parse(&format!("1650555{:04}", n)).unwrap());
        let conv = c
            .record_customer(&account, &customer, Some(1), 90)
            .await
            .unwrap();
        for m in 0..MESSAGES {
            let message = NewMessage {
                provider_message_id: format!("wamid.{name}.{n}.{m}"),
                direction: Direction::Inbound,
                origin: Origin::Customer,
                content: Content::Text {
                    body: "a message of ordinary length, about sixty characters".into(),
                },
                at_ms: 1_000 + m as i64,
                reply_to: None,
                crm_im: None,
                template: None,
                written_with: Default::default(),
            };
            c.store_message(&account, &conv, message, 90).await.unwrap();
        }
    }
    tenant
}

async fn items_of(store: &dyn TableStore, tenant: &TenantId) -> usize {
    let mut n = 0;
    for table in Table::ALL {
        let mut next = None;
        loop {
            let page = store.scan(table, next.as_ref(), 500).await.unwrap();
            n += page
                .items
                .iter()
                .filter(|i| tenant.owns_partition(i.get_s("pk").unwrap_or_default()))
                .count();
            match page.next {
                Some(k) => next = Some(k),
                None => break,
            }
        }
    }
    n
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let base: Arc<dyn TableStore> = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
    let vault = Arc::new(LocalVault::open_or_create(dir.path()).unwrap());
    let counts = Arc::new(Counts::default());
    let counted = counts.clone();
    let store: Arc<dyn TableStore> = Arc::new(
        HookedStore::with(base.clone(), move |call: &StoreCall<'_>| {
            counted.hit(call);
            Verdict::Run
        })
        .one_by_one(),
    );
    let p = Platform::new(store.clone(), vault);
    let gone = fill(&p, &store, "Leaving").await;
    let _stays = fill(&p, &store, "Staying").await;
    let items = items_of(base.as_ref(), &gone).await;

    let erasure = TenantErasure::new(store.clone(), p.envelope.clone(), p.tenants.clone());
    erasure
        .request(&gone, Duration::ZERO, "bench")
        .await
        .unwrap();
    for c in &counts.0 {
        c.store(0, Ordering::Relaxed);
    }
    let start = Instant::now();
    let mut runs = 0;
    while erasure.run_due(2_000).await.unwrap().more_work {
        runs += 1;
    }
    let elapsed = start.elapsed();
    assert_eq!(items_of(base.as_ref(), &gone).await, 0);
    let c: Vec<u64> = counts.0.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    let total: u64 = c.iter().sum();
    let per = |x: f64| x * 10_000.0 / items as f64;
    println!("tenant items: {items} (another tenant of the same size shares the tables)");
    println!("runs of 2,000: {}", runs + 1);
    println!(
        "store calls: get {} put {} update {} delete {} query {} scan {} transact {} (total {total})",
        c[0], c[1], c[2], c[3], c[4], c[5], c[6]
    );
    println!(
        "per 10,000 items: {:.0} store calls ({:.0} deletes, {:.0} queries, {:.0} gets), {:.2} s",
        per(total as f64),
        per(c[3] as f64),
        per(c[4] as f64),
        per(c[0] as f64),
        per(elapsed.as_secs_f64()),
    );
}
