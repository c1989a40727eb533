//! The admin API as the composition root builds it, for the Lambda and the local server alike,
//! and its entry point as an HTTP function (export downloads are served here too).

use lambda_http::{Body, Request, Response};
use wappline::app::settings::vars;
use wappline::app::{HttpFunction, Services, ServicesError};
use wappline::queue::platform;

use crate::{AdminApi, AdminToken, Erasure, ExportsApi, DOWNLOAD_PREFIX};

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
        let exports = services.exports()?;
        Ok(
            AdminApi::new(services.platform.tenants.clone(), AdminToken { sha256 })
                .with_accounts(services.accounts()?)
                .with_usage(services.usage())
                .with_suspension(services.suspension()?)
                .with_api_keys(services.api_keys())
                .with_audit(services.audit())
                .with_channel_release(services.channel_release()?)
                .with_exports(ExportsApi {
                    exports,
                    queue: services.queue.clone(),
                    queue_name: platform::name(platform::EXPORTS),
                })
                .with_erasure(Erasure {
                    contacts: services.contact_erasure()?,
                    tenants: services.tenant_erasure()?,
                })
                .with_bitrix_connection_codes(
                    services.connection_codes(),
                    services.bitrix_endpoint(SERVICE)?,
                ),
        )
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
