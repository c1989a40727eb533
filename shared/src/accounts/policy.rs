//! The privacy-policy version (decision 0047): a setting (`PRIVACY_POLICY_VERSION`, the
//! policy's effective date), the version each user acknowledged (on the user item, see
//! [`Accounts::acknowledge_policy`]), and the email that tells every user of every active
//! account when it changes.
//!
//! The email is sent by a scheduled run ([`PolicyMailing::run`]; the erasure worker's
//! account-maintenance schedule on AWS, the local server's schedules locally): changing the
//! setting and deploying is the trigger. Each user is mailed at most once per version: the
//! user item's `policy_mailed` is raised to the version by a conditional update *before*
//! sending (only when it is absent or older: versions are dates, so they compare as strings),
//! and lowered back if the send fails, so a re-run or a concurrent run never sends twice and a
//! failed send is retried. When a pass finishes with nothing left, a platform marker
//! (`POLICY#ANNOUNCED` / version) makes later runs a single read.

use std::sync::Arc;

use super::mailer::{Mail, Mailer};
use super::service::user_key;
use super::users::list_users;
use super::AccountError;
use crate::clock::now_secs;
use crate::ids::TenantId;
use crate::store::{AttrValue, Condition, Item, Key, StoreError, Table, TableStore, Update};
use crate::tenant::{TenantDirectory, TenantStatus};

const MAILED_ATTR: &str = "policy_mailed";
const ANNOUNCED_PK: &str = "POLICY#ANNOUNCED";

/// A policy version: its effective date, `YYYY-MM-DD`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyVersion(String);

impl PolicyVersion {
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        let b = s.as_bytes();
        let ok = b.len() == 10
            && b[4] == b'-'
            && b[7] == b'-'
            && b.iter()
                .enumerate()
                .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
        ok.then(|| PolicyVersion(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What one announcement run did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct PolicyAnnouncement {
    pub mailed: usize,
    pub failed: usize,
    /// The budget ran out: run again.
    pub more_work: bool,
    /// Every user of every active account has been mailed this version.
    pub complete: bool,
}

#[derive(askama::Template)]
#[template(path = "policy_changed.txt")]
struct PolicyMail<'a> {
    version: &'a str,
    console: &'a str,
}

/// The email run of a changed privacy policy. Needs no session key: it only reads users.
#[derive(Clone)]
pub struct PolicyMailing {
    store: Arc<dyn TableStore>,
    tenants: TenantDirectory,
    mailer: Option<Arc<dyn Mailer>>,
    version: Option<String>,
    public_base_url: Option<String>,
}

impl PolicyMailing {
    /// `version`: the configured current version; `public_base_url`: where the console is.
    pub fn new(
        store: Arc<dyn TableStore>,
        tenants: TenantDirectory,
        mailer: Option<Arc<dyn Mailer>>,
        version: Option<String>,
        public_base_url: Option<String>,
    ) -> Self {
        PolicyMailing {
            store,
            tenants,
            mailer,
            version,
            public_base_url: public_base_url.map(|u| u.trim_end_matches('/').to_owned()),
        }
    }

    /// Mails the current privacy-policy version to each user of each active account who has
    /// neither been mailed it nor acknowledged it, at most `budget` emails this run. Nothing
    /// without a configured version or mailer.
    pub async fn run(&self, budget: usize) -> Result<PolicyAnnouncement, AccountError> {
        let mut report = PolicyAnnouncement::default();
        let (Some(version), Some(_)) = (&self.version, &self.mailer) else {
            return Ok(report);
        };
        let marker = Key::new(ANNOUNCED_PK, version.as_str());
        if self.store.get(Table::Routes, &marker).await?.is_some() {
            report.complete = true;
            return Ok(report);
        }
        let console = self.public_base_url.as_deref().unwrap_or_default();
        let text = askama::Template::render(&PolicyMail {
            version,
            console: &format!("{console}/app"),
        })
        .expect("the template only formats strings");
        let mut after = None;
        loop {
            let page = self
                .tenants
                .list(after.as_ref(), 100)
                .await
                .map_err(|e| AccountError::Crypto(e.to_string()))?;
            for entry in &page.tenants {
                // The tenant's users, under its own credentials (decision 0037).
                let run = self.announce_to(&entry.id, version, &text, budget, &mut report);
                crate::acting::acting_for(&entry.id, run).await?;
                if report.more_work {
                    return Ok(report);
                }
            }
            match page.next.and_then(|t| crate::ids::TenantId::parse(&t).ok()) {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        if report.failed == 0 {
            self.store
                .put(
                    Table::Routes,
                    Item::new(&marker).with("completed_at", now_secs()),
                    None,
                )
                .await?;
            report.complete = true;
        }
        tracing::info!(
            mailed = report.mailed,
            failed = report.failed,
            "privacy-policy announcement run"
        );
        Ok(report)
    }

    /// One active tenant's users (every role: the policy is about each person's data).
    async fn announce_to(
        &self,
        tenant: &TenantId,
        version: &str,
        text: &str,
        budget: usize,
        report: &mut PolicyAnnouncement,
    ) -> Result<(), AccountError> {
        let status = match self.tenants.profile(tenant).await {
            Ok(profile) => profile.map(|p| p.status),
            Err(crate::tenant::TenantError::Store(e)) => return Err(e.into()),
            Err(e) => return Err(AccountError::Crypto(e.to_string())),
        };
        if status != Some(TenantStatus::Active) {
            return Ok(());
        }
        let Some(mailer) = &self.mailer else {
            return Ok(());
        };
        for user in list_users(self.store.as_ref(), tenant).await? {
            if user.policy_seen.as_deref() == Some(version) {
                continue;
            }
            if report.mailed >= budget {
                report.more_work = true;
                return Ok(());
            }
            let key = user_key(tenant, &user.id);
            let previous = self
                .store
                .get(Table::Data, &key)
                .await?
                .and_then(|i| i.get_s(MAILED_ATTR).map(str::to_owned));
            let claim = Condition::And(vec![
                Condition::Exists,
                Condition::Or(vec![
                    Condition::AttrNotExists(MAILED_ATTR.into()),
                    Condition::LessThan(MAILED_ATTR.into(), AttrValue::S(version.to_owned())),
                ]),
            ]);
            let set = Update::new().set(MAILED_ATTR, version);
            match self.store.update(Table::Data, &key, set, Some(claim)).await {
                Ok(_) => {}
                // Mailed already (by an earlier or a concurrent run).
                Err(StoreError::ConditionFailed { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
            let mail = Mail {
                to: user.email.clone(),
                subject: "Wappline's privacy policy has changed".into(),
                text: text.to_owned(),
            };
            if mailer.send(&mail).await.is_ok() {
                report.mailed += 1;
                continue;
            }
            report.failed += 1;
            tracing::error!(tenant = %tenant, user = %user.id, "privacy-policy email could not be sent; retried next run");
            let undo = match &previous {
                Some(p) => Update::new().set(MAILED_ATTR, p.as_str()),
                None => Update::new().remove(MAILED_ATTR),
            };
            let ours = Condition::Equals(MAILED_ATTR.into(), version.into());
            match self.store.update(Table::Data, &key, undo, Some(ours)).await {
                Ok(_) | Err(StoreError::ConditionFailed { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts::service::fixture::*;
    use crate::accounts::Role;

    /// A run cut short by its budget, then the next: each user mailed once; acknowledging
    /// users are skipped; a new version mails again.
    #[tokio::test]
    async fn each_user_is_mailed_once_per_version_across_runs() {
        let f = fixture_with_cost(crate::accounts::MIN_BCRYPT_COST).await;
        for who in ["a@acme.test", "b@acme.test", "c@acme.test"] {
            user(&f, who, Role::Agent).await;
        }
        let mailing = |version: &str| {
            PolicyMailing::new(
                f.platform.store.clone(),
                f.platform.tenants.clone(),
                Some(f.outbox.clone()),
                Some(version.to_owned()),
                Some("https://console.example".into()),
            )
        };
        let count = |version: &str| {
            f.outbox
                .delivered()
                .unwrap()
                .iter()
                .filter(|m| m.contains("privacy policy") && m.contains(version))
                .count()
        };
        let first = mailing("2026-12-01");
        let r = first.run(2).await.unwrap();
        assert_eq!((r.mailed, r.more_work, r.complete), (2, true, false));
        let r = first.run(10).await.unwrap();
        assert_eq!((r.mailed, r.complete), (1, true));
        assert_eq!(count("2026-12-01"), 3);
        assert_eq!(first.run(10).await.unwrap().mailed, 0);
        assert_eq!(count("2026-12-01"), 3);
        let r = mailing("2027-01-01").run(10).await.unwrap();
        assert_eq!(r.mailed, 3);
        assert_eq!(count("https://console.example/app"), 6);
    }

    #[test]
    fn versions_are_dates() {
        assert_eq!(
            PolicyVersion::parse(" 2026-12-01 ").unwrap().as_str(),
            "2026-12-01"
        );
        for bad in ["2026-12-1", "v2", "2026/12/01", "", "2026-12-01x"] {
            assert!(PolicyVersion::parse(bad).is_none(), "{bad}");
        }
    }
}
