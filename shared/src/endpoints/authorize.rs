//! The authorize function: the authorization endpoint (RFC 6749 §4.1, OIDC Core §3.1.2), the
//! hosted login form, the consent step and RP-Initiated Logout (SPEC §12).
//!
//! A sign-in is a `LoginTransaction` of its own (one per tab), its form carries the
//! transaction id and a CSRF token, and the browser session is a `__Host-` cookie holding a
//! 256-bit secret whose SHA-256 keys the `sess#` record.

use cookie::{Cookie, SameSite};

use super::issuer;
use crate::audit::{self, Event, Record};
use crate::authorize::code::{CODE_LIFETIME_SECONDS, issue_code};
use crate::authorize::page::{self, messages};
use crate::authorize::pushed;
use crate::authorize::request::{
    AuthorizationRequest, AuthorizeError, RawRequest, Refusal, ReplyTo, ResponseMode, error_params,
    redirect_with, trusted_reply, validate,
};
use crate::config::Config;
use crate::crypto::{digests_equal, random_secret, sha256_b64};
use crate::error::OAuthError;
use crate::grants::password::verify_counted;
use crate::http::{ApiRequest, ApiResponse};
use crate::keys::{KeyCache, KeySource};
use crate::storage::{
    AuthorizationCode, AuthorizationCodes, BrowserSession, Consent, FailureCounters,
    LoginTransaction, PushedRequests, RefreshFamilies, RefreshFamily, SignInRecords, TokenRecords,
    Wanted, client_key, username_key,
};
use crate::tokens::refresh::RefreshToken;
use crate::tokens::verify::{verify_id_token_hint, verify_with_cache};

/// The authorization endpoint and seed 002's alias.
pub const AUTHORIZE_PATHS: [&str; 2] = ["/oauth/v2/authorize", "/oauth/v2/ui/authorize"];
pub const LOGIN_PATH: &str = "/oauth/v2/authorize/login";
pub const CONSENT_PATH: &str = "/oauth/v2/authorize/consent";
pub const LOGOUT_PATH: &str = "/oauth/v2/logout";
/// `__Host-`: Secure, Path=/, no Domain, so no other host or path can set or read it.
pub const SESSION_COOKIE: &str = "__Host-oauth-session";
/// How long a login page may stay open before its form is refused.
pub const TRANSACTION_SECONDS: i64 = 15 * 60;

/// Storage the authorize function needs.
pub trait AuthorizeStore:
    TokenRecords
    + SignInRecords
    + AuthorizationCodes
    + FailureCounters
    + RefreshFamilies
    + PushedRequests
{
}
impl<T> AuthorizeStore for T where
    T: TokenRecords
        + SignInRecords
        + AuthorizationCodes
        + FailureCounters
        + RefreshFamilies
        + PushedRequests
{
}

/// How many of a session's families logout revokes at once.
const REVOKE_CONCURRENCY: usize = 16;

pub struct AuthorizeService<S, K> {
    pub config: Config,
    pub store: S,
    pub keys: KeyCache<K>,
}

/// A form's fields (the login and consent POSTs).
fn form_fields(request: &ApiRequest) -> Option<RawRequest> {
    (request.media_type().as_deref() == Some("application/x-www-form-urlencoded"))
        .then(|| RawRequest::from_form(&request.body))
}

/// The session cookie's secret, from any `Cookie` header (API Gateway and SAM both deliver
/// them there; several headers or pairs are all read).
pub fn session_secret(request: &ApiRequest) -> Option<String> {
    request
        .headers
        .get_all("cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == SESSION_COOKIE)
        .map(|c| c.value().to_owned())
        .filter(|v| !v.is_empty() && v.len() <= 64)
}

/// The logout confirmation form's CSRF token: derived from the session secret, so only a page
/// this browser was shown can carry it, and nothing needs storing.
fn logout_csrf(secret: &str) -> String {
    sha256_b64(format!("logout\0{secret}").as_bytes())
}

fn session_cookie(secret: &str, max_age: i64) -> String {
    Cookie::build((SESSION_COOKIE, secret.to_owned()))
        .secure(true)
        .http_only(true)
        .same_site(SameSite::Lax)
        .path("/")
        .max_age(cookie::time::Duration::seconds(max_age))
        .build()
        .to_string()
}

/// The longest query a POST is re-sent as (what CloudFront and most browsers take, with room).
const MAX_GET_QUERY: usize = 8 * 1024;

/// RFC 9700 §4.12: 303 after a POST, so the browser does not re-send the form.
fn see_other(location: &str) -> ApiResponse {
    ApiResponse::empty(303)
        .header("location", location.to_owned())
        .no_store()
        .header("referrer-policy", "no-referrer")
}

/// The authorization response (code or error) in the client's response mode.
fn reply(reply_to: &ReplyTo, params: &[(&str, &str)]) -> ApiResponse {
    match reply_to.mode {
        ResponseMode::Query => see_other(&redirect_with(&reply_to.redirect_uri, params)),
        ResponseMode::FormPost => page::form_post(&reply_to.redirect_uri, params),
    }
}

fn reply_error(reply_to: &ReplyTo, error: AuthorizeError, issuer: &str) -> ApiResponse {
    reply(reply_to, &error_params(reply_to, &error, issuer))
}

/// Same-origin form posts only (SPEC §12 CSRF: a token in the form and this check): a
/// browser's `Sec-Fetch-Site`, else its `Origin`, must not name another site.
fn same_origin(request: &ApiRequest, issuer: &str) -> bool {
    if let Some(site) = request.header("sec-fetch-site") {
        return matches!(site, "same-origin" | "none");
    }
    match request.header("origin") {
        Some(origin) => issuer.starts_with(origin) && issuer[origin.len()..].starts_with('/'),
        None => true,
    }
}

impl<S: AuthorizeStore, K: KeySource> AuthorizeService<S, K> {
    pub fn new(config: Config, store: S, key_source: K) -> Self {
        let keys = KeyCache::new(key_source, config.key_cache);
        Self {
            config,
            store,
            keys,
        }
    }

    fn error_page(&self, message: &str) -> ApiResponse {
        page::error_page(&self.config.branding, message)
    }

    /// A POST to the authorization or logout endpoint (OIDC Core §3.1.2.1 and RP-Initiated
    /// Logout §2 take both methods) that came without the session cookie, sent back as a GET
    /// of the same parameters to the endpoint (`endpoint`, under the issuer, as discovery
    /// names it). An app's cross-site form POST never carries a `SameSite=Lax` cookie, but the
    /// top-level GET it is redirected to does: without this, such a logout would report a
    /// session ended that was not, and prompt=none would answer login_required to a signed-in
    /// user.
    fn again_as_get(
        &self,
        request: &ApiRequest,
        endpoint: &str,
        raw: &RawRequest,
    ) -> Result<Option<ApiResponse>, OAuthError> {
        if session_secret(request).is_some() {
            return Ok(None);
        }
        let query = raw.encoded();
        if query.len() > MAX_GET_QUERY {
            return Ok(None);
        }
        let issuer = issuer(&self.config, request)?;
        Ok(Some(see_other(&format!("{issuer}{endpoint}?{query}"))))
    }

    pub async fn handle(&self, request: &ApiRequest) -> ApiResponse {
        let path = request.path.trim_end_matches('/');
        let get = request.method == http::Method::GET;
        let post = request.method == http::Method::POST;
        let result = match path {
            p if AUTHORIZE_PATHS.contains(&p) && get => {
                let raw = RawRequest::from_form(request.query.as_deref().unwrap_or("").as_bytes());
                self.authorize(request, raw).await
            }
            p if AUTHORIZE_PATHS.contains(&p) && post => match form_fields(request) {
                Some(raw) => match self.again_as_get(request, "/v2/authorize", &raw) {
                    Ok(Some(redirect)) => Ok(redirect),
                    Ok(None) => self.authorize(request, raw).await,
                    Err(error) => Err(error),
                },
                None => Ok(self.error_page(messages::REQUEST_REJECTED)),
            },
            LOGIN_PATH if post => self.login(request).await,
            CONSENT_PATH if post => self.consent(request).await,
            LOGOUT_PATH if get => {
                let raw = RawRequest::from_form(request.query.as_deref().unwrap_or("").as_bytes());
                self.logout(request, raw).await
            }
            LOGOUT_PATH if post => match form_fields(request) {
                Some(raw) => match self.again_as_get(request, "/v2/logout", &raw) {
                    Ok(Some(redirect)) => Ok(redirect),
                    Ok(None) => self.logout(request, raw).await,
                    Err(error) => Err(error),
                },
                None => Ok(self.error_page(messages::INVALID_LOGOUT)),
            },
            p if AUTHORIZE_PATHS.contains(&p) || p == LOGOUT_PATH => {
                return ApiResponse::method_not_allowed("GET, POST");
            }
            LOGIN_PATH | CONSENT_PATH => return ApiResponse::method_not_allowed("POST"),
            _ => return ApiResponse::not_found(),
        };
        result.unwrap_or_else(|error| match error {
            OAuthError::TemporarilyUnavailable => error.into_response(),
            _ => self.error_page(messages::REQUEST_REJECTED),
        })
    }

    /// GET/POST /oauth/v2/authorize.
    async fn authorize(
        &self,
        request: &ApiRequest,
        raw: RawRequest,
    ) -> Result<ApiResponse, OAuthError> {
        let now = crate::now_epoch();
        let issuer = issuer(&self.config, request)?;
        // RFC 9126 §4: a pushed request stands for its parameters, taken once; the browser's
        // others do not count (RFC 9101 §6.3).
        let (raw, pushed) = match raw.get("request_uri") {
            Some(uri) => match self.take_pushed(uri, raw.get("client_id"), now).await? {
                Some(pushed) => (pushed, true),
                None => return Ok(self.error_page(messages::PUSHED_REQUEST_UNUSABLE)),
            },
            None => (raw, false),
        };
        let cookie = session_secret(request);
        let cookie_hash = cookie.as_deref().map(|c| sha256_b64(c.as_bytes()));
        let found = self
            .store
            .read(Wanted {
                client: raw.get("client_id").and_then(client_key),
                session: cookie_hash.as_deref(),
                ..Wanted::default()
            })
            .await?;
        let checked = match (trusted_reply(&raw, found.client.as_ref()), &found.client) {
            (Ok(reply_to), Some(client)) => validate(&raw, client, reply_to),
            (Err(refusal), _) => Err(refusal),
            (Ok(_), None) => Err(Refusal::Page(messages::INVALID_CLIENT_OR_REDIRECT_URI)),
        };
        let authz = match checked {
            Ok(authz) => authz,
            Err(Refusal::Page(message)) => {
                return Ok(page::error_page(&self.config.branding, message));
            }
            Err(Refusal::Redirect(reply_to, error)) => {
                return Ok(reply_error(&reply_to, error, &issuer));
            }
        };
        // RFC 9126 §5-6: a client (or a deployment) that requires PAR takes nothing else.
        let par_required =
            self.config.require_par || authz.client.require_pushed_authorization_requests;
        if par_required && !pushed {
            let error = AuthorizeError::InvalidRequest(
                "this client sends authorization requests only through PAR (request_uri)",
            );
            return Ok(reply_error(&authz.reply, error, &issuer));
        }
        let session = found.session.filter(|s| s.live(now));
        // OIDC Core §3.1.2.1 `max_age`; 0 asks for a login now (SPEC §12), whatever the clock.
        let fresh_enough = |s: &BrowserSession| match authz.max_age {
            None => true,
            Some(0) => false,
            Some(max) => now - s.auth_time <= max,
        };
        let usable = session
            .filter(|s| !authz.prompt.login && fresh_enough(s))
            .filter(|s| self.hint_matches(&authz, s));
        // A session its account no longer honours (disabled, password changed, re-created)
        // is ended here, so the user signs in again: OIDC Core §3.1.2.6 keeps
        // `login_required` for prompt=none, which cannot show the login page.
        let mut ended_stale = false;
        let usable = match usable {
            Some(session) if self.honouring_account(&session).await?.is_none() => {
                self.store.end_session(&session.id_hash).await?;
                ended_stale = true;
                None
            }
            usable => usable,
        };
        let forget_stale = |response: ApiResponse| match ended_stale {
            true => response.header("set-cookie", session_cookie("", 0)),
            false => response,
        };
        match usable {
            Some(session) => {
                let idle = (now + self.config.session_idle).min(session.absolute_exp);
                self.store.touch_session(&session.id_hash, idle).await?;
                let leg = Leg {
                    request,
                    issuer: &issuer,
                    now,
                };
                self.after_login(
                    &leg,
                    &authz_record(&authz, &random_secret()),
                    &session,
                    authz.prompt.none,
                )
                .await
            }
            None if authz.prompt.none => Ok(forget_stale(reply_error(
                &authz.reply,
                AuthorizeError::LoginRequired,
                &issuer,
            ))),
            None => {
                let (transaction, csrf) = self.begin(&authz, now).await?;
                Ok(forget_stale(page::login_page(
                    &self.config.branding,
                    &transaction.client_name,
                    LOGIN_PATH,
                    &transaction.id,
                    &csrf,
                    transaction.login_hint.as_deref(),
                    false,
                )))
            }
        }
    }

    /// The session's account, if it still honours the session (`Account::honours`).
    async fn honouring_account(
        &self,
        session: &BrowserSession,
    ) -> Result<Option<crate::storage::Account>, OAuthError> {
        let found = self
            .store
            .read(Wanted {
                account: Some(&session.user_id),
                ..Wanted::default()
            })
            .await?;
        Ok(found
            .account
            .filter(|a| a.honours(&session.user_id, session.auth_time)))
    }

    /// The parameters of the pushed request `request_uri` names, taken (one conditional
    /// delete) if it is ours, live and pushed by `client_id`.
    async fn take_pushed(
        &self,
        request_uri: &str,
        client_id: Option<&str>,
        now: i64,
    ) -> Result<Option<RawRequest>, OAuthError> {
        let (Some(reference_hash), Some(client_id)) =
            (pushed::reference_hash(request_uri), client_id)
        else {
            return Ok(None);
        };
        let taken = self
            .store
            .take_request(&reference_hash, client_id, now)
            .await?;
        if taken.is_none() {
            tracing::info!(
                client_id,
                "unusable request_uri: unknown, used, expired or another client's"
            );
        }
        Ok(taken.as_ref().map(pushed::parameters_of))
    }

    /// OIDC Core §3.1.2.1: an `id_token_hint` names the user the client expects; a session of
    /// anyone else is not used (an expired hint still names its user).
    fn hint_matches(&self, authz: &AuthorizationRequest, session: &BrowserSession) -> bool {
        hinted_user(authz).is_none_or(|sub| sub == session.user_id)
    }

    async fn begin(
        &self,
        authz: &AuthorizationRequest,
        now: i64,
    ) -> Result<(LoginTransaction, String), OAuthError> {
        let csrf = random_secret();
        let mut transaction = authz_record(authz, &csrf);
        transaction.exp = now + TRANSACTION_SECONDS;
        self.store.put_transaction(&transaction).await?;
        Ok((transaction, csrf))
    }

    /// The consent step if the client wants one, else the code.
    async fn after_login(
        &self,
        leg: &Leg<'_>,
        transaction: &LoginTransaction,
        session: &BrowserSession,
        prompt_none: bool,
    ) -> Result<ApiResponse, OAuthError> {
        let (issuer, now) = (leg.issuer, leg.now);
        let reply_to = reply_to_of(transaction);
        let found = self
            .store
            .read(Wanted {
                client: Some(&transaction.client_id),
                consent: Some((&session.user_id, &transaction.client_id)),
                // For the code, in the same batch.
                account: Some(&session.user_id),
                ..Wanted::default()
            })
            .await?;
        let Some(client) = found.client.filter(|c| c.enabled) else {
            return Ok(self.error_page(messages::INVALID_CLIENT_OR_REDIRECT_URI));
        };
        let scopes = transaction.scopes();
        let consented = found.consent.is_some_and(|c| c.covers(&scopes));
        if client.consent && (transaction.ask_consent || !consented) {
            if prompt_none {
                return Ok(reply_error(
                    &reply_to,
                    AuthorizeError::ConsentRequired,
                    issuer,
                ));
            }
            // The consent form continues a transaction (a fresh one when the session was
            // enough to get here), bound to this session's user.
            let csrf = random_secret();
            let mut pending = transaction.clone();
            pending.id = random_secret();
            pending.csrf_hash = sha256_b64(csrf.as_bytes());
            pending.login_hint = Some(session.username.clone());
            pending.consenting_user = Some(session.user_id.clone());
            pending.exp = now + TRANSACTION_SECONDS;
            self.store.put_transaction(&pending).await?;
            return Ok(page::consent_page(
                &self.config.branding,
                &pending.client_name,
                &scopes,
                CONSENT_PATH,
                &pending.id,
                &csrf,
            ));
        }
        self.issue(leg, transaction, session, found.account).await
    }

    /// Mints the code and sends it to the client, if `account` (the session user's record, as
    /// read) still honours the session.
    async fn issue(
        &self,
        leg: &Leg<'_>,
        transaction: &LoginTransaction,
        session: &BrowserSession,
        account: Option<crate::storage::Account>,
    ) -> Result<ApiResponse, OAuthError> {
        let (issuer, now) = (leg.issuer, leg.now);
        let reply_to = reply_to_of(transaction);
        let login_required = || {
            Ok(reply_error(
                &reply_to,
                AuthorizeError::LoginRequired,
                issuer,
            ))
        };
        // OIDC Core §3.1.2.1: signed in as someone other than the hint's user, the client gets
        // login_required, not a code for another person.
        if transaction
            .hinted_user
            .as_ref()
            .is_some_and(|hinted| *hinted != session.user_id)
        {
            return login_required();
        }
        let Some(account) = account.filter(|a| a.honours(&session.user_id, session.auth_time))
        else {
            return login_required();
        };
        let family_id = RefreshToken::new_family(&account.user_id).family_id;
        // Listed under the session before the code exists, so logout revokes it; a session
        // already ended gets no code. OIDC Core §11: `offline_access` outlives the session.
        let offline = transaction.scopes().iter().any(|s| s == "offline_access");
        if !offline
            && !self
                .store
                .add_session_family(&session.id_hash, &family_id)
                .await?
        {
            return login_required();
        }
        let issued = issue_code(
            AuthorizationCode {
                code_hash: String::new(),
                client_id: transaction.client_id.clone(),
                redirect_uri: transaction.redirect_uri.clone(),
                scope: transaction.scope.clone(),
                nonce: transaction.nonce.clone(),
                code_challenge: transaction.code_challenge.clone(),
                dpop_jkt: transaction.dpop_jkt.clone(),
                user_id: account.user_id.clone(),
                username: account.username.clone(),
                claims: account.claims.clone(),
                auth_time: session.auth_time,
                family_id,
                exp: 0,
                consumed_at: None,
            },
            now,
        );
        self.store.store_code(&issued.record).await?;
        audit::emit(
            Event::CodeIssued,
            &Record {
                client_id: Some(&issued.record.client_id),
                user_id: Some(&issued.record.user_id),
                scope: Some(&issued.record.scope),
                family: Some(&issued.record.family_id),
                source_ip: leg.request.source_ip.as_deref(),
                user_agent: leg.request.header("user-agent"),
                ..Record::default()
            },
        );
        let mut params = vec![("code", issued.code.as_str())];
        if let Some(state) = &reply_to.state {
            params.push(("state", state));
        }
        params.push(("iss", issuer));
        Ok(reply(&reply_to, &params))
    }

    /// The transaction a form names, if it is live and the form's CSRF token is its own,
    /// read in one batch with the other records the form needs (`also`).
    async fn form_transaction<'a>(
        &self,
        request: &ApiRequest,
        fields: &'a RawRequest,
        also: Wanted<'a>,
    ) -> Result<Option<(LoginTransaction, crate::storage::Found)>, OAuthError> {
        let issuer = issuer(&self.config, request)?;
        let (Some(id), Some(csrf)) = (fields.get("transaction"), fields.get("csrf_token")) else {
            return Ok(None);
        };
        if !same_origin(request, &issuer) || id.len() > 64 {
            return Ok(None);
        }
        let mut found = self
            .store
            .read(Wanted {
                transaction: Some(id),
                ..also
            })
            .await?;
        let now = crate::now_epoch();
        let transaction = found
            .transaction
            .take()
            .filter(|t| t.exp > now && digests_equal(&sha256_b64(csrf.as_bytes()), &t.csrf_hash));
        Ok(transaction.map(|t| (t, found)))
    }

    /// POST /oauth/v2/authorize/login: the login form.
    async fn login(&self, request: &ApiRequest) -> Result<ApiResponse, OAuthError> {
        let now = crate::now_epoch();
        let issuer = issuer(&self.config, request)?;
        let Some(fields) = form_fields(request) else {
            return Ok(self.error_page(messages::REQUEST_REJECTED));
        };
        let username = fields.get("username").unwrap_or_default().to_owned();
        let password = fields.get("password").unwrap_or_default().to_owned();
        let login_key = username_key(&username);
        let Some((transaction, found)) = self
            .form_transaction(
                request,
                &fields,
                Wanted {
                    login: login_key,
                    ..Wanted::default()
                },
            )
            .await?
        else {
            return Ok(self.error_page(messages::TRANSACTION_EXPIRED));
        };
        // The password grant's lockout and equal work (SPEC §12): one counter, one answer.
        let user = verify_counted(
            &self.store,
            &self.config,
            now,
            login_key,
            &password,
            found.user,
            found.user_failures.as_ref(),
        )
        .await?;
        let Some(user) = user else {
            audit::emit(
                Event::LoginFailed,
                &Record {
                    client_id: Some(&transaction.client_id),
                    source_ip: request.source_ip.as_deref(),
                    user_agent: request.header("user-agent"),
                    ..Record::default()
                },
            );
            return Ok(page::login_page(
                &self.config.branding,
                &transaction.client_name,
                LOGIN_PATH,
                &transaction.id,
                fields.get("csrf_token").unwrap_or_default(),
                Some(&username),
                true,
            ));
        };
        // A form completes once (a double submit, or a replayed POST, finds it gone).
        if !self.store.finish_transaction(&transaction.id).await? {
            return Ok(self.error_page(messages::TRANSACTION_EXPIRED));
        }
        // The session this browser had is replaced: what the same user signed in under it
        // moves to the new one, so logout still revokes it; another user's is signed out
        // (OIDC Core §11: only offline_access outlives its session).
        let families = match session_secret(request) {
            Some(old) => match self.store.end_session(&sha256_b64(old.as_bytes())).await? {
                Some(ended) if ended.user_id == user.user_id => ended.families,
                Some(ended) => {
                    self.revoke_families(&ended, now).await?;
                    Vec::new()
                }
                None => Vec::new(),
            },
            None => Vec::new(),
        };
        // A new session id at every login (no fixation).
        let secret = random_secret();
        let session = BrowserSession {
            id_hash: sha256_b64(secret.as_bytes()),
            user_id: user.user_id.clone(),
            username: user.username.clone(),
            auth_time: now,
            idle_exp: now + self.config.session_idle.min(self.config.session_max),
            absolute_exp: now + self.config.session_max,
            families,
        };
        self.store.put_session(&session).await?;
        let response = self
            .after_login(
                &Leg {
                    request,
                    issuer: &issuer,
                    now,
                },
                &transaction,
                &session,
                false,
            )
            .await?;
        Ok(response.header(
            "set-cookie",
            session_cookie(&secret, self.config.session_max),
        ))
    }

    /// POST /oauth/v2/authorize/consent: allow or deny.
    async fn consent(&self, request: &ApiRequest) -> Result<ApiResponse, OAuthError> {
        let now = crate::now_epoch();
        let issuer = issuer(&self.config, request)?;
        let Some(fields) = form_fields(request) else {
            return Ok(self.error_page(messages::REQUEST_REJECTED));
        };
        let cookie_hash = session_secret(request).map(|c| sha256_b64(c.as_bytes()));
        let also = Wanted {
            session: cookie_hash.as_deref(),
            ..Wanted::default()
        };
        let Some((transaction, found)) = self.form_transaction(request, &fields, also).await?
        else {
            return Ok(self.error_page(messages::TRANSACTION_EXPIRED));
        };
        let session = found.session;
        let reply_to = reply_to_of(&transaction);
        // Consent belongs to the user the form was shown to, answering in their own live
        // session: any other session (or none) signs in again.
        let Some(session) = session
            .filter(|s| s.live(now))
            .filter(|s| transaction.consenting_user.as_deref() == Some(s.user_id.as_str()))
        else {
            return Ok(reply_error(
                &reply_to,
                AuthorizeError::LoginRequired,
                &issuer,
            ));
        };
        if !self.store.finish_transaction(&transaction.id).await? {
            return Ok(self.error_page(messages::TRANSACTION_EXPIRED));
        }
        if fields.get("decision") != Some("allow") {
            return Ok(reply_error(
                &reply_to,
                AuthorizeError::AccessDenied,
                &issuer,
            ));
        }
        let scopes = transaction.scopes();
        self.store
            .put_consent(&Consent {
                user_id: session.user_id.clone(),
                client_id: transaction.client_id.clone(),
                scopes,
            })
            .await?;
        let leg = Leg {
            request,
            issuer: &issuer,
            now,
        };
        let account = self.honouring_account(&session).await?;
        self.issue(&leg, &transaction, &session, account).await
    }
}

impl<S: AuthorizeStore, K: KeySource> AuthorizeService<S, K> {
    /// GET|POST /oauth/v2/logout (OIDC RP-Initiated Logout 1.0).
    async fn logout(
        &self,
        request: &ApiRequest,
        raw: RawRequest,
    ) -> Result<ApiResponse, OAuthError> {
        let now = crate::now_epoch();
        let issuer = issuer(&self.config, request)?;
        let invalid = || Ok(self.error_page(messages::INVALID_LOGOUT));
        if raw.any_repeated() {
            return invalid();
        }
        // §2: an id_token_hint must be one we issued; an expired one still counts.
        let hint = match raw.get("id_token_hint") {
            None => None,
            Some(token) => {
                let verify = |keys: &_| verify_id_token_hint(token, keys, &issuer);
                match verify_with_cache(&self.keys, verify).await? {
                    Some(claims) => Some(claims),
                    None => return invalid(),
                }
            }
        };
        // §2: a `client_id` sent with a hint must be the hint's audience.
        let client_id = match (raw.get("client_id"), &hint) {
            (Some(id), Some(hint)) if id != hint.aud => return invalid(),
            (Some(id), _) => Some(id),
            (None, hint) => hint.as_ref().map(|h| h.aud.as_str()),
        };
        let cookie = session_secret(request);
        let cookie_hash = cookie.as_deref().map(|c| sha256_b64(c.as_bytes()));
        let found = self
            .store
            .read(Wanted {
                client: client_id.and_then(client_key),
                session: cookie_hash.as_deref(),
                ..Wanted::default()
            })
            .await?;
        let state = raw.get("state");
        // §3: back only to a URI registered exactly for the client the request names.
        let back_to = match raw.get("post_logout_redirect_uri") {
            None => None,
            Some(uri) => match &found.client {
                Some(client)
                    if client.enabled
                        && client.post_logout_redirect_uris.iter().any(|r| r == uri) =>
                {
                    let params: Vec<(&str, &str)> =
                        state.map(|s| ("state", s)).into_iter().collect();
                    Some(redirect_with(uri, &params))
                }
                _ => return invalid(),
            },
        };
        // §2: without a hint naming the session's user, the user confirms (a logout link on
        // another site must not end the session by itself).
        let confirmed = match (&found.session, &hint, cookie.as_deref()) {
            (None, _, _) => true,
            (Some(session), Some(hint), _) if hint.sub == session.user_id => true,
            (Some(_), _, Some(secret)) => {
                request.method == http::Method::POST
                    && same_origin(request, &issuer)
                    && raw
                        .get("csrf_token")
                        .is_some_and(|token| digests_equal(token, &logout_csrf(secret)))
            }
            (Some(_), _, None) => false,
        };
        if !confirmed {
            let csrf = cookie.as_deref().map(logout_csrf).unwrap_or_default();
            let mut hidden = vec![("csrf_token", csrf.as_str())];
            let forwarded = [
                ("client_id", client_id),
                (
                    "post_logout_redirect_uri",
                    raw.get("post_logout_redirect_uri"),
                ),
                ("state", state),
            ];
            hidden.extend(forwarded.iter().filter_map(|(k, v)| v.map(|v| (*k, v))));
            return Ok(page::logout_confirm_page(
                &self.config.branding,
                LOGOUT_PATH,
                &hidden,
            ));
        }
        if let Some(hash) = &cookie_hash {
            self.sign_out(hash, now).await?;
        }
        let response = match back_to {
            Some(location) => see_other(&location),
            None => page::signed_out_page(&self.config.branding),
        };
        Ok(match cookie {
            Some(_) => response.header("set-cookie", session_cookie("", 0)),
            None => response,
        })
    }

    /// Ends a session and revokes the families signed in under it. A family whose code is
    /// not yet exchanged is buried in advance, so the exchange issues nothing live.
    async fn sign_out(&self, id_hash: &str, now: i64) -> Result<(), OAuthError> {
        match self.store.end_session(id_hash).await? {
            Some(ended) => self.revoke_families(&ended, now).await,
            None => Ok(()),
        }
    }

    /// Revokes the families signed in under an ended session.
    async fn revoke_families(&self, ended: &BrowserSession, now: i64) -> Result<(), OAuthError> {
        // Outlives every access token a late exchange of the session's last code could issue.
        let retain_until = now + CODE_LIFETIME_SECONDS + self.config.max_token_ttl;
        let tombstones: Vec<RefreshFamily> = ended
            .families
            .iter()
            .map(|family_id| RefreshFamily {
                family_id: family_id.clone(),
                client_id: String::new(),
                user_id: ended.user_id.clone(),
                scope: String::new(),
                auth_time: ended.auth_time,
                issued_at: 0,
                current_hash: String::new(),
                retired_hashes: Vec::new(),
                revoked: true,
                exp: now,
                jkt: None,
            })
            .collect();
        for batch in tombstones.chunks(REVOKE_CONCURRENCY) {
            futures_util::future::try_join_all(
                batch
                    .iter()
                    .map(|family| self.store.bury_family(family, retain_until)),
            )
            .await?;
        }
        tracing::info!(families = tombstones.len(), "signed out");
        Ok(())
    }
}

/// One browser request on its way to a code: the request (for the audit line), the issuer and
/// the clock.
struct Leg<'a> {
    request: &'a ApiRequest,
    issuer: &'a str,
    now: i64,
}

/// The user an `id_token_hint` names: its `sub`, or empty when it names nobody. The hint only
/// narrows who may be signed in, so its signature is not what grants anything.
fn hinted_user(authz: &AuthorizationRequest) -> Option<String> {
    let hint = authz.id_token_hint.as_ref()?;
    let subject = hint
        .split('.')
        .nth(1)
        .and_then(crate::crypto::b64url_decode)
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .and_then(|claims| claims.get("sub")?.as_str().map(str::to_owned));
    Some(subject.unwrap_or_default())
}

/// The transaction record of a checked request (`csrf` is hashed; `exp` set by the caller).
fn authz_record(authz: &AuthorizationRequest, csrf: &str) -> LoginTransaction {
    LoginTransaction {
        id: random_secret(),
        csrf_hash: sha256_b64(csrf.as_bytes()),
        client_id: authz.client.client_id.clone(),
        client_name: authz.client.name.clone(),
        redirect_uri: authz.reply.redirect_uri.clone(),
        state: authz.reply.state.clone(),
        form_post: authz.reply.mode == ResponseMode::FormPost,
        scope: authz.scopes.join(" "),
        nonce: authz.nonce.clone(),
        code_challenge: authz.code_challenge.clone(),
        dpop_jkt: authz.dpop_jkt.clone(),
        login_hint: authz.login_hint.clone(),
        ask_consent: authz.prompt.consent,
        consenting_user: None,
        hinted_user: hinted_user(authz),
        exp: 0,
    }
}

fn reply_to_of(transaction: &LoginTransaction) -> ReplyTo {
    ReplyTo {
        redirect_uri: transaction.redirect_uri.clone(),
        state: transaction.state.clone(),
        mode: if transaction.form_post {
            ResponseMode::FormPost
        } else {
            ResponseMode::Query
        },
    }
}
