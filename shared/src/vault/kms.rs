//! KMS key vault: `GenerateDataKey` (AES_256) and `Decrypt`, both with the encryption
//! context, so KMS itself refuses to unwrap a tenant's key under another tenant's context and
//! IAM can require the `tenant_id` context key.

use async_trait::async_trait;
use aws_sdk_kms::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::DataKeySpec;
use aws_sdk_kms::Client;
use zeroize::Zeroizing;

use super::{EncryptionContext, GeneratedKey, KeyVault, PlainKey, VaultError, DATA_KEY_LEN};

pub struct KmsVault {
    client: Client,
    key_id: String,
}

impl KmsVault {
    /// `key_id`: key id, ARN, or alias of the wrapping key.
    pub fn new(client: Client, key_id: impl Into<String>) -> Self {
        KmsVault {
            client,
            key_id: key_id.into(),
        }
    }

    fn context_map(
        context: &EncryptionContext,
    ) -> Option<std::collections::HashMap<String, String>> {
        Some(
            context
                .pairs()
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        )
    }
}

/// Maps a KMS failure to the port's error, by service error code.
fn map_err<E, R>(err: SdkError<E, R>) -> VaultError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    let code = err.code().map(str::to_owned);
    let message = err.message().unwrap_or_default().to_owned();
    match code.as_deref() {
        Some("InvalidCiphertextException") | Some("IncorrectKeyException") => {
            VaultError::InvalidCiphertext
        }
        Some("AccessDeniedException")
        | Some("DisabledException")
        | Some("KMSInvalidStateException")
        | Some("NotFoundException") => {
            VaultError::Denied(format!("{}: {message}", code.unwrap_or_default()))
        }
        Some("ThrottlingException")
        | Some("LimitExceededException")
        | Some("KMSInternalException")
        | Some("DependencyTimeoutException")
        | Some("KeyUnavailableException") => {
            VaultError::Unavailable(format!("{}: {message}", code.unwrap_or_default()))
        }
        Some(c) => VaultError::Backend(format!("{c}: {message}")),
        None => match err {
            SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => {
                VaultError::Unavailable(format!("{err}"))
            }
            other => VaultError::Backend(format!("{other}")),
        },
    }
}

fn to_plain_key(bytes: &[u8]) -> Result<PlainKey, VaultError> {
    if bytes.len() != DATA_KEY_LEN {
        return Err(VaultError::Backend(format!(
            "KMS returned a {}-byte key, expected {DATA_KEY_LEN}",
            bytes.len()
        )));
    }
    let mut key = Zeroizing::new([0u8; DATA_KEY_LEN]);
    key.copy_from_slice(bytes);
    Ok(key)
}

#[async_trait]
impl KeyVault for KmsVault {
    async fn generate_data_key(
        &self,
        context: &EncryptionContext,
    ) -> Result<GeneratedKey, VaultError> {
        let out = self
            .client
            .generate_data_key()
            .key_id(&self.key_id)
            .key_spec(DataKeySpec::Aes256)
            .set_encryption_context(Self::context_map(context))
            .send()
            .await
            .map_err(map_err)?;
        let plaintext = out
            .plaintext()
            .ok_or_else(|| VaultError::Backend("GenerateDataKey returned no plaintext".into()))?;
        let wrapped = out
            .ciphertext_blob()
            .ok_or_else(|| VaultError::Backend("GenerateDataKey returned no ciphertext".into()))?;
        Ok(GeneratedKey {
            plaintext: to_plain_key(plaintext.as_ref())?,
            wrapped: wrapped.as_ref().to_vec(),
        })
    }

    async fn unwrap_data_key(
        &self,
        wrapped: &[u8],
        context: &EncryptionContext,
    ) -> Result<PlainKey, VaultError> {
        let out = self
            .client
            .decrypt()
            .key_id(&self.key_id)
            .ciphertext_blob(Blob::new(wrapped))
            .set_encryption_context(Self::context_map(context))
            .send()
            .await
            .map_err(map_err)?;
        let plaintext = out
            .plaintext()
            .ok_or_else(|| VaultError::Backend("Decrypt returned no plaintext".into()))?;
        to_plain_key(plaintext.as_ref())
    }
}
