//! A WhatsApp number's Meta status on its own Open Line (decision 0061), on the local server
//! with loopback fakes of Bitrix24 and the Graph API: a portal admin attaches the number to
//! Open Line 2; Meta restricts it, bans it, our app is removed from its account: each time
//! the line's connector data (`imconnector.connector.data.set`, the channel's `NAME`) says
//! so; when Meta lifts it the name is plain again. `imconnector.set.error`, which would turn
//! the connector's status off, is never called. A number on the portal's shared line is
//! left alone. A restriction that ends by itself (its `expiration` passes, Meta sends no
//! event) gives the line its plain name back at the sync worker's next scheduled run
//! (decision 0066), run here at chosen times.

use e2e_tests::fake_bitrix::{FAKE_DOMAIN, FAKE_MEMBER_ID};
use e2e_tests::harness::{sample, WA_NUMBER};
use e2e_tests::relay_world::RelayWorld;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::placement::{change, open};

const LINE_2: u64 = 2;
const WHATSAPP: &str = "wappline_whatsapp";

/// The restriction sample, in force until 2099.
fn restriction() -> Vec<u8> {
    String::from_utf8(sample("whatsapp-account-restriction.json"))
        .unwrap()
        .replace("2026-01-31T10:00:00+0000", "2099-01-31T10:00:00+0000")
        .into_bytes()
}

/// Meta lifts it: `ACCOUNT_RESTRICTION` with no restrictions left, a later event.
fn lifted() -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(&restriction()).unwrap();
    v["entry"][0]["time"] = json!(1767265200);
    v["entry"][0]["changes"][0]["value"]["restriction_info"] = json!([]);
    serde_json::to_vec(&v).unwrap()
}

/// The `NAME` the portal holds for our WhatsApp connector on `line`.
fn line_name(w: &RelayWorld, line: u64) -> String {
    w.bitrix.connectors(FAKE_DOMAIN)[WHATSAPP].data[&line.to_string()]["NAME"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

async fn post_drained(w: &RelayWorld, body: &[u8]) {
    let (s, answer) = w.h.post_signed(body).await;
    assert_eq!(s, StatusCode::OK, "{answer}");
    w.drain().await;
}

#[tokio::test]
async fn a_restricted_banned_or_disconnected_number_says_so_on_its_line_until_it_recovers() {
    let w = RelayWorld::start().await;
    w.installed_tenant().await;
    let auth_id = w.bitrix.user_token(FAKE_DOMAIN, 5, "Anna Admin", true);
    let page = open(&w, FAKE_DOMAIN, FAKE_MEMBER_ID, &auth_id, LINE_2).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.html);
    let attached = change(
        &w,
        "attach",
        &page.token(),
        &format!("whatsapp:{WA_NUMBER}"),
    )
    .await;
    assert_eq!(attached.status, StatusCode::OK, "{}", attached.html);
    let plain = line_name(&w, LINE_2);
    assert!(
        plain.starts_with("WhatsApp ") && !plain.contains("Meta"),
        "{plain}"
    );

    w.bitrix.clear_records();
    post_drained(&w, &restriction()).await;
    // The whole DATA again, for line 2, with the application's token; the name says why.
    let calls = w.bitrix.calls_to("imconnector.connector.data.set");
    assert_eq!(calls.len(), 1, "{calls:?}");
    let params = &calls[0].params;
    assert_eq!(params["CONNECTOR"], WHATSAPP);
    assert_eq!(params["LINE"].to_string().trim_matches('"'), "2");
    assert_eq!(params["DATA"]["ID"], WA_NUMBER);
    assert_eq!(
        line_name(&w, LINE_2),
        format!("{plain} (restricted by Meta: no messages to customers)")
    );
    // The portal's own line, shared by the other channels, still names the product.
    assert!(
        !line_name(&w, e2e_tests::relay_world::LINE).contains("Meta"),
        "the shared line is left alone"
    );

    post_drained(&w, &lifted()).await;
    assert_eq!(
        line_name(&w, LINE_2),
        plain,
        "recovered: the plain name again"
    );

    post_drained(&w, &sample("whatsapp-account-disabled.json")).await;
    assert_eq!(line_name(&w, LINE_2), format!("{plain} (disabled by Meta)"));
    post_drained(&w, &sample("whatsapp-account-reinstated.json")).await;
    assert_eq!(line_name(&w, LINE_2), plain);

    // Our app removed from the account in Meta: the number is disconnected.
    post_drained(&w, &sample("whatsapp-account-partner-app.json")).await;
    assert_eq!(
        line_name(&w, LINE_2),
        format!("{plain} (disconnected: our app was removed in Meta)")
    );

    assert!(w.bitrix.calls_to("imconnector.set.error").is_empty());
    // Customers' messages still reach the line: the connector was never turned off there.
    assert!(w.bitrix.connectors(FAKE_DOMAIN)[WHATSAPP]
        .active_lines
        .contains(&LINE_2.to_string()));
}

#[tokio::test]
async fn a_number_on_the_shared_line_leaves_the_portal_untouched() {
    let w = RelayWorld::start().await;
    w.installed_tenant().await;
    w.bitrix.clear_records();
    post_drained(&w, &restriction()).await;
    assert!(w
        .bitrix
        .calls_to("imconnector.connector.data.set")
        .is_empty());
    assert!(w.bitrix.calls_to("imconnector.set.error").is_empty());
}

/// Meta's time format of `restriction_info[].expiration` (`2026-01-31T10:00:00+0000`).
fn meta_time(secs: i64) -> String {
    wappline::clock::rfc3339(secs).replace('Z', "+0000")
}

/// A restriction of replies ending at `customer` and of new conversations at `business`.
fn restriction_until(customer: i64, business: i64) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(&restriction()).unwrap();
    let info = &mut v["entry"][0]["changes"][0]["value"]["restriction_info"];
    info[0]["expiration"] = json!(meta_time(business));
    info[1]["expiration"] = json!(meta_time(customer));
    serde_json::to_vec(&v).unwrap()
}

#[tokio::test]
async fn a_restriction_that_ends_without_an_event_leaves_the_line_name_at_the_next_run() {
    let w = RelayWorld::start().await;
    w.installed_tenant().await;
    let auth_id = w.bitrix.user_token(FAKE_DOMAIN, 5, "Anna Admin", true);
    let page = open(&w, FAKE_DOMAIN, FAKE_MEMBER_ID, &auth_id, LINE_2).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.html);
    let attached = change(
        &w,
        "attach",
        &page.token(),
        &format!("whatsapp:{WA_NUMBER}"),
    )
    .await;
    assert_eq!(attached.status, StatusCode::OK, "{}", attached.html);
    let plain = line_name(&w, LINE_2);

    // Replies restricted for an hour, new conversations for two.
    let now = wappline::clock::now_secs();
    let (hour, two_hours) = (now + 3_600, now + 7_200);
    post_drained(&w, &restriction_until(hour, two_hours)).await;
    let restricted = format!("{plain} (restricted by Meta: no messages to customers)");
    assert_eq!(line_name(&w, LINE_2), restricted);

    let ends =
        w.h.server
            .restriction_ends()
            .expect("the Bitrix24 application is configured");
    // Before the first expiry nothing is due: the line is not written.
    w.bitrix.clear_records();
    let report = ends.run_due(hour - 1, 100).await.unwrap();
    assert_eq!(report.shown, 0, "{report:?}");
    assert!(w
        .bitrix
        .calls_to("imconnector.connector.data.set")
        .is_empty());
    assert_eq!(line_name(&w, LINE_2), restricted);

    // The replies' restriction passed, with no event: the line says what is still in force.
    let report = ends.run_due(hour + 1, 100).await.unwrap();
    assert_eq!(report.shown, 1, "{report:?}");
    assert_eq!(
        line_name(&w, LINE_2),
        format!("{plain} (restricted by Meta: no new conversations)")
    );
    // Shown once: a second run at the same time finds nothing due.
    let report = ends.run_due(hour + 2, 100).await.unwrap();
    assert_eq!(report.shown, 0, "{report:?}");

    // The last one passed: the plain name again, and nothing left to show.
    let report = ends.run_due(two_hours + 1, 100).await.unwrap();
    assert_eq!(report.shown, 1, "{report:?}");
    assert_eq!(line_name(&w, LINE_2), plain);
    let report = ends.run_due(two_hours + 86_400, 100).await.unwrap();
    assert_eq!(report.shown, 0, "{report:?}");
    assert!(w.bitrix.calls_to("imconnector.set.error").is_empty());
}
