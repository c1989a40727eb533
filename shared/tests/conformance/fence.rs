//! The tenant fence (decision 0037), on both adapter families: while work acts for tenant A,
//! the store, the vault and the object store refuse B's partitions, data keys and exports
//! and serve A's; outside any tenant they serve everything. On AWS the fenced ports also
//! sign A's requests with A's session of the tenant-data role (an `AssumeRole` on moto,
//! which does not evaluate the role's conditions: the IAM-coverage test proves those).

use std::sync::Arc;

use wappline::acting::acting_for;
use wappline::app::{AwsClientOptions, TenantSessions};
use wappline::ids::TenantId;
use wappline::objects::embedded::EmbeddedObjects;
use wappline::objects::fence::{FencedObjects, TenantObjects};
use wappline::objects::s3::{provision_bucket, S3Objects};
use wappline::objects::{ObjectError, ObjectKey, ObjectStore};
use wappline::store::dynamo::{provision_tables, DynamoStore, TableNames};
use wappline::store::embedded::EmbeddedStore;
use wappline::store::fence::{FencedStore, TenantStores};
use wappline::store::{Item, Key, Query, StoreError, Table, TableStore, WriteOp};
use wappline::vault::fence::{FencedVault, TenantVaults};
use wappline::vault::kms::KmsVault;
use wappline::vault::local::LocalVault;
use wappline::vault::{EncryptionContext, KeyVault, VaultError};

use crate::support::{aws_config, unique};

struct Ports {
    store: Arc<dyn TableStore>,
    vault: Arc<dyn KeyVault>,
    objects: Arc<dyn ObjectStore>,
    sessions: Option<Arc<TenantSessions>>,
    _dir: Option<tempfile::TempDir>,
}

fn embedded() -> Ports {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    let vault = LocalVault::open_or_create(dir.path()).unwrap();
    let objects = EmbeddedObjects::open(dir.path()).unwrap();
    Ports {
        store: Arc::new(FencedStore::new(Arc::new(store), None)),
        vault: Arc::new(FencedVault::new(Arc::new(vault), None)),
        objects: Arc::new(FencedObjects::new(Arc::new(objects), None)),
        sessions: None,
        _dir: Some(dir),
    }
}

async fn aws() -> Ports {
    let sdk = aws_config().await;
    let names = TableNames::with_prefix(&unique("fence"));
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    provision_tables(&dynamo, &names).await.unwrap();
    let kms = aws_sdk_kms::Client::new(&sdk);
    let key = kms.create_key().send().await.unwrap();
    let key_id = key.key_metadata().unwrap().key_id().to_owned();
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(true)
            .build(),
    );
    let bucket = unique("fence").to_lowercase();
    provision_bucket(&s3, &bucket).await.unwrap();
    let options = AwsClientOptions {
        s3_path_style: true,
        ..AwsClientOptions::default()
    };
    let sessions = Arc::new(TenantSessions::new(
        &sdk,
        "arn:aws:iam::123456789012:role/fence-tenant-data".into(),
        names.clone(),
        key_id.clone(),
        Some(bucket.clone()),
        options,
    ));
    Ports {
        store: Arc::new(FencedStore::new(
            Arc::new(DynamoStore::new(dynamo, names)),
            Some(sessions.clone() as Arc<dyn TenantStores>),
        )),
        vault: Arc::new(FencedVault::new(
            Arc::new(KmsVault::new(kms, key_id)),
            Some(sessions.clone() as Arc<dyn TenantVaults>),
        )),
        objects: Arc::new(FencedObjects::new(
            Arc::new(S3Objects::new(s3, bucket)),
            Some(sessions.clone() as Arc<dyn TenantObjects>),
        )),
        sessions: Some(sessions),
        _dir: None,
    }
}

fn denied_store<T: std::fmt::Debug>(r: Result<T, StoreError>) {
    assert!(matches!(r, Err(StoreError::Denied(_))), "{r:?}");
}

async fn the_store_serves_only_the_partitions_of_the_tenant_acted_for(p: &Ports) {
    let (a, b) = (TenantId::generate(), TenantId::generate());
    let b_item = Item::new(&Key::new(b.partition(), "PROFILE")).with("name", "B");
    let b_sub = Item::new(&Key::new(b.sub_partition("CONV#x"), "META"));
    // Outside any tenant (the platform's own work), every partition.
    p.store
        .put(Table::Data, b_item.clone(), None)
        .await
        .unwrap();
    p.store.put(Table::Data, b_sub.clone(), None).await.unwrap();
    let store = p.store.clone();
    let (a2, b2) = (a.clone(), b.clone());
    acting_for(&a, async move {
        let own = Item::new(&Key::new(a2.sub_partition("CONV#y"), "META")).with("n", 1);
        store.put(Table::Data, own.clone(), None).await.unwrap();
        assert_eq!(
            store.get(Table::Data, &own.key().unwrap()).await.unwrap(),
            Some(own.clone())
        );
        let q = Query::partition(a2.sub_partition("CONV#y")).limit(10);
        assert_eq!(store.query(Table::Data, &q).await.unwrap().items.len(), 1);
        // B's items: not read, not written, not deleted, not queried.
        let b_key = Key::new(b2.partition(), "PROFILE");
        denied_store(store.get(Table::Data, &b_key).await);
        denied_store(
            store
                .get(Table::Keys, &Key::new(b2.partition(), "DK#0000000001"))
                .await,
        );
        denied_store(store.put(Table::Data, Item::new(&b_key), None).await);
        denied_store(store.delete(Table::Data, &b_key, None).await);
        let q = Query::partition(b2.sub_partition("CONV#x")).limit(10);
        denied_store(store.query(Table::Dedupe, &q).await);
        denied_store(store.scan(Table::Data, None, 10).await);
        // A transaction with one item of B writes nothing, A's included.
        let mixed = vec![
            WriteOp::Put {
                table: Table::Data,
                item: Item::new(&Key::new(a2.partition(), "X")),
                condition: None,
            },
            WriteOp::Delete {
                table: Table::Data,
                key: b_key.clone(),
                condition: None,
            },
        ];
        denied_store(store.transact_write(mixed).await);
        assert_eq!(
            store
                .get(Table::Data, &Key::new(a2.partition(), "X"))
                .await
                .unwrap(),
            None
        );
        // A batch deletion naming one item of B deletes nothing, A's included; A's own
        // batch goes through (decision 0057).
        let own_key = own.key().unwrap();
        let mixed = vec![(Table::Data, own_key.clone()), (Table::Data, b_key.clone())];
        denied_store(store.delete_batch(mixed).await);
        assert!(store.get(Table::Data, &own_key).await.unwrap().is_some());
        store
            .delete_batch(vec![(Table::Data, own_key.clone())])
            .await
            .unwrap();
        assert!(store.get(Table::Data, &own_key).await.unwrap().is_none());
        // A prefix of another id is another tenant (T#<a> is a prefix of no other id, but a
        // key built from a truncated id must not pass as A's).
        let truncated = format!("{}#", &a2.partition()[..a2.partition().len() - 1]);
        denied_store(store.get(Table::Data, &Key::new(truncated, "X")).await);
        // The routes table is a global index: the function's own access.
        store
            .put(
                Table::Routes,
                Item::new(&Key::new("ROUTE#wa#1", "ROUTE")).with("tenant_id", a2.as_str()),
                None,
            )
            .await
            .unwrap();
    })
    .await;
    // B's items are untouched.
    assert_eq!(
        p.store
            .get(Table::Data, &b_item.key().unwrap())
            .await
            .unwrap(),
        Some(b_item)
    );
}

fn ctx(t: &TenantId) -> EncryptionContext {
    EncryptionContext::new().with("tenant_id", t.as_str())
}

async fn the_vault_serves_only_the_data_keys_of_the_tenant_acted_for(p: &Ports) {
    let (a, b) = (TenantId::generate(), TenantId::generate());
    let b_key = p.vault.generate_data_key(&ctx(&b)).await.unwrap();
    let vault = p.vault.clone();
    let (a2, b2) = (a.clone(), b.clone());
    acting_for(&a, async move {
        let own = vault.generate_data_key(&ctx(&a2)).await.unwrap();
        let plain = vault
            .unwrap_data_key(&own.wrapped, &ctx(&a2))
            .await
            .unwrap();
        assert_eq!(*plain, *own.plaintext);
        let r = vault.unwrap_data_key(&b_key.wrapped, &ctx(&b2)).await;
        assert!(
            matches!(r, Err(VaultError::Denied(_))),
            "{:?}",
            r.map(|_| ())
        );
        let r = vault.generate_data_key(&ctx(&b2)).await;
        assert!(
            matches!(r, Err(VaultError::Denied(_))),
            "{:?}",
            r.map(|_| ())
        );
        // No tenant in the context at all: refused too.
        let r = vault.generate_data_key(&EncryptionContext::new()).await;
        assert!(
            matches!(r, Err(VaultError::Denied(_))),
            "{:?}",
            r.map(|_| ())
        );
    })
    .await;
}

async fn the_object_store_serves_only_the_exports_of_the_tenant_acted_for(p: &Ports) {
    let (a, b) = (TenantId::generate(), TenantId::generate());
    let b_file = ObjectKey::parse(&format!("exports/{b}/ex_1/export.json")).unwrap();
    p.objects.put(&b_file, b"B").await.unwrap();
    let objects = p.objects.clone();
    let (a2, b2, b_file2) = (a.clone(), b.clone(), b_file.clone());
    acting_for(&a, async move {
        let b_file = b_file2;
        let own = ObjectKey::parse(&format!("exports/{a2}/ex_2/export.json")).unwrap();
        objects.put(&own, b"A").await.unwrap();
        let listed = objects
            .list(&format!("exports/{a2}/"), None, 10)
            .await
            .unwrap();
        assert_eq!(listed.objects.len(), 1);
        let denied =
            |r: Result<(), ObjectError>| assert!(matches!(r, Err(ObjectError::Denied(_))), "{r:?}");
        denied(objects.get(&b_file, None).await.map(|_| ()));
        denied(objects.put(&b_file, b"x").await.map(|_| ()));
        denied(objects.delete(&b_file).await);
        denied(objects.list("exports/", None, 10).await.map(|_| ()));
        denied(
            objects
                .delete_prefix(&format!("exports/{b2}/"))
                .await
                .map(|_| ()),
        );
    })
    .await;
    let body = p.objects.get(&b_file, None).await.unwrap().unwrap();
    assert_eq!(body.read_all().await.unwrap(), b"B");
}

macro_rules! fence_cases {
    ($($case:ident),* $(,)?) => {
        mod embedded_adapters {
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case(&super::embedded()).await;
                }
            )*
        }
        mod aws_adapters {
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case(&super::aws().await).await;
                }
            )*
        }
    };
}

fence_cases!(
    the_store_serves_only_the_partitions_of_the_tenant_acted_for,
    the_vault_serves_only_the_data_keys_of_the_tenant_acted_for,
    the_object_store_serves_only_the_exports_of_the_tenant_acted_for,
);

#[tokio::test]
async fn a_tenant_session_is_assumed_once_and_shared_by_its_clients() {
    let p = aws().await;
    let sessions = p.sessions.clone().unwrap();
    assert_eq!(
        sessions.assume_calls(),
        0,
        "nothing is assumed before work needs it"
    );
    let (a, b) = (TenantId::generate(), TenantId::generate());
    for tenant in [&a, &a, &b] {
        let (store, vault, objects) = (p.store.clone(), p.vault.clone(), p.objects.clone());
        let t = tenant.clone();
        acting_for(tenant, async move {
            store
                .get(Table::Data, &Key::new(t.partition(), "PROFILE"))
                .await
                .unwrap();
            vault.generate_data_key(&ctx(&t)).await.unwrap();
            let key = ObjectKey::parse(&format!("exports/{t}/ex_1/f.json")).unwrap();
            objects.put(&key, b"x").await.unwrap();
        })
        .await;
    }
    // One AssumeRole per tenant, for DynamoDB, KMS and S3 together, reused by the next work.
    assert_eq!(sessions.assume_calls(), 2);
    // Work for no tenant uses the function's own credentials.
    p.store
        .get(Table::Routes, &Key::new("ROUTE#wa#1", "ROUTE"))
        .await
        .unwrap();
    assert_eq!(sessions.assume_calls(), 2);
}
