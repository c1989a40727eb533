//! Cost of sealing inbound jobs (decision 0026): per message, the webhook's seal (two keyed
//! ids, the event's JSON, AES-256-GCM, base64) and the worker's open, against the unsealed
//! v1 job (JSON and two SHA-256 ids; JSON parse) measured in the same run, and the queue bytes
//! per message (body + group id + deduplication id) of both. Warm key cache, as in a warm
//! function. Run with `cargo bench -p wappline --bench inbound_job`; figures go to
//! docs/performance.md.

use std::time::{Duration, Instant};

use wappline::app::Platform;
use wappline::inbound::InboundJob;
use wappline::meta::split_webhook;
use wappline::queue::{platform, OutgoingMessage};
use wappline::tenant::{RetentionDays, TenantName};

/// A WhatsApp text delivery like the inbound benchmark's, and an Instagram image one.
const WHATSAPP: &str = r#"{"object":"whatsapp_business_account","entry":[{"id":"102290129340398",
 "changes":[{"field":"messages","value":{"messaging_product":"whatsapp",
 "metadata":{"display_phone_number":"15550100001","phone_number_id":"106540352242922"},
 "contacts":[{"profile":{"name":"Kerry Fisher"},"wa_id":"15550000012"}],
 "messages":[{"from":"15550000012","id":"wamid.HBgLMTU1NTAwMDAwMTIVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=",
 "timestamp":"1764000012","type":"text","text":{"body":"Hello, I would like to know more about the order I placed yesterday, number 4711."}}]}}]}]}"#;
const INSTAGRAM: &str = r#"{"object":"instagram","entry":[{"time":1767261600623,"id":"17841405822304914",
 "messaging":[{"sender":{"id":"1254459154682919"},"recipient":{"id":"17841405822304914"},
 "timestamp":1767261600123,"message":{"mid":"aWdfaXRlbToxOklHTWVzc2FnZUlEOjE3ODQxNDA1ODIyMzA0OTE0OjM0MDI4MjM2Njg0MTcxMDMwMDk0OTEyODIyNTQzMTA5NzQzNjEwOTcwOTk0MTA0OTk3NjA4MQ",
 "attachments":[{"type":"image","payload":{"url":"https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=17936486754081093&signature=AbxVoHk3Zr"}}]}}]}]}"#;

const RUNS: u32 = 20_000;

fn bytes(m: &OutgoingMessage) -> usize {
    m.body.len()
        + m.group_id.as_ref().map_or(0, String::len)
        + m.dedup_id.as_ref().map_or(0, String::len)
}

fn per(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6 / f64::from(RUNS)
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let p = Platform::embedded(dir.path()).unwrap();
        let tenant = p
            .tenants
            .create(TenantName::parse("Acme").unwrap(), RetentionDays::default())
            .await
            .unwrap()
            .id;
        let inbound = platform::name(platform::INBOUND);
        for (name, delivery) in [("whatsapp text", WHATSAPP), ("instagram image", INSTAGRAM)] {
            let event = split_webhook(delivery.as_bytes()).unwrap().events.remove(0);
            let job = InboundJob::new(tenant.clone(), event);
            // Warm the key cache, as a warm function has it.
            let sealed = job.seal(&p.envelope, &inbound).await.unwrap();
            let plain = job.to_legacy_plain_message().unwrap();

            let t = Instant::now();
            for _ in 0..RUNS {
                std::hint::black_box(job.to_legacy_plain_message().unwrap());
            }
            let plain_make = per(t.elapsed());
            let t = Instant::now();
            for _ in 0..RUNS {
                std::hint::black_box(job.seal(&p.envelope, &inbound).await.unwrap());
            }
            let seal = per(t.elapsed());
            let t = Instant::now();
            for _ in 0..RUNS {
                std::hint::black_box(
                    InboundJob::open(&p.envelope, &inbound, &plain.body)
                        .await
                        .unwrap(),
                );
            }
            let plain_read = per(t.elapsed());
            let t = Instant::now();
            for _ in 0..RUNS {
                std::hint::black_box(
                    InboundJob::open(&p.envelope, &inbound, &sealed.body)
                        .await
                        .unwrap(),
                );
            }
            let open = per(t.elapsed());
            println!(
                "{name}: unsealed job {:.1} µs to make + {:.1} µs to read = {:.1} µs; \
                 sealed {seal:.1} + {open:.1} = {:.1} µs; added {:.1} µs CPU/message ({RUNS} runs)",
                plain_make,
                plain_read,
                plain_make + plain_read,
                seal + open,
                seal + open - plain_make - plain_read,
            );
            println!(
                "{name}: queue bytes (body + group + dedup id) unsealed {} B, sealed {} B, added {} B/message ({:+.0} %)",
                bytes(&plain),
                bytes(&sealed),
                bytes(&sealed) as i64 - bytes(&plain) as i64,
                (bytes(&sealed) as f64 / bytes(&plain) as f64 - 1.0) * 100.0
            );
        }
        let stats = p.envelope.stats();
        println!(
            "vault calls {} and key-table reads {} over all runs (warm cache)",
            stats.vault_calls, stats.key_table_reads
        );
    });
}
