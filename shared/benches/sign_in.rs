//! Sign-in benchmark: what a sign-in costs for a right password, a wrong one, an unknown
//! email and an unknown account, so "comparable time" is a measured figure and not a hope;
//! and what bcrypt costs per step. Run with `cargo bench -p wappline --bench sign_in`;
//! figures go to docs/performance.md.
//!
//! Uses the embedded store (no network). A fresh email per failing attempt keeps the
//! throttle out of the measurement.

use std::time::{Duration, Instant};

use wappline::accounts::{
    Accounts, AccountsConfig, Email, Password, PasswordHasher, Principal, Role, SessionKey,
};
use wappline::app::Platform;
use wappline::tenant::{RetentionDays, TenantName};

const PW: &str = "correct horse battery";
const ROUNDS: usize = 15;

fn summary(label: &str, mut times: Vec<Duration>) -> f64 {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let median = ms(times[times.len() / 2]);
    println!(
        "{label:<34} median {median:>7.1} ms   min {:>7.1}   max {:>7.1}   ({} runs)",
        ms(times[0]),
        ms(times[times.len() - 1]),
        times.len()
    );
    median
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::embedded(dir.path()).unwrap();
    let cost = wappline::accounts::MIN_BCRYPT_COST;
    let accounts = Accounts::new(
        platform.store.clone(),
        platform.tenants.clone(),
        AccountsConfig::new(
            PasswordHasher::new(cost).unwrap(),
            SessionKey::generate().unwrap(),
        ),
    );
    let tenant = platform
        .tenants
        .create(
            TenantName::parse("Bench").unwrap(),
            RetentionDays::default(),
        )
        .await
        .unwrap()
        .id;
    let t = tenant.to_string();
    let invitation = accounts
        .invite(
            &tenant,
            &Principal::Platform,
            Email::parse("alice@bench.test").unwrap(),
            Role::Agent,
        )
        .await
        .unwrap();
    accounts
        .accept_invitation(&invitation.token, &Password::new(PW).unwrap())
        .await
        .unwrap();
    // Warm-up: the dummy hash is made on first use.
    let _ = accounts.sign_in(&t, "warm@bench.test", PW, None).await;

    let mut right = vec![];
    let mut wrong = vec![];
    let mut unknown_email = vec![];
    let mut unknown_account = vec![];
    for i in 0..ROUNDS {
        let started = Instant::now();
        accounts
            .sign_in(&t, "alice@bench.test", PW, None)
            .await
            .unwrap();
        right.push(started.elapsed());

        // Wrong passwords for alice would lock her after five; a sibling user per round
        // would need an invitation each, so the wrong-password case uses a throttle-free
        // account: alice again, cleared by the next right sign-in.
        let started = Instant::now();
        assert!(accounts
            .sign_in(&t, "alice@bench.test", "not the password", None)
            .await
            .is_err());
        wrong.push(started.elapsed());
        accounts
            .sign_in(&t, "alice@bench.test", PW, None)
            .await
            .unwrap();

        let email = format!("nobody{i}@bench.test");
        let started = Instant::now();
        assert!(accounts.sign_in(&t, &email, PW, None).await.is_err());
        unknown_email.push(started.elapsed());

        let started = Instant::now();
        assert!(accounts
            .sign_in("tn_ffffffffffffffffffffffff", &email, PW, None)
            .await
            .is_err());
        unknown_account.push(started.elapsed());
    }
    println!("sign-in at bcrypt cost {cost}, embedded store:");
    let a = summary("right password", right);
    let b = summary("wrong password", wrong);
    let c = summary("unknown email", unknown_email);
    let d = summary("unknown account", unknown_account);
    let failures = [b, c, d];
    let spread = failures.iter().cloned().fold(f64::MIN, f64::max)
        - failures.iter().cloned().fold(f64::MAX, f64::min);
    println!("spread between the three failures   {spread:>7.1} ms (right password {a:.1} ms)");

    println!("bcrypt hash per cost:");
    for cost in [12, 13, 14] {
        let hasher = PasswordHasher::new(cost).unwrap();
        let pw = Password::new(PW).unwrap();
        let mut times = vec![];
        for _ in 0..5 {
            let started = Instant::now();
            hasher.hash(&pw).await.unwrap();
            times.push(started.elapsed());
        }
        summary(&format!("cost {cost}"), times);
    }
}
