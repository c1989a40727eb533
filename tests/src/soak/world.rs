//! The soak's world: the local server on embedded storage with seeded faults on every port,
//! the Graph API and Bitrix24 fakes behind fault proxies, tenants set up the way customers set
//! them up, and the restart of a crashed instance on the same data dir.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use local_server::{LocalConfig, LocalServer};
use reqwest::StatusCode;
use serde_json::{json, Value};
use wappline::faults::ports::Tap;
use wappline::faults::FaultPlan;
use wappline::meta::AppSecret;
use wappline::metrics::Metrics;
use wappline::queue::{platform, Queue};

use crate::fake_bitrix::{EventBody, FakeBitrix, FAKE_CLIENT_ID, FAKE_CLIENT_SECRET};
use crate::fake_graph::{FakeGraph, FAKE_APP_ID, FAKE_APP_SECRET};
use crate::fault_proxy::{FaultProxy, Upstream};
use crate::harness::{ADMIN, VERIFY};

/// The Open Line every soak portal is connected on.
pub const LINE: u64 = 7;
/// The queues that carry work (each with a dead-letter twin).
pub const WORK_QUEUES: [&str; 5] = [
    platform::INBOUND,
    platform::SYNC,
    platform::OUTBOUND,
    platform::ERASURE,
    platform::EXPORTS,
];

/// One soak tenant: its WhatsApp number, its Instagram account when connected, and its
/// Bitrix24 portal.
#[derive(Clone, Debug)]
pub struct SoakTenant {
    pub id: String,
    pub number: String,
    pub instagram: Option<String>,
    pub waba: String,
    pub token: String,
    pub domain: String,
    pub app_token: String,
    pub api_key: String,
}

pub struct World {
    pub plan: Arc<FaultPlan>,
    pub bitrix: FakeBitrix,
    pub graph: FakeGraph,
    pub graph_proxy: FaultProxy,
    bitrix_proxy: FaultProxy,
    dir: tempfile::TempDir,
    server: Option<LocalServer>,
    addr: Option<SocketAddr>,
    pub http: reqwest::Client,
    /// Restarts after a crash.
    pub restarts: usize,
    /// Dead-lettered jobs the soak redrove to go on (each one a finding).
    pub redriven: usize,
    /// The cost model's meter on every port, when one is given.
    meter: Option<Arc<wappline::costs::Meter>>,
    /// What the flows of every instance count (decision 0038), kept across restarts, and
    /// the documents flushed from it.
    metrics: Metrics,
    metric_lines: Arc<Mutex<Vec<String>>>,
}

impl World {
    pub async fn start(plan: Arc<FaultPlan>) -> World {
        World::start_metered(plan, None).await
    }

    /// Like [`World::start`], with `meter` counting every port call (the cost model).
    pub async fn start_metered(
        plan: Arc<FaultPlan>,
        meter: Option<Arc<wappline::costs::Meter>>,
    ) -> World {
        let bitrix = FakeBitrix::start().await;
        let graph = FakeGraph::start().await;
        let graph_proxy = FaultProxy::start(graph.base_url(), Upstream::Graph, plan.clone()).await;
        let bitrix_proxy =
            FaultProxy::start(bitrix.base_url(), Upstream::Bitrix, plan.clone()).await;
        let (metrics, metric_lines) = Metrics::in_memory("Soak");
        let mut world = World {
            plan,
            bitrix,
            graph,
            graph_proxy,
            bitrix_proxy,
            dir: tempfile::tempdir().expect("temp dir"),
            server: None,
            addr: None,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
            restarts: 0,
            redriven: 0,
            meter,
            metrics,
            metric_lines,
        };
        world.boot().await;
        world
    }

    fn config(&self) -> LocalConfig {
        let mut c = LocalConfig::for_tests(self.dir.path(), ADMIN);
        if let Some(addr) = self.addr {
            // The same address after a restart, as a redeployed server keeps its name.
            c.listen = addr;
        }
        c.meta_app_secret = Some(FAKE_APP_SECRET.into());
        c.meta_app_id = Some(FAKE_APP_ID.into());
        c.meta_verify_token = Some(VERIFY.into());
        c.graph_api_base_url = self.graph_proxy.base_url();
        c.bitrix_client_id = Some(FAKE_CLIENT_ID.into());
        c.bitrix_client_secret = Some(FAKE_CLIENT_SECRET.into());
        c.bitrix_oauth_url = Some(format!("{}/oauth/token/", self.bitrix_proxy.base_url()));
        c.bitrix_portal_base_url = Some(self.bitrix_proxy.base_url());
        c.bitrix_timeout_ms = Some("2000".into());
        // The send worker waits a Graph API call's timeout and a second before it sends again
        // a reply whose outcome it does not know (decision 0110): 20 s by default.
        c.graph_timeout_ms = Some("2000".into());
        c.retry_base_ms = 20;
        if self.meter.is_some() {
            // The schedules (sweeps, probes) are not per message: keep them out of the count.
            c.schedule_secs = 3600;
            // The cost model injects no crash, so it keeps the deployed leases and visibility
            // timeout (180 s): with 2 s, a batch that waits on its portal's pace for longer
            // than that has its finished records delivered again before they are
            // acknowledged, a second receive and idempotency check AWS would not bill.
        } else {
            // A crashed worker's lease blocks its job for 2 s instead of 3 minutes.
            c.lease_secs = Some(2);
            // A contact erasure's second pass one lease after it completes, as deployed.
            c.erasure_sweep_secs = None;
        }
        c.metrics = Some(self.metrics.clone());
        c.tap = Some(Tap {
            faults: Some(self.plan.clone()),
            meter: self.meter.clone(),
        });
        c
    }

    async fn boot(&mut self) {
        let started = Instant::now();
        loop {
            match LocalServer::start(self.config()).await {
                Ok(server) => {
                    self.addr = Some(server.addr());
                    self.server = Some(server);
                    return;
                }
                // The old listener's port may take a moment to free.
                Err(e) if started.elapsed() < Duration::from_secs(10) => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("the server did not restart: {e}"),
            }
        }
    }

    /// Restarts the instance on the same data when the plan crashed it (a killed process
    /// does nothing more; its successor opens the same files).
    pub async fn ensure_alive(&mut self) {
        if !self.plan.crashed() {
            return;
        }
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
        self.plan.restarted();
        self.restarts += 1;
        self.boot().await;
    }

    /// The POST bodies forwarded to the Bitrix24 fake, each with the instance that sent it.
    pub fn bitrix_posts(&self) -> Vec<(u64, hyper::body::Bytes)> {
        self.bitrix_proxy.posts()
    }

    /// The POST bodies the Bitrix24 fake ran whose answer the proxy dropped.
    pub fn bitrix_lost_answers(&self) -> Vec<hyper::body::Bytes> {
        self.bitrix_proxy.lost_answers()
    }

    pub fn server(&self) -> &LocalServer {
        self.server.as_ref().expect("a running server")
    }

    pub fn base(&self) -> String {
        format!("http://{}", self.addr.expect("started"))
    }

    /// Sends what `build` makes until it is answered with a success, restarting a crashed
    /// instance in between: what Meta (webhooks), Bitrix24 (events) and API clients do.
    pub async fn until_ok(
        &mut self,
        what: &str,
        build: impl Fn(&reqwest::Client, &str) -> reqwest::RequestBuilder,
    ) -> (StatusCode, String) {
        for _ in 0..400 {
            self.ensure_alive().await;
            let base = self.base();
            if let Ok(resp) = build(&self.http, &base).send().await {
                let status = resp.status();
                let text = resp.text().await.unwrap_or_default();
                if status.is_success() {
                    return (status, text);
                }
                // A refusal of the request itself is the soak's own mistake.
                assert!(
                    status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS,
                    "{what}: {status} {text}"
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("{what}: never accepted");
    }

    pub async fn admin(&mut self, method: &str, path: &str, body: Value) -> Value {
        let method: reqwest::Method = method.parse().expect("method");
        let (_, text) = self
            .until_ok(path, |http, base| {
                http.request(method.clone(), format!("{base}{path}"))
                    .bearer_auth(ADMIN)
                    .json(&body)
            })
            .await;
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// A signed Meta webhook delivery, until Meta would get its 200.
    pub async fn webhook(&mut self, body: &[u8]) {
        let sig = AppSecret::new(FAKE_APP_SECRET).expect("secret").sign(body);
        self.until_ok("webhook", |http, base| {
            http.post(format!("{base}/webhooks/meta"))
                .header("content-type", "application/json")
                .header("X-Hub-Signature-256", sig.clone())
                .body(body.to_vec())
        })
        .await;
    }

    /// A Bitrix24 event (`POST /bitrix/events`), until answered 200.
    pub async fn bitrix_event(&mut self, form: String) {
        self.until_ok("bitrix event", |http, base| {
            http.post(format!("{base}/bitrix/events"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form.clone())
        })
        .await;
    }

    /// Messages waiting or in flight in `queue` (faults do not apply to this look).
    pub async fn depth(&self, queue: &str) -> usize {
        self.server()
            .queue()
            .depth(&platform::name(queue))
            .await
            .expect("depth")
    }

    /// What each work queue holds (visible and in flight), and where the instance's data is,
    /// for a soak's failure message. With `SOAK_KEEP=1` the data directory is kept for
    /// inspection instead of being removed.
    pub async fn queue_report(&self) -> String {
        let mut report = Vec::new();
        for q in WORK_QUEUES {
            match self
                .server()
                .queue()
                .approximate_depth(&platform::name(q))
                .await
            {
                Ok(d) => report.push(format!(
                    "{q}: {} visible, {} in flight",
                    d.visible, d.in_flight
                )),
                Err(e) => report.push(format!("{q}: {e}")),
            }
        }
        if std::env::var("SOAK_KEEP").is_ok() {
            report.push(format!("data kept in {}", self.dir.path().display()));
        }
        report.join("; ")
    }

    /// With `SOAK_KEEP=1`, leaves the instance's data directory on disk when the world is
    /// dropped (a failing soak's state, for inspection).
    pub fn keep_data_if_asked(&mut self) {
        if std::env::var("SOAK_KEEP").is_ok() {
            let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("temp dir"));
            let _ = dir.keep();
        }
    }

    /// Messages in `queue`'s dead-letter queue.
    pub async fn dead_letters(&self, queue: &str) -> usize {
        self.server()
            .queue()
            .depth(&platform::name(queue).dead_letter())
            .await
            .expect("depth")
    }

    /// Waits until every work queue is empty, restarting crashed instances meanwhile.
    pub async fn drain(&mut self, within: Duration) {
        let started = Instant::now();
        let mut quiet = 0;
        while started.elapsed() < within {
            self.ensure_alive().await;
            let mut total = 0;
            for q in WORK_QUEUES {
                total += self.depth(q).await;
            }
            // Meta's status webhooks of the sends still on their way in.
            total += self.graph.statuses_in_flight();
            // Twice empty in a row: a stage may feed the next between two looks.
            quiet = if total == 0 { quiet + 1 } else { 0 };
            if quiet >= 3 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut left = Vec::new();
        for q in WORK_QUEUES {
            left.push((q, self.depth(q).await));
        }
        panic!("the queues did not drain within {within:?}: {left:?}");
    }

    /// A tenant with WhatsApp number `i` and its own Bitrix24 portal, installed through a
    /// connection code and ONAPPINSTALL, and a public API key.
    pub async fn tenant(&mut self, i: usize) -> SoakTenant {
        let number = format!("1065403522429{i:02}");
        let waba = format!("1022901293403{i:02}");
        let token = format!("EAAsoakTOKEN{i}");
        let domain = format!("soak{i}.bitrix24.com");
        let member_id = format!("a223c6b3710f85df22e9377d6c4f75{i:02}");
        let app_token = format!("831c76b092f9f135d9b6b36c3a7207{i:02}");
        let t = self
            .admin(
                "POST",
                "/admin/tenants",
                json!({"name": format!("Soak {i}")}),
            )
            .await;
        let id = t["id"].as_str().expect("tenant id").to_owned();
        self.graph.add_whatsapp_business(&token, &waba, &number);
        self.graph.add_token(&token, &number);
        self.admin(
            "POST",
            &format!("/admin/tenants/{id}/channels/whatsapp"),
            json!({"phone_number_id": number, "waba_id": waba, "access_token": token}),
        )
        .await;
        self.bitrix.add_portal(&domain, &member_id);
        let code = self
            .admin(
                "POST",
                &format!("/admin/tenants/{id}/bitrix24/connection-codes"),
                json!({"line_id": LINE}),
            )
            .await;
        let install_url = code["install_url"]
            .as_str()
            .expect("install url")
            .to_owned();
        let path = install_url
            .strip_prefix(&self.base())
            .expect("an install URL of this server")
            .to_owned();
        let wizard = EventBody::install_wizard(&self.bitrix, &domain);
        self.until_ok("install", |http, base| {
            http.post(format!("{base}{path}"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(wizard.clone())
        })
        .await;
        let install = EventBody::for_portal(&self.bitrix, &domain, Some(&app_token)).app_install();
        self.bitrix_event(install).await;
        let key = self
            .admin(
                "POST",
                &format!("/admin/tenants/{id}/api-keys"),
                json!({"name": "soak", "scope": "send"}),
            )
            .await;
        SoakTenant {
            id,
            number,
            instagram: None,
            waba,
            token,
            domain,
            app_token,
            api_key: key["key"].as_str().expect("key").to_owned(),
        }
    }

    /// Connects tenant `i`'s Instagram professional account, proven by its token at the
    /// Graph API fake as the console's connect does, and lets the fake answer the profiles
    /// of `customers` (their Instagram-scoped ids: each has messaged the account).
    pub async fn connect_instagram(&mut self, t: &mut SoakTenant, i: usize, customers: &[String]) {
        let account = format!("178414058223049{i:02}");
        let token = format!("IGsoakTOKEN{i}");
        self.graph.add_instagram_token(&token, &account, None);
        self.admin(
            "POST",
            &format!("/admin/tenants/{}/channels/instagram", t.id),
            json!({"account_id": account, "access_token": token}),
        )
        .await;
        for igsid in customers {
            self.graph.set_instagram_profile(
                igsid,
                crate::fake_graph::FakeProfile {
                    name: Some("Soak Customer".into()),
                    username: Some(format!("soak.{igsid}")),
                    profile_pic: None,
                },
            );
        }
        t.instagram = Some(account);
    }

    /// The sum of metric `name` counted with `dimension` = `value` by every instance so far.
    pub fn counted(&self, name: &str, dimension: &str, value: &str) -> u64 {
        self.metrics.flush();
        let lines = self.metric_lines.lock().unwrap_or_else(|p| p.into_inner());
        lines
            .iter()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|doc| doc[dimension] == value)
            .map(|doc| match &doc[name] {
                Value::Array(values) => values.iter().filter_map(Value::as_f64).sum(),
                v => v.as_f64().unwrap_or(0.0),
            })
            .sum::<f64>() as u64
    }

    /// Stops the server (its files stay for inspection until the world is dropped).
    pub async fn stop(mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
    }
}
