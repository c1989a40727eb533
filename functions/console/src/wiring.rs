//! The console as the composition root builds it, for the Lambda and the local server alike.

use lambda_http::{Body, Request, Response};
use wappline::app::{HttpFunction, Services, ServicesError};

use crate::{Console, ConsoleOnboarding, ConsoleServices};

const SERVICE: &str = "console";

impl Console {
    /// Every dependency, from `services`; a missing setting is refused here, at cold start.
    pub fn from_services(services: &Services) -> Result<Self, ServicesError> {
        let secure_cookies = services
            .settings
            .public_base_url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://"));
        Ok(Console::new(ConsoleServices {
            tenants: services.platform.tenants.clone(),
            accounts: services.accounts()?,
            api_keys: services.api_keys(),
            usage: services.usage(),
            bitrix_codes: (
                services.connection_codes(),
                services.bitrix_endpoint(SERVICE)?,
            ),
            audit: services.audit(),
            revocations: services.revocations()?,
            exports: services.export_requests(SERVICE)?,
            contacts: services.contact_erasure()?,
            tenant_erasure: services.tenant_erasure()?,
            onboarding: ConsoleOnboarding {
                signup: services.embedded_signup()?,
                instagram: services.instagram_login()?,
                page: services.onboarding_page(),
                login_origins: services.settings.onboarding.login_origins.clone(),
                graph_version: services.settings.graph.version().to_owned(),
                authorize_url: services.settings.onboarding.instagram_authorize_url.clone(),
            },
            open_lines: services.open_lines(SERVICE)?,
            secure_cookies,
        }))
    }
}

#[async_trait::async_trait]
impl HttpFunction for Console {
    async fn handle(&self, req: Request) -> Response<Body> {
        Console::handle(self, req).await
    }
}
