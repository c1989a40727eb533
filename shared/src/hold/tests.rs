use std::sync::Mutex;

use super::*;
use crate::app::Platform;
use crate::queue::platform;
use crate::store::AttrValue;
use crate::tenant::{RetentionDays, TenantName, TenantStatus};

/// Records what it is sent, in order; refuses every send after `accept` messages.
#[derive(Default)]
struct Recording {
    sent: Mutex<Vec<(String, String)>>,
    accept: Option<usize>,
}

#[async_trait]
impl Queue for Recording {
    async fn send_batch(
        &self,
        queue: &QueueName,
        messages: Vec<OutgoingMessage>,
    ) -> Result<(), QueueError> {
        let mut sent = self.sent.lock().unwrap();
        if self.accept.is_some_and(|n| sent.len() + messages.len() > n) {
            return Err(QueueError::Unavailable("down".into()));
        }
        sent.extend(messages.into_iter().map(|m| (queue.to_string(), m.body)));
        Ok(())
    }
    async fn receive(
        &self,
        _: &QueueName,
        _: usize,
        _: Duration,
    ) -> Result<Vec<ReceivedMessage>, QueueError> {
        Ok(Vec::new())
    }
    async fn ack(&self, _: &QueueName, _: &str) -> Result<(), QueueError> {
        Ok(())
    }
    async fn change_visibility(
        &self,
        _: &QueueName,
        _: &str,
        _: Duration,
    ) -> Result<(), QueueError> {
        Ok(())
    }
    async fn approximate_depth(&self, _: &QueueName) -> Result<QueueDepth, QueueError> {
        unreachable!("not used")
    }
}

impl Recording {
    fn bodies(&self) -> Vec<String> {
        self.sent
            .lock()
            .unwrap()
            .iter()
            .map(|(_, b)| b.clone())
            .collect()
    }
}

fn msg(body: &str) -> OutgoingMessage {
    OutgoingMessage::new(body).grouped("g1", format!("d-{body}"))
}

async fn setup() -> (tempfile::TempDir, Platform, TenantId) {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::embedded(dir.path()).unwrap();
    let profile = platform
        .tenants
        .create(TenantName::parse("Acme").unwrap(), RetentionDays::default())
        .await
        .unwrap();
    (dir, platform, profile.id)
}

fn inbound() -> QueueName {
    platform::name(platform::INBOUND)
}

#[tokio::test]
async fn held_events_are_released_in_arrival_order_to_their_queues() {
    let (_dir, p, tenant) = setup().await;
    p.tenants
        .suspend(&tenant, "unpaid", "platform_admin")
        .await
        .unwrap();
    let held = HeldEvents::of(&p.tenants);
    let outbound = platform::name(platform::OUTBOUND);
    assert_eq!(
        held.hold(&tenant, &inbound(), vec![msg("a"), msg("b"), msg("c")], 30)
            .await
            .unwrap(),
        3
    );
    held.hold(&tenant, &outbound, vec![msg("reply")], 30)
        .await
        .unwrap();
    held.hold(&tenant, &inbound(), vec![msg("d")], 30)
        .await
        .unwrap();
    assert_eq!(held.count(&tenant).await.unwrap(), 5);

    let queue = Recording::default();
    assert_eq!(held.release(&tenant, &queue, None).await.unwrap(), 5);
    let sent = queue.sent.lock().unwrap().clone();
    let want: Vec<(String, String)> = [
        ("inbound.fifo", "a"),
        ("inbound.fifo", "b"),
        ("inbound.fifo", "c"),
        ("outbound.fifo", "reply"),
        ("inbound.fifo", "d"),
    ]
    .iter()
    .map(|(q, b)| (q.to_string(), b.to_string()))
    .collect();
    assert_eq!(sent, want);
    assert_eq!(held.count(&tenant).await.unwrap(), 0);
    // Nothing left to send: a second release sends nothing.
    assert_eq!(held.release(&tenant, &queue, None).await.unwrap(), 0);
    assert_eq!(queue.bodies().len(), 5);
}

#[tokio::test]
async fn payloads_are_encrypted_at_rest_and_bound_to_their_item() {
    let (_dir, p, tenant) = setup().await;
    p.tenants
        .suspend(&tenant, "unpaid", "platform_admin")
        .await
        .unwrap();
    let held = HeldEvents::of(&p.tenants);
    let secret = "Hi! Do you have the blue sneakers in size 42?";
    let body = format!("{{\"text\":\"{secret}\"}}");
    held.hold(
        &tenant,
        &inbound(),
        vec![OutgoingMessage::new(body.clone()).grouped("grp-visible", "dedup-visible")],
        30,
    )
    .await
    .unwrap();
    let page = p
        .store
        .query(
            Table::Data,
            &Query::partition(tenant.partition()).begins_with(HELD_PREFIX),
        )
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1);
    let raw = serde_json::to_string(&page.items[0]).unwrap();
    for plain in ["sneakers", "grp-visible", "dedup-visible"] {
        assert!(!raw.contains(plain), "{plain} stored in clear");
    }
    assert!(page.items[0].get_n(TTL_ATTR).unwrap() > now_secs() + 29 * 86_400);
    let (events, _) = held.list(&tenant, None, 10).await.unwrap();
    assert_eq!(events[0].message.body, body);
    assert_eq!(events[0].message.group_id.as_deref(), Some("grp-visible"));

    // Moved to another held key, the blob no longer opens: discarded, never sent.
    let mut moved = page.items[0].clone();
    let other = Key::new(tenant.partition(), held_sk(next_micros(), b"abcd"));
    moved.set(crate::store::SK, other.sk.clone());
    p.store.put(Table::Data, moved, None).await.unwrap();
    let queue = Recording::default();
    let report = held
        .release_page(&tenant, &queue, None, None, 10)
        .await
        .unwrap();
    assert_eq!((report.released, report.discarded), (1, 1));
    assert_eq!(queue.bodies(), vec![body]);
}

#[tokio::test]
async fn nothing_is_held_for_an_active_tenant() {
    let (_dir, p, tenant) = setup().await;
    let held = HeldEvents::of(&p.tenants);
    let err = held
        .hold(&tenant, &inbound(), vec![msg("a")], 30)
        .await
        .unwrap_err();
    assert!(matches!(err, HoldError::NotSuspended { held: 0 }), "{err}");
    assert_eq!(held.count(&tenant).await.unwrap(), 0);
}

#[tokio::test]
async fn a_release_that_fails_part_way_resumes_without_loss_or_reordering() {
    let (_dir, p, tenant) = setup().await;
    p.tenants
        .suspend(&tenant, "unpaid", "platform_admin")
        .await
        .unwrap();
    let held = HeldEvents::of(&p.tenants);
    let bodies: Vec<String> = (0..7).map(|i| format!("m{i}")).collect();
    for b in &bodies {
        held.hold(&tenant, &inbound(), vec![msg(b)], 30)
            .await
            .unwrap();
    }
    // The queue takes 4 messages and then fails: pages of 2 → two pages released.
    let flaky = Recording {
        accept: Some(4),
        ..Recording::default()
    };
    let first = held
        .release_page(&tenant, &flaky, None, None, 2)
        .await
        .unwrap();
    assert_eq!(first.released, 2);
    assert!(first.next.is_some());
    let second = held
        .release_page(&tenant, &flaky, None, first.next, 2)
        .await
        .unwrap();
    assert_eq!(second.released, 2);
    let err = held
        .release_page(&tenant, &flaky, None, second.next, 2)
        .await
        .unwrap_err();
    assert!(matches!(err, HoldError::Queue(_)), "{err}");
    assert_eq!(held.count(&tenant).await.unwrap(), 3);

    let queue = Recording::default();
    assert_eq!(held.release(&tenant, &queue, None).await.unwrap(), 3);
    let mut all = flaky.bodies();
    all.extend(queue.bodies());
    assert_eq!(all, bodies);
}

#[tokio::test]
async fn expired_holds_are_skipped_not_a_stop() {
    let (_dir, p, tenant) = setup().await;
    p.tenants
        .suspend(&tenant, "unpaid", "platform_admin")
        .await
        .unwrap();
    let held = HeldEvents::of(&p.tenants);
    // More expired items than a page, before the live ones.
    for i in 0..(DEFAULT_RELEASE_PAGE + 5) {
        let item = held
            .seal(
                &tenant,
                &inbound(),
                &msg(&format!("old{i}")),
                now_secs() - 1,
            )
            .await
            .unwrap();
        p.store.put(Table::Data, item, None).await.unwrap();
    }
    held.hold(&tenant, &inbound(), vec![msg("live1"), msg("live2")], 30)
        .await
        .unwrap();
    let queue = Recording::default();
    assert_eq!(held.release(&tenant, &queue, None).await.unwrap(), 2);
    assert_eq!(queue.bodies(), vec!["live1", "live2"]);
}

#[tokio::test]
async fn a_cutoff_leaves_later_holds_for_the_next_pass() {
    let (_dir, p, tenant) = setup().await;
    p.tenants
        .suspend(&tenant, "unpaid", "platform_admin")
        .await
        .unwrap();
    let held = HeldEvents::of(&p.tenants);
    held.hold(&tenant, &inbound(), vec![msg("before")], 30)
        .await
        .unwrap();
    let cutoff = cutoff_now();
    held.hold(&tenant, &inbound(), vec![msg("after")], 30)
        .await
        .unwrap();
    let queue = Recording::default();
    assert_eq!(
        held.release(&tenant, &queue, Some(&cutoff)).await.unwrap(),
        1
    );
    assert_eq!(queue.bodies(), vec!["before"]);
    assert_eq!(held.count(&tenant).await.unwrap(), 1);
}

#[tokio::test]
async fn suspend_and_resume_are_idempotent_audited_and_release_everything() {
    let (_dir, p, tenant) = setup().await;
    let queue = Arc::new(Recording::default());
    let suspension = Suspension::new(p.tenants.clone(), queue.clone());

    assert!(matches!(
        suspension.suspend(&tenant, " ", "platform_admin").await,
        Err(SuspensionError::Invalid(_))
    ));
    assert!(matches!(
        suspension
            .suspend(&TenantId::generate(), "x", "platform_admin")
            .await,
        Err(SuspensionError::TenantNotFound)
    ));
    let first = suspension
        .suspend(&tenant, "unpaid", "platform_admin")
        .await
        .unwrap();
    assert!(first.changed);
    assert_eq!(first.profile.status, TenantStatus::Suspended);
    assert_eq!(first.profile.suspension_reason.as_deref(), Some("unpaid"));
    let again = suspension
        .suspend(&tenant, "other", "platform_admin")
        .await
        .unwrap();
    assert!(!again.changed);
    assert_eq!(again.profile.suspension_reason.as_deref(), Some("unpaid"));
    assert_eq!(again.profile.suspended_at, first.profile.suspended_at);

    let held = HeldEvents::of(&p.tenants);
    held.hold(&tenant, &inbound(), vec![msg("a"), msg("b")], 30)
        .await
        .unwrap();
    let resumed = suspension.resume(&tenant, "platform_admin").await.unwrap();
    assert!(resumed.changed);
    assert_eq!(resumed.released, 2);
    assert_eq!(resumed.profile.status, TenantStatus::Active);
    assert_eq!(resumed.profile.suspended_at, None);
    assert_eq!(queue.bodies(), vec!["a", "b"]);
    assert_eq!(suspension.held_count(&tenant).await.unwrap(), 0);

    // Leftovers (held by a webhook that raced the flip) go with a resume of an active
    // tenant, which changes nothing else.
    let leftover = HeldEvents::of(&p.tenants);
    let item = leftover
        .seal(&tenant, &inbound(), &msg("late"), now_secs() + 60)
        .await
        .unwrap();
    p.store.put(Table::Data, item, None).await.unwrap();
    let again = suspension.resume(&tenant, "platform_admin").await.unwrap();
    assert_eq!((again.changed, again.released), (false, 1));
    assert_eq!(queue.bodies(), vec!["a", "b", "late"]);

    let log = crate::audit::AuditLog::new(p.store.clone())
        .read(&tenant, None, 10)
        .await
        .unwrap();
    let actions: Vec<&str> = log.entries.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, vec!["tenant_resumed", "tenant_suspended"]);
    assert_eq!(log.entries[1].details["reason"], "unpaid");
    let stored = p
        .store
        .get(
            Table::Data,
            &Key::new(tenant.partition(), crate::tenant::PROFILE_SK),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.get(STATUS_ATTR),
        Some(&AttrValue::S("active".into()))
    );
    assert!(stored.get_n("resumed_at").is_some());
}
