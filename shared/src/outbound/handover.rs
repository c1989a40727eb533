//! Before an operator's reply on Instagram: when Meta's agent (or another app) holds the
//! conversation under the Handover Protocol, take it back as Meta documents
//! (`take_thread_control`), so the reply is ours to send and the agent stops answering
//! (decision 0051). A refused take is not fatal: the send goes on, and Meta's own answer to
//! it tells the operator. On WhatsApp the reply itself takes the conversation back
//! (decision 0065): it is recorded after the send.

use std::sync::Arc;

use super::config::OutboundClients;
use crate::conversation::handover::{Handovers, ThreadOwner};
use crate::conversation::ConversationMeta;
use crate::graph::InstagramSender;
use crate::meta::CustomerId;
use crate::secret::Secret;
use crate::store::{StoreError, TableStore};

/// What the operators' app says when taking a conversation back.
const METADATA: &str = "An operator replied from Bitrix24";

/// Takes the conversation back when another app holds it; true when it did.
pub(super) async fn take_back(
    store: &Arc<dyn TableStore>,
    clients: &OutboundClients,
    meta: &ConversationMeta,
    tenant: &crate::ids::TenantId,
    sender: &InstagramSender,
    token: &Secret,
) -> Result<bool, StoreError> {
    let CustomerId::Instagram(recipient) = &meta.customer.id else {
        return Ok(false);
    };
    let handovers = Handovers::new(tenant.clone(), store.clone());
    let Some(owner) = handovers.owner(&meta.id).await? else {
        return Ok(false);
    };
    if owner.ours {
        return Ok(false);
    }
    let path_owner = match sender {
        InstagramSender::Me => "me".to_owned(),
        InstagramSender::Page(page) => page.as_str().to_owned(),
    };
    match clients
        .for_instagram(sender)
        .take_thread_control(&path_owner, recipient.as_str(), METADATA, token)
        .await
    {
        Ok(()) => {
            handovers
                .record(
                    &meta.id,
                    &ThreadOwner {
                        app_id: None,
                        ours: true,
                        since: crate::clock::now_secs(),
                    },
                )
                .await?;
            tracing::info!("conversation taken back from another app before the reply");
            Ok(true)
        }
        Err(e) => {
            tracing::warn!(
                error = e.kind(),
                "taking the conversation back failed; sending anyway"
            );
            Ok(false)
        }
    }
}

/// After an operator's (or the API's) reply went out on WhatsApp while Meta's Business Agent
/// (or another responder) held the conversation: Conversation Routing gives the conversation
/// to the escalation partner that sends a service message ("Standby webhooks": "if your app
/// sends a service message while observing a conversation, it will take over as the active
/// handler"; decision 0065), so no call is needed, and the conversation is recorded as the
/// operators' again. Had Meta refused the send, nothing went out and nothing is recorded.
pub(super) async fn answered_on_whatsapp(
    store: &Arc<dyn TableStore>,
    meta: &ConversationMeta,
    tenant: &crate::ids::TenantId,
) -> Result<(), StoreError> {
    let handovers = Handovers::new(tenant.clone(), store.clone());
    if handovers.owner(&meta.id).await?.is_none_or(|o| o.ours) {
        return Ok(());
    }
    handovers
        .record(
            &meta.id,
            &ThreadOwner {
                app_id: None,
                ours: true,
                since: crate::clock::now_secs(),
            },
        )
        .await?;
    tracing::info!("the reply took the conversation back from Meta's agent");
    Ok(())
}
