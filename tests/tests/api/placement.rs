//! The connector settings page inside the portal (`SETTING_CONNECTOR`, decision 0043), on the
//! local server with loopback fakes of Bitrix24 and the Graph API.
//!
//! A portal admin opens the page for Open Line 2 and attaches a second WhatsApp number
//! there: the portal gets `imconnector.activate` and `imconnector.connector.data.set` for
//! line 2, that number's customers arrive in line 2 while the first number stays on the
//! portal's line; detaching (or Bitrix24 turning the connector off on line 2) sends it back.
//! Forged or expired `AUTH_ID`s, users who are not admins, unknown portals, other domains and
//! expired or altered page tokens are refused and change nothing.

use e2e_tests::fake_bitrix::{
    EventBody, FakeBitrix, RecordedCall, FAKE_CLIENT_SECRET, FAKE_DOMAIN, FAKE_MEMBER_ID,
};
use e2e_tests::harness::{sample, IG_ACCOUNT, WA_NUMBER};
use e2e_tests::relay_world::{RelayWorld, APP_TOKEN, LINE};
use reqwest::StatusCode;
use wappline::ids::TenantId;
use wappline::portal::placement::{PageClaims, PageTokenKey};
use wappline::tenant::{ChannelKind, ChannelRef, OpenLineAttachment, Secret};

const SECOND_NUMBER: &str = "106540352243001";
const SECOND_WABA: &str = "102290129340401";
const SECOND_TOKEN: &str = "EAAsecondNumberTOKEN";
const LINE_2: u64 = 2;
const WHATSAPP: &str = "wappline_whatsapp";

pub(super) struct Page {
    pub(super) status: StatusCode,
    csp: String,
    pub(super) html: String,
}

impl Page {
    /// The page token the page's forms carry.
    pub(super) fn token(&self) -> String {
        let start = self
            .html
            .find("name=\"token\" value=\"")
            .unwrap_or_else(|| panic!("no page token in {}", self.html))
            + "name=\"token\" value=\"".len();
        let end = self.html[start..].find('"').unwrap() + start;
        self.html[start..end].to_owned()
    }

    fn has_token(&self) -> bool {
        self.html.contains("name=\"token\"")
    }
}

async fn post(w: &RelayWorld, path: &str, body: String) -> Page {
    let resp =
        w.h.http
            .post(format!("{}{path}", w.h.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
    let status = resp.status();
    assert_eq!(
        resp.headers()["content-type"],
        "text/html; charset=utf-8",
        "{path}"
    );
    assert!(resp.headers().get("set-cookie").is_none(), "no cookies");
    let csp = resp.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    Page {
        status,
        csp,
        html: resp.text().await.unwrap(),
    }
}

pub(super) async fn open(
    w: &RelayWorld,
    domain: &str,
    member: &str,
    auth_id: &str,
    line: u64,
) -> Page {
    let form = EventBody::setting_connector(domain, member, auth_id, WHATSAPP, line, "en");
    post(w, "/bitrix/placement", form).await
}

pub(super) async fn change(w: &RelayWorld, action: &str, token: &str, channel: &str) -> Page {
    let form = format!(
        "token={}&channel={}&lang=en",
        urlencode(token),
        urlencode(channel)
    );
    post(w, &format!("/bitrix/placement/{action}"), form).await
}

/// Opens Open Line 2's page as the admin `auth_id` and attaches (`attach`) or detaches
/// (`detach`) the second number there: the answer, a 200.
async fn second_number_on_line_2(w: &RelayWorld, auth_id: &str, action: &str) -> Page {
    let page = open(w, FAKE_DOMAIN, FAKE_MEMBER_ID, auth_id, LINE_2).await;
    let done = change(
        w,
        action,
        &page.token(),
        &format!("whatsapp:{SECOND_NUMBER}"),
    )
    .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.html);
    done
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The Open Line the second number is attached to, as stored.
async fn second_line(w: &RelayWorld, tenant: &str) -> Option<OpenLineAttachment> {
    let platform = w.h.server.platform();
    let scope = platform
        .tenants
        .scope(&TenantId::parse(tenant).unwrap())
        .await
        .unwrap()
        .unwrap();
    scope
        .open_line_of(&ChannelRef::parse(ChannelKind::WhatsApp, SECOND_NUMBER).unwrap())
        .await
        .unwrap()
}

fn line_calls(fake: &FakeBitrix) -> Vec<RecordedCall> {
    let mut calls = fake.calls_to("imconnector.activate");
    calls.extend(fake.calls_to("imconnector.connector.data.set"));
    calls
}

/// A customer writes to the second number (the sample text, re-addressed).
fn to_second_number(id_suffix: &str) -> Vec<u8> {
    String::from_utf8(sample("whatsapp-text.json"))
        .unwrap()
        .replace(WA_NUMBER, SECOND_NUMBER)
        .replace("102290129340398", SECOND_WABA)
        .replace("wamid.HBgL", &format!("wamid.{id_suffix}HBgL"))
        .into_bytes()
}

async fn world() -> (RelayWorld, String) {
    let w = RelayWorld::start().await;
    let tenant = w.installed_tenant().await;
    w.h.connect_whatsapp(&tenant, SECOND_NUMBER, SECOND_WABA, SECOND_TOKEN)
        .await;
    w.graph.add_token(SECOND_TOKEN, SECOND_NUMBER);
    (w, tenant)
}

#[tokio::test]
async fn an_admin_attaches_a_number_to_line_2_and_its_customers_arrive_there() {
    let (w, tenant) = world().await;
    let fake = &w.bitrix;
    let auth_id = fake.user_token(FAKE_DOMAIN, 5, "Anna Admin", true);
    fake.clear_records();

    let page = open(&w, FAKE_DOMAIN, FAKE_MEMBER_ID, &auth_id, LINE_2).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.html);
    // Framed by the portal only; nothing loads but our hashed style.
    assert!(
        page.csp
            .contains(&format!("frame-ancestors {};", fake.base_url())),
        "{}",
        page.csp
    );
    assert!(page.csp.starts_with("default-src 'none'"));
    assert!(
        page.html.contains("WhatsApp on Open Line 2"),
        "{}",
        page.html
    );
    assert!(page.html.contains(SECOND_NUMBER) && page.html.contains(WA_NUMBER));
    assert!(
        page.html.contains("active yes"),
        "PLACEMENT_OPTIONS flags shown"
    );
    // AUTH_ID was checked on the portal itself, as that user.
    for method in ["user.current", "app.info", "user.admin"] {
        let calls = fake.calls_to(method);
        assert_eq!(calls.len(), 1, "{method}");
        assert_eq!(calls[0].auth.as_deref(), Some(auth_id.as_str()));
        assert_eq!(calls[0].domain, FAKE_DOMAIN);
    }
    assert!(page.html.find(&auth_id).is_none(), "AUTH_ID is not echoed");

    let attached = change(
        &w,
        "attach",
        &page.token(),
        &format!("whatsapp:{SECOND_NUMBER}"),
    )
    .await;
    assert_eq!(attached.status, StatusCode::OK, "{}", attached.html);
    assert!(
        attached.html.contains("is attached to this line"),
        "{}",
        attached.html
    );
    assert_eq!(
        second_line(&w, &tenant).await,
        Some(OpenLineAttachment {
            member_id: FAKE_MEMBER_ID.into(),
            line: LINE_2
        })
    );
    // The tile turns green and names the number: activate, then data.set, for line 2, with
    // the application's own token (not the user's page token).
    let portal_token = fake.valid_tokens().access_token;
    let activate = fake.calls_to("imconnector.activate");
    assert_eq!(activate.len(), 1);
    assert_eq!(
        activate[0].params,
        serde_json::json!({"CONNECTOR": WHATSAPP, "LINE": LINE_2, "ACTIVE": 1})
    );
    assert_eq!(activate[0].auth.as_deref(), Some(portal_token.as_str()));
    let data = fake.calls_to("imconnector.connector.data.set");
    assert_eq!(data.len(), 1);
    assert!(data[0].order > activate[0].order);
    assert_eq!(data[0].params["CONNECTOR"], WHATSAPP);
    assert_eq!(data[0].params["LINE"], LINE_2);
    assert_eq!(data[0].params["DATA"]["ID"], SECOND_NUMBER);
    assert_eq!(
        data[0].params["DATA"]["NAME"],
        // Its display number, recorded at connect (the fake: `+1 555-` and the id's last
        // 4 digits).
        "WhatsApp +1 555-3001"
    );
    let connector = &fake.connectors(FAKE_DOMAIN)[WHATSAPP];
    assert!(connector.active_lines.contains(&"2".to_owned()));
    assert!(connector.active_lines.contains(&LINE.to_string()));
    assert_eq!(connector.data["2"]["ID"], SECOND_NUMBER);

    // A customer of the second number arrives in line 2; the first number stays on the
    // portal's line.
    w.customer_writes(&to_second_number("a")).await;
    let last = fake.messages_received().last().cloned().unwrap();
    assert_eq!(
        (last.line.as_str(), last.connector.as_str()),
        ("2", WHATSAPP)
    );
    w.customer_writes(&sample("whatsapp-text.json")).await;
    let last = fake.messages_received().last().cloned().unwrap();
    assert_eq!(last.line, LINE.to_string());

    // Detaching turns the connector off on line 2 only, and the number goes back.
    second_number_on_line_2(&w, &auth_id, "detach").await;
    let off = fake
        .calls_to("imconnector.activate")
        .last()
        .cloned()
        .unwrap();
    assert_eq!(
        off.params,
        serde_json::json!({"CONNECTOR": WHATSAPP, "LINE": LINE_2, "ACTIVE": 0})
    );
    let connector = &fake.connectors(FAKE_DOMAIN)[WHATSAPP];
    assert!(!connector.active_lines.contains(&"2".to_owned()));
    assert!(connector.active_lines.contains(&LINE.to_string()));
    assert_eq!(second_line(&w, &tenant).await, None);
    w.customer_writes(&to_second_number("b")).await;
    let last = fake.messages_received().last().cloned().unwrap();
    assert_eq!(last.line, LINE.to_string());
}

#[tokio::test]
async fn turning_the_connector_off_on_line_2_detaches_only_its_channel() {
    let (w, tenant) = world().await;
    let auth_id = w.bitrix.user_token(FAKE_DOMAIN, 5, "Anna Admin", true);
    second_number_on_line_2(&w, &auth_id, "attach").await;

    let event = EventBody::for_portal(&w.bitrix, FAKE_DOMAIN, Some(APP_TOKEN))
        .status_delete(WHATSAPP, LINE_2);
    let (s, body) = w.event(event).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert!(body.contains("detached"), "{body}");
    assert_eq!(second_line(&w, &tenant).await, None);
    // The portal stays connected: the first number still reaches the portal's line.
    w.customer_writes(&sample("whatsapp-text.json")).await;
    let last = w.bitrix.messages_received().last().cloned().unwrap();
    assert_eq!(last.line, LINE.to_string());
}

#[tokio::test]
async fn forged_stale_foreign_and_non_admin_openings_change_nothing() {
    let (w, tenant) = world().await;
    let fake = &w.bitrix;
    fake.add_portal("other.bitrix24.com", "0b1d2c3e4f5a69788796a5b4c3d2e1f0");
    fake.clear_records();

    // A forged AUTH_ID: the portal answers 401 invalid_token.
    let forged = open(
        &w,
        FAKE_DOMAIN,
        FAKE_MEMBER_ID,
        "forgedauthid0123456789",
        LINE_2,
    )
    .await;
    assert_eq!(forged.status, StatusCode::UNAUTHORIZED, "{}", forged.html);
    assert!(
        forged.html.contains("did not confirm who opened"),
        "{}",
        forged.html
    );
    assert!(!forged.has_token());
    assert_eq!(fake.calls_to("user.current")[0].status, 401);

    // An AUTH_ID that has expired: 401 expired_token.
    let stale = fake.user_token(FAKE_DOMAIN, 5, "Anna Admin", true);
    fake.expire_user_token(FAKE_DOMAIN, &stale);
    let page = open(&w, FAKE_DOMAIN, FAKE_MEMBER_ID, &stale, LINE_2).await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED, "{}", page.html);
    assert!(!page.has_token());

    // A user who is not an administrator.
    let employee = fake.user_token(FAKE_DOMAIN, 9, "Ivan Operator", false);
    let page = open(&w, FAKE_DOMAIN, FAKE_MEMBER_ID, &employee, LINE_2).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.html);
    assert!(
        page.html.contains("Only Bitrix24 administrators"),
        "{}",
        page.html
    );
    assert!(!page.has_token());

    // A member_id we do not know: refused before anything is asked of any portal.
    fake.clear_records();
    let other_admin = fake.user_token("other.bitrix24.com", 5, "Olga Admin", true);
    let page = open(
        &w,
        "other.bitrix24.com",
        "0b1d2c3e4f5a69788796a5b4c3d2e1f0",
        &other_admin,
        LINE_2,
    )
    .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.html);
    assert!(
        page.html.contains("not connected to a Wappline account"),
        "{}",
        page.html
    );
    // Our portal's member_id posted from another domain: refused, and the token that came
    // with it is never sent anywhere.
    let page = open(
        &w,
        "other.bitrix24.com",
        FAKE_MEMBER_ID,
        &other_admin,
        LINE_2,
    )
    .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.html);
    assert!(fake.calls().is_empty(), "{:?}", fake.calls());

    // A client that asks for JSON gets the same refusal as JSON.
    let resp =
        w.h.http
            .post(format!("{}/bitrix/placement", w.h.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .body(EventBody::setting_connector(
                FAKE_DOMAIN,
                FAKE_MEMBER_ID,
                &employee,
                WHATSAPP,
                LINE_2,
                "en",
            ))
            .send()
            .await
            .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let json: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(json["error"]["code"], "not_admin", "{json}");

    // A Russian portal reads Russian.
    let ru = post(
        &w,
        "/bitrix/placement",
        EventBody::setting_connector(
            FAKE_DOMAIN,
            FAKE_MEMBER_ID,
            &employee,
            WHATSAPP,
            LINE_2,
            "ru",
        ),
    )
    .await;
    assert!(ru.html.contains("только администраторы"), "{}", ru.html);

    // Page tokens: expired (signed with the right key, an hour old), altered, absent.
    let key = PageTokenKey::derive(&Secret::parse("client_secret", FAKE_CLIENT_SECRET).unwrap());
    let claims = PageClaims {
        tenant: tenant.clone(),
        member_id: FAKE_MEMBER_ID.into(),
        line: LINE_2,
        connector: WHATSAPP.into(),
        user: 5,
        expires_at: wappline::clock::now_secs() - 3600,
    };
    let expired = key.sign(&claims);
    let channel = format!("whatsapp:{SECOND_NUMBER}");
    let page = change(&w, "attach", &expired, &channel).await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED, "{}", page.html);
    assert!(page.html.contains("This page has expired"), "{}", page.html);
    // The expired token is authentic: its portal may still frame the answer.
    assert!(page
        .csp
        .contains(&format!("frame-ancestors {};", fake.base_url())));

    let admin = fake.user_token(FAKE_DOMAIN, 5, "Anna Admin", true);
    let good = open(&w, FAKE_DOMAIN, FAKE_MEMBER_ID, &admin, LINE_2)
        .await
        .token();
    let mut altered = good.clone();
    let last = altered.pop().unwrap();
    altered.push(if last == 'A' { 'B' } else { 'A' });
    for token in [altered.as_str(), "", "v1.e30.AAAA"] {
        let page = change(&w, "attach", token, &channel).await;
        assert_eq!(
            page.status,
            StatusCode::UNAUTHORIZED,
            "{token}: {}",
            page.html
        );
        assert!(page.csp.contains("frame-ancestors 'none'"));
    }
    // Another tenant's number, with a good token: not found, as any unknown channel.
    let other = w.h.create_tenant("Other").await;
    w.h.connect_whatsapp(
        &other,
        "106540352249999",
        "102290129349999",
        "EAAotherTenantTOKEN",
    )
    .await;
    for channel in ["whatsapp:106540352249999", "whatsapp:999999999999999"] {
        let page = change(&w, "attach", &good, channel).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{}", page.html);
    }
    // A channel of the other kind than the page's connector.
    let page = change(&w, "attach", &good, "instagram:17841405822304914").await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST, "{}", page.html);

    // Nothing changed: no line attached, nothing turned on or named at the portal.
    assert_eq!(second_line(&w, &tenant).await, None);
    assert!(line_calls(fake).is_empty(), "{:?}", line_calls(fake));
}

#[tokio::test]
async fn a_line_carries_one_channel_and_bitrix24_errors_are_shown_and_undone() {
    let (w, tenant) = world().await;
    let fake = &w.bitrix;
    let admin = fake.user_token(FAKE_DOMAIN, 5, "Anna Admin", true);
    let token = open(&w, FAKE_DOMAIN, FAKE_MEMBER_ID, &admin, LINE_2)
        .await
        .token();
    let page = change(&w, "attach", &token, &format!("whatsapp:{WA_NUMBER}")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.html);
    // Line 2 holds the first number: the second is refused.
    let page = change(&w, "attach", &token, &format!("whatsapp:{SECOND_NUMBER}")).await;
    assert_eq!(page.status, StatusCode::CONFLICT, "{}", page.html);
    assert!(page.html.contains("already carries"), "{}", page.html);
    assert_eq!(second_line(&w, &tenant).await, None);

    // Bitrix24 refuses the change on line 3: the error is shown and the line stays free.
    let token3 = open(&w, FAKE_DOMAIN, FAKE_MEMBER_ID, &admin, 3)
        .await
        .token();
    fake.fail_next(1, e2e_tests::fake_bitrix::FailKind::ArgumentError);
    let page = change(&w, "attach", &token3, &format!("whatsapp:{SECOND_NUMBER}")).await;
    assert_eq!(page.status, StatusCode::BAD_GATEWAY, "{}", page.html);
    assert!(
        page.html.contains("Bitrix24 refused the change"),
        "{}",
        page.html
    );
    assert!(page.html.contains("imconnector.activate"), "{}", page.html);
    assert_eq!(second_line(&w, &tenant).await, None);
}

#[tokio::test]
async fn a_line_is_claimed_once_even_by_racing_admins_and_freed_by_a_disconnect() {
    let (w, tenant) = world().await;
    let platform = w.h.server.platform();
    let scope = platform
        .tenants
        .scope(&TenantId::parse(&tenant).unwrap())
        .await
        .unwrap()
        .unwrap();
    let member = wappline::ids::BitrixMemberId::parse(FAKE_MEMBER_ID).unwrap();
    let first = ChannelRef::parse(ChannelKind::WhatsApp, WA_NUMBER).unwrap();
    let second = ChannelRef::parse(ChannelKind::WhatsApp, SECOND_NUMBER).unwrap();

    // Two admins attach different numbers to line 6 at once: one wins.
    let (a, b) = tokio::join!(
        scope.attach_to_line(&first, &member, 6),
        scope.attach_to_line(&second, &member, 6)
    );
    assert_eq!(
        [a.is_ok(), b.is_ok()].iter().filter(|ok| **ok).count(),
        1,
        "{a:?} {b:?}"
    );
    let holder = scope.channel_on_line(&member, 6).await.unwrap().unwrap();
    let loser = if holder == first { &second } else { &first };
    assert_eq!(scope.open_line_of(loser).await.unwrap(), None);
    // Attaching again is a no-op; elsewhere is refused until detached.
    assert!(!scope.attach_to_line(&holder, &member, 6).await.unwrap());
    assert!(matches!(
        scope.attach_to_line(&holder, &member, 8).await,
        Err(wappline::tenant::LineError::AttachedElsewhere(6))
    ));

    // Reconnecting the holder through the admin API keeps its line.
    if holder == second {
        w.h.connect_whatsapp(&tenant, SECOND_NUMBER, SECOND_WABA, SECOND_TOKEN)
            .await;
    } else {
        w.h.connect_whatsapp(&tenant, WA_NUMBER, "102290129340398", "EAAwhatsappTOKEN")
            .await;
    }
    assert_eq!(
        scope.open_line_of(&holder).await.unwrap().map(|a| a.line),
        Some(6)
    );

    // Disconnecting it frees the line for the other number.
    let path = format!(
        "/admin/tenants/{tenant}/channels/whatsapp/{}",
        holder.external_id()
    );
    w.h.admin("DELETE", &path, serde_json::Value::Null).await;
    assert_eq!(scope.channel_on_line(&member, 6).await.unwrap(), None);
    assert!(scope.attach_to_line(loser, &member, 6).await.unwrap());
}

#[tokio::test]
async fn an_instagram_account_gets_its_own_line_from_the_instagram_connector() {
    let (w, _tenant) = world().await;
    let fake = &w.bitrix;
    let admin = fake.user_token(FAKE_DOMAIN, 5, "Anna Admin", true);
    let form = EventBody::setting_connector(
        FAKE_DOMAIN,
        FAKE_MEMBER_ID,
        &admin,
        "wappline_instagram",
        4,
        "en",
    );
    let page = post(&w, "/bitrix/placement", form).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.html);
    assert!(
        page.html.contains("Instagram on Open Line 4"),
        "{}",
        page.html
    );
    // Only accounts of the connector's kind are offered.
    assert!(page.html.contains(IG_ACCOUNT) && !page.html.contains(SECOND_NUMBER));
    let done = change(
        &w,
        "attach",
        &page.token(),
        &format!("instagram:{IG_ACCOUNT}"),
    )
    .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.html);
    let data = fake.calls_to("imconnector.connector.data.set");
    let last = data.last().unwrap();
    assert_eq!(last.params["CONNECTOR"], "wappline_instagram");
    assert_eq!(last.params["LINE"], 4);
    assert_eq!(last.params["DATA"]["ID"], IG_ACCOUNT);
    assert_eq!(
        last.params["DATA"]["NAME"],
        format!("Instagram {IG_ACCOUNT}")
    );

    w.customer_writes(&sample("instagram-text.json")).await;
    let m = fake.messages_received().last().cloned().unwrap();
    assert_eq!(
        (m.line.as_str(), m.connector.as_str()),
        ("4", "wappline_instagram")
    );
    // WhatsApp is untouched.
    w.customer_writes(&sample("whatsapp-text.json")).await;
    let m = fake.messages_received().last().cloned().unwrap();
    assert_eq!(m.line, LINE.to_string());
}

/// A line whose connector has no channel of its kind to attach links to the console's
/// channels page, in a new tab without a handle on this page (decision 0073), in the portal's
/// language.
#[tokio::test]
async fn a_line_with_nothing_to_attach_links_to_the_console_to_connect_one() {
    let (w, tenant) = world().await;
    w.h.admin(
        "DELETE",
        &format!("/admin/tenants/{tenant}/channels/instagram/{IG_ACCOUNT}"),
        serde_json::Value::Null,
    )
    .await;
    let admin = w.bitrix.user_token(FAKE_DOMAIN, 5, "Anna Admin", true);
    let link = format!(
        "<a href=\"{}/app/channels\" target=\"_blank\" rel=\"noopener\"",
        w.h.base
    );
    for (lang, says) in [
        ("en", "Connect Instagram in the Wappline console"),
        ("ru", "Подключить Instagram в консоли Wappline"),
    ] {
        let form = EventBody::setting_connector(
            FAKE_DOMAIN,
            FAKE_MEMBER_ID,
            &admin,
            "wappline_instagram",
            4,
            lang,
        );
        let page = post(&w, "/bitrix/placement", form).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.html);
        assert!(page.html.contains(&link), "{}", page.html);
        assert!(page.html.contains(says), "{lang}");
    }
    // The WhatsApp line has numbers to attach: the table, no link.
    let page = open(&w, FAKE_DOMAIN, FAKE_MEMBER_ID, &admin, LINE_2).await;
    assert!(!page.html.contains(&link));
}
