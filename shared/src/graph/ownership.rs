//! What an access token says about itself and the accounts behind it: the calls that prove a
//! token holder controls a WhatsApp number or an Instagram account (the domain decides what
//! to make of the answers).
//!
//! - `GET /{version}/debug_token?input_token={token}` with an app access token (Meta, "Graph
//!   API: Reference: Debug Token"; the app token is `{app-id}|{app-secret}`, "Access Tokens:
//!   App Access Tokens"). Answer, as the WhatsApp Solution Providers guide ("Manage
//!   accounts") shows it:
//!
//!   ```json
//!   {"data": {"app_id": "670843887433847", "application": "JaspersMarket",
//!     "data_access_expires_at": 1672092840, "expires_at": 1665090000,
//!     "granular_scopes": [
//!       {"scope": "whatsapp_business_management", "target_ids": ["102289599326934"]},
//!       {"scope": "whatsapp_business_messaging", "target_ids": ["102289599326934"]}],
//!     "is_valid": true, "scopes": ["whatsapp_business_management", "..."],
//!     "type": "USER", "user_id": "10222270944537964"}}
//!   ```
//!
//!   An unusable input token is answered inside `data`: `"is_valid": false` with an
//!   `"error": {"code", "message"}` object.
//! - `GET /{version}/{waba-id}/phone_numbers` with the business token (WhatsApp Solution
//!   Providers, "Manage phone numbers"): `{"data": [{"verified_name", "code_verification_status",
//!   "display_phone_number", "quality_rating", "platform_type", "throughput", "id"}],
//!   "paging": {"cursors": {"before", "after"}, "next"?}}`; further pages with `after`.
//! - `GET /{version}/me?fields=user_id,username` on `graph.instagram.com` with an Instagram
//!   User access token (Instagram API with Instagram Login, "Get Started" and "Reference >
//!   Me"): `user_id` is the professional account's id (the one webhooks carry), `id` the
//!   app-scoped one. The guide shows the fields wrapped as `{"data": [{"user_id", "username",
//!   "id"}]}`; the node itself answers them flat. Both are read.
//! - `GET /{version}/{page-id}?fields=instagram_business_account` with a Page access token
//!   (Instagram API with Facebook Login, "Get Started"): `{"instagram_business_account":
//!   {"id": "<IG_USER_ID>"}, "id": "<PAGE_ID>"}`.

use serde::Deserialize;

use super::{GraphClient, GraphError};
use crate::ids::{InstagramAccountId, WabaId};
use crate::secret::Secret;

/// Most pages of `phone_numbers` read (a WABA holds a handful of numbers; Meta's default page
/// is 25), so a misbehaving answer cannot loop forever.
pub const MAX_PHONE_PAGES: usize = 20;

/// The permissions a WhatsApp business token needs on a WABA.
pub const WHATSAPP_MANAGEMENT: &str = "whatsapp_business_management";
pub const WHATSAPP_MESSAGING: &str = "whatsapp_business_messaging";

/// One permission and the objects it was granted on.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct GranularScope {
    pub scope: String,
    #[serde(default)]
    pub target_ids: Vec<String>,
}

/// Meta's complaint about an input token, inside a `debug_token` answer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct TokenError {
    #[serde(default)]
    pub code: Option<i64>,
    #[serde(default)]
    pub subcode: Option<i64>,
    #[serde(default)]
    pub message: Option<String>,
}

/// What `debug_token` says about a token. Holds no token; `user_id` is the Meta user who
/// granted it (a system user for business tokens).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct TokenInfo {
    #[serde(default, deserialize_with = "id_string")]
    pub app_id: Option<String>,
    #[serde(default, rename = "type")]
    pub token_type: Option<String>,
    #[serde(default)]
    pub is_valid: bool,
    /// Unix seconds; 0 for tokens that do not expire (system users).
    #[serde(default)]
    pub expires_at: Option<i64>,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub granular_scopes: Vec<GranularScope>,
    #[serde(default, deserialize_with = "id_string")]
    pub user_id: Option<String>,
    #[serde(default)]
    pub error: Option<TokenError>,
}

impl TokenInfo {
    /// The objects `scope` was granted on (empty when it was not granted per object).
    pub fn targets<'a>(&'a self, scope: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.granular_scopes
            .iter()
            .filter(move |g| g.scope == scope)
            .flat_map(|g| g.target_ids.iter().map(String::as_str))
    }

    /// True when `scope` was granted on `target`.
    pub fn grants(&self, scope: &str, target: &str) -> bool {
        self.targets(scope).any(|t| t == target)
    }
}

/// Meta writes ids as strings, occasionally as numbers.
fn id_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id {
        S(String),
        N(u64),
    }
    Ok(match Option::<Id>::deserialize(d)? {
        Some(Id::S(s)) => Some(s),
        Some(Id::N(n)) => Some(n.to_string()),
        None => None,
    })
}

#[derive(Deserialize)]
struct DebugAnswer {
    data: TokenInfo,
}

/// One number of a WhatsApp Business Account.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct BusinessPhoneNumber {
    #[serde(deserialize_with = "required_id")]
    pub id: String,
    #[serde(default)]
    pub display_phone_number: Option<String>,
    #[serde(default)]
    pub verified_name: Option<String>,
}

fn required_id<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    id_string(d)?.ok_or_else(|| serde::de::Error::custom("id is null"))
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
struct PhonePage {
    #[serde(default)]
    data: Vec<BusinessPhoneNumber>,
    #[serde(default)]
    paging: Option<Paging>,
}

/// The Instagram professional account an Instagram User access token belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct InstagramMe {
    /// The professional account's id (webhooks' `entry[].id`).
    #[serde(default, deserialize_with = "id_string")]
    pub user_id: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
    /// The app-scoped id.
    #[serde(default, deserialize_with = "id_string")]
    pub id: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum MeAnswer {
    Wrapped { data: Vec<InstagramMe> },
    Flat(InstagramMe),
}

#[derive(Deserialize)]
struct IgRef {
    #[serde(deserialize_with = "required_id")]
    id: String,
}

#[derive(Deserialize)]
struct PageAnswer {
    #[serde(default)]
    instagram_business_account: Option<IgRef>,
}

impl GraphClient {
    /// `debug_token` for `input_token`, asked with `app_token` (`{app-id}|{app-secret}`).
    /// The answer is Meta's view; the caller checks `is_valid`, `app_id` and the scopes.
    pub async fn debug_token(
        &self,
        input_token: &Secret,
        app_token: &Secret,
    ) -> Result<TokenInfo, GraphError> {
        let answer: DebugAnswer = self
            .get_json(
                "debug_token",
                &[("input_token", input_token.expose())],
                app_token,
            )
            .await?;
        Ok(answer.data)
    }

    /// Every number of `waba` (all pages, at most [`MAX_PHONE_PAGES`]), read with the
    /// business token.
    pub async fn waba_phone_numbers(
        &self,
        waba: &WabaId,
        access_token: &Secret,
    ) -> Result<Vec<BusinessPhoneNumber>, GraphError> {
        let path = format!("{}/phone_numbers", waba.as_str());
        let mut numbers = Vec::new();
        let mut after: Option<String> = None;
        for _ in 0..MAX_PHONE_PAGES {
            let mut query = vec![("fields", "id,display_phone_number,verified_name")];
            if let Some(a) = after.as_deref() {
                query.push(("after", a));
            }
            let page: PhonePage = self.get_json(&path, &query, access_token).await?;
            numbers.extend(page.data);
            let paging = page.paging;
            after = match paging {
                Some(Paging {
                    next: Some(_),
                    cursors: Some(Cursors { after: Some(a) }),
                }) => Some(a),
                _ => return Ok(numbers),
            };
        }
        Err(GraphError::Protocol(format!(
            "more than {MAX_PHONE_PAGES} pages of phone numbers"
        )))
    }

    /// The Instagram account behind an Instagram User access token: `me?fields=user_id,
    /// username`. Call it on a client whose base URL is `graph.instagram.com`.
    pub async fn instagram_me(&self, access_token: &Secret) -> Result<InstagramMe, GraphError> {
        let answer: MeAnswer = self
            .get_json("me", &[("fields", "user_id,username")], access_token)
            .await?;
        match answer {
            MeAnswer::Flat(me) => Ok(me),
            MeAnswer::Wrapped { data } => data
                .into_iter()
                .next()
                .ok_or_else(|| GraphError::Protocol("me answered an empty data list".into())),
        }
    }

    /// The Instagram professional account linked to a Facebook Page, read with the Page
    /// token (`None` when the Page has none).
    pub async fn page_instagram_account(
        &self,
        page_id: &InstagramAccountId,
        access_token: &Secret,
    ) -> Result<Option<String>, GraphError> {
        let answer: PageAnswer = self
            .get_json(
                page_id.as_str(),
                &[("fields", "instagram_business_account")],
                access_token,
            )
            .await?;
        Ok(answer.instagram_business_account.map(|a| a.id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_token_reads_the_documented_answer() {
        let body = r#"{"data": {"app_id": "670843887433847", "application": "JaspersMarket",
            "data_access_expires_at": 1672092840, "expires_at": 1665090000,
            "granular_scopes": [
              {"scope": "whatsapp_business_management", "target_ids": ["102289599326934", "101569239400667"]},
              {"scope": "whatsapp_business_messaging", "target_ids": ["102289599326934"]}],
            "is_valid": true, "scopes": ["whatsapp_business_management", "whatsapp_business_messaging", "public_profile"],
            "type": "USER", "user_id": "10222270944537964"}}"#;
        let info = serde_json::from_str::<DebugAnswer>(body).unwrap().data;
        assert!(info.is_valid);
        assert_eq!(info.app_id.as_deref(), Some("670843887433847"));
        assert!(info.grants(WHATSAPP_MANAGEMENT, "101569239400667"));
        assert!(!info.grants(WHATSAPP_MESSAGING, "101569239400667"));
        assert!(!info.grants("public_profile", "102289599326934"));

        let invalid = r#"{"data": {"error": {"code": 190, "message": "Invalid OAuth access token."},
            "is_valid": false, "scopes": []}}"#;
        let info = serde_json::from_str::<DebugAnswer>(invalid).unwrap().data;
        assert!(!info.is_valid);
        assert_eq!(info.error.and_then(|e| e.code), Some(190));
    }

    #[test]
    fn phone_pages_and_me_in_both_shapes() {
        let page: PhonePage = serde_json::from_str(
            r#"{"data": [{"verified_name": "Jasper's Market", "code_verification_status": "VERIFIED",
                "display_phone_number": "+1 631-555-5555", "quality_rating": "GREEN",
                "platform_type": "CLOUD_API", "throughput": {"level": "STANDARD"},
                "id": "1906385232743451"}],
               "paging": {"cursors": {"before": "QVFI", "after": "QVFJ"}}}"#,
        )
        .unwrap();
        assert_eq!(page.data[0].id, "1906385232743451");
        assert!(page.paging.unwrap().next.is_none());

        for body in [
            r#"{"data": [{"user_id": "17841405822304914", "username": "acme", "id": "7890"}]}"#,
            r#"{"user_id": "17841405822304914", "username": "acme", "id": "7890"}"#,
        ] {
            let me = match serde_json::from_str::<MeAnswer>(body).unwrap() {
                MeAnswer::Flat(me) => me,
                MeAnswer::Wrapped { data } => data.into_iter().next().unwrap(),
            };
            assert_eq!(me.user_id.as_deref(), Some("17841405822304914"));
        }
    }
}
