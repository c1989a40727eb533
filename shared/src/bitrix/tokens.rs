//! OAuth token pairs and where the caller keeps them.
//!
//! Bitrix24's recommended logic (apidocs "Automatic Renewal of OAuth 2.0 Tokens"): use the
//! stored `access_token` (valid 1 hour); when a call answers that it expired, ask the OAuth
//! server for a new pair with the stored `refresh_token` (valid 180 days), store the new pair,
//! and repeat the call with the new access token. Refreshing "just in case" before calls is
//! discouraged and can get the application blocked.
//!
//! The refresh answer, as documented:
//!
//! ```json
//! {"access_token": "ydtj8pho532wydb5ixk78ol7uqlb7sch",
//!  "client_endpoint": "https://account.bitrix24.com/rest/",
//!  "domain": "oauth.bitrix.info", "expires_in": 3600,
//!  "member_id": "a223c6b3710f85df22e9377d6c4f7553",
//!  "refresh_token": "3s6lr4kr3cv2od4v853gvrchb875bwxb", "scope": "app",
//!  "server_endpoint": "https://oauth.bitrix.info/rest/", "status": "T"}
//! ```
//!
//! Note `domain` there is the OAuth server's, not the portal's: the portal is named by
//! `client_endpoint` and `member_id`.

use async_trait::async_trait;

use crate::ids::{BitrixDomain, BitrixMemberId};
use crate::secret::Secret;

use super::error::BitrixError;

/// A portal's access and refresh tokens. `Debug` shows neither.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenPair {
    pub access_token: Secret,
    pub refresh_token: Secret,
    /// Seconds the access token is valid from issue (3600).
    pub expires_in: Option<u64>,
    /// The portal the pair belongs to.
    pub member_id: Option<BitrixMemberId>,
    /// The portal's REST root as the OAuth server knows it, e.g.
    /// `https://account.bitrix24.com/rest/` (changes when the portal is renamed).
    pub client_endpoint: Option<String>,
    /// Granted scopes, comma-separated.
    pub scope: Option<String>,
    /// The application's status on the portal (`F` free, `D` demo, `T` trial, `P` paid,
    /// `L` local, `S` subscription).
    pub status: Option<String>,
}

impl TokenPair {
    /// A pair known only by its two tokens (e.g. decrypted from storage).
    pub fn new(access_token: Secret, refresh_token: Secret) -> Self {
        TokenPair {
            access_token,
            refresh_token,
            expires_in: None,
            member_id: None,
            client_endpoint: None,
            scope: None,
            status: None,
        }
    }

    /// Parses the OAuth server's answer.
    pub(crate) fn from_oauth_answer(v: &serde_json::Value) -> Result<Self, BitrixError> {
        let text = |k: &str| v.get(k).and_then(|x| x.as_str()).filter(|s| !s.is_empty());
        let token = |k: &'static str| {
            let raw = text(k)
                .ok_or_else(|| BitrixError::Protocol(format!("OAuth answer without \"{k}\"")))?;
            Secret::parse(k, raw).map_err(|_| {
                BitrixError::Protocol(format!("OAuth answer with a malformed \"{k}\""))
            })
        };
        let member_id = match text("member_id") {
            Some(m) => Some(BitrixMemberId::parse(m).map_err(|_| {
                BitrixError::Protocol("OAuth answer with a malformed \"member_id\"".into())
            })?),
            None => None,
        };
        Ok(TokenPair {
            access_token: token("access_token")?,
            refresh_token: token("refresh_token")?,
            expires_in: v.get("expires_in").and_then(|x| {
                x.as_u64()
                    .or_else(|| x.as_str().and_then(|s| s.parse().ok()))
            }),
            member_id,
            client_endpoint: text("client_endpoint").map(str::to_owned),
            scope: text("scope").map(str::to_owned),
            status: text("status").map(str::to_owned),
        })
    }
}

/// A token store refused or failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TokenStoreError(pub String);

/// Where the caller keeps a portal's tokens (encrypted). The client calls it when it had to
/// refresh the pair, before using the new access token.
#[async_trait]
pub trait TokenStore: Send + Sync {
    /// Persists the new pair for `portal`. If this fails the call is not repeated and
    /// [`BitrixError::TokenStore`] is returned (the new pair is still handed back to the
    /// caller in its `&mut TokenPair`).
    async fn save(&self, portal: &BitrixDomain, tokens: &TokenPair) -> Result<(), TokenStoreError>;

    /// The newest pair stored for `portal`, if the store can tell. Consulted before a
    /// refresh: when another worker has refreshed in the meantime, its newer refresh token is
    /// used instead of one Bitrix24 may already have retired. The default knows nothing.
    async fn latest(&self, _portal: &BitrixDomain) -> Result<Option<TokenPair>, TokenStoreError> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_the_documented_refresh_answer() {
        let v = json!({
            "access_token": "ydtj8pho532wydb5ixk78ol7uqlb7sch",
            "client_endpoint": "https://account.bitrix24.com/rest/",
            "domain": "oauth.bitrix.info",
            "expires_in": 3600,
            "member_id": "a223c6b3710f85df22e9377d6c4f7553",
            "refresh_token": "3s6lr4kr3cv2od4v853gvrchb875bwxb",
            "scope": "app",
            "server_endpoint": "https://oauth.bitrix.info/rest/",
            "status": "T"
        });
        let p = TokenPair::from_oauth_answer(&v).unwrap();
        assert_eq!(p.access_token.expose(), "ydtj8pho532wydb5ixk78ol7uqlb7sch");
        assert_eq!(p.refresh_token.expose(), "3s6lr4kr3cv2od4v853gvrchb875bwxb");
        assert_eq!(p.expires_in, Some(3600));
        assert_eq!(
            p.member_id.as_ref().map(|m| m.as_str()),
            Some("a223c6b3710f85df22e9377d6c4f7553")
        );
        assert_eq!(
            p.client_endpoint.as_deref(),
            Some("https://account.bitrix24.com/rest/")
        );
        let dbg = format!("{p:?}");
        assert!(!dbg.contains("ydtj8pho"), "{dbg}");
        assert!(!dbg.contains("3s6lr4kr"), "{dbg}");
    }

    #[test]
    fn refuses_answers_without_tokens() {
        assert!(TokenPair::from_oauth_answer(&json!({"access_token": "a"})).is_err());
        assert!(TokenPair::from_oauth_answer(
            &json!({"access_token": "a b", "refresh_token": "c"})
        )
        .is_err());
    }
}
