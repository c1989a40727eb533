//! A customer's read of their thread (decision 0116).
//!
//! Instagram reports a read as the one message the customer's app showed last
//! (`messaging_seen`, `read.mid`), Messenger as a time (`read.watermark`: "all messages that
//! were sent before or at this timestamp were read"). Either way the customer saw the
//! thread: every message we sent before it is read too. Without this, of three replies read
//! at once only the last showed as read in Bitrix24, and a reply sent again after a crash
//! stayed unread when the customer read the first copy (decision 0111's residue).

use super::model::{ConversationId, MessageRef, MessageStatus};
use super::updates::STATUS_JOB;
use super::{ConversationError, Conversations, MSG_PREFIX};
use crate::store::{Key, Query, Table};

/// How many of a conversation's messages one read looks back over at most: past it, what
/// is still unread stays so (a conversation's messages since its last read are rarely
/// more; each look costs a read of the items).
const THREAD_READ_LOOKBACK: usize = 100;

/// Messages per page of the look back.
const PAGE: usize = 25;

/// The bound of a read at `at_ms` (a time, not a message): sorts after every message of
/// that millisecond and before every later one.
pub fn read_bound_at(at_ms: i64) -> String {
    format!("{MSG_PREFIX}{:013}#", at_ms.max(0).saturating_add(1))
}

impl Conversations {
    /// Our messages in `conversation` sorted before `before` (a message's sort key, or
    /// [`read_bound_at`]) that a read of the thread reaches: `sent` or `delivered`, newest
    /// first, up to the first one already `read` (a read before it covered the rest) and
    /// at most [`THREAD_READ_LOOKBACK`] messages back. A message this very read moved
    /// already (its status job is `job_of` its sort key: a redelivery after a stop before
    /// its status was queued) is returned again, and the walk goes on past it.
    pub async fn unread_before(
        &self,
        conversation: &ConversationId,
        before: &str,
        job_of: impl Fn(&str) -> String,
    ) -> Result<Vec<MessageRef>, ConversationError> {
        let pk = self.partition(conversation);
        let readable = [MessageStatus::Sent.rank(), MessageStatus::Delivered.rank()];
        let mut found = Vec::new();
        let mut looked = 0;
        let mut after = Key::new(pk.clone(), before);
        while looked < THREAD_READ_LOOKBACK {
            let query = Query::partition(pk.clone())
                .begins_with(MSG_PREFIX)
                .descending()
                .start_after(Some(after))
                .limit(PAGE.min(THREAD_READ_LOOKBACK - looked));
            let page = self.store.query(Table::Data, &query).await?;
            for item in &page.items {
                looked += 1;
                if item.get_s("direction") != Some("out") {
                    continue;
                }
                let Some(key) = item.key() else { continue };
                let ours = |sk: String| MessageRef {
                    conversation: conversation.clone(),
                    sk,
                };
                match item.get_n("status_rank") {
                    Some(rank) if rank >= MessageStatus::Read.rank() => {
                        if item.get_s(STATUS_JOB) != Some(job_of(&key.sk).as_str()) {
                            return Ok(found);
                        }
                        found.push(ours(key.sk));
                    }
                    Some(rank) if readable.contains(&rank) => found.push(ours(key.sk)),
                    _ => {}
                }
            }
            match page.next {
                Some(next) => after = next,
                None => break,
            }
        }
        Ok(found)
    }
}
