//! Syncing conversations into the tenant's Bitrix24 Open Line: the jobs the inbound worker
//! (and later the outbound path) put on the sync queue, and the processor that runs them.
//!
//! Jobs carry only keys, never message content or customer details: the processor reads and
//! decrypts what it needs from the store, and stages the one Bitrix24 call a job needs in the
//! portal's outbox ([`outbox`]), which one process at a time posts in batches ([`flush`],
//! paced by [`gate`]; decision 0023).

mod attempts_here;
mod chat;
pub mod deaths;
pub mod flush;
pub mod gate;
pub mod history;
mod job;
pub mod outbox;
pub mod parking;
mod probe;
pub mod profile;
mod retry;
mod settled;
mod worker;

pub use flush::{Clock, FlushConfig, FlushReport, PortalFlusher};
pub use history::{HistoryImport, HistoryImportReport};
pub use job::{SyncAction, SyncJob, SYNC_JOB_VERSION};
pub use parking::{ParkState, ParkedPortal, Parking};
pub use probe::{PortalProbe, ProbeReport};
pub use profile::CustomerProfiles;
pub use retry::RetryPolicy;
pub use worker::{MediaLinker, SyncWorker, WaitConfig};
