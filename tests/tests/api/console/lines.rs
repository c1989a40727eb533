//! Open Lines in the console (decision 0072): each channel's line (id and the name Bitrix24
//! gives it), attached and detached by an owner through the same change the connector
//! settings page makes: the fake portal sees `imconnector.activate` and
//! `imconnector.connector.data.set`, the audit log the change; a taken line is refused in
//! words and nothing changes; a viewer, and another tenant's channel, are refused.

use std::time::Duration;

use e2e_tests::console::{add_user, ConsoleClient};
use e2e_tests::fake_bitrix::{FAKE_DOMAIN, FAKE_MEMBER_ID};
use e2e_tests::harness::{Harness, IG_ACCOUNT, WA_NUMBER};
use e2e_tests::relay_world::{RelayWorld, LINE};
use e2e_tests::webdriver::Browser;
use reqwest::StatusCode;
use serde_json::{json, Value};

use super::browser::{artifacts, sign_in};

const WHATSAPP: &str = "wappline_whatsapp";

async fn open_line_of(h: &Harness, tenant: &str, id: &str) -> Value {
    let v = h.admin_get(&format!("/admin/tenants/{tenant}")).await;
    v["channels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .map(|c| c["open_line"].clone())
        .unwrap_or(Value::Null)
}

/// The lines table's cell of channel `id`.
fn line_cell(body: &str, id: &str) -> String {
    let row = body
        .split(&format!("data-line-channel=\"{id}\""))
        .nth(1)
        .unwrap_or_else(|| panic!("no line row for {id}"));
    let cell = row.split("<td class=\"line\">").nth(1).unwrap();
    cell.split("</td>").next().unwrap().to_owned()
}

#[tokio::test]
async fn an_owner_attaches_and_detaches_a_channel_and_others_are_refused() {
    // Installed as Bitrix24 installs it: our connectors registered, the portal's line 7.
    let w = RelayWorld::start().await;
    let tenant = w.installed_tenant().await;
    let (h, fake) = (&w.h, &w.bitrix);
    fake.name_line(FAKE_DOMAIN, LINE, "Main");
    fake.name_line(FAKE_DOMAIN, 2, "Sales");
    add_user(h, &tenant, "owner@acme.test", "owner").await;
    add_user(h, &tenant, "viewer@acme.test", "viewer").await;
    let mut owner = ConsoleClient::new(&h.base);
    owner.sign_in(&tenant, "owner@acme.test").await;
    fake.clear_records();

    // Both channels use the portal's line, named by the portal.
    let page = owner.get("/app/bitrix24").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(line_cell(&page.body, WA_NUMBER).starts_with("7 · Main ("));
    assert!(line_cell(&page.body, IG_ACCOUNT).starts_with("7 · Main ("));
    let asked = fake.calls_to("imopenlines.config.get");
    assert!(
        asked.iter().any(|c| c.params["CONFIG_ID"] == LINE),
        "{asked:?}"
    );

    // Attach the number to line 2: the portal is told, the page and the channel say so.
    let r = owner
        .submit(
            "/app/bitrix24",
            "/app/bitrix24/lines/attach",
            &[("kind", "whatsapp"), ("id", WA_NUMBER), ("line", "2")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains("id=\"line-notice\""), "{}", r.body);
    assert_eq!(line_cell(&r.body, WA_NUMBER), "2 · Sales");
    let activate = fake.calls_to("imconnector.activate");
    assert_eq!(activate.len(), 1, "{activate:?}");
    assert_eq!(
        activate[0].params,
        json!({"CONNECTOR": WHATSAPP, "LINE": 2, "ACTIVE": 1})
    );
    assert_eq!(activate[0].domain, FAKE_DOMAIN);
    let data = fake.calls_to("imconnector.connector.data.set");
    assert_eq!(data.len(), 1);
    assert_eq!(data[0].params["LINE"], 2);
    assert_eq!(data[0].params["DATA"]["ID"], WA_NUMBER);
    assert_eq!(
        open_line_of(h, &tenant, WA_NUMBER).await,
        json!({"member_id": FAKE_MEMBER_ID, "line": 2})
    );
    let channels = owner.get("/app/channels").await;
    assert!(channels.body.contains("<td class=\"line\">2 · Sales</td>"));
    let audit = h
        .admin_get(&format!("/admin/tenants/{tenant}/audit"))
        .await
        .to_string();
    assert!(
        audit.contains("settings_changed")
            && audit.contains("open_line")
            && audit.contains("user:"),
        "{audit}"
    );

    // The line carries one channel: the account is refused in words, nothing changes.
    fake.clear_records();
    let r = owner
        .submit(
            "/app/bitrix24",
            "/app/bitrix24/lines/attach",
            &[("kind", "instagram"), ("id", IG_ACCOUNT), ("line", "2")],
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert!(r.body.contains("Open Line 2 already carries"), "{}", r.body);
    assert!(fake.calls_to("imconnector.activate").is_empty());
    assert_eq!(open_line_of(h, &tenant, IG_ACCOUNT).await, Value::Null);
    // Not a line number: 400, nothing asked of the portal.
    let r = owner
        .submit(
            "/app/bitrix24",
            "/app/bitrix24/lines/attach",
            &[("kind", "instagram"), ("id", IG_ACCOUNT), ("line", "0")],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(fake.calls_to("imconnector.activate").is_empty());

    // A viewer sees the lines but may not change them.
    let mut viewer = ConsoleClient::new(&h.base);
    viewer.sign_in(&tenant, "viewer@acme.test").await;
    let page = viewer.get("/app/bitrix24").await;
    assert_eq!(line_cell(&page.body, WA_NUMBER), "2 · Sales");
    assert!(!page.body.contains("/app/bitrix24/lines/"));
    let r = viewer
        .submit(
            "/app/channels",
            "/app/bitrix24/lines/detach",
            &[("kind", "whatsapp"), ("id", WA_NUMBER), ("line", "2")],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    // Another tenant's number is not found from this account, and its own line is untouched.
    let other = h.create_tenant("Other").await;
    h.connect_whatsapp(
        &other,
        "106540352249999",
        "102290129349999",
        "EAAGotherTOKEN",
    )
    .await;
    let r = owner
        .submit(
            "/app/bitrix24",
            "/app/bitrix24/lines/attach",
            &[
                ("kind", "whatsapp"),
                ("id", "106540352249999"),
                ("line", "3"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    assert!(fake.calls_to("imconnector.activate").is_empty());
    assert_eq!(
        open_line_of(h, &other, "106540352249999").await,
        Value::Null
    );
    assert!(!h
        .admin_get(&format!("/admin/tenants/{other}/audit"))
        .await
        .to_string()
        .contains("open_line"));

    // Detach: the connector goes off on line 2 only, the number uses the portal's line again.
    let r = owner
        .submit(
            "/app/bitrix24",
            "/app/bitrix24/lines/detach",
            &[("kind", "whatsapp"), ("id", WA_NUMBER), ("line", "2")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let activate = fake.calls_to("imconnector.activate");
    assert_eq!(
        activate.last().unwrap().params,
        json!({"CONNECTOR": WHATSAPP, "LINE": 2, "ACTIVE": 0})
    );
    assert_eq!(open_line_of(h, &tenant, WA_NUMBER).await, Value::Null);
    assert!(line_cell(&r.body, WA_NUMBER).starts_with("7 · Main ("));
    w.h.server.shutdown().await;
}

#[tokio::test]
async fn an_owner_attaches_a_number_to_a_line_in_a_browser() {
    let w = RelayWorld::start().await;
    let tenant = w.installed_tenant().await;
    let (h, fake) = (&w.h, &w.bitrix);
    fake.name_line(FAKE_DOMAIN, 2, "Sales");
    add_user(h, &tenant, "owner@acme.test", "owner").await;
    let shots = artifacts();
    println!("console screenshots: {}", shots.display());
    let b = Browser::start(&shots).await;
    fake.clear_records();
    sign_in(&b, &h.base, &tenant, "owner@acme.test").await;
    b.goto(&format!("{}/app/bitrix24", h.base)).await;
    b.find(&format!("#line-{WA_NUMBER}"))
        .await
        .type_text("2")
        .await;
    b.find(&format!("#attach-{WA_NUMBER}")).await.click().await;
    b.wait_for("#line-notice", Duration::from_secs(10)).await;
    let cell = b
        .text_when(
            &format!("tr[data-line-channel='{WA_NUMBER}'] td.line"),
            |t| t.contains("Sales"),
        )
        .await;
    assert_eq!(cell, "2 · Sales");
    b.screenshot("lines-attached").await;
    let activate = fake.calls_to("imconnector.activate");
    assert_eq!(activate.last().unwrap().params["LINE"], 2);
    assert_eq!(fake.calls_to("imconnector.connector.data.set").len(), 1);
    b.quit().await;
    w.h.server.shutdown().await;
}
