//! Account email through Amazon SES (API v2) on the moto server: a verified sender delivers,
//! an unverified one is refused and the error reaches the caller.

use wappline::accounts::{Email, Mail, Mailer, SesMailer};

use crate::support::{aws_config, unique};

fn invitation(to: &str) -> Mail {
    Mail {
        to: Email::parse(to).unwrap(),
        subject: "You are invited to Wappline".into(),
        text: "token wpi1.secret".into(),
    }
}

#[tokio::test]
async fn ses_delivers_from_a_verified_sender_and_refuses_an_unverified_one() {
    let sdk = aws_config().await;
    let client = aws_sdk_sesv2::Client::new(&sdk);
    let from = format!("{}@wappline.example", unique("no-reply"));
    let mailer = SesMailer::new(client.clone(), &from);

    let refused = mailer.send(&invitation("owner@acme.example")).await;
    let err = refused.expect_err("an unverified sender must be refused");
    assert!(err.to_string().contains("not verified"), "{err}");

    client
        .create_email_identity()
        .email_identity(&from)
        .send()
        .await
        .unwrap();
    mailer
        .send(&invitation("owner@acme.example"))
        .await
        .expect("a verified sender delivers");
}
