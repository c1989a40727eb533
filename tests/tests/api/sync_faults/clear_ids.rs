//! No write the sync stage makes holds a customer's message id in clear (decision 0120). A
//! post's outcome was stored with the external message id Bitrix24 answers with: the
//! wamid, which holds the customer's phone number in base64, unencrypted on the staged
//! operation until the job dropped it (and in the freed pages of the local server's data
//! file after that, where `data_dir_privacy` found it now and then).

use std::sync::Mutex;

use async_trait::async_trait;
use e2e_tests::harness::contains_bytes;
use wappline::faults::hooked::{HookedStore, StoreCall, StoreHook, Verdict};

use super::*;

/// Every value written (put, update, transaction) that holds one of `needles`.
#[derive(Default)]
struct WritesInClear {
    needles: Mutex<Vec<String>>,
    found: Mutex<Vec<String>>,
}

#[async_trait]
impl StoreHook for WritesInClear {
    async fn before(&self, call: &StoreCall<'_>) -> Verdict {
        let needles = self.needles.lock().unwrap().clone();
        for (name, value) in call.written_values() {
            for n in &needles {
                if contains_bytes(value, n.as_bytes()) {
                    self.found
                        .lock()
                        .unwrap()
                        .push(format!("{} of {name}: {n}", call.op()));
                }
            }
        }
        Verdict::Run
    }
}

/// Customers' messages pushed to the portal, which answers each post with its external id
/// (the wamid): none of the sync stage's writes holds a wamid in clear.
#[tokio::test]
async fn no_write_of_a_push_holds_the_message_id_in_clear() {
    let rig = Rig::start().await;
    let store = Arc::new(HookedStore::new(
        rig.h.server.platform().store.clone(),
        WritesInClear::default(),
    ));
    let worker = rig.worker(store.clone());
    let want = rig.customers_write(3, 2, "clear").await;
    *store.hook().needles.lock().unwrap() = want.iter().flatten().cloned().collect();
    rig.run_until_empty(&worker, 20, |_| Duration::ZERO).await;
    rig.assert_delivered_once_in_order(&want);
    let found = store.hook().found.lock().unwrap().clone();
    assert!(found.is_empty(), "{found:#?}");
    rig.h.server.shutdown().await;
}
