//! Instagram customers' names and pictures (issue 16 item 12). An Instagram webhook names
//! the customer by IGSID only; the User Profile API gives their name, username and picture,
//! for a user who has messaged the account (which every customer we sync has). The sync worker
//! asks once per customer and refresh interval (default a day: names change, and the
//! picture's URL expires), stores the answer encrypted on the conversation
//! (`Conversations::set_profile`), and the Bitrix24 user carries it (`chat::crm_user`):
//! Bitrix24 updates its user, and downloads the picture, whenever those fields change.
//! A refusal (no consent, a token that no longer works) is stored as an empty profile with
//! its time, so it is asked again only after the interval; the message is synced regardless.

use std::time::Duration;

use crate::clock::now_secs;
use crate::conversation::{ConversationMeta, Conversations, CustomerProfile};
use crate::graph::{GraphClient, InstagramSender};
use crate::ids::InstagramAccountId;
use crate::meta::CustomerId;
use crate::tenant::{ChannelKind, ChannelRef, TenantScope};

/// How long a fetched profile is shown before it is asked again.
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(24 * 3600);

/// Reads customers' profiles from the channel. Cheap to clone.
#[derive(Clone, Debug)]
pub struct CustomerProfiles {
    /// `graph.facebook.com`: accounts linked to a Page.
    graph: GraphClient,
    /// `graph.instagram.com`: accounts connected with Instagram Login.
    instagram: GraphClient,
    refresh: Duration,
}

impl CustomerProfiles {
    pub fn new(graph: GraphClient, instagram: GraphClient) -> Self {
        CustomerProfiles {
            graph,
            instagram,
            refresh: DEFAULT_REFRESH,
        }
    }

    pub fn with_refresh(mut self, refresh: Duration) -> Self {
        self.refresh = refresh;
        self
    }

    /// `meta` with its customer's profile current: the stored one while it is fresh, else
    /// asked of the channel (and stored). Not Instagram, or asking failed: `meta` as it was.
    pub async fn refreshed(
        &self,
        scope: &TenantScope,
        conversations: &Conversations,
        meta: &ConversationMeta,
    ) -> ConversationMeta {
        let CustomerId::Instagram(user) = &meta.customer.id else {
            return meta.clone();
        };
        // The account's own mentions chat (decision 0067) has no customer to ask about.
        if crate::conversation::is_mentions_chat(&meta.account, &meta.customer.id) {
            return meta.clone();
        }
        let now = now_secs();
        let fresh = |p: &CustomerProfile| now - p.fetched_at < self.refresh.as_secs() as i64;
        if meta.profile.as_ref().is_some_and(fresh) {
            return meta.clone();
        }
        let channel = ChannelRef::of(&meta.account);
        let token = match scope.channel_secret(&channel, "access_token").await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, "channel token unreadable: profile not refreshed");
                return meta.clone();
            }
        };
        let page = match scope.channels().await {
            Ok(channels) => channels
                .into_iter()
                .find(|c| c.kind == ChannelKind::Instagram && c.id == meta.account.id())
                .and_then(|c| c.details.get("page_id").cloned())
                .and_then(|p| InstagramAccountId::parse(&p).ok()),
            Err(_) => None,
        };
        let client = match page.map_or(InstagramSender::Me, InstagramSender::Page) {
            InstagramSender::Me => &self.instagram,
            InstagramSender::Page(_) => &self.graph,
        };
        let profile = match client.instagram_user_profile(user, &token).await {
            Ok(p) => CustomerProfile {
                name: p.name.filter(|n| !n.trim().is_empty()),
                username: p.username.filter(|n| !n.trim().is_empty()),
                picture_url: p
                    .profile_pic
                    .filter(|u| u.starts_with("https://") || u.starts_with("http://")),
                fetched_at: now,
            },
            Err(e) => {
                tracing::warn!(kind = e.kind(), code = ?e.code(), "Instagram profile not available");
                CustomerProfile {
                    fetched_at: now,
                    ..meta.profile.clone().unwrap_or_default()
                }
            }
        };
        if let Err(e) = conversations.set_profile(&meta.id, &profile).await {
            tracing::warn!(error = %e, "could not store the customer's profile");
        }
        ConversationMeta {
            profile: Some(profile),
            ..meta.clone()
        }
    }
}
