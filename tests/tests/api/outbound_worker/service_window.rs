//! WhatsApp's customer service window: a reply outside it is refused with a note naming the
//! templates that could go instead, templates go out any time while free-form API text does
//! not, and authentication templates are refused up front for customers known only by BSUID.

use super::*;

#[tokio::test]
async fn a_reply_outside_the_window_is_not_sent_and_explained() {
    let w = world().await;
    let conv = w.wa_customer(25 * HOUR).await;
    let at = w
        .reply(&conv, operator("Are you still there?", vec![], 1))
        .await;
    assert_eq!(w.run().await, vec![Outcome::Done]);
    assert!(w.graph.sent().is_empty(), "nothing may reach Meta");
    assert_eq!(w.message(&at).await.status, Some(MessageStatus::Failed));
    // The note says why, and which templates could go instead (none synced here; decision
    // 0050).
    assert_eq!(
        statuses(&w.sync_jobs().await),
        vec![(
            MessageStatus::Failed,
            Some(format!(
                "{}; no approved templates are available for this number",
                window::WHATSAPP_OUTSIDE
            ))
        )]
    );
    assert_eq!(
        window::WHATSAPP_OUTSIDE,
        "outside WhatsApp's 24-hour customer service window: send an approved template"
    );
    // Nothing is left to retry.
    assert!(w.run().await.is_empty());
}

#[tokio::test]
async fn templates_go_out_any_time_free_form_api_text_does_not() {
    let w = world().await;
    let to = CustomerId::WhatsAppPhone(WhatsAppPhone::parse("+16505559876").unwrap());
    let template = TemplateMessage {
        name: "order_update".into(),
        language: "en_US".into(),
        components: json!([{"type": "body", "parameters": [{"type": "text", "text": "A-1001"}]}]),
        category: None,
    };
    let accepted = w
        .intake
        .accept_api_message(
            &w.platform.tenants,
            &w.tenant,
            &wa(),
            to.clone(),
            ApiMessage::Template(template),
            "req-1",
        )
        .await
        .unwrap();
    assert_eq!(w.run().await, vec![Outcome::Done]);
    let body = &sends(&w.graph)[0];
    assert_eq!(body["to"], "16505559876");
    assert_eq!(body["type"], "template");
    assert_eq!(
        body["template"],
        json!({
            "name": "order_update",
            "language": {"code": "en_US"},
            "components": [{"type": "body", "parameters": [{"type": "text", "text": "A-1001"}]}]
        })
    );
    assert_eq!(
        w.message(&accepted.message).await.status,
        Some(MessageStatus::Sent)
    );

    // Free-form text to a customer who never wrote: refused before Meta.
    let accepted = w
        .intake
        .accept_api_message(
            &w.platform.tenants,
            &w.tenant,
            &wa(),
            to,
            ApiMessage::Text("hello".into()),
            "req-2",
        )
        .await
        .unwrap();
    assert_eq!(w.run().await, vec![Outcome::Done]);
    assert_eq!(w.graph.sent().len(), 1);
    assert_eq!(
        w.message(&accepted.message).await.status,
        Some(MessageStatus::Failed)
    );
}

/// Meta does not deliver authentication templates to a business-scoped user id (131062): to a
/// customer known only by BSUID the send is refused before the call, with the reason for the
/// operator's note; to one whose phone is known it goes by phone.
#[tokio::test]
async fn authentication_templates_are_refused_up_front_for_bsuid_only_customers() {
    let w = world().await;
    let otp = TemplateMessage {
        name: "login_code".into(),
        language: "en_US".into(),
        components: json!([{"type": "body", "parameters": [{"type": "text", "text": "482913"}]}]),
        category: Some("AUTHENTICATION".into()),
    };
    let send = |to: CustomerId, request: &'static str| {
        let w = &w;
        let otp = otp.clone();
        async move {
            w.intake
                .accept_api_message(
                    &w.platform.tenants,
                    &w.tenant,
                    &wa(),
                    to,
                    ApiMessage::Template(otp),
                    request,
                )
                .await
                .unwrap()
        }
    };
    let bsuid_only = CustomerId::WhatsAppUser(WhatsAppUserId::parse(BSUID_ONLY).unwrap());
    let accepted = send(bsuid_only, "otp-1").await;
    assert_eq!(w.run().await, vec![Outcome::Done]);
    assert!(w.graph.sent().is_empty(), "nothing may reach Meta");
    assert_eq!(
        w.message(&accepted.message).await.status,
        Some(MessageStatus::Failed)
    );
    let reasons = statuses(&w.sync_jobs().await);
    assert_eq!(reasons.len(), 1);
    assert!(
        reasons[0].1.as_deref().unwrap().starts_with("131062: "),
        "{reasons:?}"
    );

    // The same template to a customer whose phone is known goes out, by phone.
    let phone = CustomerId::WhatsAppPhone(WhatsAppPhone::parse("+16505559876").unwrap());
    let accepted = send(phone, "otp-2").await;
    assert_eq!(w.run().await, vec![Outcome::Done]);
    let body = &sends(&w.graph)[0];
    assert_eq!(body["to"], "16505559876");
    assert_eq!(body["template"]["name"], "login_code");
    assert!(body["template"].get("category").is_none(), "{body}");
    assert_eq!(
        w.message(&accepted.message).await.status,
        Some(MessageStatus::Sent)
    );
}
