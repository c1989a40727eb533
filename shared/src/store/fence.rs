//! The tenant fence of the table store (decision 0037): while the current task acts for a
//! tenant ([`crate::acting`]), every key of a tenant-partitioned table (data, keys, dedupe)
//! must be one of that tenant's partitions, or the call is refused with
//! [`StoreError::Denied`] before anything is sent. The routes table is a global index (exact
//! provider ids, API key ids, worklists) with no tenant partition; it stays with the
//! function's own role.
//!
//! A request that only touches tenant tables goes to the tenant's store when one is given
//! (on AWS: clients signed with the tenant's session of the tenant-data role, whose
//! `dynamodb:LeadingKeys` condition is the same fence in IAM). Requests with no tenant, on
//! the routes table, or transactions that also write the routes table use the function's
//! store. The embedded adapter has no tenant stores: the fence alone, with the same
//! semantics, so the conformance suite checks it on both.

use std::sync::Arc;

use async_trait::async_trait;

use super::{Condition, Item, Key, Page, Query, StoreError, Table, TableStore, Update, WriteOp};
use crate::acting;
use crate::ids::TenantId;

/// The store to use for one tenant's requests (its scoped credentials).
pub trait TenantStores: Send + Sync + 'static {
    fn store_for(&self, tenant: &TenantId) -> Arc<dyn TableStore>;
}

impl Table {
    /// Tables whose partition keys begin with `T#<tenant>` (the routes table's keys are
    /// provider ids and worklists). The dedupe table's sign-in throttle keys (`AUTHFAIL#`)
    /// have no tenant partition: sign-in acts for no tenant, so the fence never sees them.
    pub fn is_tenant_partitioned(self) -> bool {
        !matches!(self, Table::Routes)
    }
}

/// The fenced store: the function's store, and optionally each tenant's.
#[derive(Clone)]
pub struct FencedStore {
    base: Arc<dyn TableStore>,
    tenants: Option<Arc<dyn TenantStores>>,
}

impl FencedStore {
    pub fn new(base: Arc<dyn TableStore>, tenants: Option<Arc<dyn TenantStores>>) -> Self {
        FencedStore { base, tenants }
    }

    /// The store for a request on `keys`, after the fence.
    fn pick<'a>(
        &self,
        keys: impl IntoIterator<Item = (Table, &'a str)>,
    ) -> Result<Arc<dyn TableStore>, StoreError> {
        let Some(tenant) = acting::current() else {
            return Ok(self.base.clone());
        };
        let mut only_tenant_tables = true;
        for (table, pk) in keys {
            if !table.is_tenant_partitioned() {
                only_tenant_tables = false;
            } else if !acting::owns_partition(&tenant, pk) {
                // The key is not logged: it may hold another tenant's id.
                return Err(StoreError::Denied(format!(
                    "a {table} key outside the partitions of the tenant this work acts for"
                )));
            }
        }
        Ok(match (&self.tenants, only_tenant_tables) {
            (Some(tenants), true) => tenants.store_for(&tenant),
            _ => self.base.clone(),
        })
    }
}

#[async_trait]
impl TableStore for FencedStore {
    async fn get(&self, table: Table, key: &Key) -> Result<Option<Item>, StoreError> {
        self.pick([(table, key.pk.as_str())])?.get(table, key).await
    }

    async fn put(
        &self,
        table: Table,
        item: Item,
        condition: Option<Condition>,
    ) -> Result<(), StoreError> {
        let key = super::item_key(&item)?;
        self.pick([(table, key.pk.as_str())])?
            .put(table, item, condition)
            .await
    }

    async fn update(
        &self,
        table: Table,
        key: &Key,
        update: Update,
        condition: Option<Condition>,
    ) -> Result<Item, StoreError> {
        self.pick([(table, key.pk.as_str())])?
            .update(table, key, update, condition)
            .await
    }

    async fn delete(
        &self,
        table: Table,
        key: &Key,
        condition: Option<Condition>,
    ) -> Result<(), StoreError> {
        self.pick([(table, key.pk.as_str())])?
            .delete(table, key, condition)
            .await
    }

    async fn query(&self, table: Table, query: &Query) -> Result<Page, StoreError> {
        self.pick([(table, query.pk.as_str())])?
            .query(table, query)
            .await
    }

    async fn scan(
        &self,
        table: Table,
        start_after: Option<&Key>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        // A scan reads every tenant: never while acting for one.
        if table.is_tenant_partitioned() && acting::current().is_some() {
            return Err(StoreError::Denied(format!(
                "a scan of the {table} table while acting for one tenant"
            )));
        }
        self.base.scan(table, start_after, limit).await
    }

    async fn transact_write(&self, ops: Vec<WriteOp>) -> Result<(), StoreError> {
        super::validate_transaction(&ops)?;
        let keys: Vec<(Table, Key)> = ops.iter().filter_map(WriteOp::table_and_key).collect();
        let store = self.pick(keys.iter().map(|(t, k)| (*t, k.pk.as_str())))?;
        store.transact_write(ops).await
    }

    async fn delete_batch(&self, keys: Vec<(Table, Key)>) -> Result<(), StoreError> {
        super::validate_batch(&keys)?;
        if keys.is_empty() {
            return Ok(());
        }
        let store = self.pick(keys.iter().map(|(t, k)| (*t, k.pk.as_str())))?;
        store.delete_batch(keys).await
    }
}
