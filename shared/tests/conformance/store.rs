//! Table-store conformance: the same cases against the embedded store (redb in a temp dir) and
//! DynamoDB (moto, fresh tables per test). Each case fails if an adapter ignores a condition,
//! a TTL, a sort-key range, pagination or transaction atomicity.

use std::collections::BTreeMap;

use tempfile::TempDir;
use wappline::clock::now_secs;
use wappline::store::dynamo::{provision_tables, DynamoStore, TableNames};
use wappline::store::embedded::EmbeddedStore;
use wappline::store::{
    AttrValue, Condition, Item, Key, Query, SortKeyCondition, StoreError, Table, TableStore,
    Update, WriteOp, TTL_ATTR,
};

use crate::support::{aws_config, unique};

mod reads;
use reads::{
    expired_items_are_absent_everywhere, pagination_returns_every_item_once,
    query_filters_by_sort_key, update_never_builds_on_an_expired_item,
};

pub(crate) fn embedded() -> (EmbeddedStore, TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    (EmbeddedStore::open(dir.path()).expect("open store"), dir)
}

pub(crate) async fn dynamo() -> DynamoStore {
    let config = aws_config().await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let names = TableNames::with_prefix(&unique("t"));
    provision_tables(&client, &names)
        .await
        .expect("provision tables on moto");
    DynamoStore::new(client, names)
}

fn key(pk: &str, sk: &str) -> Key {
    Key::new(pk, sk)
}

fn item(pk: &str, sk: &str) -> Item {
    Item::new(&key(pk, sk))
}

fn expired(mut item: Item) -> Item {
    item.set(TTL_ATTR, now_secs() - 10);
    item
}

fn expiring_later(mut item: Item) -> Item {
    item.set(TTL_ATTR, now_secs() + 3600);
    item
}

fn sks(items: &[Item]) -> Vec<String> {
    items
        .iter()
        .map(|i| i.get_s("sk").unwrap().to_owned())
        .collect()
}

/// Every page of a query, following `next` until the store says there is no more.
async fn query_all(store: &dyn TableStore, table: Table, q: Query) -> (Vec<Item>, usize) {
    let mut all = Vec::new();
    let mut pages = 0;
    let mut next = None;
    loop {
        let page = store
            .query(table, &q.clone().start_after(next))
            .await
            .expect("query");
        pages += 1;
        assert!(page.items.len() <= q.limit, "page over its limit");
        all.extend(page.items);
        match page.next {
            Some(k) => next = Some(k),
            None => return (all, pages),
        }
        assert!(pages < 1000, "pagination does not terminate");
    }
}

async fn put_and_get_round_trips_every_attribute_type(store: &dyn TableStore) {
    let mut nested = BTreeMap::new();
    nested.insert("inner".to_owned(), AttrValue::N(-7));
    let it = item("T#a", "MSG#1")
        .with("text", "héllo ✓")
        .with("count", 42i64)
        .with("big", i64::MAX)
        .with("blob", vec![0u8, 1, 255])
        .with("flag", true)
        .with("nothing", AttrValue::Null)
        .with(
            "list",
            AttrValue::L(vec![AttrValue::S("x".into()), AttrValue::N(1)]),
        )
        .with("map", AttrValue::M(nested));
    store.put(Table::Data, it.clone(), None).await.unwrap();
    let got = store.get(Table::Data, &key("T#a", "MSG#1")).await.unwrap();
    assert_eq!(got, Some(it));
    // Tables are separate namespaces.
    assert_eq!(
        store
            .get(Table::Routes, &key("T#a", "MSG#1"))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.get(Table::Data, &key("T#a", "MSG#2")).await.unwrap(),
        None
    );
}

async fn put_replaces_the_whole_item(store: &dyn TableStore) {
    store
        .put(Table::Data, item("T#a", "x").with("old", 1i64), None)
        .await
        .unwrap();
    store
        .put(Table::Data, item("T#a", "x").with("new", 2i64), None)
        .await
        .unwrap();
    let got = store
        .get(Table::Data, &key("T#a", "x"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.get_n("old"), None);
    assert_eq!(got.get_n("new"), Some(2));
}

async fn conditional_put_refuses_an_existing_item(store: &dyn TableStore) {
    let first = item("ROUTE#wa#1", "ROUTE").with("tenant_id", "tn_a");
    store
        .put(Table::Routes, first.clone(), Some(Condition::NotExists))
        .await
        .unwrap();
    let second = item("ROUTE#wa#1", "ROUTE").with("tenant_id", "tn_b");
    let err = store
        .put(Table::Routes, second, Some(Condition::NotExists))
        .await
        .unwrap_err();
    assert!(err.is_condition_failed(), "{err:?}");
    let got = store
        .get(Table::Routes, &key("ROUTE#wa#1", "ROUTE"))
        .await
        .unwrap();
    assert_eq!(got, Some(first), "a failed condition must change nothing");
}

async fn conditions_compare_attributes(store: &dyn TableStore) {
    let k = key("T#a", "CONV#1");
    store
        .put(
            Table::Data,
            item("T#a", "CONV#1")
                .with("version", 3i64)
                .with("owner", "tn_a"),
            None,
        )
        .await
        .unwrap();
    // Equals: holds for the right value only.
    let wrong = Condition::Equals("owner".into(), "tn_b".into());
    let err = store
        .put(
            Table::Data,
            item("T#a", "CONV#1").with("version", 9i64),
            Some(wrong),
        )
        .await
        .unwrap_err();
    assert!(err.is_condition_failed());
    let right = Condition::Equals("owner".into(), "tn_a".into());
    store
        .update(
            Table::Data,
            &k,
            Update::new().set("seen", true),
            Some(right),
        )
        .await
        .unwrap();
    // LessThan: optimistic versioning.
    let older = Condition::LessThan("version".into(), AttrValue::N(3));
    let err = store
        .update(
            Table::Data,
            &k,
            Update::new().set("version", 2i64),
            Some(older),
        )
        .await
        .unwrap_err();
    assert!(err.is_condition_failed());
    let newer = Condition::LessThan("version".into(), AttrValue::N(4));
    let got = store
        .update(
            Table::Data,
            &k,
            Update::new().set("version", 4i64),
            Some(newer),
        )
        .await
        .unwrap();
    assert_eq!(got.get_n("version"), Some(4));
    // AttrNotExists on a present item: holds only while the attribute is missing.
    let cond = Condition::AttrNotExists("bitrix_chat_id".into());
    store
        .update(
            Table::Data,
            &k,
            Update::new().set("bitrix_chat_id", "42"),
            Some(cond.clone()),
        )
        .await
        .unwrap();
    let err = store
        .update(
            Table::Data,
            &k,
            Update::new().set("bitrix_chat_id", "43"),
            Some(cond),
        )
        .await
        .unwrap_err();
    assert!(err.is_condition_failed());
    // Or / And / Exists.
    let either = Condition::Or(vec![
        Condition::NotExists,
        Condition::Equals("owner".into(), "tn_a".into()),
    ]);
    store
        .put(
            Table::Data,
            item("T#a", "CONV#1").with("owner", "tn_a"),
            Some(either),
        )
        .await
        .unwrap();
    let both = Condition::And(vec![
        Condition::Exists,
        Condition::Equals("owner".into(), "tn_b".into()),
    ]);
    assert!(store
        .delete(Table::Data, &k, Some(both))
        .await
        .unwrap_err()
        .is_condition_failed());
    assert!(store
        .update(
            Table::Data,
            &key("T#a", "none"),
            Update::new().set("a", 1i64),
            Some(Condition::Exists)
        )
        .await
        .unwrap_err()
        .is_condition_failed());
    assert_eq!(
        store.get(Table::Data, &key("T#a", "none")).await.unwrap(),
        None
    );
}

async fn update_creates_increments_and_removes(store: &dyn TableStore) {
    let k = key("T#a", "USAGE#2026-11");
    let first = store
        .update(
            Table::Data,
            &k,
            Update::new().add("inbound", 1).set("month", "2026-11"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(first.get_n("inbound"), Some(1));
    assert_eq!(first.get_s("pk"), Some("T#a"));
    for _ in 0..4 {
        store
            .update(Table::Data, &k, Update::new().add("inbound", 2), None)
            .await
            .unwrap();
    }
    let got = store
        .update(Table::Data, &k, Update::new().remove("month"), None)
        .await
        .unwrap();
    assert_eq!(got.get_n("inbound"), Some(9));
    assert_eq!(got.get("month"), None);
    assert_eq!(store.get(Table::Data, &k).await.unwrap(), Some(got));
}

async fn concurrent_increments_are_atomic(store: &dyn TableStore) {
    let k = key("T#a", "COUNTER");
    let futures = (0..20).map(|_| store.update(Table::Data, &k, Update::new().add("n", 1), None));
    for r in futures_join_all(futures).await {
        r.unwrap();
    }
    let got = store.get(Table::Data, &k).await.unwrap().unwrap();
    assert_eq!(got.get_n("n"), Some(20));
}

/// Only one of several concurrent "create if absent" writers wins.
async fn concurrent_conditional_puts_have_one_winner(store: &dyn TableStore) {
    let futures = (0..10).map(|i| {
        store.put(
            Table::Dedupe,
            item("T#a", "IN#wamid.1").with("writer", i as i64),
            Some(Condition::NotExists),
        )
    });
    let results = futures_join_all(futures).await;
    let wins = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(wins, 1, "{results:?}");
    assert!(results.iter().all(|r| r
        .as_ref()
        .map_or_else(|e| e.is_condition_failed(), |_| true)));
}

async fn futures_join_all<F: std::future::Future>(fs: impl Iterator<Item = F>) -> Vec<F::Output> {
    let handles: Vec<_> = fs.collect();
    let mut out = Vec::with_capacity(handles.len());
    // Poll them together so they really run concurrently.
    let mut pinned: Vec<_> = handles.into_iter().map(Box::pin).collect();
    let mut done: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, slot) in pinned.iter_mut().zip(done.iter_mut()) {
            if slot.is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *slot = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.extend(done.into_iter().map(|v| v.expect("completed")));
    out
}

async fn delete_is_conditional_and_idempotent(store: &dyn TableStore) {
    let k = key("T#a", "x");
    store
        .put(Table::Data, item("T#a", "x").with("owner", "tn_a"), None)
        .await
        .unwrap();
    let err = store
        .delete(
            Table::Data,
            &k,
            Some(Condition::Equals("owner".into(), "tn_b".into())),
        )
        .await
        .unwrap_err();
    assert!(err.is_condition_failed());
    assert!(store.get(Table::Data, &k).await.unwrap().is_some());
    store
        .delete(
            Table::Data,
            &k,
            Some(Condition::Equals("owner".into(), "tn_a".into())),
        )
        .await
        .unwrap();
    assert_eq!(store.get(Table::Data, &k).await.unwrap(), None);
    // Deleting nothing is fine.
    store.delete(Table::Data, &k, None).await.unwrap();
}

async fn transaction_applies_all_or_nothing(store: &dyn TableStore) {
    store
        .put(
            Table::Routes,
            item("ROUTE#wa#2", "ROUTE").with("tenant_id", "tn_other"),
            None,
        )
        .await
        .unwrap();
    store
        .put(Table::Data, item("T#a", "GONE"), None)
        .await
        .unwrap();
    let ops = |route: &str| {
        vec![
            WriteOp::ConditionCheck {
                table: Table::Data,
                key: key("T#a", "GONE"),
                condition: Condition::Exists,
            },
            WriteOp::Put {
                table: Table::Data,
                item: item("T#a", "CHANNEL#wa").with("route", route),
                condition: None,
            },
            WriteOp::Update {
                table: Table::Data,
                key: key("T#a", "PROFILE"),
                update: Update::new().add("channels", 1),
                condition: None,
            },
            WriteOp::Put {
                table: Table::Routes,
                item: item(route, "ROUTE").with("tenant_id", "tn_a"),
                condition: Some(Condition::NotExists),
            },
        ]
    };
    let err = store.transact_write(ops("ROUTE#wa#2")).await.unwrap_err();
    assert_eq!(err, StoreError::ConditionFailed { op_index: Some(3) });
    assert_eq!(
        store
            .get(Table::Data, &key("T#a", "CHANNEL#wa"))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .get(Table::Data, &key("T#a", "PROFILE"))
            .await
            .unwrap(),
        None
    );
    let route = store
        .get(Table::Routes, &key("ROUTE#wa#2", "ROUTE"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(route.get_s("tenant_id"), Some("tn_other"));

    store.transact_write(ops("ROUTE#wa#3")).await.unwrap();
    assert!(store
        .get(Table::Data, &key("T#a", "CHANNEL#wa"))
        .await
        .unwrap()
        .is_some());
    let profile = store
        .get(Table::Data, &key("T#a", "PROFILE"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(profile.get_n("channels"), Some(1));

    // A failing condition check alone also stops the writes.
    store
        .delete(Table::Data, &key("T#a", "GONE"), None)
        .await
        .unwrap();
    let err = store.transact_write(ops("ROUTE#wa#4")).await.unwrap_err();
    assert_eq!(err, StoreError::ConditionFailed { op_index: Some(0) });
    assert_eq!(
        store
            .get(Table::Routes, &key("ROUTE#wa#4", "ROUTE"))
            .await
            .unwrap(),
        None
    );
    let profile = store
        .get(Table::Data, &key("T#a", "PROFILE"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(profile.get_n("channels"), Some(1));

    // Deletes in a transaction.
    store
        .transact_write(vec![
            WriteOp::Delete {
                table: Table::Data,
                key: key("T#a", "CHANNEL#wa"),
                condition: Some(Condition::Exists),
            },
            WriteOp::Delete {
                table: Table::Routes,
                key: key("ROUTE#wa#3", "ROUTE"),
                condition: Some(Condition::Equals("tenant_id".into(), "tn_a".into())),
            },
        ])
        .await
        .unwrap();
    assert_eq!(
        store
            .get(Table::Routes, &key("ROUTE#wa#3", "ROUTE"))
            .await
            .unwrap(),
        None
    );
}

async fn bad_requests_are_invalid_and_change_nothing(store: &dyn TableStore) {
    let invalid = |r: Result<(), StoreError>| {
        assert!(matches!(r, Err(StoreError::Invalid(_))), "{r:?}");
    };
    invalid(
        store
            .put(Table::Data, Item::default().with("a", 1i64), None)
            .await,
    );
    invalid(store.put(Table::Data, item("", "x"), None).await);
    invalid(store.transact_write(vec![]).await);
    let dup = || WriteOp::Put {
        table: Table::Data,
        item: item("T#a", "dup"),
        condition: None,
    };
    invalid(store.transact_write(vec![dup(), dup()]).await);
    let many = (0..101)
        .map(|n| WriteOp::Put {
            table: Table::Data,
            item: item("T#a", &format!("n{n}")),
            condition: None,
        })
        .collect();
    invalid(store.transact_write(many).await);
    let r = store
        .update(
            Table::Data,
            &key("T#a", "u"),
            Update::new().set("pk", "other"),
            None,
        )
        .await;
    assert!(matches!(r, Err(StoreError::Invalid(_))), "{r:?}");
    let r = store
        .update(
            Table::Data,
            &key("T#a", "u"),
            Update::new().set("a", 1i64).remove("a"),
            None,
        )
        .await;
    assert!(matches!(r, Err(StoreError::Invalid(_))), "{r:?}");
    let r = store
        .query(Table::Data, &Query::partition("T#a").limit(0))
        .await;
    assert!(matches!(r, Err(StoreError::Invalid(_))), "{r:?}");
    let page = store.scan(Table::Data, None, 100).await.unwrap();
    assert!(
        page.items.is_empty(),
        "nothing was written: {:?}",
        page.items
    );
}

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod embedded_adapter {
            $(
                #[tokio::test]
                async fn $case() {
                    let (store, _dir) = super::embedded();
                    super::$case(&store).await;
                }
            )*
        }
        mod dynamo_adapter {
            $(
                #[tokio::test]
                async fn $case() {
                    let store = super::dynamo().await;
                    super::$case(&store).await;
                }
            )*
        }
    };
}

conformance!(
    put_and_get_round_trips_every_attribute_type,
    put_replaces_the_whole_item,
    conditional_put_refuses_an_existing_item,
    conditions_compare_attributes,
    update_creates_increments_and_removes,
    concurrent_increments_are_atomic,
    concurrent_conditional_puts_have_one_winner,
    delete_is_conditional_and_idempotent,
    expired_items_are_absent_everywhere,
    update_never_builds_on_an_expired_item,
    query_filters_by_sort_key,
    pagination_returns_every_item_once,
    transaction_applies_all_or_nothing,
    bad_requests_are_invalid_and_change_nothing,
);

/// The embedded store keeps its data across a reopen (the local server's restart).
#[tokio::test]
async fn embedded_store_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = EmbeddedStore::open(dir.path()).unwrap();
        store
            .put(
                Table::Routes,
                item("ROUTE#wa#9", "ROUTE").with("tenant_id", "tn_a"),
                None,
            )
            .await
            .unwrap();
    }
    let store = EmbeddedStore::open(dir.path()).unwrap();
    let got = store
        .get(Table::Routes, &key("ROUTE#wa#9", "ROUTE"))
        .await
        .unwrap();
    assert_eq!(
        got.and_then(|i| i.get_s("tenant_id").map(str::to_owned)),
        Some("tn_a".into())
    );
}

/// The embedded store removes expired items from disk when asked, as DynamoDB's TTL does.
#[tokio::test]
async fn embedded_store_purges_expired_items() {
    let (store, _dir) = embedded();
    for n in 0..5 {
        store
            .put(Table::Data, expired(item("T#a", &format!("old{n}"))), None)
            .await
            .unwrap();
    }
    store
        .put(Table::Data, expiring_later(item("T#a", "live")), None)
        .await
        .unwrap();
    store
        .put(Table::Dedupe, expired(item("T#a", "IN")), None)
        .await
        .unwrap();
    assert_eq!(store.purge_expired(4).await.unwrap(), 4);
    assert_eq!(store.purge_expired(100).await.unwrap(), 2);
    assert_eq!(store.purge_expired(100).await.unwrap(), 0);
    // The live item stays; an expired item written again counts as new.
    assert!(store
        .get(Table::Data, &key("T#a", "live"))
        .await
        .unwrap()
        .is_some());
    store
        .put(Table::Data, item("T#a", "old0"), Some(Condition::NotExists))
        .await
        .unwrap();
}
