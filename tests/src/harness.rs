//! The local server on a random port with a temp data dir, and what the end-to-end tests do
//! with it: admin calls, signed Meta webhooks, waiting for queues to drain, reading the store.

use std::path::PathBuf;
use std::time::Duration;

use local_server::{LocalConfig, LocalServer};
use reqwest::StatusCode;
use serde_json::{json, Value};
use wappline::meta::AppSecret;

use crate::fake_graph::{FakeGraph, FAKE_APP_ID, FAKE_APP_SECRET};
use wappline::queue::platform;
use wappline::store::{AttrValue, Item, Table};

pub const ADMIN: &str = "test-admin-token-0123456789";
pub const APP_SECRET: &str = FAKE_APP_SECRET;
pub const VERIFY: &str = "verify-me-please";
/// The WhatsApp number and Instagram account the samples in events/meta-webhook/ address.
pub const WA_NUMBER: &str = "106540352242922";
pub const IG_ACCOUNT: &str = "17841405822304914";
/// The WhatsApp Business Account of [`WA_NUMBER`].
pub const WABA: &str = "102290129340398";
/// The access tokens [`Harness::tenant_with_channels`] connects with (known to the fake).
pub const WA_TOKEN: &str = "EAAwhatsappTOKEN";
pub const IG_TOKEN: &str = "IGAAinstagramTOKEN";

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

/// The `signed_request` Meta posts to the Data Deletion Callback for `user`, signed with the
/// app secret the local server knows.
pub fn signed_deletion_request(user: &str) -> String {
    wappline::meta_deletion::signed_request::sign(
        &AppSecret::new(APP_SECRET).unwrap(),
        &format!(r#"{{"algorithm":"HMAC-SHA256","issued_at":1795460400,"user_id":"{user}"}}"#),
    )
}

pub struct Harness {
    pub server: LocalServer,
    /// The loopback Graph API (and Instagram API) the server talks to; connects prove
    /// ownership against it, so register tokens here before connecting.
    pub graph: FakeGraph,
    pub base: String,
    pub http: reqwest::Client,
    /// The data directory, removed with the harness unless the test gave its own.
    dir: DataDir,
}

enum DataDir {
    Temporary(tempfile::TempDir),
    Given(PathBuf),
}

impl DataDir {
    fn path(&self) -> &std::path::Path {
        match self {
            DataDir::Temporary(dir) => dir.path(),
            DataDir::Given(path) => path,
        }
    }
}

impl Harness {
    /// A server with Meta configured (its Graph API is [`Harness::graph`]); `configure` may
    /// change anything else.
    pub async fn start(configure: impl FnOnce(&mut LocalConfig)) -> Self {
        let dir = DataDir::Temporary(tempfile::tempdir().expect("temp dir"));
        Self::start_on(dir, configure).await
    }

    /// [`Harness::start`] on the data directory `dir`, which the harness leaves in place (a
    /// process killed by a test, and the one that starts again after it).
    pub async fn start_in(dir: &std::path::Path, configure: impl FnOnce(&mut LocalConfig)) -> Self {
        Self::start_on(DataDir::Given(dir.to_owned()), configure).await
    }

    async fn start_on(dir: DataDir, configure: impl FnOnce(&mut LocalConfig)) -> Self {
        let graph = FakeGraph::start().await;
        Self::serve(dir, graph, client(), configure).await
    }

    /// Stops the server and starts a new one on the same data dir (what a crash leaves is
    /// still there), with the same fake Graph API; `configure` as for [`Harness::start`].
    pub async fn restart(self, configure: impl FnOnce(&mut LocalConfig)) -> Self {
        let Harness {
            server,
            graph,
            http,
            dir,
            ..
        } = self;
        server.shutdown().await;
        Self::serve(dir, graph, http, configure).await
    }

    /// A server on `dir` with Meta configured against `graph`.
    async fn serve(
        dir: DataDir,
        graph: FakeGraph,
        http: reqwest::Client,
        configure: impl FnOnce(&mut LocalConfig),
    ) -> Self {
        let mut config = LocalConfig::for_tests(dir.path(), ADMIN);
        config.meta_app_secret = Some(APP_SECRET.into());
        config.meta_app_id = Some(FAKE_APP_ID.into());
        config.meta_verify_token = Some(VERIFY.into());
        config.graph_api_base_url = graph.base_url();
        configure(&mut config);
        let server = LocalServer::start(config).await.expect("local server");
        Harness {
            base: format!("http://{}", server.addr()),
            server,
            graph,
            http,
            dir,
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

    /// GETs `path` from the admin API (the platform's token); the JSON answer, which must be
    /// a success.
    pub async fn admin_get(&self, path: &str) -> Value {
        self.admin("GET", path, Value::Null).await
    }

    /// A new tenant named `name`, created through the admin API; its id.
    pub async fn create_tenant(&self, name: &str) -> String {
        let t = self
            .admin("POST", "/admin/tenants", json!({ "name": name }))
            .await;
        t["id"].as_str().unwrap().to_owned()
    }

    /// Asks the admin API to erase a contact (`channel`: `whatsapp` or `instagram`, on the
    /// tenant's `account_id`) and waits until the erasure completed; the request's status
    /// then (`request_id`, `completed_at`, `conversations_erased`).
    pub async fn erase_contact(
        &self,
        tenant: &str,
        channel: &str,
        account_id: &str,
        customer: &str,
    ) -> Value {
        let resp = self
            .http
            .post(format!(
                "{}/admin/tenants/{tenant}/erasure/contacts",
                self.base
            ))
            .bearer_auth(ADMIN)
            .json(&json!({"channel": channel, "account_id": account_id, "customer": customer}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::ACCEPTED);
        let asked: Value = resp.json().await.unwrap();
        let id = asked["request_id"].as_str().unwrap();
        let path = format!("/admin/tenants/{tenant}/erasure/contacts/{id}");
        let mut status = Value::Null;
        for _ in 0..500 {
            status = self.admin_get(&path).await;
            if status["state"] == "completed" {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the erasure did not complete: {status}");
    }

    /// A tenant owning the sample WhatsApp number and Instagram account.
    pub async fn tenant_with_channels(&self) -> String {
        let id = self.create_tenant("Acme").await;
        self.graph.add_whatsapp_business(WA_TOKEN, WABA, WA_NUMBER);
        self.graph.add_instagram_token(IG_TOKEN, IG_ACCOUNT, None);
        self.admin(
            "POST",
            &format!("/admin/tenants/{id}/channels/whatsapp"),
            json!({"phone_number_id": WA_NUMBER, "waba_id": WABA, "access_token": WA_TOKEN}),
        )
        .await;
        self.admin(
            "POST",
            &format!("/admin/tenants/{id}/channels/instagram"),
            json!({"account_id": IG_ACCOUNT, "access_token": IG_TOKEN}),
        )
        .await;
        id
    }

    /// Lets `token` prove `phone_number_id` on `waba` at the fake Graph API, then connects
    /// the number to `tenant` through the admin API (which must succeed); the channel.
    pub async fn connect_whatsapp(
        &self,
        tenant: &str,
        phone_number_id: &str,
        waba: &str,
        token: &str,
    ) -> Value {
        self.graph
            .add_whatsapp_business(token, waba, phone_number_id);
        self.admin(
            "POST",
            &format!("/admin/tenants/{tenant}/channels/whatsapp"),
            json!({"phone_number_id": phone_number_id, "waba_id": waba, "access_token": token}),
        )
        .await
    }

    /// Lets `token` prove the Instagram account at the fake, then connects it to `tenant`.
    pub async fn connect_instagram(&self, tenant: &str, account_id: &str, token: &str) -> Value {
        self.graph.add_instagram_token(token, account_id, None);
        self.admin(
            "POST",
            &format!("/admin/tenants/{tenant}/channels/instagram"),
            json!({"account_id": account_id, "access_token": token}),
        )
        .await
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

    /// Meta's signed Data Deletion Callback for `user`, as the data-deletion function receives
    /// it (answered 200), once the erasure worker has taken it off its queue.
    pub async fn deletion_callback(&self, user: &str) {
        let resp = self
            .http
            .post(format!("{}/data-deletion", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("signed_request={}", signed_deletion_request(user)))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        self.drain(platform::ERASURE, Duration::from_secs(20)).await;
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

    /// A tenant owning the sample channels ([`Harness::tenant_with_channels`]), with the fake's
    /// own portal connected on Open Line `line`.
    pub async fn tenant_on_portal(
        &self,
        fake: &crate::fake_bitrix::FakeBitrix,
        line: u32,
    ) -> String {
        let id = self.tenant_with_channels().await;
        self.connect_portal(
            &id,
            fake,
            crate::fake_bitrix::FAKE_DOMAIN,
            crate::fake_bitrix::FAKE_MEMBER_ID,
            line,
        )
        .await;
        id
    }

    /// Writes the fake's portal `domain` (its current tokens) onto `tenant` straight through
    /// the tenant's scope, without the admin API and so without the ownership proof: for
    /// servers that run without Bitrix24 settings (their sync jobs are left to the test),
    /// which the admin API's proof needs.
    pub async fn store_portal(
        &self,
        tenant: &str,
        fake: &crate::fake_bitrix::FakeBitrix,
        domain: &str,
        member_id: &str,
        line: u32,
    ) {
        let platform = self.server.platform();
        let scope = platform
            .tenants
            .scope(&wappline::ids::TenantId::parse(tenant).unwrap())
            .await
            .unwrap()
            .expect("the tenant");
        scope
            .connect(crate::embedded_tenant::portal_connection(
                fake, domain, member_id, line,
            ))
            .await
            .unwrap();
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

/// Revocations (decision 0036) against the harness's loopback Graph API (Graph and Instagram
/// hosts alike), on the server's own store: for flows a test builds itself, such as Meta's
/// data-deletion erasure.
pub fn revocations_at(h: &Harness) -> wappline::revocation::Revocations {
    use wappline::graph::{GraphClient, GraphConfig};
    let graph = GraphClient::new(
        GraphConfig::default()
            .with_base_url(&h.graph.base_url())
            .expect("the fake's URL"),
    )
    .expect("a Graph client");
    wappline::revocation::Revocations::new(
        h.server.platform().tenants.clone(),
        graph.clone(),
        graph,
    )
}

/// The tests' HTTP client. It drops a pooled connection after 5 s idle, before the server
/// closes it (an idle keep-alive connection gets the server's 10 s header timeout): a request
/// sent on a connection the server is closing at that moment fails with "connection closed
/// before message completed", which is a client's race, not the server's fault.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_idle_timeout(std::time::Duration::from_secs(5))
        .build()
        .expect("the tests' HTTP client")
}
