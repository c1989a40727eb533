//! Physical table names for the logical tables (from the environment, or a prefix), and
//! creating the tables where nothing else does (tests and emulators).

use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    TimeToLiveSpecification,
};
use aws_sdk_dynamodb::Client;

use super::{build_err, map_err};
use crate::store::{StoreError, Table, PK, SK, TTL_ATTR};

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
