//! The template picker in the Bitrix24 chat (`IM_TEXTAREA`, decision 0061), on the local
//! server with loopback fakes: bound at install (`placement.bind` with the im module's
//! `OPTIONS`) and unbound when the portal is disconnected; an operator (not an admin) opens
//! it above a WhatsApp customer's chat, sees the number's approved templates with their
//! parameters, sends one: the parameters are checked first, the command is written in the
//! chat as the operator (`im.message.add` with their token), and the `ONIMCONNECTORMESSAGEADD`
//! Bitrix24 then sends takes the `/template` path to Meta. Forged `AUTH_ID`s, users without
//! access to the chat, other portals and altered page tokens are refused and send nothing.

use e2e_tests::fake_bitrix::{EventBody, FAKE_DOMAIN, FAKE_MEMBER_ID};
use e2e_tests::fake_graph::template;
use e2e_tests::harness::{sample, WABA};
use e2e_tests::relay_world::{RelayWorld, APP_TOKEN, LINE};
use reqwest::StatusCode;
use serde_json::{json, Value};

struct Page {
    status: StatusCode,
    csp: String,
    html: String,
}

impl Page {
    fn field(&self, name: &str) -> String {
        let needle = format!("name=\"{name}\" value=\"");
        let start = self
            .html
            .find(&needle)
            .unwrap_or_else(|| panic!("no {name} in {}", self.html))
            + needle.len();
        let end = self.html[start..].find('"').unwrap() + start;
        self.html[start..end].to_owned()
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

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn send(w: &RelayWorld, token: &str, auth: &str, choice: &str, params: &[&str]) -> Page {
    let mut form = format!(
        "token={}&auth={}&template={}",
        enc(token),
        enc(auth),
        enc(choice)
    );
    for (i, p) in params.iter().enumerate() {
        form.push_str(&format!("&p{}={}", i + 1, enc(p)));
    }
    post(w, "/bitrix/templates/send", form).await
}

fn customer_text_long_ago() -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(&sample("whatsapp-text.json")).unwrap();
    let at = wappline::clock::now_secs() - 3 * 86_400;
    v["entry"][0]["changes"][0]["value"]["messages"][0]["timestamp"] = json!(at.to_string());
    serde_json::to_vec(&v).unwrap()
}

/// Installed, with two approved templates and a customer whose window closed; the external
/// chat id and Bitrix24's chat id.
pub(crate) async fn world() -> (RelayWorld, String, u64) {
    let w = RelayWorld::start().await;
    w.graph.set_templates(
        WABA,
        vec![
            template(
                "order_confirmation",
                "en_US",
                "UTILITY",
                json!([
                    {"type": "HEADER", "format": "TEXT", "text": "Order {{1}}"},
                    {"type": "BODY", "text": "Hi {{1}}, your order ships on {{2}}."}
                ]),
            ),
            template(
                "welcome_template",
                "en_US",
                "UTILITY",
                json!([{"type": "BODY", "text": "Welcome to Fake Market!"}]),
            ),
        ],
    );
    w.installed_tenant().await;
    let chat = w.customer_writes(&customer_text_long_ago()).await;
    let im_chat = w
        .bitrix
        .messages_received()
        .iter()
        .find(|m| m.external_chat_id == chat)
        .expect("the customer's message reached the portal")
        .chat_id;
    (w, chat, im_chat)
}

#[tokio::test]
async fn the_picker_is_bound_at_install_with_the_im_options_and_unbound_at_disconnect() {
    let (w, _, _) = world().await;
    let bound = w.bitrix.placements(FAKE_DOMAIN);
    assert_eq!(bound.len(), 1, "{bound:?}");
    let p = &bound[0];
    assert_eq!(p["PLACEMENT"], "IM_TEXTAREA");
    assert_eq!(p["HANDLER"], format!("{}/bitrix/templates", w.h.base));
    assert_eq!(p["OPTIONS"]["context"], "LINES");
    assert_eq!(p["OPTIONS"]["role"], "USER", "operators, not only admins");
    // A reinstall replaces it instead of adding a second button.
    let (s, body) = w
        .event(EventBody::for_portal(&w.bitrix, FAKE_DOMAIN, Some(APP_TOKEN)).app_install())
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(
        w.bitrix.placements(FAKE_DOMAIN).len(),
        1,
        "still one button"
    );
    // Our connector switched off on our line disconnects the portal: the button goes.
    let (s, body) = w
        .event(
            EventBody::for_portal(&w.bitrix, FAKE_DOMAIN, Some(APP_TOKEN))
                .status_delete("wappline_whatsapp", LINE),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    w.drain().await;
    assert!(w.bitrix.placements(FAKE_DOMAIN).is_empty(), "unbound");
    let unbind = w.bitrix.calls_to("placement.unbind");
    assert_eq!(
        unbind.last().unwrap().params["HANDLER"],
        format!("{}/bitrix/templates", w.h.base)
    );
}

#[tokio::test]
async fn an_operator_picks_a_template_checks_its_parameters_and_it_goes_out_as_their_message() {
    let (w, chat, im_chat) = world().await;
    // Anna is an operator of this chat, not a portal admin.
    let anna = w.bitrix.user_token(FAKE_DOMAIN, 12, "Anna Operator", false);
    w.bitrix.grant_dialog(FAKE_DOMAIN, 12, im_chat);
    let page = post(
        &w,
        "/bitrix/templates",
        EventBody::im_textarea(FAKE_DOMAIN, FAKE_MEMBER_ID, &anna, im_chat),
    )
    .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.html);
    assert!(
        page.csp
            .contains(&format!("frame-ancestors {};", w.bitrix.base_url())),
        "{}",
        page.csp
    );
    assert!(page.html.contains("order_confirmation") && page.html.contains("welcome_template"));
    assert!(page.html.contains("1. header {{1}}"), "{}", page.html);
    assert!(page.html.contains("3. body {{2}}"), "{}", page.html);
    let token = page.field("token");

    // Two parameters for three slots: refused before anything reaches the chat.
    let refused = send(
        &w,
        &token,
        &anna,
        "order_confirmation@en_US",
        &["A-17", "Ann"],
    )
    .await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        refused.html
    );
    assert!(refused.html.contains("Not sent"), "{}", refused.html);
    let with_bar = send(
        &w,
        &token,
        &anna,
        "order_confirmation@en_US",
        &["A|17", "Ann", "Monday"],
    )
    .await;
    assert_eq!(with_bar.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(w.bitrix.posted_messages().is_empty());

    let sent = send(
        &w,
        &token,
        &anna,
        "order_confirmation@en_US",
        &["A-17", "Ann", "Monday"],
    )
    .await;
    assert_eq!(sent.status, StatusCode::OK, "{}", sent.html);
    assert!(
        sent.html.contains("was sent as your message"),
        "{}",
        sent.html
    );
    let posted = w.bitrix.posted_messages();
    assert_eq!(posted.len(), 1);
    assert_eq!(posted[0].user, 12, "written as the operator");
    assert_eq!(posted[0].chat_id, im_chat);
    assert_eq!(
        posted[0].text,
        "/template order_confirmation@en_US A-17 | Ann | Monday"
    );
    assert!(
        w.graph.sent().is_empty(),
        "nothing reaches Meta before Bitrix24 relays it"
    );

    // Bitrix24 relays the operator's message to our connector: the /template path.
    let (s, body) = w
        .event(w.reply(&chat, posted[0].message_id, &posted[0].text, APP_TOKEN))
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    w.drain().await;
    let out = w.graph.sent();
    assert_eq!(out.len(), 1, "{out:?}");
    let t = &out[0].body["template"];
    assert_eq!(t["name"], "order_confirmation");
    assert_eq!(t["language"]["code"], "en_US");
    assert_eq!(t["components"][0]["parameters"][0]["text"], "A-17");
    assert_eq!(t["components"][1]["parameters"][1]["text"], "Monday");
}

#[tokio::test]
async fn forged_foreign_and_chatless_openings_and_altered_tokens_send_nothing() {
    let (w, _, im_chat) = world().await;
    let open = |auth: String, member: &'static str| {
        EventBody::im_textarea(FAKE_DOMAIN, member, &auth, im_chat)
    };
    // A forged AUTH_ID: the portal refuses it.
    let forged = post(
        &w,
        "/bitrix/templates",
        open("forgedtoken0000".into(), FAKE_MEMBER_ID),
    )
    .await;
    assert_eq!(forged.status, StatusCode::UNAUTHORIZED, "{}", forged.html);
    // A real user of the portal who is not in this chat.
    let bob = w.bitrix.user_token(FAKE_DOMAIN, 13, "Bob Sales", false);
    let outsider = post(&w, "/bitrix/templates", open(bob.clone(), FAKE_MEMBER_ID)).await;
    assert_eq!(outsider.status, StatusCode::FORBIDDEN, "{}", outsider.html);
    assert!(outsider.html.contains("no access to this chat"));
    // Another portal's member_id.
    let foreign = post(
        &w,
        "/bitrix/templates",
        open(bob.clone(), "0000000000000000000000000000beef"),
    )
    .await;
    assert_eq!(foreign.status, StatusCode::FORBIDDEN);
    // Not the chat placement.
    let wrong = post(
        &w,
        "/bitrix/templates",
        open(bob.clone(), FAKE_MEMBER_ID).replace("IM_TEXTAREA", "IM_SIDEBAR"),
    )
    .await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST);

    // An operator's page; its token altered, or sent back with another user's AUTH_ID.
    let anna = w.bitrix.user_token(FAKE_DOMAIN, 12, "Anna Operator", false);
    w.bitrix.grant_dialog(FAKE_DOMAIN, 12, im_chat);
    let page = post(&w, "/bitrix/templates", open(anna.clone(), FAKE_MEMBER_ID)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.html);
    let token = page.field("token");
    let mut altered = token.clone();
    altered.insert(5, 'x');
    let r = send(&w, &altered, &anna, "welcome_template@en_US", &[]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = send(&w, &token, &bob, "welcome_template@en_US", &[]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "another user's AUTH_ID");
    let r = send(&w, &token, "forgedtoken0000", "welcome_template@en_US", &[]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(w.bitrix.posted_messages().is_empty());
    assert!(w.graph.sent().is_empty());
}
