//! Reading back: expired items are absent from every read and never built upon, sort-key
//! conditions, and pagination that returns every item once.

use super::*;

pub(super) async fn expired_items_are_absent_everywhere(store: &dyn TableStore) {
    let gone = expired(item("T#a", "MSG#1").with("body", "old"));
    let kept = expiring_later(item("T#a", "MSG#2"));
    store.put(Table::Data, gone, None).await.unwrap();
    store.put(Table::Data, kept.clone(), None).await.unwrap();
    store
        .put(Table::Data, item("T#a", "MSG#3"), None)
        .await
        .unwrap();
    // get
    assert_eq!(
        store.get(Table::Data, &key("T#a", "MSG#1")).await.unwrap(),
        None
    );
    assert_eq!(
        store.get(Table::Data, &key("T#a", "MSG#2")).await.unwrap(),
        Some(kept)
    );
    // query and scan
    let (items, _) = query_all(store, Table::Data, Query::partition("T#a").limit(1)).await;
    assert_eq!(sks(&items), ["MSG#2", "MSG#3"]);
    let page = store.scan(Table::Data, None, 100).await.unwrap();
    assert!(page.items.iter().all(|i| i.get_s("sk") != Some("MSG#1")));
    // conditions: an expired item does not exist...
    store
        .put(
            Table::Data,
            item("T#a", "MSG#1").with("body", "new"),
            Some(Condition::NotExists),
        )
        .await
        .expect("an expired item must not block attribute_not_exists");
    let got = store
        .get(Table::Data, &key("T#a", "MSG#1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.get_s("body"), Some("new"));
    assert_eq!(
        got.get_n(TTL_ATTR),
        None,
        "the put replaced the expired item"
    );
    // ...and cannot satisfy a positive condition.
    store
        .put(
            Table::Data,
            expired(item("T#a", "MSG#4").with("owner", "tn_a")),
            None,
        )
        .await
        .unwrap();
    for cond in [
        Condition::Exists,
        Condition::Equals("owner".into(), "tn_a".into()),
    ] {
        let err = store
            .delete(Table::Data, &key("T#a", "MSG#4"), Some(cond))
            .await
            .unwrap_err();
        assert!(err.is_condition_failed());
    }
}

pub(super) async fn update_never_builds_on_an_expired_item(store: &dyn TableStore) {
    let k = key("T#a", "COUNTER");
    store
        .put(
            Table::Data,
            expired(item("T#a", "COUNTER").with("n", 100i64).with("stale", "x")),
            None,
        )
        .await
        .unwrap();
    let got = store
        .update(
            Table::Data,
            &k,
            Update::new().add("n", 1),
            Some(Condition::NotExists),
        )
        .await
        .unwrap();
    assert_eq!(got.get_n("n"), Some(1), "counted from an absent item");
    assert_eq!(got.get("stale"), None);
    assert_eq!(got.get(TTL_ATTR), None);
    assert_eq!(store.get(Table::Data, &k).await.unwrap(), Some(got));
    // Same inside a transaction.
    store
        .put(
            Table::Data,
            expired(item("T#a", "C2").with("n", 50i64)),
            None,
        )
        .await
        .unwrap();
    store
        .transact_write(vec![WriteOp::Update {
            table: Table::Data,
            key: key("T#a", "C2"),
            update: Update::new().add("n", 1),
            condition: None,
        }])
        .await
        .unwrap();
    let got = store
        .get(Table::Data, &key("T#a", "C2"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.get_n("n"), Some(1));
}

pub(super) async fn query_filters_by_sort_key(store: &dyn TableStore) {
    for sk in [
        "CONV#1",
        "CONV#2",
        "MSG#2026-01",
        "MSG#2026-02",
        "MSG#2026-03",
        "MSH",
        "A",
    ] {
        store.put(Table::Data, item("T#a", sk), None).await.unwrap();
    }
    // A neighbouring partition that shares a prefix must never leak in.
    for sk in ["MSG#2026-01", "CONV#1"] {
        store
            .put(Table::Data, item("T#ab", sk), None)
            .await
            .unwrap();
        store.put(Table::Data, item("T#", sk), None).await.unwrap();
    }
    let q = |c: SortKeyCondition| Query::partition("T#a").sort_key(c);
    let cases: Vec<(Query, Vec<&str>)> = vec![
        (
            Query::partition("T#a"),
            vec![
                "A",
                "CONV#1",
                "CONV#2",
                "MSG#2026-01",
                "MSG#2026-02",
                "MSG#2026-03",
                "MSH",
            ],
        ),
        (
            Query::partition("T#a").begins_with("MSG#"),
            vec!["MSG#2026-01", "MSG#2026-02", "MSG#2026-03"],
        ),
        (
            Query::partition("T#a").begins_with("MSG#").descending(),
            vec!["MSG#2026-03", "MSG#2026-02", "MSG#2026-01"],
        ),
        (
            q(SortKeyCondition::Between(
                "MSG#2026-02".into(),
                "MSG#2026-03".into(),
            )),
            vec!["MSG#2026-02", "MSG#2026-03"],
        ),
        (
            q(SortKeyCondition::Between(
                "MSG#2026-02".into(),
                "MSG#2026-03".into(),
            ))
            .descending(),
            vec!["MSG#2026-03", "MSG#2026-02"],
        ),
        (
            q(SortKeyCondition::GreaterThan("MSG#2026-02".into())),
            vec!["MSG#2026-03", "MSH"],
        ),
        (
            q(SortKeyCondition::LessThan("CONV#2".into())),
            vec!["A", "CONV#1"],
        ),
        (
            q(SortKeyCondition::LessThan("CONV#2".into())).descending(),
            vec!["CONV#1", "A"],
        ),
        (Query::partition("T#a").begins_with("NOPE"), vec![]),
        (Query::partition("T#zzz"), vec![]),
    ];
    for (query, want) in cases {
        for limit in [1, 2, 100] {
            let (items, _) = query_all(store, Table::Data, query.clone().limit(limit)).await;
            assert_eq!(sks(&items), want, "{query:?} limit {limit}");
        }
    }
}

pub(super) async fn pagination_returns_every_item_once(store: &dyn TableStore) {
    let mut want = Vec::new();
    for n in 0..25 {
        let sk = format!("MSG#{n:03}");
        store
            .put(Table::Data, item("T#p", &sk), None)
            .await
            .unwrap();
        want.push(sk);
    }
    let (items, pages) = query_all(store, Table::Data, Query::partition("T#p").limit(10)).await;
    assert_eq!(sks(&items), want);
    assert!((3..=4).contains(&pages), "{pages} pages");
    let (items, _) = query_all(
        store,
        Table::Data,
        Query::partition("T#p").limit(7).descending(),
    )
    .await;
    want.reverse();
    assert_eq!(sks(&items), want);
    // The first page has exactly `limit` items and says more follow.
    let page = store
        .query(Table::Data, &Query::partition("T#p").limit(10))
        .await
        .unwrap();
    assert_eq!(page.items.len(), 10);
    assert_eq!(page.next, Some(key("T#p", "MSG#009")));
    // A scan sees everything too.
    let mut seen = Vec::new();
    let mut next: Option<Key> = None;
    loop {
        let page = store.scan(Table::Data, next.as_ref(), 4).await.unwrap();
        seen.extend(sks(&page.items));
        match page.next {
            Some(k) => next = Some(k),
            None => break,
        }
    }
    seen.sort();
    want.sort();
    assert_eq!(seen, want);
}
