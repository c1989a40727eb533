//! The expectations of the samples: WhatsApp messages.

use super::*;

pub(super) fn wa_text(b: &WebhookBatch) {
    let m = wa_single(b);
    assert_eq!(m.id, WAMID_TEXT);
    assert_eq!(
        text(m.content),
        "Hi! Do you have the blue sneakers in size 42?"
    );
    assert!(m.reply_to.is_none() && m.referral.is_none() && !m.forwarded);
    assert_eq!(m.customer.id.key(), format!("bsuid:{BSUID}"));
}

pub(super) fn wa_text_reply(b: &WebhookBatch) {
    let m = wa_single(b);
    assert_eq!(text(m.content), "Yes, that one please");
    assert_eq!(reply_to_message(m.reply_to), WAMID_BIZ_OFFER);
}

pub(super) fn wa_forwarded(b: &WebhookBatch) {
    assert_eq!(b.events.len(), 2);
    let a = incoming(&b.events[0]);
    assert!(a.forwarded && !a.frequently_forwarded);
    assert!(a.reply_to.is_none(), "a forward is not a reply");
    let f = incoming(&b.events[1]);
    assert!(f.forwarded && f.frequently_forwarded);
    assert_eq!(b.events[1].timestamp, Some(TS + 5));
}

pub(super) fn wa_image(b: &WebhookBatch) {
    let m = wa_single(b);
    assert_eq!(m.id, WAMID_IMAGE);
    let img = media(m.content);
    assert_eq!(img.kind, MediaKind::Image);
    assert_eq!(img.caption.as_deref(), Some("This one, in red"));
    assert_eq!(img.mime_type.as_deref(), Some("image/jpeg"));
    assert!(img
        .media_id
        .as_deref()
        .unwrap()
        .bytes()
        .all(|c| c.is_ascii_digit()));
    assert!(img
        .url
        .as_deref()
        .unwrap()
        .starts_with("https://lookaside.fbsbx.com/"));
    assert!(img.sha256.is_some());
    assert_eq!(m.content.text_for_crm(), "This one, in red");
}

pub(super) fn wa_audio(b: &WebhookBatch) {
    let a = media(wa_single(b).content).clone();
    assert_eq!(a.kind, MediaKind::Audio);
    assert!(a.voice);
    assert_eq!(a.mime_type.as_deref(), Some("audio/ogg; codecs=opus"));
    assert_eq!(Content::Media(a).text_for_crm(), "[voice message]");
}

pub(super) fn wa_video(b: &WebhookBatch) {
    let v = media(wa_single(b).content);
    assert_eq!(v.kind, MediaKind::Video);
    assert_eq!(v.caption.as_deref(), Some("Unboxing"));
}

pub(super) fn wa_document(b: &WebhookBatch) {
    let d = media(wa_single(b).content);
    assert_eq!(d.kind, MediaKind::Document);
    assert_eq!(d.filename.as_deref(), Some("invoice-2026-001.pdf"));
    assert_eq!(d.mime_type.as_deref(), Some("application/pdf"));
    assert_eq!(d.caption.as_deref(), Some("My invoice"));
}

pub(super) fn wa_sticker(b: &WebhookBatch) {
    let s = media(wa_single(b).content);
    assert_eq!(s.kind, MediaKind::Sticker);
    assert!(!s.animated);
    assert_eq!(s.mime_type.as_deref(), Some("image/webp"));
}

pub(super) fn wa_location(b: &WebhookBatch) {
    match wa_single(b).content {
        Content::Location(l) => {
            assert_eq!(l.latitude, Some(37.483307));
            assert_eq!(l.longitude, Some(-122.148981));
            assert_eq!(l.name.as_deref(), Some("Philz Coffee"));
            assert_eq!(
                l.address.as_deref(),
                Some("1 Hacker Way, Menlo Park, CA 94025")
            );
        }
        other => panic!("{other:?}"),
    }
}

pub(super) fn wa_contacts(b: &WebhookBatch) {
    match wa_single(b).content {
        Content::Contacts { contacts } => {
            assert_eq!(contacts.len(), 1);
            let c = &contacts[0];
            assert_eq!(c.name.as_deref(), Some("Barbara J. Johnson"));
            assert_eq!(c.phones.len(), 2);
            assert_eq!(c.phones[0].wa_id.as_deref(), Some("19405551234"));
            assert_eq!(c.phones[1].phone_type.as_deref(), Some("WORK"));
            assert_eq!(c.emails, ["bjohnson@example.com"]);
            assert_eq!(c.organization.as_deref(), Some("Lucky Shrub"));
            assert_eq!(c.urls, ["https://www.luckyshrub.com"]);
        }
        other => panic!("{other:?}"),
    }
}

pub(super) fn interactive(c: &Content) -> (&str, Option<&str>, Option<&str>, Option<&str>) {
    match c {
        Content::InteractiveReply {
            reply_type,
            id,
            title,
            response_json,
            ..
        } => (
            reply_type.as_str(),
            id.as_deref(),
            title.as_deref(),
            response_json.as_deref(),
        ),
        other => panic!("not an interactive reply: {other:?}"),
    }
}

pub(super) fn wa_button_reply(b: &WebhookBatch) {
    let m = wa_single(b);
    assert_eq!(
        interactive(m.content),
        ("button_reply", Some("cancel-button"), Some("Cancel"), None)
    );
    assert!(reply_to_message(m.reply_to).starts_with("wamid."));
    assert_eq!(m.content.text_for_crm(), "Cancel");
}

pub(super) fn wa_list_reply(b: &WebhookBatch) {
    let m = wa_single(b);
    assert_eq!(
        interactive(m.content),
        (
            "list_reply",
            Some("priority_express"),
            Some("Priority Mail Express"),
            None
        )
    );
    match m.content {
        Content::InteractiveReply { description, .. } => {
            assert_eq!(description.as_deref(), Some("Next Day to 2 Days"))
        }
        _ => unreachable!(),
    }
}

pub(super) fn wa_nfm_reply(b: &WebhookBatch) {
    let (kind, id, title, json) = interactive(wa_single(b).content);
    assert_eq!((kind, id, title), ("nfm_reply", Some("flow"), Some("Sent")));
    let answers: serde_json::Value = serde_json::from_str(json.unwrap()).unwrap();
    assert_eq!(answers["slot"], "10:30");
}

pub(super) fn wa_button(b: &WebhookBatch) {
    let m = wa_single(b);
    assert_eq!(
        m.content,
        &Content::Button {
            payload: Some("unsubscribe-promotions".into()),
            text: Some("Stop promotions".into())
        }
    );
    assert!(m.reply_to.is_some());
}

pub(super) fn reaction(ev: &InboundEvent) -> (&CustomerRef, &str, Option<&str>, Party) {
    match &ev.kind {
        EventKind::Reaction {
            customer,
            message_id,
            emoji,
            by,
        } => (customer, message_id.as_str(), emoji.as_deref(), *by),
        other => panic!("not a reaction: {other:?}"),
    }
}

pub(super) fn wa_reaction(b: &WebhookBatch) {
    let ev = one(b);
    wa_account(ev);
    let (c, target, emoji, by) = reaction(ev);
    sheena(c);
    assert_eq!(target, WAMID_BIZ_OFFER);
    assert_eq!(emoji, Some("\u{1F44D}"));
    assert_eq!(by, Party::Customer);
    assert!(ev.provider_event_id.starts_with("wa:msg:wamid."));
}

pub(super) fn wa_unreact(b: &WebhookBatch) {
    let ev = one(b);
    let (c, target, emoji, _) = reaction(ev);
    sheena(c);
    assert_eq!(target, WAMID_BIZ_OFFER);
    assert_eq!(emoji, None, "emoji omitted = reaction removed");
    assert_eq!(ev.timestamp, Some(TS + 60));
}

pub(super) fn wa_order(b: &WebhookBatch) {
    match wa_single(b).content {
        Content::Order(o) => {
            assert_eq!(o.catalog_id.as_deref(), Some("194836987003835"));
            assert_eq!(o.text.as_deref(), Some("Love these!"));
            assert_eq!(o.items.len(), 2);
            assert_eq!(
                o.items[0].product_retailer_id.as_deref(),
                Some("di9ozbzfi4")
            );
            assert_eq!(o.items[0].quantity, Some(2));
            assert_eq!(o.items[0].item_price.as_ref().unwrap().to_string(), "7.99");
            assert_eq!(o.items[1].currency.as_deref(), Some("USD"));
        }
        other => panic!("{other:?}"),
    }
}

pub(super) fn system(b: &WebhookBatch) -> (&CustomerRef, &Content) {
    let ev = one(b);
    wa_account(ev);
    let m = incoming(ev);
    // System messages carry no contacts array and, here, only the phone.
    assert_eq!(
        m.customer.id,
        CustomerId::WhatsAppPhone(WhatsAppPhone::parse(PHONE).unwrap())
    );
    assert_eq!(m.customer.name, None);
    (m.customer, m.content)
}

pub(super) fn wa_system_number(b: &WebhookBatch) {
    match system(b).1 {
        Content::System {
            system_type,
            new_phone,
            new_user_id,
            previous_user_id,
            body,
        } => {
            assert_eq!(system_type.as_deref(), Some("user_changed_number"));
            assert_eq!(new_phone.as_ref().unwrap().as_str(), "16505550000");
            // A new number regenerates the BSUID: the new one and the one before.
            assert_eq!(
                new_user_id.as_ref().unwrap().as_str(),
                "US.30583650948274618402"
            );
            assert_eq!(
                previous_user_id.as_ref().unwrap().as_str(),
                "US.13491208655302741918"
            );
            assert!(body.as_deref().unwrap().contains("changed from"));
        }
        other => panic!("{other:?}"),
    }
}

pub(super) fn wa_system_user_id(b: &WebhookBatch) {
    match system(b).1 {
        Content::System {
            system_type,
            new_user_id,
            previous_user_id,
            ..
        } => {
            assert_eq!(system_type.as_deref(), Some("user_changed_user_id"));
            assert_eq!(
                previous_user_id.as_ref().unwrap().as_str(),
                "US.13491208655302741918"
            );
            assert_eq!(
                new_user_id.as_ref().unwrap().as_str(),
                "US.20450793116847239503"
            );
        }
        other => panic!("{other:?}"),
    }
}

pub(super) fn unsupported(c: &Content) -> (&str, &[MetaError]) {
    match c {
        Content::Unsupported { type_name, errors } => (type_name, errors),
        other => panic!("not unsupported: {other:?}"),
    }
}

pub(super) fn wa_unsupported(b: &WebhookBatch) {
    let m = wa_single(b);
    let (name, errors) = unsupported(m.content);
    assert_eq!(name, "poll_creation");
    assert_eq!(errors[0].code, Some(131051));
    assert_eq!(
        errors[0].details.as_deref(),
        Some("Message type is currently not supported.")
    );
}

pub(super) fn wa_unsupported_edit(b: &WebhookBatch) {
    // How Meta delivers user edits today (its edit reference, 2026-06): kept, labelled.
    let m = wa_single(b);
    assert_eq!(unsupported(m.content).0, "edit");
    assert_eq!(m.content.text_for_crm(), "[unsupported: edit]");
}

pub(super) fn wa_unknown_type(b: &WebhookBatch) {
    assert_eq!(b.events.len(), 2);
    assert!(b.ignored.is_empty());
    let legacy = incoming(&b.events[0]);
    let (name, errors) = unsupported(legacy.content);
    assert_eq!(name, "unknown");
    assert_eq!(errors[0].code, Some(131051));
    let future = incoming(&b.events[1]);
    assert_eq!(unsupported(future.content).0, "poll_vote");
    sheena(future.customer);
}

pub(super) fn wa_referral(b: &WebhookBatch) {
    let m = wa_single(b);
    assert_eq!(text(m.content), "Hi! I saw your ad");
    let r = m.referral.unwrap();
    assert_eq!(r.source_type.as_deref(), Some("ad"));
    assert_eq!(r.source_id.as_deref(), Some("120226305854810726"));
    assert_eq!(r.source_url.as_deref(), Some("https://fb.me/3cr4Wqqkv"));
    assert_eq!(r.headline.as_deref(), Some("Chat with us"));
    assert!(r.click_id.as_deref().unwrap().starts_with("Aff-"));
    assert!(r.media_url.is_some());
    assert_eq!(
        r.welcome_text.as_deref(),
        Some("Hi there! Let us know how we can help!")
    );
}

pub(super) fn wa_referred_product(b: &WebhookBatch) {
    let m = wa_single(b);
    let p = m.referred_product.unwrap();
    assert_eq!(p.catalog_id.as_deref(), Some("194836987003835"));
    assert_eq!(p.product_retailer_id.as_deref(), Some("di9ozbzfi4"));
    assert!(m.reply_to.is_some());
}

pub(super) fn wa_edit(b: &WebhookBatch) {
    let ev = one(b);
    wa_account(ev);
    assert_eq!(ev.timestamp, Some(TS + 120));
    match &ev.kind {
        EventKind::Edited {
            customer,
            message_id,
            content,
            by,
            ..
        } => {
            sheena(customer);
            assert_eq!(
                message_id.as_str(),
                WAMID_IMAGE,
                "the original, not the edit's id"
            );
            assert_eq!(*by, Party::Customer);
            let m = media(content);
            assert_eq!(m.caption.as_deref(), Some("This one, in blue"));
        }
        other => panic!("{other:?}"),
    }
    assert!(ev.provider_event_id.starts_with("wa:msg:"));
    assert!(!ev.provider_event_id.contains(WAMID_IMAGE));
}

pub(super) fn wa_revoke(b: &WebhookBatch) {
    let ev = one(b);
    match &ev.kind {
        EventKind::Deleted {
            customer,
            message_id,
            by,
        } => {
            sheena(customer);
            assert_eq!(message_id.as_str(), WAMID_TEXT);
            assert_eq!(*by, Party::Customer);
        }
        other => panic!("{other:?}"),
    }
}

pub(super) fn wa_bsuid_no_phone(b: &WebhookBatch) {
    let ev = one(b);
    wa_account(ev);
    let m = incoming(ev);
    assert_eq!(text(m.content), "Does it come in another color?");
    let c = m.customer;
    assert_eq!(c.id.key(), format!("bsuid:{BSUID}"));
    assert_eq!(c.phone, None, "no phone: identity is account + BSUID");
    assert_eq!(c.parent_user_id.as_ref().unwrap().as_str(), PARENT);
    assert_eq!(c.name.as_deref(), Some(NAME));
    assert_eq!(c.username.as_deref(), Some("@realsheenanelson"));
}
