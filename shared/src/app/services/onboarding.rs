//! The builders of self-service onboarding (decision 0040): WhatsApp Embedded Signup,
//! Instagram Login, the console's connect page and the token refresh schedule. A child of
//! the composition root, so they share its private helpers.

use super::{invalid, missing, Services, ServicesError};
use crate::app::settings::vars;
use crate::graph::GraphClient;
use crate::onboarding::{
    EmbeddedSignup, InstagramApp, InstagramLogin, LoginStateKey, PageSettings, TokenRefresh,
};

impl Services {
    pub(super) fn instagram_client(
        &self,
        service: &'static str,
    ) -> Result<GraphClient, ServicesError> {
        Ok(GraphClient::new(self.settings.instagram.clone())
            .map_err(|e| invalid(service, e))?
            .with_hosts(self.meta_hosts()))
    }

    /// WhatsApp through Embedded Signup (decision 0040). Without `META_APP_ID` and the app
    /// secret it is still built, and answers `not_configured` at connect time.
    pub fn embedded_signup(&self) -> Result<EmbeddedSignup, ServicesError> {
        let app = match (
            self.settings.meta_app_id.clone(),
            self.settings.meta_app_secrets.first(),
        ) {
            (Some(id), Some(secret)) => Some((id, secret.as_secret())),
            _ => None,
        };
        Ok(EmbeddedSignup::new(
            self.graph_client()?,
            app,
            self.ownership_proof()?,
            self.revocations()?,
            self.audit(),
        ))
    }

    /// Instagram through Instagram Login (decision 0040). Its sign-in states are signed with
    /// a key derived from `SESSION_SIGNING_KEY`; without the Instagram app's settings it
    /// answers `not_configured` at connect time.
    pub fn instagram_login(&self) -> Result<InstagramLogin, ServicesError> {
        const S: &str = "instagram-login";
        let o = &self.settings.onboarding;
        let session_key = self
            .settings
            .session_key
            .as_ref()
            .ok_or_else(|| missing(S, vars::SESSION_SIGNING_KEY))?;
        let state_key = LoginStateKey::from_bytes(&session_key.derive("instagram-login-state"))
            .ok_or_else(|| missing(S, vars::SESSION_SIGNING_KEY))?;
        let app = match (
            o.instagram_app_id.clone(),
            o.instagram_app_secret.clone(),
            o.instagram_redirect_uri.clone(),
        ) {
            (Some(id), Some(secret), Some(redirect_uri)) => Some(InstagramApp {
                id,
                secret,
                redirect_uri,
            }),
            _ => None,
        };
        let oauth = GraphClient::new(o.instagram_oauth.clone())
            .map_err(|e| invalid(S, e))?
            .with_hosts(self.meta_hosts());
        Ok(InstagramLogin::new(
            oauth,
            self.instagram_client(S)?,
            app,
            o.instagram_authorize_url.clone(),
            state_key,
            self.ownership_proof()?,
            self.revocations()?,
            self.audit(),
        ))
    }

    /// What the console's connect page needs (decision 0040).
    pub fn onboarding_page(&self) -> PageSettings {
        let o = &self.settings.onboarding;
        let whatsapp = self.settings.meta_app_id.is_some()
            && !self.settings.meta_app_secrets.is_empty()
            && o.es_config_id.is_some();
        PageSettings {
            meta_app_id: whatsapp
                .then(|| {
                    self.settings
                        .meta_app_id
                        .as_ref()
                        .map(|a| a.as_str().to_owned())
                })
                .flatten(),
            es_config_id: o.es_config_id.clone().filter(|_| whatsapp),
            sdk_url: o.sdk_url.clone(),
            instagram_login: o.instagram_app_id.is_some()
                && o.instagram_app_secret.is_some()
                && o.instagram_redirect_uri.is_some(),
        }
    }

    /// The schedule that checks each connected account's webhook subscription and subscribes
    /// again where it went missing (decision 0051).
    pub fn subscription_check(
        &self,
    ) -> Result<crate::onboarding::subscriptions::SubscriptionCheck, ServicesError> {
        Ok(crate::onboarding::subscriptions::SubscriptionCheck::new(
            self.platform.tenants.clone(),
            self.graph_client()?,
            self.instagram_client("subscription-check")?,
            self.settings.meta_app_id.clone(),
        ))
    }

    /// The schedule that renews Instagram Login tokens and alerts owners and admins by email
    /// when it cannot (without a mailer, the console's status alone tells).
    pub fn token_refresh(&self) -> Result<TokenRefresh, ServicesError> {
        Ok(TokenRefresh::new(
            self.platform.tenants.clone(),
            self.instagram_client("token-refresh")?,
            self.mailer.clone(),
        ))
    }
}
