//! Security emails (decision 0047): to a user who signs in from a device we have not seen for
//! them, and to a user whose password was changed or reset.
//!
//! A *device* is the browser's User-Agent together with the network it comes from (the
//! source address's /24 for IPv4, /48 for IPv6), as one keyed hash:
//! `HMAC-SHA256(key derived from the session key, tenant, user, user agent, network)`.
//! Only that hash is stored (`DEVICE#<user>#<hash>`, with a TTL renewed at each sign-in), so
//! the store holds no address or browser string, and nobody without the key can test a guess
//! against it. A new browser, or the same one on another network, counts as new: that is the
//! sign-in a user wants to hear about. The first sign-in of a user is new too (the message
//! then confirms their own sign-in).
//!
//! A device is recorded with a conditional put, so concurrent sign-ins from one new device
//! send one email. Mail failures never fail the sign-in or the password change; they are
//! logged without the address.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::mailer::Mail;
use super::service::{Accounts, StoredUser};
use super::{AccountError, SignedIn, UserId};
use crate::clock::{now_secs, rfc3339};
use crate::ids::TenantId;
use crate::store::{Condition, Item, Key, Query, StoreError, Table, Update, TTL_ATTR};

/// How long a device is remembered after its last sign-in.
pub const DEVICE_DAYS: i64 = 180;
const DEVICE_DOMAIN: &str = "wappline-device";

/// Where a sign-in comes from, as the HTTP edge saw it.
#[derive(Clone, Copy, Debug, Default)]
pub struct SignInDevice<'a> {
    pub source: Option<&'a str>,
    pub user_agent: Option<&'a str>,
}

/// The network of a source address: IPv4 /24 (`203.0.113.0/24`), IPv6 /48, else `unknown`.
/// The full address is never kept or mailed.
pub fn network_of(source: Option<&str>) -> String {
    match source.and_then(|s| s.trim().parse::<std::net::IpAddr>().ok()) {
        Some(std::net::IpAddr::V4(v4)) => {
            let o = v4.octets();
            format!("{}.{}.{}.0/24", o[0], o[1], o[2])
        }
        Some(std::net::IpAddr::V6(v6)) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}::/48", s[0], s[1], s[2])
        }
        None => "unknown".to_owned(),
    }
}

fn device_prefix(user: &UserId) -> String {
    format!("DEVICE#{user}#")
}

#[derive(askama::Template)]
#[template(path = "security_new_device.txt")]
struct NewDeviceMail<'a> {
    tenant_id: &'a str,
    when: String,
    network: &'a str,
    browser: &'a str,
}

#[derive(askama::Template)]
#[template(path = "security_password_changed.txt")]
struct PasswordChangedMail<'a> {
    tenant_id: &'a str,
    when: String,
}

/// A short, printable description of a User-Agent for the email (at most 120 characters).
fn browser_of(user_agent: Option<&str>) -> String {
    let ua: String = user_agent
        .unwrap_or("unknown")
        .chars()
        .filter(|c| !c.is_control())
        .take(120)
        .collect();
    if ua.trim().is_empty() {
        "unknown".into()
    } else {
        ua
    }
}

impl Accounts {
    /// Signs in as [`Accounts::sign_in`] does; a device new to the user is remembered and
    /// the user emailed about it.
    pub async fn sign_in_from(
        &self,
        account_id: &str,
        email: &str,
        password: &str,
        device: SignInDevice<'_>,
    ) -> Result<SignedIn, AccountError> {
        let signed = self
            .sign_in(account_id, email, password, device.source)
            .await?;
        if let Err(e) = self.note_device(&signed, device).await {
            // The sign-in stands; the device is looked at again next time.
            tracing::warn!(tenant = %signed.tenant_id, user = %signed.user.id, error = %e, "sign-in device not recorded");
        }
        Ok(signed)
    }

    fn device_hash(&self, tenant: &TenantId, user: &UserId, ua: &str, network: &str) -> String {
        let key = self.config.session_key.derive(DEVICE_DOMAIN);
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&key).expect("HMAC accepts keys of any length");
        // `\0` separates the parts: none of them can contain it.
        for part in [tenant.as_str(), user.as_str(), ua, network] {
            mac.update(part.as_bytes());
            mac.update(b"\0");
        }
        hex::encode(mac.finalize().into_bytes())
    }

    async fn note_device(
        &self,
        signed: &SignedIn,
        device: SignInDevice<'_>,
    ) -> Result<(), AccountError> {
        let network = network_of(device.source);
        let ua = device.user_agent.unwrap_or_default().trim();
        let (tenant, user) = (&signed.tenant_id, &signed.user.id);
        let hash = self.device_hash(tenant, user, ua, &network);
        let key = Key::new(tenant.partition(), format!("{}{hash}", device_prefix(user)));
        let now = now_secs();
        let expires = now + DEVICE_DAYS * 86_400;
        let item = Item::new(&key)
            .with("first_seen", now)
            .with(TTL_ATTR, expires);
        match self
            .store
            .put(Table::Data, item, Some(Condition::NotExists))
            .await
        {
            Ok(()) => {}
            Err(StoreError::ConditionFailed { .. }) => {
                // Known: remembered for another period.
                self.store
                    .update(
                        Table::Data,
                        &key,
                        Update::new().set(TTL_ATTR, expires),
                        None,
                    )
                    .await?;
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        }
        tracing::info!(tenant = %tenant, user = %user, "sign-in from a new device");
        let Some(mailer) = &self.mailer else {
            return Ok(());
        };
        let text = askama::Template::render(&NewDeviceMail {
            tenant_id: tenant.as_str(),
            when: rfc3339(now),
            network: &network,
            browser: &browser_of(device.user_agent),
        })
        .expect("the template only formats strings");
        let mail = Mail {
            to: signed.user.email.clone(),
            subject: "New sign-in to your Wappline account".into(),
            text,
        };
        if mailer.send(&mail).await.is_err() {
            // Not the error's text: a provider may quote the recipient's address in it.
            tracing::error!(tenant = %tenant, user = %user, "new-device email could not be sent");
        }
        Ok(())
    }

    /// Tells the user their password was changed (or reset).
    pub(super) async fn mail_password_changed(&self, tenant: &TenantId, user: &StoredUser) {
        let Some(mailer) = &self.mailer else {
            return;
        };
        let text = askama::Template::render(&PasswordChangedMail {
            tenant_id: tenant.as_str(),
            when: rfc3339(now_secs()),
        })
        .expect("the template only formats strings");
        let mail = Mail {
            to: user.email.clone(),
            subject: "Your Wappline password was changed".into(),
            text,
        };
        if mailer.send(&mail).await.is_err() {
            tracing::error!(tenant = %tenant, user = %user.id, "password-change email could not be sent");
        }
    }

    /// Forgets the user's devices (the user is removed).
    pub(super) async fn forget_devices(
        &self,
        tenant: &TenantId,
        user: &UserId,
    ) -> Result<(), AccountError> {
        let query = Query::partition(tenant.partition())
            .begins_with(device_prefix(user))
            .limit(100);
        loop {
            let page = self.store.query(Table::Data, &query).await?;
            if page.items.is_empty() {
                return Ok(());
            }
            for item in &page.items {
                if let Some(key) = item.key() {
                    self.store.delete(Table::Data, &key, None).await?;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts::service::fixture::*;
    use crate::accounts::Role;

    #[test]
    fn only_the_network_of_an_address_is_kept() {
        assert_eq!(network_of(Some("203.0.113.77")), "203.0.113.0/24");
        assert_eq!(network_of(Some("2001:db8:1:2::5")), "2001:db8:1::/48");
        assert_eq!(network_of(Some("not an ip")), "unknown");
        assert_eq!(network_of(None), "unknown");
    }

    #[tokio::test]
    async fn a_new_device_is_mailed_once_and_a_known_one_never() {
        let f = fixture().await;
        user(&f, "alice@acme.test", Role::Agent).await;
        let t = f.tenant.to_string();
        let mails = || {
            f.outbox
                .delivered()
                .unwrap()
                .into_iter()
                .filter(|m| m.contains("New sign-in"))
                .collect::<Vec<_>>()
        };
        let phone = SignInDevice {
            source: Some("198.51.100.23"),
            user_agent: Some("Phone/1.0"),
        };
        for _ in 0..2 {
            f.accounts
                .sign_in_from(&t, "alice@acme.test", PW, phone)
                .await
                .unwrap();
        }
        assert_eq!(mails().len(), 1);
        assert!(mails()[0].contains("198.51.100.0/24"));
        assert!(!mails()[0].contains("198.51.100.23"));
        // Same browser, another address of the same network: known.
        let same_net = SignInDevice {
            source: Some("198.51.100.99"),
            ..phone
        };
        f.accounts
            .sign_in_from(&t, "alice@acme.test", PW, same_net)
            .await
            .unwrap();
        assert_eq!(mails().len(), 1);
        // Another browser: new.
        let laptop = SignInDevice {
            user_agent: Some("Laptop/2.0"),
            ..phone
        };
        f.accounts
            .sign_in_from(&t, "alice@acme.test", PW, laptop)
            .await
            .unwrap();
        assert_eq!(mails().len(), 2);
        // Nothing but hashes is stored.
        let page = f
            .platform
            .store
            .query(
                Table::Data,
                &Query::partition(f.tenant.partition()).begins_with("DEVICE#"),
            )
            .await
            .unwrap();
        assert_eq!(page.items.len(), 2);
        let text = format!("{:?}", page.items);
        assert!(!text.contains("198.51") && !text.contains("Phone"));
    }
}
