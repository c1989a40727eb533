//! Usage counters and plan quotas end to end on the local server, with loopback fakes of
//! Bitrix24 and the Graph API: sends over the monthly outbound quota are refused with 429
//! (public API) or reported to the operator in the chat (Bitrix24), and nothing goes out for
//! them; inbound over the inbound quota is relayed all the same, counted and flagged; the
//! usage report matches what happened, per channel. A suspended tenant cannot send.

use e2e_tests::harness::{sample, IG_ACCOUNT, WA_NUMBER};
use e2e_tests::relay_world::{RelayWorld, APP_TOKEN};
use reqwest::StatusCode;
use serde_json::{json, Value};
use wappline::ids::TenantId;
use wappline::store::{Key, Table, Update};
use wappline::usage::{Plan, Usage, UsageMonth, UsageReport};

const IG_TOKEN: &str = "IGAAinstagramTOKEN";
/// The customer of the WhatsApp samples (their business-scoped user id), who wrote.
const CUSTOMER: &str = "US.13491208655302741918";

/// The relay world, with the Instagram account's token known to the Graph API too.
async fn start() -> RelayWorld {
    let w = RelayWorld::start().await;
    w.graph.add_instagram_token(IG_TOKEN, IG_ACCOUNT, None);
    w
}

/// What only the usage tests ask of the world.
trait UsageWorld {
    fn usage(&self) -> Usage;
    async fn report(&self, tenant: &TenantId) -> UsageReport;
    /// The installed tenant of [`RelayWorld::installed_tenant`], as a tenant id.
    async fn installed_tenant_id(&self) -> TenantId;
    async fn key_for(&self, tenant: &TenantId) -> String;
    /// A public API send; status, `Retry-After` and the JSON answer.
    async fn send(&self, key: &str, text: &str, idem: &str) -> (StatusCode, Option<u64>, Value);
    /// Customer messages (not notes) the portal received.
    fn relayed(&self) -> usize;
    async fn api_messages(&self) -> usize;
}

impl UsageWorld for RelayWorld {
    fn usage(&self) -> Usage {
        Usage::new(self.h.server.platform().store.clone())
    }

    async fn report(&self, tenant: &TenantId) -> UsageReport {
        let month = UsageMonth::current(wappline::clock::now_secs());
        self.usage().report(tenant, month).await.unwrap()
    }

    async fn installed_tenant_id(&self) -> TenantId {
        TenantId::parse(&self.installed_tenant().await).unwrap()
    }

    async fn key_for(&self, tenant: &TenantId) -> String {
        let created = self
            .h
            .admin(
                "POST",
                &format!("/admin/tenants/{tenant}/api-keys"),
                json!({"name": "CRM bridge", "scope": "send"}),
            )
            .await;
        created["key"].as_str().unwrap().to_owned()
    }

    async fn send(&self, key: &str, text: &str, idem: &str) -> (StatusCode, Option<u64>, Value) {
        let body =
            json!({"channel": "whatsapp", "account_id": WA_NUMBER, "to": CUSTOMER, "text": text});
        let resp = self
            .h
            .http
            .post(format!("{}/v1/messages", self.h.base))
            .bearer_auth(key)
            .header("Idempotency-Key", idem)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().parse().unwrap());
        let text = resp.text().await.unwrap();
        (
            status,
            retry_after,
            serde_json::from_str(&text).unwrap_or(Value::Null),
        )
    }

    fn relayed(&self) -> usize {
        self.bitrix
            .messages_received()
            .iter()
            .filter(|m| !m.external_message_id.starts_with("note."))
            .count()
    }

    async fn api_messages(&self) -> usize {
        self.h
            .all_items(Table::Data)
            .await
            .iter()
            .filter(|i| i.get_s("origin") == Some("api"))
            .count()
    }
}

/// The WhatsApp text sample, sent now, with message id `wamid`.
fn whatsapp_text(wamid: &str) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(&sample("whatsapp-text.json")).unwrap();
    let m = &mut v["entry"][0]["changes"][0]["value"]["messages"][0];
    m["timestamp"] = json!(wappline::clock::now_secs().to_string());
    m["id"] = json!(wamid);
    serde_json::to_vec(&v).unwrap()
}

#[tokio::test]
async fn sends_over_the_outbound_quota_are_refused_and_inbound_is_relayed_and_flagged() {
    let w = start().await;
    let tenant = w.installed_tenant_id().await;
    w.usage()
        .set_plan(
            &tenant,
            Plan {
                monthly_outbound: Some(2),
                monthly_inbound: Some(2),
            },
        )
        .await
        .unwrap();

    // Inbound: two WhatsApp messages and one on Instagram; the third is over the inbound
    // quota and is relayed all the same. A redelivery counts nothing.
    w.customer_writes(&whatsapp_text("wamid.usage-in-1")).await;
    w.customer_writes(&whatsapp_text("wamid.usage-in-1")).await;
    w.customer_writes(&whatsapp_text("wamid.usage-in-2")).await;
    w.customer_writes(&sample("instagram-text.json")).await;
    assert_eq!(w.relayed(), 3, "inbound over quota is never dropped");
    let chat = w.bitrix.messages_received()[0].external_chat_id.clone();
    let r = w.report(&tenant).await;
    assert_eq!((r.inbound.whatsapp, r.inbound.instagram), (2, 1));
    assert_eq!(r.inbound.total, 3);
    assert_eq!(r.in_over_quota, 1);

    // Outbound through the public API: two accepted, the third refused with 429.
    let key = w.key_for(&tenant).await;
    for i in 1..=2 {
        let (s, _, v) = w
            .send(&key, "Your order has shipped", &format!("o-{i}"))
            .await;
        assert_eq!(s, StatusCode::ACCEPTED, "{v}");
        assert_eq!(v["duplicate"], false);
    }
    let now = wappline::clock::now_secs();
    let month = UsageMonth::current(now);
    let (s, retry_after, v) = w.send(&key, "One more", "o-3").await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{v}");
    let e = &v["error"];
    assert_eq!(e["code"], "quota_exceeded");
    assert_eq!(e["quota"], "monthly_outbound_messages");
    assert_eq!(e["limit"], 2);
    assert_eq!(e["used"], 2);
    assert_eq!(e["resets_at_unix"], month.resets_at());
    assert_eq!(
        e["resets_at"],
        format!("{}-01T00:00:00Z", month.next()),
        "{v}"
    );
    assert!(e["message"]
        .as_str()
        .unwrap()
        .contains("monthly_outbound_messages"));
    let retry_after = retry_after.expect("Retry-After");
    let until_reset = (month.resets_at() - now) as u64;
    assert!(
        retry_after <= until_reset && retry_after + 60 >= until_reset,
        "{retry_after} vs {until_reset}"
    );
    // A retry of a request accepted before is still its duplicate, not a refusal.
    let (s, _, v) = w.send(&key, "Your order has shipped", "o-1").await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    assert_eq!(v["duplicate"], true);

    // An operator reply over the quota: handled (no Bitrix24 retry), not sent, and the
    // operator is told in the chat.
    let (s, body) = w
        .event(w.reply(&chat, 6001, "Sure, tomorrow", APP_TOKEN))
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    w.drain().await;
    assert_eq!(
        w.api_messages().await,
        2,
        "nothing stored for the refused send"
    );
    let sent = w.graph.sent();
    assert_eq!(sent.len(), 2, "only the two accepted sends went out");
    assert!(sent
        .iter()
        .all(|s| s.body["text"]["body"] == "Your order has shipped"));
    let notes = w.notes();
    assert!(
        notes
            .iter()
            .any(|n| n.contains("monthly_outbound_messages") && n.contains("resets at")),
        "{notes:?}"
    );
    // The same event again: still one note, nothing sent.
    let (s, _) = w
        .event(w.reply(&chat, 6001, "Sure, tomorrow", APP_TOKEN))
        .await;
    assert_eq!(s, StatusCode::OK);
    w.drain().await;
    assert_eq!(w.notes().len(), notes.len());
    assert_eq!(w.graph.sent().len(), 2);

    let r = w.report(&tenant).await;
    assert_eq!(r.month, month);
    assert_eq!((r.outbound.whatsapp, r.outbound.instagram), (2, 0));
    assert_eq!(r.outbound.total, 2);
    assert_eq!(r.outbound_remaining, Some(0));
    assert_eq!((r.inbound.whatsapp, r.inbound.instagram), (2, 1));
    assert_eq!(r.in_over_quota, 1);
    assert_eq!(r.plan.monthly_outbound, Some(2));
    assert!(!r.default_plan);
    assert_eq!(r.resets_at_unix, month.resets_at());
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["month"], month.to_string());
    assert_eq!(json["outbound"]["whatsapp"], 2);

    // A higher limit lets sends through again.
    w.usage()
        .set_plan(
            &tenant,
            Plan {
                monthly_outbound: Some(3),
                monthly_inbound: None,
            },
        )
        .await
        .unwrap();
    let (s, _, v) = w.send(&key, "Now it fits", "o-4").await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    assert_eq!(w.report(&tenant).await.outbound.total, 3);
    w.h.server.shutdown().await;
}

#[tokio::test]
async fn a_suspended_tenant_cannot_send() {
    let w = start().await;
    let tenant = w.installed_tenant_id().await;
    let key = w.key_for(&tenant).await;
    // Suspension itself is the tenant module's; here only its stored status matters.
    w.h.server
        .platform()
        .store
        .update(
            Table::Data,
            &Key::new(tenant.partition(), "PROFILE"),
            Update::new().set("status", "suspended"),
            None,
        )
        .await
        .unwrap();
    let (s, _, v) = w.send(&key, "Hello", "s-1").await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(v["error"]["code"], "tenant_suspended");
    assert_eq!(w.api_messages().await, 0);
    assert_eq!(w.report(&tenant).await.outbound.total, 0);
    w.h.server.shutdown().await;
}
