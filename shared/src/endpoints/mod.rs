//! HTTP-shaped endpoints over `ApiRequest` / `ApiResponse`: routing, issuer resolution and the
//! mapping of results to RFC 6749 responses. Lambda-free, so tests and benches drive them
//! directly.

pub mod discovery;
pub mod token;
pub mod tokeninfo;

use crate::config::Config;
use crate::error::OAuthError;
use crate::grants::client_auth::{MAX_CLIENT_ID_LEN, authenticate_client};
use crate::http::ApiRequest;
use crate::request::{Params, parse_body, presented_credentials};
use crate::storage::{Client, ClientDirectory};

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

/// Parameters and authenticated client of a client-authenticated request other than a grant
/// (introspection, revocation): the token endpoint's rules (RFC 7662 §2.1, RFC 7009 §2.1), one
/// GetItem.
pub(crate) async fn authenticated_request<S: ClientDirectory>(
    config: &Config,
    store: &S,
    request: &ApiRequest,
    now: i64,
) -> Result<(Params, Client), OAuthError> {
    let params = parse_body(request.media_type().as_deref(), &request.body)?;
    let presented = presented_credentials(request.header("authorization"), &params)?;
    let credentials = presented.client();
    let record = if credentials.client_id.len() <= MAX_CLIENT_ID_LEN {
        store.client(&credentials.client_id).await?
    } else {
        None
    };
    let api_key = request.header(&config.api_key_header);
    let client = authenticate_client(record.as_ref(), credentials, api_key, now)?.clone();
    Ok((params, client))
}
