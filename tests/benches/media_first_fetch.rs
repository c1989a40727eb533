//! media-proxy: what a tenant's first media fetch costs in a warm instance, with the link's
//! tenant read through its session of the tenant-data role (decision 0037) and without it
//! (the function's own role, as before). A bench binary, not a test; needs the moto server
//! (`MOTO_ENDPOINT`, as the tests): `cargo bench -p e2e-tests --bench media_first_fetch`;
//! figures go to docs/performance.md.
//!
//! The media proxy is composed as its `main.rs` composes it (`Services` from the environment
//! template.yaml gives it, `TENANT_DATA_ROLE_ARN` set or not), over DynamoDB and KMS on moto
//! and the Graph API fake on loopback. Each round builds a fresh instance, warms it with one
//! tenant, then fetches one WhatsApp image for each of 50 other tenants twice: the first
//! fetch of a tenant (its `AssumeRole` when scoped, its data key's unwrap, its channel and
//! token) and the next one (all cached but the channel read and the Graph API). Rounds
//! alternate the two modes so a busy moment of the shared machine falls on both.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use e2e_tests::fake_graph::FakeGraph;
use wappline::app::{AwsClientOptions, Services, Settings};
use wappline::ids::PhoneNumberId;
use wappline::media::{MediaClaims, MediaLinks, MediaRef};
use wappline::meta::AccountRef;
use wappline::store::dynamo::{provision_tables, TableNames};
use wappline::tenant::{ChannelKind, ChannelRef, Connection, RetentionDays, Secret, TenantName};

const ROLE: &str = "arn:aws:iam::123456789012:role/bench-tenant-data";
const LINK_KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
const TENANTS: usize = 50;
const ROUNDS: usize = 3;

/// One tenant with a connected WhatsApp number, its token known to the Graph API fake, and a
/// signed link to an image of that number.
struct Linked {
    token: String,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() {
    let sdk = e2e_tests::moto::sdk_config().await;
    let names = TableNames::with_prefix(&format!("bench-media-{}", std::process::id()));
    provision_tables(&aws_sdk_dynamodb::Client::new(&sdk), &names)
        .await
        .unwrap();
    let key = aws_sdk_kms::Client::new(&sdk)
        .create_key()
        .send()
        .await
        .unwrap();
    let key_id = key.key_metadata().unwrap().arn().unwrap().to_owned();
    let graph = FakeGraph::start().await;

    // The media proxy's environment in template.yaml, on this deployment.
    let mut env: BTreeMap<&'static str, String> = BTreeMap::from([
        ("DATA_TABLE", names.data.clone()),
        ("ROUTES_TABLE", names.routes.clone()),
        ("KEYS_TABLE", names.keys.clone()),
        ("DEDUPE_TABLE", names.dedupe.clone()),
        ("KMS_KEY_ID", key_id),
        ("MEDIA_LINK_KEY", LINK_KEY.to_owned()),
        ("PUBLIC_BASE_URL", "https://media.example".to_owned()),
        ("MEDIA_PROXY_RESPONSE_MODE", "stream".to_owned()),
        ("GRAPH_API_BASE_URL", graph.base_url()),
        ("INSTAGRAM_API_BASE_URL", graph.base_url()),
    ]);
    fn lookup(env: &BTreeMap<&'static str, String>) -> impl Fn(&str) -> Option<String> {
        let env = env.clone();
        move |k: &str| env.get(k).cloned()
    }
    let links = MediaLinks::from_lookup(lookup(&env)).unwrap();

    // Tenants, set up with the function's own credentials (no session outside a tenant's work).
    let setup = Services::aws_with(
        Settings::from_lookup(lookup(&env)).unwrap(),
        &sdk,
        AwsClientOptions::default(),
    )
    .unwrap();
    let mut linked = Vec::new();
    for i in 0..=TENANTS {
        let number = format!("1065403{i:08}");
        let access = format!("EAAbench{i:04}");
        let id = setup
            .platform
            .tenants
            .create(
                TenantName::parse(&format!("Bench {i}")).unwrap(),
                RetentionDays::default(),
            )
            .await
            .unwrap()
            .id;
        let scope = setup.platform.tenants.scope(&id).await.unwrap().unwrap();
        let channel = ChannelRef::parse(ChannelKind::WhatsApp, &number).unwrap();
        scope
            .connect(Connection {
                channel,
                details: BTreeMap::from([("waba_id".to_owned(), "102290129340398".to_owned())]),
                secrets: BTreeMap::from([(
                    "access_token",
                    Secret::parse("access_token", &access).unwrap(),
                )]),
                authorized_by: None,
            })
            .await
            .unwrap();
        let media_id = format!("9{i:015}");
        graph.add_token(&access, &number);
        graph.add_media(
            &media_id,
            &number,
            "image/jpeg",
            &[0xff, 0xd8, 0xff, 0xe0, 7],
        );
        let claims = MediaClaims {
            tenant: id.clone(),
            account: AccountRef::WhatsApp(PhoneNumberId::parse(&number).unwrap()),
            media: MediaRef::WhatsAppMedia(media_id),
            mime_type: Some("image/jpeg".into()),
            filename: Some("photo.jpg".into()),
            expires_at: wappline::clock::now_secs() + 3600,
            conversation: None,
        };
        linked.push(Linked {
            token: links.sign(&claims).unwrap(),
        });
    }

    let mut first: BTreeMap<&str, Vec<Duration>> = BTreeMap::new();
    let mut next: BTreeMap<&str, Vec<Duration>> = BTreeMap::new();
    for round in 0..ROUNDS * 2 {
        let scoped = round % 2 == 1;
        let mode = if scoped {
            "scoped (tenant session)"
        } else {
            "function role (before)"
        };
        if scoped {
            env.insert("TENANT_DATA_ROLE_ARN", ROLE.to_owned());
        } else {
            env.remove("TENANT_DATA_ROLE_ARN");
        }
        let services = Services::aws_with(
            Settings::from_lookup(lookup(&env)).unwrap(),
            &sdk,
            AwsClientOptions::default(),
        )
        .unwrap();
        let proxy = services.media_proxy().unwrap();
        // Warm: the instance has served one tenant (clients, connections, the Graph client).
        for _ in 0..3 {
            proxy.fetch(&linked[0].token).await.unwrap();
        }
        for l in &linked[1..] {
            let s = Instant::now();
            proxy.fetch(&l.token).await.unwrap();
            first.entry(mode).or_default().push(s.elapsed());
            let s = Instant::now();
            proxy.fetch(&l.token).await.unwrap();
            next.entry(mode).or_default().push(s.elapsed());
        }
        let assumed = services.tenant_sessions().map_or(0, |s| s.assume_calls());
        println!("round {round}: {mode}, {assumed} AssumeRole");
    }
    for (mode, firsts) in &mut first {
        let nexts = next.get_mut(mode).unwrap();
        firsts.sort();
        nexts.sort();
        println!(
            "{mode}: first fetch of a tenant median {}, p90 {}; next fetch median {}, p90 {} ({} tenants x {ROUNDS} rounds)",
            ms(percentile(firsts, 0.5)),
            ms(percentile(firsts, 0.9)),
            ms(percentile(nexts, 0.5)),
            ms(percentile(nexts, 0.9)),
            TENANTS,
        );
    }
}
