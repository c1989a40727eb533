//! The tenant fence of the key vault (decision 0037): while the current task acts for a
//! tenant ([`crate::acting`]), a data key is generated or unwrapped only with that tenant's
//! encryption context (`tenant_id`, the envelope's only context key), through the tenant's
//! vault when one is given (on AWS: KMS signed with the tenant's session, whose
//! `kms:EncryptionContext:tenant_id` condition is the same fence in IAM).

use std::sync::Arc;

use async_trait::async_trait;

use super::{EncryptionContext, GeneratedKey, KeyVault, PlainKey, VaultError};
use crate::acting;
use crate::ids::TenantId;

/// The encryption-context key that names the tenant (the envelope's data keys carry it).
pub const CONTEXT_TENANT_ID: &str = "tenant_id";

/// The vault to use for one tenant's keys (its scoped credentials).
pub trait TenantVaults: Send + Sync + 'static {
    fn vault_for(&self, tenant: &TenantId) -> Arc<dyn KeyVault>;
}

#[derive(Clone)]
pub struct FencedVault {
    base: Arc<dyn KeyVault>,
    tenants: Option<Arc<dyn TenantVaults>>,
}

impl FencedVault {
    pub fn new(base: Arc<dyn KeyVault>, tenants: Option<Arc<dyn TenantVaults>>) -> Self {
        FencedVault { base, tenants }
    }

    fn pick(&self, context: &EncryptionContext) -> Result<Arc<dyn KeyVault>, VaultError> {
        let Some(tenant) = acting::current() else {
            return Ok(self.base.clone());
        };
        if context.pairs().get(CONTEXT_TENANT_ID).map(String::as_str) != Some(tenant.as_str()) {
            return Err(VaultError::Denied(
                "a data key of another tenant than the one this work acts for".into(),
            ));
        }
        Ok(match &self.tenants {
            Some(tenants) => tenants.vault_for(&tenant),
            None => self.base.clone(),
        })
    }
}

#[async_trait]
impl KeyVault for FencedVault {
    async fn generate_data_key(
        &self,
        context: &EncryptionContext,
    ) -> Result<GeneratedKey, VaultError> {
        self.pick(context)?.generate_data_key(context).await
    }

    async fn unwrap_data_key(
        &self,
        wrapped: &[u8],
        context: &EncryptionContext,
    ) -> Result<PlainKey, VaultError> {
        self.pick(context)?.unwrap_data_key(wrapped, context).await
    }
}
