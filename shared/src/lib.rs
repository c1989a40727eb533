//! Wappline's domain crate: everything that is not a Lambda entry point.
//!
//! - [`ids`]: typed identifiers that validate on construction.
//! - [`store`], [`queue`], [`vault`]: the three ports (table store, queue, key vault), each with
//!   an AWS adapter and an embedded (file-backed, no network) adapter; [`objects`], the object
//!   store (S3, or files), the same way.
//! - [`crypto`]: envelope encryption of secret fields and message bodies.
//! - [`tenant`]: tenants, channel connections and the global routes table.
//! - [`hold`]: a suspended tenant's webhook jobs, held until it is resumed.

pub mod accounts;
pub mod acting;
pub mod api_keys;
pub mod app;
pub mod audit;
pub mod bitrix;
pub mod clock;
pub mod coexistence;
pub mod consumer;
pub mod conversation;
pub mod costs;
pub mod crm_sync;
pub mod crypto;
pub mod edge;
pub mod erasure;
pub mod export;
pub mod faults;
pub mod graph;
mod group_commit;
pub mod hold;
pub mod http_client;
pub mod idempotency;
pub mod ids;
pub mod inbound;
/// For tests of the durability promise with a real kill (this crate's and the end-to-end
/// tests'); nothing in the functions uses it.
#[doc(hidden)]
pub mod kill_child;
pub mod logging;
pub mod media;
pub mod message_provider;
pub mod meta;
pub mod meta_deletion;
pub mod metrics;
pub mod objects;
pub mod onboarding;
pub mod outbound;
pub mod own_attempts;
pub mod ownership;
pub mod pacing;
pub mod portal;
pub mod portal_events;
mod private_file;
pub mod public_resolver;
pub mod queue;
pub mod retention;
pub mod revocation;
pub mod run_guard;
pub mod secret;
pub mod sqs_lambda;
pub mod store;
pub mod templates;
pub mod tenant;
pub mod usage;
pub mod vault;
