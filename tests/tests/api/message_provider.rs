//! WhatsApp numbers as Bitrix24 message providers end to end on the local server (decision
//! 0050): the install registers each connected number (`messageservice.sender.add`), a number
//! connected later is registered at once, a CRM robot's message posted to the handler sends
//! the approved template through the fake Graph API and its statuses go back with
//! `messageservice.message.status.update`; forged or bad calls send nothing; a disconnect
//! removes the provider (`messageservice.sender.delete`). A robot's message that cannot go
//! (refused by the handler, by Meta, by Meta's ban, or failed after Meta took it) is
//! reported `failed` (decision 0066).

use e2e_tests::fake_bitrix::{FailKind, FAKE_DOMAIN};
use e2e_tests::fake_graph::{template, GraphFailure};
use e2e_tests::harness::{sample, WABA, WA_NUMBER, WA_TOKEN};
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

/// Disconnects the sample number through the admin API.
async fn disconnect(w: &RelayWorld, tenant: &str) {
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
    disconnect(&w, &tenant).await;
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

/// Meta's `failed` status of `wamid` (the failed-status sample, for our message).
fn failed_webhook(wamid: &str) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(&sample("whatsapp-status-failed.json")).unwrap();
    let st = &mut v["entry"][0]["changes"][0]["value"]["statuses"][0];
    st["id"] = json!(wamid);
    st["recipient_id"] = json!(CUSTOMER);
    st["timestamp"] = json!(wappline::clock::now_secs().to_string());
    serde_json::to_vec(&v).unwrap()
}

/// The `messageservice.message.status.update` calls the portal received for `id`.
fn status_calls(w: &RelayWorld, id: &str) -> Vec<Value> {
    w.bitrix
        .calls_to("messageservice.message.status.update")
        .into_iter()
        .map(|c| {
            let mut p = c.params;
            if let Some(m) = p.as_object_mut() {
                m.remove("auth");
            }
            p
        })
        .filter(|p| p["MESSAGE_ID"] == id)
        .collect()
}

#[tokio::test]
async fn a_robots_message_that_cannot_go_is_reported_failed() {
    let (w, _) = world().await;
    let robot = |body: &str| {
        w.bitrix
            .provider_call(FAKE_DOMAIN, CODE, CUSTOMER, body, APP_TOKEN)
    };

    // Refused by the handler (no such template, wrong parameter count): answered 422, and
    // the portal hears `failed` for the message, since it reads nothing of that answer.
    for body in ["no_such_template", "order_confirmation Ann"] {
        let (id, form) = robot(body);
        let (s, answer) = call(&w, form.clone()).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {answer}");
        w.drain().await;
        assert_eq!(w.bitrix.provider_statuses(&id), ["failed"], "{body}");
        // The body at the fake, exactly as the reference documents it.
        assert_eq!(
            status_calls(&w, &id),
            [json!({"CODE": CODE, "MESSAGE_ID": id, "STATUS": "failed"})],
            "{body}"
        );
        // The portal asking again changes nothing: still refused, reported once.
        let (s, _) = call(&w, form).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
        w.drain().await;
        assert_eq!(w.bitrix.provider_statuses(&id), ["failed"], "{body}");
    }
    // A forged call is not the portal's: nothing is reported for it.
    let (forged, form) = w.bitrix.provider_call(
        FAKE_DOMAIN,
        CODE,
        CUSTOMER,
        "no_such_template",
        "0000000000000000000000000000dead",
    );
    let (s, _) = call(&w, form).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    w.drain().await;
    assert!(w.bitrix.provider_statuses(&forged).is_empty());
    assert!(w.graph.sent().is_empty());
    // No Open Line chat was opened for any of them.
    assert!(w.bitrix.messages_received().is_empty());

    // Meta refuses the send for good (the template is not approved in this language).
    w.graph.fail_sends(1, GraphFailure::Code(132001));
    let (id, form) = robot("order_confirmation Ann | A-17");
    let (s, answer) = call(&w, form).await;
    assert_eq!(s, StatusCode::OK, "{answer}");
    w.drain().await;
    assert!(w.graph.sent().is_empty());
    assert_eq!(w.bitrix.provider_statuses(&id), ["failed"]);

    // Meta takes the send, then reports it failed.
    let (id, form) = robot("order_confirmation Bob | A-18");
    let (s, answer) = call(&w, form).await;
    assert_eq!(s, StatusCode::OK, "{answer}");
    w.drain().await;
    let sent = w.graph.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(w.bitrix.provider_statuses(&id), ["sent"]);
    let (s, _) = w.h.post_signed(&failed_webhook(&sent[0].id)).await;
    assert_eq!(s, StatusCode::OK);
    w.drain().await;
    assert_eq!(w.bitrix.provider_statuses(&id), ["sent", "failed"]);

    // Meta disabled the number: the send stops before Meta, reported failed.
    let (s, _) =
        w.h.post_signed(&sample("whatsapp-account-disabled.json"))
            .await;
    assert_eq!(s, StatusCode::OK);
    w.drain().await;
    let (id, form) = robot("order_confirmation Cy | A-19");
    let (s, answer) = call(&w, form).await;
    assert_eq!(s, StatusCode::OK, "{answer}");
    w.drain().await;
    assert_eq!(w.graph.sent().len(), 1, "nothing more reached Meta");
    assert_eq!(w.bitrix.provider_statuses(&id), ["failed"]);
    assert!(w.bitrix.messages_received().is_empty());
    w.h.server.shutdown().await;
}

/// A number disconnected while its portal is down, then connected again before the
/// revocation's retry, keeps its provider: the retry skips the removal (decision 0119).
#[tokio::test]
async fn a_number_connected_again_before_the_retry_keeps_its_provider() {
    let (w, tenant) = world().await;
    assert!(w.bitrix.providers(FAKE_DOMAIN).contains_key(CODE));
    w.bitrix.fail_next(1, FailKind::Down);
    disconnect(&w, &tenant).await;
    let pending =
        w.h.admin_get(&format!("/admin/tenants/{tenant}/revocations"))
            .await;
    let step = |v: &Value| {
        v["revocations"][0]["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["step"] == "bitrix24_message_provider")
            .cloned()
            .unwrap()
    };
    assert_eq!(step(&pending)["state"], "pending", "{pending}");
    assert!(w.bitrix.providers(FAKE_DOMAIN).contains_key(CODE));

    // Connected again: registered as a provider again at once.
    w.h.connect_whatsapp(&tenant, WA_NUMBER, WABA, WA_TOKEN)
        .await;
    assert!(w.bitrix.providers(FAKE_DOMAIN).contains_key(CODE));
    let retried =
        w.h.admin(
            "POST",
            &format!("/admin/tenants/{tenant}/revocations/retry"),
            json!({}),
        )
        .await;
    assert_eq!(retried["revocations"][0]["revocation"], "done", "{retried}");
    let done =
        w.h.admin_get(&format!("/admin/tenants/{tenant}/revocations"))
            .await;
    assert_eq!(step(&done)["state"], "skipped", "{done}");
    let providers = w.bitrix.providers(FAKE_DOMAIN);
    assert!(providers.contains_key(CODE), "{providers:?}");
    w.h.server.shutdown().await;
}

/// The world, with [`CUSTOMER`] written once (`wamid`) and their erasure under way (its
/// marker written, nothing deleted yet); the tenant.
async fn being_erased(wamid: &str) -> (RelayWorld, String) {
    let (w, tenant) = world().await;
    let chat = w
        .customer_writes(&e2e_tests::whatsapp_events::text(
            CUSTOMER,
            "Erin Erased",
            wamid,
            wappline::clock::now_secs() - 60,
            "please forget me",
        ))
        .await;
    wappline::conversation::erased::ErasedSubjects::new(w.h.server.platform().store.clone())
        .mark(
            &wappline::ids::TenantId::parse(&tenant).unwrap(),
            &wappline::conversation::ConversationId::parse(&chat).unwrap(),
            wappline::clock::now_millis(),
        )
        .await
        .unwrap();
    (w, tenant)
}

/// A CRM robot's message to a person whose erasure is under way is refused and keeps
/// nothing of the person (decision 0125), and the portal still hears it `failed` (decision
/// 0135): Bitrix24 reads nothing of the handler's answer, so without the status the robot's
/// message would wait in the CRM as queued for ever. The portal asking again is reported
/// once.
#[tokio::test]
async fn a_robots_message_to_a_person_being_erased_is_reported_failed_and_keeps_nothing() {
    let (w, _) = being_erased("wamid.PROVIDER.ERASING").await;
    // What the person's tenant holds of messages and conversations.
    let kept = || async {
        let mut items: Vec<String> =
            w.h.all_items(wappline::store::Table::Data)
                .await
                .into_iter()
                .filter_map(|i| i.get_s("sk").map(str::to_owned))
                .filter(|sk| sk.starts_with("MSG#") || sk == "META")
                .collect();
        items.sort();
        items
    };
    let kept_before = kept().await;
    let posted_before = w.bitrix.messages_received().len();

    let (id, form) = w.bitrix.provider_call(
        FAKE_DOMAIN,
        CODE,
        CUSTOMER,
        "order_confirmation Erin | A-20",
        APP_TOKEN,
    );
    let (s, answer) = call(&w, form.clone()).await;
    assert_eq!(s, StatusCode::CONFLICT, "{answer}");
    assert_eq!(answer["error"]["code"], "subject_being_erased", "{answer}");
    w.drain().await;
    assert!(w.graph.sent().is_empty(), "nothing sent to the person");
    assert_eq!(
        kept().await,
        kept_before,
        "no message, no conversation kept"
    );
    assert_eq!(w.bitrix.messages_received().len(), posted_before);
    assert_eq!(w.bitrix.provider_statuses(&id), ["failed"]);
    assert_eq!(
        status_calls(&w, &id),
        [json!({"CODE": CODE, "MESSAGE_ID": id, "STATUS": "failed"})]
    );

    // The portal asking again: refused again, reported once.
    let (s, _) = call(&w, form).await;
    assert_eq!(s, StatusCode::CONFLICT);
    w.drain().await;
    assert_eq!(w.bitrix.provider_statuses(&id), ["failed"]);
    assert_eq!(status_calls(&w, &id).len(), 1);
    assert_eq!(kept().await, kept_before);
    w.h.server.shutdown().await;
}

/// The portal down when the robot's message is refused: its `failed` status is staged and
/// waits for the portal like any other operation, and reaches it although the person's
/// erasure completed meanwhile (the status names nothing of the person: the erasure neither
/// drops its job nor deletes its staged operation; decision 0135).
#[tokio::test]
async fn a_refused_robots_message_is_reported_after_the_erasure_completes() {
    let (w, tenant) = being_erased("wamid.PROVIDER.ERASED").await;
    let tenant_id = wappline::ids::TenantId::parse(&tenant).unwrap();
    let platform = w.h.server.platform();
    w.bitrix.outage(FAKE_DOMAIN, FailKind::Down);
    let (id, form) = w.bitrix.provider_call(
        FAKE_DOMAIN,
        CODE,
        CUSTOMER,
        "order_confirmation Erin | A-21",
        APP_TOKEN,
    );
    let (s, answer) = call(&w, form).await;
    assert_eq!(s, StatusCode::CONFLICT, "{answer}");
    // The status is staged before the erasure runs.
    let outbox =
        wappline::crm_sync::outbox::Outbox::new(platform.store.clone(), platform.envelope.clone());
    let since = std::time::Instant::now();
    while !outbox
        .staged_ops(&tenant_id)
        .await
        .unwrap()
        .iter()
        .any(|(_, op, _)| op.method == "messageservice.message.status.update")
    {
        assert!(since.elapsed().as_secs() < 20, "no status staged");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    w.h.erase_contact(&tenant, "whatsapp", WA_NUMBER, &format!("+{CUSTOMER}"))
        .await;
    assert!(w.bitrix.provider_statuses(&id).is_empty());
    w.bitrix.end_outage(FAKE_DOMAIN);
    w.drain().await;
    assert_eq!(w.bitrix.provider_statuses(&id), ["failed"]);
    assert!(w.graph.sent().is_empty());
    w.h.server.shutdown().await;
}
