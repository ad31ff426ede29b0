//! HTTP-shaped endpoints over `ApiRequest` / `ApiResponse`: routing, issuer resolution and the
//! mapping of results to RFC 6749 responses. Lambda-free, so tests and benches drive them
//! directly.

pub mod authorize;
pub mod discovery;
pub mod token;
pub mod tokeninfo;

use std::future::Future;
use std::time::Duration;

use crate::config::Config;
use crate::error::OAuthError;
use crate::grants::client_auth::{Presentation, authenticate};
use crate::grants::client_jwks::ClientJwks;
use crate::http::{ApiRequest, ApiResponse};
use crate::request::{Params, parse_body, presented_credentials};
use crate::storage::{
    AssertionReplays, Client, ClientDirectory, Counted, FailureCounters, client_key,
    presented_client,
};
use crate::tokens::dpop;

/// Every request is answered within this: well inside the functions' 10 s `Timeout` (so a
/// caller gets our 503 rather than API Gateway's bare error) and above one SDK operation's 4 s
/// limit (so a single slow call still reports itself). Several slow calls in one request — a
/// BatchGetItem retrying unprocessed keys, then writes — end here.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(6);

/// `answer`, or 503 `temporarily_unavailable` once `deadline` has passed.
pub async fn within_deadline(
    deadline: Duration,
    answer: impl Future<Output = ApiResponse>,
) -> ApiResponse {
    match tokio::time::timeout(deadline, answer).await {
        Ok(response) => response,
        Err(_) => {
            tracing::error!(
                deadline_ms = deadline.as_millis() as u64,
                "request deadline passed: answered 503"
            );
            crate::audit::unavailable("Deadline");
            OAuthError::TemporarilyUnavailable.into_response()
        }
    }
}

/// The issuer for this request: `ISSUER`, else `https://{requestContext.domainName}/oauth`.
/// Never the Host header: the caller controls it.
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

/// The URL a client addressed `path` (an API route) at: the issuer's origin and the route (the
/// issuer is `{origin}/oauth`, and every route lives under `/oauth`).
pub fn endpoint_url(issuer: &str, path: &str) -> String {
    let after_scheme = issuer.find("://").map_or(0, |i| i + 3);
    let origin_end = issuer[after_scheme..]
        .find('/')
        .map_or(issuer.len(), |i| after_scheme + i);
    format!("{}{}", &issuer[..origin_end], path.trim_end_matches('/'))
}

/// The request's DPoP proof (RFC 9449 §4.3), verified against `expected`; `None` without a
/// `DPoP` header. With `nonces`, it must carry a current server nonce (§8). Its `jti` is not
/// spent yet (`grants::spend_dpop_proof`): that waits until the request is otherwise good, so nobody
/// costs a write without being a client or holding a token.
pub(crate) fn verified_dpop_proof(
    request: &ApiRequest,
    expected: &dpop::Expected<'_>,
    nonces: Option<&crate::keys::KeySet>,
) -> Result<Option<dpop::Proof>, OAuthError> {
    let mut headers = request.headers.get_all(dpop::HEADER).iter();
    let Some(header) = headers.next() else {
        return Ok(None);
    };
    // Rule 1: exactly one proof.
    if headers.next().is_some() {
        return Err(OAuthError::InvalidDpopProof("send one DPoP header"));
    }
    let text = header
        .to_str()
        .map_err(|_| OAuthError::InvalidDpopProof("the DPoP proof is not a valid JWT"))?;
    let proof = dpop::verify(text, expected).map_err(OAuthError::InvalidDpopProof)?;
    if let Some(keys) = nonces
        && !proof
            .nonce
            .as_deref()
            .is_some_and(|nonce| dpop::nonce_is_current(keys, nonce, expected.now))
    {
        return Err(OAuthError::UseDpopNonce);
    }
    Ok(Some(proof))
}

/// Appends the current DPoP nonce (RFC 9449 §8.1) to `response`.
pub(crate) fn with_dpop_nonce(
    response: ApiResponse,
    keys: &crate::keys::KeySet,
    now: i64,
) -> ApiResponse {
    match dpop::nonce(keys, now) {
        Some(nonce) => response.header(dpop::NONCE_HEADER, nonce),
        None => response,
    }
}

/// The path of the token endpoint under the issuer.
pub const TOKEN_ENDPOINT: &str = "/v2/token";

/// What a client assertion sent to `endpoint` (a path under the issuer) may name as its `aud`
/// (RFC 7523 §3 rule 3): the issuer, the token endpoint's URL, or the receiving endpoint's URL,
/// which Authlib sends for introspection and revocation.
pub fn assertion_audiences(issuer: &str, endpoint: &str) -> Vec<String> {
    let mut audiences = vec![issuer.to_owned(), format!("{issuer}{TOKEN_ENDPOINT}")];
    if endpoint != TOKEN_ENDPOINT {
        audiences.push(format!("{issuer}{endpoint}"));
    }
    audiences
}

/// Parameters and authenticated client of a client-authenticated request other than a grant
/// (introspection, revocation, at `endpoint` under the issuer): the token endpoint's rules
/// (RFC 7662 §2.1, RFC 7009 §2.1), one GetItem (and one write for an assertion); a failed
/// authentication is counted like the token endpoint's.
pub(crate) async fn authenticated_request<
    S: ClientDirectory + FailureCounters + AssertionReplays,
>(
    config: &Config,
    store: &S,
    client_jwks: &ClientJwks,
    request: &ApiRequest,
    endpoint: &str,
    now: i64,
) -> Result<(Params, Client), OAuthError> {
    let params = parse_body(request.media_type().as_deref(), &request.body)?;
    let presented = presented_credentials(request.header("authorization"), &params)?;
    let credentials = presented.client();
    let record = presented_client(store, &credentials.client_id).await?;
    let audiences = match credentials.assertion {
        Some(_) => assertion_audiences(&issuer(config, request)?, endpoint),
        None => Vec::new(),
    };
    let presentation = Presentation {
        api_key: request.header(&config.api_key_header),
        audiences: &audiences,
        now,
        fetched_jwks: None,
    };
    match authenticate(
        store,
        client_jwks,
        record.as_ref(),
        credentials,
        presentation,
    )
    .await
    {
        Ok(client) => Ok((params, client.clone())),
        Err(error) => {
            count_client_failure(config, store, &credentials.client_id, now).await;
            Err(error)
        }
    }
}

/// Counts a failed client authentication per presented client id, existing or not (so the
/// write reveals nothing), and logs when a client crosses the threshold. It does not lock:
/// client secrets are 256-bit and cannot be guessed, and a lock would let anyone who knows a
/// client id switch a production integration off. A counting failure never changes the answer.
pub(crate) async fn count_client_failure<S: FailureCounters>(
    config: &Config,
    store: &S,
    client_id: &str,
    now: i64,
) {
    let Some(client_id) = client_key(client_id) else {
        return;
    };
    // Most client ids have no live counter: try starting one first.
    let counted = Counted::Client(client_id);
    match store
        .increment(counted, now, config.lockout_window, false)
        .await
    {
        Ok(count) if count == config.lockout_threshold => {
            tracing::warn!(
                client_id,
                failures = count,
                "repeated client authentication failures"
            );
            crate::audit::emit(
                crate::audit::Event::Lockout,
                &crate::audit::Record {
                    client_id: Some(client_id),
                    locked: Some("client"),
                    ..Default::default()
                },
            );
        }
        Ok(_) => {}
        Err(error) => tracing::warn!(%error, "could not count a client authentication failure"),
    }
}
