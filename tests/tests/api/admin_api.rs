//! Admin API end to end on the local server (embedded adapters, random port): tenants,
//! channel connections, exclusivity of external ids, error bodies, no plaintext tokens on
//! disk.

use e2e_tests::fake_bitrix::FakeBitrix;
use e2e_tests::fake_graph::{FakeGraph, FAKE_APP_ID, FAKE_APP_SECRET};
use local_server::{LocalConfig, LocalServer};
use reqwest::StatusCode;
use serde_json::{json, Value};

const TOKEN: &str = "test-admin-token-0123456789";
const WA_TOKEN: &str = "EAAGwhatsappSECRETtoken123";

struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    fn new(server: &LocalServer) -> Self {
        Api {
            base: format!("http://{}", server.addr()),
            http: reqwest::Client::new(),
        }
    }
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.call_as(Some(TOKEN), method, path, body).await
    }
    async fn call_as(
        &self,
        token: Option<&str>,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method.parse().unwrap(), format!("{}{}", self.base, path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("non-JSON body: {text}"))
        };
        (status, value)
    }
    async fn create_tenant(&self, name: &str) -> String {
        let (s, v) = self
            .call("POST", "/admin/tenants", Some(json!({"name": name})))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        v["id"].as_str().unwrap().to_owned()
    }
}

const WABA: &str = "102290129340398";

/// The server of `dir`, its Meta and Bitrix24 at the fakes (connects prove ownership there).
fn config(dir: &std::path::Path, graph: &FakeGraph, bitrix: &FakeBitrix) -> LocalConfig {
    let mut c = LocalConfig::for_tests(dir, TOKEN);
    c.graph_api_base_url = graph.base_url();
    c.meta_app_id = Some(FAKE_APP_ID.into());
    c.meta_app_secret = Some(FAKE_APP_SECRET.into());
    bitrix.wire_into(&mut c);
    c
}

fn wa_body(number: &str, token: &str) -> Value {
    json!({
        "phone_number_id": number,
        "waba_id": WABA,
        "access_token": token,
        "display_phone_number": "+1 555 010 0001",
        "authorized_by": "10229012934"
    })
}

fn assert_error(v: &Value, code: &str) {
    assert_eq!(v["error"]["code"], code, "{v}");
    assert!(
        !v["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .is_empty(),
        "error without a message: {v}"
    );
}

/// Every file under the data dir, concatenated (to look for plaintext).
fn data_dir_bytes(dir: &std::path::Path) -> Vec<u8> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            out.extend(std::fs::read(&path).unwrap());
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn tenants_and_channels_survive_a_restart_and_ids_stay_exclusive() {
    let dir = tempfile::tempdir().unwrap();
    let graph = FakeGraph::start().await;
    let bitrix = FakeBitrix::start().await;
    // Every token below proves its account: exclusivity is what is tested here (the proof
    // itself is tested in ownership.rs).
    for token in [WA_TOKEN, "EAAGotherTOKEN", "x1", "x2"] {
        graph.add_whatsapp_business(token, WABA, "106540352242922");
    }
    graph.add_instagram_token("IGQVJsecret", "17841405822304914", None);
    let portal = bitrix.add_portal("bolt.bitrix24.com", "a223c6b3710f85df22e9377d6c4f7553");
    let server = LocalServer::start(config(dir.path(), &graph, &bitrix))
        .await
        .unwrap();
    let api = Api::new(&server);

    let a = api.create_tenant("Acme Bakery").await;
    let b = api.create_tenant("Bolt Bikes").await;
    assert_ne!(a, b);

    let (s, v) = api
        .call(
            "POST",
            &format!("/admin/tenants/{a}/channels/whatsapp"),
            Some(wa_body("106540352242922", WA_TOKEN)),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["id"], "106540352242922");
    assert_eq!(v["secrets_stored"], json!(["access_token"]));
    assert!(!v.to_string().contains(WA_TOKEN));

    // The same number for another tenant: 409 with a JSON error that says only that the
    // number cannot be connected, nothing written.
    let (s, v) = api
        .call(
            "POST",
            &format!("/admin/tenants/{b}/channels/whatsapp"),
            Some(wa_body("106540352242922", "EAAGotherTOKEN")),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_error(&v, "cannot_connect");
    assert_eq!(
        v["error"]["message"], "this WhatsApp number cannot be connected",
        "{v}"
    );
    let (_, settings_b) = api.call("GET", &format!("/admin/tenants/{b}"), None).await;
    assert_eq!(settings_b["channels"], json!([]));

    // Reconnecting for the owner replaces the token: 200.
    let (s, _) = api
        .call(
            "POST",
            &format!("/admin/tenants/{a}/channels/whatsapp"),
            Some(wa_body("106540352242922", WA_TOKEN)),
        )
        .await;
    assert_eq!(s, StatusCode::OK);

    // Instagram and Bitrix24 connect the same way.
    let (s, v) = api
        .call(
            "POST",
            &format!("/admin/tenants/{a}/channels/instagram"),
            Some(json!({"account_id": "17841405822304914", "access_token": "IGQVJsecret", "username": "acme.bakery"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, v) = api
        .call(
            "POST",
            &format!("/admin/tenants/{b}/channels/bitrix24"),
            Some(json!({
                "member_id": "a223c6b3710f85df22e9377d6c4f7553",
                "domain": "bolt.bitrix24.com",
                "access_token": portal.access_token,
                "refresh_token": portal.refresh_token,
                "line_id": 3
            })),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");

    let (s, settings) = api.call("GET", &format!("/admin/tenants/{a}"), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(settings["id"], a.as_str());
    assert_eq!(settings["name"], "Acme Bakery");
    assert_eq!(settings["retention_days"], 90);
    let channels = settings["channels"].as_array().unwrap();
    assert_eq!(channels.len(), 2);
    let text = settings.to_string();
    for secret in [WA_TOKEN, "IGQVJsecret"] {
        assert!(!text.contains(secret), "settings leak a token");
    }

    server.shutdown().await;
    // Tokens are on disk only encrypted (the portal's: the fresh pair the proof obtained).
    let raw = data_dir_bytes(dir.path());
    assert!(contains(&raw, "106540352242922"), "sanity: ids are stored");
    let fresh = bitrix.valid_tokens_for("bolt.bitrix24.com");
    assert_ne!(
        fresh.access_token, portal.access_token,
        "the proof refreshed"
    );
    for secret in [
        WA_TOKEN,
        "IGQVJsecret",
        &fresh.access_token,
        &fresh.refresh_token,
    ] {
        assert!(!contains(&raw, secret), "plaintext token {secret} on disk");
    }

    // Restart on the same data dir: everything is still there.
    let server = LocalServer::start(config(dir.path(), &graph, &bitrix))
        .await
        .unwrap();
    let api = Api::new(&server);
    let (_, list) = api.call("GET", "/admin/tenants", None).await;
    let ids: Vec<&str> = list["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&a.as_str()) && ids.contains(&b.as_str()));
    let (_, settings) = api.call("GET", &format!("/admin/tenants/{a}"), None).await;
    assert_eq!(settings["channels"].as_array().unwrap().len(), 2);
    let (s, _) = api
        .call(
            "POST",
            &format!("/admin/tenants/{b}/channels/whatsapp"),
            Some(wa_body("106540352242922", "x1")),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "the route survived the restart");

    // Disconnect frees the number; then B may take it.
    let (s, _) = api
        .call(
            "DELETE",
            &format!("/admin/tenants/{a}/channels/whatsapp/106540352242922"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, v) = api
        .call(
            "DELETE",
            &format!("/admin/tenants/{a}/channels/whatsapp/106540352242922"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_error(&v, "not_found");
    let (s, _) = api
        .call(
            "POST",
            &format!("/admin/tenants/{b}/channels/whatsapp"),
            Some(wa_body("106540352242922", "x2")),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    // B cannot disconnect what A holds, and vice versa.
    let (s, _) = api
        .call(
            "DELETE",
            &format!("/admin/tenants/{a}/channels/whatsapp/106540352242922"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    server.shutdown().await;
}

#[tokio::test]
async fn bad_requests_get_clear_errors_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = LocalServer::start(LocalConfig::for_tests(dir.path(), TOKEN))
        .await
        .unwrap();
    let api = Api::new(&server);

    // Authentication first, on every path.
    for token in [None, Some("wrong-token")] {
        for (m, p) in [
            ("GET", "/admin/tenants"),
            ("POST", "/admin/tenants"),
            ("GET", "/admin/nope"),
        ] {
            let (s, v) = api.call_as(token, m, p, Some(json!({"name": "x"}))).await;
            assert_eq!(s, StatusCode::UNAUTHORIZED, "{m} {p}");
            assert_error(&v, "unauthorized");
        }
    }
    let (_, list) = api.call("GET", "/admin/tenants", None).await;
    assert_eq!(
        list["tenants"],
        json!([]),
        "unauthenticated create wrote nothing"
    );

    let t = api.create_tenant("Acme").await;
    let cases: Vec<(&str, String, Option<Value>, StatusCode, &str)> = vec![
        (
            "POST",
            "/admin/tenants".into(),
            Some(json!({})),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "POST",
            "/admin/tenants".into(),
            Some(json!({"name": ""})),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "POST",
            "/admin/tenants".into(),
            Some(json!({"name": "x", "retention_days": 0})),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "POST",
            "/admin/tenants".into(),
            Some(json!({"name": "x", "tenant_id": "tn_0123456789abcdef01234567"})),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "GET",
            "/admin/tenants/tn_0123456789abcdef01234567".into(),
            None,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "GET",
            "/admin/tenants/not-a-tenant".into(),
            None,
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "POST",
            format!("/admin/tenants/{t}/channels/whatsapp"),
            Some(
                json!({"phone_number_id": "12ab", "waba_id": "102290129340398", "access_token": "t"}),
            ),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "POST",
            format!("/admin/tenants/{t}/channels/whatsapp"),
            Some(json!({"phone_number_id": "106540352242922", "waba_id": "102290129340398"})),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "POST",
            format!("/admin/tenants/{t}/channels/whatsapp"),
            Some(
                json!({"phone_number_id": "106540352242922", "waba_id": "102290129340398", "access_token": "has space"}),
            ),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "POST",
            format!("/admin/tenants/{t}/channels/bitrix24"),
            Some(
                json!({"member_id": "a223c6b3710f85df", "domain": "https://x.bitrix24.com", "access_token": "a", "refresh_token": "b"}),
            ),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "POST",
            format!("/admin/tenants/{t}/channels/telegram"),
            Some(json!({})),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "POST",
            "/admin/tenants/tn_0123456789abcdef01234567/channels/whatsapp".into(),
            Some(wa_body("106540352242922", "tok")),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "DELETE",
            format!("/admin/tenants/{t}/channels/whatsapp/106540352242922"),
            None,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "DELETE",
            format!("/admin/tenants/{t}/channels/whatsapp/abc"),
            None,
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "PUT",
            "/admin/tenants".into(),
            None,
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            "GET",
            "/admin/elsewhere".into(),
            None,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
    ];
    for (m, p, body, status, code) in cases {
        let (s, v) = api.call(m, &p, body.clone()).await;
        assert_eq!(s, status, "{m} {p} {body:?}: {v}");
        assert_error(&v, code);
    }
    // Malformed JSON and oversized bodies.
    let resp = api
        .http
        .post(format!("{}/admin/tenants", api.base))
        .bearer_auth(TOKEN)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let resp = api
        .http
        .post(format!("{}/admin/tenants", api.base))
        .bearer_auth(TOKEN)
        .body(vec![b' '; 70 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);

    // Nothing of the above changed anything.
    let (_, list) = api.call("GET", "/admin/tenants", None).await;
    assert_eq!(list["tenants"].as_array().unwrap().len(), 1);
    let (_, settings) = api.call("GET", &format!("/admin/tenants/{t}"), None).await;
    assert_eq!(settings["channels"], json!([]));
    server.shutdown().await;
}
