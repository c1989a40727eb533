//! How a stored message becomes the Bitrix24 message the sync worker posts: its text and
//! labels, the files the flusher links when the post goes out (decision 0048), and the
//! manager a WhatsApp Business app echo is posted as (decision 0052).

use serde_json::Value;

use super::{SyncError, SyncWorker};
use crate::bitrix::{imconnector, CrmChat, OutgoingCrmMessage};
use crate::conversation::{ConversationMeta, Origin, StoredMessage};
use crate::crm_sync::chat::{chat_name, crm_user, media_of};
use crate::crm_sync::outbox::FileToLink;
use crate::crm_sync::SyncJob;
use crate::ids::TenantId;
use crate::meta::{AccountRef, Content};
use crate::tenant::ChannelKind;

impl SyncWorker {
    /// The Bitrix24 message for a stored message.
    pub(super) async fn crm_message(
        &self,
        tenant: &TenantId,
        meta: &ConversationMeta,
        message: &StoredMessage,
        content: Option<&Content>,
        text_override: Option<String>,
    ) -> OutgoingCrmMessage {
        // Files are linked when the post goes out, not here (decision 0048): `files_to_link`.
        let files = Vec::new();
        let mut text = text_override.unwrap_or_else(|| {
            content
                .map(Content::text_for_crm)
                .unwrap_or_else(|| "[message deleted]".into())
        });
        if message.origin == Origin::BusinessApp && self.echo_author(tenant, meta).await.is_none() {
            let app = match meta.account.channel() {
                ChannelKind::Instagram => "the Instagram app",
                _ => "the WhatsApp Business app",
            };
            text = format!("[sent by the business from {app}] {text}");
        }
        if message.origin == Origin::Agent {
            text = format!("[sent by Meta's Business Agent] {text}");
        }
        OutgoingCrmMessage {
            user: crm_user(meta),
            chat: CrmChat {
                id: meta.id.as_str().to_owned(),
                name: Some(chat_name(meta)),
                url: None,
            },
            message_id: message.provider_message_id.clone(),
            date: message.at_ms / 1000,
            text: (!text.is_empty()).then_some(text),
            files,
            disable_crm: false,
        }
    }

    /// The media of `content` the flusher links just before posting (decision 0048); none
    /// without a media linker.
    pub(super) fn files_to_link(
        &self,
        meta: &ConversationMeta,
        content: Option<&Content>,
    ) -> Vec<FileToLink> {
        match (&self.media, content) {
            (Some(_), Some(content)) => media_of(content)
                .into_iter()
                .map(|media| FileToLink {
                    account: meta.account.clone(),
                    conversation: meta.id.as_str().to_owned(),
                    media: media.clone(),
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The Bitrix24 manager a WhatsApp Business app echo is posted as, when the tenant chose
    /// one for the number (decision 0052). A store failure reads as none: the echo is then
    /// posted labelled, on the customer's side, rather than not at all.
    async fn echo_author(&self, tenant: &TenantId, meta: &ConversationMeta) -> Option<u64> {
        let AccountRef::WhatsApp(number) = &meta.account else {
            return None;
        };
        crate::coexistence::Coexistence::new(self.store.clone())
            .settings(tenant, number)
            .await
            .ok()?
            .echo_author_id
    }

    /// `element`, posted on behalf of the echo author when `message` is an echo of the
    /// WhatsApp Business app and the tenant chose one.
    pub(super) async fn as_echo_author(
        &self,
        job: &SyncJob,
        meta: &ConversationMeta,
        message: &StoredMessage,
        mut element: Value,
    ) -> Result<Value, SyncError> {
        if matches!(message.origin, Origin::BusinessApp | Origin::Agent) {
            if let Some(author) = self.echo_author(&job.tenant_id, meta).await {
                imconnector::post_as_manager(&mut element, author);
            }
        }
        Ok(element)
    }
}
