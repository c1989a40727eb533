//! Ownership proof: before a channel is claimed through the admin API, the token supplied
//! with it must show that its holder controls the account (decision 0032). A claim that
//! fails proof changes nothing; the caller stores the channel only after [`OwnershipProof::
//! prove`] succeeded.
//!
//! - **WhatsApp**: `debug_token` (asked with our app access token) must show the token is
//!   valid, issued for our Meta app, and grants `whatsapp_business_management` and
//!   `whatsapp_business_messaging` on the claimed WABA (`granular_scopes[].target_ids`); then
//!   the WABA's `phone_numbers`, read with the token, must list the claimed
//!   `phone_number_id`.
//! - **Instagram**: with Instagram Login, `me?fields=user_id,username` on
//!   `graph.instagram.com` must answer the claimed account id as `user_id`; an account
//!   connected with its Facebook Page (`page_id`) must be the Page's
//!   `instagram_business_account`, read with the Page token.
//! - **Bitrix24**: the refresh token is exchanged at the OAuth server, which must name the
//!   claimed `member_id` and the claimed domain's REST root, as the install flow does
//!   ([`crate::portal::verify`]); the fresh pair replaces the posted one.
//!
//! The proof also names the Meta user behind the token, which Meta's Data Deletion Callback
//! names when that user asks for their data to be deleted (decision 0072): `debug_token`'s
//! `user_id` for a WhatsApp token, `/me`'s `id` (the app-scoped id) for an Instagram Login
//! token. [`OwnershipProof::prove`] records it as the connection's `authorized_by` when the
//! caller named none, so the channel is in the callback's index.
//!
//! Nothing here logs or returns a token; refusals carry a stable kind for logs and the audit
//! log, and a sentence for the caller that speaks only of the supplied token.

use std::fmt;

use crate::bitrix::BitrixClient;
use crate::graph::{
    BusinessPhoneNumber, GraphClient, GraphError, WHATSAPP_MANAGEMENT, WHATSAPP_MESSAGING,
};
use crate::ids::{InstagramAccountId, MetaAppId, MetaUserId, WabaId};
use crate::meta::AppSecret;
use crate::portal::verify::{verify_portal, PortalProofError};
use crate::secret::Secret;
use crate::tenant::meta_account::DISPLAY_NUMBER_DETAIL;
use crate::tenant::{ChannelRef, Connection};

/// The channel detail with a WhatsApp number's verified business name (Meta's
/// `verified_name`), recorded at connect with its display number.
pub const VERIFIED_NAME_DETAIL: &str = "verified_name";

/// Why the supplied token does not prove ownership.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Meta does not accept the token (unknown, expired, revoked).
    TokenNotValid,
    /// The token was issued for another Meta app.
    OtherApp,
    /// The token does not grant both WhatsApp permissions on the claimed WABA.
    WabaNotGranted,
    /// The claimed number is not one of the WABA's numbers.
    NumberNotInWaba,
    /// The token belongs to another Instagram account.
    AccountMismatch,
    /// The Bitrix24 tokens are not this portal's (refused by the OAuth server, another
    /// `member_id`, another address).
    PortalNotConfirmed,
}

impl Refusal {
    /// Stable name for logs and the audit log.
    pub fn kind(self) -> &'static str {
        match self {
            Refusal::TokenNotValid => "token_not_valid",
            Refusal::OtherApp => "token_of_another_app",
            Refusal::WabaNotGranted => "waba_not_granted",
            Refusal::NumberNotInWaba => "number_not_in_waba",
            Refusal::AccountMismatch => "account_mismatch",
            Refusal::PortalNotConfirmed => "portal_not_confirmed",
        }
    }

    /// What the caller is told: only about the token it supplied.
    pub fn message(self) -> &'static str {
        match self {
            Refusal::TokenNotValid => "Meta does not accept the access token (expired, revoked or not a Meta token)",
            Refusal::OtherApp => "the access token was not issued for this platform's Meta app",
            Refusal::WabaNotGranted => "the access token does not grant whatsapp_business_management and whatsapp_business_messaging on this WhatsApp Business Account",
            Refusal::NumberNotInWaba => "the phone number is not a number of this WhatsApp Business Account",
            Refusal::AccountMismatch => "the access token belongs to another Instagram account",
            Refusal::PortalNotConfirmed => "Bitrix24 does not confirm that these tokens belong to this member_id and domain",
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

/// A claim that could not be proven.
#[derive(Debug, thiserror::Error)]
pub enum ProofError {
    /// The provider answered: the token does not prove ownership.
    #[error("ownership not proven: {0}")]
    NotProven(Refusal),
    /// The provider could not be asked (down, timeout, rate limit): nothing is known.
    #[error("{provider} could not be reached to verify the token: {detail}")]
    Unavailable {
        provider: &'static str,
        detail: String,
    },
    /// The provider answered something its documentation does not describe.
    #[error("{provider} answered unexpectedly while verifying the token: {detail}")]
    BadAnswer {
        provider: &'static str,
        detail: String,
    },
    /// The claim lacks a field the proof needs (the admin API's parser requires them all).
    #[error("{0} is required to prove ownership")]
    Incomplete(&'static str),
    /// This deployment cannot prove this kind of channel: the named setting is missing.
    #[error("connecting this channel needs {0}, which is not configured")]
    NotConfigured(&'static str),
}

impl ProofError {
    /// Stable name for logs and the audit log.
    pub fn kind(&self) -> &'static str {
        match self {
            ProofError::NotProven(r) => r.kind(),
            ProofError::Unavailable { .. } => "provider_unavailable",
            ProofError::BadAnswer { .. } => "provider_bad_answer",
            ProofError::Incomplete(_) => "incomplete",
            ProofError::NotConfigured(_) => "not_configured",
        }
    }
}

const META: &str = "Meta";
const BITRIX: &str = "Bitrix24";

/// A Graph failure while proving: retryable ones say nothing about the token; a refusal by
/// Meta (credentials, missing object, rejected request) counts as `refusal`.
fn graph_failure(e: GraphError, refusal: Refusal) -> ProofError {
    if e.is_retryable() {
        return ProofError::Unavailable {
            provider: META,
            detail: e.kind().to_owned(),
        };
    }
    match e {
        GraphError::Unauthorized(_) | GraphError::NotFound(_) | GraphError::Rejected(_) => {
            ProofError::NotProven(refusal)
        }
        other => ProofError::BadAnswer {
            provider: META,
            detail: other.to_string(),
        },
    }
}

struct MetaApp {
    id: MetaAppId,
    token: Secret,
}

/// Proves claims. Build once per process.
#[derive(Clone)]
pub struct OwnershipProof {
    graph: GraphClient,
    instagram: GraphClient,
    app: Option<std::sync::Arc<MetaApp>>,
    bitrix: Option<BitrixClient>,
}

impl fmt::Debug for OwnershipProof {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnershipProof")
            .field("meta_app", &self.app.as_ref().map(|a| a.id.clone()))
            .field("bitrix", &self.bitrix.is_some())
            .finish_non_exhaustive()
    }
}

impl OwnershipProof {
    /// `graph` reaches `graph.facebook.com` (WhatsApp, Pages), `instagram` reaches
    /// `graph.instagram.com` (Instagram Login). Without a Meta app nothing proves WhatsApp
    /// claims; without a Bitrix24 client nothing proves portal claims.
    pub fn new(graph: GraphClient, instagram: GraphClient) -> Self {
        OwnershipProof {
            graph,
            instagram,
            app: None,
            bitrix: None,
        }
    }

    /// The Meta app whose tokens are accepted: `debug_token` is asked with its app token.
    pub fn with_meta_app(mut self, id: MetaAppId, secret: &AppSecret) -> Self {
        let token = secret.app_access_token(&id);
        self.app = Some(std::sync::Arc::new(MetaApp { id, token }));
        self
    }

    /// The Bitrix24 application whose OAuth server confirms portals.
    pub fn with_bitrix(mut self, client: BitrixClient) -> Self {
        self.bitrix = Some(client);
        self
    }

    /// Proves `connection` with its own `access_token` (Bitrix24: `refresh_token`). On
    /// success a Bitrix24 connection carries the fresh pair the proof obtained, and a Meta
    /// connection without `authorized_by` names the Meta user the proof found (module
    /// documentation).
    pub async fn prove(&self, connection: &mut Connection) -> Result<(), ProofError> {
        let user = self.prove_channel(connection).await?;
        if connection.authorized_by.is_none() {
            // An id Meta answered that is not one (never seen) is not indexed: the
            // connection is proven all the same.
            connection.authorized_by = user.and_then(|u| MetaUserId::parse(&u).ok());
        }
        Ok(())
    }

    /// The proof itself; `Some`: the Meta user behind the token, when the proof learnt it.
    async fn prove_channel(
        &self,
        connection: &mut Connection,
    ) -> Result<Option<String>, ProofError> {
        let missing = ProofError::Incomplete;
        match connection.channel.clone() {
            ChannelRef::WhatsApp(phone) => {
                let waba = connection
                    .details
                    .get("waba_id")
                    .and_then(|w| WabaId::parse(w).ok())
                    .ok_or_else(|| missing("waba_id"))?;
                let token = connection
                    .secrets
                    .get("access_token")
                    .ok_or_else(|| missing("access_token"))?;
                let (number, user) = self.prove_whatsapp(phone.as_str(), &waba, token).await?;
                // The number as people write it and its verified name, which the proof's
                // read of the WABA's numbers returned: shown in the console's channel list
                // (decision 0062). What the caller gave is kept.
                for (detail, value) in [
                    (DISPLAY_NUMBER_DETAIL, number.display_phone_number),
                    (VERIFIED_NAME_DETAIL, number.verified_name),
                ] {
                    if let Some(v) = value.filter(|v| !v.trim().is_empty()) {
                        connection.details.entry(detail.to_owned()).or_insert(v);
                    }
                }
                Ok(user)
            }
            ChannelRef::Instagram(account) => {
                let token = connection
                    .secrets
                    .get("access_token")
                    .ok_or_else(|| missing("access_token"))?;
                let page = connection
                    .details
                    .get("page_id")
                    .and_then(|p| InstagramAccountId::parse(p).ok());
                self.prove_instagram(&account, page.as_ref(), token).await
            }
            ChannelRef::Bitrix24(member) => {
                let client = self
                    .bitrix
                    .as_ref()
                    .ok_or(ProofError::NotConfigured(crate::bitrix::ENV_CLIENT_ID))?;
                let domain = connection
                    .details
                    .get("domain")
                    .and_then(|d| crate::ids::BitrixDomain::parse(d).ok())
                    .ok_or_else(|| missing("domain"))?;
                let refresh = connection
                    .secrets
                    .get("refresh_token")
                    .ok_or_else(|| missing("refresh_token"))?;
                let fresh = verify_portal(client, &domain, &member, refresh)
                    .await
                    .map_err(|e| match e {
                        PortalProofError::Unavailable(e) => ProofError::Unavailable {
                            provider: BITRIX,
                            detail: e.kind().to_owned(),
                        },
                        _ => ProofError::NotProven(Refusal::PortalNotConfirmed),
                    })?;
                connection
                    .secrets
                    .insert("access_token", fresh.access_token);
                connection
                    .secrets
                    .insert("refresh_token", fresh.refresh_token);
                Ok(None)
            }
        }
    }

    async fn prove_whatsapp(
        &self,
        phone: &str,
        waba: &WabaId,
        token: &Secret,
    ) -> Result<(BusinessPhoneNumber, Option<String>), ProofError> {
        let app = self
            .app
            .as_ref()
            .ok_or(ProofError::NotConfigured("META_APP_ID and META_APP_SECRET"))?;
        let info = self
            .graph
            .debug_token(token, &app.token)
            .await
            .map_err(|e| {
                if matches!(e, GraphError::Unauthorized(_)) {
                    // Meta refuses the call itself: an input token of another app, or our
                    // own app token misconfigured. Both refuse the claim; the log tells
                    // operators which code came back.
                    tracing::warn!(code = e.code().unwrap_or(0), "debug_token refused");
                }
                graph_failure(e, Refusal::TokenNotValid)
            })?;
        if !info.is_valid {
            return Err(ProofError::NotProven(Refusal::TokenNotValid));
        }
        if info.app_id.as_deref() != Some(app.id.as_str()) {
            return Err(ProofError::NotProven(Refusal::OtherApp));
        }
        let waba_id = waba.as_str();
        if !(info.grants(WHATSAPP_MANAGEMENT, waba_id) && info.grants(WHATSAPP_MESSAGING, waba_id))
        {
            return Err(ProofError::NotProven(Refusal::WabaNotGranted));
        }
        let numbers = self
            .graph
            .waba_phone_numbers(waba, token)
            .await
            .map_err(|e| graph_failure(e, Refusal::WabaNotGranted))?;
        let number = numbers
            .into_iter()
            .find(|n| n.id == phone)
            .ok_or(ProofError::NotProven(Refusal::NumberNotInWaba))?;
        // The user the token is for (graph-api/reference/debug_token: `user_id`).
        Ok((number, info.user_id))
    }

    async fn prove_instagram(
        &self,
        account: &InstagramAccountId,
        page: Option<&InstagramAccountId>,
        token: &Secret,
    ) -> Result<Option<String>, ProofError> {
        let (found, user) = match page {
            // A Page token names no Instagram user of ours.
            Some(page) => (
                self.graph
                    .page_instagram_account(page, token)
                    .await
                    .map_err(|e| graph_failure(e, Refusal::TokenNotValid))?,
                None,
            ),
            None => {
                let me = self
                    .instagram
                    .instagram_me(token)
                    .await
                    .map_err(|e| graph_failure(e, Refusal::TokenNotValid))?;
                // `user_id` is the professional account, `id` the app user's app-scoped id
                // (instagram-platform/reference/me, the User node): the id the Data Deletion
                // Callback's signed request carries ("an app-scoped ID identifying the
                // user", development/create-an-app/app-dashboard/data-deletion-callback).
                (me.user_id, me.id)
            }
        };
        if found.as_deref() == Some(account.as_str()) {
            Ok(user)
        } else {
            Err(ProofError::NotProven(Refusal::AccountMismatch))
        }
    }
}
