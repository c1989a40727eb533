//! The composition root: [`Settings`] read once, [`Services`] that build every use case from
//! the adapters and the settings, and the generic Lambda runners ([`runtime`]). The Lambda
//! functions and the local server both build their handlers here.

mod aws_sdk;
pub mod health;
pub mod runtime;
pub mod runtime_socket;
pub mod secrets;
pub mod services;
pub mod settings;
pub mod tenant_sessions;

pub use aws_sdk::aws_sdk_config;
pub use runtime::{run_http, run_http_streaming, run_sqs, run_sqs_or_schedule, HttpFunction};
pub use secrets::{SecretSource, SecretsManagerSource};
pub use services::{
    AwsClientOptions, EmbeddedHandles, Services, ServicesError, TenantInterceptors,
};
pub use settings::{Settings, SettingsError};
pub use tenant_sessions::{TenantSessionError, TenantSessions};

use std::path::Path;
use std::sync::Arc;

use crate::crypto::{CachePolicy, Envelope};
use crate::store::embedded::EmbeddedStore;
use crate::store::TableStore;
use crate::tenant::TenantDirectory;
use crate::vault::local::LocalVault;
use crate::vault::KeyVault;

/// The storage-side services every function shares.
#[derive(Clone)]
pub struct Platform {
    pub store: Arc<dyn TableStore>,
    pub envelope: Arc<Envelope>,
    pub tenants: TenantDirectory,
}

impl Platform {
    pub fn new(store: Arc<dyn TableStore>, vault: Arc<dyn KeyVault>) -> Self {
        let envelope = Arc::new(Envelope::new(store.clone(), vault, CachePolicy::default()));
        let tenants = TenantDirectory::new(store.clone(), envelope.clone());
        Platform {
            store,
            envelope,
            tenants,
        }
    }

    /// Embedded adapters: files under `data_dir`, a local wrapping key instead of KMS
    /// (tests; the local server builds them through [`Services::embedded`]).
    pub fn embedded(data_dir: &Path) -> Result<Self, String> {
        let store = EmbeddedStore::open(data_dir).map_err(|e| e.to_string())?;
        let vault = LocalVault::open_or_create(data_dir).map_err(|e| e.to_string())?;
        // Fenced like the local server's (decision 0037).
        let store = crate::store::fence::FencedStore::new(Arc::new(store), None);
        let vault = crate::vault::fence::FencedVault::new(Arc::new(vault), None);
        Ok(Self::new(Arc::new(store), Arc::new(vault)))
    }
}
