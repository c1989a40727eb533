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
//!
//! Layout: [`tables`] (physical table names, provisioning for tests), [`items`] (the
//! attribute mapping between the port's values and DynamoDB's), [`expr`] (conditions and
//! updates compiled to expressions), [`requests`] (transaction items and query/scan pages);
//! the adapter itself and its [`TableStore`] implementation are here.

mod expr;
mod items;
mod requests;
mod tables;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, ReturnValue, WriteRequest};
use aws_sdk_dynamodb::Client;

use super::{
    check_key, item_key, validate_batch, validate_transaction, Condition, Item, Key, Page, Query,
    StoreError, Table, TableStore, Update, WriteOp, TTL_ATTR,
};
use crate::clock::now_secs;
use expr::Expr;
use items::{item_from_dynamo, item_to_dynamo, key_to_dynamo};

pub use tables::{provision_tables, TableNames};

/// How often an update retries after clearing an expired item out of its way.
const EXPIRED_RETRIES: usize = 3;

/// How often a `BatchWriteItem` sends again what DynamoDB left unprocessed, and the first
/// wait (doubled each time). AWS asks for exponential backoff here: "If DynamoDB returns
/// any unprocessed items, you should retry the batch operation on those items. However, we
/// strongly recommend that you use an exponential backoff algorithm"
/// (<https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_BatchWriteItem.html>).
const UNPROCESSED_RETRIES: u32 = 6;
const UNPROCESSED_FIRST_WAIT: std::time::Duration = std::time::Duration::from_millis(50);

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
        // IAM refused the request: a tenant session outside its partitions (decision 0037).
        Some("AccessDeniedException") => StoreError::Denied(detail()),
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

    async fn delete_batch(&self, keys: Vec<(Table, Key)>) -> Result<(), StoreError> {
        validate_batch(&keys)?;
        if keys.is_empty() {
            return Ok(());
        }
        let mut requests: std::collections::HashMap<String, Vec<WriteRequest>> = Default::default();
        for (table, key) in &keys {
            let delete = DeleteRequest::builder()
                .set_key(Some(key_to_dynamo(key)))
                .build()
                .map_err(build_err)?;
            requests
                .entry(self.table(*table).to_owned())
                .or_default()
                .push(WriteRequest::builder().delete_request(delete).build());
        }
        let mut wait = UNPROCESSED_FIRST_WAIT;
        for attempt in 0..=UNPROCESSED_RETRIES {
            let out = self
                .client
                .batch_write_item()
                .set_request_items(Some(requests))
                .send()
                .await
                .map_err(map_err)?;
            match out.unprocessed_items() {
                Some(left) if left.values().any(|r| !r.is_empty()) => requests = left.clone(),
                _ => return Ok(()),
            }
            if attempt < UNPROCESSED_RETRIES {
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
        }
        Err(StoreError::Unavailable(
            "BatchWriteItem kept leaving items unprocessed".into(),
        ))
    }
}
