//! A secret string (access token, refresh token): never printed, wiped on drop.

use std::fmt;

use zeroize::Zeroizing;

/// Longest secret we accept (Meta tokens are a few hundred bytes).
pub const MAX_SECRET_LEN: usize = 4096;

#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    /// A token: 1..=4096 visible ASCII characters, no whitespace.
    pub fn parse(field: &str, s: &str) -> Result<Self, String> {
        if s.is_empty() || s.len() > MAX_SECRET_LEN {
            return Err(format!("{field}: must be 1 to {MAX_SECRET_LEN} characters"));
        }
        if !s.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(format!(
                "{field}: must be visible ASCII characters without spaces"
            ));
        }
        Ok(Secret(Zeroizing::new(s.to_owned())))
    }

    /// Wraps a value that came out of decryption.
    pub fn from_decrypted(s: String) -> Self {
        Secret(Zeroizing::new(s))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}
