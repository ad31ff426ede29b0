//! HTTP-shaped endpoints over `ApiRequest` / `ApiResponse`: routing, issuer resolution and the
//! mapping of results to RFC 6749 responses. Lambda-free, so tests and benches drive them
//! directly.

pub mod discovery;
pub mod token;
pub mod tokeninfo;

use crate::config::Config;
use crate::error::OAuthError;
use crate::http::ApiRequest;

/// The issuer for this request: `ISSUER`, else `https://{requestContext.domainName}/oauth`.
/// Never the Host header: lambda_http builds the URI from it and the caller controls it.
pub fn issuer(config: &Config, request: &ApiRequest) -> Result<String, OAuthError> {
    if let Some(issuer) = &config.issuer {
        return Ok(issuer.clone());
    }
    let domain = request.domain_name.as_deref().filter(|d| {
        !d.is_empty()
            && d.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'))
    });
    match domain {
        Some(domain) => Ok(format!("https://{domain}/oauth")),
        None => {
            tracing::error!("ISSUER is unset and the request has no requestContext.domainName");
            Err(OAuthError::ServerError)
        }
    }
}
