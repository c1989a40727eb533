//! Events borrowed from the body (decision 0103): the intake seals them without copying
//! their strings, so the split must hand out references into the body, not copies.

use std::borrow::Cow;

use super::*;

/// Whether `s` lies within `body`.
fn within(body: &[u8], s: &str) -> bool {
    let range = body.as_ptr_range();
    range.contains(&s.as_ptr()) && s.len() <= range.end as usize - s.as_ptr() as usize
}

#[test]
fn a_text_messages_strings_point_into_the_body() {
    let body = std::fs::read(samples_dir().join("whatsapp-text.json")).unwrap();
    let batch = split_webhook_borrowed(&body).unwrap();
    let [event] = batch.events.as_slice() else {
        panic!("one event: {:?}", batch.events);
    };
    assert!(within(&body, event.account.id()), "account copied");
    let EventKind::CustomerMessage {
        customer,
        message_id,
        content: Content::Text { body: text },
        ..
    } = &event.kind
    else {
        panic!("a text message: {event:?}");
    };
    assert!(within(&body, message_id.as_str()), "message id copied");
    assert!(within(&body, customer.id.as_str()), "customer id copied");
    let phone = customer.phone.as_ref().expect("a phone");
    assert!(within(&body, phone.as_str()), "phone copied");
    assert!(
        matches!(&customer.name, Some(Cow::Borrowed(n)) if within(&body, n)),
        "name copied: {:?}",
        customer.name
    );
    assert!(
        matches!(text, Cow::Borrowed(t) if within(&body, t)),
        "text copied"
    );
    // Only the provider id is built (joined from its parts).
    assert!(matches!(event.provider_event_id, Cow::Owned(_)));
}

#[test]
fn a_status_and_a_phone_with_a_plus_borrow_too() {
    // The phone is kept without its `+`: a slice of the body's string, still borrowed.
    let body = format!(
        r#"{{"object":"whatsapp_business_account","entry":[{{"id":"1","changes":[{{"field":"messages",
        "value":{{"metadata":{{"phone_number_id":"{PNID}"}},
        "statuses":[{{"id":"wamid.S1","status":"delivered","timestamp":"{TS}","recipient_id":"+{PHONE}",
        "pricing":{{"billable":true,"pricing_model":"PMP","category":"utility"}}}}]}}}}]}}]}}"#
    );
    let batch = split_webhook_borrowed(body.as_bytes()).unwrap();
    let [event] = batch.events.as_slice() else {
        panic!("one event: {:?}", batch.events);
    };
    let EventKind::Status {
        message_id,
        recipient: Some(recipient),
        billing: Some(billing),
        ..
    } = &event.kind
    else {
        panic!("a status: {event:?}");
    };
    let body = body.as_bytes();
    assert!(within(body, message_id.as_str()));
    assert_eq!(recipient.id.as_str(), PHONE);
    assert!(within(body, recipient.id.as_str()), "phone copied");
    assert!(matches!(&billing.category, Some(Cow::Borrowed(c)) if within(body, c)));
    // And the owned split gives the same event.
    assert_eq!(
        serde_json::to_string(event).unwrap(),
        serde_json::to_string(&split_webhook(body).unwrap().events[0]).unwrap()
    );
}

#[test]
fn an_escaped_string_is_the_one_copied() {
    // serde_json cannot borrow a string with an escape: that one is unescaped into a copy,
    // with the same text the owned split gives.
    let body = format!(
        r#"{{"object":"whatsapp_business_account","entry":[{{"id":"1","changes":[{{"field":"messages",
        "value":{{"metadata":{{"phone_number_id":"{PNID}"}},"contacts":[{{"wa_id":"{PHONE}","profile":{{"name":"Ren\u00e9e"}}}}],
        "messages":[{{"id":"wamid.E1","from":"{PHONE}","timestamp":"{TS}","type":"text","text":{{"body":"a\/b"}}}}]}}}}]}}]}}"#
    );
    let batch = split_webhook_borrowed(body.as_bytes()).unwrap();
    let EventKind::CustomerMessage {
        customer,
        content: Content::Text { body: text },
        ..
    } = &batch.events[0].kind
    else {
        panic!("a text message: {:?}", batch.events);
    };
    assert!(matches!(&customer.name, Some(Cow::Owned(n)) if n == "Renée"));
    assert!(matches!(text, Cow::Owned(t) if t == "a/b"));
    assert!(within(body.as_bytes(), customer.id.as_str()));
    assert_eq!(
        serde_json::to_string(&batch.events[0]).unwrap(),
        serde_json::to_string(&split_webhook(body.as_bytes()).unwrap().events[0]).unwrap()
    );
}
