//! Instagram comments in a conversation, and the one private reply Meta allows to each
//! (decision 0062).
//!
//! A comment is stored as the commenter's message (content [`Content::Comment`], the comment
//! id as its provider id). Meta lets the business answer it once, privately, within 7 days
//! of the comment ("Instagram Platform > Send a Private Reply to a Commenter", limitations).
//! The answer that takes that one reply is recorded on the comment's own message item
//! (`private_reply_by`: our message's sort key), with a condition, before the send: two
//! operator messages never both go as the reply, and a retry of the same message finds its
//! own claim. The record lives and dies with the message (retention, erasure).

use super::model::{ConversationId, MessageRef, Origin};
use super::{ConversationError, Conversations, MSG_PREFIX};
use crate::meta::Content;
use crate::store::{AttrValue, Condition, Query, Table, Update};

/// How long after a comment Meta accepts its private reply.
pub const PRIVATE_REPLY_SECS: i64 = 7 * 24 * 3600;

/// The message item's attribute naming the message that took the comment's private reply.
const REPLIED_BY: &str = "private_reply_by";

/// A customer's comment, as stored in their conversation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredComment {
    pub at: MessageRef,
    /// Meta's comment id: the private reply's `recipient.comment_id`.
    pub comment_id: String,
    /// When it was made (milliseconds).
    pub at_ms: i64,
    /// The sort key of our message that took its private reply, if one did.
    pub replied_by: Option<String>,
    /// A comment on a live video (`live_comments`): Meta takes its private reply only during
    /// the broadcast, which nothing here can see end (decision 0067).
    pub live: bool,
}

impl StoredComment {
    /// Whether Meta still accepts its private reply at `now` (seconds).
    pub fn within_reply_time(&self, now: i64) -> bool {
        now.saturating_sub(self.at_ms / 1000) < PRIVATE_REPLY_SECS
    }

    /// Whether `by` (our message's sort key) may send its private reply: nobody did, or `by`
    /// did (a retry of the same message).
    pub fn open_to(&self, by: &str) -> bool {
        self.replied_by.as_deref().is_none_or(|r| r == by)
    }
}

impl Conversations {
    /// The customer's comments among the conversation's newest `within` messages, newest
    /// first (deleted ones left out).
    pub async fn recent_comments(
        &self,
        id: &ConversationId,
        within: usize,
    ) -> Result<Vec<StoredComment>, ConversationError> {
        let query = Query::partition(self.partition(id))
            .begins_with(MSG_PREFIX)
            .limit(within.clamp(1, crate::store::MAX_PAGE_SIZE))
            .descending();
        let page = self.store.query(Table::Data, &query).await?;
        let mut out = Vec::new();
        for item in &page.items {
            let key = item
                .key()
                .ok_or_else(|| ConversationError::Corrupt("message without key".into()))?;
            let at = MessageRef {
                conversation: id.clone(),
                sk: key.sk.clone(),
            };
            let message = self.decode_message(at, &key, item).await?;
            if message.origin != Origin::Customer || message.deleted {
                continue;
            }
            if let Some(Content::Comment {
                comment_id, live, ..
            }) = &message.content
            {
                out.push(StoredComment {
                    live: *live,
                    comment_id: comment_id.clone(),
                    at_ms: message.at_ms,
                    replied_by: item.get_s(REPLIED_BY).map(str::to_owned),
                    at: message.at,
                });
            }
        }
        Ok(out)
    }

    /// Records that our message `by` (its sort key) is the comment's private reply. True when
    /// it is (now or from an earlier attempt of the same message); false when another message
    /// took it, or the comment is gone.
    pub async fn claim_private_reply(
        &self,
        comment: &MessageRef,
        by: &str,
    ) -> Result<bool, ConversationError> {
        let condition = Condition::And(vec![
            Condition::Exists,
            Condition::Or(vec![
                Condition::AttrNotExists(REPLIED_BY.into()),
                Condition::Equals(REPLIED_BY.into(), AttrValue::S(by.to_owned())),
            ]),
        ]);
        let update = Update::new().set(REPLIED_BY, by);
        match self
            .store
            .update(
                Table::Data,
                &self.message_key(comment),
                update,
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
