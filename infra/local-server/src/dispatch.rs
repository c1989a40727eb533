//! One port for every HTTP function: a request goes to the function that serves its path in
//! template.yaml, and its answer back to hyper.

use crate::*;

/// The function that serves `path` in template.yaml, by its first segment.
pub(crate) fn function_of_path(path: &str) -> &'static str {
    match path.split('/').nth(1).unwrap_or("") {
        "webhooks" => "meta-webhook",
        "bitrix" => "bitrix-webhook",
        "v1" | "health" => "public-api",
        "admin" | "auth" => "admin-api",
        "app" => "console",
        "media" => "media-proxy",
        "data-deletion" => "data-deletion",
        _ => "other",
    }
}

/// Routes a request to the function that serves its path in template.yaml.
pub(crate) async fn dispatch(
    functions: &Functions,
    req: hyper::Request<Incoming>,
    peer: SocketAddr,
    limits: &Limits,
) -> hyper::Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let bytes = match listener::read_body(body, limits).await {
        Ok(b) => b,
        Err(e) => {
            let error = match e {
                BodyError::TooLarge => {
                    wappline::edge::ApiError::payload_too_large(limits.max_body_bytes)
                }
                BodyError::TimedOut => wappline::edge::ApiError::new(
                    hyper::StatusCode::REQUEST_TIMEOUT,
                    "request_timeout",
                    format!(
                        "the request body did not arrive within {} s",
                        limits.body_read_timeout.as_secs_f64()
                    ),
                ),
                BodyError::Broken => wappline::edge::ApiError::new(
                    hyper::StatusCode::BAD_REQUEST,
                    "bad_request",
                    "the request body could not be read",
                ),
            };
            let mut response = to_hyper(error.into_response().map(lambda_http::Body::from));
            // The rest of a half-read body would be taken for the next request.
            response.headers_mut().insert(
                hyper::header::CONNECTION,
                hyper::header::HeaderValue::from_static("close"),
            );
            return response;
        }
    };
    let body = if bytes.is_empty() {
        lambda_http::Body::Empty
    } else {
        lambda_http::Body::Binary(bytes.to_vec())
    };
    let query: QueryMap = parts
        .uri
        .query()
        .unwrap_or_default()
        .parse()
        .unwrap_or_default();
    // The caller's address where API Gateway puts it (sign-in throttling reads it).
    let mut context = ApiGatewayV2httpRequestContext::default();
    context.http.source_ip = Some(peer.ip().to_string());
    let req = lambda_http::Request::from_parts(parts, body)
        .with_query_string_parameters(query)
        .with_request_context(RequestContext::ApiGatewayV2(context));
    let path = req.uri().path();
    let response = if path == "/admin"
        || path.starts_with("/admin/")
        || path.starts_with(admin_api::auth::AUTH_PREFIX)
        || path.starts_with(admin_api::DOWNLOAD_PREFIX)
    {
        // The admin API function's own entry point (it serves export downloads too).
        HttpFunction::handle(&functions.admin, req).await
    } else if path == console::PREFIX || path.starts_with("/app/") {
        HttpFunction::handle(&functions.console, req).await
    } else if bitrix_webhook::serves(path) {
        match &functions.bitrix {
            Some(bitrix) => bitrix.handle(req).await,
            None => wappline::edge::ApiError::new(
                hyper::StatusCode::SERVICE_UNAVAILABLE,
                "not_configured",
                "start the local server with --bitrix-client-id and --bitrix-client-secret",
            )
            .into_response()
            .map(lambda_http::Body::from),
        }
    } else if path == data_deletion::PATH || path.starts_with(data_deletion::STATUS) {
        match &functions.data_deletion {
            Some(d) => d.handle(req).await,
            None => wappline::edge::ApiError::new(
                hyper::StatusCode::SERVICE_UNAVAILABLE,
                "not_configured",
                "start the local server with --meta-app-secret",
            )
            .into_response()
            .map(lambda_http::Body::from),
        }
    } else if path == public_api::MESSAGES_PATH || path == public_api::HEALTH_PATH {
        // The same function answers `/health` on AWS.
        functions.public.handle(req).await
    } else if path.starts_with(media_proxy::PATH_PREFIX) {
        functions.media.handle(req).await
    } else if path == meta_webhook::PATH {
        match &functions.meta {
            Some(meta) => meta.handle(req).await,
            None => wappline::edge::ApiError::new(
                hyper::StatusCode::SERVICE_UNAVAILABLE,
                "not_configured",
                "start the local server with --meta-app-secret and --meta-verify-token",
            )
            .into_response()
            .map(lambda_http::Body::from),
        }
    } else {
        wappline::edge::ApiError::not_found("no such route")
            .into_response()
            .map(lambda_http::Body::from)
    };
    to_hyper(response)
}

fn to_hyper(resp: lambda_http::Response<lambda_http::Body>) -> hyper::Response<Full<Bytes>> {
    let (parts, body) = resp.into_parts();
    let bytes = match body {
        lambda_http::Body::Empty => Bytes::new(),
        lambda_http::Body::Text(t) => Bytes::from(t),
        lambda_http::Body::Binary(b) => Bytes::from(b),
        _ => Bytes::new(),
    };
    hyper::Response::from_parts(parts, Full::new(bytes))
}
