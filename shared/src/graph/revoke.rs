//! Giving up our access to an account when it is disconnected.
//!
//! - `DELETE /{version}/{id}/subscribed_apps` with the account's token: our app stops
//!   receiving the webhooks of a WhatsApp Business Account ("WhatsApp Business Account
//!   Subscribed Apps" reference: answers `{"success": true}`) or of a Page.
//! - `DELETE /{version}/me/permissions` with a user access token: every permission the user
//!   granted our app is revoked, and the token stops working ("User permissions" reference,
//!   "Revoking Permissions": "This request must be made with a user access token or an app
//!   access token for the current app. If the request is successful, you will receive a
//!   response of true"). On a client whose base URL is `graph.instagram.com`, the same call
//!   with an Instagram User access token (Instagram API with Instagram Login).

use serde::Deserialize;

use super::{GraphClient, GraphError};
use crate::secret::Secret;

/// The two shapes of a successful DELETE: `true` or `{"success": true}`.
#[derive(Deserialize)]
#[serde(untagged)]
enum Confirmed {
    Bare(bool),
    Object {
        #[serde(default)]
        success: bool,
    },
}

impl Confirmed {
    fn check(self, what: &str) -> Result<(), GraphError> {
        match self {
            Confirmed::Bare(true) | Confirmed::Object { success: true } => Ok(()),
            _ => Err(GraphError::Protocol(format!("{what} was not confirmed"))),
        }
    }
}

impl GraphClient {
    /// Unsubscribes our app from the webhooks of `owner` (a WABA id or a Page id).
    pub async fn unsubscribe_app(
        &self,
        owner: &str,
        access_token: &Secret,
    ) -> Result<(), GraphError> {
        let answer: Confirmed = self
            .delete_json(&format!("{owner}/subscribed_apps"), access_token)
            .await?;
        answer.check("unsubscribing the app")
    }

    /// Revokes every permission the token's user granted our app (`DELETE me/permissions`).
    pub async fn revoke_permissions(&self, access_token: &Secret) -> Result<(), GraphError> {
        let answer: Confirmed = self.delete_json("me/permissions", access_token).await?;
        answer.check("revoking the permissions")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_confirmations_are_read_and_false_is_not_one() {
        let read = |s: &str| serde_json::from_str::<Confirmed>(s).unwrap().check("x");
        assert!(read("true").is_ok());
        assert!(read(r#"{"success":true}"#).is_ok());
        assert!(read("false").is_err());
        assert!(read(r#"{"success":false}"#).is_err());
        assert!(read("{}").is_err());
    }
}
