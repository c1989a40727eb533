//! The settings page's token: what the page, once its `AUTH_ID` was checked, sends back with
//! every change instead of a cookie (browsers block third-party cookies in the portal's
//! frame, and a cookie would also ride along with any cross-site form post).
//!
//! `v1.<payload>.<mac>`, both parts base64url without padding: the payload is the JSON of
//! [`PageClaims`] (tenant, portal, line, connector, user, expiry), the MAC an HMAC-SHA256
//! over `v1.<payload>` with a key derived from the Bitrix24 application's client secret
//! (decision 0043). Verification compares the MAC in constant time before reading the
//! payload, then the expiry.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::secret::Secret;

type HmacSha256 = Hmac<Sha256>;

/// How long a page may be used without being opened again.
pub const PAGE_TOKEN_TTL: Duration = Duration::from_secs(5 * 60);
const VERSION: &str = "v1";
/// Separates this key from any other use of the client secret.
const DERIVATION_LABEL: &[u8] = b"wappline/bitrix24-placement-page-token/v1";

/// The key page tokens are signed with.
#[derive(Clone)]
pub struct PageTokenKey([u8; 32]);

impl std::fmt::Debug for PageTokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PageTokenKey(..)")
    }
}

impl PageTokenKey {
    /// HMAC-SHA256(client secret, label): only who knows the application's client secret
    /// (we, and Bitrix24, which can act as any of its portals' admins anyway) can sign.
    pub fn derive(client_secret: &Secret) -> Self {
        let mut mac = HmacSha256::new_from_slice(client_secret.expose().as_bytes())
            .expect("HMAC takes any key length");
        mac.update(DERIVATION_LABEL);
        PageTokenKey(mac.finalize().into_bytes().into())
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        PageTokenKey(bytes)
    }

    fn mac(&self) -> HmacSha256 {
        HmacSha256::new_from_slice(&self.0).expect("HMAC takes any key length")
    }

    /// Signs `claims`.
    pub fn sign(&self, claims: &PageClaims) -> String {
        self.sign_json(claims)
    }

    /// `v1.<payload>.<mac>` of any claims' JSON.
    pub(super) fn sign_json(&self, claims: &impl Serialize) -> String {
        let payload = serde_json::to_vec(claims).expect("claims serialize");
        let signed = format!("{VERSION}.{}", URL_SAFE_NO_PAD.encode(payload));
        let mut mac = self.mac();
        mac.update(signed.as_bytes());
        let tag = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{signed}.{tag}")
    }

    /// A key for another kind of page: HMAC of this key and `label`, so that one page's
    /// tokens are never accepted by another.
    pub fn derive_for(&self, label: &[u8]) -> Self {
        let mut mac = self.mac();
        mac.update(label);
        PageTokenKey(mac.finalize().into_bytes().into())
    }

    /// The claims of a token this key signed, if it has not expired at `now` (Unix seconds).
    pub fn verify(&self, token: &str, now: i64) -> Result<PageClaims, PageTokenError> {
        let claims: PageClaims =
            serde_json::from_slice(&self.open_json(token)?).map_err(|_| PageTokenError::Invalid)?;
        if claims.expires_at <= now {
            return Err(PageTokenError::Expired(Box::new(claims)));
        }
        Ok(claims)
    }

    /// The payload of a token this key signed; the MAC is compared in constant time before
    /// anything else is read.
    pub(super) fn open_json(&self, token: &str) -> Result<Vec<u8>, PageTokenError> {
        let (signed, tag) = token.rsplit_once('.').ok_or(PageTokenError::Invalid)?;
        let payload = signed
            .strip_prefix(VERSION)
            .and_then(|rest| rest.strip_prefix('.'))
            .ok_or(PageTokenError::Invalid)?;
        let tag = URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| PageTokenError::Invalid)?;
        let mut mac = self.mac();
        mac.update(signed.as_bytes());
        // Constant-time comparison of the tag.
        mac.verify_slice(&tag)
            .map_err(|_| PageTokenError::Invalid)?;
        URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| PageTokenError::Invalid)
    }
}

/// What a page token stands for: this admin, on this portal of this tenant, may change this
/// connector's line until `expires_at`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageClaims {
    #[serde(rename = "t")]
    pub tenant: String,
    #[serde(rename = "m")]
    pub member_id: String,
    #[serde(rename = "l")]
    pub line: u64,
    #[serde(rename = "c")]
    pub connector: String,
    /// The portal's user id of the admin who opened the page.
    #[serde(rename = "u")]
    pub user: u64,
    /// Unix seconds.
    #[serde(rename = "e")]
    pub expires_at: i64,
}

/// Why a page token is not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PageTokenError {
    /// Not one of ours (malformed, altered, signed with another key).
    #[error("the page token is not valid")]
    Invalid,
    /// Ours, but too old: the page must be opened again. The claims are authentic (the MAC
    /// was checked), so they may name the portal for the answer.
    #[error("the page token has expired")]
    Expired(Box<PageClaims>),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(expires_at: i64) -> PageClaims {
        PageClaims {
            tenant: "t_0123456789abcdef".into(),
            member_id: "a223c6b3710f85df22e9377d6c4f7553".into(),
            line: 2,
            connector: "wappline_whatsapp".into(),
            user: 7,
            expires_at,
        }
    }

    fn key() -> PageTokenKey {
        PageTokenKey::derive(&Secret::parse("client_secret", "FakeClientSecret0123456789").unwrap())
    }

    #[test]
    fn a_signed_token_verifies_until_it_expires() {
        let key = key();
        let token = key.sign(&claims(1_000));
        assert!(token.starts_with("v1."));
        assert_eq!(key.verify(&token, 999), Ok(claims(1_000)));
        assert_eq!(
            key.verify(&token, 1_000),
            Err(PageTokenError::Expired(Box::new(claims(1_000))))
        );
    }

    #[test]
    fn altered_or_foreign_tokens_are_refused() {
        let key = key();
        let token = key.sign(&claims(1_000));
        // Another key (another client secret) signs tokens this key refuses.
        let other =
            PageTokenKey::derive(&Secret::parse("client_secret", "another-secret-xyz").unwrap());
        assert_eq!(other.verify(&token, 0), Err(PageTokenError::Invalid));
        // A payload changed (another line, another tenant) without re-signing.
        let (_, rest) = token.split_once('.').unwrap();
        let (_, tag) = rest.split_once('.').unwrap();
        let mut forged = claims(1_000);
        forged.line = 3;
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
        assert_eq!(
            key.verify(&format!("v1.{payload}.{tag}"), 0),
            Err(PageTokenError::Invalid)
        );
        // A longer lifetime cannot be granted either.
        let mut later = claims(1_000);
        later.expires_at = 9_999_999_999;
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&later).unwrap());
        assert_eq!(
            key.verify(&format!("v1.{payload}.{tag}"), 2_000),
            Err(PageTokenError::Invalid)
        );
        // Truncated tag, other version, garbage.
        assert_eq!(
            key.verify(&token[..token.len() - 2], 0),
            Err(PageTokenError::Invalid)
        );
        assert_eq!(
            key.verify(&token.replacen("v1.", "v2.", 1), 0),
            Err(PageTokenError::Invalid)
        );
        for junk in ["", ".", "v1..", "v1.e30.", "not a token"] {
            assert_eq!(key.verify(junk, 0), Err(PageTokenError::Invalid), "{junk}");
        }
    }

    #[test]
    fn the_key_is_derived_not_the_secret() {
        let secret = Secret::parse("client_secret", "FakeClientSecret0123456789").unwrap();
        let derived = PageTokenKey::derive(&secret);
        assert_ne!(&derived.0[..], secret.expose().as_bytes());
        assert_eq!(format!("{derived:?}"), "PageTokenKey(..)");
    }
}
