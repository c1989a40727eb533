//! Meta's webhook signature: `X-Hub-Signature-256: sha256=<hex>` where the hex is
//! HMAC-SHA256 of the exact raw request body keyed with the app secret. Checked before the
//! body is parsed, in constant time, so a forged delivery stores nothing and teaches nothing.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

/// The header Meta signs deliveries with (HTTP header names are case-insensitive).
pub const SIGNATURE_HEADER: &str = "X-Hub-Signature-256";

const PREFIX: &str = "sha256=";
const DIGEST_LEN: usize = 32;

type HmacSha256 = Hmac<Sha256>;

/// A Meta app secret. Wiped from memory on drop; `Debug` never shows it, so it cannot reach a
/// log line by accident.
///
/// It also holds the HMAC keyed with it (the SHA-256 states after the inner and the outer
/// padded key), made once: each check clones it rather than keying again, which saves the
/// keying's two SHA-256 blocks (of about 25 for an average delivery). That state is as
/// secret as the key; it never leaves this struct (decision 0079).
#[derive(Clone)]
pub struct AppSecret {
    secret: Zeroizing<Vec<u8>>,
    keyed: HmacSha256,
}

/// The app secret given was empty or not a single token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid Meta app secret: must be non-empty and contain no whitespace")]
pub struct InvalidAppSecret;

impl AppSecret {
    /// Meta shows app secrets as 32 hex characters; any non-empty token is accepted, but
    /// stray whitespace (a copy-paste accident that would fail every check) is not.
    pub fn new(secret: &str) -> Result<Self, InvalidAppSecret> {
        if secret.is_empty() || secret.chars().any(char::is_whitespace) {
            return Err(InvalidAppSecret);
        }
        let keyed =
            HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC accepts keys of any length");
        Ok(AppSecret {
            secret: Zeroizing::new(secret.as_bytes().to_vec()),
            keyed,
        })
    }

    /// The secret itself, for the OAuth exchanges that send it as `client_secret` (Embedded
    /// Signup's code exchange).
    pub fn as_secret(&self) -> crate::secret::Secret {
        crate::secret::Secret::from_decrypted(String::from_utf8_lossy(&self.secret).into_owned())
    }

    /// The app access token `{app-id}|{app-secret}` (Meta, "Access Tokens > App Access
    /// Tokens"): what server-to-server calls about the app itself use, e.g. `debug_token`.
    pub fn app_access_token(&self, app_id: &crate::ids::MetaAppId) -> crate::secret::Secret {
        let secret = String::from_utf8_lossy(&self.secret);
        crate::secret::Secret::from_decrypted(format!("{}|{secret}", app_id.as_str()))
    }

    fn mac(&self) -> HmacSha256 {
        self.keyed.clone()
    }

    /// The header value Meta would send for `body`: `sha256=<lowercase hex>`. For tests and
    /// loopback fakes that post signed webhooks.
    pub fn sign(&self, body: &[u8]) -> String {
        let mut mac = self.mac();
        mac.update(body);
        format!("{PREFIX}{}", hex::encode(mac.finalize().into_bytes()))
    }
}

impl fmt::Debug for AppSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AppSecret(<redacted>)")
    }
}

/// Why a delivery's signature was refused. All map to 401; the variant is for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing X-Hub-Signature-256 header")]
    Missing,
    #[error("malformed X-Hub-Signature-256 header: expected sha256=<64 hex digits>")]
    Malformed,
    #[error("X-Hub-Signature-256 does not match the body")]
    Mismatch,
}

/// Checks `header` (the `X-Hub-Signature-256` value, if any) against HMAC-SHA256 of the
/// exact raw `body` keyed with `secret`. The comparison is constant-time (`verify_slice`).
pub fn verify_signature(
    secret: &AppSecret,
    header: Option<&str>,
    body: &[u8],
) -> Result<(), SignatureError> {
    verify_signature_any(std::slice::from_ref(secret), header, body)
}

/// As [`verify_signature`], accepting a signature by any of `secrets`: one product's app
/// (Facebook Login) and Instagram's own app (Instagram Login) sign with different secrets,
/// and a secret being rotated needs the old and the new for a while. With no secrets, every
/// delivery is refused.
pub fn verify_signature_any(
    secrets: &[AppSecret],
    header: Option<&str>,
    body: &[u8],
) -> Result<(), SignatureError> {
    let digest = parse_header(header)?;
    let mut ok = false;
    for secret in secrets {
        let mut mac = secret.mac();
        mac.update(body);
        // No early exit: every secret is tried, so timing does not say which one matched.
        ok |= mac.verify_slice(&digest).is_ok();
    }
    if ok {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

fn parse_header(header: Option<&str>) -> Result<[u8; DIGEST_LEN], SignatureError> {
    let value = header.map(str::trim).unwrap_or_default();
    if value.is_empty() {
        return Err(SignatureError::Missing);
    }
    let hex_part = value
        .get(..PREFIX.len())
        .filter(|p| p.eq_ignore_ascii_case(PREFIX))
        .map(|_| &value[PREFIX.len()..])
        .ok_or(SignatureError::Malformed)?;
    let mut digest = [0u8; DIGEST_LEN];
    hex::decode_to_slice(hex_part, &mut digest).map_err(|_| SignatureError::Malformed)?;
    Ok(digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";
    const BODY: &[u8] = br#"{"object":"whatsapp_business_account","entry":[]}"#;
    // Computed independently:
    // python3 -c 'import hmac,hashlib;print(hmac.new(b"0123456789abcdef0123456789abcdef",
    //   b"{\"object\":\"whatsapp_business_account\",\"entry\":[]}", hashlib.sha256).hexdigest())'
    const EXPECTED: &str = "eefab58106e73358686845848feb95c56372e7391b3dc050b6a31c8c5f347ece";

    fn secret() -> AppSecret {
        AppSecret::new(SECRET).unwrap()
    }

    #[test]
    fn known_vectors() {
        assert_eq!(secret().sign(BODY), format!("sha256={EXPECTED}"));
        assert_eq!(
            verify_signature(&secret(), Some(&format!("sha256={EXPECTED}")), BODY),
            Ok(())
        );
        // RFC-style vector, also from Python's hmac module.
        let key = AppSecret::new("key").unwrap();
        assert_eq!(
            key.sign(b"The quick brown fox jumps over the lazy dog"),
            "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
    }

    #[test]
    fn header_variations_meta_may_send() {
        let upper = format!("sha256={}", EXPECTED.to_uppercase());
        assert_eq!(verify_signature(&secret(), Some(&upper), BODY), Ok(()));
        let spaced = format!("  sha256={EXPECTED}\t");
        assert_eq!(verify_signature(&secret(), Some(&spaced), BODY), Ok(()));
        let prefix = format!("SHA256={EXPECTED}");
        assert_eq!(verify_signature(&secret(), Some(&prefix), BODY), Ok(()));
    }

    #[test]
    fn a_body_changed_by_one_byte_fails() {
        let header = secret().sign(BODY);
        let mut changed = BODY.to_vec();
        changed[10] ^= 0x01;
        assert_eq!(
            verify_signature(&secret(), Some(&header), &changed),
            Err(SignatureError::Mismatch)
        );
        // Re-serialised JSON (same meaning, other bytes) fails too: the raw body is signed.
        let reformatted = br#"{"object": "whatsapp_business_account", "entry": []}"#;
        assert_eq!(
            verify_signature(&secret(), Some(&header), reformatted),
            Err(SignatureError::Mismatch)
        );
        let mut tail = BODY.to_vec();
        tail.push(b'\n');
        assert_eq!(
            verify_signature(&secret(), Some(&header), &tail),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn wrong_secret_or_digest_mismatches() {
        let other = AppSecret::new("fedcba9876543210fedcba9876543210").unwrap();
        let header = other.sign(BODY);
        assert_eq!(
            verify_signature(&secret(), Some(&header), BODY),
            Err(SignatureError::Mismatch)
        );
        let zeros = format!("sha256={}", "0".repeat(64));
        assert_eq!(
            verify_signature(&secret(), Some(&zeros), BODY),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn missing_and_malformed_headers() {
        for missing in [None, Some(""), Some("   ")] {
            assert_eq!(
                verify_signature(&secret(), missing, BODY),
                Err(SignatureError::Missing),
                "{missing:?}"
            );
        }
        let short = format!("sha256={}", &EXPECTED[..62]);
        let long = format!("sha256={EXPECTED}00");
        let not_hex = format!("sha256={}", "g".repeat(64));
        let sha1 = "sha1=2fd4e1c67a2d28fced849ee1bb76e7391b93eb12".to_string();
        let bare = EXPECTED.to_string();
        let multibyte = format!("shä256={EXPECTED}");
        for bad in [
            short,
            long,
            not_hex,
            sha1,
            bare,
            multibyte,
            "sha256=".into(),
        ] {
            assert_eq!(
                verify_signature(&secret(), Some(&bad), BODY),
                Err(SignatureError::Malformed),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn any_of_several_secrets() {
        let old = AppSecret::new("old-secret").unwrap();
        let new = secret();
        let header = new.sign(BODY);
        assert_eq!(
            verify_signature_any(&[old.clone(), new], Some(&header), BODY),
            Ok(())
        );
        assert_eq!(
            verify_signature_any(&[old], Some(&header), BODY),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_signature_any(&[], Some(&header), BODY),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn secret_never_shows_in_debug() {
        let s = secret();
        let shown = format!("{s:?} {:?}", Some(&s));
        assert!(!shown.contains(SECRET), "{shown}");
        assert!(shown.contains("redacted"));
        assert!(AppSecret::new("").is_err());
        assert!(AppSecret::new("abc def").is_err());
        assert!(AppSecret::new("abc\n").is_err());
    }
}
