//! Cross-function end-to-end tests of the local server and the domain services, as one test
//! binary (one link instead of one per file): each module is what used to be its own file
//! under `tests/tests/`. Run one area with e.g. `cargo test -p e2e-tests --test api access::`.

mod access;
mod admin_api;
mod aws_privacy;
mod backup_retention;
mod bitrix_batch;
mod bitrix_client;
mod bitrix_install;
mod bitrix_webhook;
mod coexistence;
mod console;
mod crm_parking;
mod data_deletion;
mod data_dir_privacy;
mod disconnect;
mod erasure;
mod erasure_wins;
mod export;
mod iam_coverage;
mod inbound_queue_privacy;
mod inbound_relay;
mod inbound_to_bitrix;
mod isolation;
mod media_links;
mod metrics;
mod onboarding;
mod outbound_relay;
mod outbound_worker;
mod oversized_event;
mod ownership;
mod placement;
mod public_api;
mod retention;
mod revocation;
mod sample_events;
mod server_limits;
mod suspension;
mod sync_attempts;
mod sync_faults;
mod template_wiring;
mod usage_quota;
