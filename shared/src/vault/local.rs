//! Local key vault for the local server: a 256-bit wrapping key kept in a file under the
//! data directory stands in for the KMS key. Wrapping is AES-256-GCM with the canonical
//! encryption context as associated data, so a wrapped key only unwraps with its context,
//! exactly as KMS behaves.
//!
//! Wrapped format: `0x01 | nonce (12) | ciphertext (32) | tag (16)`.

use std::path::Path;

use async_trait::async_trait;
use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use zeroize::Zeroizing;

use super::{EncryptionContext, GeneratedKey, KeyVault, PlainKey, VaultError, DATA_KEY_LEN};

const FORMAT_V1: u8 = 1;
const AAD_LABEL: &[u8] = b"wappline-local-vault-v1";
const KEY_FILE: &str = "local-wrapping.key";

pub struct LocalVault {
    wrapping_key: LessSafeKey,
}

impl LocalVault {
    /// A vault over the given wrapping key.
    pub fn from_key(key: &[u8; DATA_KEY_LEN]) -> Self {
        let unbound = UnboundKey::new(&AES_256_GCM, key).expect("32-byte AES-256 key");
        LocalVault {
            wrapping_key: LessSafeKey::new(unbound),
        }
    }

    /// Opens the wrapping key file in `dir`, creating it (mode 0600) with a random key on
    /// first use. Losing this file makes every local tenant's data unreadable, as losing the
    /// KMS key would in AWS.
    pub fn open_or_create(dir: &Path) -> Result<Self, VaultError> {
        std::fs::create_dir_all(dir).map_err(|e| VaultError::Backend(e.to_string()))?;
        let path = dir.join(KEY_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let bytes = Zeroizing::new(
                    hex::decode(text.trim())
                        .map_err(|_| VaultError::Backend(format!("{KEY_FILE} is not hex")))?,
                );
                let key: [u8; DATA_KEY_LEN] = bytes.as_slice().try_into().map_err(|_| {
                    VaultError::Backend(format!("{KEY_FILE} must hold {DATA_KEY_LEN} bytes"))
                })?;
                let key = Zeroizing::new(key);
                Ok(Self::from_key(&key))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = Zeroizing::new([0u8; DATA_KEY_LEN]);
                aws_lc_rs::rand::fill(key.as_mut())
                    .map_err(|_| VaultError::Backend("random source failed".into()))?;
                crate::private_file::write_new_private(&path, hex::encode(key.as_ref()).as_bytes())
                    .map_err(|e| VaultError::Backend(format!("writing {KEY_FILE}: {e}")))?;
                Ok(Self::from_key(&key))
            }
            Err(e) => Err(VaultError::Backend(format!("reading {KEY_FILE}: {e}"))),
        }
    }

    fn aad(context: &EncryptionContext) -> Vec<u8> {
        let mut aad = AAD_LABEL.to_vec();
        aad.extend_from_slice(&context.canonical_bytes());
        aad
    }
}

#[async_trait]
impl KeyVault for LocalVault {
    async fn generate_data_key(
        &self,
        context: &EncryptionContext,
    ) -> Result<GeneratedKey, VaultError> {
        let mut plaintext = Zeroizing::new([0u8; DATA_KEY_LEN]);
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(plaintext.as_mut())
            .and_then(|_| aws_lc_rs::rand::fill(&mut nonce))
            .map_err(|_| VaultError::Backend("random source failed".into()))?;
        let mut sealed = plaintext.to_vec();
        self.wrapping_key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(Self::aad(context)),
                &mut sealed,
            )
            .map_err(|_| VaultError::Backend("wrapping failed".into()))?;
        let mut wrapped = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        wrapped.push(FORMAT_V1);
        wrapped.extend_from_slice(&nonce);
        wrapped.extend_from_slice(&sealed);
        Ok(GeneratedKey { plaintext, wrapped })
    }

    async fn unwrap_data_key(
        &self,
        wrapped: &[u8],
        context: &EncryptionContext,
    ) -> Result<PlainKey, VaultError> {
        let expected = 1 + NONCE_LEN + DATA_KEY_LEN + AES_256_GCM.tag_len();
        if wrapped.len() != expected || wrapped[0] != FORMAT_V1 {
            return Err(VaultError::InvalidCiphertext);
        }
        let nonce = Nonce::try_assume_unique_for_key(&wrapped[1..1 + NONCE_LEN])
            .map_err(|_| VaultError::InvalidCiphertext)?;
        let mut buf = Zeroizing::new(wrapped[1 + NONCE_LEN..].to_vec());
        let plain = self
            .wrapping_key
            .open_in_place(nonce, Aad::from(Self::aad(context)), buf.as_mut_slice())
            .map_err(|_| VaultError::InvalidCiphertext)?;
        let mut key = Zeroizing::new([0u8; DATA_KEY_LEN]);
        key.copy_from_slice(plain);
        Ok(key)
    }
}
