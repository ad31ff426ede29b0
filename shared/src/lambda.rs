//! The one place that knows lambda_http: events in, responses out, and the run loop each
//! function's `main` calls.

use std::future::Future;

use lambda_http::request::RequestContext;
use lambda_http::{Body, Error, Request, RequestExt, Response, service_fn};

use crate::http::{ApiRequest, ApiResponse};

/// Converts an API Gateway (HTTP API v2 or REST) event into an `ApiRequest`.
pub fn to_api_request(event: Request) -> ApiRequest {
    let domain_name = match event.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.domain_name.clone(),
        Some(RequestContext::ApiGatewayV1(ctx)) => ctx.domain_name.clone(),
        _ => None,
    };
    let (parts, body) = event.into_parts();
    let body = match body {
        Body::Empty => Vec::new(),
        Body::Text(text) => text.into_bytes(),
        Body::Binary(bytes) => bytes,
        _ => Vec::new(),
    };
    ApiRequest {
        method: parts.method,
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts.headers,
        body,
        domain_name,
    }
}

pub fn to_lambda_response(response: ApiResponse) -> Response<Body> {
    let mut builder = Response::builder().status(response.status);
    for (name, value) in response.headers {
        builder = builder.header(name, value);
    }
    builder
        .body(Body::Text(response.body))
        .unwrap_or_else(|_| Response::new(Body::Text(r#"{"error":"server_error"}"#.to_owned())))
}

/// Initialises logging (honours `AWS_LAMBDA_LOG_LEVEL` / `AWS_LAMBDA_LOG_FORMAT`).
pub fn init_logging() {
    lambda_http::tracing::init_default_subscriber();
}

/// Serves events with `handler` until the runtime stops.
pub async fn serve<F, Fut>(handler: F) -> Result<(), Error>
where
    F: Fn(ApiRequest) -> Fut + Send + Sync,
    Fut: Future<Output = ApiResponse> + Send,
{
    lambda_http::run(service_fn(|event: Request| {
        let response = handler(to_api_request(event));
        async move { Ok::<_, Error>(to_lambda_response(response.await)) }
    }))
    .await
}

/// Reads the configuration, or ends the cold start with one clear log line (no panic).
pub fn config_or_exit() -> crate::config::Config {
    match crate::config::Config::from_env() {
        Ok(config) => config,
        Err(error) => {
            tracing::error!(%error, "invalid configuration");
            std::process::exit(1);
        }
    }
}
