//! One embedded-queue message's record besides its body ([`Meta`], stored as JSON), its
//! SQS-shaped message id, and the receipts a receive hands out (`{seq:x}.{nonce}`, a fresh
//! nonce per receive, so a receipt from an earlier receive is recognisably stale).

use serde::{Deserialize, Serialize};

use super::QueueError;

/// What is stored per message besides its body.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct Meta {
    pub(super) message_id: String,
    pub(super) group_id: Option<String>,
    pub(super) dedup_id: Option<String>,
    pub(super) receive_count: u32,
    /// Wall-clock ms, so in-flight messages reappear on time after a restart.
    pub(super) visible_at: i64,
    pub(super) sent_at: i64,
    /// Nonce of the latest receive; only the receipt carrying it may ack the message.
    pub(super) receipt_nonce: Option<String>,
}

pub(super) fn encode(meta: &Meta) -> Result<Vec<u8>, QueueError> {
    serde_json::to_vec(meta).map_err(|e| QueueError::Backend(format!("encoding message: {e}")))
}

pub(super) fn decode(bytes: &[u8]) -> Result<Meta, QueueError> {
    serde_json::from_slice(bytes)
        .map_err(|e| QueueError::Backend(format!("corrupt message record: {e}")))
}

fn random_bytes<const N: usize>() -> Result<[u8; N], QueueError> {
    let mut bytes = [0u8; N];
    aws_lc_rs::rand::fill(&mut bytes)
        .map_err(|_| QueueError::Backend("system random source failed".into()))?;
    Ok(bytes)
}

/// A random (version 4) UUID, as SQS message ids look.
pub(super) fn new_message_id() -> Result<String, QueueError> {
    let mut b = random_bytes::<16>()?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    ))
}

pub(super) fn new_nonce() -> Result<String, QueueError> {
    Ok(hex::encode(random_bytes::<16>()?))
}

pub(super) fn receipt(seq: u64, nonce: &str) -> String {
    format!("{seq:x}.{nonce}")
}

pub(super) fn parse_receipt(receipt: &str) -> Result<(u64, &str), QueueError> {
    let malformed = || QueueError::Invalid("malformed receipt".into());
    let (seq, nonce) = receipt.split_once('.').ok_or_else(malformed)?;
    let seq = u64::from_str_radix(seq, 16).map_err(|_| malformed())?;
    if nonce.len() != 32 || !nonce.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(malformed());
    }
    Ok((seq, nonce))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipts_round_trip_and_reject_garbage() {
        let nonce = "0123456789abcdef0123456789abcdef";
        let r = receipt(0x2a, nonce);
        assert_eq!(parse_receipt(&r), Ok((0x2a, nonce)));
        for bad in [
            "",
            "2a",
            "2a.",
            "zz.0123456789abcdef0123456789abcdef",
            "2a.xyz",
        ] {
            assert!(
                matches!(parse_receipt(bad), Err(QueueError::Invalid(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn message_ids_look_like_uuids() {
        let id = new_message_id().expect("random source");
        assert_eq!(id.len(), 36);
        assert_eq!(id.as_bytes()[14], b'4');
        assert_ne!(id, new_message_id().expect("random source"));
    }
}
