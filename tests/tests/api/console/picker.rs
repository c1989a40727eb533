//! The template picker in the Bitrix24 chat (decision 0061) in a real browser, on a portal
//! whose interface is Russian: headless Chromium posts the placement's opening form as
//! Bitrix24 does (`LANG` `ru`), the operator fills in the parameters in the labelled fields
//! and presses the button; the `/template` command arrives at the fake Bitrix24 as the
//! operator's message. A screenshot of each page goes to the artifacts folder the test prints.

use std::time::Duration;

use e2e_tests::fake_bitrix::{FAKE_DOMAIN, FAKE_MEMBER_ID};
use e2e_tests::webdriver::Browser;
use serde_json::json;

use super::browser::artifacts;

/// Posts `fields` to `url` from a blank page, as the portal's frame posts the placement.
const POST_FORM: &str = r#"
const [url, fields] = arguments;
const form = document.createElement('form');
form.method = 'post';
form.action = url;
for (const [name, value] of Object.entries(fields)) {
  const input = document.createElement('input');
  input.type = 'hidden';
  input.name = name;
  input.value = value;
  form.appendChild(input);
}
document.body.appendChild(form);
form.submit();
"#;

#[tokio::test]
async fn an_operator_of_a_russian_portal_sends_a_template_from_the_picker_in_a_browser() {
    let (w, _, im_chat) = crate::template_picker::world().await;
    // Anna is an operator of this chat, not a portal admin.
    let anna = w.bitrix.user_token(FAKE_DOMAIN, 12, "Anna Operator", false);
    w.bitrix.grant_dialog(FAKE_DOMAIN, 12, im_chat);
    let shots = artifacts();
    println!("picker screenshots: {}", shots.display());
    let b = Browser::start(&shots).await;

    // The widget data Bitrix24 posts to the handler (api-reference/widgets/im/textarea.md,
    // widgets/_includes/widget_data.md), from a portal in Russian.
    b.goto("about:blank").await;
    b.execute(
        POST_FORM,
        json!([format!("{}/bitrix/templates", w.h.base), {
            "DOMAIN": FAKE_DOMAIN,
            "PROTOCOL": "1",
            "LANG": "ru",
            "APP_SID": "99c80eff6378726287350416ee5fef0",
            "AUTH_ID": anna,
            "AUTH_EXPIRES": "3600",
            "member_id": FAKE_MEMBER_ID,
            "status": "L",
            "PLACEMENT": "IM_TEXTAREA",
            "PLACEMENT_OPTIONS": json!({"dialogId": format!("chat{im_chat}")}).to_string(),
        }]),
    )
    .await;
    b.wait_for("#t1-p1", Duration::from_secs(10)).await;
    assert_eq!(
        b.find("html").await.attr("lang").await.as_deref(),
        Some("ru")
    );
    assert_eq!(b.find("h1").await.text().await, "Шаблоны WhatsApp");
    let label = b.find("label[for=t1-p1]").await.text().await;
    assert_eq!(label, "1. заголовок {{1}}");
    assert_eq!(
        b.find("label[for=t1-p3]").await.text().await,
        "3. текст {{2}}"
    );
    b.screenshot("picker-01-ru").await;

    // The first template (order_confirmation: header {{1}}, body {{1}}, body {{2}}).
    b.find("#t1-p1").await.type_text("A-17").await;
    b.find("#t1-p2").await.type_text("Анна").await;
    b.find("#t1-p3").await.type_text("понедельник").await;
    b.screenshot("picker-02-filled").await;
    b.find("#send-1").await.click().await;
    let notice = b
        .text_when(".notice", |t| t.contains("order_confirmation@en_US"))
        .await;
    assert!(notice.contains("отправлен"), "{notice}");
    b.screenshot("picker-03-sent").await;

    // At the fake Bitrix24: the command, written in the chat as the operator.
    let posted = w.bitrix.posted_messages();
    assert_eq!(posted.len(), 1, "{posted:?}");
    assert_eq!(posted[0].user, 12);
    assert_eq!(posted[0].chat_id, im_chat);
    assert_eq!(
        posted[0].text,
        "/template order_confirmation@en_US A-17 | Анна | понедельник"
    );
    b.quit().await;
    w.h.server.shutdown().await;
}
