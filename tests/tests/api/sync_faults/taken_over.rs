//! Delivery A of a sync job stalled past its visibility and its hold's lease, delivery B
//! taking the job over: the set-up the take-over tests share (decisions 0080 and 0105).

use std::time::Duration;

use wappline::consumer::{Outcome, QueueRecord, RecordHandler};
use wappline::crm_sync::SyncWorker;
use wappline::queue::{platform, Queue};

use super::{Pause, Rig};

/// How long delivery A keeps the record hidden.
const VISIBILITY: Duration = Duration::from_millis(300);

impl Rig {
    /// Receives the sync queue's one record and runs it with `stalling` (delivery A) until
    /// A's hook stops at `pause`; `at_pause` then checks what A did so far. The record's
    /// visibility and the job's lease run out, delivery B (`normal`) gets the job in one
    /// round, and A goes on. Returns A's outcome, with A's receipt acknowledged as A's
    /// consumer would (stale: B's delivery settled the record).
    pub(super) async fn taken_over(
        &self,
        stalling: &SyncWorker,
        normal: &SyncWorker,
        pause: &Pause,
        at_pause: impl FnOnce(),
    ) -> Outcome {
        let queue = self.h.server.queue();
        let name = platform::name(platform::SYNC);
        let got = queue.receive(&name, 1, VISIBILITY).await.unwrap();
        assert_eq!(got.len(), 1);
        let record = QueueRecord::from(&got[0]);
        let a = stalling.handle(&record);
        let b = async {
            pause.reached().await;
            at_pause();
            // A's record becomes visible again and its hold's lease runs out.
            tokio::time::sleep(VISIBILITY + Duration::from_millis(100)).await;
            self.advance(Duration::from_secs(200));
            let (seen, _) = self.round(normal).await;
            assert_eq!(seen, 1, "B got the job");
            pause.go_on();
        };
        let (a_outcome, ()) = tokio::join!(a, b);
        let _ = queue.ack(&name, &got[0].receipt).await;
        a_outcome
    }
}
