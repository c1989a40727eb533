//! One tenant on an embedded platform, for the tests that drive a worker on the domain APIs
//! without the local server: the store, encryption and platform queues in a temp dir, and
//! the tenant "Acme" with its WhatsApp number connected (and whatever else a test passes).
//! Also the channel connections such tests give a tenant.

use std::collections::BTreeMap;
use std::sync::Arc;

use wappline::app::Platform;
use wappline::ids::{BitrixMemberId, PhoneNumberId, TenantId};
use wappline::queue::embedded::EmbeddedQueue;
use wappline::queue::platform;
use wappline::tenant::{ChannelRef, Connection, RetentionDays, Secret, TenantName, TenantScope};

use crate::fake_bitrix::FakeBitrix;
use crate::harness::{WABA, WA_NUMBER};

/// The access token of the tenant's WhatsApp number ([`WA_NUMBER`]).
pub const WA_TOKEN: &str = "EAAGwhatsappTokenOfTheTenant0123456789";

/// The platform, its queue and the tenant.
pub struct EmbeddedTenant {
    pub platform: Platform,
    pub queue: Arc<EmbeddedQueue>,
    pub tenant: TenantId,
    pub scope: TenantScope,
    /// Where the store and the queue live; removed when dropped, so held as long as they are.
    pub dir: tempfile::TempDir,
}

impl EmbeddedTenant {
    /// A new platform with the tenant "Acme", its WhatsApp number [`WA_NUMBER`] connected
    /// (token [`WA_TOKEN`], WABA [`WABA`]), then each of `also` (e.g. an Instagram account).
    pub async fn start(also: impl IntoIterator<Item = Connection>) -> EmbeddedTenant {
        let dir = tempfile::tempdir().unwrap();
        let platform = Platform::embedded(dir.path()).unwrap();
        let queue = Arc::new(EmbeddedQueue::open(dir.path(), platform::specs()).unwrap());
        let tenant = platform
            .tenants
            .create(TenantName::parse("Acme").unwrap(), RetentionDays::default())
            .await
            .unwrap()
            .id;
        let scope = platform.tenants.scope(&tenant).await.unwrap().unwrap();
        let whatsapp = connection(
            ChannelRef::WhatsApp(PhoneNumberId::parse(WA_NUMBER).unwrap()),
            WA_TOKEN,
            &[("waba_id", WABA)],
        );
        for c in std::iter::once(whatsapp).chain(also) {
            scope.connect(c).await.unwrap();
        }
        EmbeddedTenant {
            platform,
            queue,
            tenant,
            scope,
            dir,
        }
    }
}

/// A connection of `channel` with its access token and `details`.
pub fn connection(channel: ChannelRef, token: &str, details: &[(&str, &str)]) -> Connection {
    Connection {
        channel,
        details: details
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<BTreeMap<_, _>>(),
        secrets: BTreeMap::from([(
            "access_token",
            Secret::parse("access_token", token).unwrap(),
        )]),
        authorized_by: None,
    }
}

/// The connection of the fake's portal `domain` (member `member_id`, with its current
/// tokens) on Open Line `line`.
pub fn portal_connection(
    fake: &FakeBitrix,
    domain: &str,
    member_id: &str,
    line: u32,
) -> Connection {
    let tokens = fake.valid_tokens_for(domain);
    let mut portal = connection(
        ChannelRef::Bitrix24(BitrixMemberId::parse(member_id).unwrap()),
        &tokens.access_token,
        &[("domain", domain), ("line_id", &line.to_string())],
    );
    portal.secrets.insert(
        "refresh_token",
        Secret::parse("refresh_token", &tokens.refresh_token).unwrap(),
    );
    portal
}

/// Delivers the inbound job until the worker succeeds (as the queue redelivers a failed job),
/// at most three times; returns how many tries it took.
pub async fn inbound_until_done(
    worker: &wappline::inbound::worker::InboundWorker,
    job: &wappline::inbound::InboundJob,
) -> usize {
    for tries in 1..=3 {
        if worker.process(job).await.is_ok() {
            return tries;
        }
    }
    panic!("the inbound job never succeeded in three tries");
}

/// The inbound job the webhook queues for `body`, a delivery of exactly one event, for
/// `tenant`.
pub fn only_inbound_job(tenant: &TenantId, body: &[u8]) -> wappline::inbound::InboundJob {
    let mut batch = wappline::meta::split_webhook(body).unwrap();
    assert_eq!(batch.events.len(), 1, "one event in the delivery");
    wappline::inbound::InboundJob::new(tenant.clone(), batch.events.remove(0))
}

/// The actions of the sync jobs waiting in the platform's sync queue (at most ten), received
/// with a minute's visibility timeout so they stay hidden for the rest of a test.
pub async fn queued_sync_actions(
    queue: &dyn wappline::queue::Queue,
) -> Vec<wappline::crm_sync::SyncAction> {
    let received = queue
        .receive(
            &platform::name(platform::SYNC),
            10,
            std::time::Duration::from_secs(60),
        )
        .await
        .unwrap();
    received
        .iter()
        .map(|m| {
            serde_json::from_str::<wappline::crm_sync::SyncJob>(&m.body)
                .unwrap()
                .action
        })
        .collect()
}
