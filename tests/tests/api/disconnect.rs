//! Disconnecting a channel through the admin API on the local server: processing stops at
//! once (route and tokens gone), and our app is unsubscribed from the WhatsApp Business
//! Account's webhooks when no other connected number still uses it (decision 0036).

use e2e_tests::harness::{sample, Harness, ADMIN, WABA, WA_NUMBER};
use reqwest::StatusCode;
use serde_json::json;
use wappline::queue::platform;

#[tokio::test]
async fn disconnect_stops_processing_and_unsubscribes_the_last_number_of_a_waba() {
    let h = Harness::start(|_| {}).await;
    let graph = h.graph.clone();
    let tenant = h.tenant_with_channels().await;
    graph.add_whatsapp_business("EAAsecondNUMBER", WABA, "113355779024681");
    h.admin(
        "POST",
        &format!("/admin/tenants/{tenant}/channels/whatsapp"),
        json!({"phone_number_id": "113355779024681", "waba_id": WABA, "access_token": "EAAsecondNUMBER"}),
    )
    .await;
    let delete = |id: &str| {
        let url = format!("{}/admin/tenants/{tenant}/channels/whatsapp/{id}", h.base);
        let http = h.http.clone();
        async move {
            http.delete(url)
                .bearer_auth(ADMIN)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    let unsubscribes = || {
        graph
            .calls()
            .into_iter()
            .filter(|c| c.method == "DELETE" && c.path.ends_with("/subscribed_apps"))
            .collect::<Vec<_>>()
    };

    // The first number goes: the other still needs the WABA's webhooks.
    assert_eq!(delete(WA_NUMBER).await, StatusCode::NO_CONTENT);
    assert!(unsubscribes().is_empty());
    // Its webhooks are no longer processed.
    let (s, v) = h.post_signed(&sample("whatsapp-text.json")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&v).unwrap()["received"],
        0
    );
    assert_eq!(h.depth(platform::INBOUND).await, 0);

    // The last number goes: the app is unsubscribed with that number's token.
    assert_eq!(delete("113355779024681").await, StatusCode::NO_CONTENT);
    let calls = unsubscribes();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].path, format!("/v26.0/{WABA}/subscribed_apps"));
    assert_eq!(calls[0].bearer.as_deref(), Some("EAAsecondNUMBER"));
    // Disconnecting again: 404, nothing called.
    assert_eq!(delete("113355779024681").await, StatusCode::NOT_FOUND);
    assert_eq!(unsubscribes().len(), 1);
    h.server.shutdown().await;
}
