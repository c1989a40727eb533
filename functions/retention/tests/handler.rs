//! The scheduled handler on embedded storage: a retention change is applied within one
//! invocation's time budget, and a budget with no time left still stops cleanly.

use std::time::{Duration, SystemTime};

use wappline::app::Platform;
use wappline::retention::RetentionRun;
use wappline::tenant::{RetentionDays, TenantName};

#[tokio::test]
async fn an_invocation_applies_a_change_and_the_next_finds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::embedded(dir.path()).unwrap();
    let tenant = platform
        .tenants
        .create(
            TenantName::parse("Acme").unwrap(),
            RetentionDays::new(90).unwrap(),
        )
        .await
        .unwrap();
    let scope = platform.tenants.scope(&tenant.id).await.unwrap().unwrap();
    scope
        .set_retention(RetentionDays::new(7).unwrap(), "platform_admin")
        .await
        .unwrap();
    let run = RetentionRun::new(platform.store.clone(), platform.tenants.clone());

    // No time left at all: the run stops before any work and says more is to do.
    let spent = retention::budget(SystemTime::now(), None);
    let report = retention::handle(&run, spent).await.unwrap();
    assert!(report.more_work);
    assert_eq!(report.tenants_done, 0);

    let deadline = SystemTime::now() + Duration::from_secs(90);
    let report = retention::handle(&run, retention::budget(deadline, Some(1000)))
        .await
        .unwrap();
    assert_eq!(report.tenants_done, 1);
    assert!(!report.more_work);
    let again = retention::handle(&run, retention::budget(deadline, None))
        .await
        .unwrap();
    assert_eq!(again.tenants_done, 0);
    assert!(!again.more_work);
    let out = serde_json::to_value(again).unwrap();
    assert_eq!(out["more_work"], false);
}
