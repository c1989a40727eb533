//! erasure-worker's scheduled run, shared by its `main.rs` and the sample events' test: the
//! tenant-erasure sweep for requests whose grace period is over, then the renewal of the
//! Instagram Login tokens that are due (decision 0040: the account-maintenance schedule; its
//! role already reads the channels, their keys and sends account email), then the email of a
//! changed privacy policy to the users not mailed it yet (decision 0047), then the re-read of
//! the WhatsApp Business Accounts' message templates that are due (decision 0050), then the
//! check of the webhook subscriptions that are due (decision 0051: same reads, and Meta).

use wappline::accounts::policy::PolicyMailing;

use wappline::app::runtime::Error;
use wappline::erasure::tenant::TenantErasure;
use wappline::onboarding::refresh::TokenRefresh;
use wappline::onboarding::subscriptions::SubscriptionCheck;
use wappline::templates::sync::TemplateSync;

/// Items deleted per scheduled invocation (well inside the function's timeout).
pub const SWEEP_BUDGET: usize = 5_000;
/// Tokens renewed per scheduled invocation (each is one call to Instagram).
pub const REFRESH_BUDGET: usize = 200;
/// Privacy-policy emails per scheduled invocation (one SES call each).
pub const POLICY_MAIL_BUDGET: usize = 500;
/// Business accounts whose templates are re-read per scheduled invocation (a few pages of
/// `message_templates` each).
pub const TEMPLATE_BUDGET: usize = 100;
/// Webhook subscriptions checked per scheduled invocation (one or two calls to Meta each).
pub const SUBSCRIPTION_BUDGET: usize = 200;

/// One scheduled run; whether more work is left is the invocation's answer.
pub async fn scheduled(
    sweep: &TenantErasure,
    refresh: &TokenRefresh,
    policy: &PolicyMailing,
    templates: &TemplateSync,
    subscriptions: &SubscriptionCheck,
) -> Result<serde_json::Value, Error> {
    let report = sweep.run_due(SWEEP_BUDGET).await?;
    tracing::info!(
        tenants_completed = report.tenants_completed,
        items_deleted = report.items_deleted,
        more_work = report.more_work,
        "tenant erasure sweep"
    );
    let tokens = refresh
        .run_due(wappline::clock::now_secs(), REFRESH_BUDGET)
        .await?;
    tracing::info!(
        checked = tokens.checked,
        refreshed = tokens.refreshed,
        failed = tokens.failed,
        "token refresh"
    );
    let policy = policy.run(POLICY_MAIL_BUDGET).await?;
    let synced = templates
        .run_due(wappline::clock::now_secs(), TEMPLATE_BUDGET)
        .await?;
    tracing::info!(
        synced = synced.synced,
        failed = synced.failed,
        removed = synced.removed,
        "message templates"
    );
    let subs = subscriptions
        .run_due(wappline::clock::now_secs(), SUBSCRIPTION_BUDGET)
        .await?;
    tracing::info!(
        checked = subs.checked,
        resubscribed = subs.resubscribed,
        failed = subs.failed,
        backfilled = subs.backfilled,
        "webhook subscription check"
    );
    Ok(serde_json::json!({
        "more_work": report.more_work || policy.more_work,
        "tokens": tokens,
        "policy_mailed": policy.mailed,
        "templates": synced,
        "subscriptions": subs,
    }))
}
