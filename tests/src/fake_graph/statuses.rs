//! Meta's status webhooks of WhatsApp sends, when a test asks for them
//! ([`FakeGraph::send_statuses_to`]): for every send the fake accepts it POSTs a `sent`
//! status, then a `delivered` one, to the app's webhook, each signed with the app secret
//! (`X-Hub-Signature-256`) and repeated until answered 2xx, as Meta retries a webhook that
//! failed. Both carry the send's `biz_opaque_callback_data`, which the Cloud API does not
//! process and returns in the `statuses` objects of every status of that message (Cloud API
//! reference, "Messages"; webhooks reference, "Status messages": `id`, `status` of `sent`,
//! `delivered`, `read` or `failed`, `timestamp`, `recipient_id`, `biz_opaque_callback_data`).
//! Meta orders nothing; the fake sends `delivered` once `sent` was answered, as a phone that
//! is online reports it a moment after the send.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::{now_secs, FakeGraph, State};

#[derive(Clone)]
pub(super) struct StatusWebhook {
    url: String,
    app_secret: String,
    /// Status webhooks not answered 2xx yet (nor given up on).
    in_flight: Arc<AtomicUsize>,
}

impl FakeGraph {
    /// From now on, each accepted WhatsApp send is followed by its `sent` status and then its
    /// `delivered` status, POSTed to `url` (the app's webhook) signed with `app_secret`.
    pub fn send_statuses_to(&self, url: &str, app_secret: &str) {
        self.state().status_webhook = Some(StatusWebhook {
            url: url.to_owned(),
            app_secret: app_secret.to_owned(),
            in_flight: Arc::default(),
        });
    }

    /// Status webhooks the fake still has to get answered (a test waits for them to reach
    /// the app before it checks what they did).
    pub fn statuses_in_flight(&self) -> usize {
        self.state()
            .status_webhook
            .as_ref()
            .map_or(0, |h| h.in_flight.load(Ordering::SeqCst))
    }
}

/// The send of `wamid` to `recipient` from `number` was accepted: its `sent` and then its
/// `delivered` status go out, when statuses were asked for.
pub(super) fn sent(s: &State, number: &str, recipient: &str, wamid: &str, send: &Value) {
    let Some(hook) = s.status_webhook.clone() else {
        return;
    };
    let waba = s.ownership.waba_of(number).unwrap_or("0").to_owned();
    let body = |status: &str| {
        let mut object = json!({
            "id": wamid,
            "status": status,
            "timestamp": now_secs().to_string(),
            "recipient_id": recipient.trim_start_matches('+'),
        });
        if let Some(tag) = send.get("biz_opaque_callback_data") {
            object["biz_opaque_callback_data"] = tag.clone();
        }
        json!({
            "object": "whatsapp_business_account",
            "entry": [{"id": waba, "changes": [{"field": "messages", "value": {
                "messaging_product": "whatsapp",
                "metadata": {"display_phone_number": "15550783881", "phone_number_id": number},
                "statuses": [object]
            }}]}]
        })
        .to_string()
    };
    let (sent, delivered) = (body("sent"), body("delivered"));
    hook.in_flight.fetch_add(2, Ordering::SeqCst);
    tokio::spawn(async move {
        for body in [sent, delivered] {
            deliver(&hook, body).await;
            hook.in_flight.fetch_sub(1, Ordering::SeqCst);
        }
    });
}

/// POSTs until answered 2xx (for at most two minutes).
async fn deliver(hook: &StatusWebhook, body: String) {
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
