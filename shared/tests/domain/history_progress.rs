//! WhatsApp Coexistence history: Meta's progress of a number's history sync only moves
//! forward in what the console shows, whatever order its chunks are processed in. Chunks
//! run in their customers' inbound FIFO groups, so two can be recorded at once.

use wappline::coexistence::Coexistence;
use wappline::ids::{PhoneNumberId, TenantId};

use crate::backends::Backend;
use crate::hold::HoldNextUpdate;
use crate::on_both_backends;

const NUMBER: &str = "106540352242922";

/// A chunk at 50 % whose write is held until a chunk at 100 % has been recorded: the
/// console must still show 100 % (and phase 2), and the later chunk time.
async fn a_late_chunk_does_not_move_progress_back(b: Backend) {
    let (store, hook) = HoldNextUpdate::over(b.store.clone(), NUMBER);
    let coexistence = std::sync::Arc::new(Coexistence::new(store));
    let tenant = TenantId::generate();
    let number = PhoneNumberId::parse(NUMBER).unwrap();

    let behind = {
        let (c, t, n) = (coexistence.clone(), tenant.clone(), number.clone());
        async move { c.record_progress(&t, &n, Some(1), Some(50), false).await }
    };
    let (behind, ahead) = hook
        .meanwhile(hook.arm(), behind, async {
            coexistence
                .record_progress(&tenant, &number, Some(2), Some(100), false)
                .await
        })
        .await;
    behind.unwrap();
    ahead.unwrap();

    let state = coexistence.state(&tenant, &number).await.unwrap();
    assert_eq!(state.meta_progress, Some(100));
    assert_eq!(state.meta_phase, Some(2));
    assert!(state.last_chunk_at.is_some());

    // In order too: a lower report later leaves 100 %, a refusal is still recorded, and
    // the same progress again is taken (a redelivery).
    coexistence
        .record_progress(&tenant, &number, Some(1), Some(40), true)
        .await
        .unwrap();
    let state = coexistence.state(&tenant, &number).await.unwrap();
    assert_eq!(
        (state.meta_progress, state.meta_phase),
        (Some(100), Some(2))
    );
    assert!(state.declined, "the refusal is recorded");
    coexistence
        .record_progress(&tenant, &number, Some(3), Some(100), false)
        .await
        .unwrap();
    let state = coexistence.state(&tenant, &number).await.unwrap();
    assert_eq!(state.meta_phase, Some(3));
}

on_both_backends!(a_late_chunk_does_not_move_progress_back);
