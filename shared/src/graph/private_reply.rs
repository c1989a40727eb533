//! Instagram private replies: one message to a person who commented on the business's post,
//! reel, story or ad (Meta, "Instagram Platform > Send a Private Reply to a Commenter").
//!
//! `POST /{version}/{ig-id}/messages` (or `me/messages`) on `graph.instagram.com` with the
//! Instagram User access token; `/{page-id}/messages` on `graph.facebook.com` with a Page
//! token for an account linked to a Page ("Messenger Platform > Instagram > Private
//! Replies"). Body: `{"recipient": {"comment_id": "<COMMENT_ID>"}, "message": {"text":
//! "<TEXT>"}}`, text only. Answer: `{"recipient_id": "<IGSID>", "message_id": "<MID>"}`.
//!
//! Limits Meta documents: one message per comment, within 7 days of the comment (during the
//! broadcast for a Live); the reply lands in the commenter's inbox, or their requests
//! folder when they do not follow the account.

use serde_json::{json, Value};

use super::{GraphClient, GraphError, InstagramSender, InstagramSent};
use crate::secret::Secret;

/// One private reply to a comment.
#[derive(Clone, PartialEq, Eq)]
pub struct InstagramPrivateReply {
    pub comment_id: String,
    pub text: String,
}

impl std::fmt::Debug for InstagramPrivateReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstagramPrivateReply")
            .field("comment_id", &self.comment_id)
            .finish_non_exhaustive()
    }
}

impl InstagramPrivateReply {
    /// The request body, as the private replies guide documents it.
    pub fn to_json(&self) -> Value {
        json!({
            "recipient": { "comment_id": self.comment_id },
            "message": { "text": self.text },
        })
    }
}

impl GraphClient {
    /// Sends `reply` through `sender`'s endpoint (on the client whose host fits it, as for
    /// [`GraphClient::send_instagram`]).
    pub async fn send_instagram_private_reply(
        &self,
        sender: &InstagramSender,
        reply: &InstagramPrivateReply,
        access_token: &Secret,
    ) -> Result<InstagramSent, GraphError> {
        let sent: InstagramSent = self
            .post_json(&sender.path(), &reply.to_json(), access_token)
            .await?;
        if sent.message_id.is_empty() {
            return Err(GraphError::Protocol(
                "private reply answered without a message id".into(),
            ));
        }
        Ok(sent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_names_the_comment_not_the_user() {
        let reply = InstagramPrivateReply {
            comment_id: "17865799348089039".into(),
            text: "Hi! It is 49 EUR.".into(),
        };
        assert_eq!(
            reply.to_json(),
            json!({
                "recipient": {"comment_id": "17865799348089039"},
                "message": {"text": "Hi! It is 49 EUR."}
            })
        );
        assert!(!format!("{reply:?}").contains("49 EUR"), "no text in logs");
    }
}
