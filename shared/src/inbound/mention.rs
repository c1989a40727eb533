//! Instagram @mentions of the business reach the operator (decision 0067).
//!
//! A `mentions` webhook names a media and, for a mention in a comment, the comment; not who
//! wrote it (no Instagram-scoped id), so it belongs to no customer's conversation. Each
//! Instagram account has one conversation for its mentions instead: its counterpart is the
//! account itself (its own id in the customer's place, which no customer's Instagram-scoped
//! id equals), shown in Bitrix24 as the chat "Instagram mentions". Each mention is a message
//! there with what the Graph API tells of it ([`crate::graph`]'s mention reads): the text,
//! the author of a caption, and a link. A read that fails leaves the ids, so the mention
//! reaches the operator anyway. Nothing can be sent from that chat (the outbound worker
//! refuses, [`crate::conversation::is_mentions_chat`]).

use crate::graph::{GraphClient, InstagramSender};
use crate::ids::InstagramAccountId;
use crate::meta::Content;
use crate::tenant::{ChannelKind, ChannelRef, TenantScope};

/// The mention as the operator sees it: read by `reader` when there is one (and the tenant),
/// else its ids.
pub(super) async fn content(
    reader: Option<&MentionReader>,
    scope: Option<&TenantScope>,
    account: &InstagramAccountId,
    media_id: &str,
    comment_id: &Option<String>,
) -> Content {
    match (reader, scope) {
        (Some(reader), Some(scope)) => {
            reader
                .read(scope, account, media_id, comment_id.as_deref())
                .await
        }
        _ => Content::Mention {
            media_id: media_id.to_owned(),
            comment_id: comment_id.clone(),
            text: None,
            username: None,
            link: None,
        },
    }
}

/// Reads mentions with the account's own token, on the host its connection uses.
#[derive(Clone, Debug)]
pub struct MentionReader {
    /// `graph.facebook.com`: accounts linked to a Page.
    graph: GraphClient,
    /// `graph.instagram.com`: accounts connected with Instagram Login.
    instagram: GraphClient,
}

impl MentionReader {
    pub fn new(graph: GraphClient, instagram: GraphClient) -> Self {
        MentionReader { graph, instagram }
    }

    /// The mention as the operator sees it: what the Graph API tells of it, or the ids.
    pub async fn read(
        &self,
        scope: &TenantScope,
        account: &InstagramAccountId,
        media_id: &str,
        comment_id: Option<&str>,
    ) -> Content {
        let mut content = Content::Mention {
            media_id: media_id.to_owned(),
            comment_id: comment_id.map(str::to_owned),
            text: None,
            username: None,
            link: None,
        };
        let channel = ChannelRef::Instagram(account.clone());
        let token = match scope.channel_secret(&channel, "access_token").await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, "channel token unreadable: mention shown by its ids");
                return content;
            }
        };
        let page = match scope.channels().await {
            Ok(channels) => channels
                .into_iter()
                .find(|c| c.kind == ChannelKind::Instagram && c.id == account.as_str())
                .and_then(|c| c.details.get("page_id").cloned())
                .and_then(|p| InstagramAccountId::parse(&p).ok()),
            Err(_) => None,
        };
        let client = match page.map_or(InstagramSender::Me, InstagramSender::Page) {
            InstagramSender::Me => &self.instagram,
            InstagramSender::Page(_) => &self.graph,
        };
        let Content::Mention {
            text,
            username,
            link,
            ..
        } = &mut content
        else {
            return content;
        };
        let read = match comment_id {
            Some(c) => client
                .instagram_mentioned_comment(account.as_str(), c, &token)
                .await
                .map(|m| {
                    *text = m.text.filter(|t| !t.trim().is_empty());
                    *link = m.media.and_then(|m| m.permalink);
                }),
            None => client
                .instagram_mentioned_media(account.as_str(), media_id, &token)
                .await
                .map(|m| {
                    *text = m.caption.filter(|t| !t.trim().is_empty());
                    *username = m.username.filter(|u| !u.trim().is_empty());
                    *link = m.media_url;
                }),
        };
        if let Err(e) = read {
            tracing::warn!(kind = e.kind(), code = ?e.code(), "mention not readable: shown by its ids");
        }
        content
    }
}
