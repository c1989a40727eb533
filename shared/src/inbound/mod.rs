//! The inbound relay: Meta webhook deliveries become one queue job per event ([`intake`],
//! run by the meta-webhook function), each an [`InboundJob`] on `inbound.fifo` ([`job`]), and
//! each job is stored, deduplicated and handed to CRM sync ([`worker`], run by the
//! inbound-worker function).

pub mod intake;
pub mod job;
pub mod worker;

pub use job::{InboundJob, INBOUND_JOB_VERSION};
