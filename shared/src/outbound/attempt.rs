//! Send attempts (decision 0055): before each Graph API send a part's attempt is recorded,
//! conditionally, on the job's progress record, and the send carries the attempt's tag
//! (WhatsApp's `biz_opaque_callback_data`, which the Cloud API echoes in the message's status
//! webhooks). A redelivered job that finds an attempt without a recorded outcome knows a send
//! may have gone out: it waits for a status webhook carrying that tag (recorded here by the
//! inbound worker) for a bounded time before it decides (the send worker, `worker.rs`).
//!
//! A status webhook that confirms an attempt also leaves its status on the progress item, an
//! *early status* (decision 0074): Meta's delivered, read or failed of a send the send worker
//! had not recorded yet, which the inbound worker cannot put on a message it cannot find. The
//! send worker applies it once it has recorded the send. The item keeps the highest one
//! (`MessageStatus::rank`) for the whole job: a new attempt or a recorded part leaves it.
//!
//! The attempt lives on the progress item (`progress::key`), so a contact's erasure, which
//! deletes that item, takes it too; the provider id a status webhook confirms, and a failed
//! status's text, are encrypted with the tenant's data key like the parts (a wamid holds the
//! recipient's number, Meta's error text may quote the customer; decision 0030). Recording a
//! part (`SendProgress::save`) leaves the attempt on the item: its tag names its part, and a
//! status that overtakes the rest of the recording can still confirm it.

use crate::clock::now_secs;
use crate::conversation::MessageStatus;
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
/// Set when the attempt's part is the message's last (decision 0127): a confirmed attempt
/// of it means the whole message went out.
const LAST: &str = "att_last";
/// The rank of the early status (`MessageStatus::rank`; the highest one reported).
const EARLY: &str = "early_st";
/// A failed early status's text (encrypted).
const EARLY_FAILURE: &str = "early_why";
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
    /// The part is the message's last (false for an attempt recorded before this was kept).
    pub last: bool,
}

/// A status Meta reported for one of the job's sends before the send worker recorded that
/// send (decision 0074): kept on the progress item until the send worker applies it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EarlyStatus {
    pub status: MessageStatus,
    /// Meta's reason, for a failed one.
    pub failure: Option<String>,
}

/// What [`SendProgress::keep_earlier_copy`] did with a status of an earlier copy of a part.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EarlierCopy {
    /// Nothing: not an earlier copy of a part sent again, or not a status it carries over.
    Ignored,
    /// Kept as the job's early status; `recorded` is the part's provider id when the
    /// progress already held it.
    Kept { recorded: Option<String> },
}

/// What [`SendProgress::confirm_attempt`] wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Confirmation {
    /// Nothing: the tag is not the attempt on record (a replaced attempt's, or not ours).
    NotOnRecord,
    /// The attempt's provider id alone (a `sent`, or a higher status is kept already).
    Confirmed,
    /// The provider id, and the status kept as the job's early status.
    Held,
}

impl EarlyStatus {
    /// Whether it tells the operator more than the send worker's own `sent` does.
    pub fn beyond_sent(&self) -> bool {
        self.status.rank() > MessageStatus::Sent.rank()
    }
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

/// The early status held is not above `rank`: a status is kept only over a lower one (or
/// the same again), so a late `delivered` never replaces a `read`.
fn not_outranked(rank: i64) -> Condition {
    Condition::Or(vec![
        Condition::AttrNotExists(EARLY.into()),
        Condition::LessThan(EARLY.into(), AttrValue::N(rank + 1)),
    ])
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
        let confirmed = self
            .sealed_text(tenant, &key(tenant, effect), item, CONFIRMED)
            .await?;
        Ok(Some(Attempt {
            tag: tag.to_owned(),
            part,
            number,
            at: item.get_n(AT).unwrap_or(0),
            confirmed,
            last: item.get_bool(LAST).unwrap_or(false),
        }))
    }

    /// The early status held on the progress item `item` (of `tenant`'s job `effect`).
    pub(super) async fn early_in(
        &self,
        tenant: &TenantId,
        effect: &str,
        item: &Item,
    ) -> Result<Option<EarlyStatus>, ProgressError> {
        let Some(rank) = item.get_n(EARLY) else {
            return Ok(None);
        };
        let status = MessageStatus::from_rank(rank).ok_or(ProgressError::Unreadable)?;
        let failure = self
            .sealed_text(tenant, &key(tenant, effect), item, EARLY_FAILURE)
            .await?;
        Ok(Some(EarlyStatus { status, failure }))
    }

    /// The early status held for `tenant`'s job `effect` now: one read, made only after a
    /// recording that needed more than one try (a status may have overtaken it meanwhile).
    pub async fn early_status(
        &self,
        tenant: &TenantId,
        effect: &str,
    ) -> Result<Option<EarlyStatus>, ProgressError> {
        match self.store.get(Table::Dedupe, &key(tenant, effect)).await? {
            Some(item) => self.early_in(tenant, effect, &item).await,
            None => Ok(None),
        }
    }

    /// Records a new attempt of `part` (`last`: the message's last part) before its send.
    /// `prior` is the attempt the job last
    /// saw on the record (None: none): the write holds only if that is still the one there,
    /// so two deliveries of one job never both believe they own the next send. `Ok(None)`:
    /// another delivery recorded an attempt meanwhile.
    pub async fn begin_attempt(
        &self,
        tenant: &TenantId,
        effect: &str,
        (part, last): (usize, bool),
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
            last,
        };
        let condition = match prior {
            Some(p) => Condition::Equals(TAG.into(), AttrValue::S(p.tag.clone())),
            None => Condition::AttrNotExists(TAG.into()),
        };
        let update = Update::new()
            .set(TAG, attempt.tag.as_str())
            .set(AT, attempt.at)
            .set(LAST, last)
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
        let update = Update::new()
            .remove(TAG)
            .remove(AT)
            .remove(LAST)
            .remove(CONFIRMED);
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
    /// attempt reached Meta. Written only when it is the attempt on record (a tag of a
    /// replaced attempt, or not ours, changes nothing). The webhook's status is kept with it
    /// as the job's early status when it says more than `sent` and no higher one is kept
    /// already (in the same conditional write; decision 0074).
    pub async fn confirm_attempt(
        &self,
        tenant: &TenantId,
        tag: &str,
        provider_id: &str,
        status: &EarlyStatus,
    ) -> Result<Confirmation, ProgressError> {
        let Some((effect, _, _)) = parse_tag(tag) else {
            return Ok(Confirmation::NotOnRecord);
        };
        let k = key(tenant, effect);
        let sealed = self
            .envelope
            .encrypt(
                FieldRef::new(tenant, Table::Dedupe, &k, CONFIRMED),
                provider_id.as_bytes(),
            )
            .await?;
        let confirm = Update::new().set(CONFIRMED, sealed);
        let ours = Condition::Equals(TAG.into(), AttrValue::S(tag.to_owned()));
        if status.beyond_sent() {
            let rank = status.status.rank();
            let mut held = confirm.clone().set(EARLY, rank);
            held = match &status.failure {
                Some(text) => {
                    let sealed = self
                        .envelope
                        .encrypt(
                            FieldRef::new(tenant, Table::Dedupe, &k, EARLY_FAILURE),
                            text.as_bytes(),
                        )
                        .await?;
                    held.set(EARLY_FAILURE, sealed)
                }
                None => held.remove(EARLY_FAILURE),
            };
            let condition = Condition::And(vec![ours.clone(), not_outranked(rank)]);
            match self
                .store
                .update(Table::Dedupe, &k, held, Some(condition))
                .await
            {
                Ok(_) => return Ok(Confirmation::Held),
                // Not the attempt on record, or a higher status is kept (an earlier part's):
                // the confirmation alone, below.
                Err(e) if e.is_condition_failed() => {}
                Err(e) => return Err(e.into()),
            }
        }
        match self
            .store
            .update(Table::Dedupe, &k, confirm, Some(ours))
            .await
        {
            Ok(_) => Ok(Confirmation::Confirmed),
            Err(e) if e.is_condition_failed() => Ok(Confirmation::NotOnRecord),
            Err(e) => Err(e.into()),
        }
    }
}

impl SendProgress {
    /// A status webhook of `tenant` carried our `tag` and `status` for `provider_id`, and the
    /// tag is not the attempt on record. When it names an earlier attempt of a part that was
    /// sent again (that send reached Meta after all: the customer has two copies), a
    /// delivered or read says the customer has the part, and it is kept as the job's early
    /// status (decision 0111): the send worker applies it if it has not recorded the part
    /// yet, and the caller looks for the part's message through [`Self::recorded_part`] once
    /// it is kept, as for any early status. A failed or sent of that copy says nothing of the
    /// copy the message holds. Whether it was kept (or a status as high was already), with
    /// the provider id recorded for the part when this read saw it (it never changes once
    /// recorded).
    pub async fn keep_earlier_copy(
        &self,
        tenant: &TenantId,
        tag: &str,
        provider_id: &str,
        status: MessageStatus,
    ) -> Result<EarlierCopy, ProgressError> {
        let Some((effect, part, number)) = parse_tag(tag) else {
            return Ok(EarlierCopy::Ignored);
        };
        if !matches!(status, MessageStatus::Delivered | MessageStatus::Read) {
            return Ok(EarlierCopy::Ignored);
        }
        let rank = status.rank();
        let k = key(tenant, effect);
        // Twice at most: a write that lost to the send worker's (a new attempt on record)
        // reads the progress once more.
        for _ in 0..2 {
            let state = self.load_state(tenant, effect).await?;
            let recorded = state.parts.get(part).cloned().flatten();
            // No progress item (erased, or past its retention), or the copy on record itself.
            let Some(current) = state.attempt else {
                return Ok(EarlierCopy::Ignored);
            };
            if recorded.as_deref() == Some(provider_id) {
                return Ok(EarlierCopy::Ignored);
            }
            let sent_again =
                recorded.is_some() || (current.part == part && current.number > number);
            if !sent_again {
                return Ok(EarlierCopy::Ignored);
            }
            if state.early.is_some_and(|e| e.status.rank() >= rank) {
                return Ok(EarlierCopy::Kept { recorded });
            }
            let held = Update::new().set(EARLY, rank).remove(EARLY_FAILURE);
            let condition = Condition::And(vec![
                Condition::Equals(TAG.into(), AttrValue::S(current.tag)),
                not_outranked(rank),
            ]);
            match self
                .store
                .update(Table::Dedupe, &k, held, Some(condition))
                .await
            {
                Ok(_) => return Ok(EarlierCopy::Kept { recorded }),
                Err(e) if e.is_condition_failed() => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(EarlierCopy::Ignored)
    }

    /// The provider id recorded for the part `tag` names, if its send is recorded.
    pub async fn recorded_part(
        &self,
        tenant: &TenantId,
        tag: &str,
    ) -> Result<Option<String>, ProgressError> {
        let Some((effect, part, _)) = parse_tag(tag) else {
            return Ok(None);
        };
        let mut parts = self.load(tenant, effect).await?;
        Ok(match part < parts.len() {
            true => parts.swap_remove(part),
            false => None,
        })
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
