//! Anti-forgery tokens of the console's forms (the synchroniser-token pattern without server
//! state): a form carries `HMAC-SHA256(session key, domain, binding)`, and a post is accepted
//! only when the token it carries is the one for the caller's own binding.
//!
//! - A signed-in user's forms are bound to their tenant, user and session: a token taken
//!   from one session is worthless in another, and ends with the session.
//! - The sign-in form is bound to a random nonce the browser also holds in a cookie (signed
//!   double-submit): another site can neither read the cookie nor compute the token, so it
//!   cannot sign a victim in to an account of its choosing.
//!
//! The key is the access-token key with its own domain string, so no token of one kind is
//! ever valid as the other; the previous key (while rotating) is accepted too.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::token::SessionKey;
use super::{Accounts, UserPrincipal};

type HmacSha256 = Hmac<Sha256>;

/// Domain separation from access tokens, which the same key signs.
const DOMAIN: &[u8] = b"wappline-form-token\0";
/// Longest token looked at (a real one is 43 characters).
const MAX_TOKEN_CHARS: usize = 128;

/// What a form token is bound to.
pub enum FormBinding<'a> {
    /// A signed-in user's session.
    Session(&'a UserPrincipal),
    /// A browser before sign-in: the nonce of its cookie.
    Visitor(&'a str),
}

impl FormBinding<'_> {
    fn bytes(&self) -> Vec<u8> {
        match self {
            // `\0` cannot occur in ids, so no two bindings share their bytes.
            FormBinding::Session(p) => {
                format!("session\0{}\0{}\0{}", p.tenant, p.user, p.session).into_bytes()
            }
            FormBinding::Visitor(nonce) => format!("visitor\0{nonce}").into_bytes(),
        }
    }
}

fn mac(key: &SessionKey, binding: &[u8]) -> HmacSha256 {
    let mut m =
        HmacSha256::new_from_slice(key.key_bytes()).expect("HMAC accepts keys of any length");
    m.update(DOMAIN);
    m.update(binding);
    m
}

impl Accounts {
    /// The token a form for `binding` carries.
    pub fn form_token(&self, binding: &FormBinding<'_>) -> String {
        let tag = mac(&self.config.session_key, &binding.bytes())
            .finalize()
            .into_bytes();
        URL_SAFE_NO_PAD.encode(tag)
    }

    /// Whether `presented` is the token of `binding` (compared in constant time by the MAC).
    pub fn verify_form_token(&self, binding: &FormBinding<'_>, presented: &str) -> bool {
        if presented.is_empty() || presented.len() > MAX_TOKEN_CHARS {
            return false;
        }
        let Ok(tag) = URL_SAFE_NO_PAD.decode(presented) else {
            return false;
        };
        let bytes = binding.bytes();
        let keys = std::iter::once(&self.config.session_key)
            .chain(self.config.previous_session_key.as_ref());
        keys.into_iter()
            .any(|key| mac(key, &bytes).verify_slice(&tag).is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts::service::fixture::{fixture, principal, user};
    use crate::accounts::{Principal, Role};

    #[tokio::test]
    async fn a_token_is_valid_only_for_its_own_binding() {
        let f = fixture().await;
        let s = user(&f, "owner@example.com", Role::Owner).await;
        let Principal::User(mut p) = principal(&s, &f) else {
            unreachable!()
        };
        p.session = "s1".into();
        let token = f.accounts.form_token(&FormBinding::Session(&p));
        assert!(f
            .accounts
            .verify_form_token(&FormBinding::Session(&p), &token));
        let mut other = p.clone();
        other.session = "s2".into();
        assert!(!f
            .accounts
            .verify_form_token(&FormBinding::Session(&other), &token));
        assert!(!f
            .accounts
            .verify_form_token(&FormBinding::Visitor("s1"), &token));
        assert!(!f.accounts.verify_form_token(&FormBinding::Session(&p), ""));
        assert!(!f.accounts.verify_form_token(&FormBinding::Session(&p), "x"));
        let v = f.accounts.form_token(&FormBinding::Visitor("n1"));
        assert!(f
            .accounts
            .verify_form_token(&FormBinding::Visitor("n1"), &v));
        assert!(!f
            .accounts
            .verify_form_token(&FormBinding::Visitor("n2"), &v));
    }
}
