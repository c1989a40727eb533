//! WhatsApp message templates: reading a WhatsApp Business Account's templates, and sending a
//! marketing template through the Marketing Messages API.
//!
//! - Listing (Meta, "Message Templates API", `GET /{version}/{waba-id}/message_templates`;
//!   "Template management > Get templates"): `fields=id,name,language,status,category,
//!   parameter_format,components`, `limit`, paged by `paging.cursors.after` while
//!   `paging.next` is present. Answer: `{"data": [{"id", "name", "language", "status",
//!   "category", "parameter_format": "POSITIONAL" | "NAMED", "components": [{"type":
//!   "HEADER" | "BODY" | "FOOTER" | "BUTTONS", "format", "text", "example", "buttons"}]}],
//!   "paging": {"cursors": {"before", "after"}, "next"}}`.
//! - Marketing (Meta, "Marketing Messages API for WhatsApp > Send Marketing Messages"): `POST
//!   /{version}/{phone-number-id}/marketing_messages` with the same body as a template message
//!   sent through `/messages` (`messaging_product`, `recipient_type`, `to` | `recipient`,
//!   `type: "template"`, `template`); the answer has the same shape as a Cloud API send.

use serde::Deserialize;
use serde_json::Value;

use super::whatsapp::{WhatsAppContent, WhatsAppMessage, WhatsAppSent};
use super::{GraphClient, GraphError};
use crate::ids::{PhoneNumberId, WabaId};
use crate::secret::Secret;

/// Most pages of templates read in one listing (250 templates a page: 25,000 templates, far
/// over Meta's per-account limit).
pub const MAX_TEMPLATE_PAGES: usize = 100;
const PAGE_SIZE: &str = "250";
const TEMPLATE_FIELDS: &str = "id,name,language,status,category,parameter_format,components";

/// One template as `message_templates` describes it.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct MessageTemplate {
    #[serde(default)]
    pub id: String,
    pub name: String,
    pub language: String,
    /// `APPROVED`, `PENDING`, `REJECTED`, `PAUSED`, `DISABLED`, ...
    #[serde(default)]
    pub status: String,
    /// `MARKETING`, `UTILITY` or `AUTHENTICATION`.
    #[serde(default)]
    pub category: String,
    /// `POSITIONAL` (`{{1}}`) or `NAMED` (`{{first_name}}`); absent means positional.
    #[serde(default)]
    pub parameter_format: Option<String>,
    #[serde(default)]
    pub components: Vec<Value>,
}

#[derive(Deserialize)]
struct Cursors {
    #[serde(default)]
    after: Option<String>,
}

#[derive(Deserialize)]
struct Paging {
    #[serde(default)]
    cursors: Option<Cursors>,
    #[serde(default)]
    next: Option<String>,
}

#[derive(Deserialize)]
struct TemplatePage {
    #[serde(default)]
    data: Vec<MessageTemplate>,
    #[serde(default)]
    paging: Option<Paging>,
}

impl GraphClient {
    /// Every template of `waba` (all pages, at most [`MAX_TEMPLATE_PAGES`]), whatever its
    /// status, read with the business token.
    pub async fn message_templates(
        &self,
        waba: &WabaId,
        access_token: &Secret,
    ) -> Result<Vec<MessageTemplate>, GraphError> {
        let path = format!("{}/message_templates", waba.as_str());
        let mut templates = Vec::new();
        let mut after: Option<String> = None;
        for _ in 0..MAX_TEMPLATE_PAGES {
            let mut query = vec![("fields", TEMPLATE_FIELDS), ("limit", PAGE_SIZE)];
            if let Some(a) = after.as_deref() {
                query.push(("after", a));
            }
            let page: TemplatePage = self.get_json(&path, &query, access_token).await?;
            templates.extend(page.data);
            after = match page.paging {
                Some(Paging {
                    next: Some(_),
                    cursors: Some(Cursors { after: Some(a) }),
                }) => Some(a),
                _ => return Ok(templates),
            };
        }
        Err(GraphError::Protocol(format!(
            "more than {MAX_TEMPLATE_PAGES} pages of message templates"
        )))
    }

    /// Sends a marketing template from `from` through the Marketing Messages API. Only
    /// template messages go this way; anything else is refused before a request.
    pub async fn send_whatsapp_marketing(
        &self,
        from: &PhoneNumberId,
        message: &WhatsAppMessage,
        access_token: &Secret,
    ) -> Result<WhatsAppSent, GraphError> {
        if !matches!(message.content, WhatsAppContent::Template(_)) {
            return Err(GraphError::Refused(
                "the Marketing Messages API sends templates only".into(),
            ));
        }
        let path = format!("{}/marketing_messages", from.as_str());
        let sent: WhatsAppSent = self
            .post_json(&path, &message.to_json(), access_token)
            .await?;
        if sent.message_id().is_none() {
            return Err(GraphError::Protocol(
                "send answered without a message id".into(),
            ));
        }
        Ok(sent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_meta_documented_template() {
        // "Template management > Get templates", example response (abridged).
        let page: TemplatePage = serde_json::from_value(json!({
            "data": [{
                "name": "reservation_confirmation",
                "parameter_format": "NAMED",
                "components": [
                    {"type": "HEADER", "format": "IMAGE"},
                    {"type": "BODY", "text": "Your reservation for {{number_of_guests}} is confirmed."}
                ],
                "language": "en_US",
                "status": "APPROVED",
                "category": "UTILITY",
                "id": "546151681022936"
            }],
            "paging": {"cursors": {"before": "MAZDZD", "after": "MjQZD"}}
        }))
        .unwrap();
        assert_eq!(page.data[0].name, "reservation_confirmation");
        assert_eq!(page.data[0].parameter_format.as_deref(), Some("NAMED"));
        assert_eq!(page.data[0].components.len(), 2);
        assert!(page.paging.unwrap().next.is_none());
    }
}
