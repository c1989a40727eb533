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

use async_trait::async_trait;
use wappline::app::Platform;
use wappline::conversation::{Conversations, Direction, NewMessage, Origin};
use wappline::erasure::tenant::TenantErasure;
use wappline::ids::{PhoneNumberId, TenantId};
use wappline::meta::{AccountRef, Content, CustomerId, CustomerRef, WhatsAppPhone, WhatsAppUserId};
use wappline::store::embedded::EmbeddedStore;
use wappline::store::{
    Condition, Item, Key, Page, Query, StoreError, Table, TableStore, Update, WriteOp,
};
use wappline::tenant::{RetentionDays, TenantName};
use wappline::vault::local::LocalVault;

const CONVERSATIONS: usize = 50;
const MESSAGES: usize = 100;

/// Counts calls by kind: [get, put, update, delete, query, scan, transact].
#[derive(Default)]
struct Counts([AtomicU64; 7]);

struct Counting {
    inner: Arc<dyn TableStore>,
    counts: Arc<Counts>,
}

impl Counting {
    fn hit(&self, i: usize) {
        self.counts.0[i].fetch_add(1, Ordering::Relaxed);
    }
}

#[async_trait]
impl TableStore for Counting {
    async fn get(&self, t: Table, k: &Key) -> Result<Option<Item>, StoreError> {
        self.hit(0);
        self.inner.get(t, k).await
    }
    async fn put(&self, t: Table, i: Item, c: Option<Condition>) -> Result<(), StoreError> {
        self.hit(1);
        self.inner.put(t, i, c).await
    }
    async fn update(
        &self,
        t: Table,
        k: &Key,
        u: Update,
        c: Option<Condition>,
    ) -> Result<Item, StoreError> {
        self.hit(2);
        self.inner.update(t, k, u, c).await
    }
    async fn delete(&self, t: Table, k: &Key, c: Option<Condition>) -> Result<(), StoreError> {
        self.hit(3);
        self.inner.delete(t, k, c).await
    }
    async fn query(&self, t: Table, q: &Query) -> Result<Page, StoreError> {
        self.hit(4);
        self.inner.query(t, q).await
    }
    async fn scan(&self, t: Table, a: Option<&Key>, l: usize) -> Result<Page, StoreError> {
        self.hit(5);
        self.inner.scan(t, a, l).await
    }
    async fn transact_write(&self, ops: Vec<WriteOp>) -> Result<(), StoreError> {
        self.hit(6);
        self.inner.transact_write(ops).await
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
    let store: Arc<dyn TableStore> = Arc::new(Counting {
        inner: base.clone(),
        counts: counts.clone(),
    });
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
