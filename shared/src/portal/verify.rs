//! Proof that a pair of tokens belongs to a given portal, shared by the install flow and the
//! admin API's direct connect (decision 0032).
//!
//! The refresh token is exchanged at the OAuth server (apidocs "Automatic Renewal of OAuth
//! 2.0 Tokens"): only our application (client id and secret) can exchange it, and the answer
//! names the portal it was issued on, `member_id` and `client_endpoint` (the portal's REST
//! root). Both must be what the caller claimed. The exchange retires the posted pair, so the
//! caller keeps the fresh one it returns.

use crate::bitrix::{BitrixClient, BitrixError, TokenPair};
use crate::ids::{BitrixDomain, BitrixMemberId};
use crate::secret::Secret;

/// Why a portal was not confirmed.
#[derive(Debug, thiserror::Error)]
pub enum PortalProofError {
    /// The OAuth server refused the refresh token (unknown, used, revoked, another app's).
    #[error("the OAuth server refused the refresh token: {0}")]
    Refused(BitrixError),
    /// The OAuth server could not be reached or failed: nothing is known, try again.
    #[error("the OAuth server could not be asked: {0}")]
    Unavailable(BitrixError),
    #[error("the tokens belong to another portal")]
    OtherPortal,
    #[error("the OAuth server did not name the portal")]
    Unnamed,
    #[error("the portal's address does not match the tokens")]
    AddressMismatch,
}

impl PortalProofError {
    /// A stable name for logs and the audit log.
    pub fn kind(&self) -> &'static str {
        match self {
            PortalProofError::Refused(_) => "refresh_token_refused",
            PortalProofError::Unavailable(_) => "unavailable",
            PortalProofError::OtherPortal => "other_portal",
            PortalProofError::Unnamed => "portal_not_named",
            PortalProofError::AddressMismatch => "address_mismatch",
        }
    }
}

fn same_endpoint(a: &str, b: &str) -> bool {
    let norm = |s: &str| s.trim().trim_end_matches('/').to_ascii_lowercase();
    norm(a) == norm(b)
}

/// Exchanges `refresh_token` and checks the answer names `member_id` and `domain`'s REST
/// root. Returns the fresh pair (with `member_id` set).
pub async fn verify_portal(
    client: &BitrixClient,
    domain: &BitrixDomain,
    member_id: &BitrixMemberId,
    refresh_token: &Secret,
) -> Result<TokenPair, PortalProofError> {
    let mut fresh = client.refresh(refresh_token).await.map_err(|e| {
        if e.is_retryable() {
            PortalProofError::Unavailable(e)
        } else {
            PortalProofError::Refused(e)
        }
    })?;
    match &fresh.member_id {
        Some(m) if m == member_id => {}
        Some(_) => {
            tracing::warn!(member_id = %member_id, "portal refused: tokens of another portal");
            return Err(PortalProofError::OtherPortal);
        }
        None => return Err(PortalProofError::Unnamed),
    }
    let expected = client.config().rest_root(domain);
    match fresh.client_endpoint.as_deref() {
        Some(endpoint) if same_endpoint(endpoint, &expected) => {}
        _ => {
            tracing::warn!(member_id = %member_id, domain = %domain,
                "portal refused: the portal's address does not match its member_id");
            return Err(PortalProofError::AddressMismatch);
        }
    }
    fresh.member_id = Some(member_id.clone());
    Ok(fresh)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_compare_without_case_or_trailing_slash() {
        assert!(same_endpoint(
            "https://Example.bitrix24.com/rest/",
            "https://example.bitrix24.com/rest"
        ));
        assert!(!same_endpoint(
            "https://example.bitrix24.com/rest/",
            "https://other.bitrix24.com/rest/"
        ));
    }
}
