//! In-process schedules: what EventBridge rules do in AWS (template.yaml), done by a timer
//! per job here.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use wappline::app::{EmbeddedHandles, Services, ServicesError};
use wappline::retention::Budget;

/// A scheduled job's body: one run, Ok or a message for the log.
pub type Job =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

/// One scheduled job: a name for the logs, how often, and what to run.
#[derive(Clone)]
pub struct Schedule {
    pub name: &'static str,
    pub every: Duration,
    pub run: Job,
}

/// Runs `schedule` every `every` until `stop` turns true; a failed run is logged and the next
/// one happens on time.
pub async fn run(schedule: Schedule, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(schedule.every) => {}
        }
        if *stop.borrow() {
            return;
        }
        if let Err(e) = (schedule.run)().await {
            tracing::warn!(schedule = schedule.name, error = %e, "scheduled job failed");
        }
    }
}

/// Writes the metrics every `every` (the Lambda functions write them after each invocation;
/// a server would write a line per request), and once more when stopped.
pub async fn flush_metrics(
    metrics: wappline::metrics::Metrics,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            _ = tokio::time::sleep(every) => {}
        }
        if *stop.borrow() {
            break;
        }
        metrics.flush();
    }
    metrics.flush();
}

/// Items one scheduled run may touch (as the Lambda functions' budgets).
const BUDGET_ITEMS: usize = 5_000;

/// The platform's schedules (template.yaml's EventBridge rules), plus the TTL purge that
/// DynamoDB does on its own in AWS, each every `every_secs` seconds.
pub fn platform(
    services: &Services,
    embedded: &EmbeddedHandles,
    every_secs: u64,
) -> Result<Vec<Schedule>, ServicesError> {
    let every = Duration::from_secs(every_secs.max(1));
    let tenant_erasure = Arc::new(services.tenant_erasure()?);
    let ttl = embedded.store.clone();
    let retention = services.retention();
    let mut schedules = vec![
        Schedule {
            name: "tenant-erasure",
            every,
            run: Arc::new(move || {
                let tenant_erasure = tenant_erasure.clone();
                Box::pin(async move {
                    let report = tenant_erasure.run_due(BUDGET_ITEMS).await;
                    report.map(|_| ()).map_err(|e| e.to_string())
                })
            }),
        },
        Schedule {
            name: "ttl-purge",
            every,
            run: Arc::new(move || {
                let ttl = ttl.clone();
                Box::pin(async move {
                    let purged = ttl.purge_expired(10_000).await;
                    purged.map(|_| ()).map_err(|e| e.to_string())
                })
            }),
        },
        Schedule {
            name: "retention",
            every,
            run: Arc::new(move || {
                let retention = retention.clone();
                Box::pin(async move {
                    let budget = Budget::items(BUDGET_ITEMS as u64)
                        .until(std::time::Instant::now() + Duration::from_secs(20));
                    let report = retention.run_once(budget).await;
                    report.map(|_| ()).map_err(|e| e.to_string())
                })
            }),
        },
    ];
    // The revocations' retry (in AWS, the sync worker's schedule).
    let revocations = services.revocations()?;
    schedules.push(Schedule {
        name: "revocations",
        every,
        run: Arc::new(move || {
            let revocations = revocations.clone();
            Box::pin(async move {
                let report = revocations.run_due(BUDGET_ITEMS).await;
                report.map(|_| ()).map_err(|e| e.to_string())
            })
        }),
    });
    // The renewal of Instagram Login tokens (in AWS, the erasure worker's schedule).
    let token_refresh = services.token_refresh()?;
    schedules.push(Schedule {
        name: "token-refresh",
        every,
        run: Arc::new(move || {
            let token_refresh = token_refresh.clone();
            Box::pin(async move {
                let report = token_refresh
                    .run_due(wappline::clock::now_secs(), BUDGET_ITEMS)
                    .await;
                report.map(|_| ()).map_err(|e| e.to_string())
            })
        }),
    });
    // The email of a changed privacy policy (in AWS, the erasure worker's schedule).
    let policy = services.policy_mailing();
    schedules.push(Schedule {
        name: "policy-mailing",
        every,
        run: Arc::new(move || {
            let policy = policy.clone();
            Box::pin(async move {
                let report = policy.run(BUDGET_ITEMS).await;
                report.map(|_| ()).map_err(|e| e.to_string())
            })
        }),
    });
    // The re-read of message templates (in AWS, the erasure worker's schedule too).
    let template_sync = services.template_sync()?;
    schedules.push(Schedule {
        name: "template-sync",
        every,
        run: Arc::new(move || {
            let template_sync = template_sync.clone();
            Box::pin(async move {
                let report = template_sync
                    .run_due(wappline::clock::now_secs(), BUDGET_ITEMS)
                    .await;
                report.map(|_| ()).map_err(|e| e.to_string())
            })
        }),
    });
    // The check of webhook subscriptions (in AWS, the erasure worker's schedule too).
    let subscription_check = services.subscription_check()?;
    schedules.push(Schedule {
        name: "subscription-check",
        every,
        run: Arc::new(move || {
            let subscription_check = subscription_check.clone();
            Box::pin(async move {
                let report = subscription_check
                    .run_due(wappline::clock::now_secs(), BUDGET_ITEMS)
                    .await;
                report.map(|_| ()).map_err(|e| e.to_string())
            })
        }),
    });
    // The sync worker's schedule, when CRM sync is configured (the Bitrix24 application).
    match services.portal_probe() {
        Ok(probe) => schedules.push(Schedule {
            name: "parked-portal-probe",
            every,
            run: Arc::new(move || {
                let probe = probe.clone();
                Box::pin(async move {
                    let report = probe.run_once().await;
                    report.map(|_| ()).map_err(|e| e.to_string())
                })
            }),
        }),
        Err(ServicesError::Missing { .. }) => {}
        Err(e) => return Err(e),
    }
    // Restrictions that end without an event, shown on their lines (in AWS, the sync
    // worker's schedule; decision 0066).
    if let Some(ends) = services.restriction_ends() {
        schedules.push(Schedule {
            name: "restriction-ends",
            every,
            run: Arc::new(move || {
                let ends = ends.clone();
                Box::pin(async move {
                    let report = ends
                        .run_due(wappline::clock::now_secs(), BUDGET_ITEMS)
                        .await;
                    report.map(|_| ()).map_err(|e| e.to_string())
                })
            }),
        });
    }
    Ok(schedules)
}

/// The sync worker's import of Coexistence chat history (decision 0052), when CRM sync is
/// configured; `per_run`: its pace, when not the default.
pub fn history_import(
    services: &Services,
    every_secs: u64,
    per_run: Option<usize>,
) -> Result<Option<Schedule>, ServicesError> {
    if let Err(e) = services.portal_probe() {
        return match e {
            ServicesError::Missing { .. } => Ok(None),
            e => Err(e),
        };
    }
    let mut import = services.history_import()?;
    if let Some(n) = per_run {
        import = import.with_posts_per_run(n);
    }
    Ok(Some(Schedule {
        name: "history-import",
        every: Duration::from_secs(every_secs.max(1)),
        run: Arc::new(move || {
            let import = import.clone();
            Box::pin(async move {
                let report = import.run_once().await;
                report.map(|_| ()).map_err(|e| e.to_string())
            })
        }),
    }))
}
