//! Embedded table store: the [`TableStore`] port over one redb file (`tables.redb`) in a data
//! directory, for the local server and tests. No network, durable across restarts and crashes
//! (every write is all or nothing, answered only once it is on disk; concurrent writes share
//! one redb transaction and one fsync: see [`crate::group_commit`], decisions 0054 and 0092).
//!
//! One redb table per logical table, keyed by `(pk, sk)`, so a partition is one contiguous
//! range in sort-key order, as in DynamoDB. Values are the item encoded as JSON.
//!
//! Every write (including a whole transaction) runs on the file's writer thread, one after
//! the other, in its batch's redb write transaction, so a condition is evaluated and the write
//! applied atomically, and a write that fails leaves nothing. Expired items
//! (TTL in the past) are absent to every read and condition, per the port's rule.
//!
//! A `get` runs on the calling task; range reads (queries, scans), whose size the caller
//! chooses, run on the blocking pool. Items are encoded before the write reaches the file's
//! writer thread, and a write without a condition does not read the item it replaces
//! (decision 0087).

use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;
#[cfg(test)]
use std::time::Duration;

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};

use crate::group_commit::{CommitFailure, GroupCommit};

use super::{
    check_key, check_update, item_key, validate_batch, validate_limit, validate_transaction,
    Condition, Item, Key, Page, Query, SortKeyCondition, StoreError, Table, TableStore, Update,
    WriteOp,
};
use crate::clock::now_secs;

const FILE_NAME: &str = "tables.redb";

/// DynamoDB's item size limit; the embedded adapter applies it to the encoded item so an item
/// that works locally does not fail in AWS for its size.
const MAX_ITEM_BYTES: usize = 400 * 1024;

type Def = TableDefinition<'static, (&'static str, &'static str), &'static [u8]>;

fn definition(table: Table) -> Def {
    match table {
        Table::Data => TableDefinition::new("store_data"),
        Table::Routes => TableDefinition::new("store_routes"),
        Table::Keys => TableDefinition::new("store_keys"),
        Table::Dedupe => TableDefinition::new("store_dedupe"),
    }
}

fn db_err(e: impl Into<redb::Error>) -> StoreError {
    StoreError::Backend(format!("embedded table store: {}", e.into()))
}

fn encode(item: &Item) -> Result<Vec<u8>, StoreError> {
    let bytes =
        serde_json::to_vec(item).map_err(|e| StoreError::Backend(format!("encoding item: {e}")))?;
    if bytes.len() > MAX_ITEM_BYTES {
        return Err(StoreError::Invalid(format!(
            "item is larger than {MAX_ITEM_BYTES} bytes"
        )));
    }
    Ok(bytes)
}

fn decode(bytes: &[u8]) -> Result<Item, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Backend(format!("corrupt item: {e}")))
}

/// The live item at `key` within a write transaction.
fn live_in(
    txn: &WriteTransaction,
    table: Table,
    key: &Key,
    now: i64,
) -> Result<Option<Item>, StoreError> {
    let t = txn.open_table(definition(table)).map_err(db_err)?;
    let found = t.get((key.pk.as_str(), key.sk.as_str())).map_err(db_err)?;
    match found {
        Some(v) => {
            let item = decode(v.value())?;
            Ok((!item.is_expired(now)).then_some(item))
        }
        None => Ok(None),
    }
}

fn holds(condition: &Option<Condition>, live: Option<&Item>) -> bool {
    condition.as_ref().is_none_or(|c| c.evaluate(live))
}

fn insert(txn: &WriteTransaction, table: Table, item: &Item) -> Result<(), StoreError> {
    insert_encoded(txn, table, &item_key(item)?, &encode(item)?)
}

/// Writes an item already encoded (and checked for size) by the caller, off the writer thread.
fn insert_encoded(
    txn: &WriteTransaction,
    table: Table,
    key: &Key,
    bytes: &[u8],
) -> Result<(), StoreError> {
    let mut t = txn.open_table(definition(table)).map_err(db_err)?;
    t.insert((key.pk.as_str(), key.sk.as_str()), bytes)
        .map_err(db_err)?;
    Ok(())
}

fn remove(txn: &WriteTransaction, table: Table, key: &Key) -> Result<(), StoreError> {
    let mut t = txn.open_table(definition(table)).map_err(db_err)?;
    t.remove((key.pk.as_str(), key.sk.as_str()))
        .map_err(db_err)?;
    Ok(())
}

/// The smallest partition key sorting after every `(pk, _)`: `pk` followed by NUL. No string
/// lies strictly between `pk` and it, so `..(next, "")` ends exactly at the partition's end.
fn partition_end(pk: &str) -> String {
    format!("{pk}\0")
}

fn borrowed(b: &Bound<(String, String)>) -> Bound<(&str, &str)> {
    match b {
        Bound::Included((p, s)) => Bound::Included((p.as_str(), s.as_str())),
        Bound::Excluded((p, s)) => Bound::Excluded((p.as_str(), s.as_str())),
        Bound::Unbounded => Bound::Unbounded,
    }
}

/// The embedded adapter; cheap to clone (one shared database).
#[derive(Clone)]
pub struct EmbeddedStore {
    db: Arc<GroupCommit>,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore").finish_non_exhaustive()
    }
}

impl EmbeddedStore {
    /// Opens (creating if needed) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::Backend(format!("creating data directory {}: {e}", dir.display()))
        })?;
        let db = Database::create(dir.join(FILE_NAME)).map_err(db_err)?;
        let txn = db.begin_write().map_err(db_err)?;
        for table in Table::ALL {
            txn.open_table(definition(table)).map_err(db_err)?;
        }
        txn.commit().map_err(db_err)?;
        Ok(EmbeddedStore {
            db: Arc::new(GroupCommit::new(db)),
        })
    }

    /// Deletes up to `budget` items whose TTL has passed, as DynamoDB's TTL process does in
    /// AWS (reads already treat them as absent; this removes them from disk, so expired and
    /// erased data does not linger in the local files). Returns how many were deleted; run it
    /// again while it returns `budget`.
    pub async fn purge_expired(&self, budget: usize) -> Result<usize, StoreError> {
        self.write(move |txn, now| {
            let mut deleted = 0;
            for table in Table::ALL {
                let mut expired: Vec<(String, String)> = Vec::new();
                {
                    let t = txn.open_table(definition(table)).map_err(db_err)?;
                    for entry in t.iter().map_err(db_err)? {
                        if deleted + expired.len() >= budget {
                            break;
                        }
                        let (k, v) = entry.map_err(db_err)?;
                        if decode(v.value())?.is_expired(now) {
                            let (pk, sk) = k.value();
                            expired.push((pk.to_owned(), sk.to_owned()));
                        }
                    }
                }
                for (pk, sk) in &expired {
                    remove(txn, table, &Key::new(pk.as_str(), sk.as_str()))?;
                }
                deleted += expired.len();
                if deleted >= budget {
                    break;
                }
            }
            Ok(deleted)
        })
        .await
    }

    /// Runs `f` in its batch's write transaction on the file's writer thread; keeps its
    /// writes only if it returns Ok, and answers once they are on disk. `f` may run more than
    /// once (a failed write in its batch rolls the transaction back: see
    /// [`crate::group_commit`]).
    async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Fn(&WriteTransaction, i64) -> Result<T, StoreError> + Send + 'static,
    {
        self.db
            .write(
                |CommitFailure(e)| StoreError::Backend(format!("embedded table store: {e}")),
                move |txn| f(txn, now_secs()),
            )
            .await
    }

    /// Reads up to `limit` live items from a key range of `table`, in the given direction;
    /// `step` decides per key whether to take it, skip it, or stop.
    async fn read_range(
        &self,
        table: Table,
        lower: Bound<(String, String)>,
        upper: Bound<(String, String)>,
        descending: bool,
        limit: usize,
        step: impl Fn(&str, &str) -> Step + Send + 'static,
    ) -> Result<Page, StoreError> {
        let db = self.db.db().clone();
        tokio::task::spawn_blocking(move || {
            let now = now_secs();
            let txn = db.begin_read().map_err(db_err)?;
            let t = txn.open_table(definition(table)).map_err(db_err)?;
            let range = t
                .range::<(&str, &str)>((borrowed(&lower), borrowed(&upper)))
                .map_err(db_err)?;
            let entries: Box<dyn Iterator<Item = _>> = if descending {
                Box::new(range.rev())
            } else {
                Box::new(range)
            };
            let mut page = Page::default();
            for entry in entries {
                let (k, v) = entry.map_err(db_err)?;
                let (pk, sk) = k.value();
                match step(pk, sk) {
                    Step::Stop => break,
                    Step::Skip => continue,
                    Step::Take => {}
                }
                if page.items.len() == limit {
                    // Something follows the last returned item.
                    page.next = page.items.last().and_then(Item::key);
                    break;
                }
                let item = decode(v.value())?;
                if !item.is_expired(now) {
                    page.items.push(item);
                }
            }
            Ok(page)
        })
        .await
        .map_err(|e| StoreError::Backend(format!("store task failed: {e}")))?
    }
}

/// What a range read does with a key.
enum Step {
    Take,
    Skip,
    Stop,
}

#[async_trait]
impl TableStore for EmbeddedStore {
    async fn get(&self, table: Table, key: &Key) -> Result<Option<Item>, StoreError> {
        check_key(key)?;
        // On the calling task, not the blocking pool: one key's lookup takes microseconds
        // (its pages are in redb's cache, or the page cache of a file this process writes),
        // while the hand-off to a pool thread and back cost two thread wake-ups, and the
        // inbound path makes about eight of these reads per message (decision 0087).
        let txn = self.db.db().begin_read().map_err(db_err)?;
        let t = txn.open_table(definition(table)).map_err(db_err)?;
        let found = t.get((key.pk.as_str(), key.sk.as_str())).map_err(db_err)?;
        match found {
            Some(v) => {
                let item = decode(v.value())?;
                Ok((!item.is_expired(now_secs())).then_some(item))
            }
            None => Ok(None),
        }
    }

    async fn put(
        &self,
        table: Table,
        item: Item,
        condition: Option<Condition>,
    ) -> Result<(), StoreError> {
        let key = item_key(&item)?;
        // Encoded here, once: the writer thread runs every write of the file in turn, so
        // what can be done before it is not done on it.
        let bytes = encode(&item)?;
        self.write(move |txn, now| {
            // Without a condition the item there now does not matter: not read, not decoded.
            if condition.is_some() {
                let live = live_in(txn, table, &key, now)?;
                if !holds(&condition, live.as_ref()) {
                    return Err(StoreError::ConditionFailed { op_index: None });
                }
            }
            insert_encoded(txn, table, &key, &bytes)
        })
        .await
    }

    async fn update(
        &self,
        table: Table,
        key: &Key,
        update: Update,
        condition: Option<Condition>,
    ) -> Result<Item, StoreError> {
        check_key(key)?;
        check_update(&update)?;
        let key = key.clone();
        self.write(move |txn, now| {
            let live = live_in(txn, table, &key, now)?;
            if !holds(&condition, live.as_ref()) {
                return Err(StoreError::ConditionFailed { op_index: None });
            }
            let item = update.apply(&key, live);
            insert(txn, table, &item)?;
            Ok(item)
        })
        .await
    }

    async fn delete(
        &self,
        table: Table,
        key: &Key,
        condition: Option<Condition>,
    ) -> Result<(), StoreError> {
        check_key(key)?;
        let key = key.clone();
        self.write(move |txn, now| {
            let live = live_in(txn, table, &key, now)?;
            if !holds(&condition, live.as_ref()) {
                return Err(StoreError::ConditionFailed { op_index: None });
            }
            remove(txn, table, &key)
        })
        .await
    }

    async fn query(&self, table: Table, query: &Query) -> Result<Page, StoreError> {
        validate_limit(query.limit)?;
        if query.pk.is_empty() {
            return Err(StoreError::Invalid("query needs a partition key".into()));
        }
        if let Some(after) = &query.start_after {
            if after.pk != query.pk {
                return Err(StoreError::Invalid(
                    "start_after is not in the queried partition".into(),
                ));
            }
        }
        let pk = query.pk.clone();
        let start = (pk.clone(), String::new());
        let end = (partition_end(&pk), String::new());
        let (mut lower, mut upper) = (Bound::Included(start), Bound::Excluded(end));
        // Narrow the key range to the sort-key condition where a bound is at hand.
        match &query.sk {
            SortKeyCondition::BeginsWith(p) => lower = Bound::Included((pk.clone(), p.clone())),
            SortKeyCondition::Between(a, b) => {
                lower = Bound::Included((pk.clone(), a.clone()));
                upper = Bound::Included((pk.clone(), b.clone()));
            }
            SortKeyCondition::GreaterThan(a) => lower = Bound::Excluded((pk.clone(), a.clone())),
            SortKeyCondition::LessThan(b) => upper = Bound::Excluded((pk.clone(), b.clone())),
            SortKeyCondition::Any => {}
        }
        if let Some(after) = &query.start_after {
            let after = Bound::Excluded((after.pk.clone(), after.sk.clone()));
            if query.descending {
                upper = after;
            } else {
                lower = after;
            }
        }
        let cond = query.sk.clone();
        let descending = query.descending;
        self.read_range(
            table,
            lower,
            upper,
            descending,
            query.limit,
            move |p, sk| {
                if p != pk {
                    return Step::Stop;
                }
                if cond.matches(sk) {
                    return Step::Take;
                }
                match &cond {
                    // Walking down from the partition's end, keys above the prefix come first.
                    SortKeyCondition::BeginsWith(prefix) if descending && sk > prefix.as_str() => {
                        Step::Skip
                    }
                    _ => Step::Stop,
                }
            },
        )
        .await
    }

    async fn scan(
        &self,
        table: Table,
        start_after: Option<&Key>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        validate_limit(limit)?;
        let lower = match start_after {
            Some(k) => Bound::Excluded((k.pk.clone(), k.sk.clone())),
            None => Bound::Unbounded,
        };
        self.read_range(table, lower, Bound::Unbounded, false, limit, |_, _| {
            Step::Take
        })
        .await
    }

    async fn transact_write(&self, ops: Vec<WriteOp>) -> Result<(), StoreError> {
        validate_transaction(&ops)?;
        // Each put's item encoded here, once, off the writer thread (as for `put`).
        let mut encoded: Vec<Option<Vec<u8>>> = Vec::with_capacity(ops.len());
        for op in &ops {
            match op {
                WriteOp::Put { item, .. } => {
                    item_key(item)?;
                    encoded.push(Some(encode(item)?));
                    continue;
                }
                WriteOp::Update { key, update, .. } => {
                    check_key(key)?;
                    check_update(update)?;
                }
                WriteOp::Delete { key, .. } | WriteOp::ConditionCheck { key, .. } => {
                    check_key(key)?
                }
            }
            encoded.push(None);
        }
        self.write(move |txn, now| {
            // All conditions against the state before any write, then all writes. The live
            // item is read only where a condition or an update needs it.
            let mut lives = Vec::with_capacity(ops.len());
            for (index, op) in ops.iter().enumerate() {
                let (table, key) = op.table_and_key().expect("validated above");
                let condition = match op {
                    WriteOp::Put { condition, .. }
                    | WriteOp::Update { condition, .. }
                    | WriteOp::Delete { condition, .. } => condition.clone(),
                    WriteOp::ConditionCheck { condition, .. } => Some(condition.clone()),
                };
                let needed = condition.is_some() || matches!(op, WriteOp::Update { .. });
                let live = if needed {
                    live_in(txn, table, &key, now)?
                } else {
                    None
                };
                if !holds(&condition, live.as_ref()) {
                    return Err(StoreError::ConditionFailed {
                        op_index: Some(index),
                    });
                }
                lives.push((key, live));
            }
            for ((op, (key, live)), bytes) in ops.iter().zip(lives).zip(&encoded) {
                match (op, bytes) {
                    (WriteOp::Put { table, .. }, Some(bytes)) => {
                        insert_encoded(txn, *table, &key, bytes)?
                    }
                    (WriteOp::Update { table, update, .. }, _) => {
                        insert(txn, *table, &update.apply(&key, live))?
                    }
                    (WriteOp::Delete { table, .. }, _) => remove(txn, *table, &key)?,
                    _ => {}
                }
            }
            Ok(())
        })
        .await
    }

    /// One write transaction for the whole batch (one commit, one fsync), as DynamoDB's
    /// `BatchWriteItem` is one request.
    async fn delete_batch(&self, keys: Vec<(Table, Key)>) -> Result<(), StoreError> {
        validate_batch(&keys)?;
        if keys.is_empty() {
            return Ok(());
        }
        self.write(move |txn, _now| {
            for (table, key) in &keys {
                remove(txn, *table, key)?;
            }
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(pk: &str, sk: &str, n: i64) -> Item {
        let mut item = Item::new(&Key::new(pk, sk));
        item.set("n", n);
        item
    }

    /// Bytes at a key that do not decode as an item, written around the adapter.
    async fn corrupt(store: &EmbeddedStore, key: Key) {
        store
            .write(move |txn, _| {
                insert_encoded(txn, Table::Data, &key, b"not an item")?;
                Ok(())
            })
            .await
            .expect("raw write");
    }

    /// An unconditional write replaces what is there without reading it: a put or a
    /// transaction's put over bytes that do not even decode succeeds. A write with a
    /// condition still reads (and so fails on) them.
    #[tokio::test]
    async fn an_unconditional_write_does_not_read_the_item_it_replaces() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = EmbeddedStore::open(dir.path()).expect("open");
        let key = Key::new("P", "a");
        corrupt(&store, key.clone()).await;
        let conditional = store
            .put(Table::Data, item("P", "a", 1), Some(Condition::Exists))
            .await;
        assert!(
            matches!(conditional, Err(StoreError::Backend(_))),
            "{conditional:?}"
        );
        store
            .put(Table::Data, item("P", "a", 2), None)
            .await
            .expect("unconditional put");
        let read = store.get(Table::Data, &key).await.expect("get");
        assert_eq!(read.and_then(|i| i.get_n("n")), Some(2));

        corrupt(&store, key.clone()).await;
        store
            .transact_write(vec![
                WriteOp::Put {
                    table: Table::Data,
                    item: item("P", "a", 3),
                    condition: None,
                },
                WriteOp::Put {
                    table: Table::Data,
                    item: item("P", "b", 4),
                    condition: Some(Condition::NotExists),
                },
            ])
            .await
            .expect("unconditional put in a transaction");
        let read = store.get(Table::Data, &key).await.expect("get");
        assert_eq!(read.and_then(|i| i.get_n("n")), Some(3));
    }

    /// A `get` does not go through the blocking pool: with the pool's only thread held, it
    /// still answers (through the pool it would wait for the thread).
    #[test]
    fn a_get_does_not_wait_for_the_blocking_pool() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let dir = tempfile::tempdir().expect("temp dir");
        let store = EmbeddedStore::open(dir.path()).expect("open");
        rt.block_on(store.put(Table::Data, item("P", "a", 7), None))
            .expect("put");
        let (release, released) = std::sync::mpsc::channel::<()>();
        let (held, is_held) = std::sync::mpsc::channel::<()>();
        let holder = rt.spawn_blocking(move || {
            held.send(()).expect("signal");
            let _ = released.recv();
        });
        is_held.recv().expect("the pool's thread is held");
        let read = rt.block_on(async {
            tokio::time::timeout(
                Duration::from_secs(5),
                store.get(Table::Data, &Key::new("P", "a")),
            )
            .await
        });
        release.send(()).expect("release");
        rt.block_on(holder).expect("holder");
        let item = read.expect("answered without the pool").expect("get");
        assert_eq!(item.and_then(|i| i.get_n("n")), Some(7));
    }
}
