//! The inbound relay: Meta webhook deliveries become one queue job per event ([`intake`],
//! run by the meta-webhook function), each an [`InboundJob`] sealed with the tenant's
//! envelope on `inbound.fifo` ([`job`]), and each job is opened, stored, deduplicated and
//! handed to CRM sync ([`worker`], run by the inbound-worker function).

mod account;
pub mod intake;
pub mod job;
pub mod mention;
pub mod worker;

pub use job::{InboundJob, JobError, INBOUND_JOB_VERSION, LEGACY_PLAIN_JOB_VERSION};
