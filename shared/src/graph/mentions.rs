//! Reading an Instagram @mention of the business (decision 0067). The `mentions` webhook
//! carries ids only (`media_id`, and `comment_id` for a mention in a comment); what was
//! written is read from the IG User node with the ids "included in the Webhook notification
//! payload" (Meta, Instagram Graph API reference, IG User "Mentioned Comment" and "Mentioned
//! Media"):
//!
//! - in a comment: `GET /{version}/{ig-user-id}?fields=mentioned_comment.comment_id(
//!   {comment-id}){id,text,timestamp,media{id,permalink}}` answers `{"mentioned_comment":
//!   {"id", "text", "timestamp", "media": {"id", "permalink"}}, "id": "<ig-user-id>"}` (the
//!   comment's documented fields are `id`, `like_count`, `media`, `text`, `timestamp`; `media`
//!   takes IG Media fields by field expansion, `permalink` among them; who wrote it is not
//!   among them);
//! - in a caption: `GET /{version}/{ig-user-id}?fields=mentioned_media.media_id({media-id})
//!   {id,caption,username,timestamp,media_url}` answers `{"mentioned_media": {"id",
//!   "caption", "username", "timestamp", "media_url"}, "id"}` (the documented fields are
//!   `caption`, `comments`, `comments_count`, `id`, `like_count`, `media_type`, `media_url`,
//!   `owner`, `timestamp`, `username`: no permalink, so the link is the media's URL).
//!
//! The reference documents these reads on `graph.facebook.com` with a token of an account
//! linked to a Page (Facebook Login). The Instagram Login guide to mentions documents the
//! webhook and the reply (`POST /<IG_ID>/mentions`) on `graph.instagram.com` but no read of
//! one; the same read is asked there, and a refusal leaves the operator the ids.

use serde::Deserialize;

use super::{GraphClient, GraphError};
use crate::secret::Secret;

/// A comment the account was @mentioned in.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct MentionedComment {
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub timestamp: Option<String>,
    #[serde(default)]
    pub media: Option<MentionedCommentMedia>,
}

/// The media a mentioning comment was made on (field expansion of `media`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct MentionedCommentMedia {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub permalink: Option<String>,
}

/// A media whose caption @mentions the account.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct MentionedMedia {
    #[serde(default)]
    pub caption: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub timestamp: Option<String>,
    #[serde(default)]
    pub media_url: Option<String>,
}

#[derive(Deserialize)]
struct CommentAnswer {
    mentioned_comment: Option<MentionedComment>,
}

#[derive(Deserialize)]
struct MediaAnswer {
    mentioned_media: Option<MentionedMedia>,
}

/// The `fields` of the comment read.
pub fn mentioned_comment_fields(comment_id: &str) -> String {
    format!("mentioned_comment.comment_id({comment_id}){{id,text,timestamp,media{{id,permalink}}}}")
}

/// The `fields` of the caption read.
pub fn mentioned_media_fields(media_id: &str) -> String {
    format!("mentioned_media.media_id({media_id}){{id,caption,username,timestamp,media_url}}")
}

/// Ids go into `fields` as they are: only digits are taken, so none can change the query.
fn digits(id: &str) -> Result<&str, GraphError> {
    if !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) {
        Ok(id)
    } else {
        Err(GraphError::Refused("Instagram ids are digits".into()))
    }
}

impl GraphClient {
    /// The comment `comment_id` in which `ig_user` (the account's id) was @mentioned. Call
    /// it on the client whose host fits the account (see [`GraphClient::send_instagram`]).
    pub async fn instagram_mentioned_comment(
        &self,
        ig_user: &str,
        comment_id: &str,
        access_token: &Secret,
    ) -> Result<MentionedComment, GraphError> {
        let fields = mentioned_comment_fields(digits(comment_id)?);
        let answer: CommentAnswer = self
            .get_json(digits(ig_user)?, &[("fields", &fields)], access_token)
            .await?;
        answer
            .mentioned_comment
            .ok_or_else(|| GraphError::Protocol("no mentioned_comment in the answer".into()))
    }

    /// The media `media_id` whose caption @mentions `ig_user`.
    pub async fn instagram_mentioned_media(
        &self,
        ig_user: &str,
        media_id: &str,
        access_token: &Secret,
    ) -> Result<MentionedMedia, GraphError> {
        let fields = mentioned_media_fields(digits(media_id)?);
        let answer: MediaAnswer = self
            .get_json(digits(ig_user)?, &[("fields", &fields)], access_token)
            .await?;
        answer
            .mentioned_media
            .ok_or_else(|| GraphError::Protocol("no mentioned_media in the answer".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_name_the_ids_and_expand_the_media() {
        assert_eq!(
            mentioned_comment_fields("17894227972186120"),
            "mentioned_comment.comment_id(17894227972186120){id,text,timestamp,media{id,permalink}}"
        );
        assert_eq!(
            mentioned_media_fields("17918195224117851"),
            "mentioned_media.media_id(17918195224117851){id,caption,username,timestamp,media_url}"
        );
        assert!(digits("1),x{").is_err());
    }
}
