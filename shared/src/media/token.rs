//! Media tokens: the claims of a media link, encrypted and authenticated (AES-256-GCM under a
//! key derived from the media link key), `base64url(version ‖ nonce ‖ ciphertext ‖ tag)`, no
//! padding. The claims are compact JSON naming the tenant, the business account, the media
//! reference (a WhatsApp media id, or an Instagram attachment CDN URL), its type and file
//! name, the conversation and the expiry in Unix seconds:
//!
//! ```json
//! {"v":2,"t":"tn_…","c":"wa","a":"106540352242922","r":"1037543291543636","m":"image/jpeg","n":"photo.jpg","e":1790000000,"s":"c_…"}
//! ```
//!
//! Encrypted, not only signed (issue 15): a link travels through Bitrix24 chats, browsers and
//! proxies' logs, and must not tell them the file's name, our tenant id or the business
//! account. The tag is checked (in constant time) before anything is parsed; a key being
//! retired still opens the links it made.

use std::fmt;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::ids::{InstagramAccountId, PhoneNumberId, TenantId};
use crate::meta::AccountRef;

type HmacSha256 = Hmac<Sha256>;

pub use crate::crypto::signing_key::{KeyError, MIN_KEY_BYTES};
/// Longest token accepted or made (characters); longer input is refused before any work.
pub const MAX_TOKEN_CHARS: usize = 4096;
/// Version 1 tokens were signed only; they lived at most a day and are no longer accepted.
const TOKEN_VERSION: u8 = 2;
const TAG_BYTES: usize = 16;
/// Label of the AEAD key derivation, and the AEAD's associated data.
const AEAD_LABEL: &[u8] = b"wappline-media-link-v2";

crate::crypto::signing_key::signing_key!(
    /// The HMAC key of media links: at least 32 random bytes.
    MediaLinkKey
);

impl MediaLinkKey {
    /// The AES-256-GCM key of the tokens: HMAC-SHA256(link key, label).
    fn aead(&self) -> LessSafeKey {
        let mut mac =
            HmacSha256::new_from_slice(self.bytes()).expect("HMAC accepts keys of any length");
        mac.update(AEAD_LABEL);
        let derived = mac.finalize().into_bytes();
        LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &derived).expect("a 32-byte key"))
    }
}

/// What a media link refers to.
#[derive(Clone, PartialEq, Eq)]
pub enum MediaRef {
    /// A WhatsApp media id, fetched through the Graph API with the channel's token.
    WhatsAppMedia(String),
    /// An Instagram attachment URL on Meta's CDN, fetched without a token.
    InstagramUrl(String),
}

impl MediaRef {
    fn as_str(&self) -> &str {
        match self {
            MediaRef::WhatsAppMedia(s) | MediaRef::InstagramUrl(s) => s,
        }
    }
}

impl fmt::Debug for MediaRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MediaRef::WhatsAppMedia(id) => write!(f, "WhatsAppMedia({id})"),
            // A CDN URL is a capability of its own: not for logs.
            MediaRef::InstagramUrl(_) => f.write_str("InstagramUrl(<url>)"),
        }
    }
}

/// The signed content of a media link.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct MediaClaims {
    pub tenant: TenantId,
    pub account: AccountRef,
    pub media: MediaRef,
    pub mime_type: Option<String>,
    pub filename: Option<String>,
    /// Unix seconds; the link is refused from this second on.
    pub expires_at: i64,
    /// The conversation the media belongs to, when the link was made for one: the proxy
    /// refuses it once that conversation's subject was erased (decision 0029).
    pub conversation: Option<String>,
}

/// Why a token was refused. All mean 403 at the edge; the variant is for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// Not base64url, too long or too short, or of another version.
    #[error("malformed media link")]
    Malformed,
    /// The tag does not match (forged, altered or truncated, or made with a key no longer
    /// accepted).
    #[error("media link signature does not match")]
    BadSignature,
    /// Correctly signed, but its content is not a valid payload of this version.
    #[error("media link content invalid")]
    Invalid,
    #[error("media link expired")]
    Expired,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    v: u8,
    t: String,
    c: String,
    a: String,
    r: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    m: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    n: Option<String>,
    e: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    s: Option<String>,
}

/// Signs `claims` with `key`. None when the claims do not fit together (a WhatsApp account
/// with a CDN URL or the reverse) or the token would exceed [`MAX_TOKEN_CHARS`].
pub fn sign(key: &MediaLinkKey, claims: &MediaClaims) -> Option<String> {
    let (c, a) = match (&claims.account, &claims.media) {
        (AccountRef::WhatsApp(id), MediaRef::WhatsAppMedia(_)) => ("wa", id.as_str()),
        (AccountRef::Instagram(id), MediaRef::InstagramUrl(_)) => ("ig", id.as_str()),
        _ => return None,
    };
    let wire = Wire {
        v: TOKEN_VERSION,
        t: claims.tenant.as_str().to_owned(),
        c: c.to_owned(),
        a: a.to_owned(),
        r: claims.media.as_str().to_owned(),
        m: claims.mime_type.clone(),
        n: claims.filename.clone(),
        e: claims.expires_at,
        s: claims.conversation.clone(),
    };
    seal_payload(key, serde_json::to_vec(&wire).ok()?)
}

/// Seals `payload` (the claims' JSON) into a token, as [`sign`] does once it has built the
/// JSON. Public so that tests and the fuzzer can reach the parse behind the tag with any
/// payload; only a holder of the key can make a token, whatever it holds.
pub fn seal_payload(key: &MediaLinkKey, payload: Vec<u8>) -> Option<String> {
    let mut sealed = payload;
    let mut nonce = [0u8; NONCE_LEN];
    crate::crypto::random_bytes(&mut nonce).ok()?;
    key.aead()
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(AEAD_LABEL),
            &mut sealed,
        )
        .ok()?;
    let mut bytes = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
    bytes.push(TOKEN_VERSION);
    bytes.extend_from_slice(&nonce);
    bytes.extend_from_slice(&sealed);
    let token = URL_SAFE_NO_PAD.encode(bytes);
    (token.len() <= MAX_TOKEN_CHARS).then_some(token)
}

/// Checks `token` against `keys` (the current key first, then keys being retired) and its
/// expiry against `now` (Unix seconds).
pub fn verify(keys: &[&MediaLinkKey], token: &str, now: i64) -> Result<MediaClaims, LinkError> {
    if token.is_empty() || token.len() > MAX_TOKEN_CHARS {
        return Err(LinkError::Malformed);
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| LinkError::Malformed)?;
    if bytes.len() < 1 + NONCE_LEN + TAG_BYTES || bytes[0] != TOKEN_VERSION {
        return Err(LinkError::Malformed);
    }
    let nonce: [u8; NONCE_LEN] = bytes[1..1 + NONCE_LEN].try_into().expect("sliced to size");
    let sealed = &bytes[1 + NONCE_LEN..];
    let payload = keys
        .iter()
        .find_map(|key| {
            let mut buf = sealed.to_vec();
            key.aead()
                .open_in_place(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::from(AEAD_LABEL),
                    &mut buf,
                )
                .ok()
                .map(|plain| plain.to_vec())
        })
        .ok_or(LinkError::BadSignature)?;
    let wire: Wire = serde_json::from_slice(&payload).map_err(|_| LinkError::Invalid)?;
    if wire.v != TOKEN_VERSION {
        return Err(LinkError::Invalid);
    }
    let tenant = TenantId::parse(&wire.t).map_err(|_| LinkError::Invalid)?;
    let (account, media) = match wire.c.as_str() {
        "wa" => (
            AccountRef::WhatsApp(PhoneNumberId::parse(&wire.a).map_err(|_| LinkError::Invalid)?),
            MediaRef::WhatsAppMedia(wire.r),
        ),
        "ig" => (
            AccountRef::Instagram(
                InstagramAccountId::parse(&wire.a).map_err(|_| LinkError::Invalid)?,
            ),
            MediaRef::InstagramUrl(wire.r),
        ),
        _ => return Err(LinkError::Invalid),
    };
    if now >= wire.e {
        return Err(LinkError::Expired);
    }
    Ok(MediaClaims {
        tenant,
        account,
        media,
        mime_type: wire.m,
        filename: wire.n,
        expires_at: wire.e,
        conversation: wire.s,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> MediaLinkKey {
        MediaLinkKey::from_bytes(&[b; 32]).unwrap()
    }

    fn claims() -> MediaClaims {
        MediaClaims {
            tenant: TenantId::parse("tn_0123456789abcdef01234567").unwrap(),
            account: AccountRef::WhatsApp(PhoneNumberId::parse("106540352242922").unwrap()),
            media: MediaRef::WhatsAppMedia("1037543291543636".into()),
            mime_type: Some("image/jpeg".into()),
            filename: Some("photo.jpg".into()),
            expires_at: 2_000,
            conversation: Some("c_0123".into()),
        }
    }

    #[test]
    fn round_trip_and_expiry() {
        let k = key(1);
        let token = sign(&k, &claims()).unwrap();
        assert!(token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b)));
        assert_eq!(verify(&[&k], &token, 1_999).unwrap(), claims());
        assert_eq!(verify(&[&k], &token, 2_000), Err(LinkError::Expired));
    }

    #[test]
    fn previous_keys_still_verify() {
        let (old, new) = (key(1), key(2));
        let token = sign(&old, &claims()).unwrap();
        assert_eq!(verify(&[&new], &token, 0), Err(LinkError::BadSignature));
        assert!(verify(&[&new, &old], &token, 0).is_ok());
    }

    #[test]
    fn the_link_reveals_nothing_of_what_it_names() {
        let k = key(1);
        let token = sign(&k, &claims()).unwrap();
        let bytes = URL_SAFE_NO_PAD.decode(&token).unwrap();
        for secret in [
            "tn_0123456789abcdef01234567",
            "106540352242922",
            "1037543291543636",
            "photo.jpg",
            "image/jpeg",
            "c_0123",
        ] {
            let needle = secret.as_bytes();
            assert!(!token.contains(secret), "{secret} in the link");
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "{secret} in the link's bytes"
            );
        }
        // Two links to the same file differ (a fresh nonce each).
        assert_ne!(sign(&k, &claims()).unwrap(), token);
    }

    #[test]
    fn tampering_is_refused() {
        let k = key(1);
        let token = sign(&k, &claims()).unwrap();
        // Every single-character change. The last character also carries padding bits that
        // decoding ignores, so each is changed in its highest bit, which always counts.
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        for i in 0..token.len() {
            let mut bytes = token.clone().into_bytes();
            let at = ALPHABET.iter().position(|&c| c == bytes[i]).unwrap();
            bytes[i] = ALPHABET[at ^ 0b10_0000];
            let altered = String::from_utf8(bytes).unwrap();
            let r = verify(&[&k], &altered, 0);
            assert!(
                matches!(r, Err(LinkError::BadSignature | LinkError::Malformed)),
                "change at {i}: {r:?}"
            );
        }
        for bad in [
            String::new(),
            token[..token.len() - 1].to_owned(),
            token[..20].to_owned(),
            format!("{token}.{token}"),
            format!("{token}="),
            "x".repeat(MAX_TOKEN_CHARS + 1),
        ] {
            assert!(verify(&[&k], &bad, 0).is_err(), "{bad:?} accepted");
        }
        // Made under another key.
        let other = sign(&key(9), &claims()).unwrap();
        assert_eq!(verify(&[&k], &other, 0), Err(LinkError::BadSignature));
    }

    #[test]
    fn mismatched_claims_are_not_signed_and_keys_are_checked() {
        let mut c = claims();
        c.media = MediaRef::InstagramUrl("https://lookaside.fbsbx.com/x".into());
        assert_eq!(sign(&key(1), &c), None);
        assert_eq!(
            MediaLinkKey::from_hex(&"ab".repeat(31)).unwrap_err(),
            KeyError::TooShort
        );
        assert_eq!(MediaLinkKey::from_hex("zz").unwrap_err(), KeyError::NotHex);
        let k = MediaLinkKey::generate().unwrap();
        assert_eq!(MediaLinkKey::from_hex(&k.to_hex()).unwrap().0, k.0);
        assert_eq!(format!("{k:?}"), "MediaLinkKey(<redacted>)");
    }
}
