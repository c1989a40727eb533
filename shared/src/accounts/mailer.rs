//! Outgoing account email (invitations, password resets) behind a port.
//!
//! The local platform delivers to an outbox directory: one RFC 5322 `.eml` file per message,
//! which a developer opens in any mail client (the way a local SMTP catcher works, without a
//! server). A deployment sends through Amazon SES ([`SesMailer`]) when `MAIL_FROM` is set.
//! Without a mailer it still works: invitation tokens are handed to the inviting admin, and
//! self-service password reset answers 503 `not_configured` rather than pretending to have
//! sent anything.

use std::path::PathBuf;

use async_trait::async_trait;

use super::Email;

/// One message to one recipient. The body holds a one-time secret: it is never logged.
pub struct Mail {
    pub to: Email,
    pub subject: String,
    pub text: String,
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("mail delivery failed: {0}")]
    Delivery(String),
}

#[async_trait]
pub trait Mailer: Send + Sync + 'static {
    async fn send(&self, mail: &Mail) -> Result<(), MailError>;
}

/// Writes each message as an `.eml` file in a directory (created 0700; files 0600).
pub struct OutboxMailer {
    dir: PathBuf,
    from: String,
}

impl OutboxMailer {
    pub fn new(dir: PathBuf, from: &str) -> Result<Self, MailError> {
        std::fs::create_dir_all(&dir).map_err(|e| MailError::Delivery(e.to_string()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
        }
        Ok(OutboxMailer {
            dir,
            from: from.to_owned(),
        })
    }

    /// The messages delivered so far, oldest first (file names sort by time).
    pub fn delivered(&self) -> Result<Vec<String>, MailError> {
        let mut names: Vec<_> = std::fs::read_dir(&self.dir)
            .map_err(|e| MailError::Delivery(e.to_string()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .collect();
        names.sort();
        names
            .into_iter()
            .map(|p| std::fs::read_to_string(p).map_err(|e| MailError::Delivery(e.to_string())))
            .collect()
    }
}

#[async_trait]
impl Mailer for OutboxMailer {
    async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        let id = super::random_hex(8).map_err(|e| MailError::Delivery(e.to_string()))?;
        let name = format!("{:013}-{id}.eml", crate::clock::now_millis());
        // Header values come from our own templates and a validated address: no CR/LF.
        let message = format!(
            "From: {}\r\nTo: {}\r\nSubject: {}\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{}\r\n",
            self.from,
            mail.to.as_str(),
            mail.subject.replace(['\r', '\n'], " "),
            mail.text.replace('\n', "\r\n"),
        );
        let path = self.dir.join(name);
        let tmp = path.with_extension("tmp");
        crate::private_file::write_new_private(&tmp, message.as_bytes())
            .map_err(|e| MailError::Delivery(e.to_string()))?;
        // Renamed into place so a reader never sees half a message.
        std::fs::rename(&tmp, &path).map_err(|e| MailError::Delivery(e.to_string()))
    }
}

/// Sends through Amazon SES (API v2) from a verified address. SES's message id is logged;
/// the body, which holds a one-time secret, never is.
pub struct SesMailer {
    client: aws_sdk_sesv2::Client,
    from: String,
}

impl SesMailer {
    pub fn new(client: aws_sdk_sesv2::Client, from: &str) -> Self {
        SesMailer {
            client,
            from: from.to_owned(),
        }
    }
}

#[async_trait]
impl Mailer for SesMailer {
    async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message};
        let content = |text: &str| {
            Content::builder()
                .data(text)
                .charset("UTF-8")
                .build()
                .map_err(|e| MailError::Delivery(e.to_string()))
        };
        let message = Message::builder()
            .subject(content(&mail.subject)?)
            .body(Body::builder().text(content(&mail.text)?).build())
            .build();
        let sent = self
            .client
            .send_email()
            .from_email_address(&self.from)
            .destination(
                Destination::builder()
                    .to_addresses(mail.to.as_str())
                    .build(),
            )
            .content(EmailContent::builder().simple(message).build())
            .send()
            .await
            .map_err(|e| {
                MailError::Delivery(aws_sdk_sesv2::error::DisplayErrorContext(&e).to_string())
            })?;
        tracing::info!(
            message_id = sent.message_id().unwrap_or(""),
            "account email sent"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_outbox_holds_one_eml_file_per_message() {
        let dir = tempfile::tempdir().unwrap();
        let outbox =
            OutboxMailer::new(dir.path().join("outbox"), "Wappline <no-reply@localhost>").unwrap();
        outbox
            .send(&Mail {
                to: Email::parse("alice@example.com").unwrap(),
                subject: "Hello\r\nBcc: evil@example.com".into(),
                text: "line one\nline two".into(),
            })
            .await
            .unwrap();
        let mails = outbox.delivered().unwrap();
        assert_eq!(mails.len(), 1);
        assert!(mails[0].contains("To: alice@example.com\r\n"));
        assert!(mails[0].contains("Subject: Hello  Bcc: evil@example.com\r\n"));
        assert!(mails[0].ends_with("line one\r\nline two\r\n"));
    }
}
