//! A store decorator that shows every call to a hook before it runs: the one wrapper the
//! tests use to fail, count, pause or crash store calls, instead of a hand-written delegating
//! `TableStore` each. The hook sees what the call is ([`StoreCall`]: operation, table, key,
//! item, update, query) and answers with a [`Verdict`]: run it, fail it without running it,
//! or run it and then fail (a write whose answer was lost, a process that died right after
//! the write). A hook that waits before answering pauses the caller; one that never answers
//! is a crash before the call (the test drops the caller's future).
//!
//! Batched deletes reach the hook as one call by default ([`StoreCall::DeleteBatch`]), as
//! they reach the adapters; [`HookedStore::one_by_one`] splits them into single deletes
//! first, each shown to the hook, as a store without batches would run them (what the
//! erasure did before it batched, and what a crash part-way through a batch leaves).

use std::sync::Arc;

use async_trait::async_trait;

use crate::store::{
    validate_batch, AttrValue, Condition, Item, Key, Page, Query, StoreError, Table, TableStore,
    Update, WriteOp,
};

/// One store call, as the hook sees it before it runs.
#[derive(Clone, Copy, Debug)]
pub enum StoreCall<'a> {
    Get {
        table: Table,
        key: &'a Key,
    },
    Put {
        table: Table,
        item: &'a Item,
        condition: Option<&'a Condition>,
    },
    Update {
        table: Table,
        key: &'a Key,
        update: &'a Update,
        condition: Option<&'a Condition>,
    },
    Delete {
        table: Table,
        key: &'a Key,
        condition: Option<&'a Condition>,
    },
    Query {
        table: Table,
        query: &'a Query,
    },
    Scan {
        table: Table,
        start_after: Option<&'a Key>,
        limit: usize,
    },
    Transact {
        ops: &'a [WriteOp],
    },
    DeleteBatch {
        keys: &'a [(Table, Key)],
    },
}

impl StoreCall<'_> {
    /// The operation's name: `get`, `put`, `update`, `delete`, `query`, `scan`, `transact`,
    /// `delete_batch`.
    pub fn op(&self) -> &'static str {
        match self {
            StoreCall::Get { .. } => "get",
            StoreCall::Put { .. } => "put",
            StoreCall::Update { .. } => "update",
            StoreCall::Delete { .. } => "delete",
            StoreCall::Query { .. } => "query",
            StoreCall::Scan { .. } => "scan",
            StoreCall::Transact { .. } => "transact",
            StoreCall::DeleteBatch { .. } => "delete_batch",
        }
    }

    /// True for the calls that change state.
    pub fn writes(&self) -> bool {
        !matches!(
            self,
            StoreCall::Get { .. } | StoreCall::Query { .. } | StoreCall::Scan { .. }
        )
    }

    /// The values the call writes, by attribute name: a put's item, an update's `set`, and
    /// those of a transaction's puts and updates (reads, deletes and condition checks write
    /// none). Keys are [`StoreCall::targets`].
    pub fn written_values(&self) -> Vec<(&str, &AttrValue)> {
        fn of_item(item: &Item) -> impl Iterator<Item = (&str, &AttrValue)> {
            item.0.iter().map(|(k, v)| (k.as_str(), v))
        }
        fn of_update(update: &Update) -> impl Iterator<Item = (&str, &AttrValue)> {
            update.set.iter().map(|(k, v)| (k.as_str(), v))
        }
        match self {
            StoreCall::Put { item, .. } => of_item(item).collect(),
            StoreCall::Update { update, .. } => of_update(update).collect(),
            StoreCall::Transact { ops } => ops
                .iter()
                .flat_map(|op| -> Vec<(&str, &AttrValue)> {
                    match op {
                        WriteOp::Put { item, .. } => of_item(item).collect(),
                        WriteOp::Update { update, .. } => of_update(update).collect(),
                        WriteOp::Delete { .. } | WriteOp::ConditionCheck { .. } => Vec::new(),
                    }
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The items the call names, by table and key: one for a single-item call, every
    /// operation's for a transaction, every key of a batch, none for a query or a scan (their
    /// partition is [`StoreCall::partition`]'s).
    pub fn targets(&self) -> Vec<(Table, Key)> {
        match self {
            StoreCall::Get { table, key }
            | StoreCall::Update { table, key, .. }
            | StoreCall::Delete { table, key, .. } => vec![(*table, (*key).clone())],
            StoreCall::Put { table, item, .. } => {
                item.key().map(|k| (*table, k)).into_iter().collect()
            }
            StoreCall::Transact { ops } => ops.iter().filter_map(WriteOp::table_and_key).collect(),
            StoreCall::DeleteBatch { keys } => keys.to_vec(),
            StoreCall::Query { .. } | StoreCall::Scan { .. } => Vec::new(),
        }
    }

    /// The partition a query reads.
    pub fn partition(&self) -> Option<&str> {
        match self {
            StoreCall::Query { query, .. } => Some(&query.pk),
            _ => None,
        }
    }
}

/// What the store does with a call the hook has seen.
#[derive(Debug)]
pub enum Verdict {
    /// Run it.
    Run,
    /// Answer with this error; the call does not run.
    Fail(StoreError),
    /// Run it, then answer with this error whatever it returned.
    RunThenFail(StoreError),
}

/// The answer of a call that ran, as [`StoreHook::answered`] sees it.
#[derive(Clone, Copy, Debug)]
pub enum Answer<'a> {
    /// A get's item.
    Item(Option<&'a Item>),
    /// An update's new item.
    Updated(&'a Item),
    /// A query's or a scan's page.
    Page(&'a Page),
    /// A put, delete, transaction or batch that succeeded.
    Done,
}

/// What a [`HookedStore`] calls for every call it receives.
#[async_trait]
pub trait StoreHook: Send + Sync + 'static {
    /// Decides the call's fate before it runs; awaiting here holds the caller. By default
    /// every call runs.
    async fn before(&self, _call: &StoreCall<'_>) -> Verdict {
        Verdict::Run
    }

    /// Sees the answer of a call that ran (not of one failed by [`Verdict::Fail`]); the
    /// answer reaches the caller unchanged.
    fn answered(&self, _call: &StoreCall<'_>, _answer: Result<Answer<'_>, &StoreError>) {}
}

/// A hook shared by its owner and the store it watches (a test keeps one handle to read what
/// the hook saw; the local server takes the other).
#[derive(Clone)]
pub struct SharedHook(pub Arc<dyn StoreHook>);

impl std::fmt::Debug for SharedHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedHook")
    }
}

#[async_trait]
impl StoreHook for SharedHook {
    async fn before(&self, call: &StoreCall<'_>) -> Verdict {
        self.0.before(call).await
    }

    fn answered(&self, call: &StoreCall<'_>, answer: Result<Answer<'_>, &StoreError>) {
        self.0.answered(call, answer)
    }
}

/// A hook from a closure that decides without waiting (counting, recording, failing).
pub struct FnHook<F>(pub F);

#[async_trait]
impl<F> StoreHook for FnHook<F>
where
    F: Fn(&StoreCall<'_>) -> Verdict + Send + Sync + 'static,
{
    async fn before(&self, call: &StoreCall<'_>) -> Verdict {
        (self.0)(call)
    }
}

/// The hooked decorator: every call meets the hook, then reaches `inner`.
pub struct HookedStore<H> {
    inner: Arc<dyn TableStore>,
    hook: H,
    one_by_one: bool,
}

impl<H: StoreHook> HookedStore<H> {
    pub fn new(inner: Arc<dyn TableStore>, hook: H) -> Self {
        HookedStore {
            inner,
            hook,
            one_by_one: false,
        }
    }

    /// Batched deletes run as single deletes, each shown to the hook (the port's default
    /// for a store without batches).
    pub fn one_by_one(mut self) -> Self {
        self.one_by_one = true;
        self
    }

    pub fn hook(&self) -> &H {
        &self.hook
    }

    /// Runs `run` under the hook's verdict on `call`; `seen` turns its result into the
    /// answer the hook is shown.
    async fn hooked<T>(
        &self,
        call: StoreCall<'_>,
        run: impl std::future::Future<Output = Result<T, StoreError>>,
        seen: fn(&T) -> Answer<'_>,
    ) -> Result<T, StoreError> {
        let fail_after = match self.hook.before(&call).await {
            Verdict::Run => None,
            Verdict::Fail(e) => return Err(e),
            Verdict::RunThenFail(e) => Some(e),
        };
        let r = run.await;
        self.hook.answered(&call, r.as_ref().map(seen));
        match fail_after {
            Some(e) => Err(e),
            None => r,
        }
    }
}

impl<F> HookedStore<FnHook<F>>
where
    F: Fn(&StoreCall<'_>) -> Verdict + Send + Sync + 'static,
{
    /// A store hooked by a closure that decides without waiting.
    pub fn with(inner: Arc<dyn TableStore>, hook: F) -> Self {
        HookedStore::new(inner, FnHook(hook))
    }
}

#[async_trait]
impl<H: StoreHook> TableStore for HookedStore<H> {
    async fn get(&self, table: Table, key: &Key) -> Result<Option<Item>, StoreError> {
        let call = StoreCall::Get { table, key };
        self.hooked(call, self.inner.get(table, key), |i| {
            Answer::Item(i.as_ref())
        })
        .await
    }

    async fn put(
        &self,
        table: Table,
        item: Item,
        condition: Option<Condition>,
    ) -> Result<(), StoreError> {
        // The hook sees the item as it will be written; the inner store takes its own copy.
        let call = StoreCall::Put {
            table,
            item: &item,
            condition: condition.as_ref(),
        };
        let run = self.inner.put(table, item.clone(), condition.clone());
        self.hooked(call, run, |_| Answer::Done).await
    }

    async fn update(
        &self,
        table: Table,
        key: &Key,
        update: Update,
        condition: Option<Condition>,
    ) -> Result<Item, StoreError> {
        let call = StoreCall::Update {
            table,
            key,
            update: &update,
            condition: condition.as_ref(),
        };
        let run = self
            .inner
            .update(table, key, update.clone(), condition.clone());
        self.hooked(call, run, |i| Answer::Updated(i)).await
    }

    async fn delete(
        &self,
        table: Table,
        key: &Key,
        condition: Option<Condition>,
    ) -> Result<(), StoreError> {
        let call = StoreCall::Delete {
            table,
            key,
            condition: condition.as_ref(),
        };
        let run = self.inner.delete(table, key, condition.clone());
        self.hooked(call, run, |_| Answer::Done).await
    }

    async fn query(&self, table: Table, query: &Query) -> Result<Page, StoreError> {
        let call = StoreCall::Query { table, query };
        self.hooked(call, self.inner.query(table, query), |p| Answer::Page(p))
            .await
    }

    async fn scan(
        &self,
        table: Table,
        start_after: Option<&Key>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        let call = StoreCall::Scan {
            table,
            start_after,
            limit,
        };
        let run = self.inner.scan(table, start_after, limit);
        self.hooked(call, run, |p| Answer::Page(p)).await
    }

    async fn transact_write(&self, ops: Vec<WriteOp>) -> Result<(), StoreError> {
        let call = StoreCall::Transact { ops: &ops };
        let run = self.inner.transact_write(ops.clone());
        self.hooked(call, run, |_| Answer::Done).await
    }

    async fn delete_batch(&self, keys: Vec<(Table, Key)>) -> Result<(), StoreError> {
        if self.one_by_one {
            validate_batch(&keys)?;
            for (table, key) in keys {
                self.delete(table, &key, None).await?;
            }
            return Ok(());
        }
        let call = StoreCall::DeleteBatch { keys: &keys };
        let run = self.inner.delete_batch(keys.clone());
        self.hooked(call, run, |_| Answer::Done).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::store::embedded::EmbeddedStore;

    fn key(pk: &str, sk: &str) -> Key {
        Key::new(pk, sk)
    }

    fn item(pk: &str, sk: &str) -> Item {
        Item::new(&key(pk, sk))
    }

    #[tokio::test]
    async fn verdicts_fail_run_or_run_then_fail() {
        let dir = tempfile::tempdir().unwrap();
        let inner: Arc<dyn TableStore> = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
        let store = HookedStore::with(inner.clone(), |call: &StoreCall<'_>| {
            match call.targets().first().map(|(_, k)| k.sk.as_str()) {
                Some("fail") => Verdict::Fail(StoreError::Unavailable("no".into())),
                Some("lost") => Verdict::RunThenFail(StoreError::Unavailable("lost".into())),
                _ => Verdict::Run,
            }
        });
        assert!(store
            .put(Table::Data, item("P", "fail"), None)
            .await
            .is_err());
        assert!(store
            .put(Table::Data, item("P", "lost"), None)
            .await
            .is_err());
        store.put(Table::Data, item("P", "ok"), None).await.unwrap();
        // The failed write did not run; the lost answer's write did.
        assert!(inner
            .get(Table::Data, &key("P", "fail"))
            .await
            .unwrap()
            .is_none());
        assert!(inner
            .get(Table::Data, &key("P", "lost"))
            .await
            .unwrap()
            .is_some());
        assert!(inner
            .get(Table::Data, &key("P", "ok"))
            .await
            .unwrap()
            .is_some());
    }

    #[tokio::test]
    async fn batches_reach_the_hook_whole_or_one_by_one() {
        let dir = tempfile::tempdir().unwrap();
        let inner: Arc<dyn TableStore> = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
        for sk in ["a", "b", "c"] {
            inner.put(Table::Data, item("P", sk), None).await.unwrap();
        }
        let keys = || {
            ["a", "b"]
                .iter()
                .map(|sk| (Table::Data, key("P", sk)))
                .collect::<Vec<_>>()
        };
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        let whole = HookedStore::with(inner.clone(), move |call: &StoreCall<'_>| {
            assert_eq!(call.op(), "delete_batch");
            counted.fetch_add(1, Ordering::SeqCst);
            Verdict::Run
        });
        whole.delete_batch(keys()).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let counted = calls.clone();
        let single = HookedStore::with(inner.clone(), move |call: &StoreCall<'_>| {
            assert_eq!(call.op(), "delete");
            counted.fetch_add(1, Ordering::SeqCst);
            Verdict::Run
        })
        .one_by_one();
        single
            .delete_batch(vec![(Table::Data, key("P", "c"))])
            .await
            .unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert!(inner
            .scan(Table::Data, None, 10)
            .await
            .unwrap()
            .items
            .is_empty());
    }
}
