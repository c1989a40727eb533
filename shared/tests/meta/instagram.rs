//! The expectations of the samples: Instagram.

use super::*;

/// Standby (Handover Protocol): the customer's message and Meta's agent's reply, relayed
/// like any messaging item.
pub(super) fn ig_standby(b: &WebhookBatch) {
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

pub(super) fn ig_handover(b: &WebhookBatch) {
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
            ours,
        } => {
            assert_eq!(customer.id.as_str(), IGSID);
            // Decided from the app ids by the inbound worker.
            assert_eq!(*ours, None);
            assert_eq!(action, "pass");
            assert_eq!(new_owner_app_id.as_deref(), Some("1217981644879628"));
            assert_eq!(previous_owner_app_id.as_deref(), Some("670843887433847"));
        }
        other => panic!("{other:?}"),
    }
}

pub(super) fn ig_text(b: &WebhookBatch) {
    let m = ig_single(b);
    assert_eq!(m.id, MID_TEXT);
    assert_eq!(text(m.content), "Hi! Is the linen shirt still available?");
    assert_eq!(
        b.events[0].timestamp,
        Some(TS),
        "milliseconds become seconds"
    );
}

pub(super) fn ig_image(b: &WebhookBatch) {
    let i = media(ig_single(b).content);
    assert_eq!(i.kind, MediaKind::Image);
    assert!(i.url.as_deref().unwrap().contains("ig_messaging_cdn"));
    assert_eq!(i.media_id, None);
}

pub(super) fn ig_attachments(b: &WebhookBatch) {
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

pub(super) fn ig_sticker(b: &WebhookBatch) {
    assert_eq!(media(ig_single(b).content).kind, MediaKind::Sticker);
}

pub(super) fn ig_comment(b: &WebhookBatch) {
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
            live: false,
        }
    );
    assert_eq!(
        m.content.text_for_crm(),
        "[comment on reel 18068923945123456] How much is the linen shirt?"
    );
    assert_eq!(b.ignored.total(), 0);
}

/// `live_comments` (decision 0067): the same value as a comment, marked live; the comment id
/// is its id and its event id, as for any comment.
pub(super) fn ig_live_comment(b: &WebhookBatch) {
    let ev = one(b);
    ig_account(ev);
    let m = incoming(ev);
    igsid(m.customer, IGSID);
    assert_eq!(m.id, "17874592131055623");
    assert_eq!(ev.provider_event_id, "ig:comment:17874592131055623");
    assert_eq!(ev.timestamp, Some(1767261600));
    assert_eq!(
        m.content,
        &Content::Comment {
            comment_id: "17874592131055623".into(),
            text: Some("Is the blue one still available?".into()),
            media_id: Some("18072244157163512".into()),
            media_product_type: None,
            live: true,
        }
    );
    assert_eq!(
        m.content.text_for_crm(),
        "[comment on live video 18072244157163512] Is the blue one still available?"
    );
    assert_eq!(b.ignored.total(), 0);
}

/// `mentions` (decision 0067): ids only, a mention in a comment and one in a caption; no
/// customer (the mentioner is not identified).
pub(super) fn ig_mention(b: &WebhookBatch) {
    assert_eq!(b.events.len(), 2);
    let kinds: Vec<(&str, &EventKind)> = b
        .events
        .iter()
        .map(|e| {
            ig_account(e);
            assert!(e.customer().is_none());
            assert_eq!(e.timestamp, Some(1767261600));
            (e.provider_event_id.as_str(), &e.kind)
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            (
                "ig:mention:17918195224117851:17894227972186120",
                &EventKind::Mention {
                    media_id: "17918195224117851".into(),
                    comment_id: Some("17894227972186120".into()),
                }
            ),
            (
                "ig:mention:17920112008063024",
                &EventKind::Mention {
                    media_id: "17920112008063024".into(),
                    comment_id: None,
                }
            ),
        ]
    );
    assert_eq!(b.ignored.total(), 0);
}

pub(super) fn ig_story_mention(b: &WebhookBatch) {
    match ig_single(b).content {
        Content::StoryMention { url } => assert!(url.as_deref().unwrap().starts_with("https://")),
        other => panic!("{other:?}"),
    }
}

pub(super) fn ig_share(b: &WebhookBatch) {
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
pub(super) fn ig_post(b: &WebhookBatch) {
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

pub(super) fn ig_reply(b: &WebhookBatch) {
    let m = ig_single(b);
    assert_eq!(reply_to_message(m.reply_to), MID_BIZ_OFFER);
}

pub(super) fn ig_story_reply(b: &WebhookBatch) {
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

pub(super) fn ig_quick_reply(b: &WebhookBatch) {
    assert_eq!(
        ig_single(b).content,
        &Content::Button {
            payload: Some("TRACK_ORDER".into()),
            text: Some("Track my order".into())
        }
    );
}

pub(super) fn ig_reaction(b: &WebhookBatch) {
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

pub(super) fn ig_unreact(b: &WebhookBatch) {
    let ev = one(b);
    let (_, target, emoji, _) = reaction(ev);
    assert_eq!(target, MID_BIZ_OFFER);
    assert_eq!(emoji, None);
    assert!(ev.provider_event_id.contains(":unreact:"));
}

pub(super) fn ig_read(b: &WebhookBatch) {
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

pub(super) fn ig_postback(b: &WebhookBatch) {
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

pub(super) fn ig_echo(b: &WebhookBatch) {
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

pub(super) fn ig_unsend(b: &WebhookBatch) {
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

pub(super) fn ig_edit(b: &WebhookBatch) {
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

pub(super) fn ig_unsupported(b: &WebhookBatch) {
    assert_eq!(unsupported(ig_single(b).content).0, "instagram_unsupported");
}

pub(super) fn ig_referral(b: &WebhookBatch) {
    let m = ig_single(b);
    let r = m.referral.unwrap();
    assert_eq!(r.source_id.as_deref(), Some("120212345678900123"));
    assert_eq!(r.source_type.as_deref(), Some("ADS"));
    assert_eq!(r.ref_param.as_deref(), Some("spring-sale"));
    assert_eq!(r.headline.as_deref(), Some("Spring sale -30%"));
    assert!(r.media_url.is_some());
}

pub(super) fn ig_batch(b: &WebhookBatch) {
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
