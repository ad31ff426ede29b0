//! The discovery function: OIDC Discovery 1.0 and RFC 8414 metadata (one document), and the
//! RFC 7517 JWK Set.

use super::issuer;
use crate::config::Config;
use crate::error::OAuthError;
use crate::http::{ApiRequest, ApiResponse};
use crate::keys::{KeyCache, KeySource};
use crate::tokens::claims::OIDC_SCOPES;
use crate::tokens::jws::SIGNING_ALGS;

pub const OIDC_DISCOVERY_PATH: &str = "/oauth/.well-known/openid-configuration";
/// RFC 8414 §3: the well-known suffix goes between host and the issuer's path.
pub const RFC8414_PATH: &str = "/.well-known/oauth-authorization-server/oauth";
pub const JWKS_PATH: &str = "/oauth/v2/jwks";

/// Cache lifetime of metadata and JWKS; key rotation waits this long (plus the functions' key
/// cache) before a `next` key may start signing.
pub const MAX_AGE_SECONDS: u64 = 300;

const CLIENT_AUTH_METHODS: [&str; 3] = [
    "client_secret_basic",
    "client_secret_post",
    "private_key_jwt",
];
/// `none`: a public client's code exchange and refresh send only its `client_id` (SPEC §4).
const TOKEN_AUTH_METHODS: [&str; 4] = [
    "client_secret_basic",
    "client_secret_post",
    "private_key_jwt",
    "none",
];

const CLAIMS_SUPPORTED: [&str; 27] = [
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "auth_time",
    "name",
    "family_name",
    "given_name",
    "middle_name",
    "nickname",
    "preferred_username",
    "profile",
    "picture",
    "website",
    "gender",
    "birthdate",
    "zoneinfo",
    "locale",
    "updated_at",
    "email",
    "email_verified",
    "address",
    "phone_number",
    "phone_number_verified",
    "client_id",
    "scope",
];

pub struct DiscoveryService<K> {
    pub config: Config,
    pub keys: KeyCache<K>,
}

/// The authorization-server metadata for `issuer` (SPEC §3); `require_par` is the
/// deployment's `REQUIRE_PAR`.
pub fn metadata(issuer: &str, require_par: bool) -> serde_json::Value {
    serde_json::json!({
        "issuer": issuer,
        "token_endpoint": format!("{issuer}/v2/token"),
        "jwks_uri": format!("{issuer}/v2/jwks"),
        "userinfo_endpoint": format!("{issuer}/v2/userinfo"),
        "introspection_endpoint": format!("{issuer}/v2/tokeninfo"),
        "revocation_endpoint": format!("{issuer}/v2/revoke"),
        "authorization_endpoint": format!("{issuer}/v2/authorize"),
        "end_session_endpoint": format!("{issuer}/v2/logout"),
        // RFC 9126 §5.
        "pushed_authorization_request_endpoint": format!("{issuer}/v2/par"),
        "require_pushed_authorization_requests": require_par,
        "grant_types_supported":
            ["authorization_code", "client_credentials", "password", "refresh_token"],
        "token_endpoint_auth_methods_supported": TOKEN_AUTH_METHODS,
        "introspection_endpoint_auth_methods_supported": CLIENT_AUTH_METHODS,
        "revocation_endpoint_auth_methods_supported": CLIENT_AUTH_METHODS,
        // private_key_jwt's assertions (RFC 8414 §2); the same for every endpoint.
        "token_endpoint_auth_signing_alg_values_supported": SIGNING_ALGS,
        "introspection_endpoint_auth_signing_alg_values_supported": SIGNING_ALGS,
        "revocation_endpoint_auth_signing_alg_values_supported": SIGNING_ALGS,
        // RFC 9449 §5.1.
        "dpop_signing_alg_values_supported": SIGNING_ALGS,
        "scopes_supported": &OIDC_SCOPES[..5],
        "claims_supported": CLAIMS_SUPPORTED,
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query", "form_post"],
        // RFC 7636 §4.2: `plain` is refused (SPEC §12).
        "code_challenge_methods_supported": ["S256"],
        // RFC 9207 §3: every authorization response carries `iss`.
        "authorization_response_iss_parameter_supported": true,
        "prompt_values_supported": ["none", "login", "consent"],
        "request_parameter_supported": false,
        // Request objects by reference (OIDC Core §6.2) are not fetched; the `request_uri` a
        // PAR push answers is advertised by `pushed_authorization_request_endpoint` instead.
        "request_uri_parameter_supported": false,
        "claims_parameter_supported": false,
    })
}

impl<K: KeySource> DiscoveryService<K> {
    pub fn new(config: Config, key_source: K) -> Self {
        let keys = KeyCache::new(key_source, config.key_cache);
        Self { config, keys }
    }

    pub async fn handle(&self, request: &ApiRequest) -> ApiResponse {
        let path = request.path.trim_end_matches('/');
        if ![OIDC_DISCOVERY_PATH, RFC8414_PATH, JWKS_PATH].contains(&path) {
            return ApiResponse::not_found();
        }
        // The template routes GET only (API Gateway answers HEAD itself with 404).
        if request.method != http::Method::GET {
            return ApiResponse::method_not_allowed("GET");
        }
        let result = if path == JWKS_PATH {
            self.keys
                .current()
                .await
                .map_err(OAuthError::from)
                .map(|keys| ApiResponse {
                    status: 200,
                    headers: vec![
                        ("content-type", "application/jwk-set+json".to_owned()),
                        ("x-content-type-options", "nosniff".to_owned()),
                    ],
                    body: keys.jwks_json().to_owned(),
                })
        } else {
            issuer(&self.config, request)
                .map(|issuer| ApiResponse::json(200, &metadata(&issuer, self.config.require_par)))
        };
        match result {
            Ok(response) => response.public_cacheable(MAX_AGE_SECONDS),
            Err(error) => error.into_response(),
        }
    }
}
