//! The calls that connect an account through Meta's own sign-up flows: exchanging the codes
//! the browser brings back for tokens, and subscribing our app. The domain decides what to
//! make of the answers (`crate::onboarding`).
//!
//! WhatsApp Embedded Signup (WhatsApp Business Platform, "Embedded Signup > Implementation",
//! v4, and "Onboarding business customers as a Tech Provider"):
//! - `GET /{version}/oauth/access_token?client_id={app-id}&client_secret={app-secret}&code={code}`
//!   answers `{"access_token": "<BUSINESS_TOKEN>", "token_type": "bearer"}`. The code is
//!   valid once and for a short time: a used or expired one is refused with an OAuth error
//!   (`code` 100, `error_subcode` 36009 "has been used" / 36007 "has expired").
//! - `POST /{version}/{waba-id}/subscribed_apps` with the business token subscribes our app to
//!   the WABA's webhooks: `{"success": true}` ("WhatsApp Business Account Subscribed Apps").
//! - `POST /{version}/{phone-number-id}/register` with `{"messaging_product": "whatsapp",
//!   "pin": "<6-digit PIN>"}`: registers the number for Cloud API use and sets its two-step
//!   verification PIN when it has none ("Registering business phone numbers", step 4;
//!   "Two-Step Verification"): `{"success": true}`. Not called for Coexistence numbers (the
//!   WhatsApp Business app keeps them registered; "Onboarding WhatsApp Business app users").
//!
//! Instagram API with Instagram Login ("Business Login for Instagram", "Reference > Access
//! Token", "Reference > Refresh Access Token", "Webhooks"):
//! - `POST https://api.instagram.com/oauth/access_token` (form: `client_id`, `client_secret`,
//!   `grant_type=authorization_code`, `redirect_uri`, `code`) answers the short-lived token as
//!   `{"data": [{"access_token", "user_id", "permissions"}]}` (the guide's shape; the older
//!   flat `{"access_token", "user_id"}` is read too). A used or unknown code is answered
//!   `400 {"error_type": "OAuthException", "code": 400, "error_message": "..."}`.
//! - `GET https://graph.instagram.com/access_token?grant_type=ig_exchange_token&client_secret=
//!   …&access_token=…` answers `{"access_token", "token_type": "bearer", "expires_in"}` (60
//!   days); `GET https://graph.instagram.com/refresh_access_token?grant_type=ig_refresh_token
//!   &access_token=…` the same, for a long-lived token at least 24 hours old and not expired.
//! - `POST https://graph.instagram.com/{version}/me/subscribed_apps?subscribed_fields=…` with
//!   the token subscribes the account's webhooks: `{"success": true}`.

use std::fmt;

use serde::{Deserialize, Deserializer};

use super::{GraphClient, GraphError};
use crate::ids::{MetaAppId, PhoneNumberId, WabaId};
use crate::secret::Secret;

/// A token an exchange answered. `Debug` never shows it.
pub struct IssuedToken {
    pub access_token: Secret,
    /// Seconds until it expires, when Meta says (Instagram long-lived tokens: about 60 days).
    pub expires_in: Option<i64>,
    /// The Instagram professional account's id (the short-lived exchange only).
    pub user_id: Option<String>,
    /// The permissions granted (the short-lived exchange only), comma-separated by Meta.
    pub permissions: Vec<String>,
}

impl fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedToken")
            .field("expires_in", &self.expires_in)
            .field("user_id", &self.user_id)
            .field("permissions", &self.permissions)
            .finish_non_exhaustive()
    }
}

fn opt_id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
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

/// `permissions` as Meta sends it: a comma-separated string or a list.
fn permissions<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum P {
        S(String),
        L(Vec<String>),
    }
    Ok(match Option::<P>::deserialize(d)? {
        Some(P::S(s)) => s
            .split(',')
            .map(|p| p.trim().to_owned())
            .filter(|p| !p.is_empty())
            .collect(),
        Some(P::L(l)) => l,
        None => Vec::new(),
    })
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    expires_in: Option<i64>,
    #[serde(default, deserialize_with = "opt_id")]
    user_id: Option<String>,
    #[serde(default, deserialize_with = "permissions")]
    permissions: Vec<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ShortLivedAnswer {
    Wrapped { data: Vec<TokenAnswer> },
    Flat(TokenAnswer),
}

impl TokenAnswer {
    fn issued(self) -> Result<IssuedToken, GraphError> {
        let access_token = Secret::parse("access_token", &self.access_token)
            .map_err(|_| GraphError::Protocol("the token answer holds no usable token".into()))?;
        Ok(IssuedToken {
            access_token,
            expires_in: self.expires_in,
            user_id: self.user_id,
            permissions: self.permissions,
        })
    }
}

#[derive(Deserialize)]
struct Success {
    #[serde(default)]
    success: bool,
}

fn confirmed(answer: Success, what: &str) -> Result<(), GraphError> {
    if answer.success {
        Ok(())
    } else {
        Err(GraphError::Protocol(format!("{what} was not confirmed")))
    }
}

impl GraphClient {
    /// Embedded Signup: the business token for the code the browser received (called on
    /// `graph.facebook.com`).
    pub async fn exchange_business_code(
        &self,
        app_id: &MetaAppId,
        app_secret: &Secret,
        code: &Secret,
    ) -> Result<IssuedToken, GraphError> {
        let answer: TokenAnswer = self
            .get_json_unauthenticated(
                "oauth/access_token",
                true,
                &[
                    ("client_id", app_id.as_str()),
                    ("client_secret", app_secret.expose()),
                    ("code", code.expose()),
                ],
            )
            .await?;
        answer.issued()
    }

    /// Subscribes our app to the webhooks of `waba`.
    pub async fn subscribe_app(&self, waba: &WabaId, token: &Secret) -> Result<(), GraphError> {
        let answer: Success = self
            .post_query(&format!("{}/subscribed_apps", waba.as_str()), &[], token)
            .await?;
        confirmed(answer, "subscribing the app")
    }

    /// Registers `phone` for Cloud API use with its two-step verification `pin`.
    pub async fn register_number(
        &self,
        phone: &PhoneNumberId,
        pin: &Secret,
        token: &Secret,
    ) -> Result<(), GraphError> {
        let body = serde_json::json!({"messaging_product": "whatsapp", "pin": pin.expose()});
        let answer: Success = self
            .post_json(&format!("{}/register", phone.as_str()), &body, token)
            .await?;
        confirmed(answer, "registering the number")
    }

    /// Instagram Login: the short-lived token for `code` (called on `api.instagram.com`).
    pub async fn instagram_exchange_code(
        &self,
        client_id: &str,
        client_secret: &Secret,
        redirect_uri: &str,
        code: &Secret,
    ) -> Result<IssuedToken, GraphError> {
        let answer: ShortLivedAnswer = self
            .post_form_unauthenticated(
                "oauth/access_token",
                &[
                    ("client_id", client_id),
                    ("client_secret", client_secret.expose()),
                    ("grant_type", "authorization_code"),
                    ("redirect_uri", redirect_uri),
                    ("code", code.expose()),
                ],
            )
            .await?;
        match answer {
            ShortLivedAnswer::Flat(t) => t.issued(),
            ShortLivedAnswer::Wrapped { data } => data
                .into_iter()
                .next()
                .ok_or_else(|| GraphError::Protocol("the token answer's data is empty".into()))?
                .issued(),
        }
    }

    /// Instagram Login: the long-lived (60-day) token for a short-lived one (called on
    /// `graph.instagram.com`).
    pub async fn instagram_long_lived(
        &self,
        client_secret: &Secret,
        short_lived: &Secret,
    ) -> Result<IssuedToken, GraphError> {
        let answer: TokenAnswer = self
            .get_json_unauthenticated(
                "access_token",
                false,
                &[
                    ("grant_type", "ig_exchange_token"),
                    ("client_secret", client_secret.expose()),
                    ("access_token", short_lived.expose()),
                ],
            )
            .await?;
        answer.issued()
    }

    /// Instagram Login: a fresh 60 days for a long-lived token (called on
    /// `graph.instagram.com`).
    pub async fn instagram_refresh(&self, long_lived: &Secret) -> Result<IssuedToken, GraphError> {
        let answer: TokenAnswer = self
            .get_json_unauthenticated(
                "refresh_access_token",
                false,
                &[
                    ("grant_type", "ig_refresh_token"),
                    ("access_token", long_lived.expose()),
                ],
            )
            .await?;
        answer.issued()
    }

    /// Instagram Login: subscribes the token's account to `fields` webhooks.
    pub async fn instagram_subscribe(
        &self,
        token: &Secret,
        fields: &str,
    ) -> Result<(), GraphError> {
        let answer: Success = self
            .post_query(
                "me/subscribed_apps",
                &[("subscribed_fields", fields)],
                token,
            )
            .await?;
        confirmed(answer, "subscribing the account's webhooks")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_answers_in_every_documented_shape() {
        let wrapped = r#"{"data": [{"access_token": "EAACEdEose0cBA", "user_id": 17841405822304914,
            "permissions": "instagram_business_basic,instagram_business_manage_messages"}]}"#;
        let flat = r#"{"access_token": "EAACEdEose0cBA", "user_id": "17841405822304914"}"#;
        for body in [wrapped, flat] {
            let t = match serde_json::from_str::<ShortLivedAnswer>(body).unwrap() {
                ShortLivedAnswer::Flat(t) => t,
                ShortLivedAnswer::Wrapped { data } => data.into_iter().next().unwrap(),
            }
            .issued()
            .unwrap();
            assert_eq!(t.user_id.as_deref(), Some("17841405822304914"));
            assert!(!format!("{t:?}").contains("EAAC"));
        }
        let long: TokenAnswer = serde_json::from_str(
            r#"{"access_token": "IGQVJ", "token_type": "bearer", "expires_in": 5183944}"#,
        )
        .unwrap();
        assert_eq!(long.issued().unwrap().expires_in, Some(5183944));
        let empty: TokenAnswer = serde_json::from_str(r#"{"access_token": ""}"#).unwrap();
        assert!(empty.issued().is_err());
    }
}
