//! Port conformance suites. Each suite is written once against the port trait and run
//! against both adapter families: the embedded adapters (files in a temp dir) and the AWS
//! adapters (against the moto server that the test script starts; see `support`).

mod support;

mod fence;
mod objects;
mod queue;
mod queue_index;
mod redrive;
mod secrets;
mod store;
mod store_batch;
mod store_unprocessed;
mod tenant_session_refresh;
mod vault;
