//! Self-service onboarding (decision 0040), for the tenant in the path (its users, or the
//! platform admin), with `manage_channels`:
//!
//! - `GET  /admin/tenants/{id}/onboarding`: what the connect page needs (Meta app id,
//!   Embedded Signup `config_id`, SDK URL, whether Instagram Login is configured);
//! - `POST /admin/tenants/{id}/onboarding/whatsapp`: the page's Embedded Signup session-info
//!   event with the code and ids; 201 with the per-step report, 200 `cancelled` for a
//!   `CANCEL`, or an error whose `steps` say how far it went;
//! - `POST /admin/tenants/{id}/onboarding/instagram/authorize`: the authorization URL and its
//!   signed state, bound to this tenant and caller;
//! - `POST /admin/tenants/{id}/onboarding/instagram/complete`: `{code, state}` from the
//!   redirect; 201 with the report, or an error with the steps.
//!
//! The flows live in `wappline::onboarding`; this maps their outcomes to HTTP.

use lambda_http::http::StatusCode;
use serde::Deserialize;
use wappline::clock::now_secs;
use wappline::edge::{self, parse_json, ApiError};
use wappline::onboarding::{Connected, Failure, SignupForm, SignupOutcome};

use crate::routing::{Call, Handled};

pub(crate) async fn page(c: &Call<'_>) -> Handled {
    c.scope().await?;
    Ok(edge::json(StatusCode::OK, &c.services.onboarding.page))
}

pub(crate) async fn whatsapp(c: &Call<'_>) -> Handled {
    let scope = c.scope().await?;
    let form: SignupForm = parse_json(c.body)?;
    let event = form.validate().map_err(failure)?;
    match c
        .services
        .onboarding
        .signup
        .complete(scope, c.actor(), event)
        .await
    {
        Ok(SignupOutcome::Connected(done)) => Ok(connected(&done)),
        Ok(SignupOutcome::Cancelled { current_step }) => Ok(edge::json(
            StatusCode::OK,
            &serde_json::json!({
                "outcome": "cancelled",
                "current_step": current_step,
                "message": "The sign-up was cancelled; nothing was connected.",
            }),
        )),
        Err(f) => Err(failure(f)),
    }
}

pub(crate) async fn instagram_authorize(c: &Call<'_>) -> Handled {
    let scope = c.scope().await?;
    let authorization = c
        .services
        .onboarding
        .instagram
        .authorize(scope.tenant(), c.actor(), now_secs())
        .map_err(failure)?;
    Ok(edge::json(StatusCode::OK, &authorization))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Callback {
    code: String,
    state: String,
}

pub(crate) async fn instagram_complete(c: &Call<'_>) -> Handled {
    let scope = c.scope().await?;
    let body: Callback = parse_json(c.body)?;
    let done = c
        .services
        .onboarding
        .instagram
        .complete(scope, c.actor(), &body.code, &body.state, now_secs())
        .await
        .map_err(failure)?;
    Ok(connected(&done))
}

fn connected(done: &Connected) -> lambda_http::http::Response<String> {
    let status = if done.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    edge::json(
        status,
        &serde_json::json!({
            "outcome": "connected",
            "channel": done.channel,
            "steps": done.steps,
        }),
    )
}

/// A flow's failure: its status and code, its sentence, and the steps in `error.steps`.
fn failure(f: Failure) -> ApiError {
    let status = StatusCode::from_u16(f.kind.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut e = ApiError::new(status, f.kind.code(), f.message);
    if !f.steps.is_empty() {
        e.details.insert(
            "steps".to_owned(),
            serde_json::to_value(&f.steps).unwrap_or_default(),
        );
    }
    e
}
