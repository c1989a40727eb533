//! An operator's quote becomes the reply context of the send (issue 16 item 11). Bitrix24
//! puts a quoted message at the start of the operator's reply as its "full quote" block
//! (`bitrix::quote`): the author and time, then the quoted text. `OnImConnectorMessageAdd`
//! carries no id of the quoted message (b24restdocs, `on-im-connector-message-add.md`: `im`,
//! `message.text`, `chat`), so the quoted text is matched against the conversation's recent
//! messages; the one it names is answered with WhatsApp's `context.message_id` or Instagram's
//! `reply_to.mid`, and the block is taken out of the text (the customer's app shows the quoted
//! message itself). A quote that matches nothing stays in the text, as a quote.

use crate::bitrix::quote::leading_quote;
use crate::conversation::{ConversationError, ConversationId, Conversations, StoredMessage};
use crate::meta::Content;

/// How far back a quoted message is looked for.
pub const QUOTE_LOOKBACK: usize = 100;

/// The provider's id of the message `text` quotes, and the text without the quote; None when
/// `text` quotes nothing we sent or received.
pub async fn quoted_message(
    conversations: &Conversations,
    conversation: &ConversationId,
    text: &str,
) -> Result<Option<(String, String)>, ConversationError> {
    let Some(quote) = leading_quote(text) else {
        return Ok(None);
    };
    if quote.quoted.is_empty() {
        return Ok(None);
    }
    let recent = conversations.recent(conversation, QUOTE_LOOKBACK).await?;
    Ok(recent
        .iter()
        .find(|m| quotes(&quote.quoted, m))
        .and_then(provider_id)
        .map(|id| (id, quote.rest)))
}

/// Whether `quoted` is what Bitrix24 showed for `message`: its text, or the end of it (a
/// customer's reply is shown under its own quote, which the operator's quote repeats).
fn quotes(quoted: &str, message: &StoredMessage) -> bool {
    let Some(shown) = message.content.as_ref().map(Content::text_for_crm) else {
        return false;
    };
    let norm = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let (quoted, shown) = (norm(quoted), norm(&shown));
    !shown.is_empty() && (quoted == shown || quoted.ends_with(&format!(" {shown}")))
}

/// The id Meta knows the message by: a customer's own id, or the one Meta gave a message we
/// sent. A message not sent yet has none.
fn provider_id(message: &StoredMessage) -> Option<String> {
    match &message.sent_provider_id {
        Some(id) => Some(id.clone()),
        None if message.origin == crate::conversation::Origin::Customer => {
            Some(message.provider_message_id.clone())
        }
        None => None,
    }
}
