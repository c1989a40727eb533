//! HMAC signing keys (media links, export links, access tokens): one shape for all, each a
//! type of its own so one key can never be passed where another is meant.

/// Shortest key accepted, in bytes.
pub const MIN_KEY_BYTES: usize = 32;

/// A key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("signing key must be hex")]
    NotHex,
    #[error("signing key must be at least {MIN_KEY_BYTES} bytes ({} hex digits)", MIN_KEY_BYTES * 2)]
    TooShort,
    #[error("random source failed")]
    Random,
}

/// Defines a signing-key newtype: at least [`MIN_KEY_BYTES`], wiped on drop, never shown by
/// `Debug`, read from and written as hex.
macro_rules! signing_key {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $name(zeroize::Zeroizing<Vec<u8>>);

        impl $name {
            pub fn from_bytes(bytes: &[u8]) -> Result<Self, $crate::crypto::signing_key::KeyError> {
                if bytes.len() < $crate::crypto::signing_key::MIN_KEY_BYTES {
                    return Err($crate::crypto::signing_key::KeyError::TooShort);
                }
                Ok($name(zeroize::Zeroizing::new(bytes.to_vec())))
            }

            /// From hex, as kept in the environment or a secret store.
            pub fn from_hex(hex_key: &str) -> Result<Self, $crate::crypto::signing_key::KeyError> {
                let bytes = zeroize::Zeroizing::new(
                    hex::decode(hex_key.trim())
                        .map_err(|_| $crate::crypto::signing_key::KeyError::NotHex)?,
                );
                Self::from_bytes(&bytes)
            }

            /// A new random key of [`MIN_KEY_BYTES`] bytes.
            pub fn generate() -> Result<Self, $crate::crypto::signing_key::KeyError> {
                let mut bytes =
                    zeroize::Zeroizing::new(vec![0u8; $crate::crypto::signing_key::MIN_KEY_BYTES]);
                $crate::crypto::random_bytes(&mut bytes)
                    .map_err(|_| $crate::crypto::signing_key::KeyError::Random)?;
                Ok($name(bytes))
            }

            /// The key as hex, to store it (e.g. the local server's data directory).
            pub fn to_hex(&self) -> zeroize::Zeroizing<String> {
                zeroize::Zeroizing::new(hex::encode(&*self.0))
            }

            #[allow(dead_code)]
            fn bytes(&self) -> &[u8] {
                &self.0
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(concat!(stringify!($name), "(<redacted>)"))
            }
        }
    };
}

pub(crate) use signing_key;
