//! Batch deletion (`TableStore::delete_batch`), the same cases against the embedded store and
//! DynamoDB (moto): every named item goes in one call, across tables, and nothing else;
//! absent items are no error; a batch DynamoDB would refuse (over 25 items, an item twice)
//! is refused by both adapters and deletes nothing.

use wappline::store::{Item, Key, StoreError, Table, TableStore, MAX_BATCH_WRITE_ITEMS};

fn item(pk: &str, sk: &str) -> Item {
    Item::new(&Key::new(pk, sk)).with("body", "x")
}

async fn present(store: &dyn TableStore, table: Table, pk: &str, sk: &str) -> bool {
    store.get(table, &Key::new(pk, sk)).await.unwrap().is_some()
}

async fn a_batch_deletes_every_named_item_and_nothing_else(store: &dyn TableStore) {
    for n in 0..30 {
        store
            .put(Table::Data, item("T#b", &format!("m{n:02}")), None)
            .await
            .unwrap();
    }
    store
        .put(Table::Dedupe, item("T#b#IN", "k1"), None)
        .await
        .unwrap();
    // 23 data items, one dedupe item, one that does not exist: 25, the most a batch holds.
    let mut keys: Vec<(Table, Key)> = (0..23)
        .map(|n| (Table::Data, Key::new("T#b", format!("m{n:02}"))))
        .collect();
    keys.push((Table::Dedupe, Key::new("T#b#IN", "k1")));
    keys.push((Table::Data, Key::new("T#b", "never-written")));
    assert_eq!(keys.len(), MAX_BATCH_WRITE_ITEMS);
    store.delete_batch(keys.clone()).await.unwrap();
    for n in 0..30 {
        assert_eq!(
            present(store, Table::Data, "T#b", &format!("m{n:02}")).await,
            n >= 23,
            "m{n:02}"
        );
    }
    assert!(!present(store, Table::Dedupe, "T#b#IN", "k1").await);
    // Again: everything is already gone, which is no error.
    store.delete_batch(keys).await.unwrap();
    store.delete_batch(Vec::new()).await.unwrap();
}

async fn a_batch_dynamodb_would_refuse_is_refused_and_deletes_nothing(store: &dyn TableStore) {
    for n in 0..26 {
        store
            .put(Table::Data, item("T#r", &format!("m{n:02}")), None)
            .await
            .unwrap();
    }
    let too_many: Vec<(Table, Key)> = (0..26)
        .map(|n| (Table::Data, Key::new("T#r", format!("m{n:02}"))))
        .collect();
    let r = store.delete_batch(too_many).await;
    assert!(matches!(r, Err(StoreError::Invalid(_))), "{r:?}");
    let twice = vec![
        (Table::Data, Key::new("T#r", "m00")),
        (Table::Data, Key::new("T#r", "m00")),
    ];
    let r = store.delete_batch(twice).await;
    assert!(matches!(r, Err(StoreError::Invalid(_))), "{r:?}");
    let empty_key = vec![
        (Table::Data, Key::new("T#r", "m01")),
        (Table::Data, Key::new("", "m02")),
    ];
    let r = store.delete_batch(empty_key).await;
    assert!(matches!(r, Err(StoreError::Invalid(_))), "{r:?}");
    for n in 0..26 {
        assert!(
            present(store, Table::Data, "T#r", &format!("m{n:02}")).await,
            "m{n:02} survives a refused batch"
        );
    }
}

macro_rules! batch_conformance {
    ($($case:ident),* $(,)?) => {
        mod embedded_adapter {
            $(
                #[tokio::test]
                async fn $case() {
                    let (store, _dir) = crate::store::embedded();
                    super::$case(&store).await;
                }
            )*
        }
        mod dynamo_adapter {
            $(
                #[tokio::test]
                async fn $case() {
                    let store = crate::store::dynamo().await;
                    super::$case(&store).await;
                }
            )*
        }
    };
}

batch_conformance!(
    a_batch_deletes_every_named_item_and_nothing_else,
    a_batch_dynamodb_would_refuse_is_refused_and_deletes_nothing,
);
