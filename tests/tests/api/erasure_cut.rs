//! The second an erasure completes in (decision 0057): Meta stamps events in whole seconds,
//! so a contact erasure's cut is a whole second (the one its markers were written in) and it
//! completes only after it. A message Meta stamped in the cut's second belongs to the
//! erased period and is dropped, though first seen after the erasure; one the person writes
//! in the very second the erasure completed is a new conversation and is relayed.

use e2e_tests::fake_bitrix::FAKE_DOMAIN;
use e2e_tests::harness::WA_NUMBER;
use e2e_tests::relay_world::RelayWorld;
use e2e_tests::whatsapp_events;
use reqwest::StatusCode;
use wappline::store::Table;

const PHONE: &str = "16505550157";

/// A WhatsApp text from [`PHONE`] that Meta stamped at `stamped` (Unix seconds).
fn text_at(id: &str, body: &str, stamped: i64) -> Vec<u8> {
    whatsapp_events::text(PHONE, "Cut Customer", id, stamped, body)
}

fn posted(w: &RelayWorld, id: &str) -> usize {
    w.bitrix
        .messages_received()
        .iter()
        .filter(|m| m.domain == FAKE_DOMAIN && m.external_message_id == id)
        .count()
}

async fn stored_messages(w: &RelayWorld) -> usize {
    w.h.all_items(Table::Data)
        .await
        .into_iter()
        .filter(|i| i.get_s("sk").is_some_and(|sk| sk.starts_with("MSG#")))
        .count()
}

/// Asks for the contact's erasure, waits until it completed; returns `completed_at`.
async fn erase(w: &RelayWorld, tenant: &str) -> i64 {
    let done =
        w.h.erase_contact(tenant, "whatsapp", WA_NUMBER, &format!("+{PHONE}"))
            .await;
    done["completed_at"].as_i64().unwrap()
}

/// The erasure's cut, from its (sealed) marker.
async fn cut_ms(w: &RelayWorld) -> i64 {
    let cuts: Vec<i64> =
        w.h.all_items(Table::Data)
            .await
            .into_iter()
            .filter(|i| i.get_s("pk").is_some_and(|pk| pk.ends_with("#ERASED")))
            .filter_map(|i| i.get_n("through_ms"))
            .collect();
    assert!(!cuts.is_empty(), "no sealed marker");
    assert!(cuts.windows(2).all(|c| c[0] == c[1]), "one cut: {cuts:?}");
    cuts[0]
}

#[tokio::test]
async fn the_second_an_erasure_completes_in_is_after_its_cut() {
    let w = RelayWorld::start().await;
    let tenant = w.installed_tenant().await;
    let before = wappline::clock::now_secs();
    let (s, _) =
        w.h.post_signed(&text_at("wamid.CUT.OLD", "to be forgotten", before))
            .await;
    assert_eq!(s, StatusCode::OK);
    w.drain().await;
    assert_eq!(posted(&w, "wamid.CUT.OLD"), 1);

    let completed_at = erase(&w, &tenant).await;
    let cut = cut_ms(&w).await;
    assert_eq!(cut % 1000, 999, "the cut ends a whole second");
    let cut_second = cut / 1000;
    assert!(
        cut_second >= before,
        "the cut is not before what was stored"
    );
    assert!(
        completed_at > cut_second,
        "completed {completed_at}, cut {cut}"
    );
    let stored = stored_messages(&w).await;

    // Stamped in the cut's second, first seen now: of the erased period, dropped.
    let (s, _) =
        w.h.post_signed(&text_at("wamid.CUT.LATE", "also forgotten", cut_second))
            .await;
    assert_eq!(s, StatusCode::OK);
    // Written in the second the erasure completed: a new conversation, relayed.
    let (s, _) =
        w.h.post_signed(&text_at("wamid.CUT.NEW", "hello again", completed_at))
            .await;
    assert_eq!(s, StatusCode::OK);
    w.drain().await;
    assert_eq!(
        posted(&w, "wamid.CUT.LATE"),
        0,
        "an erased-period message came back"
    );
    assert_eq!(posted(&w, "wamid.CUT.NEW"), 1, "a new message was dropped");
    assert_eq!(posted(&w, "wamid.CUT.OLD"), 1);
    assert_eq!(
        stored_messages(&w).await,
        stored + 1,
        "only the new one stored"
    );
    w.h.server.shutdown().await;
}
