//! The scheduled webhook-subscription check end to end on the local server (decision 0051):
//! numbers and accounts connected without a subscription (the admin API's direct connects)
//! are subscribed at their first check, a subscription that is still there is left alone,
//! and one that went missing is made again, with every field the relay handles.

use std::time::Duration;

use e2e_tests::harness::{Harness, IG_ACCOUNT, IG_TOKEN, WABA, WA_NUMBER, WA_TOKEN};
use wappline::graph::subscriptions::{
    INSTAGRAM_COMMENT_PERMISSION_FIELDS, INSTAGRAM_WEBHOOK_FIELDS,
};
use wappline::ids::{InstagramAccountId, PhoneNumberId, TenantId};
use wappline::store::Table;
use wappline::tenant::meta_account::subscription_index_entry;
use wappline::tenant::ChannelRef;

/// Brings both channels' checks forward to now (the schedule runs every second in tests).
async fn due_now(h: &Harness, tenant: &str) {
    let tenant = TenantId::parse(tenant).unwrap();
    let now = wappline::clock::now_secs();
    for channel in [
        ChannelRef::WhatsApp(PhoneNumberId::parse(WA_NUMBER).unwrap()),
        ChannelRef::Instagram(InstagramAccountId::parse(IG_ACCOUNT).unwrap()),
    ] {
        h.server
            .platform()
            .store
            .put(
                Table::Routes,
                subscription_index_entry(&tenant, &channel, now - 1),
                None,
            )
            .await
            .unwrap();
    }
}

/// The GETs of subscribed_apps the fake answered so far (WABA, Instagram).
fn reads(h: &Harness) -> (usize, usize) {
    let calls = h.graph.calls();
    let n = |path: &str, bearer: &str| {
        calls
            .iter()
            .filter(|c| c.method == "GET" && c.path.ends_with(path))
            .filter(|c| c.bearer.as_deref() == Some(bearer))
            .count()
    };
    (
        n(&format!("/{WABA}/subscribed_apps"), WA_TOKEN),
        n("/me/subscribed_apps", IG_TOKEN),
    )
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..300 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what}: not within 15 s");
}

#[tokio::test]
async fn the_check_subscribes_what_is_missing_and_leaves_the_rest() {
    let h = Harness::start(|_| {}).await;
    let tenant = h.tenant_with_channels().await;
    // Connected directly: nothing subscribed, and the first check is a day away.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(reads(&h), (0, 0), "not due yet");
    assert!(h.graph.onboarding().subscribed_wabas.is_empty());

    due_now(&h, &tenant).await;
    wait_for("first check", || {
        let log = h.graph.onboarding();
        !log.subscribed_wabas.is_empty() && !log.instagram_subscriptions.is_empty()
    })
    .await;
    let log = h.graph.onboarding();
    assert_eq!(log.subscribed_wabas, [WABA]);
    let (account, fields) = &log.instagram_subscriptions[0];
    assert_eq!(account, IG_ACCOUNT);
    let fields: Vec<&str> = fields.split(',').collect();
    assert_eq!(fields, INSTAGRAM_WEBHOOK_FIELDS);
    for f in [
        "messages",
        "messaging_seen",
        "message_reactions",
        "standby",
        "messaging_handover",
    ] {
        assert!(fields.contains(&f), "{f}");
    }

    // Still subscribed: read, not subscribed again.
    let before = reads(&h);
    due_now(&h, &tenant).await;
    wait_for("second check", || {
        let now = reads(&h);
        now.0 > before.0 && now.1 > before.1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let log = h.graph.onboarding();
    assert_eq!(log.subscribed_wabas.len(), 1);
    assert_eq!(log.instagram_subscriptions.len(), 1);

    // The business removed our app: the next check subscribes it again.
    h.graph.drop_waba_subscription(WABA);
    h.graph.drop_instagram_subscription(IG_ACCOUNT);
    due_now(&h, &tenant).await;
    wait_for("re-subscribed", || {
        let log = h.graph.onboarding();
        log.subscribed_wabas.len() == 2 && log.instagram_subscriptions.len() == 2
    })
    .await;
}

/// The fields that need `instagram_business_manage_comments` are required only of an account
/// subscribed to `comments` (decision 0067): one connected before decision 0062 (no such
/// permission) is left alone, one connected since gets `live_comments` and `mentions` at its
/// next check.
#[tokio::test]
async fn the_comment_fields_are_required_only_of_accounts_with_comments() {
    let h = Harness::start(|_| {}).await;
    let tenant = h.tenant_with_channels().await;
    let without: Vec<&str> = INSTAGRAM_WEBHOOK_FIELDS
        .iter()
        .copied()
        .filter(|f| !INSTAGRAM_COMMENT_PERMISSION_FIELDS.contains(f))
        .collect();
    h.graph.subscribe_instagram_with(IG_ACCOUNT, &without);
    let before = reads(&h);
    due_now(&h, &tenant).await;
    wait_for("first check", || reads(&h).1 > before.1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        h.graph.onboarding().instagram_subscriptions.len(),
        1,
        "an account without the comments permission is not subscribed again"
    );

    let mut with_comments = without.clone();
    with_comments.push("comments");
    h.graph.subscribe_instagram_with(IG_ACCOUNT, &with_comments);
    due_now(&h, &tenant).await;
    wait_for("re-subscribed", || {
        h.graph.onboarding().instagram_subscriptions.len() == 3
    })
    .await;
    let log = h.graph.onboarding();
    let fields: Vec<&str> = log.instagram_subscriptions[2].1.split(',').collect();
    assert_eq!(fields, INSTAGRAM_WEBHOOK_FIELDS);
    assert!(fields.contains(&"live_comments") && fields.contains(&"mentions"));
}

#[tokio::test]
async fn a_disconnected_channel_leaves_the_check() {
    let h = Harness::start(|_| {}).await;
    let tenant = h.tenant_with_channels().await;
    h.admin(
        "DELETE",
        &format!("/admin/tenants/{tenant}/channels/instagram/{IG_ACCOUNT}"),
        serde_json::json!(null),
    )
    .await;
    let items = h.all_items(Table::Routes).await;
    let subs: Vec<&str> = items
        .iter()
        .filter(|i| i.get_s(wappline::store::PK) == Some("WEBHOOKSUBS"))
        .filter_map(|i| i.get_s(wappline::store::SK))
        .collect();
    assert_eq!(subs.len(), 1, "{subs:?}");
    assert!(subs[0].ends_with(WA_NUMBER), "{subs:?}");
}

/// Removes what decision 0051's connects write, as for a channel connected before it, and
/// the backfill's progress (the schedule may have walked the directory already).
async fn as_if_connected_before_the_indexes(h: &Harness) {
    let store = &h.server.platform().store;
    for item in h.all_items(Table::Routes).await {
        let pk = item.get_s(wappline::store::PK).unwrap_or_default();
        if pk == "WEBHOOKSUBS" || pk.starts_with("WABA#") || pk == "BACKFILL" {
            store
                .delete(Table::Routes, &item.key().unwrap(), None)
                .await
                .unwrap();
        }
    }
}

fn index_entries(items: &[wappline::store::Item]) -> Vec<(String, String, Option<i64>)> {
    let mut out: Vec<_> = items
        .iter()
        .filter_map(|i| {
            let pk = i.get_s(wappline::store::PK)?;
            (pk == "WEBHOOKSUBS" || pk.starts_with("WABA#")).then(|| {
                (
                    pk.to_owned(),
                    i.get_s(wappline::store::SK).unwrap_or_default().to_owned(),
                    i.get_n("due_at"),
                )
            })
        })
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn channels_connected_before_the_indexes_get_them_once() {
    let h = Harness::start(|c| c.schedule_secs = 3600).await;
    let tenant = h.tenant_with_channels().await;
    let written = index_entries(&h.all_items(Table::Routes).await);
    assert_eq!(written.len(), 3, "{written:?}");
    as_if_connected_before_the_indexes(&h).await;
    assert!(index_entries(&h.all_items(Table::Routes).await).is_empty());

    let tenants = &h.server.platform().tenants;
    let now = wappline::clock::now_secs();
    let report = tenants.backfill_meta_indexes(now, 25).await.unwrap();
    assert_eq!((report.tenants, report.written, report.done), (1, 3, true));
    let back = index_entries(&h.all_items(Table::Routes).await);
    let keys = |v: &[(String, String, Option<i64>)]| {
        v.iter()
            .map(|(p, s, _)| (p.clone(), s.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(keys(&back), keys(&written));
    let waba = back.iter().find(|e| e.0 == format!("WABA#{WABA}")).unwrap();
    assert_eq!(waba.1, WA_NUMBER);
    assert!(back
        .iter()
        .filter(|e| e.0 == "WEBHOOKSUBS")
        .all(|e| e.2 == Some(now)));
    assert!(back
        .iter()
        .any(|e| e.1.starts_with(&tenant) && e.1.ends_with(IG_ACCOUNT)));

    // Done: the next runs read one item and write nothing.
    let again = tenants.backfill_meta_indexes(now + 60, 25).await.unwrap();
    assert_eq!((again.tenants, again.written, again.done), (0, 0, true));
    // Walked again from the start (its progress lost): nothing is rewritten, and an entry a
    // connect or a check wrote keeps its time.
    h.server
        .platform()
        .store
        .delete(
            Table::Routes,
            &wappline::store::Key::new("BACKFILL", "meta-indexes"),
            None,
        )
        .await
        .unwrap();
    let rerun = tenants.backfill_meta_indexes(now + 120, 25).await.unwrap();
    assert_eq!((rerun.tenants, rerun.written), (1, 0));
    assert_eq!(index_entries(&h.all_items(Table::Routes).await), back);

    // Resumable: one tenant per run, in order, each run after the last.
    h.create_tenant("Second").await;
    as_if_connected_before_the_indexes(&h).await;
    let first = tenants.backfill_meta_indexes(now, 1).await.unwrap();
    assert_eq!((first.tenants, first.done), (1, false));
    let next = tenants.backfill_meta_indexes(now, 1).await.unwrap();
    assert_eq!(next.tenants, 1);
    let last = tenants.backfill_meta_indexes(now, 1).await.unwrap();
    assert!(last.done);
    assert_eq!(first.written + next.written + last.written, 3);
    assert_eq!(index_entries(&h.all_items(Table::Routes).await).len(), 3);
}

#[tokio::test]
async fn the_schedule_backfills_and_then_checks_an_older_channel() {
    let h = Harness::start(|_| {}).await;
    h.tenant_with_channels().await;
    as_if_connected_before_the_indexes(&h).await;
    // The next scheduled run writes the entries, due at once, and checks them.
    wait_for("backfilled and checked", || {
        let log = h.graph.onboarding();
        !log.subscribed_wabas.is_empty() && !log.instagram_subscriptions.is_empty()
    })
    .await;
    assert_eq!(h.graph.onboarding().subscribed_wabas, [WABA]);
    let items = h.all_items(Table::Routes).await;
    assert!(index_entries(&items)
        .iter()
        .any(|e| e.0 == format!("WABA#{WABA}") && e.1 == WA_NUMBER));
}
