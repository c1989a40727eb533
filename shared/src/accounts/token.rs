//! Signed access tokens: `wpa1.<base64url claims>.<base64url HMAC-SHA256>`.
//!
//! A token names the tenant, the user, the session and the user's session epoch, and expires
//! after [`ACCESS_TOKEN_SECS`]. The signature lets every request refuse a forged or expired
//! token before touching the store; the session and the epoch are then checked against the
//! store, so signing out or changing a password takes effect at once rather than when the
//! token runs out.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::{AccountError, UserId};
pub use crate::crypto::signing_key::KeyError;
use crate::ids::TenantId;

type HmacSha256 = Hmac<Sha256>;

const PREFIX: &str = "wpa1.";
/// Domain separation: this key signs nothing else.
const DOMAIN: &[u8] = b"wappline-access-token\0";
/// Access tokens live 15 minutes; refresh tokens renew them.
pub const ACCESS_TOKEN_SECS: i64 = 15 * 60;
const MAX_TOKEN_CHARS: usize = 1024;

/// The claims of an access token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessClaims {
    /// Tenant id.
    pub t: String,
    /// User id.
    pub u: String,
    /// Session id.
    pub s: String,
    /// The user's session epoch when the token was issued.
    pub e: i64,
    /// Issued at, Unix seconds.
    pub iat: i64,
    /// Expires at, Unix seconds (refused from this second on).
    pub exp: i64,
}

impl AccessClaims {
    pub fn tenant(&self) -> Result<TenantId, AccountError> {
        TenantId::parse(&self.t).map_err(|_| AccountError::InvalidToken)
    }
    pub fn user(&self) -> Result<UserId, AccountError> {
        UserId::parse(&self.u).map_err(|_| AccountError::InvalidToken)
    }
}

crate::crypto::signing_key::signing_key!(
    /// The HMAC key of access tokens (at least 32 bytes; a key of its own).
    SessionKey
);

impl SessionKey {
    /// The key's bytes, for the form tokens of [`super::form_token`] (their own domain).
    pub(super) fn key_bytes(&self) -> &[u8] {
        self.bytes()
    }

    fn mac(&self, payload: &[u8]) -> HmacSha256 {
        let mut m = HmacSha256::new_from_slice(&self.0).expect("HMAC accepts keys of any length");
        m.update(DOMAIN);
        m.update(payload);
        m
    }

    /// A key for another purpose, derived from this one: HMAC-SHA256 over a domain and
    /// `label`. What it signs can never pass as an access token (another key, another
    /// domain), and deployments need no further secret.
    pub fn derive(&self, label: &str) -> zeroize::Zeroizing<Vec<u8>> {
        let mut m = HmacSha256::new_from_slice(&self.0).expect("HMAC accepts keys of any length");
        m.update(b"wappline-derived-key\0");
        m.update(label.as_bytes());
        zeroize::Zeroizing::new(m.finalize().into_bytes().to_vec())
    }

    /// Signs the claims into a token.
    pub fn sign(&self, claims: &AccessClaims) -> String {
        self.sign_payload(&serde_json::to_vec(claims).expect("plain struct"))
    }

    /// Signs `payload` (the claims' JSON) into a token, as [`SessionKey::sign`] does once it
    /// has built the JSON. Public so that tests and the fuzzer can reach the parse behind the
    /// signature with any payload.
    pub fn sign_payload(&self, payload: &[u8]) -> String {
        let payload = URL_SAFE_NO_PAD.encode(payload);
        let sig = self.mac(payload.as_bytes()).finalize().into_bytes();
        format!("{PREFIX}{payload}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    /// The claims of a token signed with this key and not expired at `now`. The signature is
    /// compared in constant time, before the claims are parsed.
    pub fn verify(&self, token: &str, now: i64) -> Result<AccessClaims, AccountError> {
        if token.len() > MAX_TOKEN_CHARS {
            return Err(AccountError::InvalidToken);
        }
        let rest = token
            .strip_prefix(PREFIX)
            .ok_or(AccountError::InvalidToken)?;
        let (payload, sig) = rest.split_once('.').ok_or(AccountError::InvalidToken)?;
        let sig = URL_SAFE_NO_PAD
            .decode(sig)
            .map_err(|_| AccountError::InvalidToken)?;
        self.mac(payload.as_bytes())
            .verify_slice(&sig)
            .map_err(|_| AccountError::InvalidToken)?;
        let json = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| AccountError::InvalidToken)?;
        let claims: AccessClaims =
            serde_json::from_slice(&json).map_err(|_| AccountError::InvalidToken)?;
        if claims.exp <= now {
            return Err(AccountError::InvalidToken);
        }
        Ok(claims)
    }
}

/// True when the presented bearer value is shaped like an access token (so the admin API
/// can tell it from the platform token without trying both).
pub fn looks_like_access_token(presented: &str) -> bool {
    presented.starts_with(PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> AccessClaims {
        AccessClaims {
            t: "tn_0123456789abcdef01234567".into(),
            u: "usr_0123456789abcdef0123".into(),
            s: "abcd".into(),
            e: 0,
            iat: 100,
            exp,
        }
    }

    #[test]
    fn a_signed_token_verifies_until_it_expires() {
        let key = SessionKey::generate().unwrap();
        let token = key.sign(&claims(1000));
        assert_eq!(key.verify(&token, 999).unwrap(), claims(1000));
        assert!(key.verify(&token, 1000).is_err());
        assert!(looks_like_access_token(&token));
    }

    #[test]
    fn forged_or_tampered_tokens_are_refused() {
        let key = SessionKey::generate().unwrap();
        let other = SessionKey::generate().unwrap();
        let token = key.sign(&claims(1000));
        assert!(other.verify(&token, 0).is_err(), "another key's token");
        // Claims changed to another tenant, signature kept.
        let mut forged = claims(1000);
        forged.t = "tn_ffffffffffffffffffffffff".into();
        let forged_payload = other.sign(&forged);
        let (_, sig) = token.rsplit_once('.').unwrap();
        let (head, _) = forged_payload.rsplit_once('.').unwrap();
        assert!(key.verify(&format!("{head}.{sig}"), 0).is_err());
        for junk in ["", "wpa1.", "wpa1.x.y", "Bearer", &token[..token.len() - 2]] {
            assert!(key.verify(junk, 0).is_err(), "{junk:?}");
        }
        assert!(key.verify(&"a".repeat(5000), 0).is_err());
    }

    #[test]
    fn short_keys_are_refused_and_debug_hides_the_key() {
        assert!(SessionKey::from_hex("00ff").is_err());
        let key = SessionKey::generate().unwrap();
        assert!(format!("{key:?}").contains("redacted"));
        let again = SessionKey::from_hex(&key.to_hex()).unwrap();
        assert_eq!(again.verify(&key.sign(&claims(10)), 0).unwrap(), claims(10));
    }

    #[test]
    fn a_retired_key_verifies_only_while_it_is_the_previous_key() {
        use crate::accounts::{AccountsConfig, PasswordHasher};
        let old = SessionKey::generate().unwrap();
        let new = SessionKey::generate().unwrap();
        let token = old.sign(&claims(1000));
        let hasher = || PasswordHasher::new(crate::accounts::MIN_BCRYPT_COST).unwrap();
        let rotated = AccountsConfig::new(hasher(), new.clone());
        assert!(rotated.verify_access_token(&token, 0).is_err());
        let settling = rotated.with_previous_session_key(Some(old));
        assert_eq!(
            settling.verify_access_token(&token, 0).unwrap(),
            claims(1000)
        );
        // Tokens of the current key still verify, and expiry holds for either key.
        let current = new.sign(&claims(1000));
        assert_eq!(
            settling.verify_access_token(&current, 0).unwrap(),
            claims(1000)
        );
        assert!(settling.verify_access_token(&token, 1000).is_err());
    }
}
