//! Which webhook fields our app takes, in one place, and the reads that tell whether an
//! account's subscription is still there (the scheduled check re-subscribes with
//! `GraphClient::subscribe_app` / `GraphClient::instagram_subscribe`):
//!
//! - WhatsApp: fields are chosen once for the app (App Dashboard > WhatsApp > Configuration,
//!   or `POST /{app-id}/subscriptions` with `object=whatsapp_business_account`); each WABA
//!   only subscribes the app (`POST /{waba-id}/subscribed_apps`). `GET /{version}/{waba-id}/
//!   subscribed_apps` answers `{"data": [{"whatsapp_business_api_data": {"id", "name",
//!   "link"}}]}`, one element per subscribed app, `{"data": []}` for none ("WhatsApp Business
//!   Account Subscribed Apps" reference).
//! - Instagram (Instagram API with Instagram Login, "Webhooks"): `POST /{version}/me/
//!   subscribed_apps?subscribed_fields=…` subscribes the account to the listed fields;
//!   `GET /{version}/me/subscribed_apps` answers `{"data": [{"subscribed_fields": [...], …}]}`
//!   (the Page Subscribed Apps edge's shape), empty when the account is not subscribed.

use serde::Deserialize;

use super::{GraphClient, GraphError};
use crate::ids::{MetaAppId, WabaId};
use crate::secret::Secret;

/// The WhatsApp Business Account fields the relay handles: messages and statuses, the
/// Coexistence echoes, history and contact sync, the account and number events, the
/// template events, and Conversation Routing's `standby` and `messaging_handovers`.
/// Configured once for the app (see the module documentation and
/// docs/operations).
pub const WHATSAPP_WEBHOOK_FIELDS: &[&str] = &[
    "messages",
    "smb_message_echoes",
    "history",
    "smb_app_state_sync",
    "account_update",
    "phone_number_quality_update",
    "phone_number_name_update",
    "business_capability_update",
    "message_template_status_update",
    "template_category_update",
    "message_template_quality_update",
    // Conversation Routing, for Meta's Business Agent (decision 0065): copies of the
    // conversations the agent holds, and who holds a conversation.
    "standby",
    "messaging_handovers",
];

/// The Instagram fields an account is subscribed to: messages (with echoes), postbacks,
/// reads, reactions, edits, referrals, the Handover Protocol's `messaging_handover` and
/// `standby` (Meta's agent or another app holding the conversation), `comments` on the
/// account's media (answered by private reply, decision 0062) and `live_comments` on its
/// live videos during the broadcast and `mentions` of the account (decision 0067); they need
/// `instagram_business_manage_comments` (Meta's "Instagram webhook fields and permissions").
pub const INSTAGRAM_WEBHOOK_FIELDS: &[&str] = &[
    "messages",
    "messaging_postbacks",
    "messaging_seen",
    "message_reactions",
    "message_edit",
    "messaging_referral",
    "messaging_handover",
    "standby",
    INSTAGRAM_COMMENTS_FIELD,
    INSTAGRAM_LIVE_COMMENTS_FIELD,
    INSTAGRAM_MENTIONS_FIELD,
];

/// The comments field: accounts connected before it was asked for lack its permission, so
/// the scheduled check does not require it (they get it when they connect again).
pub const INSTAGRAM_COMMENTS_FIELD: &str = "comments";

/// Comments on a live video while it is broadcast: the same permission as `comments`.
pub const INSTAGRAM_LIVE_COMMENTS_FIELD: &str = "live_comments";

/// @mentions of the account in comments and captions (decision 0067): the same permission
/// (Meta's Instagram Login guide to mentions).
pub const INSTAGRAM_MENTIONS_FIELD: &str = "mentions";

/// The fields that need `instagram_business_manage_comments`: the scheduled check requires
/// them only of an account subscribed to `comments` (it holds the permission), so accounts
/// connected before decision 0062 are not re-subscribed every hour in vain, and those
/// connected since get `live_comments` without connecting again.
pub const INSTAGRAM_COMMENT_PERMISSION_FIELDS: &[&str] = &[
    INSTAGRAM_COMMENTS_FIELD,
    INSTAGRAM_LIVE_COMMENTS_FIELD,
    INSTAGRAM_MENTIONS_FIELD,
];

/// [`INSTAGRAM_WEBHOOK_FIELDS`] as `subscribed_fields` takes them.
pub fn instagram_fields() -> String {
    INSTAGRAM_WEBHOOK_FIELDS.join(",")
}

#[derive(Deserialize)]
struct List<T> {
    #[serde(default = "Vec::new")]
    data: Vec<T>,
}

#[derive(Deserialize)]
struct WabaApp {
    whatsapp_business_api_data: Option<AppData>,
}

#[derive(Deserialize)]
struct AppData {
    id: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct IgSubscription {
    #[serde(default)]
    subscribed_fields: Vec<String>,
}

impl GraphClient {
    /// Handover Protocol: takes control of the conversation with `recipient` (an IGSID)
    /// back from the app holding it. `owner` is `me` (Instagram Login, on
    /// graph.instagram.com) or the Page id (on graph.facebook.com): `POST /{version}/{owner}/
    /// take_thread_control` with `{"recipient": {"id"}, "metadata"}` answers `{"success":
    /// true}` ("Page Take Thread Control" reference; Instagram "Conversation Control APIs").
    pub async fn take_thread_control(
        &self,
        owner: &str,
        recipient: &str,
        metadata: &str,
        token: &Secret,
    ) -> Result<(), GraphError> {
        #[derive(Deserialize)]
        struct Success {
            #[serde(default)]
            success: bool,
        }
        let body = serde_json::json!({"recipient": {"id": recipient}, "metadata": metadata});
        let answer: Success = self
            .post_json(&format!("{owner}/take_thread_control"), &body, token)
            .await?;
        if answer.success {
            Ok(())
        } else {
            Err(GraphError::Protocol(
                "taking thread control was not confirmed".into(),
            ))
        }
    }

    /// Whether `app` is among the apps subscribed to `waba`'s webhooks.
    pub async fn waba_subscribes(
        &self,
        waba: &WabaId,
        app: &MetaAppId,
        token: &Secret,
    ) -> Result<bool, GraphError> {
        let list: List<WabaApp> = self
            .get_json(&format!("{}/subscribed_apps", waba.as_str()), &[], token)
            .await?;
        Ok(list.data.iter().any(|a| {
            a.whatsapp_business_api_data
                .as_ref()
                .and_then(|d| d.id.as_ref())
                .is_some_and(|id| match id {
                    serde_json::Value::String(s) => s == app.as_str(),
                    serde_json::Value::Number(n) => n.to_string() == app.as_str(),
                    _ => false,
                })
        }))
    }

    /// The fields the token's Instagram account is subscribed to (called on
    /// `graph.instagram.com`); empty when it is not subscribed.
    pub async fn instagram_subscribed_fields(
        &self,
        token: &Secret,
    ) -> Result<Vec<String>, GraphError> {
        let list: List<IgSubscription> = self.get_json("me/subscribed_apps", &[], token).await?;
        Ok(list
            .data
            .into_iter()
            .flat_map(|s| s.subscribed_fields)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_answers_read() {
        let waba: List<WabaApp> = serde_json::from_str(
            r#"{"data": [{"whatsapp_business_api_data": {"id": "1234567890123456",
            "name": "Business Messaging App", "link": "https://www.facebook.com/games/?app_id=1234567890123456"}}]}"#,
        )
        .unwrap();
        assert_eq!(waba.data.len(), 1);
        let none: List<WabaApp> = serde_json::from_str(r#"{"data": []}"#).unwrap();
        assert!(none.data.is_empty());
        let ig: List<IgSubscription> =
            serde_json::from_str(r#"{"data": [{"subscribed_fields": ["messages", "standby"]}]}"#)
                .unwrap();
        assert_eq!(ig.data[0].subscribed_fields, ["messages", "standby"]);
        assert_eq!(
            instagram_fields().split(',').count(),
            INSTAGRAM_WEBHOOK_FIELDS.len()
        );
    }
}
