//! RFC 6749 §5.2 error responses, and the storage failure that maps to 503.
//!
//! Descriptions are fixed strings: an error never echoes input, secrets or internals.

use crate::http::ApiResponse;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OAuthError {
    #[error("invalid_request: {0}")]
    InvalidRequest(&'static str),
    /// `basic_challenge`: the client tried HTTP Basic, so the 401 carries `WWW-Authenticate`
    /// (RFC 6749 §5.2).
    #[error("invalid_client")]
    InvalidClient { basic_challenge: bool },
    #[error("invalid_grant: {0}")]
    InvalidGrant(&'static str),
    #[error("unauthorized_client")]
    UnauthorizedClient,
    #[error("unsupported_grant_type")]
    UnsupportedGrantType,
    #[error("invalid_scope: {0}")]
    InvalidScope(&'static str),
    /// RFC 9449 §5: the DPoP proof is missing where required, or invalid.
    #[error("invalid_dpop_proof: {0}")]
    InvalidDpopProof(&'static str),
    /// RFC 9449 §8: the proof lacks the current server nonce (sent in `DPoP-Nonce`).
    #[error("use_dpop_nonce")]
    UseDpopNonce,
    /// A dependency (DynamoDB, Secrets Manager) failed or timed out.
    #[error("temporarily_unavailable")]
    TemporarilyUnavailable,
    /// Misconfiguration that is not the caller's fault (e.g. no issuer can be derived).
    #[error("server_error")]
    ServerError,
}

/// Seconds a caller should wait after a 503.
pub const RETRY_AFTER_SECONDS: &str = "1";

impl OAuthError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidRequest(_) => "invalid_request",
            Self::InvalidClient { .. } => "invalid_client",
            Self::InvalidGrant(_) => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope(_) => "invalid_scope",
            Self::InvalidDpopProof(_) => "invalid_dpop_proof",
            Self::UseDpopNonce => "use_dpop_nonce",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
            Self::ServerError => "server_error",
        }
    }

    pub fn description(&self) -> &'static str {
        match self {
            Self::InvalidRequest(d)
            | Self::InvalidGrant(d)
            | Self::InvalidScope(d)
            | Self::InvalidDpopProof(d) => d,
            Self::InvalidClient { .. } => "client authentication failed",
            Self::UnauthorizedClient => "the client is not allowed to use this grant type",
            Self::UnsupportedGrantType => "the grant type is not supported",
            Self::UseDpopNonce => "the DPoP proof must carry the nonce of the DPoP-Nonce header",
            Self::TemporarilyUnavailable => "the service is temporarily unavailable, retry later",
            Self::ServerError => "the server could not handle the request",
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            Self::InvalidClient { .. } => 401,
            Self::TemporarilyUnavailable => 503,
            Self::ServerError => 500,
            _ => 400,
        }
    }

    /// The RFC 6749 §5.2 JSON response, with `Cache-Control: no-store` (§5.1 applies to errors
    /// from the token endpoint as well).
    pub fn into_response(self) -> ApiResponse {
        let body = serde_json::json!({
            "error": self.code(),
            "error_description": self.description(),
        });
        let mut response = ApiResponse::json(self.status(), &body).no_store();
        match self {
            Self::InvalidClient {
                basic_challenge: true,
            } => {
                response = response.header("www-authenticate", r#"Basic realm="oauth""#);
            }
            Self::TemporarilyUnavailable => {
                response = response.header("retry-after", RETRY_AFTER_SECONDS);
            }
            _ => {}
        }
        response
    }
}

/// A storage or key-source failure. The detail is for logs only; callers see 503.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("dependency unavailable: {0}")]
    Unavailable(String),
    #[error("signing-key secret is empty: run oauthctl init")]
    NoSigningKeys,
    #[error("stored data is malformed: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// Which dependency failed, for the `TemporarilyUnavailable` metric.
    pub fn dependency(&self) -> &'static str {
        const SECRETS_CALLS: [&str; 5] = [
            "GetSecretValue",
            "PutSecretValue",
            "DescribeSecret",
            "CreateSecret",
            "UpdateSecretVersionStage",
        ];
        match self {
            Self::Unavailable(detail) if SECRETS_CALLS.iter().any(|c| detail.starts_with(c)) => {
                "SecretsManager"
            }
            Self::NoSigningKeys => "SecretsManager",
            _ => "DynamoDB",
        }
    }
}

/// Where a dependency failure becomes a 503: logged, and counted (`audit`).
impl From<StoreError> for OAuthError {
    fn from(err: StoreError) -> Self {
        tracing::error!(error = %err, "dependency failure");
        crate::audit::unavailable(err.dependency());
        OAuthError::TemporarilyUnavailable
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_client_with_basic_carries_a_challenge() {
        let r = OAuthError::InvalidClient {
            basic_challenge: true,
        }
        .into_response();
        assert_eq!(r.status, 401);
        assert_eq!(
            r.header_value("www-authenticate"),
            Some(r#"Basic realm="oauth""#)
        );
        let r = OAuthError::InvalidClient {
            basic_challenge: false,
        }
        .into_response();
        assert_eq!(r.header_value("www-authenticate"), None);
    }

    #[test]
    fn unavailable_is_503_with_retry_after() {
        let r = OAuthError::TemporarilyUnavailable.into_response();
        assert_eq!(r.status, 503);
        assert_eq!(r.header_value("retry-after"), Some("1"));
        let body: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(body["error"], "temporarily_unavailable");
    }
}
