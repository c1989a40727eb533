//! Send attempts (decision 0055): before each Graph API send a part's attempt is recorded,
//! conditionally, on the job's progress record, and the send carries the attempt's tag
//! (WhatsApp's `biz_opaque_callback_data`, which the Cloud API echoes in the message's status
//! webhooks). A redelivered job that finds an attempt without a recorded outcome knows a send
//! may have gone out: it waits for a status webhook carrying that tag (recorded here by the
//! inbound worker) for a bounded time before it decides (the send worker, `worker.rs`).
//!
//! The attempt lives on the progress item (`progress::key`), so a contact's erasure, which
//! deletes that item, takes it too; the provider id a status webhook confirms is encrypted
//! with the tenant's data key like the parts (a wamid holds the recipient's number; decision
//! 0030). A full write of the progress (`SendProgress::save`, after a part is recorded) drops
//! the attempt: that part's outcome is known from then on.

use crate::clock::now_secs;
use crate::crypto::FieldRef;
use crate::idempotency::RETENTION;
use crate::ids::TenantId;
use crate::store::{AttrValue, Condition, Item, Table, Update, TTL_ATTR};

use super::progress::{key, ProgressError, SendProgress};

/// The attempt's tag.
const TAG: &str = "att";
/// When it was recorded (Unix seconds).
const AT: &str = "att_at";
/// The provider id a status webhook confirmed for it (encrypted).
const CONFIRMED: &str = "att_ok";
/// Our tags start with this (a version, so a later format can be told apart).
const PREFIX: &str = "wl1";

/// One recorded attempt to send part `part` of a job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attempt {
    /// `wl1.<effect>.<part>.<number>`: what the send carries as `biz_opaque_callback_data`.
    pub tag: String,
    pub part: usize,
    /// 1 for the first attempt of the part, then 2, 3, ...
    pub number: u32,
    /// When it was recorded (Unix seconds).
    pub at: i64,
    /// The provider message id, once a status webhook carrying the tag confirmed the send.
    pub confirmed: Option<String>,
}

/// The parts of a tag: the job's effect, the part and the attempt's number.
pub fn parse_tag(tag: &str) -> Option<(&str, usize, u32)> {
    let mut it = tag.split('.');
    if it.next()? != PREFIX {
        return None;
    }
    let effect = it.next()?;
    let part = it.next()?.parse().ok()?;
    let number = it.next()?.parse().ok()?;
    let well_formed = it.next().is_none()
        && !effect.is_empty()
        && effect.len() <= 64
        && effect.bytes().all(|b| b.is_ascii_alphanumeric());
    well_formed.then_some((effect, part, number))
}

fn tag_of(effect: &str, part: usize, number: u32) -> String {
    format!("{PREFIX}.{effect}.{part}.{number}")
}

impl SendProgress {
    /// The attempt recorded on the progress item `item` (of `tenant`'s job `effect`).
    pub(super) async fn attempt_in(
        &self,
        tenant: &TenantId,
        effect: &str,
        item: &Item,
    ) -> Result<Option<Attempt>, ProgressError> {
        let Some(tag) = item.get_s(TAG) else {
            return Ok(None);
        };
        let Some((_, part, number)) = parse_tag(tag) else {
            return Err(ProgressError::Unreadable);
        };
        let confirmed = match item.get_b(CONFIRMED) {
            Some(blob) => {
                let k = key(tenant, effect);
                let plain = self
                    .envelope
                    .decrypt(FieldRef::new(tenant, Table::Dedupe, &k, CONFIRMED), blob)
                    .await?;
                Some(String::from_utf8(plain).map_err(|_| ProgressError::Unreadable)?)
            }
            None => None,
        };
        Ok(Some(Attempt {
            tag: tag.to_owned(),
            part,
            number,
            at: item.get_n(AT).unwrap_or(0),
            confirmed,
        }))
    }

    /// Records a new attempt of `part` before its send. `prior` is the attempt the job last
    /// saw on the record (None: none): the write holds only if that is still the one there,
    /// so two deliveries of one job never both believe they own the next send. `Ok(None)`:
    /// another delivery recorded an attempt meanwhile.
    pub async fn begin_attempt(
        &self,
        tenant: &TenantId,
        effect: &str,
        part: usize,
        prior: Option<&Attempt>,
    ) -> Result<Option<Attempt>, ProgressError> {
        let k = key(tenant, effect);
        // The effect as the key holds it (bounded, alphanumeric): the tag must parse back.
        let effect_in_key: String = effect
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(64)
            .collect();
        let number = prior.filter(|p| p.part == part).map_or(1, |p| p.number + 1);
        let attempt = Attempt {
            tag: tag_of(&effect_in_key, part, number),
            part,
            number,
            at: now_secs(),
            confirmed: None,
        };
        let condition = match prior {
            Some(p) => Condition::Equals(TAG.into(), AttrValue::S(p.tag.clone())),
            None => Condition::AttrNotExists(TAG.into()),
        };
        let update = Update::new()
            .set(TAG, attempt.tag.as_str())
            .set(AT, attempt.at)
            .set(TTL_ATTR, now_secs() + RETENTION.as_secs() as i64)
            .remove(CONFIRMED);
        match self
            .store
            .update(Table::Dedupe, &k, update, Some(condition))
            .await
        {
            Ok(_) => Ok(Some(attempt)),
            Err(e) if e.is_condition_failed() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Meta answered the attempt's send with an error: nothing went out, so the attempt is
    /// dropped and the next delivery sends without waiting.
    pub async fn drop_attempt(
        &self,
        tenant: &TenantId,
        effect: &str,
        attempt: &Attempt,
    ) -> Result<(), ProgressError> {
        let update = Update::new().remove(TAG).remove(AT).remove(CONFIRMED);
        let condition = Condition::Equals(TAG.into(), AttrValue::S(attempt.tag.clone()));
        match self
            .store
            .update(Table::Dedupe, &key(tenant, effect), update, Some(condition))
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.is_condition_failed() => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// A status webhook of `tenant` carried our `tag` for `provider_id`: the send of that
    /// attempt reached Meta. True when it was the attempt on record (a tag of a settled or
    /// replaced attempt, or not ours, changes nothing).
    pub async fn confirm_attempt(
        &self,
        tenant: &TenantId,
        tag: &str,
        provider_id: &str,
    ) -> Result<bool, ProgressError> {
        let Some((effect, _, _)) = parse_tag(tag) else {
            return Ok(false);
        };
        let k = key(tenant, effect);
        let sealed = self
            .envelope
            .encrypt(
                FieldRef::new(tenant, Table::Dedupe, &k, CONFIRMED),
                provider_id.as_bytes(),
            )
            .await?;
        let condition = Condition::Equals(TAG.into(), AttrValue::S(tag.to_owned()));
        match self
            .store
            .update(
                Table::Dedupe,
                &k,
                Update::new().set(CONFIRMED, sealed),
                Some(condition),
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.is_condition_failed() => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_parse_back_and_others_do_not() {
        let effect = "a".repeat(64);
        let tag = tag_of(&effect, 2, 3);
        assert_eq!(parse_tag(&tag), Some((effect.as_str(), 2, 3)));
        assert!(tag.len() <= crate::graph::MAX_CALLBACK_DATA);
        for other in [
            "",
            "wl1",
            "wl2.abc.0.1",
            "wl1.abc.0",
            "wl1.abc.x.1",
            "wl1.ab-c.0.1",
            "wl1.abc.0.1.9",
            "{\"source\":\"api\"}",
        ] {
            assert_eq!(parse_tag(other), None, "{other}");
        }
    }
}
