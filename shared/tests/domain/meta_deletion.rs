//! Meta's Data Deletion Callback and the Meta-user erasure on real adapters: a valid signed
//! request is recorded and its job queued; forged or malformed ones record nothing; the
//! erasure disconnects exactly the channels that user authorised (tokens gone, routes free),
//! resumes after a run cut short, and the status page shows state and dates only.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use wappline::app::Platform;
use wappline::audit::AuditLog;
use wappline::erasure::ErasureJob;
use wappline::ids::{MetaUserId, TenantId};
use wappline::meta::AppSecret;
use wappline::meta_deletion::signed_request::sign;
use wappline::meta_deletion::{
    render_status_html, status_json, CallbackError, MetaDeletion, MetaUserErasure, Progress,
    RequestState,
};
use wappline::queue::embedded::EmbeddedQueue;
use wappline::queue::{platform, Queue};
use wappline::store::{AttrValue, Item, Table};
use wappline::tenant::{
    ChannelKind, ChannelRef, Connection, RetentionDays, Secret, TenantError, TenantName,
};

use crate::backends::{sqs_platform_queues, Backend};
use crate::on_both_backends;

const SECRET: &str = "local-dev-app-secret";
const USER: &str = "10158376200385746";
const OTHER_USER: &str = "10158376200999999";

struct World {
    platform: Platform,
    queue: Arc<dyn Queue>,
    deletion: MetaDeletion,
    erasure: MetaUserErasure,
    _qdir: Option<tempfile::TempDir>,
}

async fn world(b: &Backend) -> World {
    let platform = Platform::new(b.store.clone(), b.vault.clone());
    let (queue, qdir): (Arc<dyn Queue>, _) = if b._dir.is_some() {
        let dir = tempfile::tempdir().unwrap();
        (
            Arc::new(EmbeddedQueue::open(dir.path(), platform::specs()).unwrap()),
            Some(dir),
        )
    } else {
        (sqs_platform_queues("mdel").await, None)
    };
    let deletion = MetaDeletion::new(
        vec![AppSecret::new(SECRET).unwrap()],
        b.store.clone(),
        queue.clone(),
        platform::name(platform::ERASURE),
        "https://wappline.example/",
    )
    .unwrap();
    // Meta is not listening: the revocations stay pending (their own tests run against the
    // loopback fakes); the channels are disconnected at once all the same.
    let graph = wappline::graph::GraphClient::new(
        wappline::graph::GraphConfig::default()
            .with_base_url("http://127.0.0.1:9")
            .unwrap(),
    )
    .unwrap();
    let revocations =
        wappline::revocation::Revocations::new(platform.tenants.clone(), graph.clone(), graph);
    let erasure = MetaUserErasure::new(b.store.clone(), platform.tenants.clone(), revocations);
    World {
        platform,
        queue,
        deletion,
        erasure,
        _qdir: qdir,
    }
}

fn form(user: &str) -> String {
    let payload = format!(
        r#"{{"algorithm":"HMAC-SHA256","issued_at":{},"user_id":"{user}"}}"#,
        wappline::clock::now_secs()
    );
    format!(
        "signed_request={}",
        sign(&AppSecret::new(SECRET).unwrap(), &payload)
    )
}

/// Receives (and acknowledges) every message waiting on the erasure queue.
async fn drain(q: &dyn Queue) -> Vec<String> {
    let name = platform::name(platform::ERASURE);
    let mut out = Vec::new();
    loop {
        let got = q.receive(&name, 10, Duration::from_secs(30)).await.unwrap();
        if got.is_empty() {
            return out;
        }
        for m in got {
            q.ack(&name, &m.receipt).await.unwrap();
            out.push(m.body);
        }
    }
}

/// Every item of every table, raw.
async fn everything(b: &Backend) -> Vec<(Table, Item)> {
    let mut out = Vec::new();
    for table in Table::ALL {
        let mut next = None;
        loop {
            let page = b.store.scan(table, next.as_ref(), 100).await.unwrap();
            out.extend(page.items.into_iter().map(|i| (table, i)));
            match page.next {
                Some(k) => next = Some(k),
                None => break,
            }
        }
    }
    out
}

fn mentions(v: &AttrValue, needle: &str) -> bool {
    match v {
        AttrValue::S(s) => s.contains(needle),
        AttrValue::L(l) => l.iter().any(|v| mentions(v, needle)),
        AttrValue::M(m) => m
            .iter()
            .any(|(k, v)| k.contains(needle) || mentions(v, needle)),
        _ => false,
    }
}

fn item_mentions(item: &Item, needle: &str) -> bool {
    item.0
        .iter()
        .any(|(k, v)| k.contains(needle) || mentions(v, needle))
}

async fn tenant(p: &Platform, name: &str) -> TenantId {
    p.tenants
        .create(TenantName::parse(name).unwrap(), RetentionDays::default())
        .await
        .unwrap()
        .id
}

async fn connect(p: &Platform, t: &TenantId, channel: ChannelRef, user: Option<&str>) {
    let mut secrets = BTreeMap::new();
    secrets.insert(
        "access_token",
        Secret::parse(
            "access_token",
            &format!("EAAtoken{}", channel.external_id()),
        )
        .unwrap(),
    );
    p.tenants
        .scope(t)
        .await
        .unwrap()
        .unwrap()
        .connect(Connection {
            channel,
            details: BTreeMap::new(),
            secrets,
            authorized_by: user.map(|u| MetaUserId::parse(u).unwrap()),
        })
        .await
        .unwrap();
}

fn wa(id: &str) -> ChannelRef {
    ChannelRef::parse(ChannelKind::WhatsApp, id).unwrap()
}
fn ig(id: &str) -> ChannelRef {
    ChannelRef::parse(ChannelKind::Instagram, id).unwrap()
}

fn code_of(url: &str) -> String {
    url.split_once("code=").unwrap().1.to_owned()
}

async fn a_valid_request_is_recorded_and_queued(b: Backend) {
    let w = world(&b).await;
    let answer = w.deletion.accept(form(USER).as_bytes()).await.unwrap();
    assert!(answer
        .url
        .starts_with("https://wappline.example/data-deletion/status?code="));
    assert_eq!(code_of(&answer.url), answer.confirmation_code);
    assert_eq!(answer.confirmation_code.len(), 40);
    assert!(answer
        .confirmation_code
        .bytes()
        .all(|c| c.is_ascii_alphanumeric()));
    let status = w
        .deletion
        .status(&answer.confirmation_code)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.state, RequestState::Pending);

    let jobs = drain(w.queue.as_ref()).await;
    assert_eq!(jobs.len(), 1);
    let job = ErasureJob::from_body(&jobs[0]).unwrap();
    assert!(jobs[0].contains(r#""kind":"meta_user""#));

    // The code is stored only hashed.
    let all = everything(&b).await;
    assert!(!all
        .iter()
        .any(|(_, i)| item_mentions(i, &answer.confirmation_code)));

    // A second callback while pending joins the request: a new code, the same status.
    let again = w.deletion.accept(form(USER).as_bytes()).await.unwrap();
    assert_ne!(again.confirmation_code, answer.confirmation_code);
    let jobs = drain(w.queue.as_ref()).await;
    assert_eq!(ErasureJob::from_body(&jobs[0]).unwrap(), job);
    assert!(w
        .deletion
        .status(&again.confirmation_code)
        .await
        .unwrap()
        .is_some());

    // Unknown and malformed codes show nothing.
    assert!(w.deletion.status(&"0".repeat(40)).await.unwrap().is_none());
    assert!(w.deletion.status("../../etc").await.unwrap().is_none());
}

async fn forged_and_malformed_requests_record_nothing(b: Backend) {
    let w = world(&b).await;
    let before = everything(&b).await.len();
    let good = form(USER);
    let (_, signed) = good.split_once('=').unwrap();
    let (sig, _) = signed.split_once('.').unwrap();
    let other_payload = form(OTHER_USER);
    let (_, other_payload) = other_payload.split_once('.').unwrap();
    let forged_other_secret = format!(
        "signed_request={}",
        sign(
            &AppSecret::new("not-our-secret").unwrap(),
            &format!(r#"{{"algorithm":"HMAC-SHA256","user_id":"{USER}"}}"#)
        )
    );
    let wrong_algorithm = format!(
        "signed_request={}",
        sign(
            &AppSecret::new(SECRET).unwrap(),
            &format!(r#"{{"algorithm":"HMAC-SHA1","user_id":"{USER}"}}"#)
        )
    );
    let bodies = [
        format!("signed_request={sig}.{other_payload}"),
        forged_other_secret,
        wrong_algorithm,
        "signed_request=".to_owned(),
        "signed_request=abc".to_owned(),
        "signed_request=%ZZ".to_owned(),
        "user_id=1".to_owned(),
        format!("signed_request={}", "A".repeat(9000)),
    ];
    for body in &bodies {
        match w.deletion.accept(body.as_bytes()).await {
            Err(CallbackError::Rejected(_)) => {}
            other => panic!("{body:.60} gave {other:?}"),
        }
    }
    assert_eq!(everything(&b).await.len(), before);
    assert!(drain(w.queue.as_ref()).await.is_empty());
}

async fn erasure_removes_exactly_that_users_channels(b: Backend) {
    let w = world(&b).await;
    let p = &w.platform;
    let (alpha, beta) = (tenant(p, "Alpha").await, tenant(p, "Beta").await);
    connect(p, &alpha, wa("106540352242922"), Some(USER)).await;
    connect(p, &alpha, ig("17841405822304914"), Some(USER)).await;
    connect(p, &alpha, wa("106540352242933"), Some(OTHER_USER)).await;
    connect(p, &alpha, wa("106540352242944"), None).await;
    connect(p, &beta, wa("206540352242922"), Some(USER)).await;
    connect(p, &beta, wa("206540352242933"), Some(OTHER_USER)).await;
    // Reconnected by another user: no longer this user's.
    connect(p, &beta, ig("27841405822304914"), Some(USER)).await;
    connect(p, &beta, ig("27841405822304914"), Some(OTHER_USER)).await;
    assert_eq!(
        p.tenants
            .channels_authorized_by(&MetaUserId::parse(USER).unwrap())
            .await
            .unwrap()
            .len(),
        3
    );

    let answer = w.deletion.accept(form(USER).as_bytes()).await.unwrap();
    let job = ErasureJob::from_body(&drain(w.queue.as_ref()).await[0]).unwrap();
    assert!(matches!(
        w.erasure.process(job.request_id()).await.unwrap(),
        Progress::Completed {
            channels_disconnected: 3
        }
    ));

    let gone = [
        (alpha.clone(), wa("106540352242922")),
        (alpha.clone(), ig("17841405822304914")),
        (beta.clone(), wa("206540352242922")),
    ];
    let kept = [
        (alpha.clone(), wa("106540352242933")),
        (alpha.clone(), wa("106540352242944")),
        (beta.clone(), wa("206540352242933")),
        (beta.clone(), ig("27841405822304914")),
    ];
    for (_, c) in &gone {
        assert_eq!(p.tenants.resolve(c).await.unwrap(), None, "{c:?} route");
    }
    for (t, c) in &kept {
        assert_eq!(p.tenants.resolve(c).await.unwrap().as_ref(), Some(t));
        let scope = p.tenants.scope(t).await.unwrap().unwrap();
        assert!(scope.channel_secret(c, "access_token").await.is_ok());
    }
    // Raw scan: nothing of the erased channels (but the audit log's record of their
    // disconnection), nor the user id, is left anywhere.
    let all = everything(&b).await;
    // The revocation record names the channel it revokes, like the audit entry, and so does
    // its pending entry while Meta (not listening here) has not answered (decision 0036).
    let is_audit = |i: &Item| {
        i.get_s("pk").is_some_and(|pk| {
            pk.ends_with("#AUDIT") || pk.ends_with("#REVOKE") || pk == "REVOKE#PENDING"
        })
    };
    for (_, c) in &gone {
        assert!(
            !all.iter()
                .any(|(_, i)| !is_audit(i) && item_mentions(i, c.external_id())),
            "{c:?} left behind"
        );
    }
    assert!(!all.iter().any(|(_, i)| item_mentions(i, USER)));
    for (_, c) in &kept {
        assert!(all.iter().any(|(_, i)| item_mentions(i, c.external_id())));
    }
    assert!(all.iter().any(|(_, i)| item_mentions(i, OTHER_USER)));

    let status = w
        .deletion
        .status(&answer.confirmation_code)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.state, RequestState::Completed);
    assert!(status.completed_at.is_some());

    // Each affected tenant's audit log names the request and its completion.
    let audit = AuditLog::new(b.store.clone());
    for t in [&alpha, &beta] {
        let actions: Vec<String> = audit
            .read(t, None, 50)
            .await
            .unwrap()
            .entries
            .into_iter()
            .filter(|e| e.actor == "meta")
            .map(|e| e.action)
            .collect();
        assert!(
            actions.contains(&"erasure_requested".to_owned()),
            "{actions:?}"
        );
        assert!(
            actions.contains(&"erasure_completed".to_owned()),
            "{actions:?}"
        );
    }

    // Redelivered: nothing more to do. A new callback opens a new request.
    assert!(matches!(
        w.erasure.process(job.request_id()).await.unwrap(),
        Progress::Completed { .. }
    ));
    let next = w.deletion.accept(form(USER).as_bytes()).await.unwrap();
    let status = w
        .deletion
        .status(&next.confirmation_code)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.state, RequestState::Pending);
    // The erased ids can be connected again.
    connect(p, &beta, wa("106540352242922"), None).await;
}

async fn a_run_cut_short_is_finished_by_the_next(b: Backend) {
    let w = world(&b).await;
    let p = &w.platform;
    let (alpha, beta) = (tenant(p, "Alpha").await, tenant(p, "Beta").await);
    connect(p, &alpha, wa("106540352242922"), Some(USER)).await;
    connect(p, &alpha, wa("106540352242955"), Some(USER)).await;
    connect(p, &beta, wa("206540352242922"), Some(USER)).await;
    connect(p, &beta, wa("206540352242933"), Some(OTHER_USER)).await;
    let answer = w.deletion.accept(form(USER).as_bytes()).await.unwrap();
    let job = ErasureJob::from_body(&drain(w.queue.as_ref()).await[0]).unwrap();

    // Stops after the first channel, as a crash would.
    assert_eq!(
        w.erasure.process_steps(job.request_id(), 1).await.unwrap(),
        Progress::Partial {
            channels_disconnected: 1
        }
    );
    let mid = w
        .deletion
        .status(&answer.confirmation_code)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(mid.state, RequestState::InProgress);
    assert!(mid.started_at.is_some() && mid.completed_at.is_none());
    let user = MetaUserId::parse(USER).unwrap();
    assert_eq!(
        p.tenants.channels_authorized_by(&user).await.unwrap().len(),
        2
    );
    // The status page never shows the user.
    assert!(!render_status_html(&mid).contains(USER));
    assert!(!status_json(&mid).to_string().contains(USER));

    // Another step, then the rest.
    assert!(matches!(
        w.erasure.process_steps(job.request_id(), 1).await.unwrap(),
        Progress::Partial { .. }
    ));
    assert!(matches!(
        w.erasure.process(job.request_id()).await.unwrap(),
        Progress::Completed { .. }
    ));
    assert!(p
        .tenants
        .channels_authorized_by(&user)
        .await
        .unwrap()
        .is_empty());
    for c in ["106540352242922", "106540352242955", "206540352242922"] {
        assert_eq!(p.tenants.resolve(&wa(c)).await.unwrap(), None);
    }
    assert_eq!(
        p.tenants.resolve(&wa("206540352242933")).await.unwrap(),
        Some(beta.clone())
    );
    let done = w
        .deletion
        .status(&answer.confirmation_code)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done.state, RequestState::Completed);
    assert_eq!(done.requested_at, mid.requested_at);
    let html = render_status_html(&done);
    assert!(html.contains("completed"));
    assert!(!html.contains(USER));
    let json = status_json(&done);
    assert_eq!(json["state"], "completed");
    assert!(json["completed_at"].as_str().unwrap().ends_with('Z'));
    assert!(!json.to_string().contains(USER));
    assert!(!everything(&b)
        .await
        .iter()
        .any(|(_, i)| item_mentions(i, USER)));

    // Each tenant's audit log has each of the two erasure entries once.
    let audit = AuditLog::new(b.store.clone());
    for t in [&alpha, &beta] {
        let entries = audit.read(t, None, 50).await.unwrap().entries;
        for action in ["erasure_requested", "erasure_completed"] {
            assert_eq!(
                entries.iter().filter(|e| e.action == action).count(),
                1,
                "{action} in {t}"
            );
        }
    }
}

async fn disconnect_keeps_the_index_in_step(b: Backend) {
    let p = Platform::new(b.store.clone(), b.vault.clone());
    let t = tenant(&p, "Alpha").await;
    let user = MetaUserId::parse(USER).unwrap();
    connect(&p, &t, wa("106540352242922"), Some(USER)).await;
    let scope = p.tenants.scope(&t).await.unwrap().unwrap();
    assert_eq!(
        p.tenants.channels_authorized_by(&user).await.unwrap(),
        vec![(t.clone(), wa("106540352242922"))]
    );
    scope.disconnect(&wa("106540352242922")).await.unwrap();
    assert!(p
        .tenants
        .channels_authorized_by(&user)
        .await
        .unwrap()
        .is_empty());
    assert!(matches!(
        scope.disconnect(&wa("106540352242922")).await,
        Err(TenantError::ChannelNotFound(_))
    ));
}

async fn concurrent_callbacks_of_one_user_make_one_request(b: Backend) {
    let w = world(&b).await;
    let body = form(USER);
    let (x, y, z) = tokio::join!(
        w.deletion.accept(body.as_bytes()),
        w.deletion.accept(body.as_bytes()),
        w.deletion.accept(body.as_bytes()),
    );
    let codes: Vec<String> = [x, y, z]
        .into_iter()
        .map(|a| a.unwrap().confirmation_code)
        .collect();
    let requests: Vec<Item> = everything(&b)
        .await
        .into_iter()
        .filter(|(_, i)| i.get_s("pk").is_some_and(|pk| pk.starts_with("MDEL#")))
        .map(|(_, i)| i)
        .collect();
    assert_eq!(requests.len(), 1);
    for code in &codes {
        assert!(w.deletion.status(code).await.unwrap().is_some());
    }
    let jobs: std::collections::BTreeSet<String> =
        drain(w.queue.as_ref()).await.into_iter().collect();
    assert_eq!(jobs.len(), 1, "{jobs:?}");
}

on_both_backends!(
    concurrent_callbacks_of_one_user_make_one_request,
    a_valid_request_is_recorded_and_queued,
    forged_and_malformed_requests_record_nothing,
    erasure_removes_exactly_that_users_channels,
    a_run_cut_short_is_finished_by_the_next,
    disconnect_keeps_the_index_in_step,
);
