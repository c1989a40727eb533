//! The admin API's integration tests, as one test binary (one link instead of one per file):
//! each module is what used to be its own file under `functions/admin-api/tests/`.

mod access_logs;
mod common;
mod connection_codes;
mod routing;
mod sample_events;
mod settings;
