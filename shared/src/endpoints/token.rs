//! The token function: `POST /oauth/v2/token` (and its aliases) and RFC 7009 revocation.

use super::{
    TOKEN_ENDPOINT, assertion_audiences, authenticated_request, count_client_failure, endpoint_url,
    issuer, verified_dpop_proof, with_dpop_nonce,
};
use crate::audit::{self, Event, Record};
use crate::authorize::pushed;
use crate::authorize::request::RawRequest;
use crate::config::Config;
use crate::error::OAuthError;
use crate::grants::client_cache::ClientCache;
use crate::grants::client_jwks::{ClientJwks, JwksFetcher};
use crate::grants::{self, GrantContext, TokenResponse};
use crate::http::{ApiRequest, ApiResponse};
use crate::keys::{KeyCache, KeySource};
use crate::request::{parse_body, presented_credentials};
use crate::storage::{
    AssertionReplays, AuthorizationCodes, Client, ClientDirectory, FailureCounters, GrantType,
    LoginDirectory, PushedRequests, RefreshFamilies, Revocations, TokenRecords, Wanted, client_key,
};
use crate::tokens::dpop;
use crate::tokens::refresh::RefreshToken;
use crate::tokens::verify::{verify_access_token, verify_with_cache};

/// Paths that reach the token endpoint: ours, and the WSO2- and ID-API-shaped aliases.
pub const TOKEN_PATHS: [&str; 3] = ["/oauth/v2/token", "/oauth2/token", "/api/id/v1/auth/token"];

pub const REVOKE_PATH: &str = "/oauth/v2/revoke";

/// RFC 9126 pushed authorization requests.
pub const PAR_PATH: &str = "/oauth/v2/par";
/// The path of the PAR endpoint under the issuer (discovery, assertion audiences).
pub const PAR_ENDPOINT: &str = "/v2/par";

/// Storage the token function needs.
pub trait TokenStore:
    ClientDirectory
    + LoginDirectory
    + FailureCounters
    + RefreshFamilies
    + Revocations
    + TokenRecords
    + AuthorizationCodes
    + AssertionReplays
    + PushedRequests
{
}
impl<
    T: ClientDirectory
        + LoginDirectory
        + FailureCounters
        + RefreshFamilies
        + Revocations
        + TokenRecords
        + AuthorizationCodes
        + AssertionReplays
        + PushedRequests,
> TokenStore for T
{
}

/// What a token request turned out to be, as far as it got (for its audit line).
#[derive(Default)]
struct Attempt {
    grant: Option<GrantType>,
    client_id: Option<String>,
}

pub struct TokenService<S, K> {
    pub config: Config,
    pub store: S,
    pub keys: KeyCache<K>,
    pub clients: ClientCache,
    pub client_jwks: ClientJwks,
}

impl<S: TokenStore, K: KeySource> TokenService<S, K> {
    pub fn new(config: Config, store: S, key_source: K) -> Self {
        let keys = KeyCache::new(key_source, config.key_cache);
        let clients = ClientCache::new(config.client_cache);
        Self {
            config,
            store,
            keys,
            clients,
            client_jwks: ClientJwks::default(),
        }
    }

    /// Fetches the keys of clients registered by `jwks_uri` through `fetcher`.
    pub fn with_jwks_fetcher(mut self, fetcher: Box<dyn JwksFetcher>) -> Self {
        self.client_jwks = ClientJwks::new(fetcher);
        self
    }

    /// Routes one request of the token function.
    pub async fn handle(&self, request: &ApiRequest) -> ApiResponse {
        let path = request.path.trim_end_matches('/');
        let is_revoke = path == REVOKE_PATH;
        let is_par = path == PAR_PATH;
        if !is_revoke && !is_par && !TOKEN_PATHS.contains(&path) {
            return ApiResponse::not_found();
        }
        if request.method != http::Method::POST {
            return ApiResponse::method_not_allowed("POST");
        }
        if is_par {
            let response = self
                .push(request)
                .await
                .unwrap_or_else(OAuthError::into_response);
            return self.add_dpop_nonce(response).await;
        }
        if is_revoke {
            return match self.revoke(request).await {
                // RFC 7009 §2.2: 200 whether or not there was anything to revoke.
                Ok(()) => ApiResponse::empty(200).no_store(),
                Err(error) => error.into_response(),
            };
        }
        let started = std::time::Instant::now();
        let mut attempt = Attempt::default();
        let result = self.token(request, &mut attempt).await;
        let response = self.answer(request, result, attempt, started);
        self.add_dpop_nonce(response).await
    }

    /// RFC 9449 §8.1-8.2: while nonces are required, every token response carries the
    /// current one, so a client always has it for its next proof (not when the key set could
    /// not be read: no second read in a request that already failed on it).
    async fn add_dpop_nonce(&self, response: ApiResponse) -> ApiResponse {
        if !self.config.dpop_nonce_required || response.status == 503 {
            return response;
        }
        match self.keys.current().await {
            Ok(keys) => with_dpop_nonce(response, &keys, crate::now_epoch()),
            Err(_) => response,
        }
    }

    /// The response to a token request, and its audit line.
    fn answer(
        &self,
        request: &ApiRequest,
        result: Result<TokenResponse, OAuthError>,
        attempt: Attempt,
        started: std::time::Instant,
    ) -> ApiResponse {
        let mut record = Record {
            grant: attempt.grant.map(|g| g.as_str()),
            client_id: attempt.client_id.as_deref(),
            source_ip: request.source_ip.as_deref(),
            user_agent: request.header("user-agent"),
            ..Record::default()
        };
        match result {
            Ok(response) => {
                let issued = &response.issued;
                record.client_id = Some(&issued.client_id);
                record.user_id = issued.user_id.as_deref();
                record.scope = Some(&response.scope);
                record.jti = Some(&issued.jti);
                record.family = issued.family.as_deref();
                record.handler_ms = Some(started.elapsed().as_secs_f64() * 1e3);
                audit::emit(Event::TokenIssued, &record);
                ApiResponse::json(200, &response).no_store()
            }
            Err(error) => {
                record.error = Some(error.code());
                record.handler_ms = Some(started.elapsed().as_secs_f64() * 1e3);
                audit::emit(Event::TokenRefused, &record);
                error.into_response()
            }
        }
    }

    async fn token(
        &self,
        request: &ApiRequest,
        attempt: &mut Attempt,
    ) -> Result<TokenResponse, OAuthError> {
        let params = parse_body(request.media_type().as_deref(), &request.body)?;
        let grant = match params.get("grant_type") {
            None => return Err(OAuthError::InvalidRequest("grant_type is required")),
            Some(name) => GrantType::parse(name).ok_or(OAuthError::UnsupportedGrantType)?,
        };
        attempt.grant = Some(grant);
        let credentials = presented_credentials(request.header("authorization"), &params)?;
        // The id the caller claims (an unknown or wrong one is still worth seeing in the log).
        attempt.client_id = client_key(&credentials.client().client_id).map(str::to_owned);
        let issuer = issuer(&self.config, request)?;
        let now = crate::now_epoch();
        let url = endpoint_url(&issuer, &request.path);
        let expected = dpop::Expected {
            method: "POST",
            url: &url,
            access_token: None,
            now,
        };
        let keys = self.keys.current().await?;
        let nonces = self.config.dpop_nonce_required.then_some(&*keys);
        let dpop = verified_dpop_proof(request, &expected, nonces)?;
        let audiences = match credentials.client().assertion {
            Some(_) => assertion_audiences(&issuer, TOKEN_ENDPOINT),
            None => Vec::new(),
        };
        let ctx = GrantContext {
            config: &self.config,
            store: &self.store,
            keys: &keys,
            clients: &self.clients,
            client_jwks: &self.client_jwks,
            issuer: &issuer,
            now,
            params: &params,
            credentials: &credentials,
            api_key: request.header(&self.config.api_key_header),
            assertion_audiences: &audiences,
            dpop: dpop.as_ref(),
        };
        let result = match grant {
            GrantType::ClientCredentials => grants::client_credentials::grant(&ctx).await,
            GrantType::Password => grants::password::grant(&ctx).await,
            GrantType::RefreshToken => grants::refresh::grant(&ctx).await,
            GrantType::AuthorizationCode => grants::authorization_code::grant(&ctx).await,
        };
        if let Err(OAuthError::InvalidClient { .. }) = result {
            let client_id = &credentials.client().client_id;
            count_client_failure(&self.config, &self.store, client_id, ctx.now).await;
        }
        result
    }
}

impl<S: TokenStore, K: KeySource> TokenService<S, K> {
    /// RFC 9126 §2: a client-authenticated push of authorization parameters, checked as the
    /// authorization endpoint checks them, stored once for `LIFETIME_SECONDS` (one PutItem);
    /// `201` with the `request_uri` that stands for them.
    async fn push(&self, request: &ApiRequest) -> Result<ApiResponse, OAuthError> {
        // RFC 9126 §2.1: the parameters come as a form.
        if request.media_type().as_deref() != Some("application/x-www-form-urlencoded") {
            return Err(OAuthError::InvalidRequest(
                "a pushed authorization request is an application/x-www-form-urlencoded POST",
            ));
        }
        let now = crate::now_epoch();
        let proof = self.push_proof(request, now).await?;
        let (_, client) = authenticated_request(
            &self.config,
            &self.store,
            &self.client_jwks,
            request,
            PAR_ENDPOINT,
            now,
        )
        .await?;
        let raw = RawRequest::from_form(&request.body);
        // RFC 9449 §10.1: a proof with the push binds the code to its key, as `dpop_jkt` does;
        // sent together, they must name the same key.
        if let Some(proof) = &proof {
            if raw.get("dpop_jkt").is_some_and(|jkt| jkt != proof.jkt) {
                return Err(OAuthError::InvalidDpopProof(
                    "dpop_jkt is not the thumbprint of the DPoP proof's key",
                ));
            }
            grants::spend_dpop_proof(&self.store, proof, now).await?;
        }
        let proof_jkt = proof.as_ref().map(|proof| proof.jkt.as_str());
        let pushed = match pushed::push(&raw, &client, proof_jkt, now) {
            Ok(pushed) => pushed,
            // RFC 9126 §2.3: the authorization endpoint's error, as a JSON error.
            Err(error) => {
                let body = serde_json::json!({
                    "error": error.code(),
                    "error_description": error.description(),
                });
                return Ok(ApiResponse::json(400, &body).no_store());
            }
        };
        self.store.push_request(&pushed.record).await?;
        let body = serde_json::json!({
            "request_uri": pushed.request_uri,
            "expires_in": pushed::LIFETIME_SECONDS,
        });
        Ok(ApiResponse::json(201, &body).no_store())
    }

    /// The push's DPoP proof, verified for the PAR URL (RFC 9449 §10.1); spent by `push`
    /// once the client authenticated.
    async fn push_proof(
        &self,
        request: &ApiRequest,
        now: i64,
    ) -> Result<Option<dpop::Proof>, OAuthError> {
        if request.header(dpop::HEADER).is_none() {
            return Ok(None);
        }
        let url = endpoint_url(&issuer(&self.config, request)?, PAR_PATH);
        let expected = dpop::Expected {
            method: "POST",
            url: &url,
            access_token: None,
            now,
        };
        let keys = self.keys.current().await?;
        let nonces = self.config.dpop_nonce_required.then_some(&*keys);
        verified_dpop_proof(request, &expected, nonces)
    }

    /// RFC 7009: a refresh token revokes its family (and so every access token carrying its
    /// `sid`); an access token is marked revoked until its `exp`. Unknown, invalid or already
    /// revoked tokens are a no-op; another client's token is refused.
    async fn revoke(&self, request: &ApiRequest) -> Result<(), OAuthError> {
        let now = crate::now_epoch();
        let (params, client) = authenticated_request(
            &self.config,
            &self.store,
            &self.client_jwks,
            request,
            "/v2/revoke",
            now,
        )
        .await?;
        let client = &client;
        let token = params
            .get("token")
            .ok_or(OAuthError::InvalidRequest("token is required"))?;
        // The hint is optional (RFC 7009 §2.1) and the formats are disjoint.
        if token.matches('.').count() == 2 {
            self.revoke_access_token(token, client, request).await
        } else {
            self.revoke_refresh_token(token, client).await
        }
    }

    async fn revoke_access_token(
        &self,
        token: &str,
        client: &Client,
        request: &ApiRequest,
    ) -> Result<(), OAuthError> {
        let issuer = issuer(&self.config, request)?;
        let Some(claims) =
            verify_with_cache(&self.keys, |keys| verify_access_token(token, keys, &issuer)).await?
        else {
            return Ok(());
        };
        if claims.client_id != client.client_id {
            return Err(OAuthError::InvalidRequest(
                "the token was issued to another client",
            ));
        }
        Ok(self
            .store
            .revoke_access_token(&claims.jti, claims.exp)
            .await?)
    }

    async fn revoke_refresh_token(&self, token: &str, client: &Client) -> Result<(), OAuthError> {
        let Some(token) = RefreshToken::parse(token) else {
            return Ok(());
        };
        let wanted = Wanted {
            family: Some(&token.family_id),
            ..Wanted::default()
        };
        let Some(family) = self.store.read(wanted).await?.family else {
            return Ok(());
        };
        if family.client_id != client.client_id {
            return Err(OAuthError::InvalidRequest(
                "the token was issued to another client",
            ));
        }
        // Any token the family issued revokes it, current or not: a client logging out with a
        // token that a concurrent (or stolen) refresh just rotated must still end the session
        // (RFC 9700 §4.14.2 treats such a token as a reuse signal anyway). One it never issued
        // is not a token of the family (RFC 7009 §2.2: answered 200, nothing revoked).
        if !family.issued(&token.hash()) {
            return Ok(());
        }
        Ok(self.store.revoke_family(&family.family_id).await?)
    }
}
