//! The scheduled webhook-subscription check (decision 0051) keeps the entry of a channel
//! connected again while it removed the entry of that channel gone (decision 0119): the
//! entry is a connected channel's only way to be checked.

use std::collections::BTreeMap;
use std::sync::Arc;

use wappline::crypto::{CachePolicy, Envelope};
use wappline::graph::{GraphClient, GraphConfig};
use wappline::onboarding::subscriptions::SubscriptionCheck;
use wappline::store::Table;
use wappline::tenant::meta_account::{subscription_index_entry, subscription_index_key};
use wappline::tenant::{
    ChannelKind, ChannelRef, Connection, RetentionDays, Secret, TenantDirectory, TenantName,
};

use crate::backends::Backend;
use crate::hold::HoldNextUpdate;
use crate::on_both_backends;

fn number() -> ChannelRef {
    ChannelRef::parse(ChannelKind::WhatsApp, "106540352242922").unwrap()
}

fn connection() -> Connection {
    let mut secrets = BTreeMap::new();
    secrets.insert("access_token", Secret::parse("t", "EAAcheckTOKEN").unwrap());
    Connection {
        channel: number(),
        details: BTreeMap::new(),
        secrets,
        authorized_by: None,
    }
}

/// A number's entry is due, but the number was disconnected (the entry left behind); the
/// check finds it gone and, held before it deletes the entry, the number is connected again.
/// The new connection's entry must survive.
async fn a_channel_connected_again_during_the_check_keeps_its_entry(b: Backend) {
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
    // No Graph call is made for a channel gone.
    let graph = GraphClient::new(
        GraphConfig::default()
            .with_base_url("http://127.0.0.1:9")
            .unwrap(),
    )
    .unwrap();
    let check = SubscriptionCheck::new(
        TenantDirectory::new(store, envelope),
        graph.clone(),
        graph,
        None,
    );
    let now = wappline::clock::now_secs();
    let held = hook.arm();
    let run = tokio::spawn(async move { check.run_due(now, 10).await });
    held.await;
    scope.connect(connection()).await.unwrap();
    hook.release();
    let report = run.await.unwrap().unwrap();
    assert_eq!(report.removed, 1, "the entry read was of a channel gone");

    let entry = b.store.get(Table::Routes, &key).await.unwrap();
    let due = entry.and_then(|e| e.get_n("due_at"));
    assert!(
        due.is_some_and(|d| d > now),
        "the new connection's entry is kept: {due:?}"
    );
}

on_both_backends!(a_channel_connected_again_during_the_check_keeps_its_entry);
