//! Signed export download tokens, made the way media links are (see `media::token`):
//! `base64url(payload) "." base64url(HMAC-SHA256(key, "wappline-export-link\0" ‖ payload))`.
//! The payload is compact JSON naming the tenant, the export, the file and the expiry:
//!
//! ```json
//! {"v":1,"t":"tn_…","x":"ex_…","f":"messages.csv","e":1790000000}
//! ```
//!
//! The domain-separation prefix means a media-link signature never verifies as an export
//! link (and the reverse) even if one key served both. The signature is checked in constant
//! time before the payload is parsed.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::ids::TenantId;

pub use crate::crypto::signing_key::KeyError;

use super::{ExportFile, ExportId};

type HmacSha256 = Hmac<Sha256>;

const DOMAIN: &[u8] = b"wappline-export-link\0";
const VERSION: u8 = 1;
const SIGNATURE_BYTES: usize = 32;
/// Longest token accepted (characters).
pub const MAX_TOKEN_CHARS: usize = 1024;

/// Why a token was refused. Every variant means 403 at the edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ExportLinkError {
    #[error("malformed export link")]
    Malformed,
    #[error("export link signature does not match")]
    BadSignature,
    #[error("export link content invalid")]
    Invalid,
    #[error("export link expired")]
    Expired,
}

/// The signed content of an export link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportClaims {
    pub tenant: TenantId,
    pub export: ExportId,
    pub file: ExportFile,
    /// Unix seconds; refused from this second on.
    pub expires_at: i64,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    v: u8,
    t: String,
    x: String,
    f: String,
    e: i64,
}

crate::crypto::signing_key::signing_key!(
    /// The HMAC key of export links (at least 32 bytes; a key of its own, not the media-link
    /// key).
    ExportLinkKey
);

fn mac(key: &ExportLinkKey, payload: &[u8]) -> HmacSha256 {
    let mut m = HmacSha256::new_from_slice(key.bytes()).expect("HMAC accepts keys of any length");
    m.update(DOMAIN);
    m.update(payload);
    m
}

pub fn sign(key: &ExportLinkKey, claims: &ExportClaims) -> String {
    let wire = Wire {
        v: VERSION,
        t: claims.tenant.as_str().to_owned(),
        x: claims.export.as_str().to_owned(),
        f: claims.file.name().to_owned(),
        e: claims.expires_at,
    };
    sign_payload(
        key,
        &serde_json::to_vec(&wire).expect("plain struct serializes"),
    )
}

/// Signs `payload` (the claims' JSON) into a token, as [`sign`] does once it has built the
/// JSON. Public so that tests and the fuzzer can reach the parse behind the signature with
/// any payload.
pub fn sign_payload(key: &ExportLinkKey, payload: &[u8]) -> String {
    let signature = mac(key, payload).finalize().into_bytes();
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(payload),
        URL_SAFE_NO_PAD.encode(signature)
    )
}

/// Checks `token` against `keys` (current first, then retiring ones) and `now`.
pub fn verify(
    keys: &[&ExportLinkKey],
    token: &str,
    now: i64,
) -> Result<ExportClaims, ExportLinkError> {
    if token.is_empty() || token.len() > MAX_TOKEN_CHARS {
        return Err(ExportLinkError::Malformed);
    }
    let (p, s) = token.split_once('.').ok_or(ExportLinkError::Malformed)?;
    if s.contains('.') {
        return Err(ExportLinkError::Malformed);
    }
    let payload = URL_SAFE_NO_PAD
        .decode(p)
        .map_err(|_| ExportLinkError::Malformed)?;
    let signature = URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| ExportLinkError::Malformed)?;
    if signature.len() != SIGNATURE_BYTES {
        return Err(ExportLinkError::Malformed);
    }
    // verify_slice compares in constant time.
    if !keys
        .iter()
        .any(|k| mac(k, &payload).verify_slice(&signature).is_ok())
    {
        return Err(ExportLinkError::BadSignature);
    }
    let wire: Wire = serde_json::from_slice(&payload).map_err(|_| ExportLinkError::Invalid)?;
    if wire.v != VERSION {
        return Err(ExportLinkError::Invalid);
    }
    let claims = ExportClaims {
        tenant: TenantId::parse(&wire.t).map_err(|_| ExportLinkError::Invalid)?,
        export: ExportId::parse(&wire.x).map_err(|_| ExportLinkError::Invalid)?,
        file: ExportFile::from_name(&wire.f).ok_or(ExportLinkError::Invalid)?,
        expires_at: wire.e,
    };
    if now >= claims.expires_at {
        return Err(ExportLinkError::Expired);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> ExportClaims {
        ExportClaims {
            tenant: TenantId::parse("tn_0123456789abcdef01234567").unwrap(),
            export: ExportId::parse("ex_0123456789abcdef01234567").unwrap(),
            file: ExportFile::MessagesCsv,
            expires_at: 2_000,
        }
    }

    #[test]
    fn round_trip_expiry_tampering() {
        let k = ExportLinkKey::from_bytes(&[7; 32]).unwrap();
        let token = sign(&k, &claims());
        assert_eq!(verify(&[&k], &token, 1_999).unwrap(), claims());
        assert_eq!(verify(&[&k], &token, 2_000), Err(ExportLinkError::Expired));
        let other = ExportLinkKey::from_bytes(&[8; 32]).unwrap();
        assert_eq!(
            verify(&[&other], &token, 0),
            Err(ExportLinkError::BadSignature)
        );
        for i in 0..token.len() {
            if token.as_bytes()[i] == b'.' {
                continue;
            }
            let mut b = token.clone().into_bytes();
            b[i] = if b[i] == b'A' { b'B' } else { b'A' };
            assert!(verify(&[&k], &String::from_utf8(b).unwrap(), 0).is_err());
        }
    }
}
