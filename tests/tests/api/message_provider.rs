//! WhatsApp numbers as Bitrix24 message providers end to end on the local server (decision
//! 0050): the install registers each connected number (`messageservice.sender.add`), a number
//! connected later is registered at once, a CRM robot's message posted to the handler sends
//! the approved template through the fake Graph API and its statuses go back with
//! `messageservice.message.status.update`; forged or bad calls send nothing; a disconnect
//! removes the provider (`messageservice.sender.delete`).

use e2e_tests::fake_bitrix::FAKE_DOMAIN;
use e2e_tests::fake_graph::template;
use e2e_tests::harness::{sample, WABA, WA_NUMBER};
use e2e_tests::relay_world::{RelayWorld, APP_TOKEN};
use reqwest::StatusCode;
use serde_json::{json, Value};

const CODE: &str = "wappline_wa_106540352242922";
const SECOND_NUMBER: &str = "113355779024681";
const SECOND_TOKEN: &str = "EAAsecondNUMBER";
const CUSTOMER: &str = "16505551234";

async fn world() -> (RelayWorld, String) {
    let w = RelayWorld::start().await;
    w.graph.set_templates(
        WABA,
        vec![template(
            "order_confirmation",
            "en_US",
            "UTILITY",
            json!([{"type": "BODY", "text": "Hi {{1}}, order {{2}} ships today."}]),
        )],
    );
    let tenant = w.installed_tenant().await;
    (w, tenant)
}

/// Posts a handler call; status and answer.
async fn call(w: &RelayWorld, form: String) -> (StatusCode, Value) {
    let resp =
        w.h.http
            .post(format!("{}/bitrix/messageservice", w.h.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form)
            .send()
            .await
            .unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn status_webhook(wamid: &str, status: &str) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(&sample("whatsapp-status-delivered.json")).unwrap();
    let s = &mut v["entry"][0]["changes"][0]["value"]["statuses"][0];
    s["id"] = json!(wamid);
    s["status"] = json!(status);
    s["timestamp"] = json!(wappline::clock::now_secs().to_string());
    serde_json::to_vec(&v).unwrap()
}

#[tokio::test]
async fn a_crm_robot_sends_a_template_through_the_numbers_provider_and_hears_its_status() {
    let (w, tenant) = world().await;
    // The install registered the number connected before it.
    let providers = w.bitrix.providers(FAKE_DOMAIN);
    let p = providers
        .get(CODE)
        .unwrap_or_else(|| panic!("{providers:?}"));
    assert_eq!(p["TYPE"], "SMS");
    assert!(p["HANDLER"]
        .as_str()
        .unwrap()
        .ends_with("/bitrix/messageservice"));
    assert!(p["NAME"].as_str().unwrap().contains(WA_NUMBER));

    let (id, form) = w.bitrix.provider_call(
        FAKE_DOMAIN,
        CODE,
        CUSTOMER,
        "order_confirmation Ann | A-17",
        APP_TOKEN,
    );
    let (s, answer) = call(&w, form.clone()).await;
    assert_eq!(s, StatusCode::OK, "{answer}");
    w.drain().await;
    let sent = w.graph.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].path, format!("/v26.0/{WA_NUMBER}/messages"));
    assert_eq!(sent[0].body["to"], CUSTOMER);
    assert_eq!(
        sent[0].body["template"],
        json!({"name": "order_confirmation", "language": {"code": "en_US"}, "components": [
            {"type": "body", "parameters": [
                {"type": "text", "text": "Ann"}, {"type": "text", "text": "A-17"}]}
        ]})
    );
    assert_eq!(w.bitrix.provider_statuses(&id), ["sent"]);
    // The same call again (a retry of the portal) sends nothing more.
    let (s, answer) = call(&w, form).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(answer["duplicate"], true);
    w.drain().await;
    assert_eq!(w.graph.sent().len(), 1);

    // Meta delivers it; the robot's message shows delivered.
    let (s, _) =
        w.h.post_signed(&status_webhook(&sent[0].id, "delivered"))
            .await;
    assert_eq!(s, StatusCode::OK);
    w.drain().await;
    assert_eq!(w.bitrix.provider_statuses(&id), ["sent", "delivered"]);
    // No Open Line chat was opened for it.
    assert!(w.bitrix.messages_received().is_empty());

    // A number connected after the install is registered at once.
    w.h.connect_whatsapp(&tenant, SECOND_NUMBER, WABA, SECOND_TOKEN)
        .await;
    assert!(w
        .bitrix
        .providers(FAKE_DOMAIN)
        .contains_key(&format!("wappline_wa_{SECOND_NUMBER}")));

    // Disconnecting a number removes its provider.
    let resp =
        w.h.http
            .delete(format!(
                "{}/admin/tenants/{tenant}/channels/whatsapp/{WA_NUMBER}",
                w.h.base
            ))
            .bearer_auth(e2e_tests::harness::ADMIN)
            .send()
            .await
            .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let providers = w.bitrix.providers(FAKE_DOMAIN);
    assert!(!providers.contains_key(CODE), "{providers:?}");
    assert!(providers.contains_key(&format!("wappline_wa_{SECOND_NUMBER}")));
    assert_eq!(w.bitrix.calls_to("messageservice.sender.delete").len(), 1);
    w.h.server.shutdown().await;
}

#[tokio::test]
async fn forged_and_bad_provider_calls_send_nothing() {
    let (w, _) = world().await;
    let cases = [
        // A forged application token.
        (
            "order_confirmation Ann | A-17",
            "0000000000000000000000000000dead",
            CODE,
            StatusCode::UNAUTHORIZED,
            "application_token",
        ),
        // A code that is not ours.
        (
            "order_confirmation Ann | A-17",
            APP_TOKEN,
            "someone_else",
            StatusCode::BAD_REQUEST,
            "not one of our providers",
        ),
        // Parameters the template does not take.
        (
            "order_confirmation Ann",
            APP_TOKEN,
            CODE,
            StatusCode::UNPROCESSABLE_ENTITY,
            "takes 2 parameter(s)",
        ),
        (
            "no_such_template",
            APP_TOKEN,
            CODE,
            StatusCode::UNPROCESSABLE_ENTITY,
            "no approved template named no_such_template",
        ),
    ];
    for (body, token, code, status, why) in cases {
        let (_, form) = w
            .bitrix
            .provider_call(FAKE_DOMAIN, code, CUSTOMER, body, token);
        let (s, answer) = call(&w, form).await;
        assert_eq!(s, status, "{body}: {answer}");
        assert!(
            answer["error"]["message"]
                .as_str()
                .or(answer["message"].as_str())
                .unwrap_or_default()
                .contains(why)
                || answer.to_string().contains(why),
            "{body}: {answer}"
        );
    }
    w.drain().await;
    assert!(w.graph.sent().is_empty());
    w.h.server.shutdown().await;
}
