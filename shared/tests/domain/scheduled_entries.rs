//! The schedules that work through an index of due entries, the webhook-subscription check
//! (decision 0051), the Instagram token renewal (decision 0040) and the message-template sync
//! (decision 0050), keep the entry of a channel connected again while they removed the entry
//! of that channel gone (decision 0119): the entry is a connected channel's only way to be
//! checked, renewed or synced.

use std::collections::BTreeMap;
use std::sync::Arc;

use wappline::crypto::{CachePolicy, Envelope};
use wappline::graph::{GraphClient, GraphConfig};
use wappline::ids::{TenantId, WabaId};
use wappline::onboarding::refresh::INDEX_PARTITION as RENEWALS;
use wappline::onboarding::subscriptions::SubscriptionCheck;
use wappline::onboarding::TokenRefresh;
use wappline::store::{Key, Table};
use wappline::templates::sync::TemplateSync;
use wappline::templates::{Template, INDEX_PARTITION as TEMPLATE_SYNCS};
use wappline::tenant::meta_account::{subscription_index_entry, subscription_index_key};
use wappline::tenant::{
    ChannelKind, ChannelRef, Connection, RetentionDays, Secret, TenantDirectory, TenantName,
    TenantScope,
};

use crate::backends::Backend;
use crate::hold::HoldNextUpdate;
use crate::on_both_backends;

fn number() -> ChannelRef {
    ChannelRef::parse(ChannelKind::WhatsApp, "106540352242922").unwrap()
}

fn instagram() -> ChannelRef {
    ChannelRef::parse(ChannelKind::Instagram, "17841405822304914").unwrap()
}

fn connection() -> Connection {
    connection_of(number())
}

fn connection_of(channel: ChannelRef) -> Connection {
    let mut secrets = BTreeMap::new();
    secrets.insert("access_token", Secret::parse("t", "EAAcheckTOKEN").unwrap());
    Connection {
        channel,
        details: BTreeMap::new(),
        secrets,
        authorized_by: None,
    }
}

/// A tenant on `b`'s store: its directory and id, and the envelope (for a directory over a
/// hooked store).
async fn tenant_on(b: &Backend) -> (Arc<Envelope>, TenantDirectory, TenantId) {
    let envelope = Arc::new(Envelope::new(
        b.store.clone(),
        b.vault.clone(),
        CachePolicy::default(),
    ));
    let tenants = TenantDirectory::new(b.store.clone(), envelope.clone());
    let tenant = tenants
        .create(TenantName::parse("Acme").unwrap(), RetentionDays::default())
        .await
        .unwrap()
        .id;
    (envelope, tenants, tenant)
}

/// When the index entry at `key` is due, if there is one.
async fn due_at(b: &Backend, key: &Key) -> Option<i64> {
    let entry = b.store.get(Table::Routes, key).await.unwrap();
    entry.and_then(|e| e.get_n("due_at"))
}

/// Connects the Instagram account, its token expiring at `expires_at`, and enters its
/// renewal, as a connection through Instagram Login does.
async fn connect_instagram(scope: &TenantScope, expires_at: i64, now: i64) {
    scope.connect(connection_of(instagram())).await.unwrap();
    TokenRefresh::track(scope, &instagram(), expires_at, now)
        .await
        .unwrap();
}

/// The Instagram account's entry in the renewal index.
fn renewal_key(tenant: &TenantId) -> Key {
    Key::new(
        RENEWALS,
        format!("{}#{}", tenant.as_str(), instagram().channel_sk()),
    )
}

/// Asserts that the entry at `key` is there, due after `now` (`what` says whose it is).
async fn assert_due_after(b: &Backend, key: &Key, now: i64, what: &str) {
    let due = due_at(b, key).await;
    assert!(due.is_some_and(|d| d > now), "{what}: {due:?}");
}

/// A Graph API client nobody answers: the paths under test make no Graph call.
fn unreachable_graph() -> GraphClient {
    GraphClient::new(
        GraphConfig::default()
            .with_base_url("http://127.0.0.1:9")
            .unwrap(),
    )
    .unwrap()
}

/// A number's entry is due, but the number was disconnected (the entry left behind); the
/// check finds it gone and, held before it deletes the entry, the number is connected again.
/// The new connection's entry must survive.
async fn a_channel_connected_again_during_the_check_keeps_its_entry(b: Backend) {
    let (envelope, tenants, tenant) = tenant_on(&b).await;
    let scope = tenants.scope(&tenant).await.unwrap().unwrap();
    scope.connect(connection()).await.unwrap();
    scope.disconnect(&number()).await.unwrap();
    let key = subscription_index_key(&tenant, &number());
    b.store
        .put(
            Table::Routes,
            subscription_index_entry(&tenant, &number(), 0),
            None,
        )
        .await
        .unwrap();

    let (store, hook) = HoldNextUpdate::over(b.store.clone(), &key.sk);
    let graph = unreachable_graph();
    let check = SubscriptionCheck::new(
        TenantDirectory::new(store, envelope),
        graph.clone(),
        graph,
        None,
    );
    let now = wappline::clock::now_secs();
    let (report, ()) = hook
        .meanwhile(
            hook.arm(),
            async move { check.run_due(now, 10).await },
            async {
                scope.connect(connection()).await.unwrap();
            },
        )
        .await;
    let report = report.unwrap();
    assert_eq!(report.removed, 1, "the entry read was of a channel gone");

    assert_due_after(&b, &key, now, "the new connection's entry is kept").await;
}

/// An Instagram account's renewal entry is due, but the account was disconnected (the entry
/// left behind); the renewal finds it gone and, held before it deletes the entry, the account
/// is connected again with a token whose renewal is entered. That entry must survive, or the
/// new token is never renewed and the account stops working when it expires.
async fn an_account_connected_again_during_the_renewal_keeps_its_entry(b: Backend) {
    let (envelope, tenants, tenant) = tenant_on(&b).await;
    let scope = tenants.scope(&tenant).await.unwrap().unwrap();
    // Entered long ago: due.
    connect_instagram(&scope, 10, 0).await;
    scope.disconnect(&instagram()).await.unwrap();
    let key = renewal_key(&tenant);

    let (store, hook) = HoldNextUpdate::over(b.store.clone(), &key.sk);
    let graph = unreachable_graph();
    let renewal = TokenRefresh::new(TenantDirectory::new(store, envelope), graph, None);
    let now = wappline::clock::now_secs();
    let (report, ()) = hook
        .meanwhile(
            hook.arm(),
            async move { renewal.run_due(now, 10).await },
            connect_instagram(&scope, now + 60 * 86_400, now),
        )
        .await;
    let report = report.unwrap();
    assert_eq!(report.removed, 1, "the entry read was of an account gone");

    assert_due_after(&b, &key, now, "the new token's renewal entry is kept").await;
}

/// An Instagram account's renewal fails at Meta (down) and, held before it records the
/// failure on the channel, the account is connected again with a new token. The failure is
/// the old token's: the new connection's token health stays clean (no failure shown, no
/// "sign in again" mail), and its renewal entry stays.
async fn a_renewal_failing_while_the_account_is_connected_again_leaves_the_new_token(b: Backend) {
    let (envelope, tenants, tenant) = tenant_on(&b).await;
    let scope = tenants.scope(&tenant).await.unwrap().unwrap();
    let now = wappline::clock::now_secs();
    // Entered long ago, the token expiring within the hour: due, and renewed at Meta.
    connect_instagram(&scope, now + 3_600, 0).await;
    let key = renewal_key(&tenant);
    // The renewal's first write of the channel is its record of the failure.
    let channel_sk = instagram().channel_sk();
    let (store, hook) = HoldNextUpdate::over(b.store.clone(), &channel_sk);
    let renewal = TokenRefresh::new(
        TenantDirectory::new(store, envelope),
        unreachable_graph(),
        None,
    );
    let renewed_until = now + 60 * 86_400;
    let (report, ()) = hook
        .meanwhile(
            hook.arm(),
            async move { renewal.run_due(now, 10).await },
            connect_instagram(&scope, renewed_until, now),
        )
        .await;
    let report = report.unwrap();
    assert_eq!(report.failed, 0, "the failure was the old token's");

    let health = scope
        .channel(&instagram())
        .await
        .unwrap()
        .and_then(|c| c.token)
        .expect("the new connection's token health");
    assert_eq!(health.refresh_error, None, "{health:?}");
    assert_eq!(health.expires_at, renewed_until);
    assert_due_after(&b, &key, now, "the new token's renewal entry is kept").await;
}

/// A WABA's template sync is due, but no number of it is connected any more; the sync
/// empties the WABA's copy and, held before it forgets the WABA, a number of the WABA is
/// connected again and its sync (at connect) enters the WABA with its templates. The WABA
/// must stay entered, and due at once, so its templates are read again.
async fn a_waba_connected_again_during_the_template_sync_stays_entered(b: Backend) {
    let (envelope, _, tenant) = tenant_on(&b).await;
    let waba = WabaId::parse("102290129340398").unwrap();
    let key = Key::new(
        TEMPLATE_SYNCS,
        format!("{}#{}", waba.as_str(), tenant.as_str()),
    );
    let (store, hook) = HoldNextUpdate::over(b.store.clone(), &key.sk);
    let graph = unreachable_graph();
    let sync = TemplateSync::new(TenantDirectory::new(store, envelope), graph);
    // Entered long ago; its number disconnected since.
    sync.book().track(&tenant, &waba, 1).await.unwrap();

    let now = wappline::clock::now_secs();
    // What a connect's sync does: the copy, then the entry a day ahead.
    let template = Template {
        waba: waba.as_str().to_owned(),
        id: "1".into(),
        name: "order_confirmation".into(),
        language: "en_US".into(),
        status: "APPROVED".into(),
        category: "UTILITY".into(),
        quality: None,
        parameter_format: None,
        components: Vec::new(),
    };
    let run = {
        let sync = sync.clone();
        async move { sync.run_due(now, 10).await }
    };
    let (report, ()) = hook
        .meanwhile(hook.arm(), run, async {
            sync.book()
                .replace(&tenant, &waba, vec![template])
                .await
                .unwrap();
            sync.book()
                .track(&tenant, &waba, now + 86_400)
                .await
                .unwrap();
        })
        .await;
    report.unwrap();

    let due = due_at(&b, &key).await;
    assert!(
        due.is_some_and(|d| d <= now),
        "the WABA stays entered, due again at once: {due:?}"
    );
}

on_both_backends!(
    a_channel_connected_again_during_the_check_keeps_its_entry,
    a_renewal_failing_while_the_account_is_connected_again_leaves_the_new_token,
    a_waba_connected_again_during_the_template_sync_stays_entered,
    an_account_connected_again_during_the_renewal_keeps_its_entry,
);
