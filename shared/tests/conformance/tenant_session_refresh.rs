//! A cached tenant session is renewed before it expires, and not before it is due
//! (`REFRESH_BEFORE_EXPIRY`, decision 0037); a renewal that fails fails the request with an
//! error naming the role and the tenant, and the next request tries again.
//!
//! Against moto (its `AssumeRole` answers sessions expiring an hour after its own clock), with
//! the SDK's clock under the test's control: the identity cache reads the time from the SDK
//! configuration, so moving that clock ages the cached session without waiting an hour.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents, SharedInterceptor};
use aws_smithy_async::time::TimeSource;
use wappline::acting::acting_for;
use wappline::app::tenant_sessions::{REFRESH_BEFORE_EXPIRY, SESSION_LENGTH};
use wappline::app::{AwsClientOptions, TenantSessions};
use wappline::ids::TenantId;
use wappline::store::dynamo::{provision_tables, DynamoStore, TableNames};
use wappline::store::fence::{FencedStore, TenantStores};
use wappline::store::{Key, StoreError, Table, TableStore};

use crate::support::{aws_config, unique};

const ROLE: &str = "arn:aws:iam::123456789012:role/refresh-tenant-data";

/// The SDK's clock, moved by the test.
#[derive(Debug, Clone)]
struct Clock(Arc<Mutex<SystemTime>>);

impl TimeSource for Clock {
    fn now(&self) -> SystemTime {
        *self.0.lock().unwrap()
    }
}

impl Clock {
    fn set(&self, at: SystemTime) {
        *self.0.lock().unwrap() = at;
    }
}

/// Makes STS fail while `down` is set: an `AssumeRole` that never reaches STS, as when STS
/// is unreachable.
#[derive(Debug, Clone, Default)]
struct StsOutage {
    down: Arc<AtomicBool>,
}

impl Intercept for StsOutage {
    fn name(&self) -> &'static str {
        "StsOutage"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let body = context.request().body().bytes().unwrap_or_default();
        let assume = body.windows(17).any(|w| w == b"Action=AssumeRole");
        if assume && self.down.load(Ordering::SeqCst) {
            return Err("STS is unreachable (test outage)".into());
        }
        Ok(())
    }
}

/// One request of `tenant`'s work: a read of its profile, signed with its session.
async fn read(store: &FencedStore, tenant: &TenantId) -> Result<(), StoreError> {
    let key = Key::new(tenant.partition(), "PROFILE");
    acting_for(tenant, store.get(Table::Data, &key))
        .await
        .map(|_| ())
}

#[tokio::test]
async fn a_cached_tenant_session_is_renewed_before_it_expires_and_not_before() {
    let start = SystemTime::now();
    let clock = Clock(Arc::new(Mutex::new(start)));
    let sdk = aws_config()
        .await
        .to_builder()
        .time_source(clock.clone())
        .build();
    let names = TableNames::with_prefix(&unique("refresh"));
    provision_tables(&aws_sdk_dynamodb::Client::new(&sdk), &names)
        .await
        .unwrap();
    let outage = StsOutage::default();
    let options = AwsClientOptions {
        interceptors: vec![SharedInterceptor::new(outage.clone())],
        ..AwsClientOptions::default()
    };
    let sessions = Arc::new(TenantSessions::new(
        &sdk,
        ROLE.into(),
        names.clone(),
        "unused".into(),
        None,
        options,
    ));
    let store = FencedStore::new(
        Arc::new(DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), names)),
        Some(sessions.clone() as Arc<dyn TenantStores>),
    );
    let tenant = TenantId::generate();

    read(&store, &tenant).await.unwrap();
    assert_eq!(sessions.assume_calls(), 1);
    // moto's session expires SESSION_LENGTH after its `AssumeRole` (whole seconds).
    let expiry = start + SESSION_LENGTH;
    let margin = Duration::from_secs(10);

    // Not due yet: the cache renews at most REFRESH_BEFORE_EXPIRY before the expiry.
    clock.set(expiry - REFRESH_BEFORE_EXPIRY - margin);
    read(&store, &tenant).await.unwrap();
    assert_eq!(sessions.assume_calls(), 1, "renewed before it was due");

    // Due (past the latest renewal point, half of REFRESH_BEFORE_EXPIRY before the expiry,
    // the jitter included) and not yet expired: renewed.
    clock.set(expiry - REFRESH_BEFORE_EXPIRY / 2 + margin);
    read(&store, &tenant).await.unwrap();
    assert_eq!(sessions.assume_calls(), 2, "not renewed before its expiry");

    // A renewal that fails fails the request, naming the role and the tenant.
    clock.set(expiry + SESSION_LENGTH);
    outage.down.store(true, Ordering::SeqCst);
    let err = read(&store, &tenant).await.unwrap_err();
    assert_eq!(sessions.assume_calls(), 3);
    let message = err.to_string();
    assert!(
        message.contains("could not assume the tenant-data role")
            && message.contains(ROLE)
            && message.contains(tenant.as_str())
            && message.contains("STS is unreachable"),
        "{message}"
    );
    assert!(
        matches!(err, StoreError::Unavailable(_)),
        "a failed renewal is worth a retry: {err:?}"
    );
    // STS back: the next request assumes again and succeeds.
    outage.down.store(false, Ordering::SeqCst);
    read(&store, &tenant).await.unwrap();
    assert_eq!(sessions.assume_calls(), 4);
}
