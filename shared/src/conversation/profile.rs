//! The customer's public profile as the channel reports it (issue 16 item 12): an Instagram
//! user's name, username and profile picture from the User Profile API. Personal data: stored
//! encrypted on the conversation (attribute `profile`), so it goes with the conversation when
//! the contact is erased, and it is refreshed after a while, since names change and the
//! picture URL expires.

use serde::{Deserialize, Serialize};

use super::model::ConversationId;
use super::{ConversationError, Conversations};
use crate::store::{Table, Update};

const ATTR: &str = "profile";

/// What the channel says about the customer, and when we asked (Unix seconds).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerProfile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// A URL of the profile picture; Meta's URLs expire (hours to days).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub picture_url: Option<String>,
    pub fetched_at: i64,
}

impl Conversations {
    /// The stored profile of the conversation's customer, if one was fetched.
    pub async fn profile(
        &self,
        id: &ConversationId,
    ) -> Result<Option<CustomerProfile>, ConversationError> {
        let key = self.meta_key(id);
        let Some(item) = self.store.get(Table::Data, &key).await? else {
            return Ok(None);
        };
        match item.get_b(ATTR) {
            Some(blob) => Ok(Some(self.decrypt_json(&key, ATTR, blob).await?)),
            None => Ok(None),
        }
    }

    /// Stores `profile` on an existing conversation (encrypted).
    pub async fn set_profile(
        &self,
        id: &ConversationId,
        profile: &CustomerProfile,
    ) -> Result<(), ConversationError> {
        let key = self.meta_key(id);
        let blob = self.encrypt_json(&key, ATTR, profile).await?;
        self.store
            .update(
                Table::Data,
                &key,
                Update::new().set(ATTR, blob),
                Some(crate::store::Condition::Exists),
            )
            .await?;
        Ok(())
    }
}
