//! The provider calls of a revocation, one per [`StepKind`]. Errors come back as words for
//! the record (the clients' errors never carry a token).

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;

use super::record::{token_attr, StepKind};
use crate::bitrix::{BitrixClient, TokenPair, TokenStore, TokenStoreError};
use crate::crypto::{Envelope, FieldRef};
use crate::graph::GraphClient;
use crate::ids::{BitrixDomain, PhoneNumberId, TenantId, WabaId};
use crate::portal::install::{APP_INSTALL_EVENT, BOUND_EVENTS};
use crate::portal::Connectors;
use crate::secret::Secret;
use crate::store::{Condition, Item, Key, Table, TableStore, Update};
use crate::tenant::{ChannelKind, ChannelRef};

pub(super) struct Context<'a> {
    pub store: &'a Arc<dyn TableStore>,
    pub envelope: &'a Arc<Envelope>,
    pub tenant: &'a TenantId,
    pub key: &'a Key,
    pub graph: &'a GraphClient,
    pub instagram: &'a GraphClient,
    pub bitrix: Option<&'a (BitrixClient, String)>,
    pub connectors: &'a Connectors,
}

pub(super) enum Outcome {
    Done,
    Skipped(String),
}

pub(super) async fn run(
    cx: &Context<'_>,
    step: StepKind,
    kind: ChannelKind,
    channel: &str,
    details: &BTreeMap<String, String>,
    tokens: &BTreeMap<&str, Secret>,
) -> Result<Outcome, String> {
    if let Some(why) = connected_again(cx, step, kind, channel).await? {
        return Ok(Outcome::Skipped(why.into()));
    }
    let token = tokens
        .get("access_token")
        .ok_or_else(|| "the access token is missing from the record".to_owned())?;
    match step {
        StepKind::WhatsAppSubscription => whatsapp(cx, channel, details, token).await,
        StepKind::InstagramPageSubscription => {
            let page = details
                .get("page_id")
                .ok_or_else(|| "no Page id recorded".to_owned())?;
            cx.graph
                .unsubscribe_app(page, token)
                .await
                .map(|()| Outcome::Done)
                .map_err(|e| e.to_string())
        }
        StepKind::InstagramPermissions => cx
            .instagram
            .revoke_permissions(token)
            .await
            .map(|()| Outcome::Done)
            .map_err(|e| e.to_string()),
        StepKind::Bitrix24Connectors | StepKind::Bitrix24Events => {
            bitrix(cx, step, details, tokens).await
        }
        StepKind::Bitrix24MessageProvider => message_provider(cx, channel).await,
    }
}

/// Why `step` is not to be taken any more: the channel was connected again since its
/// disconnect (a step left pending by a provider outage and retried later, or a connect
/// beside the disconnect), and the step would take away what the new connection relies on:
/// an Instagram user's grants to the app (`DELETE /me/permissions` takes every one, the new
/// token's too), a Page's or a portal's subscription to our app, the connectors and events of
/// a portal installed again, the message provider of a number connected again to the same
/// tenant (decision 0119). The WABA subscription step reads the routes itself (other numbers
/// of the WABA count too).
async fn connected_again(
    cx: &Context<'_>,
    step: StepKind,
    kind: ChannelKind,
    channel: &str,
) -> Result<Option<&'static str>, String> {
    match step {
        StepKind::WhatsAppSubscription => Ok(None),
        // The provider lives on this tenant's portal: a number now another tenant's is still
        // removed from it.
        StepKind::Bitrix24MessageProvider => {
            let number = PhoneNumberId::parse(channel).map_err(|e| e.to_string())?;
            let ours = route_of(cx, &ChannelRef::WhatsApp(number))
                .await?
                .is_some_and(|route| route.get_s("tenant_id") == Some(cx.tenant.as_str()));
            Ok(ours.then_some(
                "the number was connected again to this account: its message provider stays",
            ))
        }
        _ => {
            let channel = ChannelRef::parse(kind, channel).map_err(|e| e.to_string())?;
            Ok(route_of(cx, &channel)
                .await?
                .is_some()
                .then_some("the channel was connected again since: its access stays"))
        }
    }
}

/// Removes a WhatsApp number's message provider from the tenant's portal, with the portal's
/// live tokens (a refresh is stored on the portal's channel). Without a portal any more, the
/// portal dropped our providers with the app.
async fn message_provider(cx: &Context<'_>, channel: &str) -> Result<Outcome, String> {
    let Some((client, _)) = cx.bitrix else {
        return Ok(Outcome::Skipped(
            "no Bitrix24 application on this deployment".into(),
        ));
    };
    let phone = PhoneNumberId::parse(channel).map_err(|e| e.to_string())?;
    let scope =
        crate::tenant::TenantScope::new(cx.tenant.clone(), cx.store.clone(), cx.envelope.clone());
    let mut portal = match crate::portal::Portal::load(&scope).await {
        Ok(p) => p,
        Err(crate::portal::PortalError::NotConnected(_)) => {
            return Ok(Outcome::Skipped("the portal is no longer connected".into()))
        }
        Err(e) => return Err(e.to_string()),
    };
    let store = crate::portal::PortalTokens::new(scope.clone(), portal.channel.clone());
    let mut session = client.session(&portal.domain, &mut portal.tokens, &store);
    crate::portal::providers::unregister_provider(&mut session, &phone)
        .await
        .map(|()| Outcome::Done)
        .map_err(|e| format!("messageservice.sender.delete: {e}"))
}

/// Unsubscribes from the WABA unless one of its numbers still has a route (any tenant's).
///
/// A number of the WABA connected while this runs (after the routes were read, before Meta
/// took the unsubscribe) would lose its webhooks: its connect subscribed the app, and the
/// unsubscribe landing after that removes it until the daily subscription check (decision
/// 0051). So the routes are read again once the app is unsubscribed, and a route found then
/// subscribes it again (decision 0119). A connect writes its route before it subscribes: one
/// whose route comes after that second read subscribes after the unsubscribe itself.
async fn whatsapp(
    cx: &Context<'_>,
    channel: &str,
    details: &BTreeMap<String, String>,
    token: &Secret,
) -> Result<Outcome, String> {
    let Some(waba) = details.get("waba_id") else {
        return Ok(Outcome::Skipped("no WABA id recorded".into()));
    };
    let waba_id = WabaId::parse(waba).map_err(|e| e.to_string())?;
    // The disconnected number itself counts too: it may have been connected again since.
    let numbers = cx
        .graph
        .waba_phone_numbers(&waba_id, token)
        .await
        .map_err(|e| e.to_string())?;
    let ids: Vec<&str> = numbers
        .iter()
        .map(|n| n.id.as_str())
        .chain(std::iter::once(channel))
        .collect();
    if any_routed(cx, &ids).await? {
        return Ok(Outcome::Skipped(
            "another connected number still uses the WhatsApp Business Account".into(),
        ));
    }
    cx.graph
        .unsubscribe_app(waba, token)
        .await
        .map_err(|e| e.to_string())?;
    if !any_routed(cx, &ids).await? {
        return Ok(Outcome::Done);
    }
    tracing::warn!(
        "a number of the WhatsApp Business Account was connected during its unsubscribe; subscribing again"
    );
    match cx.graph.subscribe_app(&waba_id, token).await {
        Ok(()) => Ok(Outcome::Skipped(
            "a number of the WhatsApp Business Account was connected meanwhile: subscribed again"
                .into(),
        )),
        // Not left to the step's retry, whose first read would find the route and skip: the
        // new number's own subscription check subscribes the app again within a day.
        Err(e) => Ok(Outcome::Skipped(format!(
            "a number of the WhatsApp Business Account was connected meanwhile; subscribing again failed ({e}): the daily subscription check subscribes it"
        ))),
    }
}

/// Whether one of the numbers `ids` has a route (any tenant's).
async fn any_routed(cx: &Context<'_>, ids: &[&str]) -> Result<bool, String> {
    for id in ids {
        let Ok(number) = PhoneNumberId::parse(id) else {
            continue;
        };
        if route_of(cx, &ChannelRef::WhatsApp(number)).await?.is_some() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The route of `channel` (any tenant's), if it is connected.
async fn route_of(cx: &Context<'_>, channel: &ChannelRef) -> Result<Option<Item>, String> {
    cx.store
        .get(Table::Routes, &channel.route_key())
        .await
        .map_err(|e| e.to_string())
}

async fn bitrix(
    cx: &Context<'_>,
    step: StepKind,
    details: &BTreeMap<String, String>,
    tokens: &BTreeMap<&str, Secret>,
) -> Result<Outcome, String> {
    let Some((client, events_url)) = cx.bitrix else {
        return Err("the Bitrix24 application is not configured on this deployment".into());
    };
    let domain = details
        .get("domain")
        .and_then(|d| BitrixDomain::parse(d).ok())
        .ok_or_else(|| "no portal domain recorded".to_owned())?;
    let (Some(access), Some(refresh)) = (tokens.get("access_token"), tokens.get("refresh_token"))
    else {
        return Err("the portal's tokens are missing from the record".into());
    };
    let mut pair = TokenPair::new(access.clone(), refresh.clone());
    let store = RecordTokens { cx };
    let mut session = client.session(&domain, &mut pair, &store);
    match step {
        StepKind::Bitrix24Connectors => {
            for connector in [&cx.connectors.whatsapp, &cx.connectors.instagram] {
                session
                    .unregister_connector(connector)
                    .await
                    .map_err(|e| format!("imconnector.unregister: {e}"))?;
            }
        }
        _ => {
            let events = BOUND_EVENTS
                .iter()
                .chain(std::iter::once(&APP_INSTALL_EVENT));
            for event in events {
                session
                    .unbind_event(event, events_url)
                    .await
                    .map_err(|e| format!("event.unbind: {e}"))?;
            }
            // The template picker (decision 0061), at the same base as the events handler.
            if let Some(base) = events_url.strip_suffix(crate::portal::install::EVENTS_PATH) {
                let picker = format!("{base}{}", crate::portal::install::PICKER_PATH);
                session
                    .unbind_placement(crate::portal::install::IM_TEXTAREA, &picker)
                    .await
                    .map_err(|e| format!("placement.unbind: {e}"))?;
            }
        }
    }
    Ok(Outcome::Done)
}

/// A refreshed portal pair goes back into the revocation record (encrypted), so the next
/// step or attempt uses it: the refresh retired the old refresh token.
struct RecordTokens<'a> {
    cx: &'a Context<'a>,
}

impl RecordTokens<'_> {
    async fn read(&self, name: &str) -> Result<Option<Secret>, TokenStoreError> {
        let cx = self.cx;
        let item = cx
            .store
            .get(Table::Data, cx.key)
            .await
            .map_err(|e| TokenStoreError(e.to_string()))?;
        let attr = token_attr(name);
        let Some(blob) = item.as_ref().and_then(|i| i.get_b(&attr)) else {
            return Ok(None);
        };
        let plain = cx
            .envelope
            .decrypt_string(FieldRef::new(cx.tenant, Table::Data, cx.key, &attr), blob)
            .await
            .map_err(|e| TokenStoreError(e.to_string()))?;
        Ok(Some(Secret::from_decrypted(plain)))
    }
}

#[async_trait]
impl TokenStore for RecordTokens<'_> {
    async fn save(
        &self,
        _portal: &BitrixDomain,
        tokens: &TokenPair,
    ) -> Result<(), TokenStoreError> {
        let cx = self.cx;
        let mut update = Update::new();
        for (name, secret) in [
            ("access_token", &tokens.access_token),
            ("refresh_token", &tokens.refresh_token),
        ] {
            let attr = token_attr(name);
            let blob = cx
                .envelope
                .encrypt(
                    FieldRef::new(cx.tenant, Table::Data, cx.key, &attr),
                    secret.expose().as_bytes(),
                )
                .await
                .map_err(|e| TokenStoreError(e.to_string()))?;
            update = update.set(&attr, blob);
        }
        cx.store
            .update(Table::Data, cx.key, update, Some(Condition::Exists))
            .await
            .map(|_| ())
            .map_err(|e| TokenStoreError(e.to_string()))
    }

    async fn latest(&self, _portal: &BitrixDomain) -> Result<Option<TokenPair>, TokenStoreError> {
        match (
            self.read("access_token").await?,
            self.read("refresh_token").await?,
        ) {
            (Some(a), Some(r)) => Ok(Some(TokenPair::new(a, r))),
            _ => Ok(None),
        }
    }
}
