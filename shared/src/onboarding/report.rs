//! What a connect tells the user: each step's outcome in words, and on failure one kind
//! (for the HTTP status and the error code) and one sentence.

use serde::Serialize;

use crate::graph::GraphError;
use crate::tenant::ChannelSummary;

/// Step names, stable: the console may key translations on them.
pub const EXCHANGE: &str = "exchange_code";
pub const LONG_LIVED: &str = "long_lived_token";
pub const VERIFY: &str = "verify_ownership";
pub const CLAIM: &str = "store_and_claim";
pub const RECORD_EXPIRY: &str = "record_token_expiry";
pub const SUBSCRIBE: &str = "subscribe_webhooks";
pub const REGISTER: &str = "register_number";
pub const ROLL_BACK: &str = "roll_back";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Ok,
    Failed,
    Skipped,
}

/// One step's outcome, with a sentence for the user (no token, no provider answer body).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Step {
    pub step: &'static str,
    pub status: StepStatus,
    pub message: String,
}

impl Step {
    pub fn ok(step: &'static str, message: &str) -> Self {
        Step {
            step,
            status: StepStatus::Ok,
            message: message.to_owned(),
        }
    }
    pub fn failed(step: &'static str, message: &str) -> Self {
        Step {
            step,
            status: StepStatus::Failed,
            message: message.to_owned(),
        }
    }
    pub fn skipped(step: &'static str, message: &str) -> Self {
        Step {
            step,
            status: StepStatus::Skipped,
            message: message.to_owned(),
        }
    }
}

/// A channel connected: what is stored (never a secret) and the steps.
#[derive(Clone, Debug, Serialize)]
pub struct Connected {
    pub channel: ChannelSummary,
    /// False when the tenant had this channel already (its token was replaced).
    pub created: bool,
    pub steps: Vec<Step>,
}

/// Why a connect did not happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureKind {
    /// The request is malformed or incomplete (400).
    Invalid,
    /// The sign-in state is forged, expired or another user's (400).
    StateRejected,
    /// Meta refused the code: used, expired or not ours (422).
    CodeRejected,
    /// Meta reported an error in the sign-up itself (422).
    SignupError,
    /// The token does not prove control of the account (422).
    NotProven,
    /// Another tenant holds the id (409); says nothing more.
    CannotConnect,
    /// A step after the claim failed; the connection was rolled back (502).
    StepFailed,
    /// Meta could not be reached (503).
    Unavailable,
    /// Meta answered outside its documented formats (502).
    ProviderError,
    /// This deployment lacks a setting the flow needs (503).
    NotConfigured,
    /// Our own side failed (500).
    Internal,
}

impl FailureKind {
    pub fn status(self) -> u16 {
        match self {
            FailureKind::Invalid | FailureKind::StateRejected => 400,
            FailureKind::CodeRejected | FailureKind::SignupError | FailureKind::NotProven => 422,
            FailureKind::CannotConnect => 409,
            FailureKind::StepFailed | FailureKind::ProviderError => 502,
            FailureKind::Unavailable | FailureKind::NotConfigured => 503,
            FailureKind::Internal => 500,
        }
    }

    /// The error code of the JSON answer.
    pub fn code(self) -> &'static str {
        match self {
            FailureKind::Invalid => "invalid_request",
            FailureKind::StateRejected => "invalid_state",
            FailureKind::CodeRejected => "code_rejected",
            FailureKind::SignupError => "signup_error",
            FailureKind::NotProven => "ownership_not_proven",
            FailureKind::CannotConnect => "cannot_connect",
            FailureKind::StepFailed => "connect_failed",
            FailureKind::Unavailable => "provider_unavailable",
            FailureKind::ProviderError => "provider_error",
            FailureKind::NotConfigured => "not_configured",
            FailureKind::Internal => "internal_error",
        }
    }
}

/// A connect that did not happen: kind, one sentence, the steps so far.
#[derive(Clone, Debug)]
pub struct Failure {
    pub kind: FailureKind,
    pub message: String,
    pub steps: Vec<Step>,
    /// For logs and the audit log (`ownership_not_proven` kinds, `held_by_another_tenant`…).
    pub reason: &'static str,
}

impl Failure {
    pub fn new(kind: FailureKind, message: impl Into<String>, steps: Vec<Step>) -> Self {
        Failure {
            kind,
            message: message.into(),
            steps,
            reason: kind.code(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Failure::new(FailureKind::Invalid, message, Vec::new())
    }

    pub fn with_reason(mut self, reason: &'static str) -> Self {
        self.reason = reason;
        self
    }
}

/// A provider call of a step failed: unreachable (try later), an answer we do not understand,
/// or a refusal with Meta's error code. `provider` names who refused ("Meta", "Instagram"),
/// `doing` what we were doing; the sentence carries no answer body.
pub(super) fn graph_step_error(
    provider: &str,
    e: &GraphError,
    doing: &str,
) -> (FailureKind, String) {
    if e.is_retryable() {
        return (
            FailureKind::Unavailable,
            format!("{provider} could not be reached while {doing}; try again later"),
        );
    }
    match e {
        GraphError::Protocol(_) => (
            FailureKind::ProviderError,
            format!("{provider} answered unexpectedly while {doing}"),
        ),
        other => (
            FailureKind::StepFailed,
            format!(
                "{provider} refused {doing} (code {})",
                other
                    .code()
                    .map_or_else(|| "none".to_owned(), |c| c.to_string())
            ),
        ),
    }
}

/// A failed code exchange. A code the provider refuses has expired or was used already (the
/// user starts again, `expired` tells them so); any other failure is a step error.
pub(super) fn exchange_error(
    provider: &str,
    e: &GraphError,
    doing: &str,
    expired: &str,
) -> (FailureKind, String) {
    match e {
        GraphError::Rejected(_) | GraphError::Unauthorized(_) | GraphError::NotFound(_) => {
            (FailureKind::CodeRejected, expired.to_owned())
        }
        other => graph_step_error(provider, other, doing),
    }
}
