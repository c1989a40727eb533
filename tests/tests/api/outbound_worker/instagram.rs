//! Instagram sends: the 24-hour window and the human-agent tag's seven days, and accounts reached
//! through a Facebook Page.

use super::*;

#[tokio::test]
async fn instagram_replies_within_a_day_and_human_agents_within_seven() {
    let w = world().await;
    let conv = w.ig_customer(HOUR).await;
    let photo = w.graph.add_cdn("ig.jpg", "image/jpeg", JPEG);
    w.reply(
        &conv,
        operator(
            "[b]Hi[/b] there",
            vec![OperatorFile {
                url: photo.clone(),
                name: Some("ig.jpg".into()),
                mime_type: Some("image/jpeg".into()),
            }],
            1,
        ),
    )
    .await;
    assert_eq!(w.run().await, vec![Outcome::Done]);
    let sent = w.graph.sent();
    assert_eq!(sent.len(), 2);
    assert_eq!(
        sent[0].path,
        format!("/{}/me/messages", wappline::graph::DEFAULT_VERSION)
    );
    assert_eq!(sent[0].bearer.as_deref(), Some(IG_TOKEN));
    assert_eq!(
        sent[0].body,
        json!({"recipient": {"id": IGSID}, "messaging_type": "RESPONSE", "message": {"text": "Hi there"}})
    );
    assert_eq!(
        sent[1].body["message"],
        json!({"attachment": {"type": "image", "payload": {"url": photo}}})
    );
    assert!(
        w.graph.uploads().is_empty(),
        "Instagram fetches the URL itself"
    );

    // Three days later: a human agent's reply, tagged.
    let conv3 = {
        let c = CustomerRef::new(CustomerId::Instagram(
            InstagramUserId::parse("6927113527316721").unwrap(),
        ));
        w.customer(&ig(), c, 3 * 24 * HOUR).await
    };
    let at = w
        .reply(&conv3, operator("Sorry for the wait", vec![], 2))
        .await;
    assert_eq!(w.run().await, vec![Outcome::Done]);
    let body = &sends(&w.graph)[2];
    assert_eq!(body["messaging_type"], "MESSAGE_TAG");
    assert_eq!(body["tag"], "HUMAN_AGENT");
    assert_eq!(w.message(&at).await.status, Some(MessageStatus::Sent));

    // Eight days: too late even for a human agent.
    let late = {
        let c = CustomerRef::new(CustomerId::Instagram(
            InstagramUserId::parse("55555555").unwrap(),
        ));
        w.customer(&ig(), c, 8 * 24 * HOUR).await
    };
    let at = w.reply(&late, operator("Hello?", vec![], 3)).await;
    assert_eq!(w.run().await, vec![Outcome::Done]);
    assert_eq!(w.graph.sent().len(), 3);
    assert_eq!(w.message(&at).await.status, Some(MessageStatus::Failed));
    let failures: Vec<_> = statuses(&w.sync_jobs().await)
        .into_iter()
        .filter(|(s, _)| *s == MessageStatus::Failed)
        .collect();
    assert_eq!(
        failures,
        vec![(
            MessageStatus::Failed,
            Some(window::INSTAGRAM_OUTSIDE.to_owned())
        )]
    );
}

#[tokio::test]
async fn instagram_through_a_facebook_page_uses_the_page_endpoint() {
    let page = "104102228512371";
    let w = world_with(test_config(), Some(page)).await;
    let conv = w.ig_customer(HOUR).await;
    w.reply(&conv, operator("hello", vec![], 1)).await;
    assert_eq!(w.run().await, vec![Outcome::Done]);
    assert_eq!(
        w.graph.sent()[0].path,
        format!("/{}/{page}/messages", wappline::graph::DEFAULT_VERSION)
    );
}
