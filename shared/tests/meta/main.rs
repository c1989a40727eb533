//! Every sample payload in `events/meta-webhook/` is signed, verified, split and checked
//! against its expectation below. A sample without an expectation (or an expectation without
//! its sample) fails the test, so a new shape cannot go untested.

use std::collections::BTreeSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

use wappline::ids::{InstagramAccountId, PhoneNumberId};
use wappline::meta::*;

mod snapshot;

const PNID: &str = "106540352242922";
const PNID2: &str = "113355779024681";
const PHONE: &str = "16505551234";
const BSUID: &str = "US.13491208655302741918";
const PARENT: &str = "US.ENT.11815799212886844830";
const NAME: &str = "Sheena Nelson";
const PHONE2: &str = "16505559876";
const BSUID2: &str = "US.17360490192548863021";
const TS: i64 = 1767261600;
const IG: &str = "17841405822304914";
const IG2: &str = "17841400455970028";
const IGSID: &str = "1254459154682919";
const IGSID2: &str = "6927113527316721";

const WAMID_TEXT: &str = "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQ5ODJEOUUzRUI5OTZGNTU5RTYzMwA=";
const WAMID_IMAGE: &str = "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQ2MTA1RDZDQzc2QUY0MDAzMjVFOQA=";
const WAMID_BIZ_OFFER: &str = "wamid.HBgLMTU1NTA3ODM4ODEVAgASGBQ0NDgzMkVGOTU0N0NBMUNDQUY2NwA=";
const WAMID_OUT: &str = "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBRGNDRDMzBEMDdEMzMxQzZGRjZBRQA=";
const MID_TEXT: &str = "aWdfaXRlbToxOklHTWVzc2FnZUlEOjE3ODQxNDA1ODIyMzA0OTE0OjM0MDI4MjM2Njg0MTcxMDMwMDk0OTEyODM2ODM5MTU3MDE0NDkyNTgwNDI1Mjc3MzAxNTI4Mw";
const MID_BIZ_OFFER: &str = "aWdfaXRlbToxOklHTWVzc2FnZUlEOjE3ODQxNDA1ODIyMzA0OTE0OjM0MDI4MjM2Njg0MTcxMDMwMDk0OTEyODkwMzY5NzgyODA3NjIwNjQ4NDI3NDg4NjgwODMxOA";

type Check = fn(&WebhookBatch);

const EXPECTATIONS: &[(&str, Check)] = &[
    ("whatsapp-text.json", wa_text),
    ("whatsapp-text-reply.json", wa_text_reply),
    ("whatsapp-forwarded.json", wa_forwarded),
    ("whatsapp-image.json", wa_image),
    ("whatsapp-audio.json", wa_audio),
    ("whatsapp-video.json", wa_video),
    ("whatsapp-document.json", wa_document),
    ("whatsapp-sticker.json", wa_sticker),
    ("whatsapp-location.json", wa_location),
    ("whatsapp-contacts.json", wa_contacts),
    ("whatsapp-interactive-button-reply.json", wa_button_reply),
    ("whatsapp-interactive-list-reply.json", wa_list_reply),
    ("whatsapp-interactive-nfm-reply.json", wa_nfm_reply),
    ("whatsapp-button.json", wa_button),
    ("whatsapp-reaction.json", wa_reaction),
    ("whatsapp-unreact.json", wa_unreact),
    ("whatsapp-order.json", wa_order),
    ("whatsapp-system-number-changed.json", wa_system_number),
    ("whatsapp-system-user-id-changed.json", wa_system_user_id),
    ("whatsapp-unsupported.json", wa_unsupported),
    ("whatsapp-unsupported-edit.json", wa_unsupported_edit),
    ("whatsapp-unknown-type.json", wa_unknown_type),
    ("whatsapp-referral-ctwa.json", wa_referral),
    ("whatsapp-referred-product.json", wa_referred_product),
    ("whatsapp-edit.json", wa_edit),
    ("whatsapp-revoke.json", wa_revoke),
    ("whatsapp-bsuid-no-phone.json", wa_bsuid_no_phone),
    ("whatsapp-status-sent.json", wa_status_sent),
    ("whatsapp-status-delivered.json", wa_status_delivered),
    ("whatsapp-status-read.json", wa_status_read),
    ("whatsapp-status-failed.json", wa_status_failed),
    ("whatsapp-status-bsuid-only.json", wa_status_bsuid_only),
    ("whatsapp-account-errors.json", wa_account_errors),
    ("whatsapp-echo-coexistence.json", wa_echo),
    ("whatsapp-batch-multi-entry.json", wa_batch),
    ("whatsapp-ignored-fields.json", wa_ignored_fields),
    ("whatsapp-template-status-update.json", wa_template_update),
    ("whatsapp-template-category-update.json", wa_template_update),
    ("whatsapp-template-quality-update.json", wa_template_update),
    ("whatsapp-account-restriction.json", wa_account_restriction),
    ("whatsapp-account-disabled.json", wa_account_disabled),
    ("whatsapp-account-reinstated.json", wa_account_reinstated),
    ("whatsapp-account-partner-app.json", wa_account_partner_app),
    ("whatsapp-phone-number-quality.json", wa_number_quality),
    ("whatsapp-phone-number-name.json", wa_number_name),
    ("whatsapp-business-capability.json", wa_business_capability),
    ("whatsapp-history.json", wa_history),
    ("whatsapp-history-declined.json", wa_history_declined),
    ("whatsapp-smb-app-state-sync.json", wa_state_sync),
    ("instagram-text.json", ig_text),
    ("instagram-standby.json", ig_standby),
    ("instagram-handover.json", ig_handover),
    ("instagram-comment.json", ig_comment),
    ("instagram-image.json", ig_image),
    ("instagram-attachments.json", ig_attachments),
    ("instagram-sticker.json", ig_sticker),
    ("instagram-story-mention.json", ig_story_mention),
    ("instagram-share.json", ig_share),
    ("instagram-ig-post.json", ig_post),
    ("instagram-reply.json", ig_reply),
    ("instagram-story-reply.json", ig_story_reply),
    ("instagram-quick-reply.json", ig_quick_reply),
    ("instagram-reaction.json", ig_reaction),
    ("instagram-unreact.json", ig_unreact),
    ("instagram-read.json", ig_read),
    ("instagram-postback.json", ig_postback),
    ("instagram-echo.json", ig_echo),
    ("instagram-unsend.json", ig_unsend),
    ("instagram-edit.json", ig_edit),
    ("instagram-unsupported.json", ig_unsupported),
    ("instagram-referral-ad.json", ig_referral),
    ("instagram-batch.json", ig_batch),
];

fn samples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../events/meta-webhook")
}

#[test]
fn every_sample_is_expected_and_meets_its_expectation() {
    let dir = samples_dir();
    let files: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    let expected: BTreeSet<String> = EXPECTATIONS.iter().map(|(n, _)| n.to_string()).collect();
    assert_eq!(
        expected.len(),
        EXPECTATIONS.len(),
        "an expectation is listed twice"
    );
    let untested: Vec<_> = files.difference(&expected).collect();
    assert!(
        untested.is_empty(),
        "samples without an expectation: {untested:?}"
    );
    let missing: Vec<_> = expected.difference(&files).collect();
    assert!(
        missing.is_empty(),
        "expectations without a sample: {missing:?}"
    );

    let secret = AppSecret::new("0123456789abcdef0123456789abcdef").unwrap();
    let mut failures = Vec::new();
    for (name, check) in EXPECTATIONS {
        let body = std::fs::read(dir.join(name)).unwrap();
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            // Signed as Meta would; the exact bytes verify, a one-byte change does not.
            let header = secret.sign(&body);
            verify_signature(&secret, Some(&header), &body).unwrap();
            let mut changed = body.clone();
            let last = changed.len() - 2;
            changed[last] ^= 0x20;
            assert_eq!(
                verify_signature(&secret, Some(&header), &changed),
                Err(SignatureError::Mismatch)
            );
            let batch = split_webhook(&body).expect("splits");
            common(&batch);
            check(&batch);
        }));
        if outcome.is_err() {
            failures.push(*name);
        }
    }
    assert!(
        failures.is_empty(),
        "samples failing their expectation: {failures:?}"
    );
}

/// True of every sample: events survive the queue (JSON round trip), keys are unique within
/// a sample, accounts are the sample accounts, timestamps are seconds.
fn common(b: &WebhookBatch) {
    let mut keys = BTreeSet::new();
    for ev in &b.events {
        assert_eq!(ev.schema, EVENT_SCHEMA_VERSION);
        let json = serde_json::to_string(ev).unwrap();
        let back: InboundEvent = serde_json::from_str(&json).unwrap();
        assert_eq!(&back, ev);
        assert!(keys.insert(ev.provider_event_id.clone()), "duplicate key");
        assert!([PNID, PNID2, IG, IG2].contains(&ev.account.id()));
        if let Some(t) = ev.timestamp {
            // Coexistence history reaches up to 180 days before onboarding.
            let from = match ev.kind {
                EventKind::HistoryMessage { .. } => TS - 180 * 86_400,
                _ => TS,
            };
            assert!(
                (from..TS + 100_000).contains(&t),
                "timestamp {t} not in seconds"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// Helpers

fn one(b: &WebhookBatch) -> &InboundEvent {
    assert_eq!(b.events.len(), 1, "{:#?}", b.events);
    assert!(b.ignored.is_empty(), "{:?}", b.ignored);
    &b.events[0]
}

fn wa_account(ev: &InboundEvent) {
    assert_eq!(
        ev.account,
        AccountRef::WhatsApp(PhoneNumberId::parse(PNID).unwrap())
    );
}

fn ig_account(ev: &InboundEvent) {
    assert_eq!(
        ev.account,
        AccountRef::Instagram(InstagramAccountId::parse(IG).unwrap())
    );
}

fn sheena(c: &CustomerRef) {
    assert_eq!(
        c.id,
        CustomerId::WhatsAppUser(WhatsAppUserId::parse(BSUID).unwrap())
    );
    assert_eq!(c.phone.as_ref().map(|p| p.as_str()), Some(PHONE));
    assert_eq!(c.name.as_deref(), Some(NAME));
}

fn igsid(c: &CustomerRef, id: &str) {
    assert_eq!(
        c.id,
        CustomerId::Instagram(InstagramUserId::parse(id).unwrap())
    );
    assert_eq!(c.phone, None);
}

struct Incoming<'a> {
    customer: &'a CustomerRef,
    id: &'a str,
    content: &'a Content,
    reply_to: Option<&'a ReplyTo>,
    referral: Option<&'a Referral>,
    referred_product: Option<&'a ReferredProduct>,
    forwarded: bool,
    frequently_forwarded: bool,
}

fn incoming(ev: &InboundEvent) -> Incoming<'_> {
    match &ev.kind {
        EventKind::CustomerMessage {
            customer,
            message_id,
            content,
            reply_to,
            referral,
            referred_product,
            forwarded,
            frequently_forwarded,
        } => Incoming {
            customer,
            id: message_id.as_str(),
            content,
            reply_to: reply_to.as_ref(),
            referral: referral.as_deref(),
            referred_product: referred_product.as_ref(),
            forwarded: *forwarded,
            frequently_forwarded: *frequently_forwarded,
        },
        other => panic!("not a customer message: {other:?}"),
    }
}

/// The one WhatsApp customer message of a sample, from Sheena, at `TS`.
fn wa_single(b: &WebhookBatch) -> Incoming<'_> {
    let ev = one(b);
    wa_account(ev);
    assert_eq!(ev.timestamp, Some(TS));
    let m = incoming(ev);
    sheena(m.customer);
    assert_eq!(ev.provider_event_id, format!("wa:msg:{}", m.id));
    assert!(m.id.starts_with("wamid.HBgL"));
    m
}

fn ig_single(b: &WebhookBatch) -> Incoming<'_> {
    let ev = one(b);
    ig_account(ev);
    let m = incoming(ev);
    igsid(m.customer, IGSID);
    assert_eq!(ev.provider_event_id, format!("ig:msg:{}", m.id));
    m
}

fn media(c: &Content) -> &Media {
    match c {
        Content::Media(m) => m,
        other => panic!("not media: {other:?}"),
    }
}

fn reply_to_message(r: Option<&ReplyTo>) -> &str {
    match r {
        Some(ReplyTo::Message { message_id }) => message_id.as_str(),
        other => panic!("not a reply to a message: {other:?}"),
    }
}

fn text(c: &Content) -> &str {
    match c {
        Content::Text { body } => body,
        other => panic!("not text: {other:?}"),
    }
}

fn status_of(
    ev: &InboundEvent,
) -> (
    &str,
    Option<&CustomerRef>,
    &DeliveryStatus,
    Option<&Billing>,
) {
    match &ev.kind {
        EventKind::Status {
            message_id,
            recipient,
            status,
            billing,
            ..
        } => (
            message_id.as_str(),
            recipient.as_ref(),
            status,
            billing.as_ref(),
        ),
        other => panic!("not a status: {other:?}"),
    }
}

fn kinds(b: &WebhookBatch) -> Vec<&'static str> {
    b.events
        .iter()
        .map(|e| match &e.kind {
            EventKind::CustomerMessage { .. } => "message",
            EventKind::BusinessEcho { .. } => "echo",
            EventKind::Edited { .. } => "edited",
            EventKind::Deleted { .. } => "deleted",
            EventKind::Reaction { .. } => "reaction",
            EventKind::Status { .. } => "status",
            EventKind::Read { .. } => "read",
            EventKind::Postback { .. } => "postback",
            EventKind::AccountError { .. } => "account_error",
            EventKind::AccountUpdate { .. } => "account_update",
            EventKind::Handover { .. } => "handover",
            EventKind::HistoryMessage { .. } => "history_message",
            EventKind::HistoryProgress { .. } => "history_progress",
            EventKind::ContactSync { .. } => "contact_sync",
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// WhatsApp messages

fn wa_text(b: &WebhookBatch) {
    let m = wa_single(b);
    assert_eq!(m.id, WAMID_TEXT);
    assert_eq!(
        text(m.content),
        "Hi! Do you have the blue sneakers in size 42?"
    );
    assert!(m.reply_to.is_none() && m.referral.is_none() && !m.forwarded);
    assert_eq!(m.customer.id.key(), format!("bsuid:{BSUID}"));
}

fn wa_text_reply(b: &WebhookBatch) {
    let m = wa_single(b);
    assert_eq!(text(m.content), "Yes, that one please");
    assert_eq!(reply_to_message(m.reply_to), WAMID_BIZ_OFFER);
}

fn wa_forwarded(b: &WebhookBatch) {
    assert_eq!(b.events.len(), 2);
    let a = incoming(&b.events[0]);
    assert!(a.forwarded && !a.frequently_forwarded);
    assert!(a.reply_to.is_none(), "a forward is not a reply");
    let f = incoming(&b.events[1]);
    assert!(f.forwarded && f.frequently_forwarded);
    assert_eq!(b.events[1].timestamp, Some(TS + 5));
}

fn wa_image(b: &WebhookBatch) {
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

fn wa_audio(b: &WebhookBatch) {
    let a = media(wa_single(b).content).clone();
    assert_eq!(a.kind, MediaKind::Audio);
    assert!(a.voice);
    assert_eq!(a.mime_type.as_deref(), Some("audio/ogg; codecs=opus"));
    assert_eq!(Content::Media(a).text_for_crm(), "[voice message]");
}

fn wa_video(b: &WebhookBatch) {
    let v = media(wa_single(b).content);
    assert_eq!(v.kind, MediaKind::Video);
    assert_eq!(v.caption.as_deref(), Some("Unboxing"));
}

fn wa_document(b: &WebhookBatch) {
    let d = media(wa_single(b).content);
    assert_eq!(d.kind, MediaKind::Document);
    assert_eq!(d.filename.as_deref(), Some("invoice-2026-001.pdf"));
    assert_eq!(d.mime_type.as_deref(), Some("application/pdf"));
    assert_eq!(d.caption.as_deref(), Some("My invoice"));
}

fn wa_sticker(b: &WebhookBatch) {
    let s = media(wa_single(b).content);
    assert_eq!(s.kind, MediaKind::Sticker);
    assert!(!s.animated);
    assert_eq!(s.mime_type.as_deref(), Some("image/webp"));
}

fn wa_location(b: &WebhookBatch) {
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

fn wa_contacts(b: &WebhookBatch) {
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

fn interactive(c: &Content) -> (&str, Option<&str>, Option<&str>, Option<&str>) {
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

fn wa_button_reply(b: &WebhookBatch) {
    let m = wa_single(b);
    assert_eq!(
        interactive(m.content),
        ("button_reply", Some("cancel-button"), Some("Cancel"), None)
    );
    assert!(reply_to_message(m.reply_to).starts_with("wamid."));
    assert_eq!(m.content.text_for_crm(), "Cancel");
}

fn wa_list_reply(b: &WebhookBatch) {
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

fn wa_nfm_reply(b: &WebhookBatch) {
    let (kind, id, title, json) = interactive(wa_single(b).content);
    assert_eq!((kind, id, title), ("nfm_reply", Some("flow"), Some("Sent")));
    let answers: serde_json::Value = serde_json::from_str(json.unwrap()).unwrap();
    assert_eq!(answers["slot"], "10:30");
}

fn wa_button(b: &WebhookBatch) {
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

fn reaction(ev: &InboundEvent) -> (&CustomerRef, &str, Option<&str>, Party) {
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

fn wa_reaction(b: &WebhookBatch) {
    let ev = one(b);
    wa_account(ev);
    let (c, target, emoji, by) = reaction(ev);
    sheena(c);
    assert_eq!(target, WAMID_BIZ_OFFER);
    assert_eq!(emoji, Some("\u{1F44D}"));
    assert_eq!(by, Party::Customer);
    assert!(ev.provider_event_id.starts_with("wa:msg:wamid."));
}

fn wa_unreact(b: &WebhookBatch) {
    let ev = one(b);
    let (c, target, emoji, _) = reaction(ev);
    sheena(c);
    assert_eq!(target, WAMID_BIZ_OFFER);
    assert_eq!(emoji, None, "emoji omitted = reaction removed");
    assert_eq!(ev.timestamp, Some(TS + 60));
}

fn wa_order(b: &WebhookBatch) {
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

fn system(b: &WebhookBatch) -> (&CustomerRef, &Content) {
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

fn wa_system_number(b: &WebhookBatch) {
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

fn wa_system_user_id(b: &WebhookBatch) {
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

fn unsupported(c: &Content) -> (&str, &[MetaError]) {
    match c {
        Content::Unsupported { type_name, errors } => (type_name, errors),
        other => panic!("not unsupported: {other:?}"),
    }
}

fn wa_unsupported(b: &WebhookBatch) {
    let m = wa_single(b);
    let (name, errors) = unsupported(m.content);
    assert_eq!(name, "poll_creation");
    assert_eq!(errors[0].code, Some(131051));
    assert_eq!(
        errors[0].details.as_deref(),
        Some("Message type is currently not supported.")
    );
}

fn wa_unsupported_edit(b: &WebhookBatch) {
    // How Meta delivers user edits today (its edit reference, 2026-06): kept, labelled.
    let m = wa_single(b);
    assert_eq!(unsupported(m.content).0, "edit");
    assert_eq!(m.content.text_for_crm(), "[unsupported: edit]");
}

fn wa_unknown_type(b: &WebhookBatch) {
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

fn wa_referral(b: &WebhookBatch) {
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

fn wa_referred_product(b: &WebhookBatch) {
    let m = wa_single(b);
    let p = m.referred_product.unwrap();
    assert_eq!(p.catalog_id.as_deref(), Some("194836987003835"));
    assert_eq!(p.product_retailer_id.as_deref(), Some("di9ozbzfi4"));
    assert!(m.reply_to.is_some());
}

fn wa_edit(b: &WebhookBatch) {
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

fn wa_revoke(b: &WebhookBatch) {
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

fn wa_bsuid_no_phone(b: &WebhookBatch) {
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

// ---------------------------------------------------------------------------------------
// WhatsApp statuses, errors, echoes, batches

fn wa_status_sent(b: &WebhookBatch) {
    let ev = one(b);
    wa_account(ev);
    let (id, recipient, status, billing) = status_of(ev);
    assert_eq!(id, WAMID_OUT);
    sheena(recipient.unwrap());
    assert_eq!(status, &DeliveryStatus::Sent);
    let billing = billing.unwrap();
    assert_eq!(billing.billable, Some(true));
    assert_eq!(billing.pricing_model.as_deref(), Some("PMP"));
    assert_eq!(billing.category.as_deref(), Some("utility"));
    assert_eq!(
        billing.conversation_id.as_deref(),
        Some("a75d17ad06104c51166f948319b03c6a")
    );
    assert_eq!(billing.conversation_origin.as_deref(), Some("utility"));
    assert_eq!(billing.conversation_expires_at, Some(TS + 86400));
    assert_eq!(ev.provider_event_id, format!("wa:status:{WAMID_OUT}:sent"));
}

fn wa_status_delivered(b: &WebhookBatch) {
    let ev = one(b);
    let (id, recipient, status, billing) = status_of(ev);
    assert_eq!(id, WAMID_OUT);
    sheena(recipient.unwrap());
    assert_eq!(status, &DeliveryStatus::Delivered);
    assert!(billing.unwrap().conversation_id.is_none());
    assert_eq!(
        ev.provider_event_id,
        format!("wa:status:{WAMID_OUT}:delivered")
    );
    assert_eq!(ev.timestamp, Some(TS + 12));
}

fn wa_status_read(b: &WebhookBatch) {
    assert_eq!(b.events.len(), 2);
    let (id, _, status, billing) = status_of(&b.events[0]);
    assert_eq!((id, status), (WAMID_OUT, &DeliveryStatus::Read));
    assert!(billing.is_none());
    assert_eq!(status_of(&b.events[1]).2, &DeliveryStatus::Played);
}

fn wa_status_failed(b: &WebhookBatch) {
    let ev = one(b);
    let (_, recipient, status, _) = status_of(ev);
    // Failed statuses have no contacts array; the phone is the only identity.
    let r = recipient.unwrap();
    assert_eq!(r.id.key(), format!("phone:{PHONE}"));
    assert_eq!(r.name, None);
    match status {
        DeliveryStatus::Failed { errors } => {
            assert_eq!(errors.len(), 1);
            assert_eq!(errors[0].code, Some(131049));
            assert!(errors[0]
                .details
                .as_deref()
                .unwrap()
                .contains("healthy ecosystem"));
            assert!(errors[0].href.is_some());
        }
        other => panic!("{other:?}"),
    }
    assert!(ev.provider_event_id.ends_with(":failed"));
}

fn wa_status_bsuid_only(b: &WebhookBatch) {
    let ev = one(b);
    let (_, recipient, status, _) = status_of(ev);
    let r = recipient.unwrap();
    assert_eq!(r.id.key(), format!("bsuid:{BSUID}"));
    assert_eq!(r.phone, None);
    assert_eq!(r.parent_user_id.as_ref().unwrap().as_str(), PARENT);
    assert_eq!(r.username.as_deref(), Some("@realsheenanelson"));
    assert_eq!(status, &DeliveryStatus::Delivered);
}

fn wa_account_errors(b: &WebhookBatch) {
    let ev = one(b);
    wa_account(ev);
    assert_eq!(ev.timestamp, None);
    assert!(ev.customer().is_none());
    match &ev.kind {
        EventKind::AccountError { errors } => {
            assert_eq!(errors[0].code, Some(131000));
            assert_eq!(errors[0].title.as_deref(), Some("Something went wrong"));
        }
        other => panic!("{other:?}"),
    }
}

fn wa_echo(b: &WebhookBatch) {
    assert_eq!(kinds(b), ["echo", "echo", "deleted"]);
    assert!(b.ignored.is_empty());
    for ev in &b.events {
        wa_account(ev);
        assert!(ev.provider_event_id.starts_with("wa:echo:wamid."));
        let c = ev.customer().unwrap();
        // The customer is `to`, completed from contacts; the business is never the customer.
        assert_eq!(c.id.key(), format!("bsuid:{BSUID}"));
        assert_eq!(c.phone.as_ref().unwrap().as_str(), PHONE);
        assert_eq!(c.username.as_deref(), Some("@realsheenanelson"));
    }
    match &b.events[0].kind {
        EventKind::BusinessEcho { content, .. } => {
            assert!(text(content).starts_with("Here's the info you requested!"))
        }
        other => panic!("{other:?}"),
    }
    match &b.events[1].kind {
        EventKind::BusinessEcho { content, .. } => {
            assert_eq!(media(content).caption.as_deref(), Some("Our catalog"))
        }
        other => panic!("{other:?}"),
    }
    match &b.events[2].kind {
        EventKind::Deleted { by, message_id, .. } => {
            assert_eq!(*by, Party::Business);
            let echoed = match &b.events[0].kind {
                EventKind::BusinessEcho { message_id, .. } => message_id,
                _ => unreachable!(),
            };
            assert_eq!(message_id, echoed);
        }
        other => panic!("{other:?}"),
    }
}

fn wa_batch(b: &WebhookBatch) {
    assert!(b.ignored.is_empty());
    assert_eq!(
        kinds(b),
        ["message", "message", "message", "status", "status", "message", "message", "status"]
    );
    let accounts: Vec<&str> = b.events.iter().map(|e| e.account.id()).collect();
    assert_eq!(
        accounts,
        [PNID, PNID, PNID, PNID, PNID, PNID2, PNID2, PNID2],
        "each event carries its own entry's phone_number_id"
    );
    let ts: Vec<i64> = b.events.iter().map(|e| e.timestamp.unwrap() - TS).collect();
    assert_eq!(ts, [1, 2, 3, 4, 5, 6, 7, 8], "delivery order kept");
    let who: Vec<&str> = b
        .events
        .iter()
        .map(|e| e.customer().unwrap().id.as_str())
        .collect();
    assert_eq!(
        who,
        [BSUID, BSUID2, BSUID, BSUID, BSUID, BSUID2, BSUID2, BSUID2]
    );
    assert_eq!(
        b.events[1].customer().unwrap().name.as_deref(),
        Some("Pablo Morales")
    );
    assert_eq!(
        b.events[7]
            .customer()
            .unwrap()
            .phone
            .as_ref()
            .unwrap()
            .as_str(),
        PHONE2
    );
}

fn wa_ignored_fields(b: &WebhookBatch) {
    // The empty history chunk is read (Coexistence): only its progress.
    assert_eq!(kinds(b), ["history_progress", "message"]);
    assert_eq!(text(incoming(&b.events[1]).content), "This one is relayed");
    assert_eq!(b.ignored.get("whatsapp:field:user_preferences"), 1);
    assert_eq!(b.ignored.total(), 1);
    // The account event beside them is the intake's to route, to the number it names.
    let [u] = &b.account_updates[..] else {
        panic!("{:?}", b.account_updates)
    };
    assert_eq!(u.number.as_deref(), Some("15550783881"));
    assert_eq!(
        u.update,
        account::AccountUpdate::Other {
            event: "VERIFIED_ACCOUNT".into()
        }
    );
}

// ---------------------------------------------------------------------------------------
// WhatsApp account and number events (on the WABA; routed by the intake)

const WABA: &str = "102290129340398";

/// The only account update of `b` (and no events): on the sample WABA, at [`TS`].
fn one_update(b: &WebhookBatch) -> &account::WabaUpdate {
    assert!(b.events.is_empty(), "{:?}", b.events);
    assert!(b.ignored.is_empty(), "{:?}", b.ignored);
    let [u] = &b.account_updates[..] else {
        panic!("{:?}", b.account_updates)
    };
    assert_eq!(u.waba.as_str(), WABA);
    u
}

fn wa_account_restriction(b: &WebhookBatch) {
    let u = one_update(b);
    assert_eq!(u.time, Some(TS));
    assert_eq!(u.number, None, "the whole WABA");
    let restriction = |kind: &str| account::Restriction {
        restriction_type: kind.into(),
        expiration: Some("2026-01-31T10:00:00+0000".into()),
    };
    assert_eq!(
        u.update,
        account::AccountUpdate::Restricted {
            restrictions: vec![
                restriction("RESTRICTED_BIZ_INITIATED_MESSAGING"),
                restriction("RESTRICTED_CUSTOMER_INITIATED_MESSAGING"),
            ]
        }
    );
}

fn wa_account_disabled(b: &WebhookBatch) {
    assert!(b.events.is_empty());
    let updates: Vec<_> = b.account_updates.iter().map(|u| u.update.clone()).collect();
    assert_eq!(
        updates,
        [
            account::AccountUpdate::BanState {
                state: "DISABLE".into(),
                date: Some("January 1, 2026".into())
            },
            account::AccountUpdate::Violation {
                violation_type: Some("SCAM".into())
            }
        ]
    );
}

fn wa_account_reinstated(b: &WebhookBatch) {
    let u = one_update(b);
    assert_eq!(u.time, Some(TS + 3600));
    assert!(matches!(
        &u.update,
        account::AccountUpdate::BanState { state, .. } if state == "REINSTATE"
    ));
}

fn wa_account_partner_app(b: &WebhookBatch) {
    assert_eq!(
        one_update(b).update,
        account::AccountUpdate::PartnerApp {
            installed: false,
            app_id: Some("1234567890123456".into())
        }
    );
}

fn wa_number_quality(b: &WebhookBatch) {
    let u = one_update(b);
    assert_eq!(u.number.as_deref(), Some("15550783881"));
    assert_eq!(
        u.update,
        account::AccountUpdate::Quality {
            event: Some("FLAGGED".into()),
            old_limit: None,
            limit: Some("TIER_2K".into())
        }
    );
}

fn wa_number_name(b: &WebhookBatch) {
    let u = one_update(b);
    assert_eq!(u.number.as_deref(), Some("15550783881"));
    assert_eq!(
        u.update,
        account::AccountUpdate::Name {
            decision: Some("APPROVED".into()),
            requested_name: Some("Lucky Shrub".into()),
            rejection_reason: None
        }
    );
}

fn wa_business_capability(b: &WebhookBatch) {
    assert_eq!(
        one_update(b).update,
        account::AccountUpdate::Capability {
            messaging_limit: Some("TIER_10K".into()),
            max_numbers_per_business: None,
            max_numbers_per_waba: Some(25)
        }
    );
}

/// Template webhooks relay nothing to Bitrix24 (the intake applies them to the tenants'
/// template copies: `wappline::templates::webhook`); the split counts their field.
fn wa_template_update(b: &WebhookBatch) {
    assert!(b.events.is_empty());
    assert_eq!(b.ignored.total(), 1);
    let field = b.ignored.iter().next().unwrap().0.to_owned();
    assert!(
        field.starts_with("whatsapp:field:") && field.contains("template"),
        "{field}"
    );
}

// Coexistence: `history` (one event per past message, then the chunk's progress) and
// `smb_app_state_sync` (the business's saved contact names).
fn wa_history(b: &WebhookBatch) {
    assert_eq!(
        kinds(b),
        [
            "history_message",
            "history_message",
            "history_message",
            "history_message",
            "history_progress"
        ]
    );
    assert!(b.ignored.is_empty());
    let past: Vec<(String, Party, String, i64)> = b.events[..4]
        .iter()
        .map(|ev| match &ev.kind {
            EventKind::HistoryMessage {
                customer,
                message_id,
                content,
                by,
            } => {
                wa_account(ev);
                assert!(ev.provider_event_id.starts_with("wa:hist:wamid."));
                assert_eq!(message_id.as_str(), &ev.provider_event_id[8..]);
                (
                    customer.phone.as_ref().unwrap().as_str().to_owned(),
                    *by,
                    content.text_for_crm(),
                    ev.timestamp.unwrap(),
                )
            }
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        past,
        [
            (
                PHONE.to_owned(),
                Party::Customer,
                "Do you still have the linen shirt in blue?".to_owned(),
                1758000000
            ),
            // `to` marks the business's own message; the customer is `to`, not `from`.
            (
                PHONE.to_owned(),
                Party::Business,
                "Yes, sizes S to XL.".to_owned(),
                1758000060
            ),
            (
                PHONE.to_owned(),
                Party::Customer,
                "[unsupported: media_placeholder]".to_owned(),
                1758000120
            ),
            (
                PHONE2.to_owned(),
                Party::Customer,
                "Is the shop open on Sunday?".to_owned(),
                1758100000
            ),
        ]
    );
    for ev in &b.events[..4] {
        // Phone only in history: the conversation is found through the phone alias.
        assert_eq!(
            ev.customer().unwrap().id.key(),
            format!(
                "phone:{}",
                ev.customer().unwrap().phone.as_ref().unwrap().as_str()
            )
        );
    }
    match &b.events[4].kind {
        EventKind::HistoryProgress {
            phase,
            chunk_order,
            progress,
            declined,
        } => {
            assert_eq!(
                (*phase, *chunk_order, *progress),
                (Some(2), Some(1), Some(100))
            );
            assert!(!declined);
        }
        other => panic!("{other:?}"),
    }
}

fn wa_history_declined(b: &WebhookBatch) {
    let ev = one(b);
    wa_account(ev);
    assert!(ev.customer().is_none());
    assert!(matches!(
        ev.kind,
        EventKind::HistoryProgress {
            declined: true,
            progress: None,
            ..
        }
    ));
}

fn wa_state_sync(b: &WebhookBatch) {
    assert_eq!(kinds(b), ["contact_sync", "contact_sync"]);
    let names: Vec<(String, Option<String>)> = b
        .events
        .iter()
        .map(|ev| match &ev.kind {
            EventKind::ContactSync { customer, name } => {
                wa_account(ev);
                assert!(ev.provider_event_id.starts_with("wa:contact:"));
                // The key holds neither the phone nor the name.
                assert!(!ev
                    .provider_event_id
                    .contains(customer.phone.as_ref().unwrap().as_str()));
                (
                    customer.phone.as_ref().unwrap().as_str().to_owned(),
                    name.clone(),
                )
            }
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        names,
        [
            (PHONE.to_owned(), Some("Sheena Nelson Boutique".to_owned())),
            (PHONE2.to_owned(), None),
        ]
    );
    assert_eq!(b.events[0].timestamp, Some(1767261900));
}

// ---------------------------------------------------------------------------------------
// Instagram

/// Standby (Handover Protocol): the customer's message and Meta's agent's reply, relayed
/// like any messaging item.
fn ig_standby(b: &WebhookBatch) {
    assert_eq!(kinds(b), ["message", "echo"]);
    assert!(b.ignored.is_empty(), "{:?}", b.ignored);
    match &b.events[1].kind {
        EventKind::BusinessEcho {
            app_id, content, ..
        } => {
            assert_eq!(app_id.as_deref(), Some("1217981644879628"));
            assert_eq!(text(content), "Yes, we deliver every day from 9 to 21.");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        text(incoming(&b.events[0]).content),
        "Do you deliver on Sundays?"
    );
}

fn ig_handover(b: &WebhookBatch) {
    assert_eq!(kinds(b), ["handover"]);
    let ev = &b.events[0];
    assert_eq!(
        ev.provider_event_id,
        format!("ig:handover:{IGSID}:pass:1767261601123")
    );
    match &ev.kind {
        EventKind::Handover {
            customer,
            action,
            new_owner_app_id,
            previous_owner_app_id,
        } => {
            assert_eq!(customer.id.as_str(), IGSID);
            assert_eq!(action, "pass");
            assert_eq!(new_owner_app_id.as_deref(), Some("1217981644879628"));
            assert_eq!(previous_owner_app_id.as_deref(), Some("670843887433847"));
        }
        other => panic!("{other:?}"),
    }
}

fn ig_text(b: &WebhookBatch) {
    let m = ig_single(b);
    assert_eq!(m.id, MID_TEXT);
    assert_eq!(text(m.content), "Hi! Is the linen shirt still available?");
    assert_eq!(
        b.events[0].timestamp,
        Some(TS),
        "milliseconds become seconds"
    );
}

fn ig_image(b: &WebhookBatch) {
    let i = media(ig_single(b).content);
    assert_eq!(i.kind, MediaKind::Image);
    assert!(i.url.as_deref().unwrap().contains("ig_messaging_cdn"));
    assert_eq!(i.media_id, None);
}

fn ig_attachments(b: &WebhookBatch) {
    match ig_single(b).content {
        Content::Multiple { parts } => {
            assert_eq!(parts.len(), 4);
            assert_eq!(text(&parts[0]), "Three files for you");
            let kinds: Vec<MediaKind> = parts[1..].iter().map(|p| media(p).kind).collect();
            assert_eq!(kinds, [MediaKind::Video, MediaKind::Audio, MediaKind::File]);
        }
        other => panic!("{other:?}"),
    }
}

fn ig_sticker(b: &WebhookBatch) {
    assert_eq!(media(ig_single(b).content).kind, MediaKind::Sticker);
}

fn ig_comment(b: &WebhookBatch) {
    let ev = one(b);
    ig_account(ev);
    let m = incoming(ev);
    igsid(m.customer, IGSID);
    assert_eq!(m.customer.username.as_deref(), Some("sheena.nelson"));
    assert_eq!(m.id, "17865799348089039");
    assert_eq!(ev.provider_event_id, "ig:comment:17865799348089039");
    assert_eq!(ev.timestamp, Some(1767261600), "entry time, in seconds");
    assert_eq!(
        m.content,
        &Content::Comment {
            comment_id: "17865799348089039".into(),
            text: Some("How much is the linen shirt?".into()),
            media_id: Some("18068923945123456".into()),
            media_product_type: Some("REELS".into()),
        }
    );
    assert_eq!(
        m.content.text_for_crm(),
        "[comment on reel 18068923945123456] How much is the linen shirt?"
    );
    assert_eq!(b.ignored.total(), 0);
}

fn ig_story_mention(b: &WebhookBatch) {
    match ig_single(b).content {
        Content::StoryMention { url } => assert!(url.as_deref().unwrap().starts_with("https://")),
        other => panic!("{other:?}"),
    }
}

fn ig_share(b: &WebhookBatch) {
    assert_eq!(b.events.len(), 2);
    let types: Vec<(String, Option<String>)> = b
        .events
        .iter()
        .map(|e| match incoming(e).content {
            Content::Share {
                share_type,
                title,
                url,
            } => {
                assert!(url.is_some());
                (share_type.clone(), title.clone())
            }
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        types,
        [
            ("share".to_string(), None),
            (
                "ig_reel".to_string(),
                Some("New collection, spring 2026".to_string())
            )
        ]
    );
}

/// A post shared during Meta's transition (`share` and `ig_post` for one post) is shown once,
/// as the `ig_post`; then a post shared with a question.
fn ig_post(b: &WebhookBatch) {
    assert_eq!(b.events.len(), 2);
    match incoming(&b.events[0]).content {
        Content::Share {
            share_type, title, ..
        } => {
            assert_eq!(share_type, "ig_post");
            assert_eq!(
                title.as_deref(),
                Some("Spring collection: three new colours")
            );
        }
        other => panic!("the post should be shown once: {other:?}"),
    }
    match incoming(&b.events[1]).content {
        Content::Multiple { parts } => {
            assert!(matches!(&parts[0], Content::Text { body } if body == "Is this one in stock?"));
            assert!(
                matches!(&parts[1], Content::Share { share_type, url: Some(_), .. } if share_type == "ig_post")
            );
        }
        other => panic!("{other:?}"),
    }
}

fn ig_reply(b: &WebhookBatch) {
    let m = ig_single(b);
    assert_eq!(reply_to_message(m.reply_to), MID_BIZ_OFFER);
}

fn ig_story_reply(b: &WebhookBatch) {
    let m = ig_single(b);
    assert_eq!(text(m.content), "Love this look!");
    match m.reply_to {
        Some(ReplyTo::Story { story_id, url }) => {
            assert_eq!(story_id.as_deref(), Some("18031415926535897"));
            assert!(url.is_some());
        }
        other => panic!("{other:?}"),
    }
}

fn ig_quick_reply(b: &WebhookBatch) {
    assert_eq!(
        ig_single(b).content,
        &Content::Button {
            payload: Some("TRACK_ORDER".into()),
            text: Some("Track my order".into())
        }
    );
}

fn ig_reaction(b: &WebhookBatch) {
    let ev = one(b);
    ig_account(ev);
    let (c, target, emoji, by) = reaction(ev);
    igsid(c, IGSID);
    assert_eq!(target, MID_BIZ_OFFER);
    assert_eq!(emoji, Some("\u{2764}\u{fe0f}"));
    assert_eq!(by, Party::Customer);
    assert_eq!(
        ev.provider_event_id,
        format!(
            "ig:reaction:{MID_BIZ_OFFER}:{IGSID}:react:{}",
            TS * 1000 + 2123
        )
    );
}

fn ig_unreact(b: &WebhookBatch) {
    let ev = one(b);
    let (_, target, emoji, _) = reaction(ev);
    assert_eq!(target, MID_BIZ_OFFER);
    assert_eq!(emoji, None);
    assert!(ev.provider_event_id.contains(":unreact:"));
}

fn ig_read(b: &WebhookBatch) {
    let ev = one(b);
    ig_account(ev);
    match &ev.kind {
        EventKind::Read {
            customer,
            message_id,
            watermark,
        } => {
            igsid(customer, IGSID);
            assert_eq!(message_id.as_ref().unwrap().as_str(), MID_BIZ_OFFER);
            assert_eq!(*watermark, None);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        ev.provider_event_id,
        format!("ig:read:{IGSID}:{MID_BIZ_OFFER}")
    );
}

fn ig_postback(b: &WebhookBatch) {
    let ev = one(b);
    match &ev.kind {
        EventKind::Postback {
            customer,
            title,
            payload,
            message_id,
        } => {
            igsid(customer, IGSID);
            assert_eq!(title.as_deref(), Some("Opening hours"));
            assert_eq!(payload.as_deref(), Some("ICEBREAKER_HOURS"));
            assert!(message_id.is_some());
        }
        other => panic!("{other:?}"),
    }
}

fn ig_echo(b: &WebhookBatch) {
    let ev = one(b);
    ig_account(ev);
    match &ev.kind {
        EventKind::BusinessEcho {
            customer, content, ..
        } => {
            // The business sent it: the customer is the recipient, never the sender.
            igsid(customer, IGSID);
            assert_eq!(text(content), "Thanks! We ship tomorrow.");
        }
        other => panic!("{other:?}"),
    }
    assert!(ev.provider_event_id.starts_with("ig:echo:"));
}

fn ig_unsend(b: &WebhookBatch) {
    let ev = one(b);
    match &ev.kind {
        EventKind::Deleted {
            customer,
            message_id,
            by,
        } => {
            igsid(customer, IGSID);
            assert_eq!(message_id.as_str(), MID_TEXT);
            assert_eq!(*by, Party::Customer);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(ev.provider_event_id, format!("ig:deleted:{MID_TEXT}"));
}

fn ig_edit(b: &WebhookBatch) {
    let ev = one(b);
    match &ev.kind {
        EventKind::Edited {
            customer,
            message_id,
            content,
            by,
            edit_count,
        } => {
            igsid(customer, IGSID);
            assert_eq!(message_id.as_str(), MID_TEXT);
            assert_eq!(
                text(content),
                "Hi! Is the linen shirt still available in white?"
            );
            assert_eq!(*by, Party::Customer);
            assert_eq!(*edit_count, Some(1));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(ev.provider_event_id, format!("ig:edit:{MID_TEXT}:1"));
}

fn ig_unsupported(b: &WebhookBatch) {
    assert_eq!(unsupported(ig_single(b).content).0, "instagram_unsupported");
}

fn ig_referral(b: &WebhookBatch) {
    let m = ig_single(b);
    let r = m.referral.unwrap();
    assert_eq!(r.source_id.as_deref(), Some("120212345678900123"));
    assert_eq!(r.source_type.as_deref(), Some("ADS"));
    assert_eq!(r.ref_param.as_deref(), Some("spring-sale"));
    assert_eq!(r.headline.as_deref(), Some("Spring sale -30%"));
    assert!(r.media_url.is_some());
}

fn ig_batch(b: &WebhookBatch) {
    assert!(b.ignored.is_empty());
    assert_eq!(
        kinds(b),
        ["message", "message", "echo", "reaction", "read", "message", "message"]
    );
    let accounts: Vec<&str> = b.events.iter().map(|e| e.account.id()).collect();
    assert_eq!(accounts, [IG, IG, IG, IG, IG, IG2, IG2]);
    let who: Vec<&str> = b
        .events
        .iter()
        .map(|e| e.customer().unwrap().id.as_str())
        .collect();
    assert_eq!(who, [IGSID, IGSID2, IGSID, IGSID, IGSID, IGSID, IGSID]);
}
