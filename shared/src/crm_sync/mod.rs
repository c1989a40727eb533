//! Syncing conversations into the tenant's Bitrix24 Open Line: the jobs the inbound worker
//! (and later the outbound path) put on the sync queue, and the processor that runs them.
//!
//! Jobs carry only keys, never message content or customer details: the processor reads and
//! decrypts what it needs from the store.

mod job;
pub mod parking;
mod probe;
mod worker;

pub use job::{SyncAction, SyncJob, SYNC_JOB_VERSION};
pub use parking::{ParkState, ParkedPortal, Parking};
pub use probe::{PortalProbe, ProbeReport};
pub use worker::{MediaLinker, RetryPolicy, SyncWorker};
