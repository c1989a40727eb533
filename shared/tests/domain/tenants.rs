//! Tenants and channel routes on real adapters: one external id belongs to one tenant, lookups
//! are exact, tokens are stored only encrypted, and failures leave nothing half-written.

use std::collections::BTreeMap;
use std::sync::Arc;

use wappline::app::Platform;
use wappline::ids::TenantId;
use wappline::store::{AttrValue, Item, Table};
use wappline::tenant::{
    ChannelKind, ChannelRef, Connection, RetentionDays, Secret, TenantError, TenantName,
};

use crate::backends::Backend;
use crate::on_both_backends;

const TOKEN: &str = "EAAGm0PX4ZCpsBAPlaintextTokenForTests";

fn platform(b: &Backend) -> Platform {
    Platform::new(b.store.clone(), b.vault.clone())
}

fn whatsapp(id: &str) -> ChannelRef {
    ChannelRef::parse(ChannelKind::WhatsApp, id).unwrap()
}

fn connection(channel: ChannelRef) -> Connection {
    let mut secrets = BTreeMap::new();
    secrets.insert(
        "access_token",
        Secret::parse("access_token", TOKEN).unwrap(),
    );
    Connection {
        channel,
        details: BTreeMap::from([("waba_id".to_owned(), "102290129340398".to_owned())]),
        secrets,
        authorized_by: None,
    }
}

async fn tenant(p: &Platform, name: &str) -> TenantId {
    p.tenants
        .create(TenantName::parse(name).unwrap(), RetentionDays::default())
        .await
        .unwrap()
        .id
}

/// Every item of every table, raw.
async fn everything(b: &Backend) -> Vec<(Table, Item)> {
    let mut out = Vec::new();
    for table in Table::ALL {
        let mut next = None;
        loop {
            let page = b.store.scan(table, next.as_ref(), 100).await.unwrap();
            out.extend(page.items.into_iter().map(|i| (table, i)));
            match page.next {
                Some(k) => next = Some(k),
                None => break,
            }
        }
    }
    out
}

fn contains_bytes(v: &AttrValue, needle: &[u8]) -> bool {
    match v {
        AttrValue::S(s) => s.as_bytes().windows(needle.len()).any(|w| w == needle),
        AttrValue::B(b) => b.windows(needle.len()).any(|w| w == needle),
        AttrValue::L(l) => l.iter().any(|v| contains_bytes(v, needle)),
        AttrValue::M(m) => m.values().any(|v| contains_bytes(v, needle)),
        _ => false,
    }
}

async fn one_number_belongs_to_one_tenant(b: Backend) {
    let p = platform(&b);
    let (a, other) = (tenant(&p, "Alpha").await, tenant(&p, "Beta").await);
    let scope_a = p.tenants.scope(&a).await.unwrap().unwrap();
    let scope_b = p.tenants.scope(&other).await.unwrap().unwrap();
    let number = whatsapp("106540352242922");
    let (_, new) = scope_a.connect(connection(number.clone())).await.unwrap();
    assert!(new);
    let before = everything(&b).await;

    let err = scope_b
        .connect(connection(number.clone()))
        .await
        .unwrap_err();
    assert!(matches!(err, TenantError::ChannelTaken(_)), "{err:?}");
    // Nothing half-written: the store is exactly as before (the data key B's first encryption
    // created is the only allowed addition, and it is not a channel or route).
    let after: Vec<_> = everything(&b)
        .await
        .into_iter()
        .filter(|(t, _)| *t != Table::Keys)
        .collect();
    let before: Vec<_> = before
        .into_iter()
        .filter(|(t, _)| *t != Table::Keys)
        .collect();
    assert_eq!(after.len(), before.len());
    assert!(scope_b.channels().await.unwrap().is_empty());
    assert_eq!(p.tenants.resolve(&number).await.unwrap(), Some(a.clone()));

    // Reconnecting by the owner updates in place.
    let (_, new) = scope_a.connect(connection(number.clone())).await.unwrap();
    assert!(!new);
    assert_eq!(scope_a.channels().await.unwrap().len(), 1);

    // After the owner disconnects, the other tenant may take it.
    scope_a.disconnect(&number).await.unwrap();
    assert_eq!(p.tenants.resolve(&number).await.unwrap(), None);
    assert!(matches!(
        scope_a.disconnect(&number).await.unwrap_err(),
        TenantError::ChannelNotFound(_)
    ));
    scope_b.connect(connection(number.clone())).await.unwrap();
    assert_eq!(p.tenants.resolve(&number).await.unwrap(), Some(other));
}

async fn lookups_are_exact(b: Backend) {
    let p = platform(&b);
    let a = tenant(&p, "Alpha").await;
    let scope = p.tenants.scope(&a).await.unwrap().unwrap();
    scope
        .connect(connection(whatsapp("106540352242922")))
        .await
        .unwrap();
    for near in ["10654035224292", "1065403522429220", "106540352242923"] {
        assert_eq!(
            p.tenants.resolve(&whatsapp(near)).await.unwrap(),
            None,
            "{near}"
        );
    }
    // The same digits as another kind of id are another route.
    let instagram = ChannelRef::parse(ChannelKind::Instagram, "106540352242922").unwrap();
    assert_eq!(p.tenants.resolve(&instagram).await.unwrap(), None);
    // Another tenant's scope cannot read the channel or its token.
    let other = tenant(&p, "Beta").await;
    let scope_b = p.tenants.scope(&other).await.unwrap().unwrap();
    assert!(matches!(
        scope_b
            .channel_secret(&whatsapp("106540352242922"), "access_token")
            .await
            .unwrap_err(),
        TenantError::ChannelNotFound(_)
    ));
    // An unknown tenant has no scope.
    assert!(p
        .tenants
        .scope(&TenantId::generate())
        .await
        .unwrap()
        .is_none());
}

async fn tokens_are_stored_only_encrypted(b: Backend) {
    let p = platform(&b);
    let a = tenant(&p, "Alpha").await;
    let scope = p.tenants.scope(&a).await.unwrap().unwrap();
    let number = whatsapp("106540352242922");
    let (summary, _) = scope.connect(connection(number.clone())).await.unwrap();
    assert_eq!(summary.secrets_stored, ["access_token"]);
    for (table, item) in everything(&b).await {
        for (name, value) in &item.0 {
            assert!(
                !contains_bytes(value, TOKEN.as_bytes()),
                "plaintext token in {table} attribute {name}"
            );
        }
    }
    let secret = scope.channel_secret(&number, "access_token").await.unwrap();
    assert_eq!(secret.expose(), TOKEN);
}

async fn connecting_to_a_missing_tenant_writes_nothing(b: Backend) {
    let p = platform(&b);
    let ghost = TenantId::generate();
    let scope = wappline::tenant::TenantScope::new(ghost, b.store.clone(), Arc::clone(&p.envelope));
    let err = scope
        .connect(connection(whatsapp("106540352242922")))
        .await
        .unwrap_err();
    assert!(matches!(err, TenantError::TenantNotFound), "{err:?}");
    assert!(everything(&b)
        .await
        .iter()
        .all(|(t, _)| *t != Table::Routes && *t != Table::Data));
}

on_both_backends!(
    one_number_belongs_to_one_tenant,
    lookups_are_exact,
    tokens_are_stored_only_encrypted,
    connecting_to_a_missing_tenant_writes_nothing,
);
