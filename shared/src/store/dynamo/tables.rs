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
