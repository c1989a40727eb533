//! WhatsApp through Meta's Embedded Signup, v4 (WhatsApp Business Platform, "Embedded Signup
//! > Implementation"; v2 and v3 are deprecated).
//!
//! The console launches Meta's JavaScript SDK with our app id and the Facebook Login for
//! Business configuration (`config_id`), listens for the session-info `message` event of type
//! `WA_EMBEDDED_SIGNUP` and posts what it got to us ([`SignupForm`]): the event (`FINISH`,
//! `FINISH_WHATSAPP_BUSINESS_APP_ONBOARDING` for a Coexistence number, `FINISH_ONLY_WABA`,
//! `CANCEL` with `current_step`, `ERROR` with `error_message`), and on a finish the
//! exchangeable `code` from `FB.login`'s `authResponse` with `data.waba_id` and
//! `data.phone_number_id`.
//!
//! [`EmbeddedSignup::complete`] then: exchanges the code for the business token; proves
//! ownership with it (`debug_token` shows our app and the WABA in its granular scopes, the
//! WABA lists the number: decision 0032); stores the token encrypted and claims the route (one
//! transaction; 409 `cannot_connect` for an id another tenant holds); subscribes our app to
//! the WABA; registers the number with a two-step PIN, except for Coexistence numbers, which
//! the WhatsApp Business app keeps registered (they send at most 20 messages per second:
//! the `coexistence` detail makes the send path pace them so). A step after the claim that
//! fails undoes the connection (route and token gone at once, our access revoked at Meta).

use std::collections::BTreeMap;

use serde::Deserialize;

use super::report::{self, Connected, Failure, FailureKind, Step};
use super::{audit, claim_failure, proof_failure, roll_back, VIA_EMBEDDED_SIGNUP};
use crate::audit::{AuditAction, AuditLog};
use crate::graph::GraphClient;
use crate::ids::{MetaAppId, PhoneNumberId, WabaId};
use crate::ownership::OwnershipProof;
use crate::revocation::Revocations;
use crate::secret::Secret;
use crate::tenant::{ChannelRef, Connection, TenantScope};

pub use crate::tenant::channel::COEXISTENCE_DETAIL;
/// The channel secret holding the number's two-step verification PIN.
pub const PIN_SECRET: &str = "two_step_pin";
/// Meta's SDK, loaded by the console (override for loopback fakes).
pub const DEFAULT_SDK_URL: &str = "https://connect.facebook.net/en_US/sdk.js";
/// Where Facebook Login's popup posts the session-info messages from: the origins Meta's
/// implementation guide has the page's `message` listener accept (override for loopback
/// fakes).
pub const DEFAULT_LOGIN_ORIGINS: &[&str] =
    &["https://www.facebook.com", "https://web.facebook.com"];

/// What the page posts, as posted. Unknown fields are refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignupForm {
    pub event: String,
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub waba_id: Option<String>,
    #[serde(default)]
    pub phone_number_id: Option<String>,
    /// The number's existing two-step PIN, when it has one; otherwise we choose one.
    #[serde(default)]
    pub pin: Option<String>,
    /// `CANCEL`: the screen the user left the flow on.
    #[serde(default)]
    pub current_step: Option<String>,
    /// `ERROR`: Meta's message.
    #[serde(default)]
    pub error_message: Option<String>,
}

/// A validated session-info event.
#[derive(Debug)]
pub enum SignupEvent {
    Finish {
        code: Secret,
        waba: WabaId,
        phone: PhoneNumberId,
        coexistence: bool,
        pin: Option<Secret>,
    },
    Cancel {
        current_step: Option<String>,
    },
    Error {
        message: Option<String>,
    },
}

/// Free text from the page: short, printable, or dropped.
fn note(v: Option<String>) -> Option<String> {
    v.map(|s| {
        s.chars()
            .filter(|c| !c.is_control())
            .take(200)
            .collect::<String>()
    })
    .filter(|s| !s.trim().is_empty())
}

impl SignupForm {
    /// Checks the form: a finish needs the code and both ids (and a PIN, when given, is six
    /// digits); `FINISH_ONLY_WABA` chose no number and is refused.
    pub fn validate(self) -> Result<SignupEvent, Failure> {
        let coexistence = match self.event.as_str() {
            "FINISH" => false,
            "FINISH_WHATSAPP_BUSINESS_APP_ONBOARDING" => true,
            "CANCEL" => {
                return Ok(SignupEvent::Cancel {
                    current_step: note(self.current_step),
                })
            }
            "ERROR" => {
                return Ok(SignupEvent::Error {
                    message: note(self.error_message),
                })
            }
            "FINISH_ONLY_WABA" => {
                return Err(Failure::invalid(
                    "no phone number was chosen in the sign-up: start again and add a number",
                ))
            }
            _ => return Err(Failure::invalid(
                "event: must be FINISH, FINISH_WHATSAPP_BUSINESS_APP_ONBOARDING, FINISH_ONLY_WABA, CANCEL or ERROR",
            )),
        };
        let bad = |e: String| Failure::invalid(e);
        let code = self
            .code
            .ok_or_else(|| Failure::invalid("code: required with a finish event"))?;
        let code = Secret::parse("code", &code).map_err(bad)?;
        let waba = WabaId::parse(
            self.waba_id
                .as_deref()
                .ok_or_else(|| Failure::invalid("waba_id: required with a finish event"))?,
        )
        .map_err(|e| bad(e.to_string()))?;
        let phone =
            PhoneNumberId::parse(self.phone_number_id.as_deref().ok_or_else(|| {
                Failure::invalid("phone_number_id: required with a finish event")
            })?)
            .map_err(|e| bad(e.to_string()))?;
        let pin = match self.pin {
            None => None,
            Some(_) if coexistence => {
                return Err(Failure::invalid(
                    "pin: a Coexistence number is not registered, so it takes no PIN",
                ))
            }
            Some(p) if p.len() == 6 && p.bytes().all(|b| b.is_ascii_digit()) => {
                Some(Secret::from_decrypted(p))
            }
            Some(_) => return Err(Failure::invalid("pin: must be 6 digits")),
        };
        Ok(SignupEvent::Finish {
            code,
            waba,
            phone,
            coexistence,
            pin,
        })
    }
}

/// What a completed signup answered.
#[derive(Debug)]
pub enum SignupOutcome {
    Connected(Box<Connected>),
    /// The user closed the flow: nothing was stored.
    Cancelled {
        current_step: Option<String>,
    },
}

/// A six-digit PIN from the system's random source.
fn generate_pin() -> Result<Secret, Failure> {
    let mut bytes = [0u8; 8];
    crate::crypto::random_bytes(&mut bytes).map_err(|_| {
        Failure::new(
            FailureKind::Internal,
            "no PIN could be generated; nothing was connected",
            Vec::new(),
        )
    })?;
    Ok(Secret::from_decrypted(format!(
        "{:06}",
        u64::from_le_bytes(bytes) % 1_000_000
    )))
}

/// The Embedded Signup flow. Build once per process.
#[derive(Clone)]
pub struct EmbeddedSignup {
    graph: GraphClient,
    app: Option<(MetaAppId, Secret)>,
    proof: OwnershipProof,
    revocations: Revocations,
    audit: AuditLog,
}

impl EmbeddedSignup {
    /// `graph` on `graph.facebook.com`; `app` is our Meta app's id and secret (without them
    /// every finish answers `not_configured`).
    pub fn new(
        graph: GraphClient,
        app: Option<(MetaAppId, Secret)>,
        proof: OwnershipProof,
        revocations: Revocations,
        audit: AuditLog,
    ) -> Self {
        EmbeddedSignup {
            graph,
            app,
            proof,
            revocations,
            audit,
        }
    }

    /// Handles the page's session-info event for the caller's tenant (`scope`, from the
    /// authenticated context); `actor` names the caller in the audit log.
    pub async fn complete(
        &self,
        scope: &TenantScope,
        actor: &str,
        event: SignupEvent,
    ) -> Result<SignupOutcome, Failure> {
        let (code, waba, phone, coexistence, pin) = match event {
            SignupEvent::Cancel { current_step } => {
                tracing::info!(tenant = %scope.tenant(), step = current_step.as_deref().unwrap_or("unknown"), "embedded signup cancelled");
                return Ok(SignupOutcome::Cancelled { current_step });
            }
            SignupEvent::Error { message } => {
                let said = message.map_or_else(String::new, |m| format!(": {m}"));
                return Err(Failure::new(
                    FailureKind::SignupError,
                    format!(
                        "Meta reported an error during the sign-up{said}; nothing was connected"
                    ),
                    Vec::new(),
                ));
            }
            SignupEvent::Finish {
                code,
                waba,
                phone,
                coexistence,
                pin,
            } => (code, waba, phone, coexistence, pin),
        };
        let tenant = scope.tenant().clone();
        let channel = ChannelRef::WhatsApp(phone.clone());
        let result = self
            .connect(scope, actor, code, &waba, &phone, coexistence, pin)
            .await;
        match result {
            Ok(done) => {
                let coexist = if coexistence { "true" } else { "false" };
                audit(
                    &self.audit,
                    &tenant,
                    AuditAction::ChannelConnected,
                    actor,
                    &[
                        ("kind", "whatsapp"),
                        ("channel", phone.as_str()),
                        ("via", VIA_EMBEDDED_SIGNUP),
                        ("coexistence", coexist),
                    ],
                )
                .await;
                Ok(SignupOutcome::Connected(Box::new(done)))
            }
            Err(failure) => {
                tracing::warn!(%tenant, channel = %channel.external_id(), reason = failure.reason, "embedded signup refused");
                audit(
                    &self.audit,
                    &tenant,
                    AuditAction::ChannelConnectRefused,
                    actor,
                    &[
                        ("kind", "whatsapp"),
                        ("channel", phone.as_str()),
                        ("via", VIA_EMBEDDED_SIGNUP),
                        ("reason", failure.reason),
                    ],
                )
                .await;
                Err(failure)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn connect(
        &self,
        scope: &TenantScope,
        actor: &str,
        code: Secret,
        waba: &WabaId,
        phone: &PhoneNumberId,
        coexistence: bool,
        pin: Option<Secret>,
    ) -> Result<Connected, Failure> {
        let mut steps = Vec::new();
        let Some((app_id, app_secret)) = &self.app else {
            return Err(Failure::new(
                FailureKind::NotConfigured,
                "connecting WhatsApp needs META_APP_ID and META_APP_SECRET, which are not configured",
                steps,
            ));
        };
        // 1. The code, valid once and briefly, for the business token.
        let token = match self
            .graph
            .exchange_business_code(app_id, app_secret, &code)
            .await
        {
            Ok(t) => t.access_token,
            Err(e) => {
                let (kind, message) = report::exchange_error(
                    "Meta",
                    &e,
                    "exchanging the sign-up code",
                    "the sign-up code has expired or was already used: start the sign-up again",
                );
                steps.push(Step::failed(report::EXCHANGE, &message));
                return Err(Failure::new(kind, message, steps));
            }
        };
        steps.push(Step::ok(
            report::EXCHANGE,
            "Meta issued an access token for the business",
        ));
        // 2. Proof before anything is stored (decision 0032).
        let mut details = BTreeMap::new();
        details.insert("waba_id".to_owned(), waba.as_str().to_owned());
        details.insert("onboarding".to_owned(), VIA_EMBEDDED_SIGNUP.to_owned());
        if coexistence {
            details.insert(COEXISTENCE_DETAIL.to_owned(), "true".to_owned());
        }
        let mut secrets = BTreeMap::new();
        secrets.insert("access_token", token.clone());
        let mut connection = Connection {
            channel: ChannelRef::WhatsApp(phone.clone()),
            details,
            secrets,
            authorized_by: None,
        };
        if let Err(e) = self.proof.prove(&mut connection).await {
            return Err(proof_failure(e, &mut steps));
        }
        steps.push(Step::ok(
            report::VERIFY,
            "the token grants this platform the WhatsApp Business Account, which lists the number",
        ));
        // The PIN is stored with the token, so a later re-registration can use it.
        let pin = if coexistence {
            None
        } else {
            Some(match pin {
                Some(p) => p,
                None => generate_pin().map_err(|mut f| {
                    f.steps = std::mem::take(&mut steps);
                    f
                })?,
            })
        };
        if let Some(p) = &pin {
            connection.secrets.insert(PIN_SECRET, p.clone());
        }
        // 3. Token and route in one transaction.
        let (summary, created) = match scope.connect(connection).await {
            Ok(done) => done,
            Err(e) => return Err(claim_failure(e, "this WhatsApp number", &mut steps)),
        };
        steps.push(Step::ok(
            report::CLAIM,
            "the number is connected to this account; its token is stored encrypted",
        ));
        let channel = ChannelRef::WhatsApp(phone.clone());
        // 4. Our app receives the WABA's webhooks.
        if let Err(e) = self.graph.subscribe_app(waba, &token).await {
            let (kind, message) = report::graph_step_error(
                "Meta",
                &e,
                "subscribing this platform to the account's webhooks",
            );
            steps.push(Step::failed(report::SUBSCRIBE, &message));
            let failure = Failure::new(kind, message, steps).with_reason("subscribe_failed");
            return Err(roll_back(&self.revocations, scope, &channel, actor, failure).await);
        }
        steps.push(Step::ok(
            report::SUBSCRIBE,
            "this platform receives the account's messages",
        ));
        // The account's message templates, for operators (decision 0050; a failure is
        // retried by the schedule).
        crate::templates::sync::after_connect(&self.graph, scope, &channel).await;
        // 5. Registration, except for numbers the WhatsApp Business app keeps registered.
        match &pin {
            None => steps.push(Step::skipped(
                report::REGISTER,
                "a number shared with the WhatsApp Business app stays registered there (up to 20 messages per second)",
            )),
            Some(pin) => {
                if let Err(e) = self.graph.register_number(phone, pin, &token).await {
                    let (kind, message) = report::graph_step_error("Meta", &e, "registering the number");
                    steps.push(Step::failed(report::REGISTER, &message));
                    let failure =
                        Failure::new(kind, message, steps).with_reason("register_failed");
                    return Err(roll_back(&self.revocations, scope, &channel, actor, failure).await);
                }
                steps.push(Step::ok(
                    report::REGISTER,
                    "the number is registered for the Cloud API with a two-step PIN (stored encrypted)",
                ));
            }
        }
        Ok(Connected {
            channel: summary,
            created,
            steps,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(event: &str) -> SignupForm {
        SignupForm {
            event: event.into(),
            code: Some("AQBx-code".into()),
            waba_id: Some("102290129340398".into()),
            phone_number_id: Some("106540352242922".into()),
            ..SignupForm::default()
        }
    }

    #[test]
    fn forms_are_validated() {
        assert!(matches!(
            form("FINISH").validate(),
            Ok(SignupEvent::Finish {
                coexistence: false,
                pin: None,
                ..
            })
        ));
        assert!(matches!(
            form("FINISH_WHATSAPP_BUSINESS_APP_ONBOARDING").validate(),
            Ok(SignupEvent::Finish {
                coexistence: true,
                ..
            })
        ));
        assert!(matches!(
            form("CANCEL").validate(),
            Ok(SignupEvent::Cancel { .. })
        ));
        for bad in ["FINISH_ONLY_WABA", "finish", ""] {
            assert!(form(bad).validate().is_err(), "{bad}");
        }
        let mut f = form("FINISH");
        f.pin = Some("12345".into());
        assert!(f.validate().is_err());
        let mut f = form("FINISH");
        f.code = None;
        assert_eq!(f.validate().unwrap_err().kind, FailureKind::Invalid);
        let mut f = form("FINISH");
        f.waba_id = Some("../x".into());
        assert!(f.validate().is_err());
    }

    #[test]
    fn pins_are_six_digits() {
        for _ in 0..20 {
            let p = generate_pin().unwrap();
            assert_eq!(p.expose().len(), 6);
            assert!(p.expose().bytes().all(|b| b.is_ascii_digit()));
        }
    }
}
