//! Domain tests on real adapters: envelope encryption, tenants and channel routes. Each suite
//! runs on the embedded adapters and on the AWS adapters against the moto server.

/// The personal values of Meta deliveries, shared with the end-to-end tests (the directory
/// scan and known-value needles are theirs; these tests read queue bodies).
#[allow(dead_code)]
#[path = "../../../tests/src/personal_data.rs"]
mod personal_data;
#[path = "../conformance/support.rs"]
mod support;

mod accounts;
mod attempts;
mod backends;
mod conversations;
mod customer_races;
mod envelope;
mod erasure;
mod erasure_batches;
mod erasure_email;
mod erasure_sweep;
mod export;
mod handovers;
mod history_progress;
mod hold;
mod inbound_attempts;
mod inbound_log_spans;
mod inbound_order;
mod invocation_reads;
mod key_expiry;
mod mail;
mod meta_deletion;
mod opened_conversations;
mod parking;
mod portal_gate;
mod retention;
mod scheduled_entries;
mod sealed_inbound;
mod tenant_sweep;
mod tenants;
mod thread_reads;
mod usage;
mod vectors;
