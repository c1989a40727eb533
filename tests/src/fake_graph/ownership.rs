//! The fake's answers about tokens and the accounts behind them, in the formats Meta
//! documents (see the Graph client's ownership module for the sources):
//!
//! - `GET /{version}/debug_token?input_token=…` with `Authorization: Bearer
//!   {app-id}|{app-secret}` of the fake's app ([`FAKE_APP_ID`], [`FAKE_APP_SECRET`]; another
//!   app token is `401` code 190): `{"data": {"app_id", "type", "application", "expires_at",
//!   "is_valid", "scopes", "granular_scopes": [{"scope", "target_ids"}], "user_id"}}` for a
//!   registered token, `{"data": {"error": {"code": 190, ...}, "is_valid": false, "scopes":
//!   []}}` for any other.
//! - `GET /{version}/{waba-id}/phone_numbers` with a token granted
//!   `whatsapp_business_management` on that WABA: `{"data": [{"verified_name",
//!   "code_verification_status", "display_phone_number", "quality_rating", "platform_type",
//!   "throughput", "id"}], "paging": {"cursors": {"before", "after"}}}`; without the grant
//!   `403` code 200; an unknown token `401` code 190.
//! - `GET /{version}/me?fields=user_id,username` with an Instagram token:
//!   `{"data": [{"user_id", "username", "id"}]}`, as the Instagram Login guide shows it.
//! - `GET /{version}/{page-id}?fields=instagram_business_account` with a Page token:
//!   `{"instagram_business_account": {"id"}, "id"}`.

use std::collections::HashMap;

use serde_json::{json, Value};

use super::{
    invalid_token, is_version, json_answer, meta_error, query_pairs, Answer, FakeGraph, State,
};

/// The fake's own Meta app: configure the server with these (`META_APP_ID`,
/// `META_APP_SECRET`).
pub const FAKE_APP_ID: &str = "670843887433847";
pub const FAKE_APP_SECRET: &str = "6f1c0e5ad2b94c7e8a3b1d0f9e2c4a7b";

const MANAGEMENT: &str = "whatsapp_business_management";
const MESSAGING: &str = "whatsapp_business_messaging";

/// A WhatsApp business token as `debug_token` describes it.
#[derive(Clone, Debug)]
pub struct BusinessToken {
    /// The app it was issued for.
    pub app_id: String,
    pub is_valid: bool,
    /// WABAs granted `whatsapp_business_management`.
    pub management: Vec<String>,
    /// WABAs granted `whatsapp_business_messaging`.
    pub messaging: Vec<String>,
    /// The (system) user who granted it.
    pub user_id: String,
}

impl BusinessToken {
    /// A valid token of the fake's app with both permissions on `waba`.
    pub fn for_waba(waba: &str) -> Self {
        BusinessToken {
            app_id: FAKE_APP_ID.to_owned(),
            is_valid: true,
            management: vec![waba.to_owned()],
            messaging: vec![waba.to_owned()],
            user_id: "10222270944537964".to_owned(),
        }
    }
}

#[derive(Default)]
pub(super) struct Ownership {
    tokens: HashMap<String, BusinessToken>,
    /// WABA → its phone number ids, in order.
    wabas: HashMap<String, Vec<String>>,
}

impl Ownership {
    pub(super) fn token(&self, token: &str) -> Option<&BusinessToken> {
        self.tokens.get(token)
    }

    pub(super) fn numbers(&self, waba: &str) -> &[String] {
        self.wabas.get(waba).map(Vec::as_slice).unwrap_or_default()
    }

    /// The WABA `phone_number_id` belongs to.
    pub(super) fn waba_of(&self, phone_number_id: &str) -> Option<&str> {
        self.wabas
            .iter()
            .find(|(_, numbers)| numbers.iter().any(|n| n == phone_number_id))
            .map(|(waba, _)| waba.as_str())
    }
}

impl FakeGraph {
    /// Registers what `debug_token` says about `token`.
    pub fn add_business_token(&self, token: &str, info: BusinessToken) {
        self.state().ownership.tokens.insert(token.to_owned(), info);
    }

    /// Adds `phone_number_ids` to `waba`'s numbers.
    pub fn add_waba(&self, waba: &str, phone_number_ids: &[&str]) {
        let mut s = self.state();
        let numbers = s.ownership.wabas.entry(waba.to_owned()).or_default();
        for p in phone_number_ids {
            if !numbers.iter().any(|n| n == p) {
                numbers.push((*p).to_owned());
            }
        }
    }

    /// Everything a connect of `phone_number_id` on `waba` with `token` needs: a valid token
    /// of the fake's app with both permissions on the WABA, the number in the WABA's list,
    /// and media and sends of the number readable with the token.
    pub fn add_whatsapp_business(&self, token: &str, waba: &str, phone_number_id: &str) {
        let mut info = self
            .state()
            .ownership
            .tokens
            .get(token)
            .cloned()
            .unwrap_or_else(|| BusinessToken::for_waba(waba));
        for list in [&mut info.management, &mut info.messaging] {
            if !list.iter().any(|w| w == waba) {
                list.push(waba.to_owned());
            }
        }
        self.add_business_token(token, info);
        self.add_waba(waba, &[phone_number_id]);
        self.add_token(token, phone_number_id);
    }
}

/// Percent-decodes a query value (our client encodes everything but unreserved characters).
pub(super) fn decode(v: &str) -> String {
    let bytes = v.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
            if let Ok(b) = u8::from_str_radix(hex, 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The ownership answers, or None for requests that are not ownership requests.
pub(super) fn route(
    s: &mut State,
    segments: &[&str],
    query: Option<&str>,
    bearer: Option<&str>,
) -> Option<Answer> {
    let pairs = query_pairs(query);
    let fields = pairs.get("fields").map(|f| decode(f));
    Some(match segments {
        [v, "debug_token"] if is_version(v) => debug_token(s, &pairs, bearer),
        [v, waba, "phone_numbers"] if is_version(v) => phone_numbers(s, waba, bearer),
        [v, "me"] if is_version(v) => instagram_me(s, bearer),
        [v, page] if is_version(v) && fields.as_deref() == Some("instagram_business_account") => {
            page_account(s, page, bearer)
        }
        _ => return None,
    })
}

fn debug_token(s: &State, pairs: &HashMap<String, String>, bearer: Option<&str>) -> Answer {
    if bearer != Some(format!("{FAKE_APP_ID}|{FAKE_APP_SECRET}").as_str()) {
        return invalid_token();
    }
    let input = pairs
        .get("input_token")
        .map(|t| decode(t))
        .unwrap_or_default();
    let Some(t) = s.ownership.tokens.get(&input) else {
        return json_answer(
            200,
            &json!({"data": {
                "error": {"code": 190, "message": "Invalid OAuth access token."},
                "is_valid": false,
                "scopes": []
            }}),
        );
    };
    let mut scopes = vec![MANAGEMENT, MESSAGING, "public_profile"];
    if t.messaging.is_empty() {
        scopes.retain(|s| *s != MESSAGING);
    }
    json_answer(
        200,
        &json!({"data": {
            "app_id": t.app_id,
            "type": "SYSTEM_USER",
            "application": "Fake Wappline",
            "data_access_expires_at": 0,
            "expires_at": 0,
            "is_valid": t.is_valid,
            "scopes": scopes,
            "granular_scopes": [
                {"scope": MANAGEMENT, "target_ids": t.management},
                {"scope": MESSAGING, "target_ids": t.messaging}
            ],
            "user_id": t.user_id
        }}),
    )
}

fn phone_numbers(s: &State, waba: &str, bearer: Option<&str>) -> Answer {
    let Some(t) = bearer.and_then(|b| s.ownership.tokens.get(b)) else {
        return invalid_token();
    };
    if !t.is_valid {
        return invalid_token();
    }
    if !t.management.iter().any(|w| w == waba) {
        return meta_error(403, 200, None, "OAuthException", "(#200) Permissions error");
    }
    let data: Vec<Value> = s
        .ownership
        .wabas
        .get(waba)
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|id| {
            json!({
                "verified_name": "Fake Market",
                "code_verification_status": "VERIFIED",
                // Each number its own, as people write it: `+1 555-<last 4 digits of the id>`.
                "display_phone_number": format!("+1 555-{}", &id[id.len().saturating_sub(4)..]),
                "quality_rating": "GREEN",
                "platform_type": "CLOUD_API",
                "throughput": {"level": "STANDARD"},
                "id": id
            })
        })
        .collect();
    json_answer(
        200,
        &json!({"data": data, "paging": {"cursors": {"before": "QVFIUk", "after": "QVFIUl"}}}),
    )
}

fn instagram_me(s: &State, bearer: Option<&str>) -> Answer {
    let Some((account, _)) = bearer.and_then(|b| s.instagram_tokens.get(b)) else {
        return invalid_token();
    };
    json_answer(
        200,
        &json!({"data": [{
            "user_id": account,
            "username": "fake_account",
            "id": instagram_app_scoped_id(account)
        }]}),
    )
}

/// The app-scoped id the fake's `/me` answers as `id` for an Instagram Login `account` (the
/// id Meta's Data Deletion Callback names that user by).
pub fn instagram_app_scoped_id(account: &str) -> String {
    format!("9{account}")
}

fn page_account(s: &State, page: &str, bearer: Option<&str>) -> Answer {
    let Some((account, token_page)) = bearer.and_then(|b| s.instagram_tokens.get(b)) else {
        return invalid_token();
    };
    if token_page.as_deref() != Some(page) {
        return super::no_such_object(page);
    }
    json_answer(
        200,
        &json!({"instagram_business_account": {"id": account}, "id": page}),
    )
}
