//! `GET /health`: whether this deployment can serve, for a load balancer, an uptime probe or
//! an operator (decision 0038). It says what it checked, answers within [`TIMEOUT`] and
//! reveals nothing about a tenant: no id, no count, no version, no error text.
//!
//! What it checks:
//! - `configuration`: the function's settings and clients were built at cold start (a
//!   function whose settings are invalid fails its cold start and never answers);
//! - `routes_table`: one read of a fixed key that no tenant owns, in the routes table (the
//!   table every relay step reads first), through the function's own role.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::StatusCode;
use serde_json::{json, Value};

use crate::store::{Key, Table, TableStore};

/// The route's path, on the HTTP API and on the local server.
pub const PATH: &str = "/health";
/// The longest the store check may take before it counts as failed.
pub const TIMEOUT: Duration = Duration::from_secs(2);
/// The key read: a partition no tenant, route or index uses.
const PROBE_PK: &str = "HEALTH";

/// The health check. Build once per process.
#[derive(Clone)]
pub struct Health {
    store: Arc<dyn TableStore>,
}

impl Health {
    pub fn new(store: Arc<dyn TableStore>) -> Self {
        Health { store }
    }

    /// 200 with every check `ok`, or 503 naming the check that failed (`timeout` or
    /// `unavailable`, never the error's text).
    pub async fn check(&self) -> (StatusCode, Value) {
        let started = Instant::now();
        let key = Key::new(PROBE_PK, "probe");
        let store = match tokio::time::timeout(TIMEOUT, self.store.get(Table::Routes, &key)).await {
            Ok(Ok(_)) => "ok",
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "health check: the routes table did not answer");
                "unavailable"
            }
            Err(_) => "timeout",
        };
        let ok = store == "ok";
        let status = if ok {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        let body = json!({
            "status": if ok { "ok" } else { "unavailable" },
            "checks": {"configuration": "ok", "routes_table": store},
            "elapsed_ms": started.elapsed().as_millis() as u64,
        });
        (status, body)
    }
}
