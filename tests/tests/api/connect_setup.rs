//! Set-up and checks the admin API's connect tests share (onboarding, ownership, revocation):
//! a tenant, an admin POST whose refusal is part of the test, the tenant's audit entries, and
//! the check that a refused connect stored nothing.

use e2e_tests::harness::{contains_bytes, Harness, ADMIN};
use reqwest::StatusCode;
use serde_json::Value;
use wappline::store::Table;

/// POSTs `body` to the admin API at `path`, whatever it answers: status and JSON answer.
pub(crate) async fn admin_post(h: &Harness, path: &str, body: Value) -> (StatusCode, Value) {
    let resp = h
        .http
        .post(format!("{}{path}", h.base))
        .bearer_auth(ADMIN)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// The tenant's audit entries, newest first.
pub(crate) async fn audit(h: &Harness, tenant: &str) -> Vec<Value> {
    h.admin_get(&format!("/admin/tenants/{tenant}/audit")).await["entries"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// No route and no channel for `id`, and no item holds `token` in clear.
pub(crate) async fn nothing_connected(h: &Harness, id: &str, token: &str) {
    for item in h.all_items(Table::Routes).await {
        let pk = item.get_s("pk").unwrap_or_default();
        assert!(
            !(pk.starts_with("ROUTE#") && pk.ends_with(&format!("#{id}"))),
            "a route for {id}: {pk}"
        );
    }
    for item in h.all_items(Table::Data).await {
        let sk = item.get_s("sk").unwrap_or_default();
        assert!(
            !(sk.starts_with("CH#") && sk.ends_with(&format!("#{id}"))),
            "a channel item for {id}: {sk}"
        );
    }
    token_never_in_clear(h, token).await;
}

/// No item of any table holds `token` in clear.
pub(crate) async fn token_never_in_clear(h: &Harness, token: &str) {
    for table in [Table::Data, Table::Routes, Table::Keys, Table::Dedupe] {
        for item in h.all_items(table).await {
            for v in item.0.values() {
                assert!(
                    !contains_bytes(v, token.as_bytes()),
                    "the token is stored in clear in {table:?}"
                );
            }
        }
    }
}
