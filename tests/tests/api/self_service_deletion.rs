//! Channels connected through self-service (Embedded Signup, Instagram Login) record the Meta
//! user who authorised them (decision 0072), so Meta's Data Deletion Callback for that user
//! finds them: each is disconnected, our access revoked at Meta with its own token, and the
//! token then deleted; a channel another user authorised stays.

use std::time::Duration;

use e2e_tests::fake_graph::{instagram_app_scoped_id, BusinessToken};
use e2e_tests::harness::Harness;
use reqwest::StatusCode;
use serde_json::{json, Value};
use wappline::tenant::{ChannelKind, ChannelRef};

use crate::connect_setup::admin_post;
use crate::onboarding::{channels, connect_instagram, start};

const PHONE: &str = "106540352242922";
const WABA: &str = "102290129340398";
const TOKEN: &str = "EAAGsignupBUSINESStoken";
/// The user `debug_token` names for the signup's token.
const SIGNUP_USER: &str = "10158376200385746";
const IG: &str = "17841405822304914";

fn routed(h: &Harness, kind: ChannelKind, id: &str) -> impl std::future::Future<Output = bool> {
    let tenants = h.server.platform().tenants.clone();
    let channel = ChannelRef::parse(kind, id).unwrap();
    async move { tenants.resolve(&channel).await.unwrap().is_some() }
}

/// The tenant's revocations once `n` of them are done (the worker revokes as it
/// disconnects).
async fn done_revocations(h: &Harness, t: &str, n: usize) -> Vec<Value> {
    for _ in 0..500 {
        let v = h
            .admin_get(&format!("/admin/tenants/{t}/revocations"))
            .await;
        let all = v["revocations"].as_array().cloned().unwrap_or_default();
        let done: Vec<Value> = all
            .into_iter()
            .filter(|r| r["revocation"] == "done")
            .collect();
        if done.len() >= n {
            return done;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{n} revocations never done");
}

fn revoked_with(h: &Harness, suffix: &str) -> Vec<Option<String>> {
    h.graph
        .calls()
        .iter()
        .filter(|c| c.method == "DELETE" && c.status == 200 && c.path.ends_with(suffix))
        .map(|c| c.bearer.clone())
        .collect()
}

#[tokio::test]
async fn metas_deletion_callback_revokes_channels_connected_through_self_service() {
    let h = start().await;
    let t = h.create_tenant("Acme").await;
    // Embedded Signup: the token `debug_token` says SIGNUP_USER granted.
    let mut token = BusinessToken::for_waba(WABA);
    token.user_id = SIGNUP_USER.to_owned();
    h.graph.add_business_token(TOKEN, token);
    let code = h.graph.issue_signup_code(TOKEN, WABA, PHONE);
    let (status, v) = admin_post(
        &h,
        &format!("/admin/tenants/{t}/onboarding/whatsapp"),
        json!({"event": "FINISH", "code": code, "waba_id": WABA, "phone_number_id": PHONE}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    // Instagram Login: the account's app-scoped user is the one `/me` names as `id`.
    let ig_token = connect_instagram(&h, &t, IG).await;
    let ig_user = instagram_app_scoped_id(IG);

    let recorded: Vec<(String, String)> = channels(&h, &t)
        .await
        .iter()
        .map(|c| {
            (
                c["id"].as_str().unwrap().to_owned(),
                c["authorized_by"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert!(
        recorded.contains(&(PHONE.to_owned(), SIGNUP_USER.to_owned())),
        "{recorded:?}"
    );
    assert!(
        recorded.contains(&(IG.to_owned(), ig_user.clone())),
        "{recorded:?}"
    );

    // The signup's user asks Meta to delete their data: the number goes, the account stays.
    h.deletion_callback(SIGNUP_USER).await;
    let done = done_revocations(&h, &t, 1).await;
    assert_eq!(done.len(), 1, "{done:?}");
    assert_eq!(done[0]["tokens_held"], false, "{done:?}");
    assert!(!routed(&h, ChannelKind::WhatsApp, PHONE).await);
    assert!(routed(&h, ChannelKind::Instagram, IG).await);
    assert_eq!(
        revoked_with(&h, &format!("/{WABA}/subscribed_apps")),
        [Some(TOKEN.to_owned())]
    );
    assert!(revoked_with(&h, "/me/permissions").is_empty());

    // Then the Instagram user: the account is revoked with its long-lived token.
    h.deletion_callback(&ig_user).await;
    let done = done_revocations(&h, &t, 2).await;
    assert!(done.iter().all(|r| r["tokens_held"] == false), "{done:?}");
    assert!(!routed(&h, ChannelKind::Instagram, IG).await);
    assert_eq!(revoked_with(&h, "/me/permissions"), [Some(ig_token)]);
    assert!(channels(&h, &t).await.is_empty());
    h.server.shutdown().await;
}
