//! WhatsApp Cloud API media upload: `POST /{version}/{phone-number-id}/media` as
//! `multipart/form-data` with the fields `messaging_product=whatsapp`, `type` (the file's MIME
//! type) and `file` (the bytes), answered by `{"id": "<MEDIA_ID>"}` (Meta, "Cloud API >
//! Reference > Media > Upload media"; uploaded media persists for 30 days).
//!
//! We send media by the uploaded id rather than by `link`: Meta's own fetching of third-party
//! URLs is rate-limited and fails with 131053 when the host is slow or refuses it.

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use hyper::body::Bytes;
use serde::Deserialize;

use super::{GraphClient, GraphError};
use crate::ids::PhoneNumberId;
use crate::secret::Secret;

/// A file to upload.
#[derive(Clone)]
pub struct MediaUpload {
    pub bytes: Bytes,
    /// The `type` field and the part's `Content-Type`, e.g. `image/jpeg`.
    pub mime_type: String,
    /// The part's file name (sanitised to printable ASCII without quotes).
    pub filename: String,
}

impl std::fmt::Debug for MediaUpload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaUpload")
            .field("mime_type", &self.mime_type)
            .field("len", &self.bytes.len())
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Uploaded {
    id: String,
}

/// A header parameter value: printable ASCII, no quotes, backslashes or line breaks.
fn header_safe(s: &str, fallback: &str) -> String {
    let cleaned: String = s
        .chars()
        .map(|c| {
            if (c.is_ascii_graphic() && c != '"' && c != '\\') || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .take(200)
        .collect();
    let trimmed = cleaned.trim();
    if trimmed.is_empty() {
        fallback.to_owned()
    } else {
        trimmed.to_owned()
    }
}

/// A MIME type as a header value: `type/subtype` of token characters, else
/// `application/octet-stream`.
fn mime_safe(s: &str) -> String {
    let essence = s.split(';').next().unwrap_or_default().trim();
    let token = |t: &str| {
        !t.is_empty()
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    match essence.split_once('/') {
        Some((a, b)) if token(a) && token(b) => essence.to_ascii_lowercase(),
        _ => "application/octet-stream".to_owned(),
    }
}

fn boundary() -> String {
    let mut raw = [0u8; 24];
    // The system random source does not fail in practice; a fixed boundary would still be
    // correct, since we check the body for it below.
    let _ = SystemRandom::new().fill(&mut raw);
    format!("wappline-{}", hex::encode(raw))
}

/// The `multipart/form-data` body (RFC 7578): each text field, then the file part.
pub fn multipart_body(
    boundary: &str,
    fields: &[(&str, &str)],
    file_field: &str,
    upload: &MediaUpload,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(upload.bytes.len() + 512);
    for (name, value) in fields {
        out.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        out.extend_from_slice(
            format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
        );
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
    out.extend_from_slice(
        format!(
            "Content-Disposition: form-data; name=\"{file_field}\"; filename=\"{}\"\r\n",
            header_safe(&upload.filename, "file")
        )
        .as_bytes(),
    );
    out.extend_from_slice(
        format!("Content-Type: {}\r\n\r\n", mime_safe(&upload.mime_type)).as_bytes(),
    );
    out.extend_from_slice(&upload.bytes);
    out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

impl GraphClient {
    /// Uploads a file for the business number `from`; its media id, to send it by.
    pub async fn upload_whatsapp_media(
        &self,
        from: &PhoneNumberId,
        upload: &MediaUpload,
        access_token: &Secret,
    ) -> Result<String, GraphError> {
        let mime = mime_safe(&upload.mime_type);
        let mut b = boundary();
        while contains(&upload.bytes, b.as_bytes()) {
            b = boundary();
        }
        let body = multipart_body(
            &b,
            &[("messaging_product", "whatsapp"), ("type", &mime)],
            "file",
            upload,
        );
        let path = format!("{}/media", from.as_str());
        let uploaded: Uploaded = self
            .post_body(
                &path,
                &format!("multipart/form-data; boundary={b}"),
                Bytes::from(body),
                access_token,
            )
            .await?;
        if uploaded.id.is_empty() {
            return Err(GraphError::Protocol(
                "media upload answered without an id".into(),
            ));
        }
        Ok(uploaded.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_the_documented_fields_and_the_bytes() {
        let upload = MediaUpload {
            bytes: Bytes::from_static(b"\xff\xd8jpeg\xff\xd9"),
            mime_type: "image/jpeg".into(),
            filename: "caf\u{e9} \"photo\".jpg\r\nX: y".into(),
        };
        let body = multipart_body(
            "B0undary",
            &[("messaging_product", "whatsapp"), ("type", "image/jpeg")],
            "file",
            &upload,
        );
        let expected_head = "--B0undary\r\nContent-Disposition: form-data; name=\"messaging_product\"\r\n\r\nwhatsapp\r\n\
             --B0undary\r\nContent-Disposition: form-data; name=\"type\"\r\n\r\nimage/jpeg\r\n\
             --B0undary\r\nContent-Disposition: form-data; name=\"file\"; filename=\"caf_ _photo_.jpg__X: y\"\r\n\
             Content-Type: image/jpeg\r\n\r\n";
        assert!(body.starts_with(expected_head.as_bytes()));
        assert!(body.ends_with(b"\xff\xd8jpeg\xff\xd9\r\n--B0undary--\r\n"));
    }

    #[test]
    fn odd_mime_types_become_octet_stream() {
        assert_eq!(mime_safe("image/png; q=1"), "image/png");
        assert_eq!(mime_safe("text/plain\r\nX: y"), "application/octet-stream");
        assert_eq!(mime_safe(""), "application/octet-stream");
        assert_eq!(
            mime_safe("application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
        );
    }

    #[test]
    fn boundaries_differ() {
        assert_ne!(boundary(), boundary());
    }
}
