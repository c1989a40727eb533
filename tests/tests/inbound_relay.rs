//! Inbound relay end to end on the local server: Meta's subscription handshake, signature
//! checks, and every sample payload in events/meta-webhook/ posted signed (twice, as Meta
//! redelivers), then checked in the store: each message stored once, encrypted, only for the
//! tenant that owns the account, and one CRM sync job per effect.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use local_server::{LocalConfig, LocalServer};
use reqwest::StatusCode;
use serde_json::{json, Value};
use wappline::meta::{split_webhook, AppSecret, Content, EventKind};
use wappline::queue::platform;
use wappline::store::{AttrValue, Item, Table};

const ADMIN: &str = "test-admin-token-0123456789";
const APP_SECRET: &str = "6f1c0e5ad2b94c7e8a3b1d0f9e2c4a7b";
const VERIFY: &str = "verify-me-please";
const WA_NUMBER: &str = "106540352242922";
const IG_ACCOUNT: &str = "17841405822304914";

fn samples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../events/meta-webhook")
}

fn samples() -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(samples_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    assert!(
        out.len() >= 30,
        "expected the sample payloads, found {}",
        out.len()
    );
    out
}

struct Harness {
    server: LocalServer,
    base: String,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Harness {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = LocalConfig::for_tests(dir.path(), ADMIN);
        config.meta_app_secret = Some(APP_SECRET.into());
        config.meta_verify_token = Some(VERIFY.into());
        let server = LocalServer::start(config).await.unwrap();
        Harness {
            base: format!("http://{}", server.addr()),
            server,
            http: reqwest::Client::new(),
            _dir: dir,
        }
    }

    async fn admin(&self, method: &str, path: &str, body: Value) -> Value {
        let resp = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.base))
            .bearer_auth(ADMIN)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "{path}: {}", resp.status());
        resp.json().await.unwrap()
    }

    /// A tenant owning the sample WhatsApp number and Instagram account.
    async fn tenant_with_channels(&self) -> String {
        let t = self
            .admin("POST", "/admin/tenants", json!({"name": "Acme"}))
            .await;
        let id = t["id"].as_str().unwrap().to_owned();
        self.admin(
            "POST",
            &format!("/admin/tenants/{id}/channels/whatsapp"),
            json!({"phone_number_id": WA_NUMBER, "waba_id": "102290129340398", "access_token": "EAAwhatsappTOKEN"}),
        )
        .await;
        self.admin(
            "POST",
            &format!("/admin/tenants/{id}/channels/instagram"),
            json!({"account_id": IG_ACCOUNT, "access_token": "IGAAinstagramTOKEN"}),
        )
        .await;
        id
    }

    async fn post(&self, body: &[u8], signature: Option<String>) -> (StatusCode, String) {
        let mut req = self
            .http
            .post(format!("{}/webhooks/meta", self.base))
            .header("content-type", "application/json")
            .body(body.to_vec());
        if let Some(s) = signature {
            req = req.header("X-Hub-Signature-256", s);
        }
        let resp = req.send().await.unwrap();
        (resp.status(), resp.text().await.unwrap())
    }

    async fn post_signed(&self, body: &[u8]) -> (StatusCode, String) {
        let sig = AppSecret::new(APP_SECRET).unwrap().sign(body);
        self.post(body, Some(sig)).await
    }

    async fn depth(&self, queue: &str) -> usize {
        self.server
            .queue()
            .depth(&platform::name(queue))
            .await
            .unwrap()
    }

    /// Waits until the inbound consumer has worked through everything.
    async fn drain_inbound(&self) {
        for _ in 0..400 {
            if self.depth(platform::INBOUND).await == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("the inbound queue did not drain");
    }

    async fn all_items(&self, table: Table) -> Vec<Item> {
        let store = &self.server.platform().store;
        let mut out = Vec::new();
        let mut next = None;
        loop {
            let page = store.scan(table, next.as_ref(), 500).await.unwrap();
            out.extend(page.items);
            match page.next {
                Some(k) => next = Some(k),
                None => return out,
            }
        }
    }
}

fn contains_text(v: &AttrValue, needle: &[u8]) -> bool {
    match v {
        AttrValue::S(s) => s.as_bytes().windows(needle.len()).any(|w| w == needle),
        AttrValue::B(b) => b.windows(needle.len()).any(|w| w == needle),
        AttrValue::L(l) => l.iter().any(|v| contains_text(v, needle)),
        AttrValue::M(m) => m.values().any(|v| contains_text(v, needle)),
        _ => false,
    }
}

#[tokio::test]
async fn subscription_handshake() {
    let h = Harness::start().await;
    let get = |q: &str| {
        let url = format!("{}/webhooks/meta?{q}", h.base);
        let http = h.http.clone();
        async move {
            let r = http.get(url).send().await.unwrap();
            (r.status(), r.text().await.unwrap())
        }
    };
    let (s, body) = get(&format!(
        "hub.mode=subscribe&hub.verify_token={VERIFY}&hub.challenge=1158201444"
    ))
    .await;
    assert_eq!((s, body.as_str()), (StatusCode::OK, "1158201444"));
    for bad in [
        "hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1".to_owned(),
        format!("hub.mode=unsubscribe&hub.verify_token={VERIFY}&hub.challenge=1"),
        format!("hub.verify_token={VERIFY}&hub.challenge=1"),
        format!("hub.mode=subscribe&hub.verify_token={VERIFY}"),
    ] {
        let (s, body) = get(&bad).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{bad}: {body}");
    }
    h.server.shutdown().await;
}

#[tokio::test]
async fn unsigned_forged_or_malformed_deliveries_store_nothing() {
    let h = Harness::start().await;
    h.tenant_with_channels().await;
    let body = std::fs::read(samples_dir().join("whatsapp-text.json")).unwrap();
    let good = AppSecret::new(APP_SECRET).unwrap().sign(&body);
    let other = AppSecret::new("another-apps-secret").unwrap().sign(&body);
    let mut altered = body.clone();
    let last = altered.len() - 2;
    altered[last] = b' ';
    for (what, payload, sig) in [
        ("no signature", body.clone(), None),
        ("another secret", body.clone(), Some(other)),
        (
            "sha1 style",
            body.clone(),
            Some(good.replace("sha256=", "sha1=")),
        ),
        ("not hex", body.clone(), Some("sha256=zz".into())),
        ("body changed after signing", altered, Some(good.clone())),
    ] {
        let (s, text) = h.post(&payload, sig).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{what}: {text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["error"]["code"], "invalid_signature", "{what}");
    }
    // Signed junk: 400 with a JSON error.
    for junk in [
        &b"{not json"[..],
        b"[]",
        b"{\"object\":\"whatsapp_business_account\"}",
    ] {
        let (s, text) = h.post_signed(junk).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{text}");
    }
    assert_eq!(h.depth(platform::INBOUND).await, 0);
    assert!(h
        .all_items(Table::Data)
        .await
        .iter()
        .all(|i| !i.get_s("sk").unwrap_or_default().starts_with("MSG#")));
    h.server.shutdown().await;
}

#[tokio::test]
async fn accounts_no_tenant_owns_are_acknowledged_and_dropped() {
    let h = Harness::start().await;
    // No tenant connected at all.
    let body = std::fs::read(samples_dir().join("whatsapp-text.json")).unwrap();
    let (s, text) = h.post_signed(&body).await;
    assert_eq!(s, StatusCode::OK, "{text}");
    assert_eq!(serde_json::from_str::<Value>(&text).unwrap()["received"], 0);
    assert_eq!(h.depth(platform::INBOUND).await, 0);
    h.server.shutdown().await;
}

/// What the samples should leave in the store, worked out from the parser's events.
struct Expected {
    /// Provider ids of messages that must be stored (customer messages, echoes, postbacks).
    stored: BTreeSet<String>,
    /// Texts that must not appear in plaintext anywhere.
    texts: BTreeSet<String>,
}

fn expected(samples: &[(String, Vec<u8>)]) -> Expected {
    let mut stored = BTreeSet::new();
    let mut texts = BTreeSet::new();
    for (_, body) in samples {
        let batch = split_webhook(body).unwrap();
        for event in batch.events {
            if event.account.id() != WA_NUMBER && event.account.id() != IG_ACCOUNT {
                continue;
            }
            match &event.kind {
                EventKind::CustomerMessage {
                    message_id,
                    content,
                    ..
                }
                | EventKind::BusinessEcho {
                    message_id,
                    content,
                    ..
                } => {
                    stored.insert(message_id.as_str().to_owned());
                    if let Content::Text { body } = content {
                        if body.len() >= 8 {
                            texts.insert(body.clone());
                        }
                    }
                }
                EventKind::Postback { message_id, .. } => {
                    stored.insert(
                        message_id
                            .as_ref()
                            .map(|m| m.as_str().to_owned())
                            .unwrap_or_else(|| event.provider_event_id.clone()),
                    );
                }
                _ => {}
            }
        }
    }
    Expected { stored, texts }
}

#[tokio::test]
async fn every_sample_is_stored_once_and_only_encrypted() {
    let h = Harness::start().await;
    let tenant = h.tenant_with_channels().await;
    let samples = samples();
    let want = expected(&samples);
    assert!(want.stored.len() >= 25, "{} messages", want.stored.len());

    // Every sample, then every sample again (Meta redelivers).
    let mut sync_depths = Vec::new();
    for round in 0..2 {
        for (name, body) in &samples {
            let (s, text) = h.post_signed(body).await;
            assert_eq!(s, StatusCode::OK, "round {round} {name}: {text}");
        }
        h.drain_inbound().await;
        sync_depths.push(h.depth(platform::SYNC).await);
    }
    assert_eq!(
        sync_depths[0], sync_depths[1],
        "redelivery made new sync jobs"
    );

    let data = h.all_items(Table::Data).await;
    let messages: Vec<&Item> = data
        .iter()
        .filter(|i| i.get_s("sk").is_some_and(|sk| sk.starts_with("MSG#")))
        .collect();
    let mut stored: HashMap<String, usize> = HashMap::new();
    for m in &messages {
        *stored
            .entry(m.get_s("provider_message_id").unwrap().to_owned())
            .or_default() += 1;
        assert!(
            m.get_s("pk").unwrap().starts_with(&format!("T#{tenant}#")),
            "message outside the tenant's partitions"
        );
        assert!(m.get_n("expires_at").is_some(), "message without TTL");
        assert!(m.get_b("content").is_some() || m.get_bool("deleted") == Some(true));
    }
    let got: BTreeSet<String> = stored.keys().cloned().collect();
    assert_eq!(
        got, want.stored,
        "stored messages differ from the samples' messages"
    );
    assert!(
        stored.values().all(|n| *n == 1),
        "a message was stored twice: {stored:?}"
    );

    // No message text in plaintext anywhere, in any table.
    for table in Table::ALL {
        for item in h.all_items(table).await {
            for text in &want.texts {
                assert!(
                    !item.0.values().any(|v| contains_text(v, text.as_bytes())),
                    "plaintext message text in {table}"
                );
            }
        }
    }

    // Messages of the account no tenant owns were dropped, not stored.
    let unowned = split_webhook(
        &std::fs::read(samples_dir().join("whatsapp-batch-multi-entry.json")).unwrap(),
    )
    .unwrap()
    .events
    .into_iter()
    .filter(|e| e.account.id() != WA_NUMBER)
    .count();
    assert!(
        unowned > 0,
        "the batch sample should include another account"
    );

    // One sync job per stored message at least, and none duplicated by the second round.
    let sync_jobs = h.depth(platform::SYNC).await;
    assert!(
        sync_jobs >= want.stored.len(),
        "{sync_jobs} sync jobs for {} messages",
        want.stored.len()
    );
    h.server.shutdown().await;
}
