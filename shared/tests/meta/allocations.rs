//! What the split allocates, where the size of a block decides its cost: glibc's per-thread
//! cache serves requests up to 1,032 bytes; larger ones take malloc's general path (bins,
//! merging) on both allocation and free (decision 0098).

use super::*;

/// glibc's `tcache_max_bytes` (the same on the Lambda's Amazon Linux).
const THREAD_CACHE_MAX: usize = 1_032;

#[test]
fn a_change_value_fits_the_thread_cache() {
    // Every `messages` change reads its value into a box of its own.
    let size = std::mem::size_of::<whatsapp::ChangeValue>();
    assert!(
        size <= THREAD_CACHE_MAX,
        "a change value is {size} bytes: box its rarer parts"
    );
}

#[test]
fn arrays_of_large_items_reserve_one_first() {
    // A message or a status read alone takes a block of one, not one of four (four
    // messages are about 2 KB).
    let value: whatsapp::ChangeValue = serde_json::from_str(
        r#"{"messages": [{"id": "wamid.1", "type": "text"}],
            "statuses": [{"id": "wamid.2", "status": "read"}],
            "contacts": [{"wa_id": "16505551234"}]}"#,
    )
    .unwrap();
    assert_eq!(value.messages.capacity(), 1);
    assert_eq!(value.statuses.capacity(), 1);
    // Small items grow as any vector does.
    assert_eq!(value.contacts.capacity(), 4);
    let two: whatsapp::ChangeValue = serde_json::from_str(
        r#"{"messages": [{"id": "wamid.1"}, {"id": "wamid.2"}, {"id": "wamid.3"}]}"#,
    )
    .unwrap();
    assert_eq!(two.messages.len(), 3);
}

#[test]
fn the_event_vector_is_sized_by_the_event_items_read() {
    let batch =
        split_webhook(&std::fs::read(samples_dir().join("whatsapp-text.json")).unwrap()).unwrap();
    assert_eq!(batch.events.len(), 1);
    assert_eq!(batch.events.capacity(), 1);
    let batch = split_webhook(
        &std::fs::read(samples_dir().join("whatsapp-batch-multi-entry.json")).unwrap(),
    )
    .unwrap();
    assert!(batch.events.len() > 1);
    assert_eq!(batch.events.capacity(), batch.events.len());
}
