//! Envelope encryption: round trips, tampering, moved ciphertexts, wrong context, rotation,
//! cache bounds, shredding.

use std::sync::Arc;
use std::time::Duration;

use wappline::crypto::format::OVERHEAD;
use wappline::crypto::{CachePolicy, CryptoError, Envelope, FieldRef, RotationPolicy};
use wappline::ids::TenantId;
use wappline::store::{Item, Key, Query, Table};
use wappline::vault::VaultError;

use crate::backends::Backend;
use crate::on_both_backends;

fn envelope(b: &Backend, policy: CachePolicy) -> Envelope {
    Envelope::new(b.store.clone(), b.vault.clone(), policy)
}

fn msg_key(t: &TenantId, n: u32) -> Key {
    Key::new(t.sub_partition("CONV#wa#1"), format!("MSG#{n:05}"))
}

async fn round_trip_without_plaintext_in_blob(b: Backend) {
    let env = envelope(&b, CachePolicy::default());
    let t = TenantId::generate();
    let key = msg_key(&t, 1);
    let field = FieldRef::new(&t, Table::Data, &key, "body");
    let blob = env.encrypt(field, b"hello secret world").await.unwrap();
    assert_eq!(blob.len(), b"hello secret world".len() + OVERHEAD);
    assert!(!blob.windows(6).any(|w| w == b"secret"));
    assert_eq!(
        env.decrypt(field, &blob).await.unwrap(),
        b"hello secret world"
    );
    // Two encryptions of the same text differ (random nonces).
    assert_ne!(
        env.encrypt(field, b"hello secret world").await.unwrap(),
        blob
    );
}

async fn tampering_fails_cleanly(b: Backend) {
    let env = envelope(&b, CachePolicy::default());
    let t = TenantId::generate();
    let key = msg_key(&t, 1);
    let field = FieldRef::new(&t, Table::Data, &key, "body");
    let blob = env.encrypt(field, b"do not change me").await.unwrap();
    for i in 0..blob.len() {
        let mut bad = blob.clone();
        bad[i] ^= 0x80;
        let err = env.decrypt(field, &bad).await.unwrap_err();
        assert!(
            matches!(err, CryptoError::Undecryptable | CryptoError::KeyGone(_)),
            "byte {i}: {err:?}"
        );
    }
    for len in [0, 1, 16, blob.len() - 1] {
        assert!(matches!(
            env.decrypt(field, &blob[..len]).await.unwrap_err(),
            CryptoError::Undecryptable
        ));
    }
}

async fn moved_ciphertexts_fail(b: Backend) {
    let env = envelope(&b, CachePolicy::default());
    let (t1, t2) = (TenantId::generate(), TenantId::generate());
    let key = msg_key(&t1, 1);
    let blob = env
        .encrypt(FieldRef::new(&t1, Table::Data, &key, "body"), b"private")
        .await
        .unwrap();
    let other_item = msg_key(&t1, 2);
    let t2_item = msg_key(&t2, 1);
    // Make sure tenant 2 has a key, so failure is the AAD/key, not a missing key.
    env.encrypt(FieldRef::new(&t2, Table::Data, &t2_item, "body"), b"x")
        .await
        .unwrap();
    let cases = [
        FieldRef::new(&t1, Table::Data, &other_item, "body"),
        FieldRef::new(&t1, Table::Data, &key, "caption"),
        FieldRef::new(&t1, Table::Dedupe, &key, "body"),
        FieldRef::new(&t2, Table::Data, &t2_item, "body"),
    ];
    for field in cases {
        let err = env.decrypt(field, &blob).await.unwrap_err();
        assert!(
            matches!(err, CryptoError::Undecryptable),
            "{field:?}: {err:?}"
        );
    }
    // An item key outside the tenant's partitions is refused before any key is touched.
    let err = env
        .decrypt(FieldRef::new(&t2, Table::Data, &key, "body"), &blob)
        .await
        .unwrap_err();
    assert!(matches!(err, CryptoError::ForeignItem));
}

async fn wrapped_key_under_another_tenant_is_refused(b: Backend) {
    // Copy tenant 1's wrapped key into tenant 2's slot: the vault must refuse it, because
    // the encryption context (tenant id) does not match.
    let env = envelope(&b, CachePolicy::default());
    let (t1, t2) = (TenantId::generate(), TenantId::generate());
    let k1 = msg_key(&t1, 1);
    env.encrypt(FieldRef::new(&t1, Table::Data, &k1, "body"), b"a")
        .await
        .unwrap();
    let page = b
        .store
        .query(Table::Keys, &Query::partition(t1.partition()))
        .await
        .unwrap();
    let stolen = page.items[0].clone();
    let mut planted = Item::new(&Key::new(t2.partition(), stolen.get_s("sk").unwrap()));
    for (name, value) in &stolen.0 {
        if name != "pk" && name != "sk" {
            planted.set(name, value.clone());
        }
    }
    b.store.put(Table::Keys, planted, None).await.unwrap();
    let fresh = envelope(&b, CachePolicy::default());
    let k2 = msg_key(&t2, 1);
    let err = fresh
        .encrypt(FieldRef::new(&t2, Table::Data, &k2, "body"), b"b")
        .await
        .unwrap_err();
    assert!(
        matches!(err, CryptoError::Vault(VaultError::InvalidCiphertext)),
        "{err:?}"
    );
}

async fn rotation_keeps_old_versions_readable(b: Backend) {
    let env = envelope(&b, CachePolicy::default());
    let t = TenantId::generate();
    let key = msg_key(&t, 1);
    let field = FieldRef::new(&t, Table::Data, &key, "body");
    let old = env.encrypt(field, b"before").await.unwrap();
    assert_eq!(wappline::crypto::format::key_version(&old), Some(1));
    assert_eq!(env.rotate(&t).await.unwrap(), 2);
    let new = env.encrypt(field, b"after").await.unwrap();
    assert_eq!(wappline::crypto::format::key_version(&new), Some(2));
    // A cold process reads both and encrypts with the newest.
    let cold = envelope(&b, CachePolicy::default());
    assert_eq!(cold.decrypt(field, &old).await.unwrap(), b"before");
    assert_eq!(cold.decrypt(field, &new).await.unwrap(), b"after");
    let cold_new = cold.encrypt(field, b"cold").await.unwrap();
    assert_eq!(wappline::crypto::format::key_version(&cold_new), Some(2));
}

async fn warm_cache_makes_no_vault_calls(b: Backend) {
    let env = envelope(&b, CachePolicy::default());
    let t = TenantId::generate();
    let key = msg_key(&t, 1);
    let field = FieldRef::new(&t, Table::Data, &key, "body");
    let blob = env.encrypt(field, b"first").await.unwrap();
    let after_first = env.stats();
    assert_eq!(
        after_first.vault_calls, 1,
        "one GenerateDataKey for a new tenant"
    );
    for _ in 0..500 {
        let b2 = env.encrypt(field, b"again").await.unwrap();
        env.decrypt(field, &b2).await.unwrap();
    }
    assert_eq!(
        env.stats(),
        after_first,
        "no vault call or key read when warm"
    );

    let cold = envelope(&b, CachePolicy::default());
    for _ in 0..100 {
        cold.decrypt(field, &blob).await.unwrap();
    }
    assert_eq!(cold.stats().vault_calls, 1, "one unwrap, then cached");
}

async fn cache_bounds_force_unwraps(b: Backend) {
    let t = TenantId::generate();
    let key = msg_key(&t, 1);
    let field = FieldRef::new(&t, Table::Data, &key, "body");
    let blob = envelope(&b, CachePolicy::default())
        .encrypt(field, b"x")
        .await
        .unwrap();

    let by_uses = envelope(
        &b,
        CachePolicy {
            max_uses: 10,
            ..CachePolicy::default()
        },
    );
    for _ in 0..25 {
        by_uses.decrypt(field, &blob).await.unwrap();
    }
    assert_eq!(by_uses.stats().vault_calls, 3, "unwrap at uses 1, 11, 21");

    let by_age = envelope(
        &b,
        CachePolicy {
            max_age: Duration::from_millis(200),
            ..CachePolicy::default()
        },
    );
    by_age.decrypt(field, &blob).await.unwrap();
    by_age.decrypt(field, &blob).await.unwrap();
    assert_eq!(by_age.stats().vault_calls, 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    by_age.decrypt(field, &blob).await.unwrap();
    assert_eq!(
        by_age.stats().vault_calls,
        2,
        "expired cache entry unwrapped again"
    );
}

async fn shredding_makes_ciphertexts_unreadable(b: Backend) {
    let env = envelope(&b, CachePolicy::default());
    let (t, other) = (TenantId::generate(), TenantId::generate());
    let key = msg_key(&t, 1);
    let field = FieldRef::new(&t, Table::Data, &key, "body");
    let blob = env.encrypt(field, b"forget me").await.unwrap();
    env.rotate(&t).await.unwrap();
    let blob2 = env.encrypt(field, b"me too").await.unwrap();
    let okey = msg_key(&other, 1);
    let ofield = FieldRef::new(&other, Table::Data, &okey, "body");
    let kept = env.encrypt(ofield, b"keep me").await.unwrap();

    assert_eq!(env.shred(&t).await.unwrap(), 2);
    for (e, label) in [
        (&env, "same process"),
        (&envelope(&b, CachePolicy::default()), "cold"),
    ] {
        for bl in [&blob, &blob2] {
            let err = e.decrypt(field, bl).await.unwrap_err();
            assert!(matches!(err, CryptoError::KeyGone(_)), "{label}: {err:?}");
        }
        assert_eq!(e.decrypt(ofield, &kept).await.unwrap(), b"keep me");
    }
}

async fn concurrent_first_use_agrees_on_one_key(b: Backend) {
    let t = TenantId::generate();
    let key = msg_key(&t, 1);
    let mut tasks = Vec::new();
    for i in 0..8 {
        let env = Arc::new(envelope(&b, CachePolicy::default()));
        let (t, key) = (t.clone(), key.clone());
        tasks.push(tokio::spawn(async move {
            let blob = env
                .encrypt(
                    FieldRef::new(&t, Table::Data, &key, "body"),
                    format!("m{i}").as_bytes(),
                )
                .await
                .unwrap();
            (i, blob)
        }));
    }
    let reader = envelope(&b, CachePolicy::default());
    for task in tasks {
        let (i, blob) = task.await.unwrap();
        let field = FieldRef::new(&t, Table::Data, &key, "body");
        assert_eq!(
            reader.decrypt(field, &blob).await.unwrap(),
            format!("m{i}").as_bytes()
        );
    }
}

on_both_backends!(
    a_key_is_rotated_after_its_seal_limit_and_stays_readable,
    a_key_older_than_its_age_limit_is_rotated_and_stays_readable,
    round_trip_without_plaintext_in_blob,
    tampering_fails_cleanly,
    moved_ciphertexts_fail,
    wrapped_key_under_another_tenant_is_refused,
    rotation_keeps_old_versions_readable,
    warm_cache_makes_no_vault_calls,
    cache_bounds_force_unwraps,
    shredding_makes_ciphertexts_unreadable,
    concurrent_first_use_agrees_on_one_key,
);

/// Rotation by use (decision 0035): seals are counted per version across processes (each
/// flushes its count every `flush_every` seals), the seal that takes the stored count to the
/// limit creates the next version, and every older version keeps decrypting.
async fn a_key_is_rotated_after_its_seal_limit_and_stays_readable(b: Backend) {
    let rotation = RotationPolicy {
        max_seals: 10,
        max_age: Duration::from_secs(86_400),
        flush_every: 2,
        ..RotationPolicy::default()
    };
    // Two processes share the count.
    let one = envelope(&b, CachePolicy::default()).with_rotation(rotation);
    let two = envelope(&b, CachePolicy::default()).with_rotation(rotation);
    let t = TenantId::generate();
    let key = msg_key(&t, 1);
    let field = FieldRef::new(&t, Table::Data, &key, "body");
    let mut blobs = Vec::new();
    for i in 0..6u32 {
        for env in [&one, &two] {
            let blob = env
                .encrypt(field, format!("m{i}").as_bytes())
                .await
                .unwrap();
            blobs.push((format!("m{i}"), blob));
        }
    }
    // 12 seals with version 1, flushed in pairs: the stored count reached 10 with the first
    // process's sixth seal, which rotated; the second one's flush after it found version 2
    // already there (no second rotation).
    let versions: Vec<u32> = blobs
        .iter()
        .map(|(_, b)| wappline::crypto::format::key_version(b).unwrap())
        .collect();
    assert_eq!(versions, vec![1; 12]);
    assert_eq!((one.stats().rotations, two.stats().rotations), (1, 0));
    let mut next = Vec::new();
    for env in [&one, &two] {
        let blob = env.encrypt(field, b"after").await.unwrap();
        assert_eq!(wappline::crypto::format::key_version(&blob), Some(2));
        next = blob;
    }
    // A cold process seals with the new version and reads every old one.
    let cold = envelope(&b, CachePolicy::default()).with_rotation(rotation);
    let fresh = cold.encrypt(field, b"cold").await.unwrap();
    assert_eq!(wappline::crypto::format::key_version(&fresh), Some(2));
    for (plain, blob) in &blobs {
        assert_eq!(cold.decrypt(field, blob).await.unwrap(), plain.as_bytes());
    }
    assert_eq!(cold.decrypt(field, &next).await.unwrap(), b"after");
}

/// Rotation by age: a current version older than `max_age`, seen when a process (re)reads
/// the tenant's current version, is replaced; the old one keeps decrypting.
async fn a_key_older_than_its_age_limit_is_rotated_and_stays_readable(b: Backend) {
    let t = TenantId::generate();
    let key = msg_key(&t, 1);
    let field = FieldRef::new(&t, Table::Data, &key, "body");
    let first = envelope(&b, CachePolicy::default());
    let old = first.encrypt(field, b"old").await.unwrap();
    // Version 1 is made 2 days old in the table.
    let vkey = Key::new(t.partition(), "DK#0000000001");
    let mut item = b.store.get(Table::Keys, &vkey).await.unwrap().unwrap();
    item.set("created_at", wappline::clock::now_secs() - 2 * 86_400);
    b.store.put(Table::Keys, item, None).await.unwrap();

    let young_limit = RotationPolicy {
        max_age: Duration::from_secs(86_400),
        ..RotationPolicy::default()
    };
    let later = envelope(&b, CachePolicy::default()).with_rotation(young_limit);
    let new = later.encrypt(field, b"new").await.unwrap();
    assert_eq!(wappline::crypto::format::key_version(&new), Some(2));
    assert_eq!(later.stats().rotations, 1);
    assert_eq!(later.decrypt(field, &old).await.unwrap(), b"old");
    // A process with a longer limit keeps the (now) current version 2: no further rotation.
    let patient = envelope(&b, CachePolicy::default());
    let again = patient.encrypt(field, b"again").await.unwrap();
    assert_eq!(wappline::crypto::format::key_version(&again), Some(2));
    assert_eq!(patient.stats().rotations, 0);
}
