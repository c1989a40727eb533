//! Envelope-encryption benchmark: cost per message of encrypt and decrypt with a warm key
//! cache, and key-vault calls per 10,000 encryptions. Run with
//! `cargo bench -p wappline --bench envelope`; figures go to docs/performance.md.
//!
//! Uses the embedded store and the local vault (no network), counting vault calls through a
//! wrapper, so the numbers isolate our code from KMS latency.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use wappline::conversation::ConversationId;
use wappline::crypto::{CachePolicy, Envelope, FieldRef};
use wappline::ids::{PhoneNumberId, TenantId};
use wappline::meta::{AccountRef, CustomerId, WhatsAppPhone};
use wappline::store::embedded::EmbeddedStore;
use wappline::store::{Key, Table};
use wappline::vault::local::LocalVault;
use wappline::vault::{EncryptionContext, GeneratedKey, KeyVault, PlainKey, VaultError};

struct CountingVault {
    inner: LocalVault,
    calls: AtomicU64,
}

#[async_trait]
impl KeyVault for CountingVault {
    async fn generate_data_key(&self, c: &EncryptionContext) -> Result<GeneratedKey, VaultError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.inner.generate_data_key(c).await
    }
    async fn unwrap_data_key(
        &self,
        w: &[u8],
        c: &EncryptionContext,
    ) -> Result<PlainKey, VaultError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.inner.unwrap_data_key(w, c).await
    }
}

fn per_op(label: &str, n: u64, started: Instant) -> f64 {
    let ns = started.elapsed().as_nanos() as f64 / n as f64;
    println!("{label:<44} {:>10.0} ns/op  ({n} ops)", ns);
    ns
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
    let vault = Arc::new(CountingVault {
        inner: LocalVault::open_or_create(dir.path()).unwrap(),
        calls: AtomicU64::new(0),
    });
    let env = Envelope::new(store.clone(), vault.clone(), CachePolicy::default());
    let tenant = TenantId::generate();
    let key = Key::new(
        tenant.sub_partition("CONV#wa#106540352242922#15551234567"),
        "MSG#0001",
    );
    let field = FieldRef::new(&tenant, Table::Data, &key, "body");

    let cold = Instant::now();
    env.encrypt(field, b"warm-up").await.unwrap();
    println!(
        "first encryption of a new tenant (generate + store key): {:.2} ms",
        cold.elapsed().as_secs_f64() * 1e3
    );

    for size in [160usize, 1024, 4096] {
        let body = vec![b'x'; size];
        let n = 100_000u64;
        let before = vault.calls.load(Ordering::Relaxed);
        let t = Instant::now();
        let mut last = Vec::new();
        for _ in 0..n {
            last = env.encrypt(field, &body).await.unwrap();
        }
        per_op(&format!("encrypt {size} B body, warm cache"), n, t);
        let t = Instant::now();
        for _ in 0..n {
            let p = env.decrypt(field, &last).await.unwrap();
            assert_eq!(p.len(), size);
        }
        per_op(&format!("decrypt {size} B body, warm cache"), n, t);
        let calls = vault.calls.load(Ordering::Relaxed) - before;
        println!(
            "key-vault calls per 10,000 encryptions (warm): {:.2}",
            calls as f64 * 10_000.0 / (2 * n) as f64
        );
    }

    // Conversation ids (decision 0033): the keyed hash under the tenant's key, warm, against
    // the unkeyed SHA-256 it replaced (measured here as the baseline).
    let account = AccountRef::WhatsApp(PhoneNumberId::parse("106540352242922").unwrap());
    let customer = CustomerId::WhatsAppPhone(WhatsAppPhone::parse("15551234567").unwrap());
    let n = 200_000u64;
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(
            ConversationId::derive(&env, &tenant, &account, &customer)
                .await
                .unwrap(),
        );
    }
    let keyed = per_op("conversation id, keyed (warm key cache)", n, t);
    let t = Instant::now();
    for _ in 0..n {
        let mut h = Sha256::new();
        for part in [
            tenant.as_str(),
            account.channel().code(),
            account.id(),
            &customer.key(),
        ] {
            h.update((part.len() as u32).to_be_bytes());
            h.update(part.as_bytes());
        }
        std::hint::black_box(format!("c_{}", &hex::encode(h.finalize())[..32]));
    }
    let unkeyed = per_op("conversation id, unkeyed SHA-256 (baseline)", n, t);
    println!("keyed / unkeyed: {:.1}x", keyed / unkeyed);

    // Cold decrypts: a fresh process (empty cache) reading one tenant's messages.
    let fresh = Envelope::new(store.clone(), vault.clone(), CachePolicy::default());
    let blob = env.encrypt(field, b"cold read").await.unwrap();
    let before = vault.calls.load(Ordering::Relaxed);
    let t = Instant::now();
    fresh.decrypt(field, &blob).await.unwrap();
    println!(
        "first decryption in a cold process (key read + unwrap): {:.2} ms, vault calls: {}",
        t.elapsed().as_secs_f64() * 1e3,
        vault.calls.load(Ordering::Relaxed) - before
    );
    println!(
        "blob overhead per value: {} bytes",
        wappline::crypto::format::OVERHEAD
    );
}
