//! Retired tenant data key versions expire after the data they sealed (decision 0071): a
//! retired version gets the keys table's `expires_at`, the current version and the first
//! never do, a version that sealed a lasting value is kept, and a message whose version has
//! expired reads as expired data.

use std::sync::Arc;
use std::time::Duration;

use wappline::conversation::{Conversations, Direction, NewMessage, Origin};
use wappline::crypto::format::key_version;
use wappline::crypto::{
    CachePolicy, CryptoError, Envelope, FieldRef, RotationPolicy, BACKUP_WINDOW, LONGEST_RETENTION,
    RETIREMENT_MARGIN,
};
use wappline::ids::{PhoneNumberId, TenantId};
use wappline::meta::{AccountRef, Content, CustomerId, CustomerRef, WhatsAppUserId};
use wappline::store::{Item, Key, Table, TTL_ATTR};

use crate::backends::Backend;
use crate::on_both_backends;

/// A process whose retired versions are kept `keep` after their successor is created.
fn envelope(b: &Backend, keep: Duration) -> Arc<Envelope> {
    Arc::new(
        Envelope::new(b.store.clone(), b.vault.clone(), CachePolicy::default()).with_rotation(
            RotationPolicy {
                retired_keep: Some(keep),
                ..RotationPolicy::default()
            },
        ),
    )
}

/// The stored item of a version, as a cold process sees it (expired: absent).
async fn version_item(b: &Backend, t: &TenantId, version: u32) -> Option<Item> {
    let key = Key::new(t.partition(), format!("DK#{version:010}"));
    b.store.get(Table::Keys, &key).await.unwrap()
}

fn account() -> AccountRef {
    AccountRef::WhatsApp(PhoneNumberId::parse("106540352242922").unwrap())
}

fn text(id: &str, body: &str) -> NewMessage {
    NewMessage {
        provider_message_id: id.into(),
        direction: Direction::Inbound,
        origin: Origin::Customer,
        content: Content::Text { body: body.into() },
        at_ms: 100_000,
        reply_to: None,
        crm_im: None,
        template: None,
        written_with: Default::default(),
    }
}

/// Past its keep a retired version is gone; a message it sealed (still within its own
/// retention) then reads as expired, not as an error; the current version is untouched.
async fn a_retired_version_past_its_expiry_is_gone_and_its_messages_read_as_expired(b: Backend) {
    let t = TenantId::generate();
    // Kept zero seconds: expired the moment its successor exists.
    let env = envelope(&b, Duration::ZERO);
    assert_eq!(env.rotate(&t).await.unwrap(), 1);
    assert_eq!(env.rotate(&t).await.unwrap(), 2);
    let c = Conversations::new(t.clone(), b.store.clone(), env.clone());
    let customer = CustomerRef::new(CustomerId::WhatsAppUser(
        WhatsAppUserId::parse("US.13491208655302741918").unwrap(),
    ));
    let conv = c
        .record_customer(&account(), &customer, Some(100), 30)
        .await
        .unwrap();
    let (old, _) = c
        .store_message(&account(), &conv, text("wamid.old", "sealed by 2"), 30)
        .await
        .unwrap();
    assert!(c.message(&old).await.unwrap().is_some());
    assert_eq!(env.rotate(&t).await.unwrap(), 3);
    let (new, _) = c
        .store_message(&account(), &conv, text("wamid.new", "sealed by 3"), 30)
        .await
        .unwrap();

    // Version 2 is gone for every process; versions 1 (keyed ids) and 3 (current) stay.
    assert!(version_item(&b, &t, 2).await.is_none());
    let one = version_item(&b, &t, 1).await.expect("version 1");
    assert_eq!(one.get_n(TTL_ATTR), None, "the first version never expires");
    let three = version_item(&b, &t, 3).await.expect("version 3");
    assert_eq!(
        three.get_n(TTL_ATTR),
        None,
        "the current version never expires"
    );

    // A cold process: the message of version 2 is expired data, the one of version 3 opens.
    let cold = envelope(&b, Duration::ZERO);
    let c = Conversations::new(t.clone(), b.store.clone(), cold.clone());
    assert_eq!(c.message(&old).await.unwrap(), None);
    let kept = c
        .message(&new)
        .await
        .unwrap()
        .expect("the current version's message");
    assert_eq!(
        kept.content,
        Some(Content::Text {
            body: "sealed by 3".into()
        })
    );
    let (page, _) = c.messages(&conv, None, 100).await.unwrap();
    assert_eq!(page.len(), 1, "the expired message is left out of the page");
    // Below the conversation, the envelope names the missing version.
    let key = Key::new(t.sub_partition("CONV#x"), "MSG#1");
    let field = FieldRef::new(&t, Table::Data, &key, "body");
    let blob = {
        let sealed = cold.encrypt_expiring(field, b"three").await.unwrap();
        assert_eq!(key_version(&sealed), Some(3));
        let mut b2 = sealed.clone();
        b2[1..5].copy_from_slice(&2u32.to_be_bytes());
        b2
    };
    assert!(matches!(
        cold.decrypt(field, &blob).await,
        Err(CryptoError::KeyGone(2))
    ));
}

/// Within its window a retired version still opens what it sealed, for a process that never
/// saw it; its expiry is the keep after its retirement, and the current version has none.
async fn a_retired_version_within_its_window_still_opens(b: Backend) {
    let t = TenantId::generate();
    let keep = Duration::from_secs(3600);
    // Retired by use this time: two seals per version.
    let env = Arc::new(
        Envelope::new(b.store.clone(), b.vault.clone(), CachePolicy::default()).with_rotation(
            RotationPolicy {
                max_seals: 2,
                flush_every: 1,
                retired_keep: Some(keep),
                ..RotationPolicy::default()
            },
        ),
    );
    let key = Key::new(t.sub_partition("CONV#x"), "MSG#1");
    let field = FieldRef::new(&t, Table::Data, &key, "body");
    let mut sealed = Vec::new();
    for i in 0..6u32 {
        let plain = format!("m{i}");
        let blob = env.encrypt_expiring(field, plain.as_bytes()).await.unwrap();
        sealed.push((plain, blob));
    }
    let versions: Vec<u32> = sealed
        .iter()
        .map(|(_, b)| key_version(b).unwrap())
        .collect();
    assert_eq!(versions, [1, 1, 2, 2, 3, 3]);
    let now = wappline::clock::now_secs();
    // Version 2 retired when 3 was made: it expires about `keep` from now.
    let two = version_item(&b, &t, 2)
        .await
        .expect("version 2 within its window");
    let expires = two.get_n(TTL_ATTR).expect("a retired version's expiry");
    assert!(
        (now + 3600 - 60..=now + 3600).contains(&expires),
        "{expires} vs now {now}"
    );
    assert_eq!(version_item(&b, &t, 4).await.unwrap().get_n(TTL_ATTR), None);
    assert_eq!(version_item(&b, &t, 1).await.unwrap().get_n(TTL_ATTR), None);
    // A cold process opens all of them.
    let cold = envelope(&b, keep);
    for (plain, blob) in &sealed {
        assert_eq!(cold.decrypt(field, blob).await.unwrap(), plain.as_bytes());
    }
}

/// A version that sealed a lasting value (a channel's token: no expiry) is never given one,
/// whether the lasting seal came before its retirement or after (a process still sealing
/// with it until it re-reads the current version).
async fn a_version_that_sealed_a_lasting_value_is_kept(b: Backend) {
    let t = TenantId::generate();
    let key = Key::new(t.partition(), "CHANNEL#wa#1");
    let token = FieldRef::new(&t, Table::Data, &key, "access_token");
    let msg_key = Key::new(t.sub_partition("CONV#x"), "MSG#1");
    let body = FieldRef::new(&t, Table::Data, &msg_key, "body");
    let env = envelope(&b, Duration::ZERO);
    env.rotate(&t).await.unwrap();
    assert_eq!(env.rotate(&t).await.unwrap(), 2);
    // Lasting before its retirement.
    let sealed = env.encrypt(token, b"EAA-token-2").await.unwrap();
    assert_eq!(key_version(&sealed), Some(2));
    assert_eq!(env.rotate(&t).await.unwrap(), 3);
    let two = version_item(&b, &t, 2).await.expect("version 2 is lasting");
    assert_eq!(two.get_n(TTL_ATTR), None);
    let cold = envelope(&b, Duration::ZERO);
    assert_eq!(cold.decrypt(token, &sealed).await.unwrap(), b"EAA-token-2");

    // Lasting after its retirement: a process that still seals with version 3 (its cached
    // current version) while another retires it.
    let stale = envelope(&b, Duration::from_secs(3600));
    let first = stale.encrypt_expiring(body, b"m").await.unwrap();
    assert_eq!(key_version(&first), Some(3));
    let other = envelope(&b, Duration::from_secs(3600));
    assert_eq!(other.rotate(&t).await.unwrap(), 4);
    let retired = version_item(&b, &t, 3).await.unwrap();
    assert!(retired.get_n(TTL_ATTR).is_some(), "version 3 was retired");
    let late = stale.encrypt(token, b"EAA-token-3").await.unwrap();
    assert_eq!(key_version(&late), Some(3));
    let three = version_item(&b, &t, 3).await.unwrap();
    assert_eq!(
        three.get_n(TTL_ATTR),
        None,
        "the lasting seal took the expiry away"
    );
    assert_eq!(cold.decrypt(token, &late).await.unwrap(), b"EAA-token-3");
}

/// The default keep covers what it claims to: the longest retention a tenant can set and the
/// data table's point-in-time recovery period in template.yaml (decision 0028).
#[test]
fn the_default_keep_covers_the_longest_retention_and_the_backups() {
    assert_eq!(
        LONGEST_RETENTION.as_secs(),
        u64::from(wappline::tenant::MAX_RETENTION_DAYS) * 86_400
    );
    let template =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml")).unwrap();
    let data_table = &template[template.find("\n  DataTable:\n").expect("DataTable")..];
    let recovery: u64 = data_table
        .lines()
        .find_map(|l| l.trim().strip_prefix("RecoveryPeriodInDays:"))
        .expect("the data table's recovery period")
        .trim()
        .parse()
        .unwrap();
    assert_eq!(BACKUP_WINDOW.as_secs(), recovery * 86_400);
    assert_eq!(
        RotationPolicy::default().retired_keep,
        Some(LONGEST_RETENTION + BACKUP_WINDOW + RETIREMENT_MARGIN)
    );
}

on_both_backends!(
    a_retired_version_past_its_expiry_is_gone_and_its_messages_read_as_expired,
    a_retired_version_within_its_window_still_opens,
    a_version_that_sealed_a_lasting_value_is_kept,
);
