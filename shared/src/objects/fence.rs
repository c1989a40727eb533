//! The tenant fence of the object store (decision 0037): while the current task acts for a
//! tenant ([`crate::acting`]), only keys under its export prefix `exports/<tenant>/` are
//! read, written, listed or linked, through the tenant's object store when one is given (on
//! AWS: S3 signed with the tenant's session, whose resource is the same prefix in IAM).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::{
    ByteRange, ObjectBody, ObjectError, ObjectInfo, ObjectKey, ObjectPage, ObjectStore,
    ObjectWriter,
};
use crate::acting;
use crate::ids::TenantId;

/// The object store to use for one tenant's objects (its scoped credentials).
pub trait TenantObjects: Send + Sync + 'static {
    fn objects_for(&self, tenant: &TenantId) -> Arc<dyn ObjectStore>;
}

#[derive(Clone)]
pub struct FencedObjects {
    base: Arc<dyn ObjectStore>,
    tenants: Option<Arc<dyn TenantObjects>>,
}

impl FencedObjects {
    pub fn new(base: Arc<dyn ObjectStore>, tenants: Option<Arc<dyn TenantObjects>>) -> Self {
        FencedObjects { base, tenants }
    }

    fn pick(&self, key_or_prefix: &str) -> Result<Arc<dyn ObjectStore>, ObjectError> {
        let Some(tenant) = acting::current() else {
            return Ok(self.base.clone());
        };
        if !key_or_prefix.starts_with(&acting::export_prefix(&tenant)) {
            return Err(ObjectError::Denied(
                "an object outside the exports of the tenant this work acts for".into(),
            ));
        }
        Ok(match &self.tenants {
            Some(tenants) => tenants.objects_for(&tenant),
            None => self.base.clone(),
        })
    }
}

#[async_trait]
impl ObjectStore for FencedObjects {
    async fn writer(&self, key: &ObjectKey) -> Result<Box<dyn ObjectWriter>, ObjectError> {
        self.pick(key.as_str())?.writer(key).await
    }

    async fn put(&self, key: &ObjectKey, bytes: &[u8]) -> Result<ObjectInfo, ObjectError> {
        self.pick(key.as_str())?.put(key, bytes).await
    }

    async fn get(
        &self,
        key: &ObjectKey,
        range: Option<ByteRange>,
    ) -> Result<Option<ObjectBody>, ObjectError> {
        self.pick(key.as_str())?.get(key, range).await
    }

    async fn head(&self, key: &ObjectKey) -> Result<Option<ObjectInfo>, ObjectError> {
        self.pick(key.as_str())?.head(key).await
    }

    async fn delete(&self, key: &ObjectKey) -> Result<(), ObjectError> {
        self.pick(key.as_str())?.delete(key).await
    }

    async fn list(
        &self,
        prefix: &str,
        after: Option<&ObjectKey>,
        limit: usize,
    ) -> Result<ObjectPage, ObjectError> {
        self.pick(prefix)?.list(prefix, after, limit).await
    }

    async fn presigned_get(
        &self,
        key: &ObjectKey,
        ttl: Duration,
        content_type: &str,
        filename: &str,
    ) -> Result<Option<String>, ObjectError> {
        // A link signed by a tenant session lives at most as long as the session: the
        // sessions are refreshed five minutes before they expire, and links last a minute.
        self.pick(key.as_str())?
            .presigned_get(key, ttl, content_type, filename)
            .await
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<usize, ObjectError> {
        self.pick(prefix)?.delete_prefix(prefix).await
    }
}
