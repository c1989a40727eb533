//! Exports through the admin API on the local server: a tenant export runs on its queue, its
//! files download through short-lived signed links and hold every message decrypted; a
//! tampered link is refused; erasing a customer withdraws the tenant's exports.

use std::time::Duration;

use e2e_tests::harness::{samples, Harness, WA_NUMBER};
use reqwest::StatusCode;
use serde_json::{json, Value};
use wappline::meta::{split_webhook, EventKind};
use wappline::queue::platform;

async fn wait_completed(h: &Harness, tenant: &str, id: &str) -> Value {
    for _ in 0..500 {
        let v = h
            .admin_get(&format!("/admin/tenants/{tenant}/exports/{id}"))
            .await;
        if v["state"] == "completed" {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("export {id} did not complete");
}

async fn download(h: &Harness, tenant: &str, id: &str, file: &str) -> String {
    let link = h
        .admin(
            "POST",
            &format!("/admin/tenants/{tenant}/exports/{id}/links"),
            json!({"file": file}),
        )
        .await;
    let url = link["url"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("{}/exports/download/", h.base)),
        "{url}"
    );
    let resp = h.http.get(url).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    resp.text().await.unwrap()
}

#[tokio::test]
async fn a_tenant_export_holds_every_message_decrypted() {
    let h = Harness::start(|_| {}).await;
    let tenant = h.tenant_with_channels().await;
    // A user of the tenant: part of its data, exported without a password hash.
    let invitation = h
        .admin(
            "POST",
            &format!("/admin/tenants/{tenant}/invitations"),
            json!({"email": "owner@acme.test", "role": "owner"}),
        )
        .await;
    let accepted = h
        .http
        .post(format!("{}/auth/invitations/accept", h.base))
        .json(&json!({"token": invitation["token"], "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), StatusCode::CREATED);
    let all = samples();
    for (_, body) in &all {
        let (s, _) = h.post_signed(body).await;
        assert_eq!(s, StatusCode::OK);
    }
    h.drain(platform::INBOUND, Duration::from_secs(20)).await;

    let requested = h
        .admin(
            "POST",
            &format!("/admin/tenants/{tenant}/exports"),
            json!({"scope": "tenant"}),
        )
        .await;
    let id = requested["id"].as_str().unwrap().to_owned();
    let done = wait_completed(&h, &tenant, &id).await;
    assert!(done["files"].as_array().unwrap().len() >= 4, "{done}");

    let export = download(&h, &tenant, &id, "export.json").await;
    let messages_csv = download(&h, &tenant, &id, "messages.csv").await;
    // Every customer message of the samples is in the export, decrypted.
    let mut checked = 0;
    for (_, body) in &all {
        for event in split_webhook(body).unwrap().events {
            if event.account.id() != WA_NUMBER {
                continue;
            }
            if let EventKind::CustomerMessage {
                message_id,
                content,
                ..
            } = &event.kind
            {
                assert!(
                    export.contains(message_id.as_str()),
                    "{message_id:?} missing"
                );
                if let wappline::meta::Content::Text { body } = content {
                    assert!(export.contains(body.as_str()), "text missing: {body}");
                    assert!(messages_csv.contains(message_id.as_str()));
                    checked += 1;
                }
            }
        }
    }
    assert!(checked >= 3, "{checked} texts checked");
    let settings: Value =
        serde_json::from_str(&download(&h, &tenant, &id, "settings.json").await).unwrap();
    assert_eq!(
        settings["users"][0]["email"], "owner@acme.test",
        "{settings}"
    );
    assert_eq!(settings["users"][0]["role"], "owner");
    assert!(!export.contains("$2b$") && !export.contains("password"));
    // A tampered link is refused.
    let link = h
        .admin(
            "POST",
            &format!("/admin/tenants/{tenant}/exports/{id}/links"),
            json!({"file": "messages.csv"}),
        )
        .await;
    let url = link["url"].as_str().unwrap();
    // One character changed well inside the signature: the last character of an unpadded
    // base64 value may carry only padding bits, and may already be the one substituted.
    let at = url.len() - 5;
    let swap = if &url[at..=at] == "A" { "B" } else { "A" };
    let tampered = format!("{}{swap}{}", &url[..at], &url[at + 1..]);
    let status = h.http.get(&tampered).send().await.unwrap().status();
    assert!(
        status == StatusCode::FORBIDDEN || status == StatusCode::NOT_FOUND,
        "{status}"
    );

    // Erasing a customer withdraws the tenant's exports (they held that customer).
    h.admin(
        "POST",
        &format!("/admin/tenants/{tenant}/erasure/contacts"),
        json!({"channel": "whatsapp", "account_id": WA_NUMBER, "customer": "+16505551234"}),
    )
    .await;
    h.drain(platform::ERASURE, Duration::from_secs(20)).await;
    let listed = h
        .admin_get(&format!("/admin/tenants/{tenant}/exports"))
        .await;
    assert_eq!(listed["exports"].as_array().unwrap().len(), 0, "{listed}");
    assert!(!h.http.get(url).send().await.unwrap().status().is_success());
    h.server.shutdown().await;
}
