//! Meta's status webhooks of WhatsApp sends, when a test asks for them
//! ([`FakeGraph::send_statuses_to`]): for every send the fake accepts it POSTs a `sent`
//! status to the app's webhook, signed with the app secret (`X-Hub-Signature-256`), and
//! repeats it until answered 2xx, as Meta retries a webhook that failed. The status carries
//! the send's `biz_opaque_callback_data`, which the Cloud API does not process and returns in
//! the `statuses` objects of that message's webhooks (Cloud API reference, "Messages";
//! webhooks reference, "statuses": `id`, `status`, `timestamp`, `recipient_id`,
//! `biz_opaque_callback_data`).

use std::time::Duration;

use serde_json::{json, Value};

use super::{now_secs, FakeGraph, State};

#[derive(Clone)]
pub(super) struct StatusWebhook {
    url: String,
    app_secret: String,
}

impl FakeGraph {
    /// From now on, each accepted WhatsApp send is followed by its `sent` status, POSTed to
    /// `url` (the app's webhook) signed with `app_secret`.
    pub fn send_statuses_to(&self, url: &str, app_secret: &str) {
        self.state().status_webhook = Some(StatusWebhook {
            url: url.to_owned(),
            app_secret: app_secret.to_owned(),
        });
    }
}

/// The send of `wamid` to `recipient` from `number` was accepted: its `sent` status goes out,
/// when statuses were asked for.
pub(super) fn sent(s: &State, number: &str, recipient: &str, wamid: &str, send: &Value) {
    let Some(hook) = s.status_webhook.clone() else {
        return;
    };
    let mut status = json!({
        "id": wamid,
        "status": "sent",
        "timestamp": now_secs().to_string(),
        "recipient_id": recipient.trim_start_matches('+'),
    });
    if let Some(tag) = send.get("biz_opaque_callback_data") {
        status["biz_opaque_callback_data"] = tag.clone();
    }
    let waba = s.ownership.waba_of(number).unwrap_or("0").to_owned();
    let body = json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": waba, "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": number},
            "statuses": [status]
        }}]}]
    })
    .to_string();
    tokio::spawn(deliver(hook, body));
}

/// POSTs until answered 2xx (for at most two minutes).
async fn deliver(hook: StatusWebhook, body: String) {
    let signature = wappline::meta::AppSecret::new(&hook.app_secret)
        .expect("app secret")
        .sign(body.as_bytes());
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(120) {
        let answer = http
            .post(&hook.url)
            .header("content-type", "application/json")
            .header("X-Hub-Signature-256", &signature)
            .body(body.clone())
            .send()
            .await;
        if answer.is_ok_and(|a| a.status().is_success()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
