//! Which tenant each store call acted for (decision 0037), seen under the local server's
//! tenant fence: the console isolation property checks after every step that the console's
//! work touched a tenant's data only while acting for that tenant, so a request of tenant A
//! that built a key of tenant B would have been refused at the port (the fence lets no such
//! call through; one that got here would be reported too). What the console does before a
//! tenant is authenticated keeps the function's own access and is named here: the session
//! check (the user and the session in the tenant's root partition) and the transactions that
//! claim or release a route with the tenant's items.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use wappline::acting;
use wappline::faults::hooked::{SharedHook, StoreCall, StoreHook, Verdict};
use wappline::ids::TenantId;
use wappline::store::Table;

/// One call under the fence: the tenant it acted for, and the tables and keys it named.
#[derive(Debug)]
struct Seen {
    acting: Option<TenantId>,
    op: &'static str,
    keys: Vec<(Table, String, String)>,
}

#[derive(Default)]
pub struct FenceWitness {
    seen: Mutex<Vec<Seen>>,
}

#[async_trait]
impl StoreHook for FenceWitness {
    async fn before(&self, call: &StoreCall<'_>) -> Verdict {
        let mut keys: Vec<(Table, String, String)> = call
            .targets()
            .into_iter()
            .map(|(table, key)| (table, key.pk, key.sk))
            .collect();
        match call {
            StoreCall::Query { table, query } => {
                keys.push((*table, query.pk.clone(), String::new()))
            }
            StoreCall::Scan { table, .. } => keys.push((*table, "(scan)".into(), String::new())),
            _ => {}
        }
        self.seen.lock().unwrap().push(Seen {
            acting: acting::current(),
            op: call.op(),
            keys,
        });
        Verdict::Run
    }
}

impl FenceWitness {
    pub fn new() -> Arc<Self> {
        Arc::new(FenceWitness::default())
    }

    pub fn hook(self: &Arc<Self>) -> SharedHook {
        SharedHook(self.clone())
    }

    /// Forgets what was seen (the set-up's sign-ins and workers).
    pub fn clear(&self) {
        self.seen.lock().unwrap().clear();
    }

    /// The calls seen since the last look that reached a tenant's data without acting for
    /// that tenant, other than the session check and route claims; one line each.
    pub fn unfenced(&self) -> Vec<String> {
        let seen = std::mem::take(&mut *self.seen.lock().unwrap());
        seen.iter().filter_map(unfenced).collect()
    }
}

fn unfenced(s: &Seen) -> Option<String> {
    let tenant_keys: Vec<&(Table, String, String)> = s
        .keys
        .iter()
        .filter(|(table, pk, _)| table.is_tenant_partitioned() && !pk.starts_with("AUTHFAIL#"))
        .collect();
    let describe = |why: &str| {
        let keys: Vec<String> = tenant_keys
            .iter()
            .map(|(t, pk, sk)| format!("{t} {pk} / {sk}"))
            .collect();
        Some(format!("{} {why}: {keys:?}", s.op))
    };
    match &s.acting {
        Some(tenant) => {
            let foreign = tenant_keys
                .iter()
                .any(|(_, pk, _)| !acting::owns_partition(tenant, pk));
            foreign.then(|| describe(&format!("acting for {tenant} on another's key")))?
        }
        None if tenant_keys.is_empty() => None,
        None => {
            // A route claimed or released with the tenant's items, in one transaction.
            let route_claim =
                s.op == "transact" && s.keys.iter().any(|(t, ..)| *t == Table::Routes);
            // The session check: the user, then the session, in the tenant's root partition.
            let session_check = s.op == "get"
                && tenant_keys.iter().all(|(_, pk, sk)| {
                    !pk[2..].contains('#')
                        && (sk.starts_with("USER#") || sk.starts_with("SESSION#"))
                });
            (!route_claim && !session_check).then(|| describe("acting for no tenant"))?
        }
    }
}
