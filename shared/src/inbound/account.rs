//! The inbound worker's part of account and number events (decision 0051): the status is
//! recorded on the channel (the console shows it, the send path obeys it), and when a ban or
//! restriction starts or ends the tenant's owners and admins get an email. And of the
//! Instagram Handover Protocol: who holds a conversation is recorded, and each change is a
//! note in the Bitrix24 chat.

use std::sync::Arc;

use crate::accounts::{Mail, Mailer, Role};
use crate::ids::{PhoneNumberId, TenantId};
use crate::meta::account::AccountUpdate;
use crate::store::TableStore;
use crate::tenant::meta_account::MetaAccountStatus;
use crate::tenant::{ChannelRef, TenantError, TenantScope};

#[derive(askama::Template)]
#[template(path = "meta_account_restricted.txt")]
struct RestrictedMail<'a> {
    tenant_id: &'a str,
    number: &'a str,
    state: &'a str,
    effect: &'a str,
}

/// Records `update` on the number's channel and alerts the owners when what stops sends
/// changed. A channel disconnected meanwhile is not an error: nothing to record.
pub(super) async fn record(
    scope: &TenantScope,
    store: &Arc<dyn TableStore>,
    mailer: Option<&Arc<dyn Mailer>>,
    number: &PhoneNumberId,
    update: &AccountUpdate,
    at: i64,
) -> Result<(), TenantError> {
    let channel = ChannelRef::WhatsApp(number.clone());
    let (before, after) = match scope.record_account_update(&channel, update, at).await {
        Ok(pair) => pair,
        Err(TenantError::ChannelNotFound(_)) => {
            tracing::info!("account event for a number no longer connected; dropped");
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let now = crate::clock::now_secs();
    let (was, is) = (
        before.restriction_detail(now),
        after.restriction_detail(now),
    );
    tracing::info!(
        update = update.label(),
        restriction = is.as_deref().unwrap_or("none"),
        "WhatsApp account event recorded on the channel"
    );
    if was != is {
        alert(scope.tenant(), store, mailer, number, &after, now).await;
    }
    Ok(())
}

/// Shows the number's status on its own Open Line when `update` can change what stops its
/// sends (decision 0061). Every such event writes it again, so a retried job repeats the
/// write instead of skipping a change it already recorded.
pub(super) async fn show_on_line(
    line_status: Option<&crate::portal::line_status::LineStatus>,
    scope: &TenantScope,
    number: &PhoneNumberId,
    update: &AccountUpdate,
) -> Result<(), crate::portal::line_status::LineStatusError> {
    let Some(line_status) = line_status else {
        return Ok(());
    };
    if !matches!(
        update,
        AccountUpdate::Restricted { .. }
            | AccountUpdate::BanState { .. }
            | AccountUpdate::PartnerApp { .. }
    ) {
        return Ok(());
    }
    line_status
        .show(scope, &ChannelRef::WhatsApp(number.clone()))
        .await
        .map(|_| ())
}

/// Emails the tenant's owners and admins; a delivery failure is logged (the console shows
/// the status either way).
async fn alert(
    tenant: &TenantId,
    store: &Arc<dyn TableStore>,
    mailer: Option<&Arc<dyn Mailer>>,
    number: &PhoneNumberId,
    status: &MetaAccountStatus,
    now: i64,
) {
    let Some(mailer) = mailer else {
        return;
    };
    let users = match crate::accounts::users::list_users(store.as_ref(), tenant).await {
        Ok(u) => u,
        Err(e) => {
            tracing::warn!(%tenant, error = %e, "account alert: users not read");
            return;
        }
    };
    let (state, effect) = match status.send_block(now) {
        Some(block) => (
            status
                .restriction_detail(now)
                .unwrap_or_else(|| "restricted".into()),
            block.reason(),
        ),
        None => match status.restriction_detail(now) {
            Some(other) => (
                other,
                "Messages still go out, but Meta may stop them: check the account.".to_owned(),
            ),
            None => (
                "no restriction".to_owned(),
                "The restriction was lifted: messages go out again.".to_owned(),
            ),
        },
    };
    let text = askama::Template::render(&RestrictedMail {
        tenant_id: tenant.as_str(),
        number: number.as_str(),
        state: &state,
        effect: &effect,
    })
    .expect("the template only formats strings");
    for user in users
        .into_iter()
        .filter(|u| matches!(u.role, Role::Owner | Role::Admin))
    {
        let mail = Mail {
            to: user.email,
            subject: "Your WhatsApp number's status changed".into(),
            text: text.clone(),
        };
        if let Err(e) = mailer.send(&mail).await {
            tracing::warn!(%tenant, error = %e, "account alert not delivered");
        }
    }
}

/// Records a handover of the customer's conversation (`ours`: the operators' app holds it
/// now); the note for the chat when who answers changed (Meta's agent or another app, or
/// the operators again). Instagram and WhatsApp alike (decisions 0051, 0065).
#[allow(clippy::too_many_arguments)]
pub(super) async fn handover(
    store: &Arc<dyn TableStore>,
    conversations: &crate::conversation::Conversations,
    job: &super::InboundJob,
    customer: &crate::meta::CustomerRef,
    action: &str,
    new_owner: Option<&str>,
    ours: bool,
    (at, retention): (i64, u32),
) -> Result<Option<crate::conversation::NewMessage>, super::worker::InboundError> {
    use crate::conversation::handover::{Handovers, ThreadOwner};
    use crate::conversation::{Direction, NewMessage, Origin};
    if action == "request" {
        // Another app asks for the conversation; nothing changes until it is passed.
        tracing::info!("thread control requested by another app");
        return Ok(None);
    }
    let account = &job.event.account;
    let conversation = conversations
        .record_customer(account, customer, None, retention)
        .await?;
    let owner = ThreadOwner {
        app_id: new_owner.map(str::to_owned),
        ours,
        since: at,
    };
    let changed = Handovers::new(job.tenant_id.clone(), store.clone())
        .record(&conversation, &owner)
        .await?;
    tracing::info!(action, ours, changed, "conversation control changed");
    if !changed {
        return Ok(None);
    }
    let text = if ours {
        "[The operators answer this conversation again]".to_owned()
    } else {
        "[Meta's AI agent (or another app) now answers this conversation; its replies appear \
         here marked as sent by the business. Replying here takes the conversation back]"
            .to_owned()
    };
    Ok(Some(NewMessage::from_provider(
        &job.event.provider_event_id,
        Direction::Inbound,
        Origin::Customer,
        crate::meta::Content::System {
            body: Some(text),
            system_type: Some("handover".into()),
            new_phone: None,
            new_user_id: None,
            previous_user_id: None,
        },
        at,
        None,
    )))
}
