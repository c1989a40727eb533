//! Read receipts and the typing indicator for an operator's reply (decision 0044).
//!
//! Bitrix24 tells a connector nothing when an operator merely reads a chat: its imconnector
//! events are dialog start and finish, message add, update and delete, line and status
//! deletion (`api-reference/imopenlines/imconnector/events`). The first signal that an
//! operator has read the customer is their answer, `OnImConnectorMessageAdd`. So when the
//! send worker takes an operator's reply, before its first part goes out, it marks the
//! customer's newest message read and shows the business typing:
//! - WhatsApp: one call, `status: read` with `typing_indicator` (ticks turn blue; the typing
//!   bubble lasts until the reply arrives or 25 seconds);
//! - Instagram: `mark_seen`, then `typing_on` (the reply itself ends it).
//!
//! Both are courtesy: a failure is logged and never holds the reply back or retries the job.
//! Replies sent through the public API are the business's systems, not a person reading, so
//! they do not mark anything read.

use super::config::OutboundClients;
use crate::conversation::{ConversationMeta, Conversations};
use crate::graph::{InstagramSender, InstagramSenderAction};
use crate::meta::{AccountRef, CustomerId};
use crate::secret::Secret;

/// How far back to look for the customer's newest message: the operator answers a recent
/// one, and a long run of operator messages since means it was marked read already.
const LOOK_BACK: usize = 20;

/// Marks the customer's newest message read and shows typing, best effort.
pub(super) async fn acknowledge(
    clients: &OutboundClients,
    conversations: &Conversations,
    meta: &ConversationMeta,
    token: &Secret,
    instagram_sender: &InstagramSender,
) {
    let outcome = match &meta.account {
        AccountRef::WhatsApp(number) => {
            let latest = match conversations
                .latest_from_customer(&meta.id, LOOK_BACK)
                .await
            {
                Ok(latest) => latest,
                Err(e) => {
                    tracing::warn!(error = %e, "reading the customer's newest message failed; no read receipt");
                    return;
                }
            };
            let Some(latest) = latest else {
                return;
            };
            clients
                .graph
                .mark_whatsapp_read(number, &latest.provider_message_id, true, token)
                .await
        }
        AccountRef::Instagram(_) => {
            let CustomerId::Instagram(recipient) = &meta.customer.id else {
                return;
            };
            let client = clients.for_instagram(instagram_sender);
            let mut result = Ok(());
            for action in [
                InstagramSenderAction::MarkSeen,
                InstagramSenderAction::TypingOn,
            ] {
                result = client
                    .instagram_sender_action(instagram_sender, recipient, action, token)
                    .await;
                if result.is_err() {
                    break;
                }
            }
            result
        }
    };
    match outcome {
        Ok(()) => tracing::debug!(conversation = %meta.id, "read receipt and typing shown"),
        // Kind and code only: Meta's message text can echo what was sent.
        Err(e) => tracing::info!(
            conversation = %meta.id,
            kind = e.kind(),
            code = ?e.code(),
            "read receipt not shown; the reply goes out anyway"
        ),
    }
}
