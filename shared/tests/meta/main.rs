//! Every sample payload in `events/meta-webhook/` is signed, verified, split and checked
//! against its expectation below. A sample without an expectation (or an expectation without
//! its sample) fails the test, so a new shape cannot go untested.

use std::collections::BTreeSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

use wappline::ids::{InstagramAccountId, PhoneNumberId};
use wappline::meta::*;

mod allocations;
mod borrowed;
mod instagram;
mod snapshot;
mod whatsapp_account;
mod whatsapp_messages;
mod whatsapp_routing;
mod whatsapp_statuses;

use instagram::*;
use whatsapp_account::*;
use whatsapp_messages::*;
use whatsapp_routing::*;
use whatsapp_statuses::*;

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
    ("whatsapp-standby-message.json", wa_standby_message),
    ("whatsapp-standby-echo.json", wa_standby_echo),
    (
        "whatsapp-messaging-handovers-passed.json",
        wa_handover_passed,
    ),
    ("whatsapp-messaging-handovers-taken.json", wa_handover_taken),
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
    ("instagram-live-comment.json", ig_live_comment),
    ("instagram-mention.json", ig_mention),
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
            EventKind::Mention { .. } => "mention",
        })
        .collect()
}
