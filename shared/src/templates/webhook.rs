//! Meta's template webhooks (WhatsApp Business Account object, `entry[].id` is the WABA id),
//! applied to every tenant copy of that WABA's templates:
//!
//! - `message_template_status_update` (Meta, "Webhooks reference >
//!   message_template_status_update"): `{"event": "APPROVED" | "REJECTED" | "PAUSED" |
//!   "DISABLED" | "DELETED" | ..., "message_template_id", "message_template_name",
//!   "message_template_language", "reason", "message_template_category"}`;
//! - `template_category_update` ("template_category_update"): `{"message_template_id",
//!   "message_template_name", "message_template_language", "previous_category",
//!   "new_category", "correct_category"}`;
//! - `message_template_quality_update` ("message_template_quality_update"):
//!   `{"previous_quality_score", "new_quality_score", "message_template_id",
//!   "message_template_name", "message_template_language"}`.
//!
//! Templates are found by id, else by name and language (Meta writes the language `en-US` in
//! webhooks and `en_US` in listings). A change for a template the copy does not have yet (a
//! newly approved one: the webhook carries no components) makes the WABA due for a full
//! sync at the next schedule.

use serde::Deserialize;
use serde_json::Value;

use super::{Template, TemplateBook, TemplateError};
use crate::ids::{TenantId, WabaId};

pub const STATUS_FIELD: &str = "message_template_status_update";
pub const CATEGORY_FIELD: &str = "template_category_update";
pub const QUALITY_FIELD: &str = "message_template_quality_update";

/// One change to a template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Status(String),
    Category(String),
    Quality(String),
}

/// A change as the webhook addressed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateUpdate {
    pub waba: WabaId,
    pub id: Option<String>,
    pub name: String,
    pub language: String,
    pub change: Change,
}

#[derive(Deserialize)]
struct Body {
    #[serde(default)]
    object: Option<String>,
    #[serde(default)]
    entry: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    #[serde(default)]
    id: Option<Value>,
    #[serde(default)]
    changes: Vec<ChangeItem>,
}

#[derive(Deserialize)]
struct ChangeItem {
    #[serde(default)]
    field: Option<String>,
    #[serde(default)]
    value: Option<Value>,
}

fn text(v: &Value, k: &str) -> Option<String> {
    match v.get(k)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The template updates in a (signature-checked) delivery; nothing for other deliveries.
pub fn updates(body: &[u8]) -> Vec<TemplateUpdate> {
    // Cheap test first: nearly every delivery is messages and statuses.
    if !body.windows(9).any(|w| w == b"template_") {
        return Vec::new();
    }
    let Ok(parsed) = serde_json::from_slice::<Body>(body) else {
        return Vec::new();
    };
    if parsed.object.as_deref() != Some(crate::meta::WHATSAPP_OBJECT) {
        return Vec::new();
    }
    let mut out = Vec::new();
    for entry in parsed.entry {
        let waba = entry.id.as_ref().and_then(|v| match v {
            Value::String(s) => WabaId::parse(s).ok(),
            Value::Number(n) => WabaId::parse(&n.to_string()).ok(),
            _ => None,
        });
        let Some(waba) = waba else { continue };
        for c in entry.changes {
            let (Some(field), Some(v)) = (c.field.as_deref(), c.value.as_ref()) else {
                continue;
            };
            let change = match field {
                STATUS_FIELD => text(v, "event").map(Change::Status),
                CATEGORY_FIELD => text(v, "new_category").map(Change::Category),
                QUALITY_FIELD => text(v, "new_quality_score").map(Change::Quality),
                _ => None,
            };
            let (Some(change), Some(name), Some(language)) = (
                change,
                text(v, "message_template_name"),
                text(v, "message_template_language"),
            ) else {
                continue;
            };
            out.push(TemplateUpdate {
                waba: waba.clone(),
                id: text(v, "message_template_id"),
                name,
                language,
                change,
            });
        }
    }
    out
}

fn same_language(a: &str, b: &str) -> bool {
    a.replace('-', "_")
        .eq_ignore_ascii_case(&b.replace('-', "_"))
}

/// Applies the delivery's template updates to every tenant tracking their WABA; the number
/// of templates changed.
pub async fn apply(book: &TemplateBook, body: &[u8]) -> Result<usize, TemplateError> {
    let mut changed = 0;
    for u in updates(body) {
        for (tenant, waba, _) in book.tracked(Some(u.waba.as_str())).await? {
            if apply_one(book, &tenant, &waba, &u).await? {
                changed += 1;
            } else {
                // Unknown here: read the whole account at the next schedule.
                book.track(&tenant, &waba, 0).await?;
            }
        }
    }
    Ok(changed)
}

async fn apply_one(
    book: &TemplateBook,
    tenant: &TenantId,
    waba: &WabaId,
    u: &TemplateUpdate,
) -> Result<bool, TemplateError> {
    let all = book.all(tenant).await?;
    let found: Option<Template> = all
        .iter()
        .filter(|t| t.waba == waba.as_str())
        .find(|t| {
            u.id.as_deref()
                .is_some_and(|id| !t.id.is_empty() && t.id == id)
        })
        .or_else(|| {
            all.iter().find(|t| {
                t.waba == waba.as_str()
                    && t.name == u.name
                    && same_language(&t.language, &u.language)
            })
        })
        .cloned();
    let Some(mut t) = found else {
        return Ok(false);
    };
    match &u.change {
        Change::Status(s) => t.status = s.to_ascii_uppercase(),
        Change::Category(c) => t.category = c.to_ascii_uppercase(),
        Change::Quality(q) => t.quality = Some(q.to_ascii_uppercase()),
    }
    book.put(tenant, &t).await?;
    tracing::info!(%tenant, change = ?u.change, "message template updated from Meta's webhook");
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_three_documented_fields() {
        let body = serde_json::json!({
            "object": "whatsapp_business_account",
            "entry": [{"id": "102290129340398", "time": 1674864290, "changes": [
                {"field": "message_template_status_update", "value": {
                    "event": "PAUSED", "message_template_id": 1689556908129832u64,
                    "message_template_name": "order_confirmation",
                    "message_template_language": "en-US", "reason": "NONE"}},
                {"field": "template_category_update", "value": {
                    "message_template_id": 278077987957091u64,
                    "message_template_name": "welcome_template",
                    "message_template_language": "en-US",
                    "previous_category": "UTILITY", "new_category": "MARKETING"}},
                {"field": "message_template_quality_update", "value": {
                    "previous_quality_score": "GREEN", "new_quality_score": "YELLOW",
                    "message_template_id": 806312974732579u64,
                    "message_template_name": "welcome_template",
                    "message_template_language": "en-US"}},
                {"field": "messages", "value": {}}
            ]}]
        });
        let u = updates(body.to_string().as_bytes());
        assert_eq!(u.len(), 3);
        assert_eq!(u[0].change, Change::Status("PAUSED".into()));
        assert_eq!(u[0].id.as_deref(), Some("1689556908129832"));
        assert_eq!(u[1].change, Change::Category("MARKETING".into()));
        assert_eq!(u[2].change, Change::Quality("YELLOW".into()));
        assert!(same_language("en_US", "en-US"));
        assert!(updates(b"{\"object\":\"whatsapp_business_account\",\"entry\":[]}").is_empty());
    }

    #[test]
    fn reads_the_samples() {
        let status = updates(include_bytes!(
            "../../../events/meta-webhook/whatsapp-template-status-update.json"
        ));
        assert_eq!(status.len(), 1);
        assert_eq!(status[0].waba.as_str(), "102290129340398");
        assert_eq!(status[0].name, "order_confirmation");
        assert_eq!(status[0].change, Change::Status("PAUSED".into()));
        let category = updates(include_bytes!(
            "../../../events/meta-webhook/whatsapp-template-category-update.json"
        ));
        assert_eq!(category[0].change, Change::Category("MARKETING".into()));
        let quality = updates(include_bytes!(
            "../../../events/meta-webhook/whatsapp-template-quality-update.json"
        ));
        assert_eq!(quality[0].change, Change::Quality("YELLOW".into()));
    }
}
