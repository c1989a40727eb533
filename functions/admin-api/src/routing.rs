//! The pieces of the route table ([`crate::routes`]): a [`Route`] (path pattern, what it
//! needs from the caller, a handler per method) and the [`Call`] every handler is given.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;

use lambda_http::http::Method;
use lambda_http::Request;
use tokio::sync::OnceCell;
use wappline::accounts::{Permission, Principal};
use wappline::edge::ApiError;
use wappline::ids::TenantId;
use wappline::tenant::TenantScope;

use crate::{map_err, AdminServices};

/// A handler's answer.
pub(crate) type Reply = lambda_http::http::Response<String>;
pub(crate) type Handled = Result<Reply, ApiError>;
pub(crate) type Handler =
    for<'a> fn(&'a Call<'a>) -> Pin<Box<dyn Future<Output = Handled> + Send + 'a>>;

/// An `async fn(&Call<'_>) -> Handled` as a [`Handler`].
macro_rules! handler {
    ($f:path) => {{
        fn boxed<'a>(
            c: &'a $crate::routing::Call<'a>,
        ) -> ::std::pin::Pin<
            Box<dyn ::std::future::Future<Output = $crate::routing::Handled> + Send + 'a>,
        > {
            Box::pin($f(c))
        }
        boxed as $crate::routing::Handler
    }};
}
pub(crate) use handler;

/// What a route needs from the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Need {
    /// Nothing: the route is public (`/auth/*`, where the handlers check what they need).
    Public,
    /// The platform admin's token.
    Platform,
    /// The platform admin, or a user of the tenant named in the path whose role has the
    /// permission.
    Tenant(Permission),
}

/// What is read from the path before the method is checked: an unknown tenant is then a
/// 404 (a malformed id a 400) whatever the method.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum First {
    Nothing,
    /// The tenant id is parsed.
    TenantId,
    /// The tenant is read ([`Call::scope`]).
    Tenant,
}

/// One row of the route table.
pub(crate) struct Route {
    /// A `matchit` pattern; the tenant's parameter is always `{tenant}`.
    pub path: &'static str,
    pub need: Need,
    pub first: First,
    /// Empty for a subtree rule ([`Route::below`]).
    pub methods: Vec<(Method, Handler)>,
}

/// A route: `route(path, need).get(handler!(...)).post(...)`.
pub(crate) fn route(path: &'static str, need: Need) -> Route {
    Route {
        path,
        need,
        first: First::Nothing,
        methods: Vec::new(),
    }
}

impl Route {
    /// No endpoint: paths matching it (a `{*rest}` under a resource) are checked with the
    /// resource's rule like its endpoints, then answer 404.
    pub fn below(path: &'static str, need: Need) -> Route {
        route(path, need)
    }

    /// The tenant id is parsed before the method is checked.
    pub fn tenant_id_first(mut self) -> Self {
        self.first = First::TenantId;
        self
    }

    /// The tenant is read before the method is checked.
    pub fn tenant_first(mut self) -> Self {
        self.first = First::Tenant;
        self
    }

    fn on(mut self, method: Method, handler: Handler) -> Self {
        self.methods.push((method, handler));
        self
    }

    pub fn get(self, handler: Handler) -> Self {
        self.on(Method::GET, handler)
    }

    pub fn post(self, handler: Handler) -> Self {
        self.on(Method::POST, handler)
    }

    pub fn put(self, handler: Handler) -> Self {
        self.on(Method::PUT, handler)
    }

    pub fn patch(self, handler: Handler) -> Self {
        self.on(Method::PATCH, handler)
    }

    pub fn delete(self, handler: Handler) -> Self {
        self.on(Method::DELETE, handler)
    }

    pub fn handler(&self, method: &Method) -> Option<Handler> {
        self.methods
            .iter()
            .find(|(m, _)| m == method)
            .map(|(_, h)| *h)
    }
}

/// Stands for an empty path segment (`//`) while matching: `matchit` parameters are never
/// empty, but the admin API has always taken an empty segment as a value (an empty tenant id
/// is a 400, an empty channel kind a 404). No request path can contain it.
const EMPTY_SEGMENT: &str = "\0";

/// The path as the route table matches it: without trailing slashes, each empty segment
/// written as [`EMPTY_SEGMENT`].
pub(crate) fn match_key(path: &str) -> Cow<'_, str> {
    let path = path.trim_end_matches('/');
    if !path.contains("//") {
        return Cow::Borrowed(path);
    }
    let mut key = String::with_capacity(path.len() + 4);
    for (i, segment) in path.split('/').enumerate() {
        if i > 0 {
            key.push('/');
            key.push_str(if segment.is_empty() {
                EMPTY_SEGMENT
            } else {
                segment
            });
        } else {
            key.push_str(segment);
        }
    }
    Cow::Owned(key)
}

/// One request as its handler sees it.
pub(crate) struct Call<'a> {
    pub services: &'a AdminServices,
    pub req: &'a Request,
    pub body: &'a [u8],
    params: Vec<(&'a str, &'a str)>,
    /// None on public routes.
    principal: Option<Principal>,
    actor: String,
    scope: OnceCell<TenantScope>,
}

impl<'a> Call<'a> {
    pub fn new(
        services: &'a AdminServices,
        req: &'a Request,
        body: &'a [u8],
        params: matchit::Params<'a, 'a>,
        principal: Option<Principal>,
    ) -> Self {
        let params = params
            .iter()
            .map(|(k, v)| (k, if v == EMPTY_SEGMENT { "" } else { v }))
            .collect();
        let actor = principal.as_ref().map(Principal::actor).unwrap_or_default();
        Call {
            services,
            req,
            body,
            params,
            principal,
            actor,
            scope: OnceCell::new(),
        }
    }

    /// A parameter of the route's pattern.
    pub fn param(&self, name: &str) -> &'a str {
        let value = self.param_if(name);
        debug_assert!(value.is_some(), "the route has no {{{name}}}");
        value.unwrap_or_default()
    }

    fn param_if(&self, name: &str) -> Option<&'a str> {
        self.params
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| *v)
    }

    /// The tenant named in the path, if the route names one.
    pub fn tenant_param(&self) -> Option<&'a str> {
        self.param_if("tenant")
    }

    pub fn query(&self) -> Option<&'a str> {
        self.req.uri().query()
    }

    /// The caller (on the `/admin` routes, which all authenticate).
    pub fn principal(&self) -> Result<&Principal, ApiError> {
        self.principal.as_ref().ok_or_else(ApiError::unauthorized)
    }

    /// The name the audit log records for the caller.
    pub fn actor(&self) -> &str {
        &self.actor
    }

    /// The tenant named in the path.
    pub fn tenant_id(&self) -> Result<TenantId, ApiError> {
        TenantId::parse(self.param("tenant")).map_err(|e| ApiError::bad_request(e.to_string()))
    }

    /// The tenant named in the path, read once per request: 404 if there is none.
    pub async fn scope(&self) -> Result<&TenantScope, ApiError> {
        self.scope
            .get_or_try_init(|| async {
                let id = self.tenant_id()?;
                self.services
                    .tenants
                    .scope(&id)
                    .await
                    .map_err(map_err)?
                    .ok_or_else(|| ApiError::not_found("tenant not found"))
            })
            .await
    }
}
