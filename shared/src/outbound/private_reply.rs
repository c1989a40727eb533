//! How an Instagram message answers a customer's comment (decision 0062).
//!
//! A comment on the business's post does not open Instagram's messaging window. Meta lets
//! the business answer it once, privately, within 7 days ("Instagram Platform > Send a
//! Private Reply to a Commenter"): `recipient: {comment_id}` and a text. So:
//!
//! - inside the window, a message goes as a direct message, as always; only when the
//!   operator quoted a comment (the reply context names it) is it that comment's private
//!   reply, if the comment still takes one; otherwise the quote is dropped (a comment id is
//!   not a message Instagram can show a reply to);
//! - outside the window, the message goes as the private reply to the quoted comment, or to
//!   the customer's newest comment that still takes one; when none does, the operator reads
//!   why (answered already, or more than 7 days ago), and the customer has to write first.
//!
//! A comment on a live video (`live_comments`, decision 0067) takes its private reply only
//! during the broadcast. The webhook does not say when the broadcast ends, so the reply is
//! tried like any other; when Meta refuses it, the operator reads [`LIVE_OVER`].
//!
//! A private reply is one text of up to 1000 bytes; files and longer texts are refused
//! outside the window. The comment is claimed for the message before the send
//! ([`Conversations::claim_private_reply`]), and the send's attempt recorded like a direct
//! message's (decision 0136).

use crate::conversation::{ConversationError, Conversations, StoredComment, StoredMessage};
use crate::outbound::plan::Part;

/// How far back the conversation is searched for comments (the quote matching's span).
const COMMENTS_WITHIN: usize = 100;

/// The operator's note when every comment was answered privately already.
pub const ALREADY_ANSWERED: &str = "outside Instagram's messaging window, and the customer's \
     comment was answered privately already: Instagram allows one private reply per comment; \
     the customer must write first";
/// The operator's note when the comment is too old for a private reply.
pub const TOO_LATE: &str = "outside Instagram's messaging window, and the customer's comment \
     is more than 7 days old: Instagram accepts a private reply only within 7 days of the \
     comment; the customer must write first";
/// The operator's note when Meta refused the private reply to a live comment: the broadcast
/// is over (Meta: "excepting Instagram Live, where replies can only be sent during the live
/// broadcast"; decision 0067).
pub const LIVE_OVER: &str = "Instagram refused the private reply to the customer's comment on \
     a live video: Instagram accepts it only while the live broadcast lasts, and it has \
     ended; the customer must write first";
/// The operator's note when Meta refused a private reply as the comment's second after an
/// earlier attempt of the same message lost its answer (decision 0136): our claim on the
/// comment says no other message of ours answered it, so that attempt most likely did.
pub const EARLIER_ATTEMPT_WENT: &str = "Instagram refused to send it again because the \
     customer's comment already has its private reply: most likely our earlier attempt reached \
     the customer, but our service lost Instagram's answer to it";
/// The operator's note when the private reply would not be a single text.
pub const TEXT_ONLY: &str = "outside Instagram's messaging window: the answer to the \
     customer's comment goes as Instagram's private reply, which is one text of up to 1000 \
     bytes (no files): send the text alone";

/// How an Instagram message goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommentRoute {
    /// A direct message, its reply context as the operator quoted it.
    Direct,
    /// A direct message without the reply context (it quoted a comment).
    DirectUnquoted,
    /// The private reply to this comment.
    PrivateReply(StoredComment),
}

/// Decides how `message` goes. `window_open`: whether Instagram's window (with the human
/// agent's 7 days) allows a direct message now; `closed_reason` the note for when it does
/// not and no comment can be answered. Reads the conversation's newest messages only when
/// the window is closed or the operator quoted something. `Err`: the operator's note.
pub async fn route(
    conversations: &Conversations,
    message: &StoredMessage,
    parts: &[Part],
    window: Result<(), &str>,
    now: i64,
) -> Result<Result<CommentRoute, String>, ConversationError> {
    if window.is_ok() && message.reply_to.is_none() {
        return Ok(Ok(CommentRoute::Direct));
    }
    let comments = conversations
        .recent_comments(&message.at.conversation, COMMENTS_WITHIN)
        .await?;
    let quoted = message
        .reply_to
        .as_deref()
        .and_then(|r| comments.iter().find(|c| c.comment_id == r));
    let by = message.at.sk.as_str();
    let takes_reply = |c: &&StoredComment| c.within_reply_time(now) && c.open_to(by);
    let single_text = matches!(parts, [Part::Text(_)]);
    if let Err(reason) = window {
        let candidate = match quoted {
            Some(c) => Some(c).filter(takes_reply),
            None => comments.iter().find(takes_reply),
        };
        return Ok(match candidate {
            Some(_) if !single_text => Err(TEXT_ONLY.to_owned()),
            Some(c) => Ok(CommentRoute::PrivateReply(c.clone())),
            None => Err(match quoted.or(comments.first()) {
                Some(c) if !c.open_to(by) => ALREADY_ANSWERED.to_owned(),
                Some(c) if !c.within_reply_time(now) => TOO_LATE.to_owned(),
                _ => reason.to_owned(),
            }),
        });
    }
    Ok(Ok(match quoted {
        Some(c) if single_text && takes_reply(&c) => CommentRoute::PrivateReply(c.clone()),
        Some(_) => CommentRoute::DirectUnquoted,
        None => CommentRoute::Direct,
    }))
}
