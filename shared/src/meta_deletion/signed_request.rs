//! Meta's `signed_request`, as its Data Deletion Callback posts it.
//!
//! The callback is a form POST (`application/x-www-form-urlencoded`) with one field,
//! `signed_request=<signature>.<payload>`, both parts base64url (Meta sends them without
//! padding; padding is accepted too). The signature is HMAC-SHA256 of the *payload string as
//! sent* (the base64url text, not the decoded JSON), keyed with the app secret. The payload
//! decodes to JSON such as
//! `{"algorithm":"HMAC-SHA256","expires":1291840400,"issued_at":1291836800,"user_id":"218471"}`
//! where `user_id` is the app-scoped id of the user asking for deletion.
//!
//! Checks, in order: size, shape, signature (constant-time, against every configured secret
//! with no early exit, so a rotation can keep the previous secret for a while), then the
//! payload: `algorithm` must be `HMAC-SHA256` (case-insensitive, as Meta's sample compares
//! it), `user_id` a valid app-scoped id, `expires` (when present) not passed. Nothing is
//! parsed as JSON before the signature holds.

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use serde::Deserialize;
use subtle::{Choice, ConstantTimeEq};

use crate::ids::MetaUserId;
use crate::meta::AppSecret;

/// Largest form body accepted. Real signed requests are a few hundred bytes.
pub const MAX_BODY_BYTES: usize = 8 * 1024;
/// Clock skew allowed on `expires`.
pub const EXPIRY_SKEW_SECS: i64 = 300;
const DIGEST_LEN: usize = 32;

/// base64url, with or without `=` padding.
const B64URL: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why a signed request was refused. Every variant maps to a 4xx and records nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignedRequestError {
    #[error("request body exceeds {MAX_BODY_BYTES} bytes")]
    TooLarge,
    #[error("missing signed_request form field")]
    Missing,
    #[error("malformed signed_request: {0}")]
    Malformed(&'static str),
    #[error("signed_request signature does not match")]
    BadSignature,
    #[error("unsupported signed_request algorithm: only HMAC-SHA256 is accepted")]
    UnsupportedAlgorithm,
    #[error("signed_request payload invalid: {0}")]
    InvalidPayload(String),
    #[error("signed_request has expired")]
    Expired,
}

/// A verified deletion request's content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeletionRequest {
    /// The app-scoped id of the user asking for deletion.
    pub user_id: MetaUserId,
    pub issued_at: Option<i64>,
    pub expires: Option<i64>,
}

#[derive(Deserialize)]
struct Payload {
    algorithm: Option<String>,
    user_id: Option<serde_json::Value>,
    issued_at: Option<i64>,
    expires: Option<i64>,
}

/// Reads the `signed_request` field of a form body and verifies it (see the module doc).
/// `now` is Unix seconds.
pub fn verify_form(
    secrets: &[AppSecret],
    body: &[u8],
    now: i64,
) -> Result<DeletionRequest, SignedRequestError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(SignedRequestError::TooLarge);
    }
    let text = std::str::from_utf8(body)
        .map_err(|_| SignedRequestError::Malformed("form body is not UTF-8"))?;
    let value = form_field(text, "signed_request")?.ok_or(SignedRequestError::Missing)?;
    verify_signed_request(secrets, &value, now)
}

/// Verifies one `signed_request` value (see the module doc). `now` is Unix seconds.
pub fn verify_signed_request(
    secrets: &[AppSecret],
    signed_request: &str,
    now: i64,
) -> Result<DeletionRequest, SignedRequestError> {
    if signed_request.len() > MAX_BODY_BYTES {
        return Err(SignedRequestError::TooLarge);
    }
    let signed_request = signed_request.trim();
    if signed_request.is_empty() {
        return Err(SignedRequestError::Missing);
    }
    let (sig_b64, payload_b64) =
        signed_request
            .split_once('.')
            .ok_or(SignedRequestError::Malformed(
                "expected <signature>.<payload>",
            ))?;
    if sig_b64.is_empty() || payload_b64.is_empty() || payload_b64.contains('.') {
        return Err(SignedRequestError::Malformed(
            "expected <signature>.<payload>",
        ));
    }
    let sig = B64URL
        .decode(sig_b64)
        .map_err(|_| SignedRequestError::Malformed("signature is not base64url"))?;
    if sig.len() != DIGEST_LEN {
        return Err(SignedRequestError::Malformed(
            "signature is not an HMAC-SHA256 digest",
        ));
    }
    let mut ok = Choice::from(0u8);
    for secret in secrets {
        // Constant-time comparison, and no early exit across secrets.
        ok |= digest(secret, payload_b64).ct_eq(&sig[..]);
    }
    if !bool::from(ok) {
        return Err(SignedRequestError::BadSignature);
    }
    let json = B64URL
        .decode(payload_b64)
        .map_err(|_| SignedRequestError::Malformed("payload is not base64url"))?;
    let payload: Payload = serde_json::from_slice(&json)
        .map_err(|_| SignedRequestError::InvalidPayload("not a JSON object".into()))?;
    match payload.algorithm.as_deref() {
        Some(a) if a.eq_ignore_ascii_case("HMAC-SHA256") => {}
        _ => return Err(SignedRequestError::UnsupportedAlgorithm),
    }
    let user_id = match payload.user_id {
        Some(serde_json::Value::String(s)) => s,
        Some(serde_json::Value::Number(n)) if n.is_u64() => n.to_string(),
        _ => return Err(SignedRequestError::InvalidPayload("user_id missing".into())),
    };
    let user_id = MetaUserId::parse(&user_id)
        .map_err(|e| SignedRequestError::InvalidPayload(e.to_string()))?;
    if let Some(expires) = payload.expires {
        // Saturating: `expires` is whatever the sender signed, up to i64::MAX (found by
        // the fuzzer, decision 0042).
        if expires > 0 && expires.saturating_add(EXPIRY_SKEW_SECS) < now {
            return Err(SignedRequestError::Expired);
        }
    }
    Ok(DeletionRequest {
        user_id,
        issued_at: payload.issued_at,
        expires: payload.expires,
    })
}

/// Builds a signed request the way Meta does (unpadded base64url, HMAC over the payload
/// string). For tests, fixtures and loopback fakes.
pub fn sign(secret: &AppSecret, payload_json: &str) -> String {
    let payload = B64URL.encode(payload_json.as_bytes());
    format!("{}.{payload}", B64URL.encode(digest(secret, &payload)))
}

/// HMAC-SHA256 of `payload` keyed with the app secret (through [`AppSecret::sign`], which
/// keeps the secret itself private).
fn digest(secret: &AppSecret, payload: &str) -> [u8; DIGEST_LEN] {
    let signed = secret.sign(payload.as_bytes());
    let hex_part = signed.strip_prefix("sha256=").unwrap_or(&signed);
    let mut out = [0u8; DIGEST_LEN];
    hex::decode_to_slice(hex_part, &mut out).expect("AppSecret::sign gives 64 hex digits");
    out
}

/// The first value of `name` in an `application/x-www-form-urlencoded` body.
fn form_field(body: &str, name: &str) -> Result<Option<String>, SignedRequestError> {
    for pair in body.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if percent_decode(k)? == name {
            return percent_decode(v).map(Some);
        }
    }
    Ok(None)
}

fn percent_decode(s: &str) -> Result<String, SignedRequestError> {
    const BAD: SignedRequestError = SignedRequestError::Malformed("bad form encoding");
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).ok_or(BAD)?;
                let hex = std::str::from_utf8(hex).map_err(|_| BAD)?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| BAD)?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| BAD)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn secret(s: &str) -> AppSecret {
        AppSecret::new(s).unwrap()
    }

    fn payload(user: &str) -> String {
        format!(r#"{{"algorithm":"HMAC-SHA256","issued_at":{NOW},"user_id":"{user}"}}"#)
    }

    #[test]
    fn a_request_signed_like_meta_verifies() {
        let s = secret("app-secret");
        let signed = sign(&s, &payload("218471"));
        let req = verify_signed_request(&[s], &signed, NOW).unwrap();
        assert_eq!(req.user_id.as_str(), "218471");
        assert_eq!(req.issued_at, Some(NOW));
    }

    #[test]
    fn an_expiry_at_the_end_of_time_is_not_past() {
        let s = secret("app-secret");
        for expires in [i64::MAX, i64::MAX - EXPIRY_SKEW_SECS + 1] {
            let json =
                format!(r#"{{"algorithm":"HMAC-SHA256","expires":{expires},"user_id":"218471"}}"#);
            let req =
                verify_signed_request(std::slice::from_ref(&s), &sign(&s, &json), NOW).unwrap();
            assert_eq!(req.expires, Some(expires));
        }
    }

    #[test]
    fn padding_and_form_encoding_are_accepted() {
        let s = secret("app-secret");
        // A padded signature decodes the same; the payload is signed as sent, so a sender
        // that pads it signs the padded text.
        let json = r#"{"algorithm":"HMAC-SHA256","user_id":"1"}"#;
        let padded_payload = base64::engine::general_purpose::URL_SAFE.encode(json.as_bytes());
        assert!(padded_payload.ends_with('='));
        let sig = base64::engine::general_purpose::URL_SAFE.encode(digest(&s, &padded_payload));
        assert!(sig.ends_with('='));
        let padded = format!("{sig}.{padded_payload}");
        let body = format!("signed_request={}", padded.replace('=', "%3D"));
        let req = verify_form(std::slice::from_ref(&s), body.as_bytes(), NOW).unwrap();
        assert_eq!(req.user_id.as_str(), "1");
        let signed = sign(&s, &payload("1"));
        assert!(!signed.contains('='));
        let body = format!("other=x&signed_request={signed}");
        assert!(verify_form(&[s], body.as_bytes(), NOW).is_ok());
    }

    #[test]
    fn the_previous_secret_still_verifies_during_rotation() {
        let (new, old) = (secret("new-secret"), secret("old-secret"));
        let signed = sign(&old, &payload("42"));
        assert!(verify_signed_request(&[new.clone(), old], &signed, NOW).is_ok());
        assert_eq!(
            verify_signed_request(&[new], &signed, NOW),
            Err(SignedRequestError::BadSignature)
        );
    }

    #[test]
    fn forged_malformed_and_foreign_requests_are_refused() {
        let s = secret("app-secret");
        let secrets = [s.clone()];
        let good = sign(&s, &payload("218471"));
        let (sig, _) = good.split_once('.').unwrap();
        // The payload swapped for another user's, signature kept.
        let other = B64URL.encode(payload("999").as_bytes());
        assert_eq!(
            verify_signed_request(&secrets, &format!("{sig}.{other}"), NOW),
            Err(SignedRequestError::BadSignature)
        );
        // Signed with another secret.
        let forged = sign(&secret("guess"), &payload("218471"));
        assert_eq!(
            verify_signed_request(&secrets, &forged, NOW),
            Err(SignedRequestError::BadSignature)
        );
        for bad in ["", "abc", ".abc", "abc.", "a.b.c", "!!!.abc", "YWJj.abc"] {
            assert!(
                verify_signed_request(&secrets, bad, NOW).is_err(),
                "{bad:?} accepted"
            );
        }
        // Correctly signed, wrong algorithm or payload.
        let md5 = sign(&s, r#"{"algorithm":"HMAC-MD5","user_id":"1"}"#);
        assert_eq!(
            verify_signed_request(&secrets, &md5, NOW),
            Err(SignedRequestError::UnsupportedAlgorithm)
        );
        let none = sign(&s, r#"{"user_id":"1"}"#);
        assert_eq!(
            verify_signed_request(&secrets, &none, NOW),
            Err(SignedRequestError::UnsupportedAlgorithm)
        );
        let lower = sign(&s, r#"{"algorithm":"hmac-sha256","user_id":"7"}"#);
        assert!(verify_signed_request(&secrets, &lower, NOW).is_ok());
        for p in [
            r#"{"algorithm":"HMAC-SHA256"}"#,
            r#"{"algorithm":"HMAC-SHA256","user_id":"12#34"}"#,
            r#"{"algorithm":"HMAC-SHA256","user_id":""}"#,
            r#"[1]"#,
            "not json",
        ] {
            let signed = sign(&s, p);
            assert!(
                verify_signed_request(&secrets, &signed, NOW).is_err(),
                "{p} accepted"
            );
        }
        let expired = sign(
            &s,
            &format!(
                r#"{{"algorithm":"HMAC-SHA256","user_id":"1","expires":{}}}"#,
                NOW - 3600
            ),
        );
        assert_eq!(
            verify_signed_request(&secrets, &expired, NOW),
            Err(SignedRequestError::Expired)
        );
        assert_eq!(
            verify_form(&secrets, b"foo=bar", NOW),
            Err(SignedRequestError::Missing)
        );
        let big = vec![b'a'; MAX_BODY_BYTES + 1];
        assert_eq!(
            verify_form(&secrets, &big, NOW),
            Err(SignedRequestError::TooLarge)
        );
    }
}
