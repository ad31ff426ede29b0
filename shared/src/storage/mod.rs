//! Storage ports (narrow traits, one per capability the grants need) and the records they carry.
//! Adapters: `dynamo` (DynamoDB; its hot GetItem in `dynamo_http`), `secrets` (Secrets Manager
//! key source), `memory` (unit tests).
//!
//! Each port method maps to the calls SPEC §7 budgets: a client lookup is one GetItem, a login
//! one BatchGetItem, a refresh one BatchGetItem plus one conditional UpdateItem, a token check
//! (introspection, userinfo) one BatchGetItem.

#[cfg(feature = "aws")]
pub mod aws;
#[cfg(feature = "aws")]
pub mod dynamo;
#[cfg(feature = "aws")]
mod dynamo_http;
pub mod memory;
#[cfg(feature = "aws")]
pub mod secrets;

use std::collections::BTreeMap;
use std::future::Future;

use serde::{Deserialize, Serialize};

use crate::error::StoreError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    ClientCredentials,
    Password,
    RefreshToken,
    AuthorizationCode,
}

impl GrantType {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "client_credentials" => Some(Self::ClientCredentials),
            "password" => Some(Self::Password),
            "refresh_token" => Some(Self::RefreshToken),
            "authorization_code" => Some(Self::AuthorizationCode),
            _ => None,
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::ClientCredentials => "client_credentials",
            Self::Password => "password",
            Self::RefreshToken => "refresh_token",
            Self::AuthorizationCode => "authorization_code",
        }
    }
}

/// A stored client secret: SHA-256 only, optionally expiring (the old secret during a
/// `rotate-secret --grace` period).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredSecret {
    pub sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Client {
    pub client_id: String,
    pub name: String,
    pub secrets: Vec<StoredSecret>,
    /// SHA-256 of the API key, when the client requires one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_sha256: Option<String>,
    pub grants: Vec<GrantType>,
    pub allowed_scopes: Vec<String>,
    #[serde(default)]
    pub default_scopes: Vec<String>,
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    pub access_token_ttl: i64,
    pub refresh_token_ttl: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    #[serde(default)]
    pub claims: BTreeMap<String, String>,
    pub enabled: bool,
    pub created_at: i64,
    /// A public client (auth method `none`, RFC 6749 §2.1): it presents only its `client_id`
    /// and may use only authorization_code and refresh_token (SPEC §4).
    #[serde(default)]
    pub public: bool,
    /// PKCE required at the authorization endpoint (the default, OAuth 2.1); only a
    /// confidential client may be registered without (`--pkce optional`).
    #[serde(default = "pkce_required_by_default")]
    pub pkce_required: bool,
    /// Ask the user's consent before the first sign-in (`--consent`); remembered per user.
    #[serde(default)]
    pub consent: bool,
    /// Where RP-Initiated Logout may send the browser back to, compared exactly.
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
    /// The public keys of a `private_key_jwt` client (a JWKS document, compact JSON): it
    /// authenticates with assertions signed by them and has no secret to fall back on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<String>,
    /// Or where the client publishes them (`--jwks-uri`): fetched, checked and kept by each
    /// warm instance (`grants::client_jwks`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// Every token request must carry a DPoP proof (`--require-dpop`; RFC 9449 §5.2's
    /// `dpop_bound_access_tokens`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dpop_bound_access_tokens: bool,
    /// Authorization requests only as pushed ones (`--require-par`; RFC 9126 §6's
    /// `require_pushed_authorization_requests`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub require_pushed_authorization_requests: bool,
}

impl Client {
    /// Its `token_endpoint_auth_method` (RFC 7591 §2), as discovery names them.
    pub fn auth_method(&self) -> &'static str {
        if self.authenticates_by_assertion() {
            "private_key_jwt"
        } else if self.public {
            "none"
        } else {
            "client_secret_basic"
        }
    }
}

impl Client {
    /// A private_key_jwt client: registered keys or a `jwks_uri`, and no secret to fall back on.
    pub fn authenticates_by_assertion(&self) -> bool {
        self.jwks.is_some() || self.jwks_uri.is_some()
    }
}

fn pkce_required_by_default() -> bool {
    true
}

impl Client {
    pub fn allows_grant(&self, grant: GrantType) -> bool {
        self.grants.contains(&grant)
            && (!self.public
                || matches!(
                    grant,
                    GrantType::AuthorizationCode | GrantType::RefreshToken
                ))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub username: String,
    /// Immutable UUID: the `sub` of every token issued to this user.
    pub user_id: String,
    /// argon2id PHC string.
    pub password_hash: String,
    #[serde(default)]
    pub claims: BTreeMap<String, String>,
    pub enabled: bool,
    pub created_at: i64,
    /// When the password was last set (epoch seconds): sessions and tokens from before it end.
    #[serde(default)]
    pub credentials_changed_at: i64,
}

impl User {
    /// The account record written beside this login record.
    pub fn account(&self) -> Account {
        Account {
            user_id: self.user_id.clone(),
            username: self.username.clone(),
            claims: self.claims.clone(),
            enabled: self.enabled,
            credentials_changed_at: self.credentials_changed_at,
        }
    }
}

/// A user as tokens see it, keyed by the immutable `user_id` (`uid#…`): refresh,
/// introspection and userinfo find it from a token's `sub` or refresh-token family, which do
/// not carry the username. oauthctl writes it beside `user#<username>` on every change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Account {
    pub user_id: String,
    pub username: String,
    #[serde(default)]
    pub claims: BTreeMap<String, String>,
    pub enabled: bool,
    #[serde(default)]
    pub credentials_changed_at: i64,
}

impl Account {
    /// Whether a session or token of `user_id` that began at `since` may still be honoured:
    /// the account exists (the caller found it), is enabled, is the same user (a username
    /// deleted and created again is another `user_id`), and its password was not changed
    /// after `since`.
    pub fn honours(&self, user_id: &str, since: i64) -> bool {
        self.enabled && self.user_id == user_id && self.credentials_changed_at <= since
    }
}

/// A login session: one item per refresh-token family, rotated in place (SPEC §7).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefreshFamily {
    pub family_id: String,
    pub client_id: String,
    pub user_id: String,
    pub scope: String,
    /// Original login time, kept across refreshes (OIDC Core §2 `auth_time`).
    pub auth_time: i64,
    /// When the current refresh token was issued (RFC 7662 §2.2 `iat`); 0 on families
    /// written before it was kept (then `auth_time`).
    #[serde(default)]
    pub issued_at: i64,
    /// SHA-256 of the random part of the family's one valid refresh token.
    pub current_hash: String,
    /// The hashes of the tokens it replaced, newest last (at most `RETIRED_HASHES_KEPT`):
    /// what tells a replayed token (reuse: the family is revoked) from one never issued
    /// (only refused), since the family id itself is no secret (`sid` in the tokens).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retired_hashes: Vec<String>,
    pub revoked: bool,
    pub exp: i64,
    /// The DPoP key a public client's family is bound to (RFC 9449 §5): every refresh must
    /// prove it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jkt: Option<String>,
}

/// How many replaced refresh tokens a family remembers: a stolen token replayed after the
/// client refreshed (or the client's own after the thief did) is one or two behind. Five
/// hashes keep a family item under 1 KB, one write unit per rotation.
pub const RETIRED_HASHES_KEPT: usize = 5;

impl RefreshFamily {
    /// Whether `hash` is of a token this family issued: its current one or one it replaced.
    pub fn issued(&self, hash: &str) -> bool {
        std::iter::once(&self.current_hash)
            .chain(&self.retired_hashes)
            .fold(false, |found, h| {
                found | crate::crypto::digests_equal(hash, h)
            })
    }

    /// The retired hashes once the current token is replaced.
    pub fn retired_after_rotation(&self) -> Vec<String> {
        let all = self.retired_hashes.iter().chain([&self.current_hash]);
        let skip = (self.retired_hashes.len() + 1).saturating_sub(RETIRED_HASHES_KEPT);
        all.skip(skip).cloned().collect()
    }

    /// Whether the family may still be used by `client` at `now`: the client's own, not
    /// revoked, not expired, and not older than the client record — a client deleted and
    /// created again under the same id inherits nothing (RFC 6749 §6 binds the token to
    /// the client it was issued to).
    pub fn live_for(&self, client: &Client, now: i64) -> bool {
        self.client_id == client.client_id
            && !self.revoked
            && self.exp > now
            && self.auth_time >= client.created_at
    }

    pub fn current_token_issued_at(&self) -> i64 {
        if self.issued_at > 0 {
            self.issued_at
        } else {
            self.auth_time
        }
    }
}

/// An authorization code as stored (`code#<sha256 of the code>`, SPEC §12): what the browser
/// leg decided, bound to the client and redirect URI it was issued for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuthorizationCode {
    pub code_hash: String,
    pub client_id: String,
    pub redirect_uri: String,
    pub scope: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// The S256 `code_challenge` (RFC 7636 §4.2), when the request had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_challenge: Option<String>,
    /// RFC 9449 §10: only a DPoP proof by the key of this thumbprint redeems the code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop_jkt: Option<String>,
    pub user_id: String,
    pub username: String,
    /// The user's claims at login (the exchange follows within a minute).
    #[serde(default)]
    pub claims: BTreeMap<String, String>,
    pub auth_time: i64,
    /// The family the exchange creates, chosen with the code: a second use of the code revokes
    /// what the first one issued (RFC 6749 §4.1.2).
    pub family_id: String,
    pub exp: i64,
    /// Set by the one conditional write that redeems the code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumed_at: Option<i64>,
}

/// What redeeming a code found.
#[derive(Debug, Clone, PartialEq)]
pub enum Redemption {
    /// This call consumed it: the caller may issue tokens.
    Redeemed(AuthorizationCode),
    /// It was consumed before: a replay, or the loser of a race.
    Reused(AuthorizationCode),
    /// Unknown or expired.
    Unusable,
}

pub trait AuthorizationCodes: Send + Sync {
    /// Stores a new code (kept until a little after its expiry; expiry is checked by the
    /// redeeming write, never left to TTL).
    fn store_code(
        &self,
        code: &AuthorizationCode,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Consumes the code with one conditional write (exists, not consumed, `exp > now`): of N
    /// concurrent redemptions exactly one is `Redeemed`.
    fn redeem_code(
        &self,
        code_hash: &str,
        now: i64,
    ) -> impl Future<Output = Result<Redemption, StoreError>> + Send;
}

/// One sign-in in progress (`authz#<id>`, SPEC §12): the authorization request that passed
/// validation, waiting for the user. One per browser tab, so tabs sign in independently.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoginTransaction {
    pub id: String,
    /// SHA-256 of the form's CSRF token.
    pub csrf_hash: String,
    pub client_id: String,
    /// Shown on the pages ("Sign in to …").
    pub client_name: String,
    pub redirect_uri: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    pub form_post: bool,
    pub scope: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_challenge: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop_jkt: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login_hint: Option<String>,
    /// `prompt=consent`: ask again even where consent was given.
    #[serde(default)]
    pub ask_consent: bool,
    /// On a consent form: the user it was shown to (only their session may answer it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consenting_user: Option<String>,
    /// The user an `id_token_hint` named (empty: a hint naming nobody); whoever signs in
    /// must be that user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hinted_user: Option<String>,
    pub exp: i64,
}

impl LoginTransaction {
    /// The scopes the request was granted (checked when the transaction began).
    pub fn scopes(&self) -> Vec<String> {
        self.scope
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

/// A browser session (`sess#<SHA-256 of the cookie's secret>`): who signed in, when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BrowserSession {
    pub id_hash: String,
    pub user_id: String,
    pub username: String,
    pub auth_time: i64,
    /// Ends this long after the last use...
    pub idle_exp: i64,
    /// ...and at the latest here.
    pub absolute_exp: i64,
    /// The refresh families signed in under this session, which logout revokes (those
    /// granted `offline_access` are not listed: they outlive it, OIDC Core §11).
    #[serde(default)]
    pub families: Vec<String>,
}

impl BrowserSession {
    pub fn live(&self, now: i64) -> bool {
        self.idle_exp > now && self.absolute_exp > now
    }
}

/// Scopes a user consented to for a client (`consent#<user_id>#<client_id>`), kept until
/// revoked, so `prompt=none` works once consent was given (SPEC §12).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Consent {
    pub user_id: String,
    pub client_id: String,
    pub scopes: Vec<String>,
}

impl Consent {
    pub fn covers(&self, scopes: &[String]) -> bool {
        scopes.iter().all(|s| self.scopes.contains(s))
    }
}

/// The records of browser sign-in.
pub trait SignInRecords: Send + Sync {
    fn put_transaction(
        &self,
        transaction: &LoginTransaction,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Ends a transaction (one conditional delete): true for the one caller that ended it,
    /// so a login form can complete once.
    fn finish_transaction(&self, id: &str)
    -> impl Future<Output = Result<bool, StoreError>> + Send;

    fn put_session(
        &self,
        session: &BrowserSession,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Slides the idle expiry of a session that still exists (the caller caps it at the
    /// absolute expiry).
    fn touch_session(
        &self,
        id_hash: &str,
        idle_exp: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Lists a family under a live session; false when the session is gone (logged out), in
    /// which case no code may be issued for it.
    fn add_session_family(
        &self,
        id_hash: &str,
        family_id: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Deletes a session, answering the record as it was when deleted (one write: a family
    /// listed concurrently is either in it or was refused).
    fn end_session(
        &self,
        id_hash: &str,
    ) -> impl Future<Output = Result<Option<BrowserSession>, StoreError>> + Send;

    fn put_consent(&self, consent: &Consent)
    -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Brute-force counter for one username or client id (`lock#user#…` / `lock#client#…`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FailureCounter {
    #[serde(default)]
    pub failures: u32,
    /// End of the counting window (epoch seconds); the item's TTL.
    #[serde(default)]
    pub window_end: i64,
}

/// Everything a password grant needs, read in one round trip.
#[derive(Debug, Clone, Default)]
pub struct LoginRecords {
    pub client: Option<Client>,
    pub user: Option<User>,
    pub user_failures: Option<FailureCounter>,
}

/// What a conditional rotation found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    Rotated,
    /// The presented token was not the family's current one, or the family died meanwhile.
    Rejected,
}

/// A pushed authorization request (RFC 9126 §2), as stored (`par#<sha256 of the reference>`):
/// the parameters the authenticated client pushed, taken once by the authorization endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushedRequest {
    pub reference_hash: String,
    pub client_id: String,
    /// Every authorization parameter the client pushed, form-urlencoded as received.
    pub parameters: String,
    pub exp: i64,
}

pub trait PushedRequests: Send + Sync {
    /// Stores a pushed request until its `exp`.
    fn push_request(
        &self,
        request: &PushedRequest,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Takes `client_id`'s pushed request of `reference_hash` with one conditional delete: of
    /// N concurrent takes one gets it (RFC 9126 §4: single use); unknown, used, expired or
    /// another client's is `None`, and another client's is left in place (nobody burns a
    /// request by naming the wrong client).
    fn take_request(
        &self,
        reference_hash: &str,
        client_id: &str,
        now: i64,
    ) -> impl Future<Output = Result<Option<PushedRequest>, StoreError>> + Send;
}

pub trait AssertionReplays: Send + Sync {
    /// Records a client assertion's use until `expires_at` with one conditional write: true
    /// for the first use, false once it was used (of N concurrent uses exactly one is first).
    fn first_use(
        &self,
        key: &str,
        expires_at: i64,
        now: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

pub trait ClientDirectory: Send + Sync {
    fn client(
        &self,
        client_id: &str,
    ) -> impl Future<Output = Result<Option<Client>, StoreError>> + Send;
}

pub trait LoginDirectory: Send + Sync {
    /// Client, user and the user's failure counter in one read; an absent key is not read.
    fn login_records(
        &self,
        client_id: Option<&str>,
        username: Option<&str>,
    ) -> impl Future<Output = Result<LoginRecords, StoreError>> + Send;
}

/// Which records a check needs. Every one asked for is read in one strongly consistent round
/// trip (a stale `current_hash` would look like reuse and revoke a legitimate family).
#[derive(Debug, Clone, Copy, Default)]
pub struct Wanted<'a> {
    pub client: Option<&'a str>,
    /// `uid#<user_id>`.
    pub account: Option<&'a str>,
    pub family: Option<&'a str>,
    /// `revoked#<jti>`.
    pub revoked_jti: Option<&'a str>,
    /// `authz#<id>`.
    pub transaction: Option<&'a str>,
    /// `sess#<id hash>`.
    pub session: Option<&'a str>,
    /// `consent#<user_id>#<client_id>`.
    pub consent: Option<(&'a str, &'a str)>,
    /// `user#<username>` and `lock#user#<username>` (a login form's POST).
    pub login: Option<&'a str>,
}

/// What a `Wanted` read found.
#[derive(Debug, Clone, Default)]
pub struct Found {
    pub client: Option<Client>,
    pub account: Option<Account>,
    pub family: Option<RefreshFamily>,
    /// `revoked#<jti>` exists.
    pub jti_revoked: bool,
    pub transaction: Option<LoginTransaction>,
    pub session: Option<BrowserSession>,
    pub consent: Option<Consent>,
    pub user: Option<User>,
    pub user_failures: Option<FailureCounter>,
}

/// The state behind tokens and sign-in: clients, accounts, families, revocation markers,
/// transactions, sessions, consents and login records, any of them in one read.
pub trait TokenRecords: Send + Sync {
    fn read(&self, wanted: Wanted<'_>) -> impl Future<Output = Result<Found, StoreError>> + Send;
}

/// Whose failures a counter counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted<'a> {
    /// Failed password logins of a username (`lock#user#…`).
    User(&'a str),
    /// Failed authentications of a client id (`lock#client#…`).
    Client(&'a str),
}

impl Counted<'_> {
    pub fn key(&self) -> String {
        match self {
            Self::User(name) => keys::user_lock(name),
            Self::Client(id) => keys::client_lock(id),
        }
    }
}

pub trait FailureCounters: Send + Sync {
    /// Counts one attempt (a failed client authentication, or a password attempt before it is
    /// verified) in one atomic write and slides the window to `now + window`; returns the count
    /// inside the window (a counter whose window ended starts again at one). `seen_live` says
    /// whether the caller already read a live counter, so the usual case is one write.
    fn increment(
        &self,
        counted: Counted<'_>,
        now: i64,
        window: i64,
        seen_live: bool,
    ) -> impl Future<Output = Result<u32, StoreError>> + Send;

    fn clear_failures(
        &self,
        counted: Counted<'_>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

pub trait RefreshFamilies: Send + Sync {
    /// Stores a new family, kept until `retain_until` (past its own `exp`: its revocation must
    /// outlive every access token minted from it, SPEC §7).
    fn create_family(
        &self,
        family: &RefreshFamily,
        retain_until: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Replaces `presented_hash` by `new_hash` (and `issued_at` by `now`, the retired hashes
    /// by `retired`) only if it is still current, the family is not revoked and not expired —
    /// a single conditional write, so of N racing rotations one wins. `bind_jkt` binds a
    /// family not yet bound to a DPoP key to that one (a family already bound keeps its key).
    fn rotate(
        &self,
        family_id: &str,
        presented_hash: &str,
        new_hash: &str,
        retired: &[String],
        now: i64,
        bind_jkt: Option<&str>,
    ) -> impl Future<Output = Result<Rotation, StoreError>> + Send;

    fn revoke_family(&self, family_id: &str)
    -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Revokes `family`, writing it (revoked) when it does not exist yet: a reused
    /// authorization code may be seen before the winning redemption has created its family,
    /// which then finds it revoked (SPEC §12: reuse revokes what the code issued, whatever
    /// the interleaving).
    fn bury_family(
        &self,
        family: &RefreshFamily,
        retain_until: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// A revoked access token's marker, kept until the token's own `exp`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RevokedToken {
    pub jti: String,
    pub exp: i64,
}

pub trait Revocations: Send + Sync {
    /// Marks an access token revoked until `exp` (RFC 7009 §2.1).
    fn revoke_access_token(
        &self,
        jti: &str,
        exp: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Longest client id that can exist (the CLI refuses longer; DynamoDB keys are at most 2048
/// bytes).
pub const MAX_CLIENT_ID_LEN: usize = 128;
/// Longest username that can exist (the CLI refuses longer).
pub const MAX_USERNAME_LEN: usize = 256;

/// A presented client id as a lookup key: one that cannot exist is not looked up.
pub fn client_key(client_id: &str) -> Option<&str> {
    (!client_id.is_empty() && client_id.len() <= MAX_CLIENT_ID_LEN).then_some(client_id)
}

/// The client a presented id names (one GetItem); an id that cannot exist is not looked up.
pub async fn presented_client<S: ClientDirectory>(
    store: &S,
    client_id: &str,
) -> Result<Option<Client>, StoreError> {
    match client_key(client_id) {
        Some(id) => store.client(id).await,
        None => Ok(None),
    }
}

/// A presented username as a lookup key: one that cannot exist is not looked up.
pub fn username_key(username: &str) -> Option<&str> {
    (!username.is_empty() && username.len() <= MAX_USERNAME_LEN).then_some(username)
}

/// Storage key of each record kind (SPEC §7).
pub mod keys {
    pub fn client(client_id: &str) -> String {
        format!("client#{client_id}")
    }
    pub fn user(username: &str) -> String {
        format!("user#{username}")
    }
    pub fn account(user_id: &str) -> String {
        format!("uid#{user_id}")
    }
    pub fn family(family_id: &str) -> String {
        format!("rfam#{family_id}")
    }
    pub fn revoked(jti: &str) -> String {
        format!("revoked#{jti}")
    }
    pub fn user_lock(username: &str) -> String {
        format!("lock#user#{username}")
    }
    pub fn client_lock(client_id: &str) -> String {
        format!("lock#client#{client_id}")
    }
    pub fn code(code_hash: &str) -> String {
        format!("code#{code_hash}")
    }
    pub fn transaction(id: &str) -> String {
        format!("authz#{id}")
    }
    pub fn session(id_hash: &str) -> String {
        format!("sess#{id_hash}")
    }
    pub fn consent(user_id: &str, client_id: &str) -> String {
        format!("consent#{user_id}#{client_id}")
    }
    /// A pushed authorization request: the reference is a bearer secret, so only its hash.
    pub fn pushed_request(reference_hash: &str) -> String {
        format!("par#{reference_hash}")
    }
    /// A used DPoP proof, per key (RFC 9449 §11.1): the `jti` hashed, as the client chose it.
    pub fn dpop_proof(jkt: &str, jti: &str) -> String {
        format!("dpop#{jkt}#{}", crate::crypto::sha256_b64(jti.as_bytes()))
    }
    /// A used client assertion: the `jti` hashed, since it is the client's free text.
    pub fn assertion(client_id: &str, jti: &str) -> String {
        format!(
            "jti#{client_id}#{}",
            crate::crypto::sha256_b64(jti.as_bytes())
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_family_remembers_the_last_tokens_it_replaced_and_no_more() {
        let mut family = RefreshFamily {
            family_id: "f".into(),
            client_id: "c".into(),
            user_id: "u".into(),
            scope: String::new(),
            auth_time: 0,
            issued_at: 0,
            current_hash: "h0".into(),
            retired_hashes: Vec::new(),
            revoked: false,
            exp: 1,
            jkt: None,
        };
        for generation in 1..=RETIRED_HASHES_KEPT + 2 {
            family.retired_hashes = family.retired_after_rotation();
            family.current_hash = format!("h{generation}");
        }
        let kept: Vec<String> = (2..=RETIRED_HASHES_KEPT + 1)
            .map(|g| format!("h{g}"))
            .collect();
        assert_eq!(family.retired_hashes, kept, "the newest, oldest first");
        assert!(family.issued("h7") && family.issued("h2"));
        assert!(!family.issued("h1") && !family.issued("never"));
    }
}
