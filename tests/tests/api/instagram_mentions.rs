//! Instagram @mentions end to end on the local server (decision 0067): a `mentions` webhook
//! names a media and, for a mention in a comment, the comment, nothing else; the relay reads
//! what was written from the Graph API (IG User `mentioned_comment` / `mentioned_media`, in
//! the documented request format, which the fake checks) and posts each mention to the
//! account's "Instagram mentions" chat in Bitrix24 with its text and a link. Nothing can be
//! sent from that chat: the operator is told so.

use e2e_tests::fake_bitrix::{EventBody, EventMessage, FAKE_DOMAIN};
use e2e_tests::harness::{sample, IG_ACCOUNT};
use e2e_tests::relay_world::{RelayWorld, APP_TOKEN, IG_TOKEN, LINE};
use reqwest::StatusCode;
use serde_json::{json, Value};

const COMMENT: &str = "17894227972186120";
const COMMENT_MEDIA: &str = "17918195224117851";
const CAPTION_MEDIA: &str = "17920112008063024";
const PERMALINK: &str = "https://www.instagram.com/p/DKq3mB2uFxN/";
const MEDIA_URL: &str = "https://scontent.cdninstagram.com/v/t51.2885-15/picnic.jpg";

/// The mentions sample, sent now.
fn mentions() -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(&sample("instagram-mention.json")).unwrap();
    v["entry"][0]["time"] = json!(wappline::clock::now_secs() * 1000);
    serde_json::to_vec(&v).unwrap()
}

/// Percent-decodes a query string.
fn decoded(q: &str) -> String {
    let mut out = Vec::new();
    let b = q.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            out.push(u8::from_str_radix(&q[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

#[tokio::test]
async fn mentions_reach_the_operator_with_what_was_written_and_a_link() {
    let w = RelayWorld::start().await;
    w.graph.add_instagram_token(IG_TOKEN, IG_ACCOUNT, None);
    w.graph.add_mentioned_comment(
        IG_ACCOUNT,
        COMMENT,
        COMMENT_MEDIA,
        "@jaspersmarket do you ship to Lisbon?",
        PERMALINK,
    );
    w.graph.add_mentioned_media(
        IG_ACCOUNT,
        CAPTION_MEDIA,
        "pablo.morales",
        "Sunday picnic in my new jaspersmarket linen",
        MEDIA_URL,
    );
    w.installed_tenant().await;

    let chat = w.customer_writes(&mentions()).await;
    let posted: Vec<_> = w
        .bitrix
        .messages_received()
        .into_iter()
        .filter(|m| m.external_chat_id == chat)
        .collect();
    let texts: Vec<&str> = posted.iter().filter_map(|m| m.text.as_deref()).collect();
    assert_eq!(
        texts,
        [
            format!(
                "[mention in a comment {COMMENT} on media {COMMENT_MEDIA}]\n\
                 @jaspersmarket do you ship to Lisbon?\n{PERMALINK}"
            ),
            format!(
                "[mention in the caption of media {CAPTION_MEDIA} by @pablo.morales]\n\
                 Sunday picnic in my new jaspersmarket linen\n{MEDIA_URL}"
            ),
        ]
    );
    assert_eq!(
        posted[0].raw["chat"]["name"],
        "Instagram: Instagram mentions"
    );

    // The reads, as the reference documents them, with the account's own token.
    let reads: Vec<(String, String)> = w
        .graph
        .calls()
        .into_iter()
        .filter(|c| c.method == "GET" && c.path.ends_with(&format!("/{IG_ACCOUNT}")))
        .map(|c| {
            assert_eq!(c.bearer.as_deref(), Some(IG_TOKEN));
            assert_eq!(c.status, 200);
            (c.path, decoded(c.query.as_deref().unwrap_or_default()))
        })
        .collect();
    assert_eq!(reads.len(), 2, "{reads:?}");
    assert_eq!(
        reads[0].1,
        format!("fields=mentioned_comment.comment_id({COMMENT}){{id,text,timestamp,media{{id,permalink}}}}")
    );
    assert_eq!(
        reads[1].1,
        format!("fields=mentioned_media.media_id({CAPTION_MEDIA}){{id,caption,username,timestamp,media_url}}")
    );

    // A redelivery is the same two mentions.
    let (s, _) = w.h.post_signed(&mentions()).await;
    assert_eq!(s, StatusCode::OK);
    w.drain().await;
    let again = w
        .bitrix
        .messages_received()
        .into_iter()
        .filter(|m| m.external_chat_id == chat)
        .count();
    assert_eq!(again, 2);

    // The operator writes in the mentions chat: nothing goes to Instagram, and they are told.
    let form = EventBody::for_portal(&w.bitrix, FAKE_DOMAIN, Some(APP_TOKEN)).message_add(
        "wappline_instagram",
        LINE,
        &[EventMessage {
            im_chat_id: 904,
            im_message_id: 8501,
            chat_id: chat.clone(),
            user_id: 1,
            text: Some("Thanks!".to_owned()),
            ..EventMessage::default()
        }],
    );
    let (s, body) = w.event(form).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    w.drain().await;
    assert!(
        !w.graph
            .calls()
            .iter()
            .any(|c| c.path.ends_with("/messages")),
        "nothing was sent: {:?}",
        w.graph.calls()
    );
    let notes = w.notes();
    assert!(
        notes
            .iter()
            .any(|n| n.contains("collects the Instagram account's @mentions")),
        "{notes:?}"
    );
}

/// A mention the Graph API does not let us read still reaches the operator, by its ids.
#[tokio::test]
async fn a_mention_that_cannot_be_read_is_shown_by_its_ids() {
    let w = RelayWorld::start().await;
    w.graph.add_instagram_token(IG_TOKEN, IG_ACCOUNT, None);
    w.installed_tenant().await;

    let chat = w.customer_writes(&mentions()).await;
    let texts: Vec<String> = w
        .bitrix
        .messages_received()
        .into_iter()
        .filter(|m| m.external_chat_id == chat)
        .filter_map(|m| m.text)
        .collect();
    assert_eq!(
        texts,
        [
            format!("[mention in a comment {COMMENT} on media {COMMENT_MEDIA}]"),
            format!("[mention in the caption of media {CAPTION_MEDIA}]"),
        ]
    );
}
