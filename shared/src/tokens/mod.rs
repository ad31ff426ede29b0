//! Tokens: RFC 9068 access tokens, OIDC id_tokens, opaque refresh tokens, and the claim rules
//! that decide what goes where.

pub mod claims;
pub mod dpop;
pub mod jws;
pub mod refresh;
pub mod verify;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// JOSE `typ` of access tokens (RFC 9068 §2.1).
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";
/// JOSE `typ` of id_tokens.
pub const ID_TOKEN_TYP: &str = "JWT";

/// RFC 9068 §2.2 access-token claims, plus the subject's custom claims.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AccessTokenClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub nbf: i64,
    pub jti: String,
    pub client_id: String,
    pub scope: String,
    /// The refresh-token family (login session) this token belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// The user's login name, only with the `profile` scope (OIDC Core §5.4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_username: Option<String>,
    /// The DPoP key the token is bound to (RFC 9449 §6.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<dpop::Confirmation>,
    #[serde(flatten)]
    pub custom: BTreeMap<String, serde_json::Value>,
}

/// OIDC Core §2 id_token claims plus the standard claims the granted scopes release (§5.4).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct IdTokenClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub auth_time: i64,
    /// OIDC Core §3.1.3.7: echoed so the relying party can tie the token to its request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// The session (refresh family) the token belongs to (OIDC Front/Back-Channel Logout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    #[serde(flatten)]
    pub standard: BTreeMap<String, serde_json::Value>,
}
