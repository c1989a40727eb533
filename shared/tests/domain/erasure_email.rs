//! A contact erasure requested by a user emails that user once when it completes (issue 13,
//! item 7): what was deleted and when, nothing of the erased person.

use std::sync::Arc;

use wappline::accounts::{
    Accounts, AccountsConfig, Email, Mailer, OutboxMailer, Password, PasswordHasher, Principal,
    Role, SessionKey,
};
use wappline::app::Platform;
use wappline::conversation::{Conversations, Direction};
use wappline::erasure::ContactErasure;
use wappline::queue::embedded::EmbeddedQueue;
use wappline::queue::platform;
use wappline::tenant::{RetentionDays, TenantName};

use crate::backends::Backend;
use crate::erasure::{account, customer, text};
use crate::on_both_backends;

fn emails(dir: &std::path::Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    out.sort();
    out
}

async fn the_requester_is_emailed_once_when_a_contact_erasure_completes(b: Backend) {
    let p = Platform::new(b.store.clone(), b.vault.clone());
    let tenant = p
        .tenants
        .create(
            TenantName::parse("Mailer Co").unwrap(),
            RetentionDays::default(),
        )
        .await
        .unwrap()
        .id;
    let accounts = Accounts::new(
        b.store.clone(),
        p.tenants.clone(),
        AccountsConfig::new(
            PasswordHasher::new(12).unwrap(),
            SessionKey::generate().unwrap(),
        ),
    );
    let invitation = accounts
        .invite(
            &tenant,
            &Principal::Platform,
            Email::parse("admin@mailer.test").unwrap(),
            Role::Admin,
        )
        .await
        .unwrap();
    let admin = accounts
        .accept_invitation(
            &invitation.token,
            &Password::new("correct horse battery").unwrap(),
        )
        .await
        .unwrap()
        .user;
    let c = Conversations::new(tenant.clone(), b.store.clone(), p.envelope.clone());
    let erin = customer("US.333333333333333333", "16505550333");
    let conv = c
        .record_customer(&account(), &erin, Some(1), 90)
        .await
        .unwrap();
    c.store_message(
        &account(),
        &conv,
        text("wamid.ERIN1", "erin's secret", 1_000, Direction::Inbound),
        90,
    )
    .await
    .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let outbox = tempfile::tempdir().unwrap();
    let queue = EmbeddedQueue::open(dir.path(), platform::specs()).unwrap();
    let mailer: Arc<dyn Mailer> = Arc::new(
        OutboxMailer::new(outbox.path().to_owned(), "Wappline <no-reply@localhost>").unwrap(),
    );
    let erasure = ContactErasure::new(b.store.clone(), p.envelope.clone(), Arc::new(queue))
        .with_mailer(mailer);
    let request = erasure
        .request(
            &tenant,
            account(),
            erin.id.clone(),
            &format!("user:{}", admin.id),
        )
        .await
        .unwrap();
    erasure.process(&tenant, &request).await.unwrap();
    // A redelivery of the job sends nothing more.
    erasure.process(&tenant, &request).await.unwrap();

    let sent = emails(outbox.path());
    assert_eq!(sent.len(), 1, "one email: {sent:?}");
    let mail = &sent[0];
    assert!(mail.contains("admin@mailer.test"), "to the requester");
    assert!(mail.contains(&request), "names the request");
    for personal in ["16505550333", "333333333333333333", "erin", "Erin", "wamid"] {
        assert!(!mail.contains(personal), "{personal} in the email");
    }
}

on_both_backends!(the_requester_is_emailed_once_when_a_contact_erasure_completes);
