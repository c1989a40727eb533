//! The requests that take more than a call's worth of building: one write of a transaction
//! as a DynamoDB transaction item, and one page of a query or scan (expired items left out).

use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Delete, Put, TransactWriteItem, Update as DynamoUpdate,
};

use super::expr::Expr;
use super::items::{item_from_dynamo, item_to_dynamo, key_to_dynamo};
use super::{build_err, map_err, DynamoStore};
use crate::store::{
    check_key, item_key, validate_limit, Key, Page, Query, SortKeyCondition, StoreError, Table,
    WriteOp, PK, SK, TTL_ATTR,
};

impl DynamoStore {
    pub(super) fn transact_item(
        &self,
        op: &WriteOp,
        now: i64,
    ) -> Result<TransactWriteItem, StoreError> {
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

    pub(super) async fn read_page(
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
