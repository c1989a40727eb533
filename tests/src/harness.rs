//! The local server on a random port with a temp data dir, and what the end-to-end tests do
//! with it: admin calls, signed Meta webhooks, waiting for queues to drain, reading the store.

use std::path::PathBuf;
use std::time::Duration;

use local_server::{LocalConfig, LocalServer};
use reqwest::StatusCode;
use serde_json::{json, Value};
use wappline::meta::AppSecret;
use wappline::queue::platform;
use wappline::store::{AttrValue, Item, Table};

pub const ADMIN: &str = "test-admin-token-0123456789";
pub const APP_SECRET: &str = "6f1c0e5ad2b94c7e8a3b1d0f9e2c4a7b";
pub const VERIFY: &str = "verify-me-please";
/// The WhatsApp number and Instagram account the samples in events/meta-webhook/ address.
pub const WA_NUMBER: &str = "106540352242922";
pub const IG_ACCOUNT: &str = "17841405822304914";

pub fn samples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../events/meta-webhook")
}

/// Every sample payload, by file name, sorted.
pub fn samples() -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(samples_dir())
        .expect("events/meta-webhook")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

pub fn sample(name: &str) -> Vec<u8> {
    std::fs::read(samples_dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

pub struct Harness {
    pub server: LocalServer,
    pub base: String,
    pub http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Harness {
    /// A server with Meta configured; `configure` may change anything else.
    pub async fn start(configure: impl FnOnce(&mut LocalConfig)) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = LocalConfig::for_tests(dir.path(), ADMIN);
        config.meta_app_secret = Some(APP_SECRET.into());
        config.meta_verify_token = Some(VERIFY.into());
        configure(&mut config);
        let server = LocalServer::start(config).await.expect("local server");
        Harness {
            base: format!("http://{}", server.addr()),
            server,
            http: reqwest::Client::new(),
            _dir: dir,
        }
    }

    /// An admin API call that must succeed; its JSON answer.
    pub async fn admin(&self, method: &str, path: &str, body: Value) -> Value {
        let resp = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.base))
            .bearer_auth(ADMIN)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        assert!(status.is_success(), "{method} {path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// A tenant owning the sample WhatsApp number and Instagram account.
    pub async fn tenant_with_channels(&self) -> String {
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

    pub async fn post(&self, body: &[u8], signature: Option<String>) -> (StatusCode, String) {
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

    pub async fn post_signed(&self, body: &[u8]) -> (StatusCode, String) {
        let sig = AppSecret::new(APP_SECRET).unwrap().sign(body);
        self.post(body, Some(sig)).await
    }

    pub async fn depth(&self, queue: &str) -> usize {
        self.server
            .queue()
            .depth(&platform::name(queue))
            .await
            .unwrap()
    }

    /// Waits until `queue` holds nothing (every message processed or dead-lettered).
    pub async fn drain(&self, queue: &str, within: Duration) {
        let started = std::time::Instant::now();
        while started.elapsed() < within {
            if self.depth(queue).await == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "{queue} did not drain within {within:?}: {} left",
            self.depth(queue).await
        );
    }

    /// Every item of a table, raw.
    pub async fn all_items(&self, table: Table) -> Vec<Item> {
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

impl Harness {
    /// Connects the fake's portal `domain` (its current tokens) to `tenant` on Open Line
    /// `line`, through the admin API.
    pub async fn connect_portal(
        &self,
        tenant: &str,
        fake: &crate::fake_bitrix::FakeBitrix,
        domain: &str,
        member_id: &str,
        line: u32,
    ) {
        let tokens = fake.valid_tokens_for(domain);
        self.admin(
            "POST",
            &format!("/admin/tenants/{tenant}/channels/bitrix24"),
            json!({
                "member_id": member_id,
                "domain": domain,
                "access_token": tokens.access_token,
                "refresh_token": tokens.refresh_token,
                "line_id": line,
            }),
        )
        .await;
    }

    /// The provider's id of a stored message item, decrypted (ids are stored encrypted).
    pub async fn provider_id_of(&self, item: &Item) -> String {
        let pk = item.get_s("pk").expect("pk");
        let (tenant, conversation) = pk
            .strip_prefix("T#")
            .and_then(|r| r.split_once("#CONV#"))
            .expect("a message partition");
        let platform = self.server.platform();
        let conversations = wappline::conversation::Conversations::new(
            wappline::ids::TenantId::parse(tenant).unwrap(),
            platform.store.clone(),
            platform.envelope.clone(),
        );
        let at = wappline::conversation::MessageRef {
            conversation: wappline::conversation::ConversationId::parse(conversation).unwrap(),
            sk: item.get_s("sk").expect("sk").to_owned(),
        };
        conversations
            .message(&at)
            .await
            .unwrap()
            .expect("the message")
            .provider_message_id
    }
}

/// True when the value holds `needle` as bytes anywhere (strings, binaries, nested).
pub fn contains_bytes(v: &AttrValue, needle: &[u8]) -> bool {
    match v {
        AttrValue::S(s) => s.as_bytes().windows(needle.len()).any(|w| w == needle),
        AttrValue::B(b) => b.windows(needle.len()).any(|w| w == needle),
        AttrValue::L(l) => l.iter().any(|v| contains_bytes(v, needle)),
        AttrValue::M(m) => m.values().any(|v| contains_bytes(v, needle)),
        _ => false,
    }
}
