//! Meta's data deletion on the local server: channels connected through the admin API with
//! the Meta user who authorised them, a signed deletion request, the erasure, then a scan of
//! every table of the server's store: nothing of the erased channels (tokens, routes, the
//! user id) is left, everything of the other user's and the other tenant's is; forged
//! requests record nothing; the status page shows state and dates only.
//!
//! The callback and the erasure run through the domain services on the server's own store
//! (the same code the data-deletion function and the erasure worker run).

use std::sync::Arc;

use e2e_tests::harness::{contains_bytes, Harness, APP_SECRET};
use serde_json::json;
use wappline::audit::AuditLog;
use wappline::erasure::ErasureJob;
use wappline::ids::TenantId;
use wappline::meta::AppSecret;
use wappline::meta_deletion::signed_request::sign;
use wappline::meta_deletion::{
    render_status_html, status_json, CallbackError, MetaDeletion, MetaUserErasure, Progress,
    RequestState,
};
use wappline::queue::embedded::EmbeddedQueue;
use wappline::queue::{platform, Queue};
use wappline::store::{Item, Table};

const USER: &str = "10158376200385746";
const OTHER_USER: &str = "10158376200999999";

async fn everything(h: &Harness) -> Vec<Item> {
    let mut out = Vec::new();
    for table in Table::ALL {
        out.extend(h.all_items(table).await);
    }
    out
}

fn mentions(item: &Item, needle: &str) -> bool {
    item.0
        .iter()
        .any(|(k, v)| k.contains(needle) || contains_bytes(v, needle.as_bytes()))
}

/// The audit log, and the revocation records (decision 0036), name the disconnected channel
/// (never a token or the user).
fn is_audit(item: &Item) -> bool {
    item.get_s("pk")
        .is_some_and(|pk| pk.ends_with("#AUDIT") || pk.ends_with("#REVOKE"))
}

fn form(secret: &str, user: &str) -> String {
    format!(
        "signed_request={}",
        sign(
            &AppSecret::new(secret).unwrap(),
            &format!(r#"{{"algorithm":"HMAC-SHA256","issued_at":1795460400,"user_id":"{user}"}}"#)
        )
    )
}

#[tokio::test]
async fn a_meta_users_channels_are_erased_and_nothing_else() {
    let h = Harness::start(|_| {}).await;
    let platform_ = h.server.platform().clone();
    let qdir = tempfile::tempdir().unwrap();
    let queue = Arc::new(EmbeddedQueue::open(qdir.path(), platform::specs()).unwrap());
    let deletion = MetaDeletion::new(
        vec![AppSecret::new(APP_SECRET).unwrap()],
        platform_.store.clone(),
        queue.clone(),
        platform::name(platform::ERASURE),
        &h.base,
    )
    .unwrap();
    let erasure = MetaUserErasure::new(
        platform_.store.clone(),
        platform_.tenants.clone(),
        e2e_tests::harness::revocations_at(&h),
    );

    let mut tenants = Vec::new();
    for name in ["Alpha", "Beta"] {
        tenants.push(h.create_tenant(name).await);
    }
    let connect = |tenant: String, number: &'static str, user: Option<&'static str>| {
        let h = &h;
        async move {
            let mut body = json!({
                "phone_number_id": number,
                "waba_id": "102290129340398",
                "access_token": format!("EAAtoken{number}"),
            });
            if let Some(u) = user {
                body["authorized_by"] = json!(u);
            }
            h.graph
                .add_whatsapp_business(&format!("EAAtoken{number}"), "102290129340398", number);
            h.admin(
                "POST",
                &format!("/admin/tenants/{tenant}/channels/whatsapp"),
                body,
            )
            .await;
        }
    };
    connect(tenants[0].clone(), "106540352242922", Some(USER)).await;
    connect(tenants[0].clone(), "106540352242933", Some(OTHER_USER)).await;
    connect(tenants[1].clone(), "206540352242922", Some(USER)).await;
    connect(tenants[1].clone(), "206540352242933", None).await;

    // Forged requests: refused, nothing written.
    let before = everything(&h).await.len();
    for body in [
        form("not-the-app-secret", USER),
        form(APP_SECRET, USER).replace("signed_request=", "signed_request=x"),
        "signed_request=not.signed".to_owned(),
    ] {
        assert!(matches!(
            deletion.accept(body.as_bytes()).await,
            Err(CallbackError::Rejected(_))
        ));
    }
    assert_eq!(everything(&h).await.len(), before);

    let answer = deletion
        .accept(form(APP_SECRET, USER).as_bytes())
        .await
        .unwrap();
    assert!(answer
        .url
        .starts_with(&format!("{}/data-deletion/status?code=", h.base)));
    let pending = deletion
        .status(&answer.confirmation_code)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(pending.state, RequestState::Pending);
    assert!(!render_status_html(&pending).contains(USER));

    let name = platform::name(platform::ERASURE);
    let msg = queue
        .receive(&name, 1, std::time::Duration::from_secs(30))
        .await
        .unwrap()
        .remove(0);
    let job = ErasureJob::from_body(&msg.body).unwrap();
    // Cut short after one channel, as a crash would; the redelivery finishes.
    assert!(matches!(
        erasure.process_steps(job.request_id(), 1).await.unwrap(),
        Progress::Partial { .. }
    ));
    assert!(matches!(
        erasure.process(job.request_id()).await.unwrap(),
        Progress::Completed { .. }
    ));

    let all = everything(&h).await;
    for gone in [
        "106540352242922",
        "206540352242922",
        "EAAtoken106540352242922",
    ] {
        assert!(
            !all.iter().any(|i| !is_audit(i) && mentions(i, gone)),
            "{gone} left behind"
        );
    }
    assert!(
        !all.iter().any(|i| mentions(i, USER)),
        "user id left behind"
    );
    for kept in ["106540352242933", "206540352242933", OTHER_USER] {
        assert!(all.iter().any(|i| mentions(i, kept)), "{kept} lost");
    }
    // The freed number can be connected again, by another tenant.
    connect(tenants[1].clone(), "106540352242922", None).await;

    let done = deletion
        .status(&answer.confirmation_code)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done.state, RequestState::Completed);
    let json = status_json(&done);
    assert!(!json.to_string().contains(USER));
    assert_eq!(json["state"], "completed");

    // Each tenant's audit log records the erasure, without the user.
    let audit = AuditLog::new(platform_.store.clone());
    for t in &tenants {
        let t = TenantId::parse(t).unwrap();
        let entries = audit.read(&t, None, 100).await.unwrap().entries;
        let text = serde_json::to_string(&entries).unwrap();
        assert!(text.contains("erasure_requested"), "{text}");
        assert!(text.contains("erasure_completed"), "{text}");
        assert!(!text.contains(USER));
    }
}
