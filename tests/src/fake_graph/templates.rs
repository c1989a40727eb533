//! The fake's message templates, in the formats Meta documents:
//!
//! - `GET /{version}/{waba-id}/message_templates` ("Message Templates API"; "Template
//!   management > Get templates") with a token granted `whatsapp_business_management` on the
//!   WABA: `{"data": [template...], "paging": {"cursors": {"before", "after"}, "next"}}`,
//!   `limit` templates a page (default 25), the next page by `after`; without the grant `403`
//!   code 200, an unknown token `401` code 190.
//! - `POST /{version}/{phone-number-id}/marketing_messages` ("Marketing Messages API for
//!   WhatsApp > Send Marketing Messages"): the body of a template message; the template
//!   must be one of the number's WABA's MARKETING templates (else `400` code 100). Recorded
//!   in [`FakeGraph::sent`] with its path, answered like a Cloud API send.

use serde_json::{json, Value};

use super::ownership::decode;
use super::{
    invalid_parameter, invalid_token, is_version, json_answer, meta_error, query_pairs, Answer,
    FakeGraph, State,
};

impl FakeGraph {
    /// Sets `waba`'s templates (objects as `message_templates` lists them).
    pub fn set_templates(&self, waba: &str, templates: Vec<Value>) {
        self.state().templates.insert(waba.to_owned(), templates);
    }
}

/// A template as Meta lists it.
pub fn template(name: &str, language: &str, category: &str, components: Value) -> Value {
    json!({
        "name": name,
        "parameter_format": "POSITIONAL",
        "components": components,
        "language": language,
        "status": "APPROVED",
        "category": category,
        "id": format!("{}", 1_000_000_000_000_000u64 + name.len() as u64 * 7 + language.len() as u64)
    })
}

/// The template answers, or None for other requests.
pub(super) fn route_get(
    s: &mut State,
    segments: &[&str],
    query: Option<&str>,
    bearer: Option<&str>,
) -> Option<Answer> {
    let [v, waba, "message_templates"] = segments else {
        return None;
    };
    if !is_version(v) {
        return None;
    }
    let Some(t) = bearer.and_then(|b| s.ownership.token(b)) else {
        return Some(invalid_token());
    };
    if !t.is_valid {
        return Some(invalid_token());
    }
    if !t.management.iter().any(|w| w == waba) {
        return Some(meta_error(
            403,
            200,
            None,
            "OAuthException",
            "(#200) Permissions error",
        ));
    }
    let pairs = query_pairs(query);
    let limit: usize = pairs
        .get("limit")
        .and_then(|l| l.parse().ok())
        .filter(|l| *l > 0)
        .unwrap_or(25);
    let start: usize = pairs
        .get("after")
        .map(|a| decode(a))
        .and_then(|a| a.strip_prefix("cursor").and_then(|n| n.parse().ok()))
        .unwrap_or(0);
    let all = s.templates.get(*waba).cloned().unwrap_or_default();
    let page: Vec<Value> = all.iter().skip(start).take(limit).cloned().collect();
    let end = start + page.len();
    let mut paging =
        json!({"cursors": {"before": format!("cursor{start}"), "after": format!("cursor{end}")}});
    if end < all.len() {
        paging["next"] = json!(format!(
            "{}/{v}/{waba}/message_templates?limit={limit}&after=cursor{end}",
            s.base_url
        ));
    }
    Some(json_answer(200, &json!({"data": page, "paging": paging})))
}

/// None when `number`'s WABA has the MARKETING template the body names; else the answer to
/// refuse it with.
pub(super) fn check_marketing(s: &State, number: &str, body: &Value) -> Option<Answer> {
    if body["type"] != "template" {
        return Some(invalid_parameter(
            "the Marketing Messages API sends templates only",
        ));
    }
    let name = body["template"]["name"].as_str().unwrap_or_default();
    let language = body["template"]["language"]["code"]
        .as_str()
        .unwrap_or_default();
    let marketing = s
        .templates
        .iter()
        .filter(|(waba, _)| s.ownership.numbers(waba).iter().any(|n| n == number))
        .flat_map(|(_, ts)| ts.iter())
        .any(|t| t["name"] == name && t["language"] == language && t["category"] == "MARKETING");
    (!marketing).then(|| invalid_parameter("not a marketing template of this account"))
}
