//! Retention changes re-stamp stored items (decision 0015): shortening makes old messages,
//! their index items, conversations and list entries carry the shorter expiry and vanish from
//! reads; lengthening extends; a tiny budget stops part-way and later runs finish; other
//! tenants are untouched.

use std::sync::Arc;

use wappline::audit::AuditLog;
use wappline::clock::now_secs;
use wappline::conversation::{ConversationId, Conversations, Direction, NewMessage, Origin};
use wappline::crypto::{CachePolicy, Envelope};
use wappline::ids::{PhoneNumberId, TenantId};
use wappline::meta::{AccountRef, Content, CustomerId, CustomerRef, WhatsAppUserId};
use wappline::retention::{expiry_after, message_index_key, Budget, RetentionRun};
use wappline::store::{Item, Key, Table, TableStore, Update, TTL_ATTR};
use wappline::tenant::{RetentionDays, TenantDirectory, TenantName};

use crate::backends::Backend;
use crate::on_both_backends;

const DAY: i64 = 86_400;

struct Ctx {
    store: Arc<dyn TableStore>,
    envelope: Arc<Envelope>,
    tenants: TenantDirectory,
    _b: Backend,
}

fn ctx(b: Backend) -> Ctx {
    let envelope = Arc::new(Envelope::new(
        b.store.clone(),
        b.vault.clone(),
        CachePolicy::default(),
    ));
    Ctx {
        store: b.store.clone(),
        tenants: TenantDirectory::new(b.store.clone(), envelope.clone()),
        envelope,
        _b: b,
    }
}

impl Ctx {
    async fn tenant(&self, days: u32) -> TenantId {
        self.tenants
            .create(
                TenantName::parse("Acme").unwrap(),
                RetentionDays::new(days).unwrap(),
            )
            .await
            .unwrap()
            .id
    }

    fn conversations(&self, t: &TenantId) -> Conversations {
        Conversations::new(t.clone(), self.store.clone(), self.envelope.clone())
    }

    fn run(&self) -> RetentionRun {
        RetentionRun::new(self.store.clone(), self.tenants.clone())
    }

    async fn set_retention(&self, t: &TenantId, days: u32) {
        let scope = self.tenants.scope(t).await.unwrap().unwrap();
        let change = scope
            .set_retention(RetentionDays::new(days).unwrap(), "platform_admin")
            .await
            .unwrap();
        assert!(change.changed);
    }

    async fn raw(&self, key: &Key) -> Option<Item> {
        self.store.get(Table::Data, key).await.unwrap()
    }

    async fn expiry(&self, key: &Key) -> Option<i64> {
        self.raw(key).await.map(|i| i.get_n(TTL_ATTR).unwrap())
    }

    /// Moves an item's own times back (as if written `age` seconds ago).
    async fn backdate(&self, key: &Key, attrs: &[&str], at: i64) {
        let mut update = Update::new();
        for a in attrs {
            update = update.set(a, at);
        }
        self.store
            .update(Table::Data, key, update, None)
            .await
            .unwrap();
    }
}

fn account() -> AccountRef {
    AccountRef::WhatsApp(PhoneNumberId::parse("106540352242922").unwrap())
}

fn customer(n: u32) -> CustomerRef {
    CustomerRef::new(CustomerId::WhatsAppUser(
        WhatsAppUserId::parse(&format!("US.134912086553027{n:05}")).unwrap(),
    ))
}

fn conv_pk(t: &TenantId, c: &ConversationId) -> String {
    t.sub_partition(&format!("CONV#{c}"))
}

fn meta_key(t: &TenantId, c: &ConversationId) -> Key {
    Key::new(conv_pk(t, c), "META")
}

fn list_key(t: &TenantId, c: &ConversationId) -> Key {
    Key::new(t.sub_partition("CONVS"), c.as_str())
}

struct Stored {
    id: String,
    key: Key,
    time: i64,
}

/// A conversation whose `META` and list entry were last active `age_days` ago, with messages
/// of the given ages (days), each written (and backdated) at its own time.
async fn conversation(
    cx: &Ctx,
    t: &TenantId,
    n: u32,
    age_days: i64,
    message_ages: &[i64],
) -> (ConversationId, Vec<Stored>) {
    let c = cx.conversations(t);
    let now = now_secs();
    let conv = c
        .record_customer(&account(), &customer(n), Some(now), 90)
        .await
        .unwrap();
    let at = now - age_days * DAY;
    cx.backdate(&meta_key(t, &conv), &["created_at", "updated_at"], at)
        .await;
    cx.backdate(&list_key(t, &conv), &["created_at"], at).await;
    let mut out = Vec::new();
    for (i, age) in message_ages.iter().enumerate() {
        let time = now - age * DAY;
        let id = format!("wamid.{n}.{i}");
        let (at_ref, new) = c
            .store_message(
                &account(),
                &conv,
                NewMessage {
                    provider_message_id: id.clone(),
                    direction: Direction::Inbound,
                    origin: Origin::Customer,
                    content: Content::Text {
                        body: format!("message {i}"),
                    },
                    at_ms: time * 1000,
                    reply_to: None,
                    crm_im: None,
                    template: None,
                    written_with: Default::default(),
                },
                90,
            )
            .await
            .unwrap();
        assert!(new);
        let key = Key::new(conv_pk(t, &conv), at_ref.sk);
        cx.backdate(&key, &["created_at"], time).await;
        out.push(Stored { id, key, time });
    }
    (conv, out)
}

async fn run_to_end(cx: &Ctx) -> wappline::retention::Report {
    let report = cx.run().run_once(Budget::items(100_000)).await.unwrap();
    assert!(!report.more_work, "{report:?}");
    report
}

/// All of a tenant's raw data items under the given keys.
async fn snapshot(cx: &Ctx, keys: &[Key]) -> Vec<Option<Item>> {
    let mut out = Vec::new();
    for k in keys {
        out.push(cx.raw(k).await);
    }
    out
}

async fn shortening_expires_old_items_everywhere(b: Backend) {
    let cx = ctx(b);
    let t = cx.tenant(90).await;
    let other = cx.tenant(90).await;
    let (old, old_msgs) = conversation(&cx, &t, 1, 40, &[45, 40]).await;
    let (mixed, mixed_msgs) = conversation(&cx, &t, 2, 0, &[40, 1]).await;
    let (theirs, their_msgs) = conversation(&cx, &other, 1, 40, &[45]).await;
    let mut their_keys = vec![meta_key(&other, &theirs), list_key(&other, &theirs)];
    for m in &their_msgs {
        their_keys.push(m.key.clone());
        their_keys.push(message_index_key(&other, &account(), &m.id));
    }
    let before = snapshot(&cx, &their_keys).await;
    assert!(before.iter().all(Option::is_some));

    cx.set_retention(&t, 30).await;
    let report = run_to_end(&cx).await;
    assert_eq!(report.tenants_done, 1, "{report:?}");
    assert_eq!(report.tenants_failed, 0);
    assert!(report.items_expired >= 7, "{report:?}");

    // The old conversation is gone from every read and every item.
    let c = cx.conversations(&t);
    assert!(c.meta(&old).await.unwrap().is_none());
    assert!(c.messages(&old, None, 100).await.unwrap().0.is_empty());
    assert!(cx.raw(&list_key(&t, &old)).await.is_none());
    for m in &old_msgs {
        assert!(c.find_message(&account(), &m.id).await.unwrap().is_none());
        assert!(cx.raw(&m.key).await.is_none());
        assert!(cx
            .raw(&message_index_key(&t, &account(), &m.id))
            .await
            .is_none());
    }
    // In the live conversation only the 40-day-old message went.
    let (listed, _) = c.messages(&mixed, None, 100).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].provider_message_id, mixed_msgs[1].id);
    assert!(c
        .find_message(&account(), &mixed_msgs[0].id)
        .await
        .unwrap()
        .is_none());
    let kept = &mixed_msgs[1];
    let expected = expiry_after(kept.time, 30);
    assert_eq!(cx.expiry(&kept.key).await, Some(expected));
    assert_eq!(
        cx.expiry(&message_index_key(&t, &account(), &kept.id))
            .await,
        Some(expected)
    );
    let meta = cx.raw(&meta_key(&t, &mixed)).await.unwrap();
    let meta_expiry = meta.get_n(TTL_ATTR).unwrap();
    assert_eq!(
        meta_expiry,
        expiry_after(meta.get_n("updated_at").unwrap(), 30)
    );
    assert!(meta_expiry >= expected);
    assert!(meta_expiry < now_secs() + 31 * DAY);
    assert_eq!(cx.expiry(&list_key(&t, &mixed)).await, Some(meta_expiry));
    assert!(c.meta(&mixed).await.unwrap().is_some());

    // Another tenant's items are untouched.
    assert_eq!(snapshot(&cx, &their_keys).await, before);

    // Audit: the change and its application.
    let log = AuditLog::new(cx.store.clone())
        .read(&t, None, 10)
        .await
        .unwrap();
    let actions: Vec<&str> = log.entries.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["retention_applied", "settings_changed"]);
    assert_eq!(log.entries[1].details["from"], "90");
    assert_eq!(log.entries[1].details["to"], "30");
    assert!(AuditLog::new(cx.store.clone())
        .read(&other, None, 10)
        .await
        .unwrap()
        .entries
        .is_empty());

    // Idempotent: a second run finds nothing to do.
    let again = run_to_end(&cx).await;
    assert_eq!(again.tenants_done, 0);
    assert_eq!(again.items_restamped + again.items_expired, 0);
}

async fn lengthening_extends_expiry(b: Backend) {
    let cx = ctx(b);
    let t = cx.tenant(30).await;
    let (conv, msgs) = conversation(&cx, &t, 3, 20, &[25, 20]).await;
    cx.set_retention(&t, 365).await;
    let report = run_to_end(&cx).await;
    assert_eq!(report.tenants_done, 1);
    for m in &msgs {
        let expected = expiry_after(m.time, 365);
        assert_eq!(cx.expiry(&m.key).await, Some(expected));
        assert_eq!(
            cx.expiry(&message_index_key(&t, &account(), &m.id)).await,
            Some(expected)
        );
    }
    let meta = cx.raw(&meta_key(&t, &conv)).await.unwrap();
    let expected_meta = expiry_after(now_secs() - 20 * DAY, 365);
    assert!((meta.get_n(TTL_ATTR).unwrap() - expected_meta).abs() <= 5);
    assert_eq!(cx.expiry(&list_key(&t, &conv)).await, meta.get_n(TTL_ATTR));
    let (listed, _) = cx
        .conversations(&t)
        .messages(&conv, None, 10)
        .await
        .unwrap();
    assert_eq!(listed.len(), 2);
}

async fn tiny_budget_stops_and_resumes(b: Backend) {
    let cx = ctx(b);
    let t = cx.tenant(90).await;
    let mut all = Vec::new();
    for n in 0..3 {
        let (conv, msgs) = conversation(&cx, &t, 10 + n, 2, &[50, 10, 2]).await;
        all.push((conv, msgs));
    }
    // A change, a partial run, then another change before the walk finished: the later
    // target wins and the walk starts over with it.
    cx.set_retention(&t, 60).await;
    let first = cx.run().run_once(Budget::items(2)).await.unwrap();
    assert!(first.more_work, "{first:?}");
    assert_eq!(first.tenants_done, 0);
    cx.set_retention(&t, 30).await;
    let mut runs = 0;
    loop {
        runs += 1;
        assert!(runs < 200, "re-stamp does not finish");
        let report = cx.run().run_once(Budget::items(2)).await.unwrap();
        if !report.more_work {
            break;
        }
        assert_eq!(report.tenants_failed, 0);
    }
    assert!(
        runs > 3,
        "a budget of 2 items should need several runs, took {runs}"
    );
    for (conv, msgs) in &all {
        for m in msgs {
            let expected = expiry_after(m.time, 30);
            let index = message_index_key(&t, &account(), &m.id);
            if expected <= now_secs() {
                assert!(cx.raw(&m.key).await.is_none());
                assert!(cx.raw(&index).await.is_none());
            } else {
                assert_eq!(cx.expiry(&m.key).await, Some(expected));
                assert_eq!(cx.expiry(&index).await, Some(expected));
            }
        }
        let meta = cx.expiry(&meta_key(&t, conv)).await.unwrap();
        assert!((meta - expiry_after(now_secs() - 2 * DAY, 30)).abs() <= 60);
        assert_eq!(cx.expiry(&list_key(&t, conv)).await, Some(meta));
    }
    let log = AuditLog::new(cx.store.clone())
        .read(&t, None, 10)
        .await
        .unwrap();
    let applied: Vec<_> = log
        .entries
        .iter()
        .filter(|e| e.action == "retention_applied")
        .collect();
    assert_eq!(applied.len(), 1);
    assert_eq!(applied[0].details["retention_days"], "30");
    assert_eq!(applied[0].details["retention_version"], "2");
}

async fn unchanged_retention_is_a_no_op(b: Backend) {
    let cx = ctx(b);
    let t = cx.tenant(90).await;
    let scope = cx.tenants.scope(&t).await.unwrap().unwrap();
    let change = scope
        .set_retention(RetentionDays::new(90).unwrap(), "platform_admin")
        .await
        .unwrap();
    assert!(!change.changed);
    assert_eq!(change.retention_version, 0);
    assert!(AuditLog::new(cx.store.clone())
        .read(&t, None, 10)
        .await
        .unwrap()
        .entries
        .is_empty());
    let report = run_to_end(&cx).await;
    assert_eq!(report, wappline::retention::Report::default());
}

on_both_backends!(
    shortening_expires_old_items_everywhere,
    lengthening_extends_expiry,
    tiny_budget_stops_and_resumes,
    unchanged_retention_is_a_no_op,
);
