//! The field-encryption format, version 1 (documented in docs/encryption.md).
//!
//! ```text
//! blob = 0x01 | key_version (u32, big-endian) | nonce (12 bytes) | ciphertext | tag (16 bytes)
//! aad  = "wappline-field-v1" | lp(tenant_id) | lp(table) | lp(pk) | lp(sk) | lp(attribute)
//!        | 0x01 | key_version (u32, big-endian)
//! lp(x) = len(x) as u32 big-endian | x
//! ```
//! AES-256-GCM with the tenant's data key of `key_version`. The AAD binds the ciphertext to
//! its tenant, table, item key and attribute, so a blob copied anywhere else fails to open.
//!
//! Queue jobs use the same blob layout with their own AAD, binding the job to its tenant, the
//! queue it is meant for and its job id (a blob moved to another queue or job fails to open):
//! ```text
//! aad  = "wappline-queue-v1" | lp(tenant_id) | lp(queue) | lp(job_id) | 0x01 | key_version
//! ```

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, AES_256_GCM, NONCE_LEN};

use crate::ids::TenantId;
use crate::store::{Key, Table};

/// Format version byte of v1 blobs.
pub const FORMAT_V1: u8 = 0x01;
/// Label that starts every v1 AAD.
pub const AAD_LABEL: &[u8] = b"wappline-field-v1";
/// Bytes before the ciphertext.
pub const HEADER_LEN: usize = 1 + 4 + NONCE_LEN;
/// GCM tag length.
pub const TAG_LEN: usize = 16;
/// Total bytes a v1 blob adds to the plaintext.
pub const OVERHEAD: usize = HEADER_LEN + TAG_LEN;
/// Label that starts every queue-job AAD (never a prefix of [`AAD_LABEL`], nor the reverse).
pub const QUEUE_AAD_LABEL: &[u8] = b"wappline-queue-v1";

/// Where a sealed queue job belongs: the AAD is derived from exactly this.
#[derive(Clone, Copy, Debug)]
pub struct JobRef<'a> {
    pub tenant: &'a TenantId,
    /// The logical name of the queue the job is meant for (`inbound.fifo`): the same on the
    /// queue, on its dead-letter queue and after a redrive back to it.
    pub queue: &'a str,
    /// The job's own id (for FIFO jobs, its deduplication id).
    pub job_id: &'a str,
}

impl<'a> JobRef<'a> {
    pub fn new(tenant: &'a TenantId, queue: &'a str, job_id: &'a str) -> Self {
        JobRef {
            tenant,
            queue,
            job_id,
        }
    }
}

/// The associated data for a queue job and key version.
pub fn job_aad(job: &JobRef<'_>, key_version: u32) -> Vec<u8> {
    let mut out =
        Vec::with_capacity(QUEUE_AAD_LABEL.len() + 40 + job.queue.len() + job.job_id.len());
    out.extend_from_slice(QUEUE_AAD_LABEL);
    push_lp(&mut out, job.tenant.as_str().as_bytes());
    push_lp(&mut out, job.queue.as_bytes());
    push_lp(&mut out, job.job_id.as_bytes());
    out.push(FORMAT_V1);
    out.extend_from_slice(&key_version.to_be_bytes());
    out
}

/// Where an encrypted value lives: the AAD is derived from exactly this.
#[derive(Clone, Copy, Debug)]
pub struct FieldRef<'a> {
    pub tenant: &'a TenantId,
    pub table: Table,
    pub key: &'a Key,
    pub attribute: &'a str,
}

impl<'a> FieldRef<'a> {
    pub fn new(tenant: &'a TenantId, table: Table, key: &'a Key, attribute: &'a str) -> Self {
        FieldRef {
            tenant,
            table,
            key,
            attribute,
        }
    }
}

fn push_lp(out: &mut Vec<u8>, part: &[u8]) {
    out.extend_from_slice(&(part.len() as u32).to_be_bytes());
    out.extend_from_slice(part);
}

/// The associated data for a field and key version.
pub fn aad(field: &FieldRef<'_>, key_version: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(
        AAD_LABEL.len() + 40 + field.key.pk.len() + field.key.sk.len() + field.attribute.len(),
    );
    out.extend_from_slice(AAD_LABEL);
    push_lp(&mut out, field.tenant.as_str().as_bytes());
    push_lp(&mut out, field.table.logical_name().as_bytes());
    push_lp(&mut out, field.key.pk.as_bytes());
    push_lp(&mut out, field.key.sk.as_bytes());
    push_lp(&mut out, field.attribute.as_bytes());
    out.push(FORMAT_V1);
    out.extend_from_slice(&key_version.to_be_bytes());
    out
}

/// Seals with the given nonce. Callers pass a fresh random nonce; tests pass fixed ones to
/// reproduce the published vectors.
pub fn seal(
    key: &LessSafeKey,
    key_version: u32,
    nonce: [u8; NONCE_LEN],
    field: &FieldRef<'_>,
    plaintext: &[u8],
) -> Vec<u8> {
    seal_with_aad(key, key_version, nonce, aad(field, key_version), plaintext)
}

/// Seals with the given nonce under an AAD already built for `key_version`.
pub fn seal_with_aad(
    key: &LessSafeKey,
    key_version: u32,
    nonce: [u8; NONCE_LEN],
    aad: Vec<u8>,
    plaintext: &[u8],
) -> Vec<u8> {
    let mut blob = Vec::with_capacity(OVERHEAD + plaintext.len());
    blob.push(FORMAT_V1);
    blob.extend_from_slice(&key_version.to_be_bytes());
    blob.extend_from_slice(&nonce);
    blob.extend_from_slice(plaintext);
    let tag = key
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut blob[HEADER_LEN..],
        )
        .expect("AES-GCM seal of an in-bounds buffer cannot fail");
    blob.extend_from_slice(tag.as_ref());
    blob
}

/// Reads the key version from a blob's header, checking the format byte and length.
pub fn key_version(blob: &[u8]) -> Option<u32> {
    if blob.len() < OVERHEAD || blob[0] != FORMAT_V1 {
        return None;
    }
    Some(u32::from_be_bytes([blob[1], blob[2], blob[3], blob[4]]))
}

/// Opens a blob; None on any failure (wrong key, wrong field, tampering, truncation).
pub fn open(key: &LessSafeKey, field: &FieldRef<'_>, blob: &[u8]) -> Option<Vec<u8>> {
    let version = key_version(blob)?;
    open_with_aad(key, aad(field, version), blob)
}

/// Opens a blob under an AAD built for the blob's own key version; None on any failure.
pub fn open_with_aad(key: &LessSafeKey, aad: Vec<u8>, blob: &[u8]) -> Option<Vec<u8>> {
    key_version(blob)?;
    let nonce = Nonce::try_assume_unique_for_key(&blob[5..HEADER_LEN]).ok()?;
    let mut buf = blob[HEADER_LEN..].to_vec();
    let len = key
        .open_in_place(nonce, Aad::from(aad), &mut buf)
        .ok()?
        .len();
    buf.truncate(len);
    Some(buf)
}

/// An AES-256-GCM key from raw bytes.
pub fn aead_key(bytes: &[u8; 32]) -> LessSafeKey {
    LessSafeKey::new(
        aws_lc_rs::aead::UnboundKey::new(&AES_256_GCM, bytes).expect("32-byte AES-256 key"),
    )
}
