//! Retention end to end on the local server: messages arrive through Meta's webhook and the
//! inbound worker, the admin API shortens the tenant's retention, and the scheduled re-stamper
//! (run here as the local server's schedule runs it) makes the old message, its index item and
//! an idle conversation vanish while the recent message gets the shorter expiry; lengthening
//! then extends it. Another tenant's items stay as they were.

use std::time::Duration;

use e2e_tests::harness::{sample, Harness, ADMIN, WA_NUMBER};
use serde_json::{json, Value};
use wappline::audit::AuditLog;
use wappline::clock::now_secs;
use wappline::conversation::{ConversationId, Conversations};
use wappline::ids::{PhoneNumberId, TenantId};
use wappline::meta::AccountRef;
use wappline::queue::platform;
use wappline::retention::{expiry_after, message_index_key, Budget, RetentionRun};
use wappline::store::{Item, Key, Table, Update, TTL_ATTR};

const DRAIN: Duration = Duration::from_secs(20);
const DAY: i64 = 86_400;
const OLD_ID: &str = "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQ5ODJEOUUzRUI5OTZGNTU5RTYzMwA=";
const NEW_ID: &str = "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQ1NzgyQjE4Njg3RTZDRjhBNDgyRgA=";

fn account() -> AccountRef {
    AccountRef::WhatsApp(PhoneNumberId::parse(WA_NUMBER).unwrap())
}

async fn patch(h: &Harness, tenant: &str, body: Value) -> (u16, Value) {
    let resp = h
        .http
        .patch(format!("{}/admin/tenants/{tenant}/settings", h.base))
        .bearer_auth(ADMIN)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn tenant_items(h: &Harness, tenant: &TenantId) -> Vec<Item> {
    let prefix = format!("{}#", tenant.partition());
    h.all_items(Table::Data)
        .await
        .into_iter()
        .filter(|i| {
            let pk = i.get_s("pk").unwrap_or_default();
            pk.starts_with(&prefix) && !pk.ends_with("#AUDIT")
        })
        .collect()
}

async fn run_schedule(h: &Harness) {
    let p = h.server.platform();
    let run = RetentionRun::new(p.store.clone(), p.tenants.clone());
    for _ in 0..20 {
        let report = run.run_once(Budget::items(3)).await.unwrap();
        assert_eq!(report.tenants_failed, 0, "{report:?}");
        if !report.more_work {
            return;
        }
    }
    panic!("the re-stamp did not finish in 20 runs");
}

#[tokio::test]
async fn shortening_then_lengthening_retention_restamps_what_the_webhook_stored() {
    let h = Harness::start(|_| {}).await;
    let tenant = h.tenant_with_channels().await;
    let t = TenantId::parse(&tenant).unwrap();
    let p = h.server.platform();
    let store = &p.store;

    // A message 40 days ago: stored through the webhook, then its times moved back (the
    // conversation too, as if idle since then).
    let (s, _) = h.post_signed(&sample("whatsapp-text.json")).await;
    assert_eq!(s.as_u16(), 200);
    h.drain(platform::INBOUND, DRAIN).await;
    let conversations = Conversations::new(t.clone(), store.clone(), p.envelope.clone());
    let old = conversations
        .find_message(&account(), OLD_ID)
        .await
        .unwrap()
        .expect("the webhook's message is stored");
    let conv: ConversationId = old.conversation.clone();
    let conv_pk = t.sub_partition(&format!("CONV#{conv}"));
    let long_ago = now_secs() - 40 * DAY;
    for (key, attrs) in [
        (
            Key::new(conv_pk.clone(), old.sk.clone()),
            &["created_at"][..],
        ),
        (
            Key::new(conv_pk.clone(), "META"),
            &["created_at", "updated_at"][..],
        ),
        (
            Key::new(t.sub_partition("CONVS"), conv.as_str()),
            &["created_at"][..],
        ),
    ] {
        let mut update = Update::new();
        for a in attrs {
            update = update.set(a, long_ago);
        }
        store.update(Table::Data, &key, update, None).await.unwrap();
    }

    // Today the customer writes again (same conversation): that message stays.
    let (s, _) = h.post_signed(&sample("whatsapp-text-reply.json")).await;
    assert_eq!(s.as_u16(), 200);
    h.drain(platform::INBOUND, DRAIN).await;
    let new = conversations
        .find_message(&account(), NEW_ID)
        .await
        .unwrap()
        .expect("the second message is stored");
    assert_eq!(new.conversation, conv);

    // Another tenant with its own conversation, which no run may touch.
    let other = h.create_tenant("Other").await;
    let other_id = TenantId::parse(&other).unwrap();
    let theirs = Conversations::new(other_id.clone(), store.clone(), p.envelope.clone());
    let customer = wappline::meta::CustomerRef::new(wappline::meta::CustomerId::WhatsAppUser(
        wappline::meta::WhatsAppUserId::parse("US.13491208655302700001").unwrap(),
    ));
    theirs
        .record_customer(&account(), &customer, Some(long_ago), 90)
        .await
        .unwrap();
    let their_items = tenant_items(&h, &other_id).await;
    assert!(!their_items.is_empty());

    // Shorten: validated, stored, applied by the schedule.
    for bad in [
        json!({"retention_days": 0}),
        json!({"retention_days": "30"}),
    ] {
        assert_eq!(patch(&h, &tenant, bad).await.0, 400);
    }
    let (s, v) = patch(&h, &tenant, json!({"retention_days": 30})).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["retention_days"], 30);
    run_schedule(&h).await;

    assert!(conversations.message(&old).await.unwrap().is_none());
    assert!(conversations
        .find_message(&account(), OLD_ID)
        .await
        .unwrap()
        .is_none());
    let (listed, _) = conversations.messages(&conv, None, 10).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].provider_message_id, NEW_ID);
    let new_key = Key::new(conv_pk.clone(), new.sk.clone());
    let new_item = store.get(Table::Data, &new_key).await.unwrap().unwrap();
    let stored_at = new_item.get_n("created_at").unwrap();
    let expected = expiry_after(stored_at, 30);
    assert_eq!(new_item.get_n(TTL_ATTR), Some(expected));
    let index = message_index_key(&t, &account(), NEW_ID);
    let index_expiry = |i: Option<Item>| i.and_then(|i| i.get_n(TTL_ATTR));
    assert_eq!(
        index_expiry(store.get(Table::Data, &index).await.unwrap()),
        Some(expected)
    );
    // The conversation lives on (the customer wrote today), now on the 30-day period.
    let meta = store
        .get(Table::Data, &Key::new(conv_pk.clone(), "META"))
        .await
        .unwrap()
        .unwrap();
    let meta_expiry = meta.get_n(TTL_ATTR).unwrap();
    // Its last activity + 30 days, and never before its latest message (which may have been
    // stamped a second after the conversation's `updated_at`).
    assert_eq!(
        meta_expiry,
        expiry_after(meta.get_n("updated_at").unwrap(), 30).max(expected)
    );
    assert!(meta_expiry < now_secs() + 31 * DAY);
    // Every remaining item of the tenant expires within 30 days of now.
    for item in tenant_items(&h, &t).await {
        if let Some(e) = item.get_n(TTL_ATTR) {
            assert!(e <= now_secs() + 30 * DAY + 5, "{item:?}");
        }
    }
    assert_eq!(tenant_items(&h, &other_id).await, their_items);

    // Lengthen: the recent message now lasts a year from when it arrived.
    let (s, v) = patch(&h, &tenant, json!({"retention_days": 365})).await;
    assert_eq!(s, 200, "{v}");
    run_schedule(&h).await;
    let new_item = store.get(Table::Data, &new_key).await.unwrap().unwrap();
    assert_eq!(new_item.get_n(TTL_ATTR), Some(expiry_after(stored_at, 365)));
    assert_eq!(
        index_expiry(store.get(Table::Data, &index).await.unwrap()),
        Some(expiry_after(stored_at, 365))
    );
    assert_eq!(tenant_items(&h, &other_id).await, their_items);

    // The audit log tells the story, newest first.
    let log = AuditLog::new(store.clone())
        .read(&t, None, 20)
        .await
        .unwrap();
    let actions: Vec<&str> = log
        .entries
        .iter()
        .map(|e| e.action.as_str())
        .filter(|a| *a == "settings_changed" || *a == "retention_applied")
        .collect();
    assert_eq!(
        actions,
        [
            "retention_applied",
            "settings_changed",
            "retention_applied",
            "settings_changed"
        ]
    );
}
