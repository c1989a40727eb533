//! Syncing conversations into the tenant's Bitrix24 Open Line: the jobs the inbound worker
//! (and later the outbound path) put on the sync queue, and the processor that runs them.
//!
//! Jobs carry only keys, never message content or customer details: the processor reads and
//! decrypts what it needs from the store.

mod job;
mod worker;

pub use job::{SyncAction, SyncJob, SYNC_JOB_VERSION};
pub use worker::{MediaLinker, RetryPolicy, SyncWorker};
