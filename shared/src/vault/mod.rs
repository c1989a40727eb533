//! The key-vault port: generates per-tenant data keys and unwraps them, each bound to an
//! encryption context that must match exactly on unwrap (KMS semantics).
//!
//! Adapters: [`kms::KmsVault`] (aws-sdk-kms `GenerateDataKey` / `Decrypt`) and
//! [`local::LocalVault`] (a local 256-bit wrapping key in a file, AES-256-GCM with the
//! context as associated data) for the local server.

pub mod fence;
pub mod kms;
pub mod local;

use std::collections::BTreeMap;

use async_trait::async_trait;
use zeroize::Zeroizing;

/// Length of a data key: AES-256.
pub const DATA_KEY_LEN: usize = 32;

/// A plaintext data key, wiped from memory when dropped.
pub type PlainKey = Zeroizing<[u8; DATA_KEY_LEN]>;

/// Non-secret key-value pairs bound to a wrapped key; unwrapping needs the same pairs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct EncryptionContext(BTreeMap<String, String>);

impl EncryptionContext {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn with(mut self, k: &str, v: &str) -> Self {
        self.0.insert(k.to_owned(), v.to_owned());
        self
    }
    pub fn pairs(&self) -> &BTreeMap<String, String> {
        &self.0
    }
    /// Canonical bytes of the context: sorted pairs, each part length-prefixed, so no two
    /// different contexts share an encoding.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (k, v) in &self.0 {
            for part in [k, v] {
                out.extend_from_slice(&(part.len() as u32).to_be_bytes());
                out.extend_from_slice(part.as_bytes());
            }
        }
        out
    }
}

/// A freshly generated data key: the plaintext to use now and the wrapped form to store.
pub struct GeneratedKey {
    pub plaintext: PlainKey,
    pub wrapped: Vec<u8>,
}

#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum VaultError {
    /// The wrapped key was tampered with, or the context does not match.
    #[error("data key cannot be unwrapped: wrong encryption context or corrupted key")]
    InvalidCiphertext,
    /// The vault refused (disabled key, missing permission).
    #[error("key vault denied the request: {0}")]
    Denied(String),
    /// Throttled or unreachable: retry later.
    #[error("key vault temporarily unavailable: {0}")]
    Unavailable(String),
    #[error("key vault error: {0}")]
    Backend(String),
}

/// The key-vault port.
#[async_trait]
pub trait KeyVault: Send + Sync + 'static {
    /// Generates a new AES-256 data key wrapped under the vault's master key and `context`.
    async fn generate_data_key(
        &self,
        context: &EncryptionContext,
    ) -> Result<GeneratedKey, VaultError>;

    /// Unwraps a data key; fails with [`VaultError::InvalidCiphertext`] unless `context` is
    /// exactly the one it was generated with.
    async fn unwrap_data_key(
        &self,
        wrapped: &[u8],
        context: &EncryptionContext,
    ) -> Result<PlainKey, VaultError>;
}
