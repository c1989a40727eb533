//! Customers' names and pictures in Bitrix24 (issue 16 item 12), on the local server with the
//! fakes: an Instagram customer appears with the name, username and picture of the User
//! Profile API (asked once per refresh interval, stored encrypted, in the export), not as
//! "Instagram"; without consent the message still arrives; a changed profile follows; a
//! WhatsApp customer appears with `contacts[].profile.name`, and a new name follows.

use std::time::Duration;

use e2e_tests::fake_graph::FakeProfile;
use e2e_tests::harness::{contains_bytes, sample, IG_TOKEN};
use e2e_tests::relay_world::RelayWorld;
use serde_json::{json, Value};
use wappline::conversation::{ConversationId, Conversations};
use wappline::crm_sync::CustomerProfiles;
use wappline::graph::{GraphClient, GraphConfig};
use wappline::ids::TenantId;

const IGSID: &str = "1254459154682919";
const PIC: &str = "https://scontent.cdninstagram.com/v/t51/peter.jpg?oe=6A1B2C3D";

/// `name` now, its first message's id set to `id` (and `edit` applied to that message).
fn sample_now(name: &str, id: &str, edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(&sample(name)).unwrap();
    let now = wappline::clock::now_secs();
    if v["object"] == "instagram" {
        v["entry"][0]["messaging"][0]["timestamp"] = json!(now * 1000);
        let m = &mut v["entry"][0]["messaging"][0]["message"];
        m["mid"] = json!(id);
        edit(m);
    } else {
        let m = &mut v["entry"][0]["changes"][0]["value"]["messages"][0];
        m["timestamp"] = json!(now.to_string());
        m["id"] = json!(id);
        edit(&mut v["entry"][0]["changes"][0]["value"]);
    }
    serde_json::to_vec(&v).unwrap()
}

fn peter() -> FakeProfile {
    FakeProfile {
        name: Some("Peter Chang".into()),
        username: Some("peter.chang.35".into()),
        profile_pic: Some(PIC.into()),
    }
}

#[tokio::test]
async fn an_instagram_customer_appears_with_their_profile() {
    let w = RelayWorld::start().await;
    let tenant = TenantId::parse(&w.installed_tenant().await).unwrap();
    w.graph.set_instagram_profile(IGSID, peter());

    let chat = w
        .customer_writes(&sample_now("instagram-text.json", "mid.one", |_| {}))
        .await;
    let got = w.bitrix.messages_received().last().unwrap().raw.clone();
    assert_eq!(got["user"]["name"], "Peter", "{got}");
    assert_eq!(got["user"]["last_name"], "Chang");
    assert_eq!(got["user"]["picture"], json!({ "url": PIC }));
    assert_eq!(
        got["user"]["url"],
        "https://www.instagram.com/peter.chang.35"
    );
    assert_eq!(got["chat"]["name"], "Instagram: @peter.chang.35");
    // Asked of the User Profile API with the account's token, for the three fields.
    let asked: Vec<_> = w
        .graph
        .calls()
        .into_iter()
        .filter(|c| c.method == "GET" && c.path.ends_with(&format!("/{IGSID}")))
        .collect();
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert_eq!(asked[0].bearer.as_deref(), Some(IG_TOKEN));
    assert_eq!(
        asked[0].query.as_deref(),
        Some("fields=name%2Cusername%2Cprofile_pic")
    );

    // Within the refresh interval: not asked again, shown the same.
    w.customer_writes(&sample_now("instagram-text.json", "mid.two", |_| {}))
        .await;
    assert_eq!(w.graph.profile_reads(), 1);
    let got = w.bitrix.messages_received().last().unwrap().raw.clone();
    assert_eq!(got["user"]["picture"], json!({ "url": PIC }));

    // Stored encrypted only.
    for table in wappline::store::Table::ALL {
        for item in w.h.all_items(table).await {
            for needle in ["peter.chang.35", "Peter Chang", "scontent.cdninstagram.com"] {
                assert!(
                    !item
                        .0
                        .values()
                        .any(|v| contains_bytes(v, needle.as_bytes())),
                    "{needle} in clear"
                );
            }
        }
    }

    // The profile changes; once it is asked again (here: a refresh interval of zero), the
    // next message carries the new one, which Bitrix24 updates its user with.
    w.graph.set_instagram_profile(
        IGSID,
        FakeProfile {
            name: Some("Peter Chang-Lee".into()),
            username: Some("peter.cl".into()),
            profile_pic: None,
        },
    );
    let platform = w.h.server.platform();
    let scope = platform.tenants.scope(&tenant).await.unwrap().unwrap();
    let conversations = Conversations::new(
        tenant.clone(),
        platform.store.clone(),
        platform.envelope.clone(),
    );
    let meta = conversations
        .meta(&ConversationId::parse(&chat).unwrap())
        .await
        .unwrap()
        .unwrap();
    let client = GraphClient::new(
        GraphConfig::default()
            .with_base_url(&w.graph.base_url())
            .unwrap(),
    )
    .unwrap();
    let refreshed = CustomerProfiles::new(client.clone(), client)
        .with_refresh(Duration::ZERO)
        .refreshed(&scope, &conversations, &meta)
        .await;
    assert_eq!(
        refreshed
            .profile
            .as_ref()
            .and_then(|p| p.username.as_deref()),
        Some("peter.cl")
    );
    w.customer_writes(&sample_now("instagram-text.json", "mid.three", |_| {}))
        .await;
    let got = w.bitrix.messages_received().last().unwrap().raw.clone();
    assert_eq!(got["user"]["last_name"], "Chang-Lee", "{got}");
    assert!(got["user"].get("picture").is_none(), "{got}");
    assert_eq!(got["user"]["url"], "https://www.instagram.com/peter.cl");
    w.h.server.shutdown().await;
}

#[tokio::test]
async fn without_consent_the_message_still_arrives() {
    let w = RelayWorld::start().await;
    w.installed_tenant().await;
    // No profile at the fake: Meta answers error 230.
    w.customer_writes(&sample_now("instagram-text.json", "mid.one", |_| {}))
        .await;
    let got = w.bitrix.messages_received().last().unwrap().raw.clone();
    assert_eq!(got["user"]["name"], "Instagram", "{got}");
    assert!(got["user"].get("picture").is_none());
    assert_eq!(w.graph.profile_reads(), 0);
    // The refusal is remembered for the interval: not asked on every message.
    let asks = || {
        w.graph
            .calls()
            .into_iter()
            .filter(|c| c.method == "GET" && c.path.ends_with(&format!("/{IGSID}")))
            .count()
    };
    assert_eq!(asks(), 1);
    w.customer_writes(&sample_now("instagram-text.json", "mid.two", |_| {}))
        .await;
    assert_eq!(asks(), 1);
    w.h.server.shutdown().await;
}

#[tokio::test]
async fn a_whatsapp_customer_appears_with_their_profile_name_and_a_new_name_follows() {
    let w = RelayWorld::start().await;
    w.installed_tenant().await;
    w.customer_writes(&sample_now("whatsapp-text.json", "wamid.one", |_| {}))
        .await;
    let got = w.bitrix.messages_received().last().unwrap().raw.clone();
    assert_eq!(got["user"]["name"], "Sheena", "{got}");
    assert_eq!(got["user"]["last_name"], "Nelson");
    w.customer_writes(&sample_now("whatsapp-text.json", "wamid.two", |v| {
        v["contacts"][0]["profile"]["name"] = json!("Sheena Nelson-Smith");
    }))
    .await;
    let got = w.bitrix.messages_received().last().unwrap().raw.clone();
    assert_eq!(got["user"]["last_name"], "Nelson-Smith", "{got}");
    // The same Bitrix24 user, updated.
    let users: std::collections::HashSet<_> = w
        .bitrix
        .messages_received()
        .iter()
        .map(|m| m.bitrix_user_id)
        .collect();
    assert_eq!(users.len(), 1);
    w.h.server.shutdown().await;
}
