//! The admin API as the composition root builds it, for the Lambda and the local server alike,
//! and its entry point as an HTTP function (export downloads are served here too).

use lambda_http::{Body, Request, Response};
use wappline::app::settings::vars;
use wappline::app::{HttpFunction, Services, ServicesError};

use crate::{
    AdminApi, AdminServices, AdminToken, Erasure, ExportsApi, Onboarding, DOWNLOAD_PREFIX,
};

const SERVICE: &str = "admin-api";

impl AdminApi {
    /// Every dependency, from `services`; a missing setting is refused here, at cold start.
    pub fn from_services(services: &Services) -> Result<Self, ServicesError> {
        let sha256 =
            services
                .settings
                .admin_token_sha256
                .ok_or_else(|| ServicesError::Missing {
                    service: SERVICE,
                    setting: vars::ADMIN_TOKEN_SHA256.to_owned(),
                })?;
        Ok(AdminApi::new(AdminServices {
            tenants: services.platform.tenants.clone(),
            token: AdminToken { sha256 },
            accounts: services.accounts()?,
            usage: services.usage(),
            suspension: services.suspension()?,
            api_keys: services.api_keys(),
            audit: services.audit(),
            revocations: services.revocations()?,
            ownership: services.ownership_proof()?,
            templates: services.template_sync()?,
            providers: services.message_providers(),
            onboarding: Onboarding {
                signup: services.embedded_signup()?,
                instagram: services.instagram_login()?,
                page: services.onboarding_page(),
            },
            exports: ExportsApi {
                exports: services.exports()?,
                requests: services.export_requests(SERVICE)?,
            },
            erasure: Erasure {
                contacts: services.contact_erasure()?,
                tenants: services.tenant_erasure()?,
            },
            bitrix_codes: (
                services.connection_codes(),
                services.bitrix_endpoint(SERVICE)?,
            ),
        }))
    }
}

#[async_trait::async_trait]
impl HttpFunction for AdminApi {
    async fn handle(&self, req: Request) -> Response<Body> {
        // The public download route of export links is served here too (and /auth/*).
        if req.uri().path().starts_with(DOWNLOAD_PREFIX) {
            return self.download(req).await;
        }
        AdminApi::handle(self, req).await
    }
}
