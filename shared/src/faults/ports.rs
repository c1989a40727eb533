//! Decorators on the four ports: each call first meets the [`FaultPlan`]'s decision (when
//! one is given), then is counted by the [`Meter`] (when one is given) as the AWS service
//! would bill it. One [`Tap`] builds them all; the composition root applies it to the raw
//! adapters, under the tenant fence, so what is counted is what would reach AWS.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::{Fault, FaultPlan};
use crate::costs::Meter;
use crate::objects::{ByteRange, ObjectBody, ObjectError, ObjectInfo, ObjectKey, ObjectPage};
use crate::objects::{ObjectStore, ObjectWriter};
use crate::queue::{OutgoingMessage, Queue, QueueDepth, QueueError, QueueName, ReceivedMessage};
use crate::store::{
    Condition, Item, Key, Page, Query, StoreError, Table, TableStore, Update, WriteOp,
};
use crate::vault::{EncryptionContext, GeneratedKey, KeyVault, PlainKey, VaultError};

/// What a decorated call does before, or instead of, running.
enum Before {
    Run,
    /// Run, then answer with this error (a write whose answer was lost, or a crash right
    /// after the write).
    RunThenFail(&'static str),
    Fail(&'static str),
}

/// The fault plan and the meter applied to every port of one process.
#[derive(Clone, Default)]
pub struct Tap {
    pub faults: Option<Arc<FaultPlan>>,
    pub meter: Option<Arc<Meter>>,
}

impl std::fmt::Debug for Tap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tap")
            .field("faults", &self.faults.as_ref().map(|p| p.seed()))
            .field("meter", &self.meter.is_some())
            .finish()
    }
}

impl Tap {
    pub fn faults(plan: Arc<FaultPlan>) -> Self {
        Tap {
            faults: Some(plan),
            meter: None,
        }
    }

    pub fn meter(meter: Arc<Meter>) -> Self {
        Tap {
            faults: None,
            meter: Some(meter),
        }
    }

    pub fn store(&self, inner: Arc<dyn TableStore>) -> Arc<dyn TableStore> {
        Arc::new(TappedStore {
            inner,
            tap: self.clone(),
        })
    }

    pub fn queue(&self, inner: Arc<dyn Queue>) -> Arc<dyn Queue> {
        Arc::new(TappedQueue {
            inner,
            tap: self.clone(),
        })
    }

    pub fn vault(&self, inner: Arc<dyn KeyVault>) -> Arc<dyn KeyVault> {
        Arc::new(TappedVault {
            inner,
            tap: self.clone(),
        })
    }

    pub fn objects(&self, inner: Arc<dyn ObjectStore>) -> Arc<dyn ObjectStore> {
        Arc::new(TappedObjects {
            inner,
            tap: self.clone(),
        })
    }

    /// The plan's decision for a call of `site`; `write`: the call changes state, so a
    /// timeout or a crash lets it happen first.
    async fn before(&self, site: &'static str, write: bool) -> Before {
        let Some(plan) = &self.faults else {
            return Before::Run;
        };
        // A dead process does nothing more.
        if plan.crashed() {
            return Before::Fail("the process crashed");
        }
        match plan.decide(site) {
            None => Before::Run,
            Some(Fault::Slow) => {
                tokio::time::sleep(plan.slow_by()).await;
                Before::Run
            }
            Some(Fault::Error) => Before::Fail("injected: internal server error"),
            Some(Fault::Throttle) => Before::Fail("injected: throttled"),
            Some(Fault::Timeout) if write => Before::RunThenFail("injected: answer lost"),
            Some(Fault::Timeout) => Before::Fail("injected: timed out"),
            Some(Fault::Crash) if write => Before::RunThenFail("the process crashed"),
            Some(Fault::Crash) => Before::Fail("the process crashed"),
        }
    }

    /// Runs `call` under the plan's decision for `site`.
    async fn run<T, E>(
        &self,
        site: &'static str,
        write: bool,
        unavailable: impl Fn(String) -> E,
        call: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        match self.before(site, write).await {
            Before::Run => call.await,
            Before::Fail(why) => Err(unavailable(why.to_owned())),
            Before::RunThenFail(why) => {
                let _ = call.await;
                Err(unavailable(why.to_owned()))
            }
        }
    }
}

struct TappedStore {
    inner: Arc<dyn TableStore>,
    tap: Tap,
}

impl TappedStore {
    /// The live item's size before a write, for the meter (DynamoDB bills a write by the
    /// larger of the item before and after). Read without counting.
    async fn size_before(&self, table: Table, key: &Key) -> usize {
        match self.inner.get(table, key).await {
            Ok(Some(item)) => crate::costs::item_bytes(&item),
            _ => 0,
        }
    }
}

#[async_trait]
impl TableStore for TappedStore {
    async fn get(&self, table: Table, key: &Key) -> Result<Option<Item>, StoreError> {
        let r = self
            .tap
            .run(
                "store.get",
                false,
                StoreError::Unavailable,
                self.inner.get(table, key),
            )
            .await;
        if let (Some(m), Ok(item)) = (&self.tap.meter, &r) {
            m.dynamo_read("GetItem", item.as_ref().map_or(0, crate::costs::item_bytes));
            m.item_request("GetItem", table, key);
        }
        r
    }

    async fn put(
        &self,
        table: Table,
        item: Item,
        condition: Option<Condition>,
    ) -> Result<(), StoreError> {
        let key = item.key();
        let size = if let (Some(_), Some(key)) = (&self.tap.meter, &key) {
            self.size_before(table, key)
                .await
                .max(crate::costs::item_bytes(&item))
        } else {
            0
        };
        let r = self
            .tap
            .run(
                "store.put",
                true,
                StoreError::Unavailable,
                self.inner.put(table, item, condition),
            )
            .await;
        if let Some(m) = &self.tap.meter {
            // A refused condition is billed like the write.
            if r.is_ok() || r.as_ref().is_err_and(StoreError::is_condition_failed) {
                m.dynamo_write("PutItem", size);
                if let Some(key) = &key {
                    m.item_request("PutItem", table, key);
                }
            }
        }
        r
    }

    async fn update(
        &self,
        table: Table,
        key: &Key,
        update: Update,
        condition: Option<Condition>,
    ) -> Result<Item, StoreError> {
        let before = match &self.tap.meter {
            Some(_) => self.size_before(table, key).await,
            None => 0,
        };
        let r = self
            .tap
            .run(
                "store.update",
                true,
                StoreError::Unavailable,
                self.inner.update(table, key, update, condition),
            )
            .await;
        if let Some(m) = &self.tap.meter {
            if r.is_ok() || r.as_ref().is_err_and(StoreError::is_condition_failed) {
                m.item_request("UpdateItem", table, key);
            }
            match &r {
                Ok(item) => {
                    m.dynamo_write("UpdateItem", before.max(crate::costs::item_bytes(item)))
                }
                Err(e) if e.is_condition_failed() => m.dynamo_write("UpdateItem", before),
                Err(_) => {}
            }
        }
        r
    }

    async fn delete(
        &self,
        table: Table,
        key: &Key,
        condition: Option<Condition>,
    ) -> Result<(), StoreError> {
        let before = match &self.tap.meter {
            Some(_) => self.size_before(table, key).await,
            None => 0,
        };
        let r = self
            .tap
            .run(
                "store.delete",
                true,
                StoreError::Unavailable,
                self.inner.delete(table, key, condition),
            )
            .await;
        if let Some(m) = &self.tap.meter {
            if r.is_ok() || r.as_ref().is_err_and(StoreError::is_condition_failed) {
                m.dynamo_write("DeleteItem", before);
                m.item_request("DeleteItem", table, key);
            }
        }
        r
    }

    async fn query(&self, table: Table, query: &Query) -> Result<Page, StoreError> {
        let r = self
            .tap
            .run(
                "store.query",
                false,
                StoreError::Unavailable,
                self.inner.query(table, query),
            )
            .await;
        if let (Some(m), Ok(page)) = (&self.tap.meter, &r) {
            m.dynamo_query(page.items.iter().map(crate::costs::item_bytes).sum());
        }
        r
    }

    async fn scan(
        &self,
        table: Table,
        start_after: Option<&Key>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        let r = self
            .tap
            .run(
                "store.scan",
                false,
                StoreError::Unavailable,
                self.inner.scan(table, start_after, limit),
            )
            .await;
        if let (Some(m), Ok(page)) = (&self.tap.meter, &r) {
            m.dynamo_scan(page.items.iter().map(crate::costs::item_bytes).sum());
        }
        r
    }

    async fn transact_write(&self, ops: Vec<WriteOp>) -> Result<(), StoreError> {
        let mut sizes = Vec::new();
        let mut keys = Vec::new();
        if self.tap.meter.is_some() {
            for op in &ops {
                let Some((table, key)) = op.table_and_key() else {
                    continue;
                };
                keys.push((table, key.clone()));
                let before = self.size_before(table, &key).await;
                let after = match op {
                    WriteOp::Put { item, .. } => crate::costs::item_bytes(item),
                    _ => before,
                };
                sizes.push(before.max(after));
            }
        }
        let r = self
            .tap
            .run(
                "store.transact",
                true,
                StoreError::Unavailable,
                self.inner.transact_write(ops),
            )
            .await;
        if let Some(m) = &self.tap.meter {
            if r.is_ok() || r.as_ref().is_err_and(StoreError::is_condition_failed) {
                m.dynamo_transaction(&sizes);
                for (table, key) in &keys {
                    m.item_request("TransactWriteItems item", *table, key);
                }
            }
        }
        r
    }

    async fn delete_batch(&self, keys: Vec<(Table, Key)>) -> Result<(), StoreError> {
        // A delete is billed by the size of the item it deletes, at least one unit each.
        let mut units = 0.0;
        if self.tap.meter.is_some() {
            for (table, key) in &keys {
                units += crate::costs::write_units(self.size_before(*table, key).await);
            }
        }
        let r = self
            .tap
            .run(
                "store.batch_write",
                true,
                StoreError::Unavailable,
                self.inner.delete_batch(keys),
            )
            .await;
        if let (Some(m), Ok(())) = (&self.tap.meter, &r) {
            m.add("DynamoDB", "BatchWriteItem", 1.0, units);
        }
        r
    }
}

struct TappedQueue {
    inner: Arc<dyn Queue>,
    tap: Tap,
}

#[async_trait]
impl Queue for TappedQueue {
    async fn send_batch(
        &self,
        queue: &QueueName,
        messages: Vec<OutgoingMessage>,
    ) -> Result<(), QueueError> {
        let sizes: Vec<usize> = messages
            .iter()
            .map(crate::costs::sqs_message_bytes)
            .collect();
        let r = self
            .tap
            .run(
                "queue.send",
                true,
                QueueError::Unavailable,
                self.inner.send_batch(queue, messages),
            )
            .await;
        if let (Some(m), Ok(())) = (&self.tap.meter, &r) {
            m.sqs_send(&sizes);
        }
        r
    }

    async fn receive(
        &self,
        queue: &QueueName,
        max: usize,
        visibility: Duration,
    ) -> Result<Vec<ReceivedMessage>, QueueError> {
        // A received batch whose answer is lost stays hidden for its visibility timeout, as
        // on SQS: a write.
        let r = self
            .tap
            .run(
                "queue.receive",
                true,
                QueueError::Unavailable,
                self.inner.receive(queue, max, visibility),
            )
            .await;
        if let (Some(m), Ok(batch)) = (&self.tap.meter, &r) {
            m.sqs_receive(&batch.iter().map(|r| r.body.len()).collect::<Vec<_>>());
        }
        r
    }

    async fn ack(&self, queue: &QueueName, receipt: &str) -> Result<(), QueueError> {
        let r = self
            .tap
            .run(
                "queue.ack",
                true,
                QueueError::Unavailable,
                self.inner.ack(queue, receipt),
            )
            .await;
        if let (Some(m), Ok(())) = (&self.tap.meter, &r) {
            m.sqs_ack();
        }
        r
    }

    async fn change_visibility(
        &self,
        queue: &QueueName,
        receipt: &str,
        visibility: Duration,
    ) -> Result<(), QueueError> {
        let r = self
            .tap
            .run(
                "queue.visibility",
                true,
                QueueError::Unavailable,
                self.inner.change_visibility(queue, receipt, visibility),
            )
            .await;
        if let (Some(m), Ok(())) = (&self.tap.meter, &r) {
            m.count("SQS", "ChangeMessageVisibility", 1.0);
        }
        r
    }

    async fn approximate_depth(&self, queue: &QueueName) -> Result<QueueDepth, QueueError> {
        let r = self
            .tap
            .run(
                "queue.depth",
                false,
                QueueError::Unavailable,
                self.inner.approximate_depth(queue),
            )
            .await;
        if let (Some(m), Ok(_)) = (&self.tap.meter, &r) {
            m.count("SQS", "GetQueueAttributes", 1.0);
        }
        r
    }
}

struct TappedVault {
    inner: Arc<dyn KeyVault>,
    tap: Tap,
}

#[async_trait]
impl KeyVault for TappedVault {
    async fn generate_data_key(
        &self,
        context: &EncryptionContext,
    ) -> Result<GeneratedKey, VaultError> {
        let r = self
            .tap
            .run(
                "vault.generate",
                false,
                VaultError::Unavailable,
                self.inner.generate_data_key(context),
            )
            .await;
        if let (Some(m), Ok(_)) = (&self.tap.meter, &r) {
            m.count("KMS", "GenerateDataKey", 1.0);
        }
        r
    }

    async fn unwrap_data_key(
        &self,
        wrapped: &[u8],
        context: &EncryptionContext,
    ) -> Result<PlainKey, VaultError> {
        let r = self
            .tap
            .run(
                "vault.unwrap",
                false,
                VaultError::Unavailable,
                self.inner.unwrap_data_key(wrapped, context),
            )
            .await;
        if let (Some(m), Ok(_)) = (&self.tap.meter, &r) {
            m.count("KMS", "Decrypt", 1.0);
        }
        r
    }
}

struct TappedObjects {
    inner: Arc<dyn ObjectStore>,
    tap: Tap,
}

impl TappedObjects {
    fn counted(&self, op: &str) {
        if let Some(m) = &self.tap.meter {
            m.count("S3", op, 1.0);
        }
    }
}

#[async_trait]
impl ObjectStore for TappedObjects {
    async fn writer(&self, key: &ObjectKey) -> Result<Box<dyn ObjectWriter>, ObjectError> {
        let r = self
            .tap
            .run(
                "objects.write",
                false,
                ObjectError::Backend,
                self.inner.writer(key),
            )
            .await;
        if r.is_ok() {
            self.counted("PutObject");
        }
        r
    }

    async fn get(
        &self,
        key: &ObjectKey,
        range: Option<ByteRange>,
    ) -> Result<Option<ObjectBody>, ObjectError> {
        let r = self
            .tap
            .run(
                "objects.get",
                false,
                ObjectError::Backend,
                self.inner.get(key, range),
            )
            .await;
        if r.is_ok() {
            self.counted("GetObject");
        }
        r
    }

    async fn head(&self, key: &ObjectKey) -> Result<Option<ObjectInfo>, ObjectError> {
        let r = self
            .tap
            .run(
                "objects.head",
                false,
                ObjectError::Backend,
                self.inner.head(key),
            )
            .await;
        if r.is_ok() {
            self.counted("HeadObject");
        }
        r
    }

    async fn delete(&self, key: &ObjectKey) -> Result<(), ObjectError> {
        let r = self
            .tap
            .run(
                "objects.delete",
                true,
                ObjectError::Backend,
                self.inner.delete(key),
            )
            .await;
        if r.is_ok() {
            self.counted("DeleteObject");
        }
        r
    }

    async fn list(
        &self,
        prefix: &str,
        after: Option<&ObjectKey>,
        limit: usize,
    ) -> Result<ObjectPage, ObjectError> {
        let r = self
            .tap
            .run(
                "objects.list",
                false,
                ObjectError::Backend,
                self.inner.list(prefix, after, limit),
            )
            .await;
        if r.is_ok() {
            self.counted("ListObjectsV2");
        }
        r
    }

    async fn presigned_get(
        &self,
        key: &ObjectKey,
        ttl: Duration,
        content_type: &str,
        filename: &str,
    ) -> Result<Option<String>, ObjectError> {
        self.inner
            .presigned_get(key, ttl, content_type, filename)
            .await
    }
}
