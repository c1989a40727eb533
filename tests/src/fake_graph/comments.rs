//! Instagram private replies to comments (Meta, "Instagram Platform > Send a Private Reply to
//! a Commenter"): `POST /{version}/{ig-id}/messages` (or `me/messages`, or `{page-id}/messages`
//! with a Page token) with `{"recipient": {"comment_id": "<COMMENT_ID>"}, "message":
//! {"text": "<TEXT>"}}` answers `{"recipient_id": "<commenter IGSID>", "message_id": "<MID>"}`.
//!
//! Enforced as documented: the comment must be on the token's account
//! ([`FakeGraph::add_comment`]); one message per comment; within 7 days of the comment; text
//! only (1 to 1000 bytes), nothing else in `recipient` and no `reply_to`. Refusals use the
//! codes the Graph API reference lists for the messages edge ("Page Messages", errors):
//! 10900 "Activity already replied to" for a second reply, 10903 "This user cant reply to
//! this activity" after the 7 days.
//!
//! A comment on a live video ([`FakeGraph::add_live_comment`], a `live_comments` webhook)
//! takes its private reply only while the broadcast lasts (the same guide: "excepting
//! Instagram Live, where replies can only be sent during the live broadcast"); after
//! [`FakeGraph::end_broadcast`] the fake refuses it with 10903 as well (Meta documents no
//! code of its own for that case).

use serde_json::{json, Value};

use super::{invalid_parameter, json_answer, meta_error, no_such_object, Answer, FakeGraph};
use super::{now_secs, SentMessage, State};

/// How long after the comment Meta accepts its private reply.
const REPLY_WINDOW_SECS: u64 = 7 * 24 * 3600;

/// A comment on one of an account's posts.
#[derive(Debug, Clone)]
pub(super) struct FakeComment {
    account_id: String,
    commenter: String,
    created_at: u64,
    replied: bool,
    /// The live video it was made on, for a live comment.
    live_media: Option<String>,
    /// The live video's broadcast ended.
    broadcast_over: bool,
}

impl FakeGraph {
    /// `commenter` (IGSID) commented `comment_id` on `account_id`'s media `age_secs` ago: the
    /// comment a `comments` webhook names, which takes one private reply.
    pub fn add_comment(&self, account_id: &str, comment_id: &str, commenter: &str, age_secs: u64) {
        self.state().comments.insert(
            comment_id.to_owned(),
            FakeComment {
                account_id: account_id.to_owned(),
                commenter: commenter.to_owned(),
                created_at: now_secs().saturating_sub(age_secs),
                replied: false,
                live_media: None,
                broadcast_over: false,
            },
        );
    }

    /// `commenter` commented `comment_id` on `account_id`'s live video `media_id` during its
    /// broadcast (a `live_comments` webhook): it takes a private reply until
    /// [`FakeGraph::end_broadcast`].
    pub fn add_live_comment(
        &self,
        account_id: &str,
        media_id: &str,
        comment_id: &str,
        commenter: &str,
    ) {
        self.add_comment(account_id, comment_id, commenter, 0);
        if let Some(c) = self.state().comments.get_mut(comment_id) {
            c.live_media = Some(media_id.to_owned());
        }
    }

    /// The live video `media_id`'s broadcast ended: its comments take no private reply.
    pub fn end_broadcast(&self, media_id: &str) {
        for c in self.state().comments.values_mut() {
            if c.live_media.as_deref() == Some(media_id) {
                c.broadcast_over = true;
            }
        }
    }

    /// The private replies the fake accepted.
    pub fn private_replies(&self) -> Vec<SentMessage> {
        self.state()
            .sent
            .iter()
            .filter(|m| m.body["recipient"].get("comment_id").is_some())
            .cloned()
            .collect()
    }
}

/// A send whose `recipient` names a comment, on `account`'s endpoint (already authorised).
pub(super) fn private_reply(
    s: &mut State,
    path: &str,
    account: &str,
    bearer: Option<&str>,
    body: Value,
) -> Answer {
    let recipient = body["recipient"].as_object();
    if recipient.is_none_or(|r| r.len() != 1) {
        return invalid_parameter("recipient takes comment_id alone");
    }
    let Some(comment_id) = body["recipient"]["comment_id"].as_str().map(str::to_owned) else {
        return invalid_parameter("recipient.comment_id must be a string");
    };
    if body.get("reply_to").is_some() {
        return invalid_parameter("a private reply cannot reply to a message");
    }
    let message = body["message"].as_object();
    let text = body["message"]["text"].as_str();
    if message.is_none_or(|m| m.len() != 1) || text.is_none_or(|t| t.is_empty() || t.len() > 1000) {
        return invalid_parameter("a private reply is message.text alone, 1 to 1000 bytes");
    }
    let Some(comment) = s
        .comments
        .get_mut(&comment_id)
        .filter(|c| c.account_id == account)
    else {
        return no_such_object(&comment_id);
    };
    if comment.replied {
        return meta_error(
            400,
            10900,
            None,
            "OAuthException",
            "(#10900) Activity already replied to",
        );
    }
    if comment.broadcast_over || now_secs().saturating_sub(comment.created_at) >= REPLY_WINDOW_SECS
    {
        return meta_error(
            400,
            10903,
            None,
            "OAuthException",
            "(#10903) This user cant reply to this activity",
        );
    }
    comment.replied = true;
    let recipient = comment.commenter.clone();
    s.seq += 1;
    let id = format!("aWdfZAG1faXRlbToxOlBSSVZBVEU{:012}", s.seq);
    s.sent.push(SentMessage {
        product: "instagram",
        path: path.to_owned(),
        bearer: bearer.map(str::to_owned),
        body,
        id: id.clone(),
    });
    json_answer(200, &json!({"recipient_id": recipient, "message_id": id}))
}
