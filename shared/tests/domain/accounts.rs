//! Accounts on both adapter families (DynamoDB on moto as well as the embedded store): the
//! invitation is used up in the transaction that creates the user, refresh tokens rotate
//! under a condition, sign-out and password changes revoke, failures are throttled with
//! atomic counters, and the last owner is kept by the users-version condition.

use std::sync::Arc;

use wappline::accounts::{
    AccountError, Accounts, AccountsConfig, Email, Password, PasswordHasher, Principal, Role,
    SessionKey, UserPrincipal,
};
use wappline::crypto::{CachePolicy, Envelope};
use wappline::ids::TenantId;
use wappline::tenant::{RetentionDays, TenantDirectory, TenantName};

use crate::backends::Backend;
use crate::on_both_backends;

const PW: &str = "correct horse battery";

struct Ctx {
    accounts: Accounts,
    tenant: TenantId,
    _b: Backend,
}

async fn ctx(b: Backend) -> Ctx {
    let envelope = Arc::new(Envelope::new(
        b.store.clone(),
        b.vault.clone(),
        CachePolicy::default(),
    ));
    let tenants = TenantDirectory::new(b.store.clone(), envelope);
    let tenant = tenants
        .create(TenantName::parse("Acme").unwrap(), RetentionDays::default())
        .await
        .unwrap()
        .id;
    let accounts = Accounts::new(
        b.store.clone(),
        tenants,
        AccountsConfig::new(
            PasswordHasher::new(12).unwrap(),
            SessionKey::generate().unwrap(),
        ),
    );
    Ctx {
        accounts,
        tenant,
        _b: b,
    }
}

async fn join(c: &Ctx, email: &str, role: Role) -> wappline::accounts::SignedIn {
    let inv = c
        .accounts
        .invite(
            &c.tenant,
            &Principal::Platform,
            Email::parse(email).unwrap(),
            role,
        )
        .await
        .unwrap();
    c.accounts
        .accept_invitation(&inv.token, &Password::new(PW).unwrap())
        .await
        .unwrap()
}

async fn invitation_session_lifecycle(b: Backend) {
    let c = ctx(b).await;
    let t = c.tenant.to_string();
    let owner = join(&c, "owner@acme.test", Role::Owner).await;
    let p = c.accounts.authenticate(&owner.access_token).await.unwrap();
    assert_eq!((p.tenant.clone(), p.role), (c.tenant.clone(), Role::Owner));

    let rotated = c.accounts.refresh(&owner.refresh_token).await.unwrap();
    assert!(c.accounts.refresh(&owner.refresh_token).await.is_err());
    assert!(
        c.accounts
            .authenticate(&rotated.access_token)
            .await
            .is_err(),
        "a replayed refresh token ends the session"
    );

    let s = c
        .accounts
        .sign_in(&t, "owner@acme.test", PW, Some("192.0.2.1"))
        .await
        .unwrap();
    let p = c.accounts.authenticate(&s.access_token).await.unwrap();
    c.accounts.sign_out(&p).await.unwrap();
    assert!(c.accounts.authenticate(&s.access_token).await.is_err());

    let s = c
        .accounts
        .sign_in(&t, "owner@acme.test", PW, None)
        .await
        .unwrap();
    let p = c.accounts.authenticate(&s.access_token).await.unwrap();
    let new = Password::new("another long passphrase").unwrap();
    c.accounts
        .change_password(&p, PW, &new, None)
        .await
        .unwrap();
    assert!(c.accounts.authenticate(&s.access_token).await.is_err());
    assert!(c.accounts.refresh(&s.refresh_token).await.is_err());
    c.accounts
        .sign_in(&t, "owner@acme.test", "another long passphrase", None)
        .await
        .unwrap();
}

async fn failures_are_throttled(b: Backend) {
    let c = ctx(b).await;
    let t = c.tenant.to_string();
    join(&c, "alice@acme.test", Role::Agent).await;
    for _ in 0..5 {
        assert!(matches!(
            c.accounts
                .sign_in(&t, "alice@acme.test", "wrong password!", Some("192.0.2.9"))
                .await,
            Err(AccountError::BadCredentials)
        ));
    }
    assert!(matches!(
        c.accounts
            .sign_in(&t, "alice@acme.test", PW, Some("192.0.2.10"))
            .await,
        Err(AccountError::Throttled { .. })
    ));
}

async fn the_last_owner_is_kept(b: Backend) {
    let c = ctx(b).await;
    let a = join(&c, "a@acme.test", Role::Owner).await;
    let b2 = join(&c, "b@acme.test", Role::Owner).await;
    let as_user = |s: &wappline::accounts::SignedIn| {
        Principal::User(UserPrincipal {
            tenant: c.tenant.clone(),
            user: s.user.id.clone(),
            role: s.user.role,
            session: String::new(),
        })
    };
    let (pa, pb) = (as_user(&a), as_user(&b2));
    let (ra, rb) = tokio::join!(
        c.accounts
            .set_role(&c.tenant, &pa, &b2.user.id, Role::Admin),
        c.accounts.set_role(&c.tenant, &pb, &a.user.id, Role::Admin),
    );
    assert_eq!(ra.is_ok() as u8 + rb.is_ok() as u8, 1);
    let owners = c
        .accounts
        .list_users(&c.tenant)
        .await
        .unwrap()
        .into_iter()
        .filter(|u| u.role == Role::Owner)
        .count();
    assert_eq!(owners, 1);
    // The one left cannot leave either.
    let last = if ra.is_ok() { &a } else { &b2 };
    assert!(matches!(
        c.accounts
            .remove_user(&c.tenant, &Principal::Platform, &last.user.id)
            .await,
        Err(AccountError::Conflict(_))
    ));
}

on_both_backends!(
    invitation_session_lifecycle,
    failures_are_throttled,
    the_last_owner_is_kept
);
