//! The sample events of the functions that had none (events/README.md) go through each
//! function's handler the way Lambda delivers them: SQS batches and EventBridge schedules
//! through the runner's own dispatch (`handle_sqs_or_schedule`, with the records counted as
//! the runner counts them), HTTP events through lambda_http's event parsing. The handlers are
//! built by the same `Services` builders as the functions' `main.rs`, on embedded adapters.
//! `TENANT-ID` in a sample is replaced by a tenant the test creates.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use serde_json::Value;
use wappline::app::runtime::{handle_sqs_or_schedule, metered, Error};
use wappline::app::{HttpFunction, Services, Settings};
use wappline::consumer::RecordHandler;
use wappline::ids::{PhoneNumberId, TenantId};
use wappline::metrics::Metrics;
use wappline::queue::platform;
use wappline::tenant::{ChannelRef, Connection, RetentionDays, Secret, TenantName};

const HEX_KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
/// The business number of the inbound sample.
const NUMBER: &str = "106540352242922";

fn sample_path(function: &str, name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../events")
        .join(function)
        .join(name)
}

/// The sample, with the test's tenant in place of `TENANT-ID`.
fn sample(function: &str, name: &str, tenant: &TenantId) -> String {
    let path = sample_path(function, name);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .replace("TENANT-ID", tenant.as_str())
}

struct World {
    services: Services,
    tenant: TenantId,
    metrics: Metrics,
    _dir: tempfile::TempDir,
}

async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let vars: HashMap<&str, &str> = HashMap::from([
        ("WAPPLINE_BITRIX_CLIENT_ID", "local.5f0c0a1b2c3d4e.12345678"),
        ("WAPPLINE_BITRIX_CLIENT_SECRET", "s3cret"),
        ("PUBLIC_BASE_URL", "https://wappline.example"),
        ("MEDIA_LINK_KEY", HEX_KEY),
        ("EXPORT_LINK_KEY", HEX_KEY),
    ]);
    let settings = Settings::from_lookup(|k| vars.get(k).map(|v| v.to_string())).unwrap();
    let (metrics, _) = Metrics::in_memory("Wappline/test");
    let services = Services::embedded(settings, dir.path())
        .unwrap()
        .with_metrics(metrics.clone());
    let tenant = services
        .platform
        .tenants
        .create(TenantName::parse("Shop").unwrap(), RetentionDays::default())
        .await
        .unwrap()
        .id;
    services
        .platform
        .tenants
        .scope(&tenant)
        .await
        .unwrap()
        .unwrap()
        .connect(Connection {
            channel: ChannelRef::WhatsApp(PhoneNumberId::parse(NUMBER).unwrap()),
            details: BTreeMap::new(),
            secrets: BTreeMap::from([(
                "access_token",
                Secret::parse("t", "EAAsampleTOKEN").unwrap(),
            )]),
            authorized_by: None,
        })
        .await
        .unwrap();
    World {
        services,
        tenant,
        metrics,
        _dir: dir,
    }
}

/// A scheduled run that must not happen (the sample is an SQS batch).
async fn not_scheduled() -> Result<Value, Error> {
    panic!("an SQS batch was taken for a schedule")
}

impl World {
    /// One invocation of the consumer of `queue` with the sample `name`; its answer.
    async fn invoke<H: RecordHandler>(
        &self,
        function: &str,
        name: &str,
        queue: &'static str,
        handler: H,
    ) -> Value {
        let payload: Value = serde_json::from_str(&sample(function, name, &self.tenant)).unwrap();
        let handler = metered(handler, &self.services, queue);
        handle_sqs_or_schedule(
            &handler,
            self.services.queue.as_ref(),
            &platform::name(queue),
            payload,
            &not_scheduled,
        )
        .await
        .unwrap_or_else(|e| panic!("{function}/{name}: {e}"))
    }

    async fn depth(&self, queue: &str) -> usize {
        self.services
            .embedded_handles()
            .unwrap()
            .queue
            .depth(&platform::name(queue))
            .await
            .unwrap()
    }
}

fn failures(answer: &Value) -> usize {
    answer["batchItemFailures"].as_array().map_or(0, Vec::len)
}

fn http(function: &str, name: &str, tenant: &TenantId) -> lambda_http::Request {
    lambda_http::request::from_str(&sample(function, name, tenant))
        .unwrap_or_else(|e| panic!("{function}/{name}: {e}"))
}

#[tokio::test]
async fn the_queue_consumers_take_their_sample_batches() {
    let w = world().await;

    // inbound-worker: a (v1, plaintext) job of the connected number: stored, and its CRM
    // sync queued.
    let answer = w
        .invoke(
            "inbound-worker",
            "sqs-legacy-plain-job.json",
            platform::INBOUND,
            w.services.inbound_worker().unwrap(),
        )
        .await;
    assert_eq!(failures(&answer), 0, "{answer}");
    assert_eq!(w.depth(platform::SYNC).await, 1, "the CRM sync job queued");

    // sync-worker: a job whose conversation is gone (erased or expired): dropped, done.
    let answer = w
        .invoke(
            "sync-worker",
            "sqs-push-message.json",
            platform::SYNC,
            w.services.sync_worker().unwrap(),
        )
        .await;
    assert_eq!(failures(&answer), 0, "{answer}");

    // outbound-worker: the same for a send.
    let answer = w
        .invoke(
            "outbound-worker",
            "sqs-send.json",
            platform::OUTBOUND,
            w.services.outbound_worker().unwrap(),
        )
        .await;
    assert_eq!(failures(&answer), 0, "{answer}");

    // export-worker and erasure-worker: requests the store does not hold.
    let answer = w
        .invoke(
            "export-worker",
            "sqs-export.json",
            platform::EXPORTS,
            w.services.export_worker().unwrap(),
        )
        .await;
    assert_eq!(failures(&answer), 0, "{answer}");
    let answer = w
        .invoke(
            "erasure-worker",
            "sqs-contact-erasure.json",
            platform::ERASURE,
            w.services.erasure_worker().unwrap(),
        )
        .await;
    assert_eq!(failures(&answer), 0, "{answer}");

    // The sample sync job says it is its third delivery: a retry, counted.
    let docs = w.metrics.drain().join("\n");
    assert!(
        docs.contains(r#""Retries":1.0"#) && docs.contains(r#""Stage":"sync""#),
        "{docs}"
    );
}

#[tokio::test]
async fn the_scheduled_functions_run_their_sample_schedules() {
    let w = world().await;
    // sync-worker's schedule: revocations and the probe of parked portals (none).
    let (probe, revocations, history) = (
        w.services.portal_probe().unwrap(),
        w.services.revocations().unwrap(),
        w.services.history_import().unwrap(),
    );
    let ends = w.services.restriction_ends();
    let payload: Value =
        serde_json::from_str(&sample("sync-worker", "schedule.json", &w.tenant)).unwrap();
    let answer = handle_sqs_or_schedule(
        &metered(
            w.services.sync_worker().unwrap(),
            &w.services,
            platform::SYNC,
        ),
        w.services.queue.as_ref(),
        &platform::name(platform::SYNC),
        payload,
        &|| sync_worker::scheduled(&probe, &revocations, &history, ends.as_ref()),
    )
    .await
    .unwrap();
    assert_eq!(answer["probed"], 0, "{answer}");
    assert_eq!(answer["history"]["channels"], 0, "{answer}");
    if ends.is_some() {
        assert_eq!(answer["restriction_ends"]["shown"], 0, "{answer}");
    }
    // The probe reported how many portals are parked, for the alarm.
    assert!(w
        .metrics
        .drain()
        .join("\n")
        .contains(r#""ParkedPortals":0.0"#));

    // erasure-worker's schedule: the tenant-erasure sweep (nothing due).
    let sweep = w.services.tenant_erasure().unwrap();
    let refresh = w.services.token_refresh().unwrap();
    let policy = w.services.policy_mailing();
    let templates = w.services.template_sync().unwrap();
    let subscriptions = w.services.subscription_check().unwrap();
    let payload: Value =
        serde_json::from_str(&sample("erasure-worker", "schedule.json", &w.tenant)).unwrap();
    let answer = handle_sqs_or_schedule(
        &metered(
            w.services.erasure_worker().unwrap(),
            &w.services,
            platform::ERASURE,
        ),
        w.services.queue.as_ref(),
        &platform::name(platform::ERASURE),
        payload,
        &|| erasure_worker::scheduled(&sweep, &refresh, &policy, &templates, &subscriptions),
    )
    .await
    .unwrap();
    assert_eq!(
        answer,
        serde_json::json!({
            "more_work": false,
            "tokens": {"checked": 0, "refreshed": 0, "failed": 0, "removed": 0},
            "policy_mailed": 0,
            "templates": {"synced": 0, "failed": 0, "removed": 0},
            // The sample's number was connected now: its first check is a day away.
            // Its index entries were written by the connect: the backfill writes nothing.
            "subscriptions": {"checked": 0, "resubscribed": 0, "failed": 0, "removed": 0,
                "backfilled": 0, "backfill_done": true}
        })
    );

    // retention's schedule: its handler takes any event; the sample is what EventBridge sends.
    let event: Value =
        serde_json::from_str(&sample("retention", "schedule.json", &w.tenant)).unwrap();
    assert_eq!(event["detail-type"], "Scheduled Event");
    let run = w.services.retention();
    let budget = retention::budget(
        std::time::SystemTime::now() + std::time::Duration::from_secs(60),
        None,
    );
    retention::handle(&run, budget).await.unwrap();
}

#[tokio::test]
async fn the_http_functions_answer_their_sample_requests() {
    let w = world().await;
    let public = public_api::PublicApi::from_services(&w.services).unwrap();
    let resp = HttpFunction::handle(&public, http("public-api", "health.json", &w.tenant)).await;
    assert_eq!(resp.status(), 200);
    let v: Value = serde_json::from_slice(resp.body().as_ref()).unwrap();
    assert_eq!(v["checks"]["routes_table"], "ok", "{v}");
    let resp = HttpFunction::handle(
        &public,
        http("public-api", "send-unknown-key.json", &w.tenant),
    )
    .await;
    assert_eq!(resp.status(), 401);

    let media = media_proxy::MediaProxyFunction::from_services(&w.services).unwrap();
    let resp =
        HttpFunction::handle(&media, http("media-proxy", "forged-link.json", &w.tenant)).await;
    let status = resp.status().as_u16();
    assert!((400..500).contains(&status), "{status}");
}
