//! Cross-function end-to-end tests live in tests/tests/api/ (one test binary, `api`).

pub mod console;
pub mod embedded_tenant;
pub mod fake_bitrix;
pub mod fake_graph;
pub mod fault_proxy;
pub mod harness;
pub mod moto;
pub mod outbox;
pub mod personal_data;
pub mod relay_world;
pub mod soak;
pub mod webdriver;
pub mod whatsapp_events;
