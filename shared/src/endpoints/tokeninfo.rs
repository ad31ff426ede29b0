//! The tokeninfo function: RFC 7662 introspection (POST, client-authenticated), the
//! EmpowerID/Google-style GET tokeninfo, and OIDC userinfo (Core §5.3).

use serde::Serialize;

use super::{authenticated_request, endpoint_url, issuer, verified_dpop_proof, with_dpop_nonce};
use crate::config::Config;
use crate::error::OAuthError;
use crate::grants::client_jwks::{ClientJwks, JwksFetcher};
use crate::grants::refresh::family_account;
use crate::grants::spend_dpop_proof;
use crate::http::{ApiRequest, ApiResponse};
use crate::keys::{KeyCache, KeySource};
use crate::request::Params;
use crate::storage::{
    Account, AssertionReplays, Client, ClientDirectory, FailureCounters, TokenRecords, Wanted,
};
use crate::tokens::AccessTokenClaims;
use crate::tokens::claims::standard_claims;
use crate::tokens::dpop::{self, Confirmation};
use crate::tokens::refresh::RefreshToken;
use crate::tokens::verify::{verify_access_token, verify_with_cache};

pub const TOKENINFO_PATH: &str = "/oauth/v2/tokeninfo";
pub const USERINFO_PATH: &str = "/oauth/v2/userinfo";

/// RFC 7662 §2.2 answer. Inactive is exactly `{"active":false}`.
#[derive(Debug, Default, Serialize, PartialEq)]
pub struct Introspection {
    pub active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// The DPoP key a bound token is tied to (RFC 9449 §6.2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
}

impl Introspection {
    fn inactive() -> Self {
        Self::default()
    }

    fn of_access_token(active: ActiveToken) -> Self {
        let ActiveToken { claims, account } = active;
        Self {
            active: true,
            scope: Some(claims.scope),
            client_id: Some(claims.client_id),
            username: account.map(|a| a.username),
            token_type: Some(dpop::token_type(claims.cnf.is_some())),
            exp: Some(claims.exp),
            iat: Some(claims.iat),
            nbf: Some(claims.nbf),
            sub: Some(claims.sub),
            aud: Some(claims.aud),
            iss: Some(claims.iss),
            jti: Some(claims.jti),
            cnf: claims.cnf,
        }
    }
}

/// An access token that verified and that the store still honours.
pub struct ActiveToken {
    pub claims: AccessTokenClaims,
    /// The user's account, for tokens of a user grant.
    pub account: Option<Account>,
}

/// Storage the tokeninfo function needs (failure counters: introspection authenticates clients).
pub trait TokenInfoStore:
    ClientDirectory + TokenRecords + FailureCounters + AssertionReplays
{
}
impl<T: ClientDirectory + TokenRecords + FailureCounters + AssertionReplays> TokenInfoStore for T {}

pub struct TokenInfoService<S, K> {
    pub config: Config,
    pub store: S,
    pub keys: KeyCache<K>,
    pub client_jwks: ClientJwks,
}

/// How an access token was presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presented<'a> {
    /// `Authorization: Bearer …` (RFC 6750 §2.1).
    Bearer(&'a str),
    /// `Authorization: DPoP …`, with a proof in the `DPoP` header (RFC 9449 §7.1).
    Dpop(&'a str),
}

/// The access token of the `Authorization` header, with its scheme.
pub fn presented_token(request: &ApiRequest) -> Option<Presented<'_>> {
    let value = request.header("authorization")?.trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    if token.is_empty() {
        return None;
    }
    if scheme.eq_ignore_ascii_case("bearer") {
        Some(Presented::Bearer(token))
    } else if scheme.eq_ignore_ascii_case(dpop::SCHEME) {
        Some(Presented::Dpop(token))
    } else {
        None
    }
}

/// The `Authorization` scheme a token came in, and so its errors' challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Bearer,
    Dpop,
}

impl<'a> Presented<'a> {
    pub fn token(self) -> &'a str {
        match self {
            Self::Bearer(token) | Self::Dpop(token) => token,
        }
    }

    fn scheme(self) -> Scheme {
        match self {
            Self::Bearer(_) => Scheme::Bearer,
            Self::Dpop(_) => Scheme::Dpop,
        }
    }
}

/// The DPoP challenge's `algs` (RFC 9449 §7.1): the proof algorithms we accept.
fn dpop_challenge() -> String {
    format!(
        r#"{} algs="{}""#,
        dpop::SCHEME,
        crate::tokens::jws::SIGNING_ALGS.join(" ")
    )
}

/// The challenges of a resource that takes both schemes (RFC 6750 §3, RFC 9449 §7.1).
fn challenges() -> String {
    format!(r#"Bearer realm="oauth", {}"#, dpop_challenge())
}

/// A resource-server error with its challenge in the scheme the token came in.
fn resource_error(
    scheme: Scheme,
    status: u16,
    code: &'static str,
    description: &'static str,
) -> ApiResponse {
    let challenge = match scheme {
        Scheme::Dpop => format!(
            r#"{}, error="{code}", error_description="{description}""#,
            dpop_challenge()
        ),
        Scheme::Bearer => {
            format!(r#"Bearer realm="oauth", error="{code}", error_description="{description}""#)
        }
    };
    ApiResponse::json(
        status,
        &serde_json::json!({"error": code, "error_description": description}),
    )
    .no_store()
    .header("www-authenticate", challenge)
}

impl<S: TokenInfoStore, K: KeySource> TokenInfoService<S, K> {
    pub fn new(config: Config, store: S, key_source: K) -> Self {
        let keys = KeyCache::new(key_source, config.key_cache);
        Self {
            config,
            store,
            keys,
            client_jwks: ClientJwks::default(),
        }
    }

    /// Fetches the keys of clients registered by `jwks_uri` through `fetcher`.
    pub fn with_jwks_fetcher(mut self, fetcher: Box<dyn JwksFetcher>) -> Self {
        self.client_jwks = ClientJwks::new(fetcher);
        self
    }

    pub async fn handle(&self, request: &ApiRequest) -> ApiResponse {
        let path = request.path.trim_end_matches('/');
        let get = request.method == http::Method::GET;
        let post = request.method == http::Method::POST;
        let result = match path {
            TOKENINFO_PATH if post => self.introspect(request).await,
            TOKENINFO_PATH if get => self.tokeninfo_get(request).await,
            USERINFO_PATH if get || post => return self.userinfo(request).await,
            TOKENINFO_PATH | USERINFO_PATH => return ApiResponse::method_not_allowed("GET, POST"),
            _ => return ApiResponse::not_found(),
        };
        match result {
            Ok(answer) => ApiResponse::json(200, &answer).no_store(),
            Err(error) => error.into_response(),
        }
    }

    /// Verifies an access token and checks, in one read, what it depends on; `None` = inactive.
    /// Inactive when its `jti` is revoked; when it names a family (`sid`) that is revoked,
    /// not its own, or gone (a family is kept until the last token minted from it expired, so
    /// a missing one was deleted or never ours); when its client is disabled, gone or was
    /// created after the token; when its user's account is gone, disabled, another user, or
    /// had its password set after the token was issued.
    pub async fn active_access_token(
        &self,
        token: &str,
        issuer: &str,
    ) -> Result<Option<ActiveToken>, OAuthError> {
        let Some(claims) =
            verify_with_cache(&self.keys, |keys| verify_access_token(token, keys, issuer)).await?
        else {
            return Ok(None);
        };
        // client_credentials tokens have the client as subject; a user's `sub` is a UUID, which
        // the CLI refuses as a client id.
        let user_token = claims.sub != claims.client_id;
        let found = self
            .store
            .read(Wanted {
                client: Some(&claims.client_id),
                account: user_token.then_some(claims.sub.as_str()),
                family: claims.sid.as_deref(),
                revoked_jti: Some(&claims.jti),
                ..Wanted::default()
            })
            .await?;
        let client_ok = found
            .client
            .as_ref()
            .is_some_and(|c| c.enabled && c.created_at <= claims.iat);
        let family_ok = match (&claims.sid, &found.family) {
            (None, _) => true,
            (Some(_), Some(f)) => {
                !f.revoked && f.client_id == claims.client_id && f.user_id == claims.sub
            }
            (Some(_), None) => false,
        };
        let account = found.account.filter(|a| a.honours(&claims.sub, claims.iat));
        let user_ok = !user_token || account.is_some();
        Ok((!found.jti_revoked && client_ok && family_ok && user_ok)
            .then_some(ActiveToken { claims, account }))
    }

    /// A refresh token is active only while it is its family's current token, the family is
    /// live, the caller is its client, and its user still honours it.
    async fn active_refresh_token(
        &self,
        token: &str,
        client: &Client,
        now: i64,
    ) -> Result<Option<Introspection>, OAuthError> {
        let Some(token) = RefreshToken::parse(token) else {
            return Ok(None);
        };
        let found = self
            .store
            .read(Wanted {
                family: Some(&token.family_id),
                account: token.user_id(),
                ..Wanted::default()
            })
            .await?;
        let Some(family) = found.family else {
            return Ok(None);
        };
        let current = crate::crypto::digests_equal(&token.hash(), &family.current_hash);
        if !current || !family.live_for(client, now) {
            return Ok(None);
        }
        let account = family_account(&self.store, found.account, &token, &family).await?;
        let Some(account) = account.filter(|a| a.honours(&family.user_id, family.auth_time)) else {
            return Ok(None);
        };
        Ok(Some(Introspection {
            active: true,
            scope: Some(family.scope.clone()),
            client_id: Some(family.client_id.clone()),
            username: Some(account.username),
            token_type: Some("refresh_token"),
            exp: Some(family.exp),
            // RFC 7662 §2.2: when this token was issued, not when the session began.
            iat: Some(family.current_token_issued_at()),
            sub: Some(family.user_id),
            ..Introspection::default()
        }))
    }

    /// RFC 7662 §2: POST with client authentication (the token endpoint's rules).
    async fn introspect(&self, request: &ApiRequest) -> Result<Introspection, OAuthError> {
        let now = crate::now_epoch();
        let (params, client) = authenticated_request(
            &self.config,
            &self.store,
            &self.client_jwks,
            request,
            "/v2/tokeninfo",
            now,
        )
        .await?;
        // RFC 7662 §2.1: introspection requires authorization, against token scanning; a
        // public client's client_id alone is none (discovery lists no `none` here either).
        if client.public {
            return Err(OAuthError::InvalidClient {
                basic_challenge: false,
            });
        }
        let client = &client;
        let token = params
            .get("token")
            .ok_or(OAuthError::InvalidRequest("token is required"))?;
        let issuer = issuer(&self.config, request)?;
        // RFC 7662 §2.1 makes `token_type_hint` optional and non-binding; the two formats are
        // disjoint (a JWS has two dots, a refresh token one), so the token itself decides.
        if token.matches('.').count() == 2 {
            let claims = self.active_access_token(token, &issuer).await?;
            return Ok(claims.map_or_else(Introspection::inactive, Introspection::of_access_token));
        }
        Ok(self
            .active_refresh_token(token, client, now)
            .await?
            .unwrap_or_else(Introspection::inactive))
    }

    /// GET tokeninfo: `?access_token=` or an `Authorization` header (Bearer or DPoP: this only
    /// describes the token, so no proof is asked for); access tokens only, no client auth.
    async fn tokeninfo_get(&self, request: &ApiRequest) -> Result<Introspection, OAuthError> {
        let query = Params::from_query(request.query.as_deref().unwrap_or_default())?;
        let token = query
            .get("access_token")
            .or_else(|| presented_token(request).map(Presented::token))
            .ok_or(OAuthError::InvalidRequest("access_token is required"))?;
        let issuer = issuer(&self.config, request)?;
        Ok(self
            .active_access_token(token, &issuer)
            .await?
            .map_or_else(Introspection::inactive, Introspection::of_access_token))
    }

    /// RFC 9449 §7.1: the proof a DPoP-scheme token comes with, verified for this request and
    /// token (and, while nonces are required, with the current nonce, §9); else the refusal.
    async fn userinfo_proof(
        &self,
        request: &ApiRequest,
        issuer: &str,
        token: &str,
        now: i64,
    ) -> Result<dpop::Proof, ApiResponse> {
        let refuse = |code, description| resource_error(Scheme::Dpop, 401, code, description);
        let url = endpoint_url(issuer, &request.path);
        let expected = dpop::Expected {
            method: request.method.as_str(),
            url: &url,
            access_token: Some(token),
            now,
        };
        let keys = match self.config.dpop_nonce_required {
            true => Some(
                self.keys
                    .current()
                    .await
                    .map_err(|e| OAuthError::from(e).into_response())?,
            ),
            false => None,
        };
        match verified_dpop_proof(request, &expected, keys.as_deref()) {
            Ok(Some(proof)) => Ok(proof),
            Ok(None) => Err(refuse(
                "invalid_dpop_proof",
                "a DPoP-scheme token needs a DPoP proof",
            )),
            Err(OAuthError::InvalidDpopProof(description)) => {
                Err(refuse("invalid_dpop_proof", description))
            }
            Err(OAuthError::UseDpopNonce) => {
                let refusal = refuse("use_dpop_nonce", OAuthError::UseDpopNonce.description());
                Err(match keys {
                    Some(keys) => with_dpop_nonce(refusal, &keys, now),
                    None => refusal,
                })
            }
            Err(error) => Err(error.into_response()),
        }
    }

    /// OIDC Core §5.3: the claims the access token's scopes release, for user tokens with
    /// `openid`, from the user's current account (read with the token's state).
    async fn userinfo(&self, request: &ApiRequest) -> ApiResponse {
        let Some(presented) = presented_token(request) else {
            // RFC 6750 §3.1: no credentials at all, so no error code, only the challenges.
            return ApiResponse::empty(401)
                .no_store()
                .header("www-authenticate", challenges());
        };
        let issuer = match issuer(&self.config, request) {
            Ok(issuer) => issuer,
            Err(error) => return error.into_response(),
        };
        let now = crate::now_epoch();
        let token = presented.token();
        // Answered in the scheme the token came in.
        let refuse = |status, code, description| {
            resource_error(presented.scheme(), status, code, description)
        };
        let proof = match presented {
            Presented::Bearer(_) => None,
            Presented::Dpop(token) => {
                match self.userinfo_proof(request, &issuer, token, now).await {
                    Ok(proof) => Some(proof),
                    Err(refusal) => return refusal,
                }
            }
        };
        let active = match self.active_access_token(token, &issuer).await {
            Ok(Some(active)) => active,
            Ok(None) => return refuse(401, "invalid_token", "the access token is invalid"),
            Err(error) => return error.into_response(),
        };
        // RFC 9449 §7.1-7.2: a bound token is useless as a bearer token, and a proof must be
        // by the key it is bound to.
        let bound_to = active.claims.cnf.as_ref().map(|cnf| cnf.jkt.as_str());
        match (bound_to, &proof) {
            (None, None) => {}
            (Some(_), None) => {
                return resource_error(
                    Scheme::Dpop,
                    401,
                    "invalid_token",
                    "the access token is DPoP-bound: present it with the DPoP scheme and a proof",
                );
            }
            (None, Some(_)) => {
                return refuse(401, "invalid_token", "the access token is not DPoP-bound");
            }
            (Some(jkt), Some(proof)) if jkt != proof.jkt => {
                return refuse(
                    401,
                    "invalid_dpop_proof",
                    "the DPoP proof is not by the key the access token is bound to",
                );
            }
            (Some(_), Some(proof)) => match spend_dpop_proof(&self.store, proof, now).await {
                Ok(()) => {}
                Err(OAuthError::InvalidDpopProof(description)) => {
                    return refuse(401, "invalid_dpop_proof", description);
                }
                Err(error) => return error.into_response(),
            },
        }
        let scopes: Vec<String> = active.claims.scope.split(' ').map(str::to_owned).collect();
        let (Some(account), true) = (&active.account, scopes.iter().any(|s| s == "openid")) else {
            return refuse(
                403,
                "insufficient_scope",
                "the access token lacks the openid scope of a user",
            );
        };
        let mut body = standard_claims(&scopes, &account.username, &account.claims);
        body.insert("sub".to_owned(), active.claims.sub.clone().into());
        ApiResponse::json(200, &body).no_store()
    }
}
