//! Passwords: a typed value that refuses weak input, and bcrypt hashing with a configured
//! cost (never below 12) that is raised on the next sign-in when the configuration grows.

use std::sync::{Arc, OnceLock};

use zeroize::Zeroizing;

use super::AccountError;

/// The lowest bcrypt cost accepted anywhere (2^12 rounds).
pub const MIN_BCRYPT_COST: u32 = 12;
/// bcrypt's own ceiling.
const MAX_BCRYPT_COST: u32 = 31;
pub const MIN_PASSWORD_CHARS: usize = 12;
/// bcrypt reads at most 72 bytes; longer passwords are refused rather than silently cut.
pub const MAX_PASSWORD_BYTES: usize = 72;

/// A password that meets the policy. Wiped on drop; `Debug` never shows it.
pub struct Password(Zeroizing<String>);

impl Password {
    /// A new password being set: at least 12 characters, at most 72 bytes, not only spaces.
    pub fn new(s: &str) -> Result<Self, AccountError> {
        if s.chars().count() < MIN_PASSWORD_CHARS {
            return Err(AccountError::Invalid(format!(
                "password: must be at least {MIN_PASSWORD_CHARS} characters"
            )));
        }
        if s.len() > MAX_PASSWORD_BYTES {
            return Err(AccountError::Invalid(format!(
                "password: must be at most {MAX_PASSWORD_BYTES} bytes"
            )));
        }
        if s.trim().is_empty() || s.chars().any(char::is_control) {
            return Err(AccountError::Invalid(
                "password: must not be blank or contain control characters".into(),
            ));
        }
        Ok(Password(Zeroizing::new(s.to_owned())))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// Hashes and verifies passwords with bcrypt. The work runs on the blocking pool so a
/// sign-in never stalls the async runtime for the ~0.2 s a cost-12 hash takes.
#[derive(Clone, Debug)]
pub struct PasswordHasher {
    cost: u32,
    /// A hash of a random password at `cost`, made on first use: what an unknown user's
    /// sign-in is verified against.
    dummy: Arc<OnceLock<String>>,
}

impl PasswordHasher {
    pub fn new(cost: u32) -> Result<Self, AccountError> {
        if !(MIN_BCRYPT_COST..=MAX_BCRYPT_COST).contains(&cost) {
            return Err(AccountError::Invalid(format!(
                "bcrypt cost must be {MIN_BCRYPT_COST} to {MAX_BCRYPT_COST}"
            )));
        }
        Ok(PasswordHasher {
            cost,
            dummy: Arc::new(OnceLock::new()),
        })
    }

    pub fn cost(&self) -> u32 {
        self.cost
    }

    /// A new salted hash (`$2b$<cost>$...`); bcrypt draws a fresh 128-bit salt each time.
    pub async fn hash(&self, password: &Password) -> Result<String, AccountError> {
        let pw = Zeroizing::new(password.expose().to_owned());
        let cost = self.cost;
        tokio::task::spawn_blocking(move || bcrypt::hash(pw.as_bytes(), cost))
            .await
            .map_err(|e| AccountError::Crypto(e.to_string()))?
            .map_err(|e| AccountError::Crypto(e.to_string()))
    }

    /// Whether `presented` matches `hash` (bcrypt compares in constant time). `None` for the
    /// hash runs the same work against a dummy hash, so an unknown user costs what a wrong
    /// password costs.
    pub async fn verify(&self, presented: &str, hash: Option<&str>) -> bool {
        let hash = hash.map(str::to_owned);
        let dummy = self.dummy.clone();
        let cost = self.cost;
        let pw = Zeroizing::new(presented.to_owned());
        tokio::task::spawn_blocking(move || {
            let hash = match hash {
                Some(h) => h,
                None => dummy
                    .get_or_init(|| {
                        let mut random = [0u8; 24];
                        let _ = crate::crypto::random_bytes(&mut random);
                        bcrypt::hash(hex::encode(random), cost).unwrap_or_default()
                    })
                    .clone(),
            };
            bcrypt::verify(pw.as_bytes(), &hash).unwrap_or(false)
        })
        .await
        .unwrap_or(false)
    }

    /// True when a stored hash was made with a lower cost than configured now.
    pub fn needs_upgrade(&self, hash: &str) -> bool {
        cost_of(hash).is_none_or(|c| c < self.cost)
    }
}

/// The cost recorded in a bcrypt hash (`$2b$12$...`).
pub fn cost_of(hash: &str) -> Option<u32> {
    let mut parts = hash.split('$');
    let _ = parts.next()?; // empty before the first '$'
    let version = parts.next()?;
    if !matches!(version, "2a" | "2b" | "2x" | "2y") {
        return None;
    }
    parts.next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_or_oversized_passwords_are_refused() {
        assert!(Password::new("short").is_err());
        assert!(Password::new("            ").is_err());
        assert!(Password::new(&"x".repeat(73)).is_err());
        assert!(Password::new("line\nbreak-in-it").is_err());
        assert!(Password::new("correct horse battery").is_ok());
        assert!(
            format!("{:?}", Password::new("correct horse battery").unwrap()).contains("redacted")
        );
    }

    #[test]
    fn costs_below_twelve_are_refused() {
        assert!(PasswordHasher::new(11).is_err());
        assert!(PasswordHasher::new(4).is_err());
        assert!(PasswordHasher::new(12).is_ok());
    }

    #[tokio::test]
    async fn hashes_are_salted_bcrypt_at_the_configured_cost_and_verify() {
        let hasher = PasswordHasher::new(12).unwrap();
        let pw = Password::new("correct horse battery").unwrap();
        let a = hasher.hash(&pw).await.unwrap();
        let b = hasher.hash(&pw).await.unwrap();
        assert!(a.starts_with("$2b$12$"), "{a}");
        assert_ne!(a, b, "each hash has its own salt");
        assert_eq!(cost_of(&a), Some(12));
        assert!(hasher.verify("correct horse battery", Some(&a)).await);
        assert!(!hasher.verify("correct horse batterz", Some(&a)).await);
        assert!(!hasher.verify("correct horse battery", None).await);
        assert!(!hasher.verify("anything", Some("not a hash")).await);
    }

    #[tokio::test]
    async fn a_lower_cost_hash_needs_an_upgrade() {
        let pw = Password::new("correct horse battery").unwrap();
        let h12 = PasswordHasher::new(12).unwrap().hash(&pw).await.unwrap();
        assert!(!PasswordHasher::new(12).unwrap().needs_upgrade(&h12));
        assert!(PasswordHasher::new(13).unwrap().needs_upgrade(&h12));
        assert!(PasswordHasher::new(12).unwrap().needs_upgrade("garbage"));
    }
}
