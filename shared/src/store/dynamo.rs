//! DynamoDB table store: the [`TableStore`] port over aws-sdk-dynamodb.
//!
//! Conditions are compiled to condition expressions with the port's *live item* meaning: an
//! item whose TTL has passed is absent (DynamoDB deletes expired items up to days late, moto
//! never). So `NotExists` becomes `attribute_not_exists(pk) OR expires_at <= :now`, and every
//! positive condition requires the item to be live. An update never builds on an expired item:
//! it is conditioned on "absent or live"; when that fails because an expired item is in the
//! way, the expired item is deleted (conditionally on still being expired) and the update is
//! tried again.
//!
//! All reads are strongly consistent.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, ConditionCheck, Delete, KeySchemaElement,
    KeyType, Put, ReturnValue, ScalarAttributeType, TimeToLiveSpecification, TransactWriteItem,
    Update as DynamoUpdate,
};
use aws_sdk_dynamodb::Client;

use super::{
    check_key, check_update, item_key, validate_limit, validate_transaction, AttrValue, Condition,
    Item, Key, Page, Query, SortKeyCondition, StoreError, Table, TableStore, Update, WriteOp, PK,
    SK, TTL_ATTR,
};
use crate::clock::now_secs;

/// How often an update retries after clearing an expired item out of its way.
const EXPIRED_RETRIES: usize = 3;

/// Physical table names for the logical tables.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableNames {
    pub data: String,
    pub routes: String,
    pub keys: String,
    pub dedupe: String,
}

impl TableNames {
    /// Names from `DATA_TABLE`, `ROUTES_TABLE`, `KEYS_TABLE`, `DEDUPE_TABLE` (set by
    /// template.yaml); names every missing variable at once.
    pub fn from_env() -> Result<Self, StoreError> {
        let mut missing = Vec::new();
        let mut read = |var: &str| match std::env::var(var) {
            Ok(v) if !v.trim().is_empty() => v.trim().to_owned(),
            _ => {
                missing.push(var.to_owned());
                String::new()
            }
        };
        let names = TableNames {
            data: read("DATA_TABLE"),
            routes: read("ROUTES_TABLE"),
            keys: read("KEYS_TABLE"),
            dedupe: read("DEDUPE_TABLE"),
        };
        if missing.is_empty() {
            Ok(names)
        } else {
            Err(StoreError::Invalid(format!(
                "table name environment variables not set: {}",
                missing.join(", ")
            )))
        }
    }

    /// `<prefix>-data`, `<prefix>-routes`, ... (tests and ad-hoc environments).
    pub fn with_prefix(prefix: &str) -> Self {
        TableNames {
            data: format!("{prefix}-data"),
            routes: format!("{prefix}-routes"),
            keys: format!("{prefix}-keys"),
            dedupe: format!("{prefix}-dedupe"),
        }
    }

    pub fn name(&self, table: Table) -> &str {
        match table {
            Table::Data => &self.data,
            Table::Routes => &self.routes,
            Table::Keys => &self.keys,
            Table::Dedupe => &self.dedupe,
        }
    }
}

/// Creates the four tables (pk/sk strings, on-demand, TTL on `expires_at`) if they do not
/// exist. For tests and emulators; in AWS, template.yaml owns the tables.
pub async fn provision_tables(client: &Client, names: &TableNames) -> Result<(), StoreError> {
    for table in Table::ALL {
        let name = names.name(table);
        let created = client
            .create_table()
            .table_name(name)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attr_def(PK)?)
            .attribute_definitions(attr_def(SK)?)
            .key_schema(key_elem(PK, KeyType::Hash)?)
            .key_schema(key_elem(SK, KeyType::Range)?)
            .send()
            .await;
        match created {
            Ok(_) => {}
            Err(e) if e.code() == Some("ResourceInUseException") => {}
            Err(e) => return Err(map_err(e)),
        }
        let ttl = TimeToLiveSpecification::builder()
            .attribute_name(TTL_ATTR)
            .enabled(true)
            .build()
            .map_err(build_err)?;
        let enabled = client
            .update_time_to_live()
            .table_name(name)
            .time_to_live_specification(ttl)
            .send()
            .await;
        match enabled {
            Ok(_) => {}
            // Already enabled from an earlier run.
            Err(e) if e.code() == Some("ValidationException") => {}
            Err(e) => return Err(map_err(e)),
        }
    }
    Ok(())
}

fn attr_def(name: &str) -> Result<AttributeDefinition, StoreError> {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .map_err(build_err)
}

fn key_elem(name: &str, kind: KeyType) -> Result<KeySchemaElement, StoreError> {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(kind)
        .build()
        .map_err(build_err)
}

fn build_err(e: aws_sdk_dynamodb::error::BuildError) -> StoreError {
    StoreError::Invalid(format!("building request: {e}"))
}

/// Maps an SDK error: throttling and transient faults are `Unavailable` (retry later),
/// validation errors `Invalid`, conditional failures `ConditionFailed`.
fn map_err<E, R>(e: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let code = e.code().map(str::to_owned);
    let message = e.message().map(str::to_owned);
    let detail = || match (&code, &message) {
        (Some(c), Some(m)) => format!("{c}: {m}"),
        (Some(c), None) => c.clone(),
        _ => aws_sdk_dynamodb::error::DisplayErrorContext(&e).to_string(),
    };
    match code.as_deref() {
        Some("ConditionalCheckFailedException") => StoreError::ConditionFailed { op_index: None },
        Some("ValidationException") => StoreError::Invalid(detail()),
        Some(
            "ProvisionedThroughputExceededException"
            | "ThrottlingException"
            | "RequestLimitExceeded"
            | "InternalServerError"
            | "ServiceUnavailable"
            | "TransactionConflictException"
            | "TransactionInProgressException",
        ) => StoreError::Unavailable(detail()),
        Some(_) => StoreError::Backend(detail()),
        // No service error code: the request never got an answer (timeout, connection).
        None => match &e {
            SdkError::TimeoutError(_)
            | SdkError::DispatchFailure(_)
            | SdkError::ResponseError(_) => StoreError::Unavailable(detail()),
            _ => StoreError::Backend(detail()),
        },
    }
}

pub(crate) fn to_dynamo(v: &AttrValue) -> AttributeValue {
    match v {
        AttrValue::S(s) => AttributeValue::S(s.clone()),
        AttrValue::N(n) => AttributeValue::N(n.to_string()),
        AttrValue::B(b) => AttributeValue::B(Blob::new(b.clone())),
        AttrValue::Bool(b) => AttributeValue::Bool(*b),
        AttrValue::Null => AttributeValue::Null(true),
        AttrValue::L(l) => AttributeValue::L(l.iter().map(to_dynamo).collect()),
        AttrValue::M(m) => {
            AttributeValue::M(m.iter().map(|(k, v)| (k.clone(), to_dynamo(v))).collect())
        }
    }
}

pub(crate) fn from_dynamo(v: &AttributeValue) -> Result<AttrValue, StoreError> {
    Ok(match v {
        AttributeValue::S(s) => AttrValue::S(s.clone()),
        AttributeValue::N(n) => AttrValue::N(
            n.parse()
                .map_err(|_| StoreError::Backend(format!("non-integer number {n:?}")))?,
        ),
        AttributeValue::B(b) => AttrValue::B(b.as_ref().to_vec()),
        AttributeValue::Bool(b) => AttrValue::Bool(*b),
        AttributeValue::Null(_) => AttrValue::Null,
        AttributeValue::L(l) => AttrValue::L(l.iter().map(from_dynamo).collect::<Result<_, _>>()?),
        AttributeValue::M(m) => AttrValue::M(
            m.iter()
                .map(|(k, v)| Ok((k.clone(), from_dynamo(v)?)))
                .collect::<Result<_, StoreError>>()?,
        ),
        other => {
            return Err(StoreError::Backend(format!(
                "unsupported attribute type {other:?}"
            )))
        }
    })
}

fn item_to_dynamo(item: &Item) -> HashMap<String, AttributeValue> {
    item.0
        .iter()
        .map(|(k, v)| (k.clone(), to_dynamo(v)))
        .collect()
}

fn item_from_dynamo(m: &HashMap<String, AttributeValue>) -> Result<Item, StoreError> {
    Ok(Item(
        m.iter()
            .map(|(k, v)| Ok((k.clone(), from_dynamo(v)?)))
            .collect::<Result<_, StoreError>>()?,
    ))
}

fn key_to_dynamo(key: &Key) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (PK.to_owned(), AttributeValue::S(key.pk.clone())),
        (SK.to_owned(), AttributeValue::S(key.sk.clone())),
    ])
}

/// An expression under construction: placeholders for names and values.
#[derive(Default)]
struct Expr {
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

impl Expr {
    fn name(&mut self, name: &str) -> String {
        if let Some((placeholder, _)) = self.names.iter().find(|(_, n)| n.as_str() == name) {
            return placeholder.clone();
        }
        let placeholder = format!("#n{}", self.names.len());
        self.names.insert(placeholder.clone(), name.to_owned());
        placeholder
    }

    fn value(&mut self, value: AttributeValue) -> String {
        let placeholder = format!(":v{}", self.values.len());
        self.values.insert(placeholder.clone(), value);
        placeholder
    }

    /// The item exists and has not expired.
    fn live(&mut self, now: i64) -> String {
        let pk = self.name(PK);
        let ttl = self.name(TTL_ATTR);
        let now = self.value(AttributeValue::N(now.to_string()));
        format!("(attribute_exists({pk}) AND (attribute_not_exists({ttl}) OR {ttl} > {now}))")
    }

    /// No item, or an expired one.
    fn not_live(&mut self, now: i64) -> String {
        let pk = self.name(PK);
        let ttl = self.name(TTL_ATTR);
        let now = self.value(AttributeValue::N(now.to_string()));
        format!("(attribute_not_exists({pk}) OR {ttl} <= {now})")
    }

    /// No item, or a live one: an update may proceed without clearing an expired item first.
    fn absent_or_live(&mut self, now: i64) -> String {
        let pk = self.name(PK);
        let ttl = self.name(TTL_ATTR);
        let now = self.value(AttributeValue::N(now.to_string()));
        format!("(attribute_not_exists({pk}) OR attribute_not_exists({ttl}) OR {ttl} > {now})")
    }

    fn condition(&mut self, c: &Condition, now: i64) -> String {
        match c {
            Condition::NotExists => self.not_live(now),
            Condition::Exists => self.live(now),
            Condition::Equals(a, v) => {
                let live = self.live(now);
                let a = self.name(a);
                let v = self.value(to_dynamo(v));
                format!("({live} AND {a} = {v})")
            }
            Condition::LessThan(a, v) => {
                let live = self.live(now);
                let a = self.name(a);
                let v = self.value(to_dynamo(v));
                format!("({live} AND {a} < {v})")
            }
            Condition::AttrNotExists(a) => {
                let not_live = self.not_live(now);
                let a = self.name(a);
                format!("({not_live} OR attribute_not_exists({a}))")
            }
            Condition::And(cs) | Condition::Or(cs) if cs.is_empty() => {
                // Empty AND is true, empty OR is false, as `Condition::evaluate` has it.
                let pk = self.name(PK);
                if matches!(c, Condition::And(_)) {
                    format!("(attribute_exists({pk}) OR attribute_not_exists({pk}))")
                } else {
                    format!("(attribute_exists({pk}) AND attribute_not_exists({pk}))")
                }
            }
            Condition::And(cs) => {
                let parts: Vec<String> = cs.iter().map(|c| self.condition(c, now)).collect();
                format!("({})", parts.join(" AND "))
            }
            Condition::Or(cs) => {
                let parts: Vec<String> = cs.iter().map(|c| self.condition(c, now)).collect();
                format!("({})", parts.join(" OR "))
            }
        }
    }

    /// `SET #a = :v, ... ADD #c :d ... REMOVE #r, ...`.
    fn update(&mut self, update: &Update) -> Result<String, StoreError> {
        check_update(update)?;
        let mut clauses = Vec::new();
        if !update.set.is_empty() {
            let parts: Vec<String> = update
                .set
                .iter()
                .map(|(n, v)| {
                    let n = self.name(n);
                    let v = self.value(to_dynamo(v));
                    format!("{n} = {v}")
                })
                .collect();
            clauses.push(format!("SET {}", parts.join(", ")));
        }
        if !update.add.is_empty() {
            let parts: Vec<String> = update
                .add
                .iter()
                .map(|(n, d)| {
                    let n = self.name(n);
                    let d = self.value(AttributeValue::N(d.to_string()));
                    format!("{n} {d}")
                })
                .collect();
            clauses.push(format!("ADD {}", parts.join(", ")));
        }
        if !update.remove.is_empty() {
            let parts: Vec<String> = update.remove.iter().map(|n| self.name(n)).collect();
            clauses.push(format!("REMOVE {}", parts.join(", ")));
        }
        Ok(clauses.join(" "))
    }

    fn names(&self) -> Option<HashMap<String, String>> {
        (!self.names.is_empty()).then(|| self.names.clone())
    }

    fn values(&self) -> Option<HashMap<String, AttributeValue>> {
        (!self.values.is_empty()).then(|| self.values.clone())
    }
}

/// The DynamoDB adapter. Cheap to clone; build one per process.
#[derive(Clone, Debug)]
pub struct DynamoStore {
    client: Client,
    names: TableNames,
}

impl DynamoStore {
    pub fn new(client: Client, names: TableNames) -> Self {
        DynamoStore { client, names }
    }

    fn table(&self, table: Table) -> &str {
        self.names.name(table)
    }

    /// Deletes the item at `key` if it is (still) expired. Used to clear an expired item out
    /// of an update's way; losing a race to a writer that revived it is fine.
    async fn clear_if_expired(&self, table: Table, key: &Key, now: i64) -> Result<(), StoreError> {
        let mut expr = Expr::default();
        let ttl = expr.name(TTL_ATTR);
        let at = expr.value(AttributeValue::N(now.to_string()));
        let result = self
            .client
            .delete_item()
            .table_name(self.table(table))
            .set_key(Some(key_to_dynamo(key)))
            .condition_expression(format!("{ttl} <= {at}"))
            .set_expression_attribute_names(expr.names())
            .set_expression_attribute_values(expr.values())
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) => match map_err(e) {
                StoreError::ConditionFailed { .. } => Ok(()),
                other => Err(other),
            },
        }
    }

    /// Is there an expired item at `key`? (After a failed condition, to tell "an expired item
    /// is in the way" from "the caller's condition does not hold".)
    async fn expired_item_at(&self, table: Table, key: &Key, now: i64) -> Result<bool, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(self.table(table))
            .set_key(Some(key_to_dynamo(key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(map_err)?;
        match out.item() {
            Some(raw) => Ok(item_from_dynamo(raw)?.is_expired(now)),
            None => Ok(false),
        }
    }

    fn transact_item(&self, op: &WriteOp, now: i64) -> Result<TransactWriteItem, StoreError> {
        let mut expr = Expr::default();
        let item = match op {
            WriteOp::Put {
                table,
                item,
                condition,
            } => {
                item_key(item)?;
                let cond = condition.as_ref().map(|c| expr.condition(c, now));
                TransactWriteItem::builder()
                    .put(
                        Put::builder()
                            .table_name(self.table(*table))
                            .set_item(Some(item_to_dynamo(item)))
                            .set_condition_expression(cond)
                            .set_expression_attribute_names(expr.names())
                            .set_expression_attribute_values(expr.values())
                            .build()
                            .map_err(build_err)?,
                    )
                    .build()
            }
            WriteOp::Update {
                table,
                key,
                update,
                condition,
            } => {
                check_key(key)?;
                let update_expr = expr.update(update)?;
                let mut cond = expr.absent_or_live(now);
                if let Some(c) = condition {
                    cond = format!("({cond} AND {})", expr.condition(c, now));
                }
                TransactWriteItem::builder()
                    .update(
                        DynamoUpdate::builder()
                            .table_name(self.table(*table))
                            .set_key(Some(key_to_dynamo(key)))
                            .update_expression(update_expr)
                            .condition_expression(cond)
                            .set_expression_attribute_names(expr.names())
                            .set_expression_attribute_values(expr.values())
                            .build()
                            .map_err(build_err)?,
                    )
                    .build()
            }
            WriteOp::Delete {
                table,
                key,
                condition,
            } => {
                check_key(key)?;
                let cond = condition.as_ref().map(|c| expr.condition(c, now));
                TransactWriteItem::builder()
                    .delete(
                        Delete::builder()
                            .table_name(self.table(*table))
                            .set_key(Some(key_to_dynamo(key)))
                            .set_condition_expression(cond)
                            .set_expression_attribute_names(expr.names())
                            .set_expression_attribute_values(expr.values())
                            .build()
                            .map_err(build_err)?,
                    )
                    .build()
            }
            WriteOp::ConditionCheck {
                table,
                key,
                condition,
            } => {
                check_key(key)?;
                let cond = expr.condition(condition, now);
                TransactWriteItem::builder()
                    .condition_check(
                        ConditionCheck::builder()
                            .table_name(self.table(*table))
                            .set_key(Some(key_to_dynamo(key)))
                            .condition_expression(cond)
                            .set_expression_attribute_names(expr.names())
                            .set_expression_attribute_values(expr.values())
                            .build()
                            .map_err(build_err)?,
                    )
                    .build()
            }
        };
        Ok(item)
    }

    async fn read_page(
        &self,
        table: Table,
        query: Option<&Query>,
        start_after: Option<&Key>,
        limit: usize,
        now: i64,
    ) -> Result<Page, StoreError> {
        validate_limit(limit)?;
        let mut expr = Expr::default();
        let ttl = expr.name(TTL_ATTR);
        let at = expr.value(AttributeValue::N(now.to_string()));
        let filter = format!("attribute_not_exists({ttl}) OR {ttl} > {at}");
        let start = start_after.map(key_to_dynamo);
        let limit = i32::try_from(limit).unwrap_or(i32::MAX);
        let (items, last) = match query {
            Some(q) => {
                let pk = expr.name(PK);
                let pkv = expr.value(AttributeValue::S(q.pk.clone()));
                let mut key_cond = format!("{pk} = {pkv}");
                // Named only when used: DynamoDB rejects unused placeholders.
                let sk = if q.sk == SortKeyCondition::Any {
                    String::new()
                } else {
                    expr.name(SK)
                };
                match &q.sk {
                    SortKeyCondition::Any => {}
                    SortKeyCondition::BeginsWith(p) => {
                        let p = expr.value(AttributeValue::S(p.clone()));
                        key_cond.push_str(&format!(" AND begins_with({sk}, {p})"));
                    }
                    SortKeyCondition::Between(a, b) => {
                        let a = expr.value(AttributeValue::S(a.clone()));
                        let b = expr.value(AttributeValue::S(b.clone()));
                        key_cond.push_str(&format!(" AND {sk} BETWEEN {a} AND {b}"));
                    }
                    SortKeyCondition::GreaterThan(a) => {
                        let a = expr.value(AttributeValue::S(a.clone()));
                        key_cond.push_str(&format!(" AND {sk} > {a}"));
                    }
                    SortKeyCondition::LessThan(b) => {
                        let b = expr.value(AttributeValue::S(b.clone()));
                        key_cond.push_str(&format!(" AND {sk} < {b}"));
                    }
                }
                let out = self
                    .client
                    .query()
                    .table_name(self.table(table))
                    .key_condition_expression(key_cond)
                    .filter_expression(filter)
                    .set_expression_attribute_names(expr.names())
                    .set_expression_attribute_values(expr.values())
                    .set_exclusive_start_key(start)
                    .scan_index_forward(!q.descending)
                    .consistent_read(true)
                    .limit(limit)
                    .send()
                    .await
                    .map_err(map_err)?;
                (out.items.unwrap_or_default(), out.last_evaluated_key)
            }
            None => {
                let out = self
                    .client
                    .scan()
                    .table_name(self.table(table))
                    .filter_expression(filter)
                    .set_expression_attribute_names(expr.names())
                    .set_expression_attribute_values(expr.values())
                    .set_exclusive_start_key(start)
                    .consistent_read(true)
                    .limit(limit)
                    .send()
                    .await
                    .map_err(map_err)?;
                (out.items.unwrap_or_default(), out.last_evaluated_key)
            }
        };
        let items = items
            .iter()
            .map(item_from_dynamo)
            .collect::<Result<Vec<_>, _>>()?;
        let next = match last {
            Some(k) => Some(
                item_from_dynamo(&k)?
                    .key()
                    .ok_or_else(|| StoreError::Backend("LastEvaluatedKey without pk/sk".into()))?,
            ),
            None => None,
        };
        Ok(Page { items, next })
    }
}

#[async_trait]
impl TableStore for DynamoStore {
    async fn get(&self, table: Table, key: &Key) -> Result<Option<Item>, StoreError> {
        check_key(key)?;
        let out = self
            .client
            .get_item()
            .table_name(self.table(table))
            .set_key(Some(key_to_dynamo(key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(map_err)?;
        match out.item() {
            Some(raw) => {
                let item = item_from_dynamo(raw)?;
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
        item_key(&item)?;
        let mut expr = Expr::default();
        let cond = condition.as_ref().map(|c| expr.condition(c, now_secs()));
        self.client
            .put_item()
            .table_name(self.table(table))
            .set_item(Some(item_to_dynamo(&item)))
            .set_condition_expression(cond)
            .set_expression_attribute_names(expr.names())
            .set_expression_attribute_values(expr.values())
            .send()
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn update(
        &self,
        table: Table,
        key: &Key,
        update: Update,
        condition: Option<Condition>,
    ) -> Result<Item, StoreError> {
        check_key(key)?;
        for _ in 0..=EXPIRED_RETRIES {
            let now = now_secs();
            let mut expr = Expr::default();
            let update_expr = expr.update(&update)?;
            let mut cond = expr.absent_or_live(now);
            if let Some(c) = &condition {
                cond = format!("({cond} AND {})", expr.condition(c, now));
            }
            let result = self
                .client
                .update_item()
                .table_name(self.table(table))
                .set_key(Some(key_to_dynamo(key)))
                .update_expression(update_expr)
                .condition_expression(cond)
                .set_expression_attribute_names(expr.names())
                .set_expression_attribute_values(expr.values())
                .return_values(ReturnValue::AllNew)
                .send()
                .await;
            match result {
                Ok(out) => {
                    let attrs = out.attributes().ok_or_else(|| {
                        StoreError::Backend("UpdateItem returned no attributes".into())
                    })?;
                    return item_from_dynamo(attrs);
                }
                Err(e) => match map_err(e) {
                    StoreError::ConditionFailed { .. } => {
                        if !self.expired_item_at(table, key, now).await? {
                            return Err(StoreError::ConditionFailed { op_index: None });
                        }
                        // The caller's condition may hold on "no item": decide on that.
                        if !condition.as_ref().is_none_or(|c| c.evaluate(None)) {
                            return Err(StoreError::ConditionFailed { op_index: None });
                        }
                        self.clear_if_expired(table, key, now).await?;
                    }
                    other => return Err(other),
                },
            }
        }
        Err(StoreError::Unavailable(
            "an expired item kept reappearing under the update".into(),
        ))
    }

    async fn delete(
        &self,
        table: Table,
        key: &Key,
        condition: Option<Condition>,
    ) -> Result<(), StoreError> {
        check_key(key)?;
        let mut expr = Expr::default();
        let cond = condition.as_ref().map(|c| expr.condition(c, now_secs()));
        self.client
            .delete_item()
            .table_name(self.table(table))
            .set_key(Some(key_to_dynamo(key)))
            .set_condition_expression(cond)
            .set_expression_attribute_names(expr.names())
            .set_expression_attribute_values(expr.values())
            .send()
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn query(&self, table: Table, query: &Query) -> Result<Page, StoreError> {
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
        self.read_page(
            table,
            Some(query),
            query.start_after.as_ref(),
            query.limit,
            now_secs(),
        )
        .await
    }

    async fn scan(
        &self,
        table: Table,
        start_after: Option<&Key>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        self.read_page(table, None, start_after, limit, now_secs())
            .await
    }

    async fn transact_write(&self, ops: Vec<WriteOp>) -> Result<(), StoreError> {
        validate_transaction(&ops)?;
        for _ in 0..=EXPIRED_RETRIES {
            let now = now_secs();
            let items = ops
                .iter()
                .map(|op| self.transact_item(op, now))
                .collect::<Result<Vec<_>, _>>()?;
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items))
                .send()
                .await;
            let err = match result {
                Ok(_) => return Ok(()),
                Err(e) => e,
            };
            let failed_index = match err.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(tce)) => tce
                    .cancellation_reasons()
                    .iter()
                    .position(|r| r.code() == Some("ConditionalCheckFailed")),
                _ => None,
            };
            let Some(index) = failed_index else {
                return Err(match map_err(err) {
                    // Cancelled without a condition failure named: a conflict; retry later.
                    StoreError::Backend(m) if m.contains("TransactionCanceled") => {
                        StoreError::Unavailable(m)
                    }
                    other => other,
                });
            };
            // An update whose item expired fails its "absent or live" guard: clear the
            // expired item and try again, if the caller's own condition allows "no item".
            if let WriteOp::Update {
                table,
                key,
                condition,
                ..
            } = &ops[index]
            {
                if condition.as_ref().is_none_or(|c| c.evaluate(None))
                    && self.expired_item_at(*table, key, now).await?
                {
                    self.clear_if_expired(*table, key, now).await?;
                    continue;
                }
            }
            return Err(StoreError::ConditionFailed {
                op_index: Some(index),
            });
        }
        Err(StoreError::Unavailable(
            "expired items kept reappearing under the transaction".into(),
        ))
    }
}
