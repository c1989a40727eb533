//! Instagram through Instagram Login (Instagram API with Instagram Login, "Business Login
//! for Instagram").
//!
//! 1. [`InstagramLogin::authorize`] gives the console the authorization URL
//!    (`https://www.instagram.com/oauth/authorize?client_id&redirect_uri&response_type=code&
//!    scope=instagram_business_basic,instagram_business_manage_messages&state`) with a signed
//!    `state` bound to the tenant and the user who started, valid [`STATE_SECS`].
//! 2. Instagram redirects the user to our redirect URI with `code` and `state`; the console
//!    hands both to [`InstagramLogin::complete`] for the signed-in caller, which checks the
//!    state, exchanges the code for a short-lived token (`api.instagram.com`), then for a
//!    long-lived one (`graph.instagram.com`, 60 days), proves the account (`/me`'s `user_id`
//!    must be the account the code was issued for), stores the token encrypted with its
//!    expiry and claims the route, and subscribes the account's webhooks. A failure after the
//!    claim undoes the connection.
//!
//! The long-lived token is renewed by [`super::refresh::TokenRefresh`].

use std::collections::BTreeMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::refresh::TokenRefresh;
use super::report::{self, Connected, Failure, FailureKind, Step};
use super::{audit, claim_failure, proof_failure, roll_back, VIA_INSTAGRAM_LOGIN};
use crate::audit::{AuditAction, AuditLog};
use crate::graph::subscriptions::instagram_fields;
use crate::graph::GraphClient;
use crate::ids::{InstagramAccountId, TenantId};
use crate::ownership::OwnershipProof;
use crate::revocation::Revocations;
use crate::secret::Secret;
use crate::tenant::{ChannelRef, Connection, TenantScope};

type HmacSha256 = Hmac<Sha256>;

/// The permissions asked for: the account's basics, its messages, and the comments on its
/// media (answered by private reply, decision 0062).
pub const SCOPES: &str = "instagram_business_basic,instagram_business_manage_messages,\
instagram_business_manage_comments";
const MESSAGING_PERMISSION: &str = "instagram_business_manage_messages";
/// Instagram's authorization window (override for loopback fakes).
pub const DEFAULT_AUTHORIZE_URL: &str = "https://www.instagram.com/oauth/authorize";
/// Instagram's OAuth host for the code exchange (override for loopback fakes).
pub const DEFAULT_OAUTH_BASE_URL: &str = "https://api.instagram.com";
/// Where the console serves the page Instagram redirects to (below the public base URL);
/// the redirect URI registered with the Instagram app.
pub const REDIRECT_PATH: &str = "/app/onboarding/instagram/callback";
/// How long a started sign-in may take.
pub const STATE_SECS: i64 = 15 * 60;
/// A long-lived token's life when Meta does not say (60 days).
pub const LONG_LIVED_SECS: i64 = 60 * 86_400;
const STATE_PREFIX: &str = "igs1.";
const STATE_DOMAIN: &[u8] = b"wappline-instagram-login-state\0";
const MAX_STATE_CHARS: usize = 512;

/// The key that signs sign-in states (at least 32 bytes).
#[derive(Clone)]
pub struct LoginStateKey(zeroize::Zeroizing<Vec<u8>>);

impl LoginStateKey {
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        (bytes.len() >= 32).then(|| LoginStateKey(zeroize::Zeroizing::new(bytes.to_vec())))
    }

    fn mac(&self, payload: &[u8]) -> HmacSha256 {
        let mut m = HmacSha256::new_from_slice(&self.0).expect("HMAC accepts keys of any length");
        m.update(STATE_DOMAIN);
        m.update(payload);
        m
    }

    fn sign(&self, claims: &StateClaims) -> String {
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("plain struct"));
        let sig = self.mac(payload.as_bytes()).finalize().into_bytes();
        format!("{STATE_PREFIX}{payload}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    /// The claims of a state this key signed; the signature is checked (in constant time)
    /// before anything is parsed.
    fn verify(&self, state: &str) -> Option<StateClaims> {
        if state.len() > MAX_STATE_CHARS {
            return None;
        }
        let (payload, sig) = state.strip_prefix(STATE_PREFIX)?.split_once('.')?;
        let sig = URL_SAFE_NO_PAD.decode(sig).ok()?;
        self.mac(payload.as_bytes()).verify_slice(&sig).ok()?;
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()
    }
}

impl std::fmt::Debug for LoginStateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LoginStateKey(<redacted>)")
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateClaims {
    /// Tenant.
    t: String,
    /// The user (actor) who started.
    u: String,
    /// Random, so two states never repeat.
    n: String,
    exp: i64,
}

/// What the console sends the user to.
#[derive(Clone, Debug, Serialize)]
pub struct Authorization {
    pub authorize_url: String,
    pub state: String,
    pub expires_at: i64,
}

/// Our Instagram app (Instagram Login has its own app id and secret).
#[derive(Clone)]
pub struct InstagramApp {
    pub id: String,
    pub secret: Secret,
    /// Exactly the redirect URI registered with the app; the exchange repeats it.
    pub redirect_uri: String,
}

/// The Instagram Login flow. Build once per process.
#[derive(Clone)]
pub struct InstagramLogin {
    /// `api.instagram.com`: the code exchange.
    oauth: GraphClient,
    /// `graph.instagram.com`: the long-lived token, `/me`, webhooks.
    graph: GraphClient,
    app: Option<InstagramApp>,
    authorize_url: String,
    state_key: LoginStateKey,
    proof: OwnershipProof,
    revocations: Revocations,
    audit: AuditLog,
}

fn not_configured() -> Failure {
    Failure::new(
        FailureKind::NotConfigured,
        "connecting Instagram needs INSTAGRAM_APP_ID, INSTAGRAM_APP_SECRET and INSTAGRAM_REDIRECT_URI, which are not configured",
        Vec::new(),
    )
}

impl InstagramLogin {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        oauth: GraphClient,
        graph: GraphClient,
        app: Option<InstagramApp>,
        authorize_url: String,
        state_key: LoginStateKey,
        proof: OwnershipProof,
        revocations: Revocations,
        audit: AuditLog,
    ) -> Self {
        InstagramLogin {
            oauth,
            graph,
            app,
            authorize_url,
            state_key,
            proof,
            revocations,
            audit,
        }
    }

    /// The authorization URL for `tenant`'s user `actor`, with its signed state.
    pub fn authorize(
        &self,
        tenant: &TenantId,
        actor: &str,
        now: i64,
    ) -> Result<Authorization, Failure> {
        let app = self.app.as_ref().ok_or_else(not_configured)?;
        let mut nonce = [0u8; 16];
        crate::crypto::random_bytes(&mut nonce).map_err(|_| {
            Failure::new(
                FailureKind::Internal,
                "no sign-in state could be made",
                Vec::new(),
            )
        })?;
        let expires_at = now + STATE_SECS;
        let state = self.state_key.sign(&StateClaims {
            t: tenant.as_str().to_owned(),
            u: actor.to_owned(),
            n: hex::encode(nonce),
            exp: expires_at,
        });
        let query: Vec<String> = [
            ("force_reauth", "true"),
            ("client_id", app.id.as_str()),
            ("redirect_uri", app.redirect_uri.as_str()),
            ("response_type", "code"),
            ("scope", SCOPES),
            ("state", state.as_str()),
        ]
        .iter()
        .map(|(k, v)| format!("{k}={}", form_encode(v)))
        .collect();
        Ok(Authorization {
            authorize_url: format!("{}?{}", self.authorize_url, query.join("&")),
            state,
            expires_at,
        })
    }

    /// Completes the sign-in the user came back from, for the caller's tenant (`scope`) and
    /// the caller (`actor`), who must be the tenant and user the state was issued to.
    pub async fn complete(
        &self,
        scope: &TenantScope,
        actor: &str,
        code: &str,
        state: &str,
        now: i64,
    ) -> Result<Connected, Failure> {
        self.state_key
            .verify(state)
            .filter(|c| c.exp > now)
            .filter(|c| c.t == scope.tenant().as_str() && c.u == actor)
            .ok_or_else(|| {
                Failure::new(
                    FailureKind::StateRejected,
                    "this Instagram sign-in has expired or was started by someone else: start it again",
                    Vec::new(),
                )
            })?;
        let code = Secret::parse("code", code).map_err(Failure::invalid)?;
        let result = self.connect(scope, actor, &code, now).await;
        let tenant = scope.tenant();
        match result {
            Ok(done) => {
                audit(
                    &self.audit,
                    tenant,
                    AuditAction::ChannelConnected,
                    actor,
                    &[
                        ("kind", "instagram"),
                        ("channel", &done.channel.id),
                        ("via", VIA_INSTAGRAM_LOGIN),
                    ],
                )
                .await;
                Ok(done)
            }
            Err(failure) => {
                tracing::warn!(%tenant, reason = failure.reason, "instagram login refused");
                audit(
                    &self.audit,
                    tenant,
                    AuditAction::ChannelConnectRefused,
                    actor,
                    &[
                        ("kind", "instagram"),
                        ("via", VIA_INSTAGRAM_LOGIN),
                        ("reason", failure.reason),
                    ],
                )
                .await;
                Err(failure)
            }
        }
    }

    async fn connect(
        &self,
        scope: &TenantScope,
        actor: &str,
        code: &Secret,
        now: i64,
    ) -> Result<Connected, Failure> {
        let app = self.app.as_ref().ok_or_else(not_configured)?;
        let mut steps = Vec::new();
        // 1. The code for a short-lived token and the account it belongs to.
        let short = match self
            .oauth
            .instagram_exchange_code(&app.id, &app.secret, &app.redirect_uri, code)
            .await
        {
            Ok(t) => t,
            Err(e) => {
                let (kind, message) = report::exchange_error(
                    "Instagram",
                    &e,
                    "exchanging the sign-in code",
                    "the Instagram sign-in code has expired or was already used: start the sign-in again",
                );
                steps.push(Step::failed(report::EXCHANGE, &message));
                return Err(Failure::new(kind, message, steps));
            }
        };
        let account = match short
            .user_id
            .as_deref()
            .and_then(|id| InstagramAccountId::parse(id).ok())
        {
            Some(a) => a,
            None => {
                let message = "Instagram did not name the account the sign-in was for";
                steps.push(Step::failed(report::EXCHANGE, message));
                return Err(Failure::new(FailureKind::ProviderError, message, steps));
            }
        };
        if !short.permissions.is_empty()
            && !short.permissions.iter().any(|p| p == MESSAGING_PERMISSION)
        {
            let message = "the messaging permission (instagram_business_manage_messages) was not granted: sign in again and allow it";
            steps.push(Step::failed(report::EXCHANGE, message));
            return Err(Failure::new(FailureKind::NotProven, message, steps)
                .with_reason("messaging_not_granted"));
        }
        steps.push(Step::ok(
            report::EXCHANGE,
            "Instagram issued a short-lived token for the account",
        ));
        // 2. The long-lived token (60 days, renewed by the refresh job).
        let long = match self
            .graph
            .instagram_long_lived(&app.secret, &short.access_token)
            .await
        {
            Ok(t) => t,
            Err(e) => {
                let (kind, message) =
                    report::graph_step_error("Instagram", &e, "issuing a long-lived token");
                steps.push(Step::failed(report::LONG_LIVED, &message));
                return Err(Failure::new(kind, message, steps));
            }
        };
        let expires_at = now
            + long
                .expires_in
                .filter(|s| *s > 0)
                .unwrap_or(LONG_LIVED_SECS);
        steps.push(Step::ok(
            report::LONG_LIVED,
            "Instagram issued a token valid for 60 days; it is renewed automatically",
        ));
        // 3. The token's `/me` must be the account (decision 0032).
        let mut secrets = BTreeMap::new();
        secrets.insert("access_token", long.access_token.clone());
        let mut details = BTreeMap::new();
        details.insert("onboarding".to_owned(), VIA_INSTAGRAM_LOGIN.to_owned());
        let mut connection = Connection {
            channel: ChannelRef::Instagram(account.clone()),
            details,
            secrets,
            authorized_by: None,
        };
        if let Err(e) = self.proof.prove(&mut connection).await {
            return Err(proof_failure(e, &mut steps));
        }
        steps.push(Step::ok(
            report::VERIFY,
            "the token belongs to this account",
        ));
        // 4. Token and route in one transaction, then the expiry the refresh job reads.
        let (_, created) = match scope.connect(connection).await {
            Ok(done) => done,
            Err(e) => return Err(claim_failure(e, "this Instagram account", &mut steps)),
        };
        steps.push(Step::ok(
            report::CLAIM,
            "the account is connected to this account; its token is stored encrypted",
        ));
        let channel = ChannelRef::Instagram(account.clone());
        if let Err(e) = TokenRefresh::track(scope, &channel, expires_at, now).await {
            tracing::error!(tenant = %scope.tenant(), error = %e, "recording a token's expiry failed");
            let message = "the token's expiry could not be recorded";
            steps.push(Step::failed(report::RECORD_EXPIRY, message));
            let failure = Failure::new(FailureKind::Internal, message, steps);
            return Err(roll_back(&self.revocations, scope, &channel, actor, failure).await);
        }
        // 5. The account's messages come to us.
        if let Err(e) = self
            .graph
            .instagram_subscribe(&long.access_token, &instagram_fields())
            .await
        {
            let (kind, message) =
                report::graph_step_error("Instagram", &e, "subscribing the account's webhooks");
            steps.push(Step::failed(report::SUBSCRIBE, &message));
            let failure = Failure::new(kind, message, steps).with_reason("subscribe_failed");
            return Err(roll_back(&self.revocations, scope, &channel, actor, failure).await);
        }
        steps.push(Step::ok(
            report::SUBSCRIBE,
            "this platform receives the account's messages",
        ));
        let summary = scope
            .channel(&channel)
            .await
            .ok()
            .flatten()
            .ok_or_else(|| {
                Failure::new(
                    FailureKind::Internal,
                    "the connection was stored but could not be read back",
                    steps.clone(),
                )
            })?;
        Ok(Connected {
            channel: summary,
            created,
            steps,
        })
    }
}

/// `application/x-www-form-urlencoded` value encoding (unreserved characters kept).
fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_are_bound_signed_and_expire() {
        let key = LoginStateKey::from_bytes(&[7u8; 32]).unwrap();
        let claims = StateClaims {
            t: "tn_a".into(),
            u: "user:usr_b".into(),
            n: "00".into(),
            exp: 100,
        };
        let state = key.sign(&claims);
        let back = key.verify(&state).unwrap();
        assert_eq!((back.t.as_str(), back.exp), ("tn_a", 100));
        let other = LoginStateKey::from_bytes(&[8u8; 32]).unwrap();
        assert!(other.verify(&state).is_none());
        // A changed payload with the old signature fails.
        let sig = state.rsplit_once('.').unwrap().1;
        let forged = URL_SAFE_NO_PAD.encode(br#"{"t":"tn_x","u":"user:usr_b","n":"00","exp":100}"#);
        assert!(key
            .verify(&format!("{STATE_PREFIX}{forged}.{sig}"))
            .is_none());
        assert!(LoginStateKey::from_bytes(&[1u8; 16]).is_none());
    }
}
