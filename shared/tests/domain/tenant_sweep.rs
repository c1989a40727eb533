//! Account erasure reads by key only (decision 0027): a tenant with one item of every kind,
//! sharing the tables with another tenant, is erased through a store that records every call;
//! the sweep issues no scan and reads no other tenant's partition, and a scan made here, by
//! the test, finds nothing of the erased tenant but what decision 0027 leaves to expire.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wappline::accounts::{
    Accounts, AccountsConfig, Email, Mailer, OutboxMailer, Password, PasswordHasher, Principal,
    Role, SessionKey,
};
use wappline::api_keys::{ApiKeyScope, ApiKeys};
use wappline::app::Platform;
use wappline::audit::{AuditAction, AuditLog};
use wappline::bitrix::imconnector::OpenLineId;
use wappline::conversation::{Conversations, Direction};
use wappline::erasure::tenant::TenantErasure;
use wappline::faults::hooked::{HookedStore, StoreCall, Verdict};
use wappline::idempotency::Idempotency;
use wappline::ids::TenantId;
use wappline::portal::install::ConnectionCodes;
use wappline::store::{Table, TableStore};
use wappline::tenant::{ChannelKind, ChannelRef, Connection, RetentionDays, Secret, TenantName};

use crate::backends::Backend;
use crate::erasure::{account, customer, everything, text};
use crate::on_both_backends;

/// Every call the sweep makes: (operation, table, partition key).
#[derive(Default)]
pub(crate) struct Calls(Mutex<Vec<(&'static str, Table, String)>>);

impl Calls {
    fn log(&self, op: &'static str, t: Table, pk: &str) {
        self.0.lock().unwrap().push((op, t, pk.to_owned()));
    }
    /// Logs a call: each item it names, or the partition it queries.
    fn record(&self, call: &StoreCall<'_>) {
        match call {
            StoreCall::Put { table, item, .. } => {
                self.log("put", *table, item.get_s("pk").unwrap_or_default())
            }
            StoreCall::Query { table, query } => self.log("query", *table, &query.pk),
            StoreCall::Scan { table, .. } => self.log("scan", *table, ""),
            _ => {
                for (t, k) in call.targets() {
                    self.log(call.op(), t, &k.pk);
                }
            }
        }
    }
    pub(crate) fn take(&self) -> Vec<(&'static str, Table, String)> {
        std::mem::take(&mut self.0.lock().unwrap())
    }
}

/// A store decorator that records every call (batches as the single deletes they were
/// before the sweep batched).
pub(crate) fn recording(inner: Arc<dyn TableStore>, calls: Arc<Calls>) -> Arc<dyn TableStore> {
    Arc::new(
        HookedStore::with(inner, move |call: &StoreCall<'_>| {
            calls.record(call);
            Verdict::Run
        })
        .one_by_one(),
    )
}

/// A tenant with one item of every kind its flows create.
async fn rich_tenant(
    p: &Platform,
    store: &Arc<dyn TableStore>,
    name: &str,
    phone: &str,
) -> TenantId {
    let tenant = p
        .tenants
        .create(TenantName::parse(name).unwrap(), RetentionDays::default())
        .await
        .unwrap()
        .id;
    let scope = p.tenants.scope(&tenant).await.unwrap().unwrap();
    let mut secrets = BTreeMap::new();
    secrets.insert("access_token", Secret::parse("t", "EAAsweepTOKEN").unwrap());
    scope
        .connect(Connection {
            channel: ChannelRef::parse(ChannelKind::WhatsApp, phone).unwrap(),
            details: BTreeMap::new(),
            secrets,
            authorized_by: None,
        })
        .await
        .unwrap();
    // Users (owner, with a session), a pending invitation.
    let accounts = Accounts::new(
        store.clone(),
        p.tenants.clone(),
        AccountsConfig::new(
            PasswordHasher::new(12).unwrap(),
            SessionKey::generate().unwrap(),
        ),
    );
    let owner = format!("owner@{}.test", name.to_ascii_lowercase());
    let inv = accounts
        .invite(
            &tenant,
            &Principal::Platform,
            Email::parse(&owner).unwrap(),
            Role::Owner,
        )
        .await
        .unwrap();
    accounts
        .accept_invitation(&inv.token, &Password::new("correct horse battery").unwrap())
        .await
        .unwrap();
    let invitee = format!("agent@{}.test", name.to_ascii_lowercase());
    accounts
        .invite(
            &tenant,
            &Principal::Platform,
            Email::parse(&invitee).unwrap(),
            Role::Agent,
        )
        .await
        .unwrap();
    // An API key, a Bitrix24 connection code, an audit entry.
    ApiKeys::new(store.clone())
        .create(&tenant, "crm", ApiKeyScope::Send, None)
        .await
        .unwrap();
    ConnectionCodes::new(store.clone())
        .issue(&tenant, OpenLineId::new(1).unwrap())
        .await
        .unwrap();
    AuditLog::new(store.clone())
        .record(&tenant, AuditAction::ErasureRequested, "test", &[])
        .await
        .unwrap();
    // Conversations with messages, their index items and idempotency records.
    let c = Conversations::new(tenant.clone(), store.clone(), p.envelope.clone());
    let inbound = Idempotency::new(store.clone(), "IN", Duration::from_secs(30));
    for n in 0..3 {
        let conv = c
            .record_customer(
                &account(),
                &customer(
                    &format!("US.55555555555555555{n}"),
                    &format!("1650555010{n}"),
                ),
                Some(1),
                90,
            )
            .await
            .unwrap();
        for m in 0..4 {
            let wamid = format!("wamid.{name}{n}{m}");
            c.store_message(
                &account(),
                &conv,
                text(&wamid, "a message body", 1_000 + m, Direction::Inbound),
                90,
            )
            .await
            .unwrap();
            let key = format!("wa:{}:wa:msg:{wamid}", account().id());
            if let wappline::idempotency::Begin::Started(k) =
                inbound.begin(&tenant, &key).await.unwrap()
            {
                inbound.complete(&k).await.unwrap();
            }
        }
        // An erased subject's marker (and the tenant's marker secret).
        if n == 0 {
            wappline::conversation::erased::ErasedSubjects::new(store.clone())
                .mark(&tenant, &conv, 1_000)
                .await
                .unwrap();
        }
    }
    tenant
}

async fn the_sweep_reads_by_key_and_leaves_nothing(b: Backend) {
    let calls = Arc::new(Calls::default());
    let recording = recording(b.store.clone(), calls.clone());
    let p = Platform::new(recording.clone(), b.vault.clone());
    let gone = rich_tenant(&p, &recording, "Leaving", "106540352242931").await;
    let stays = rich_tenant(&p, &recording, "Staying", "106540352242932").await;
    let before: Vec<_> = everything(&b)
        .await
        .into_iter()
        .filter(|(_, i)| stays.owns_partition(i.get_s("pk").unwrap_or_default()))
        .collect();
    assert!(
        before.len() > 20,
        "the other tenant has data: {}",
        before.len()
    );

    let outbox = tempfile::tempdir().unwrap();
    let mailer = Arc::new(
        OutboxMailer::new(outbox.path().to_owned(), "Wappline <no-reply@localhost>").unwrap(),
    );
    let erasure = TenantErasure::new(recording.clone(), p.envelope.clone(), p.tenants.clone())
        .with_mailer(mailer.clone() as Arc<dyn Mailer>);
    erasure
        .request(&gone, Duration::ZERO, "platform_admin")
        .await
        .unwrap();
    calls.take();
    let mut runs = 0;
    while erasure.run_due(7).await.unwrap().more_work {
        runs += 1;
        assert!(runs < 1000, "the sweep does not finish");
    }
    assert_eq!(
        erasure.status(&gone).await.unwrap().unwrap().state,
        "completed"
    );
    // Run again (a redelivery): nothing more is sent.
    erasure.run_due(100).await.unwrap();

    let made = calls.take();
    assert!(!made.is_empty());
    for (op, table, pk) in &made {
        assert_ne!(*op, "scan", "the sweep scanned {table}");
        assert!(
            !stays.owns_partition(pk),
            "the sweep touched the other tenant: {op} {table} {pk}"
        );
    }

    // Scanned here: nothing of the erased tenant is left but what expires on its own.
    let now = wappline::clock::now_secs();
    for (table, item) in everything(&b).await {
        let pk = item.get_s("pk").unwrap_or_default();
        if table == Table::Dedupe && gone.owns_partition(pk) {
            // Decision 0027: dedupe records that cannot be derived hold no personal data
            // and expire within 8 days.
            let names: Vec<&str> = item.0.keys().map(String::as_str).collect();
            for n in &names {
                assert!(
                    [
                        "pk",
                        "sk",
                        "status",
                        "lease_until",
                        "completed_at",
                        "expires_at"
                    ]
                    .contains(n),
                    "{pk} holds {n}"
                );
            }
            assert!(item.get_n("expires_at").unwrap() <= now + 8 * 86_400 + 60);
            continue;
        }
        assert!(!gone.owns_partition(pk), "{table} still holds {pk}");
        if item.get_s("tenant_id") == Some(gone.as_str()) {
            assert_eq!(
                pk,
                format!("TERASE#{gone}"),
                "{table} still names the tenant"
            );
        }
        assert!(
            !pk.contains(gone.as_str()) || pk == format!("TERASE#{gone}"),
            "{table} still names the tenant in {pk}"
        );
    }
    // The other tenant is intact, item for item.
    let after: Vec<_> = everything(&b)
        .await
        .into_iter()
        .filter(|(_, i)| stays.owns_partition(i.get_s("pk").unwrap_or_default()))
        .collect();
    assert_eq!(before, after);

    // The owner was told, once; the message names no customer.
    let mails = mailer.delivered().unwrap();
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert!(mails[0].contains("To: owner@leaving.test"), "{}", mails[0]);
    assert!(mails[0].contains(gone.as_str()));
    assert!(mails[0].contains("Completed: "));
    assert!(!mails[0].contains("agent@leaving.test"));
    assert!(!mails[0].contains("1650555010"));
    assert!(!mails[0].contains("US.5555"));
}

on_both_backends!(the_sweep_reads_by_key_and_leaves_nothing);
