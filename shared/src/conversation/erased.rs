//! Erased subjects (issue 13): a contact erasure leaves a marker per erased conversation, so
//! work for that person still in flight — a Meta retry of an old delivery (Meta retries for
//! up to 7 days), a dead-letter redrive, a held event released when the tenant resumes — is
//! dropped instead of storing the person again.
//!
//! The marker names no one: it is keyed by the conversation id, itself a keyed hash under
//! the tenant's key (decision 0033), so it cannot be tied to a phone number and dies with
//! the tenant's keys. It lives [`MARKER_LIFETIME`]: longer than Meta's 7 days of retries
//! plus a dead-letter queue's 14 days of retention.
//!
//! The rule at the boundary (decision 0057): a marker is written *in progress* before the
//! erasure deletes anything, and *sealed* once everything is deleted with the erasure's
//! cut, the last millisecond of the whole second in which the markers were written (Meta
//! stamps events in whole seconds, so the cut is a whole second). An event Meta stamped at
//! or before the cut's second belongs to the erased period and is dropped; one stamped
//! later is a new conversation and is relayed. While the marker is in progress the cut is
//! not known yet, so an event waits (is retried later) instead of being judged.

use std::sync::Arc;
use std::time::Duration;

use super::ConversationId;
use crate::clock::now_secs;
use crate::ids::TenantId;
use crate::store::{Item, Key, StoreError, Table, TableStore, Update};

/// How long a marker is kept: 7 days of Meta retries + 14 days of DLQ retention + a day.
pub const MARKER_LIFETIME: Duration = Duration::from_secs(22 * 86_400);

/// The tenant sub-partition of the markers.
pub const PARTITION: &str = "ERASED";
const ERASED_AT_MS: &str = "erased_at_ms";
const STATE: &str = "state";
const IN_PROGRESS: &str = "erasing";
const SEALED: &str = "sealed";
const THROUGH_MS: &str = "through_ms";

/// A subject's erasure, as its marker tells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Erased {
    /// Markers written, deletion not finished: the cut is not known yet.
    InProgress,
    /// Sealed: everything up to and including this millisecond (the last of a whole second)
    /// is the erased period.
    Through(i64),
}

/// What to do with an event of an erased subject.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// It belongs to the erased period: drop it.
    Erased,
    /// The erasure is still running: try again later.
    Wait,
    /// Stamped after the erasure's cut: a new conversation, relayed.
    New,
}

impl Erased {
    /// The verdict on an event Meta stamped at `stamped_secs` (whole seconds); an event
    /// without a stamp counts as one from before the erasure.
    pub fn event(self, stamped_secs: Option<i64>) -> Verdict {
        match (self, stamped_secs) {
            (Erased::InProgress, _) => Verdict::Wait,
            (Erased::Through(_), None) => Verdict::Erased,
            // Compared in milliseconds: the stamp's second starts at secs * 1000, and the
            // cut is the last millisecond of a second, so this is "stamped in or before the
            // cut's second".
            (Erased::Through(through), Some(secs)) if secs.saturating_mul(1000) <= through => {
                Verdict::Erased
            }
            (Erased::Through(_), Some(_)) => Verdict::New,
        }
    }

    /// Whether a conversation begun at `created_at_ms` (our clock) is of the erased period.
    /// One begun after the cut is the person writing again: relayed. The erasure seals its
    /// markers only once the cut has passed, so a conversation begun after the seal is
    /// always after the cut.
    pub fn covers_conversation(self, created_at_ms: i64) -> bool {
        match self {
            Erased::InProgress => true,
            Erased::Through(through) => created_at_ms <= through,
        }
    }
}

/// The cut of an erasure whose markers were (last) written at `marked_at_ms`: the last
/// millisecond of that whole second. Everything Meta stamped in that second may have been
/// stored before the markers, so it all belongs to the erased period.
pub fn cut_of(marked_at_ms: i64) -> i64 {
    marked_at_ms.div_euclid(1000) * 1000 + 999
}

/// The tenant's erased-subject markers.
#[derive(Clone)]
pub struct ErasedSubjects {
    store: Arc<dyn TableStore>,
}

impl ErasedSubjects {
    pub fn new(store: Arc<dyn TableStore>) -> Self {
        ErasedSubjects { store }
    }

    /// Records that `conversation`'s subject is being erased (from `erased_at_ms`): work
    /// for it stops or waits until the marker is [sealed](Self::seal).
    pub async fn mark(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        erased_at_ms: i64,
    ) -> Result<(), StoreError> {
        let item = Item::new(&marker_key(tenant, conversation))
            .with(ERASED_AT_MS, erased_at_ms)
            .with(STATE, IN_PROGRESS)
            .with(
                crate::store::TTL_ATTR,
                now_secs() + MARKER_LIFETIME.as_secs() as i64,
            );
        self.store.put(Table::Data, item, None).await
    }

    /// Seals `conversation`'s marker with the erasure's cut (see [`cut_of`]).
    pub async fn seal(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        through_ms: i64,
    ) -> Result<(), StoreError> {
        self.store
            .update(
                Table::Data,
                &marker_key(tenant, conversation),
                Update::new()
                    .set(STATE, SEALED)
                    .set(THROUGH_MS, through_ms)
                    .set(
                        crate::store::TTL_ATTR,
                        now_secs() + MARKER_LIFETIME.as_secs() as i64,
                    ),
                None,
            )
            .await
            .map(|_| ())
    }

    /// Whether an erasure of `conversation`'s subject covers the conversation as it stands,
    /// begun at `created_at_ms` (its `META`): a conversation the person began again after
    /// the erasure's cut is a new one (decision 0057).
    pub async fn covers(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        created_at_ms: i64,
    ) -> Result<bool, StoreError> {
        Ok(self
            .erasure(tenant, conversation)
            .await?
            .is_some_and(|e| e.covers_conversation(created_at_ms)))
    }

    /// `conversation`'s subject's erasure, if one is marked (within the marker's lifetime).
    pub async fn erasure(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
    ) -> Result<Option<Erased>, StoreError> {
        let Some(item) = self
            .store
            .get(Table::Data, &marker_key(tenant, conversation))
            .await?
        else {
            return Ok(None);
        };
        Ok(match item.get_s(STATE) {
            Some(IN_PROGRESS) => Some(Erased::InProgress),
            // Sealed, or written before markers had states: the erasure time was the cut.
            _ => item
                .get_n(THROUGH_MS)
                .or_else(|| item.get_n(ERASED_AT_MS))
                .map(Erased::Through),
        })
    }
}

fn marker_key(tenant: &TenantId, conversation: &ConversationId) -> Key {
    Key::new(
        tenant.sub_partition(PARTITION),
        format!("m#{}", conversation.as_str()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The boundary both ways, at the cut's second and the next one.
    #[test]
    fn the_cut_is_a_whole_second_and_the_next_second_is_new() {
        let marked = 1_795_000_000_400; // 400 ms into second 1_795_000_000
        let cut = cut_of(marked);
        assert_eq!(cut, 1_795_000_000_999);
        let e = Erased::Through(cut);
        assert_eq!(e.event(Some(1_795_000_000)), Verdict::Erased);
        assert_eq!(e.event(Some(1_794_999_999)), Verdict::Erased);
        assert_eq!(e.event(Some(1_795_000_001)), Verdict::New);
        assert_eq!(e.event(None), Verdict::Erased);
        assert_eq!(Erased::InProgress.event(Some(i64::MAX)), Verdict::Wait);
        assert!(e.covers_conversation(1_795_000_000_999));
        assert!(!e.covers_conversation(1_795_000_001_000));
        assert!(Erased::InProgress.covers_conversation(i64::MAX));
        // At a second's first and last millisecond the cut is that second's end.
        assert_eq!(cut_of(1_795_000_000_000), 1_795_000_000_999);
        assert_eq!(cut_of(1_795_000_000_999), 1_795_000_000_999);
    }
}
