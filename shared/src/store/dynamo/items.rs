//! Attribute mapping: the port's values, items and keys to DynamoDB attribute values and
//! back.

use std::collections::HashMap;

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;

use crate::store::{AttrValue, Item, Key, StoreError, PK, SK};

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

pub(super) fn item_to_dynamo(item: &Item) -> HashMap<String, AttributeValue> {
    item.0
        .iter()
        .map(|(k, v)| (k.clone(), to_dynamo(v)))
        .collect()
}

pub(super) fn item_from_dynamo(m: &HashMap<String, AttributeValue>) -> Result<Item, StoreError> {
    Ok(Item(
        m.iter()
            .map(|(k, v)| Ok((k.clone(), from_dynamo(v)?)))
            .collect::<Result<_, StoreError>>()?,
    ))
}

pub(super) fn key_to_dynamo(key: &Key) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (PK.to_owned(), AttributeValue::S(key.pk.clone())),
        (SK.to_owned(), AttributeValue::S(key.sk.clone())),
    ])
}
