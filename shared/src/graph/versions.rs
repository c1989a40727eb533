//! Meta's published Graph API versions and the day each one stops working.
//!
//! Meta keeps a version callable for at least two years after its successor ships; a call to
//! an expired version is served by the oldest available one, whose behaviour may differ (the
//! Graph API changelog, "Available Graph API Versions"). So the version we call is a choice
//! with a deadline: [`DEFAULT_VERSION`](super::DEFAULT_VERSION) must never be within
//! [`UPGRADE_NOTICE_DAYS`] of its end date, a test checks it against today's date, and a
//! process whose configured version is close to its end date says so in its log at start.
//!
//! The table is copied from the changelog (checked 2026-12-04). When Meta publishes an end
//! date for a version whose date is still "TBD", add it here: the test then starts counting.
//! The upgrade procedure is in `docs/deploy.md`.

use crate::clock::{civil_from_days, days_from_civil};

/// How long before a version's end date we must have moved off it (about 3 months).
pub const UPGRADE_NOTICE_DAYS: i64 = 92;

/// One published version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublishedVersion {
    /// `v<major>.<minor>`, as in the URL.
    pub name: &'static str,
    /// Release day, `(year, month, day)`.
    pub introduced: (i64, i64, i64),
    /// Last day of service, or `None` while Meta lists it as "TBD".
    pub available_until: Option<(i64, i64, i64)>,
}

/// The Graph API versions still in service or recently expired, newest first.
pub const PUBLISHED: &[PublishedVersion] = &[
    v("v26.0", (2026, 7, 29), None),
    v("v25.0", (2026, 2, 18), Some((2028, 7, 29))),
    v("v24.0", (2025, 10, 8), Some((2028, 2, 18))),
    v("v23.0", (2025, 5, 29), Some((2027, 10, 8))),
    v("v22.0", (2025, 1, 21), Some((2027, 5, 20))),
    v("v21.0", (2024, 10, 2), Some((2027, 1, 21))),
    v("v20.0", (2024, 5, 21), Some((2026, 9, 24))),
    v("v19.0", (2024, 1, 23), Some((2026, 5, 21))),
];

const fn v(
    name: &'static str,
    introduced: (i64, i64, i64),
    available_until: Option<(i64, i64, i64)>,
) -> PublishedVersion {
    PublishedVersion {
        name,
        introduced,
        available_until,
    }
}

/// Where a version stands on a given day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionStanding {
    /// In service with no end date published, or more than [`UPGRADE_NOTICE_DAYS`] left.
    Current,
    /// Fewer than [`UPGRADE_NOTICE_DAYS`] days left: time to upgrade.
    EndingSoon { until: String, days_left: i64 },
    /// Past its end date: Meta serves the calls with another version.
    Expired { until: String },
    /// Not in [`PUBLISHED`]: older than the table, or newer than the last check.
    Unknown,
}

/// The published entry of `version`, if the table has it.
pub fn published(version: &str) -> Option<&'static PublishedVersion> {
    PUBLISHED.iter().find(|p| p.name == version)
}

/// How `version` stands on `today` (days since 1970-01-01, UTC).
pub fn standing(version: &str, today: i64) -> VersionStanding {
    let Some(entry) = published(version) else {
        return VersionStanding::Unknown;
    };
    let Some((y, m, d)) = entry.available_until else {
        return VersionStanding::Current;
    };
    let end = days_from_civil(y, m, d);
    let until = format!("{y:04}-{m:02}-{d:02}");
    if today > end {
        VersionStanding::Expired { until }
    } else if end - today < UPGRADE_NOTICE_DAYS {
        VersionStanding::EndingSoon {
            until,
            days_left: end - today,
        }
    } else {
        VersionStanding::Current
    }
}

/// A warning worth logging at start for `version` on `today`, or `None` when it is fine.
pub fn start_notice(version: &str, today: i64) -> Option<String> {
    let newest = PUBLISHED[0].name;
    match standing(version, today) {
        VersionStanding::Current => None,
        VersionStanding::EndingSoon { until, days_left } => Some(format!(
            "Graph API {version} stops working on {until} ({days_left} days): move to {newest} (docs/deploy.md)"
        )),
        VersionStanding::Expired { until } => Some(format!(
            "Graph API {version} expired on {until}; Meta now answers with another version: move to {newest} (docs/deploy.md)"
        )),
        VersionStanding::Unknown => {
            let (y, m, d) = civil_from_days(today);
            Some(format!(
                "Graph API {version} is not in the published table (checked before {y:04}-{m:02}-{d:02}): check its end date"
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::DEFAULT_VERSION;

    fn day(y: i64, m: i64, d: i64) -> i64 {
        days_from_civil(y, m, d)
    }

    /// Fails on the day the default comes within three months of its published end date, so
    /// the upgrade happens before Meta switches versions under us.
    #[test]
    fn the_default_version_is_not_close_to_its_end_date() {
        let today = crate::clock::now_secs().div_euclid(86_400);
        assert_eq!(
            standing(DEFAULT_VERSION, today),
            VersionStanding::Current,
            "upgrade the default Graph API version (docs/deploy.md, 'Graph API version')"
        );
    }

    #[test]
    fn standing_counts_to_the_end_date() {
        assert_eq!(
            standing("v21.0", day(2026, 10, 1)),
            VersionStanding::Current
        );
        assert_eq!(
            standing("v21.0", day(2026, 12, 4)),
            VersionStanding::EndingSoon {
                until: "2027-01-21".into(),
                days_left: 48
            }
        );
        assert_eq!(
            standing("v21.0", day(2027, 1, 21)),
            VersionStanding::EndingSoon {
                until: "2027-01-21".into(),
                days_left: 0
            }
        );
        assert_eq!(
            standing("v21.0", day(2027, 1, 22)),
            VersionStanding::Expired {
                until: "2027-01-21".into()
            }
        );
        assert_eq!(standing("v26.0", day(2040, 1, 1)), VersionStanding::Current);
        assert_eq!(standing("v9.0", day(2026, 1, 1)), VersionStanding::Unknown);
    }

    #[test]
    fn notices_name_the_date_and_the_way_out() {
        assert_eq!(start_notice("v25.0", day(2026, 12, 4)), None);
        let soon = start_notice("v21.0", day(2026, 12, 4)).unwrap();
        assert!(
            soon.contains("2027-01-21") && soon.contains("48 days"),
            "{soon}"
        );
        assert!(soon.contains(PUBLISHED[0].name), "{soon}");
        let gone = start_notice("v20.0", day(2026, 12, 4)).unwrap();
        assert!(gone.contains("expired on 2026-09-24"), "{gone}");
        assert!(start_notice("v99.0", day(2026, 12, 4))
            .unwrap()
            .contains("not in the published table"));
    }

    #[test]
    fn the_table_is_newest_first_and_dates_follow_releases() {
        for pair in PUBLISHED.windows(2) {
            assert!(pair[0].introduced > pair[1].introduced, "{pair:?}");
            // A newer version is never switched off before an older one.
            if let (Some(a), Some(b)) = (pair[0].available_until, pair[1].available_until) {
                assert!(a > b, "{pair:?}");
            }
        }
        assert!(published(DEFAULT_VERSION).is_some());
    }
}
