//! Backups stay within the privacy promise (decision 0028): every table's point-in-time
//! recovery keeps copies for a set number of days, short enough that erasure plus backup
//! lifetime stays within 30 days of the deletion request.

use wappline::erasure::tenant::DEFAULT_GRACE;
use yaml_rust2::YamlLoader;

/// The promise: nothing of an erased contact or account survives 30 days, backups included.
const PROMISE_DAYS: i64 = 30;
/// A contact erasure runs from its queue at once; a day covers retries and a redrive.
const CONTACT_ERASURE_DAYS: i64 = 1;
/// An account sweep starts after the grace period and runs in budgeted steps within a day.
const ACCOUNT_SWEEP_DAYS: i64 = 1;

#[test]
fn every_table_keeps_backups_only_as_long_as_the_promise_allows() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml");
    let text = std::fs::read_to_string(path).expect("template.yaml");
    let docs = YamlLoader::load_from_str(&text).expect("template.yaml is YAML");
    let resources = docs[0]["Resources"].as_hash().expect("Resources");
    let grace_days = (DEFAULT_GRACE.as_secs() / 86_400) as i64;
    let mut tables = 0;
    for (name, resource) in resources {
        if resource["Type"].as_str() != Some("AWS::DynamoDB::Table") {
            continue;
        }
        tables += 1;
        let name = name.as_str().unwrap_or_default();
        let pitr = &resource["Properties"]["PointInTimeRecoverySpecification"];
        assert_eq!(
            pitr["PointInTimeRecoveryEnabled"].as_bool(),
            Some(true),
            "{name}: point-in-time recovery on"
        );
        // Without RecoveryPeriodInDays DynamoDB keeps 35 days: past the promise.
        let days = pitr["RecoveryPeriodInDays"]
            .as_i64()
            .unwrap_or_else(|| panic!("{name}: RecoveryPeriodInDays is not set (35 by default)"));
        assert!(
            CONTACT_ERASURE_DAYS + days <= PROMISE_DAYS,
            "{name}: a contact's deleted items restorable until day {}",
            CONTACT_ERASURE_DAYS + days
        );
        // Account erasure destroys the tenant's keys at the end of the sweep: what a backup
        // of the keys table still holds is what could decrypt the other tables' copies.
        if name == "KeysTable" {
            assert!(
                grace_days + ACCOUNT_SWEEP_DAYS + days <= PROMISE_DAYS,
                "{name}: an erased account's keys restorable until day {}",
                grace_days + ACCOUNT_SWEEP_DAYS + days
            );
        }
    }
    assert_eq!(tables, 4, "data, routes, keys, dedupe");
}
