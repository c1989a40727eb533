//! Expressions under construction: name and value placeholders, the port's conditions
//! compiled with their live-item meaning (see the parent module), and updates.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

use super::items::to_dynamo;
use crate::store::{check_update, Condition, StoreError, Update, PK, TTL_ATTR};

/// An expression under construction: placeholders for names and values.
#[derive(Default)]
pub(super) struct Expr {
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

impl Expr {
    pub(super) fn name(&mut self, name: &str) -> String {
        if let Some((placeholder, _)) = self.names.iter().find(|(_, n)| n.as_str() == name) {
            return placeholder.clone();
        }
        let placeholder = format!("#n{}", self.names.len());
        self.names.insert(placeholder.clone(), name.to_owned());
        placeholder
    }

    pub(super) fn value(&mut self, value: AttributeValue) -> String {
        let placeholder = format!(":v{}", self.values.len());
        self.values.insert(placeholder.clone(), value);
        placeholder
    }

    /// The item exists and has not expired.
    pub(super) fn live(&mut self, now: i64) -> String {
        let pk = self.name(PK);
        let ttl = self.name(TTL_ATTR);
        let now = self.value(AttributeValue::N(now.to_string()));
        format!("(attribute_exists({pk}) AND (attribute_not_exists({ttl}) OR {ttl} > {now}))")
    }

    /// No item, or an expired one.
    pub(super) fn not_live(&mut self, now: i64) -> String {
        let pk = self.name(PK);
        let ttl = self.name(TTL_ATTR);
        let now = self.value(AttributeValue::N(now.to_string()));
        format!("(attribute_not_exists({pk}) OR {ttl} <= {now})")
    }

    /// No item, or a live one: an update may proceed without clearing an expired item first.
    pub(super) fn absent_or_live(&mut self, now: i64) -> String {
        let pk = self.name(PK);
        let ttl = self.name(TTL_ATTR);
        let now = self.value(AttributeValue::N(now.to_string()));
        format!("(attribute_not_exists({pk}) OR attribute_not_exists({ttl}) OR {ttl} > {now})")
    }

    pub(super) fn condition(&mut self, c: &Condition, now: i64) -> String {
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
    pub(super) fn update(&mut self, update: &Update) -> Result<String, StoreError> {
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

    pub(super) fn names(&self) -> Option<HashMap<String, String>> {
        (!self.names.is_empty()).then(|| self.names.clone())
    }

    pub(super) fn values(&self) -> Option<HashMap<String, AttributeValue>> {
        (!self.values.is_empty()).then(|| self.values.clone())
    }
}
