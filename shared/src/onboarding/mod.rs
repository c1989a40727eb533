//! Self-service onboarding (issue 14, decision 0040): a tenant connects its own WhatsApp
//! number through Meta's Embedded Signup ([`whatsapp::EmbeddedSignup`]) and its own Instagram
//! professional account through Instagram Login ([`instagram::InstagramLogin`]); a schedule
//! keeps Instagram's 60-day tokens alive ([`refresh::TokenRefresh`]).
//!
//! These are flows (layer 4): the typed Graph client makes the calls, `ownership` proves the
//! token before anything is claimed (decision 0032), `tenant` stores the token encrypted and
//! claims the route, `revocation` undoes a connection whose later step failed (decision
//! 0036), `audit` records what happened. The web console and the admin API both call them;
//! the tenant always comes from the caller's authenticated context, never from a body.
//!
//! Every connect answers a per-step report ([`report::Step`]) in words the console shows as
//! they are. A failure stores nothing, or rolls back what it stored, and says so.

pub mod instagram;
pub mod refresh;
pub mod report;
pub mod subscriptions;
pub mod whatsapp;

pub use instagram::{
    Authorization, InstagramApp, InstagramLogin, LoginStateKey, DEFAULT_AUTHORIZE_URL,
};
pub use refresh::{RefreshReport, TokenRefresh};
pub use report::{Connected, Failure, FailureKind, Step, StepStatus};
pub use whatsapp::{EmbeddedSignup, SignupEvent, SignupForm, SignupOutcome};

use crate::audit::{AuditAction, AuditLog};
use crate::ids::TenantId;
use crate::ownership::ProofError;
use crate::revocation::Revocations;
use crate::tenant::{ChannelRef, TenantError, TenantScope};

/// What the console's connect page needs to launch the flows (nothing secret).
#[derive(Clone, Debug, serde::Serialize)]
pub struct PageSettings {
    /// Embedded Signup: `FB.init({appId})` and `FB.login({config_id})`; null when WhatsApp
    /// onboarding is not configured.
    pub meta_app_id: Option<String>,
    pub es_config_id: Option<String>,
    /// Where the page loads Meta's JavaScript SDK from.
    pub sdk_url: String,
    /// True when Instagram Login is configured (`.../onboarding/instagram/authorize` works).
    pub instagram_login: bool,
}

/// What `channel_connected` and the refusals record as the connect path.
pub const VIA_EMBEDDED_SIGNUP: &str = "embedded_signup";
pub const VIA_INSTAGRAM_LOGIN: &str = "instagram_login";

/// A failed ownership proof as the report says it.
fn proof_failure(e: ProofError, steps: &mut Vec<Step>) -> Failure {
    let (kind, message) = match &e {
        ProofError::NotProven(refusal) => (FailureKind::NotProven, refusal.message().to_owned()),
        ProofError::Unavailable { provider, .. } => (
            FailureKind::Unavailable,
            format!("{provider} could not be reached to verify the account; nothing was stored, try again later"),
        ),
        ProofError::BadAnswer { provider, .. } => (
            FailureKind::ProviderError,
            format!("{provider} answered unexpectedly while verifying the account; nothing was stored"),
        ),
        ProofError::NotConfigured(setting) => (
            FailureKind::NotConfigured,
            format!("connecting this channel needs {setting}, which is not configured"),
        ),
        ProofError::Incomplete(field) => (
            FailureKind::Invalid,
            format!("{field} is required to verify the account"),
        ),
    };
    steps.push(Step::failed(report::VERIFY, &message));
    Failure::new(kind, message, std::mem::take(steps)).with_reason(e.kind())
}

/// Writes an audit entry; a failure to write it is logged, never fatal to the flow.
async fn audit(
    log: &AuditLog,
    tenant: &TenantId,
    action: AuditAction,
    actor: &str,
    details: &[(&str, &str)],
) {
    if let Err(e) = log.record(tenant, action, actor, details).await {
        tracing::warn!(%tenant, action = action.name(), error = %e, "audit entry not written");
    }
}

/// A claim refused because another tenant holds the id, or the store failed.
fn claim_failure(e: TenantError, what: &str, steps: &mut Vec<Step>) -> Failure {
    match e {
        TenantError::ChannelTaken(_) => {
            let message = format!("{what} cannot be connected");
            steps.push(Step::failed(report::CLAIM, &message));
            Failure::new(FailureKind::CannotConnect, message, std::mem::take(steps))
                .with_reason("held_by_another_tenant")
        }
        other => {
            tracing::error!(error = %other, "storing a connected channel failed");
            let message = "the connection could not be stored; nothing was connected, try again";
            steps.push(Step::failed(report::CLAIM, message));
            Failure::new(FailureKind::Internal, message, std::mem::take(steps))
        }
    }
}

/// Undoes a connection whose later step failed: the route and token go at once and our
/// access is revoked at the provider, as a disconnect does (decision 0036). The failure's
/// report says whether that worked.
async fn roll_back(
    revocations: &Revocations,
    scope: &TenantScope,
    channel: &ChannelRef,
    actor: &str,
    mut failure: Failure,
) -> Failure {
    match revocations.disconnect(scope, channel, actor, false).await {
        Ok(_) => {
            failure.steps.push(Step::ok(
                report::ROLL_BACK,
                "the connection was undone: nothing is connected and our access was given up",
            ));
            failure.message = format!("{}; nothing was connected", failure.message);
        }
        Err(e) => {
            tracing::error!(tenant = %scope.tenant(), error = %e, "rolling back a connection failed");
            failure.steps.push(Step::failed(
                report::ROLL_BACK,
                "the connection could not be undone: disconnect it from the channel list",
            ));
        }
    }
    failure
}
