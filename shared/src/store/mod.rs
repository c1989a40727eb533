//! The table-store port: a DynamoDB-shaped key-value store.
//!
//! Every table has a string partition key `pk` and a string sort key `sk`. Items may carry a
//! TTL attribute ([`TTL_ATTR`], Unix seconds). DynamoDB deletes expired items lazily (up to days
//! later) and moto never does, so **expiry is this port's own rule**: an item whose TTL is in
//! the past is treated as absent by every read, query, scan and condition, in both adapters.
//!
//! Adapters: [`dynamo::DynamoStore`] (aws-sdk-dynamodb) and [`embedded::EmbeddedStore`]
//! (redb files under a data directory). One conformance suite (`shared/tests/`) runs against
//! both.

pub mod dynamo;
pub mod embedded;
pub mod fence;

use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// Partition key attribute name, on every table.
pub const PK: &str = "pk";
/// Sort key attribute name, on every table.
pub const SK: &str = "sk";
/// TTL attribute name (Unix seconds), on every table that has TTL enabled.
pub const TTL_ATTR: &str = "expires_at";
/// DynamoDB's limit on items in one transaction.
pub const MAX_TRANSACTION_ITEMS: usize = 100;
/// Upper bound on a page size.
pub const MAX_PAGE_SIZE: usize = 1000;
/// DynamoDB's limit on requests in one `BatchWriteItem`: 25
/// (<https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_BatchWriteItem.html>).
pub const MAX_BATCH_WRITE_ITEMS: usize = 25;

/// The logical tables. Adapters map them to physical names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    /// Tenant data; every partition key starts with `T#<tenant id>`.
    Data,
    /// Global map of exact external ids (WhatsApp number, Instagram account, Bitrix24 portal)
    /// to their one tenant, and the tenant directory.
    Routes,
    /// Wrapped per-tenant data keys; deleting a tenant's partition crypto-shreds its data.
    Keys,
    /// Idempotency records (inbound dedupe, send dedupe), tenant-prefixed, with TTL.
    Dedupe,
}

impl Table {
    pub const ALL: [Table; 4] = [Table::Data, Table::Routes, Table::Keys, Table::Dedupe];

    /// Stable short name, used in AAD, file names and default physical names.
    pub fn logical_name(self) -> &'static str {
        match self {
            Table::Data => "data",
            Table::Routes => "routes",
            Table::Keys => "keys",
            Table::Dedupe => "dedupe",
        }
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.logical_name())
    }
}

/// A primary key: partition key plus sort key.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Key {
    pub pk: String,
    pub sk: String,
}

impl Key {
    pub fn new(pk: impl Into<String>, sk: impl Into<String>) -> Self {
        Key {
            pk: pk.into(),
            sk: sk.into(),
        }
    }
}

/// An attribute value. Numbers are integers: everything we store (times, counters, versions)
/// is one, and it keeps comparisons exact in both adapters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum AttrValue {
    S(String),
    N(i64),
    B(#[serde(with = "b64")] Vec<u8>),
    Bool(bool),
    Null,
    L(Vec<AttrValue>),
    M(BTreeMap<String, AttrValue>),
}

impl AttrValue {
    pub fn as_s(&self) -> Option<&str> {
        match self {
            AttrValue::S(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_n(&self) -> Option<i64> {
        match self {
            AttrValue::N(n) => Some(*n),
            _ => None,
        }
    }
    pub fn as_b(&self) -> Option<&[u8]> {
        match self {
            AttrValue::B(b) => Some(b),
            _ => None,
        }
    }
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            AttrValue::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// Ordering used by `<` conditions: numbers with numbers, strings and binaries
    /// lexicographically, as DynamoDB does; other pairs are not comparable.
    pub fn partial_cmp_dynamo(&self, other: &AttrValue) -> Option<std::cmp::Ordering> {
        match (self, other) {
            (AttrValue::N(a), AttrValue::N(b)) => Some(a.cmp(b)),
            (AttrValue::S(a), AttrValue::S(b)) => Some(a.as_bytes().cmp(b.as_bytes())),
            (AttrValue::B(a), AttrValue::B(b)) => Some(a.cmp(b)),
            _ => None,
        }
    }
}

impl From<&str> for AttrValue {
    fn from(v: &str) -> Self {
        AttrValue::S(v.to_owned())
    }
}
impl From<String> for AttrValue {
    fn from(v: String) -> Self {
        AttrValue::S(v)
    }
}
impl From<i64> for AttrValue {
    fn from(v: i64) -> Self {
        AttrValue::N(v)
    }
}
impl From<Vec<u8>> for AttrValue {
    fn from(v: Vec<u8>) -> Self {
        AttrValue::B(v)
    }
}
impl From<bool> for AttrValue {
    fn from(v: bool) -> Self {
        AttrValue::Bool(v)
    }
}

mod b64 {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(v))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        STANDARD.decode(s).map_err(serde::de::Error::custom)
    }
}

/// An item: named attributes, always including `pk` and `sk`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Item(pub BTreeMap<String, AttrValue>);

impl Item {
    /// A new item with its key attributes set.
    pub fn new(key: &Key) -> Self {
        let mut m = BTreeMap::new();
        m.insert(PK.to_owned(), AttrValue::S(key.pk.clone()));
        m.insert(SK.to_owned(), AttrValue::S(key.sk.clone()));
        Item(m)
    }

    /// Builder-style attribute setter.
    pub fn with(mut self, name: &str, value: impl Into<AttrValue>) -> Self {
        self.0.insert(name.to_owned(), value.into());
        self
    }

    pub fn set(&mut self, name: &str, value: impl Into<AttrValue>) {
        self.0.insert(name.to_owned(), value.into());
    }

    pub fn get(&self, name: &str) -> Option<&AttrValue> {
        self.0.get(name)
    }
    pub fn get_s(&self, name: &str) -> Option<&str> {
        self.0.get(name).and_then(AttrValue::as_s)
    }
    pub fn get_n(&self, name: &str) -> Option<i64> {
        self.0.get(name).and_then(AttrValue::as_n)
    }
    pub fn get_b(&self, name: &str) -> Option<&[u8]> {
        self.0.get(name).and_then(AttrValue::as_b)
    }
    pub fn get_bool(&self, name: &str) -> Option<bool> {
        self.0.get(name).and_then(AttrValue::as_bool)
    }
    pub fn remove(&mut self, name: &str) -> Option<AttrValue> {
        self.0.remove(name)
    }

    /// The item's primary key, if both key attributes are strings.
    pub fn key(&self) -> Option<Key> {
        Some(Key::new(self.get_s(PK)?, self.get_s(SK)?))
    }

    /// True when the item carries a TTL at or before `now` (Unix seconds).
    pub fn is_expired(&self, now_secs: i64) -> bool {
        matches!(self.get_n(TTL_ATTR), Some(ttl) if ttl <= now_secs)
    }
}

/// A condition on the *live* item at a key (absent or expired counts as no item), with
/// DynamoDB's meaning for each form.
#[derive(Clone, Debug, PartialEq)]
pub enum Condition {
    /// No live item exists at the key (`attribute_not_exists(pk)`, expired counts as absent).
    NotExists,
    /// A live item exists at the key.
    Exists,
    /// A live item exists and its attribute equals the value.
    Equals(String, AttrValue),
    /// A live item exists and its attribute is less than the value (same type).
    LessThan(String, AttrValue),
    /// No live item exists, or it lacks the attribute (`attribute_not_exists(a)`).
    AttrNotExists(String),
    And(Vec<Condition>),
    Or(Vec<Condition>),
}

impl Condition {
    /// The numeric attribute `attr` is still what was read (`read`, None when it was absent):
    /// a write or delete of an item that nobody rewrote since.
    pub fn number_unchanged(attr: &str, read: Option<i64>) -> Self {
        match read {
            Some(n) => Condition::Equals(attr.into(), AttrValue::N(n)),
            None => Condition::AttrNotExists(attr.into()),
        }
    }

    /// Evaluates the condition against the live item (None when absent or expired).
    pub fn evaluate(&self, live: Option<&Item>) -> bool {
        match self {
            Condition::NotExists => live.is_none(),
            Condition::Exists => live.is_some(),
            Condition::Equals(a, v) => live.and_then(|i| i.get(a)) == Some(v),
            Condition::LessThan(a, v) => live
                .and_then(|i| i.get(a))
                .and_then(|x| x.partial_cmp_dynamo(v))
                .is_some_and(|o| o == std::cmp::Ordering::Less),
            Condition::AttrNotExists(a) => live.is_none_or(|i| i.get(a).is_none()),
            Condition::And(cs) => cs.iter().all(|c| c.evaluate(live)),
            Condition::Or(cs) => cs.iter().any(|c| c.evaluate(live)),
        }
    }
}

/// A condition on the sort key within one partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SortKeyCondition {
    Any,
    BeginsWith(String),
    /// Inclusive on both ends.
    Between(String, String),
    GreaterThan(String),
    LessThan(String),
}

impl SortKeyCondition {
    pub fn matches(&self, sk: &str) -> bool {
        match self {
            SortKeyCondition::Any => true,
            SortKeyCondition::BeginsWith(p) => sk.starts_with(p.as_str()),
            SortKeyCondition::Between(a, b) => sk >= a.as_str() && sk <= b.as_str(),
            SortKeyCondition::GreaterThan(a) => sk > a.as_str(),
            SortKeyCondition::LessThan(a) => sk < a.as_str(),
        }
    }
}

/// A query of one partition, in sort-key order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Query {
    pub pk: String,
    pub sk: SortKeyCondition,
    /// Items per page, 1..=[`MAX_PAGE_SIZE`].
    pub limit: usize,
    /// Resume after this key (exclusive): the previous page's `next`.
    pub start_after: Option<Key>,
    /// Newest first when sort keys are times.
    pub descending: bool,
}

impl Query {
    pub fn partition(pk: impl Into<String>) -> Self {
        Query {
            pk: pk.into(),
            sk: SortKeyCondition::Any,
            limit: 100,
            start_after: None,
            descending: false,
        }
    }
    pub fn begins_with(mut self, prefix: impl Into<String>) -> Self {
        self.sk = SortKeyCondition::BeginsWith(prefix.into());
        self
    }
    pub fn sort_key(mut self, cond: SortKeyCondition) -> Self {
        self.sk = cond;
        self
    }
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }
    pub fn start_after(mut self, key: Option<Key>) -> Self {
        self.start_after = key;
        self
    }
    pub fn descending(mut self) -> Self {
        self.descending = true;
        self
    }
}

/// One page of results. Pages hold at most `limit` live items and may hold fewer (expired items
/// are skipped); `next` is set whenever more items may follow.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Page {
    pub items: Vec<Item>,
    pub next: Option<Key>,
}

/// Attribute changes applied atomically to one item (DynamoDB `UpdateItem`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Update {
    pub set: Vec<(String, AttrValue)>,
    /// Atomic counter increments; a missing attribute counts as 0.
    pub add: Vec<(String, i64)>,
    pub remove: Vec<String>,
}

impl Update {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn set(mut self, name: &str, value: impl Into<AttrValue>) -> Self {
        self.set.push((name.to_owned(), value.into()));
        self
    }
    pub fn add(mut self, name: &str, delta: i64) -> Self {
        self.add.push((name.to_owned(), delta));
        self
    }
    pub fn remove(mut self, name: &str) -> Self {
        self.remove.push(name.to_owned());
        self
    }

    /// Applies the update to a live item (or a fresh one), as both adapters must.
    pub fn apply(&self, key: &Key, live: Option<Item>) -> Item {
        let mut item = live.unwrap_or_else(|| Item::new(key));
        for (n, v) in &self.set {
            item.set(n, v.clone());
        }
        for (n, d) in &self.add {
            let cur = item.get_n(n).unwrap_or(0);
            item.set(n, AttrValue::N(cur + d));
        }
        for n in &self.remove {
            item.remove(n);
        }
        item
    }
}

/// One write of a transaction.
#[derive(Clone, Debug, PartialEq)]
pub enum WriteOp {
    Put {
        table: Table,
        item: Item,
        condition: Option<Condition>,
    },
    Update {
        table: Table,
        key: Key,
        update: Update,
        condition: Option<Condition>,
    },
    Delete {
        table: Table,
        key: Key,
        condition: Option<Condition>,
    },
    /// Only checks a condition on another item.
    ConditionCheck {
        table: Table,
        key: Key,
        condition: Condition,
    },
}

impl WriteOp {
    pub fn table_and_key(&self) -> Option<(Table, Key)> {
        match self {
            WriteOp::Put { table, item, .. } => item.key().map(|k| (*table, k)),
            WriteOp::Update { table, key, .. }
            | WriteOp::Delete { table, key, .. }
            | WriteOp::ConditionCheck { table, key, .. } => Some((*table, key.clone())),
        }
    }
}

#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum StoreError {
    /// A condition did not hold; nothing was written. For a transaction, `op_index` names the
    /// first operation whose condition failed, where the backend says.
    #[error("condition failed")]
    ConditionFailed { op_index: Option<usize> },
    /// The request was malformed (bad key, too many transaction items, duplicate keys...).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The backend is throttling or briefly unavailable: retry later.
    #[error("store temporarily unavailable: {0}")]
    Unavailable(String),
    /// Anything else from the backend.
    #[error("store backend error: {0}")]
    Backend(String),
    /// Outside the partitions of the tenant the work acts for: refused by the fence
    /// ([`fence`]) or by IAM (AccessDenied). Nothing was read or written.
    #[error("access denied: {0}")]
    Denied(String),
}

impl StoreError {
    pub fn is_condition_failed(&self) -> bool {
        matches!(self, StoreError::ConditionFailed { .. })
    }
}

/// The table-store port.
#[async_trait]
pub trait TableStore: Send + Sync + 'static {
    /// Reads the live item at `key` (strongly consistent).
    async fn get(&self, table: Table, key: &Key) -> Result<Option<Item>, StoreError>;

    /// Writes the whole item if the condition holds.
    async fn put(
        &self,
        table: Table,
        item: Item,
        condition: Option<Condition>,
    ) -> Result<(), StoreError>;

    /// Applies `update` to the item at `key` (creating it when absent or expired) if the
    /// condition holds, and returns the new item.
    async fn update(
        &self,
        table: Table,
        key: &Key,
        update: Update,
        condition: Option<Condition>,
    ) -> Result<Item, StoreError>;

    /// Deletes the item at `key` if the condition holds. Deleting nothing is not an error.
    async fn delete(
        &self,
        table: Table,
        key: &Key,
        condition: Option<Condition>,
    ) -> Result<(), StoreError>;

    /// Queries one partition.
    async fn query(&self, table: Table, query: &Query) -> Result<Page, StoreError>;

    /// Reads the whole table page by page, in no particular order. For operations and
    /// tests; request paths always query by key.
    async fn scan(
        &self,
        table: Table,
        start_after: Option<&Key>,
        limit: usize,
    ) -> Result<Page, StoreError>;

    /// Applies all operations or none (at most [`MAX_TRANSACTION_ITEMS`], each key once).
    async fn transact_write(&self, ops: Vec<WriteOp>) -> Result<(), StoreError>;

    /// Deletes the items at `keys` (at most [`MAX_BATCH_WRITE_ITEMS`], each once; none is a
    /// no-op), unconditionally: absent items are not an error. For bulk deletion (erasure):
    /// the DynamoDB adapter sends one `BatchWriteItem` and retries what it leaves
    /// unprocessed; the embedded adapter deletes them in one transaction. On an error some
    /// of the items may be gone (DynamoDB does not make a batch atomic); deleting is
    /// idempotent, so the caller retries the whole batch.
    ///
    /// The default deletes one by one, for test doubles that only count or fail calls;
    /// the adapters and decorators override it.
    async fn delete_batch(&self, keys: Vec<(Table, Key)>) -> Result<(), StoreError> {
        validate_batch(&keys)?;
        for (table, key) in keys {
            self.delete(table, &key, None).await?;
        }
        Ok(())
    }
}

/// Checks a batch's shape the same way DynamoDB does: at most [`MAX_BATCH_WRITE_ITEMS`]
/// keys, each valid and named once.
pub fn validate_batch(keys: &[(Table, Key)]) -> Result<(), StoreError> {
    if keys.len() > MAX_BATCH_WRITE_ITEMS {
        return Err(StoreError::Invalid(format!(
            "a batch holds at most {MAX_BATCH_WRITE_ITEMS} items, got {}",
            keys.len()
        )));
    }
    let mut seen = std::collections::HashSet::new();
    for (table, key) in keys {
        check_key(key)?;
        if !seen.insert((*table, key)) {
            return Err(StoreError::Invalid(
                "a batch names the same item more than once".into(),
            ));
        }
    }
    Ok(())
}

/// Checks a transaction's shape the same way DynamoDB does, for the embedded adapter and to
/// give both adapters one error for it.
pub fn validate_transaction(ops: &[WriteOp]) -> Result<(), StoreError> {
    if ops.is_empty() {
        return Err(StoreError::Invalid("empty transaction".into()));
    }
    if ops.len() > MAX_TRANSACTION_ITEMS {
        return Err(StoreError::Invalid(format!(
            "a transaction holds at most {MAX_TRANSACTION_ITEMS} operations, got {}",
            ops.len()
        )));
    }
    let mut seen = std::collections::HashSet::new();
    for op in ops {
        let Some(tk) = op.table_and_key() else {
            return Err(StoreError::Invalid("item without string pk and sk".into()));
        };
        if !seen.insert(tk) {
            return Err(StoreError::Invalid(
                "a transaction names the same item more than once".into(),
            ));
        }
    }
    Ok(())
}

/// Checks a page size.
pub fn validate_limit(limit: usize) -> Result<(), StoreError> {
    if limit == 0 || limit > MAX_PAGE_SIZE {
        return Err(StoreError::Invalid(format!(
            "page size must be 1..={MAX_PAGE_SIZE}, got {limit}"
        )));
    }
    Ok(())
}

/// Checks an update the same way in both adapters: it changes something, never a key
/// attribute, and names each attribute once (DynamoDB rejects overlapping paths).
pub fn check_update(update: &Update) -> Result<(), StoreError> {
    if update.set.is_empty() && update.add.is_empty() && update.remove.is_empty() {
        return Err(StoreError::Invalid(
            "an update must change something".into(),
        ));
    }
    let mut names = std::collections::HashSet::new();
    let all = update
        .set
        .iter()
        .map(|(n, _)| n)
        .chain(update.add.iter().map(|(n, _)| n))
        .chain(update.remove.iter());
    for name in all {
        if name == PK || name == SK {
            return Err(StoreError::Invalid(
                "an update cannot change the key attributes".into(),
            ));
        }
        if !names.insert(name.as_str()) {
            return Err(StoreError::Invalid(format!(
                "an update names attribute {name:?} more than once"
            )));
        }
    }
    Ok(())
}

/// Both key attributes must be non-empty strings (DynamoDB rejects empty key values).
pub fn check_key(key: &Key) -> Result<(), StoreError> {
    if key.pk.is_empty() || key.sk.is_empty() {
        return Err(StoreError::Invalid(
            "pk and sk must be non-empty strings".into(),
        ));
    }
    Ok(())
}

/// The key of an item to write, checked like [`check_key`].
pub fn item_key(item: &Item) -> Result<Key, StoreError> {
    let key = item
        .key()
        .ok_or_else(|| StoreError::Invalid("item without string pk and sk".into()))?;
    check_key(&key)?;
    Ok(key)
}
