//! An acknowledged webhook survives a kill of the local server (issue 17's durability
//! promise, end to end): a process posts customers' messages while its inbound worker stores
//! them, and is killed (SIGKILL) at an arbitrary point; the server started again on its data
//! stores every message whose webhook was answered 200, once. (It fails, with about half the
//! messages lost, when the inbound worker's writes are answered before their flush and its
//! acknowledgements do not wait for that flush: decision 0108.)

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use e2e_tests::harness::Harness;
use e2e_tests::whatsapp_events;
use reqwest::StatusCode;
use wappline::queue::platform;
use wappline::store::Table;

/// Set in the child process: its data directory.
const KILL_CHILD_DIR: &str = "WAPPLINE_INBOUND_KILL_DIR";

/// The child of `acknowledged_messages_are_stored_after_a_kill` (returns at once in any
/// other process): posts one text at a time from 20 customers, printing each message's id
/// once its webhook was answered, until killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_child_posts_until_killed() {
    let Ok(dir) = std::env::var(KILL_CHILD_DIR) else {
        return;
    };
    let h = Harness::start_in(std::path::Path::new(&dir), short_lease).await;
    h.tenant_with_channels().await;
    let now = wappline::clock::now_secs();
    for i in 0u32.. {
        let customer = format!("1555{:07}", i % 20);
        let id = format!("wamid.KILL{i:07}");
        let body = whatsapp_events::text(&customer, "Kim Killed", &id, now, "still here?");
        let (status, text) = h.post_signed(&body).await;
        assert_eq!(status, StatusCode::OK, "{text}");
        println!("acked {id}");
    }
}

/// What the killed process had received comes back after two seconds, not three minutes.
fn short_lease(config: &mut local_server::LocalConfig) {
    config.lease_secs = Some(2);
}

#[test]
fn acknowledged_messages_are_stored_after_a_kill() {
    let dir = tempfile::tempdir().unwrap();
    let acked = wappline::kill_child::acknowledged_before_a_kill(
        "inbound_kill::kill_child_posts_until_killed",
        (KILL_CHILD_DIR, dir.path().as_os_str()),
        300,
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let stored = runtime.block_on(async {
        let h = Harness::start_in(dir.path(), short_lease).await;
        h.drain(platform::INBOUND, Duration::from_secs(30)).await;
        let mut stored: HashMap<String, usize> = HashMap::new();
        for item in h.all_items(Table::Data).await {
            if item.get_s("sk").is_some_and(|sk| sk.starts_with("MSG#")) {
                *stored.entry(h.provider_id_of(&item).await).or_default() += 1;
            }
        }
        h.server.shutdown().await;
        stored
    });
    let lost: Vec<&String> = acked
        .iter()
        .filter(|id| !stored.contains_key(*id))
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged messages lost: {lost:?}",
        lost.len(),
        acked.len()
    );
    let twice: HashSet<(&String, &usize)> = stored.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "stored more than once: {twice:?}");
}
