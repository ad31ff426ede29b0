//! Storage ports (narrow traits, one per capability the grants need) and the records they carry.
//! Adapters: `dynamo` (DynamoDB), `secrets` (Secrets Manager key source), `memory` (unit tests).
//!
//! Each port method maps to the calls SPEC §7 budgets: a client lookup is one GetItem, a login
//! one BatchGetItem, a refresh one BatchGetItem plus one conditional UpdateItem.

#[cfg(feature = "aws")]
pub mod aws;
#[cfg(feature = "aws")]
pub mod dynamo;
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
}

impl Client {
    pub fn allows_grant(&self, grant: GrantType) -> bool {
        self.grants.contains(&grant)
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
}

/// A login session: one item per refresh-token family, rotated in place (SPEC §7).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefreshFamily {
    pub family_id: String,
    pub client_id: String,
    pub user_id: String,
    pub username: String,
    pub scope: String,
    /// Original login time, kept across refreshes (OIDC Core §2 `auth_time`).
    pub auth_time: i64,
    /// SHA-256 of the random part of the family's one valid refresh token.
    pub current_hash: String,
    pub revoked: bool,
    pub exp: i64,
    /// The user's claims at login; admin changes to the user revoke the user's families.
    #[serde(default)]
    pub claims: BTreeMap<String, String>,
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

pub trait ClientDirectory: Send + Sync {
    fn client(
        &self,
        client_id: &str,
    ) -> impl Future<Output = Result<Option<Client>, StoreError>> + Send;
}

pub trait UserDirectory: Send + Sync {
    fn user(&self, username: &str)
    -> impl Future<Output = Result<Option<User>, StoreError>> + Send;
}

pub trait LoginDirectory: Send + Sync {
    /// Client, user and the user's failure counter in one read.
    fn login_records(
        &self,
        client_id: &str,
        username: &str,
    ) -> impl Future<Output = Result<LoginRecords, StoreError>> + Send;
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
    /// Counts one failure and slides the window to `now + window`; returns the failures counted
    /// inside the window (a counter whose window ended starts again at one). `seen_live` says
    /// whether the caller already read a live counter, so the usual case is one write.
    fn record_failure(
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
    fn create_family(
        &self,
        family: &RefreshFamily,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The family (strongly consistent) and the client, in one read.
    fn family_and_client(
        &self,
        family_id: &str,
        client_id: &str,
    ) -> impl Future<Output = Result<(Option<RefreshFamily>, Option<Client>), StoreError>> + Send;

    /// Replaces `presented_hash` by `new_hash` only if it is still current, the family is not
    /// revoked and not expired — a single conditional write, so of N racing rotations one wins.
    fn rotate(
        &self,
        family_id: &str,
        presented_hash: &str,
        new_hash: &str,
        now: i64,
    ) -> impl Future<Output = Result<Rotation, StoreError>> + Send;

    fn revoke_family(&self, family_id: &str)
    -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// What the store knows about an access token beyond its signature.
#[derive(Debug, Clone, Default)]
pub struct AccessTokenState {
    /// `revoked#<jti>` exists.
    pub jti_revoked: bool,
    /// The token's `sid` family, when it has one and it still exists.
    pub family: Option<RefreshFamily>,
}

/// A revoked access token's marker, kept until the token's own `exp`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RevokedToken {
    pub jti: String,
    pub exp: i64,
}

pub trait Revocations: Send + Sync {
    /// `revoked#<jti>` and `rfam#<sid>` in one read.
    fn access_token_state(
        &self,
        jti: &str,
        sid: Option<&str>,
    ) -> impl Future<Output = Result<AccessTokenState, StoreError>> + Send;

    /// Marks an access token revoked until `exp` (RFC 7009 §2.1).
    fn revoke_access_token(
        &self,
        jti: &str,
        exp: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// One family, strongly consistent.
    fn family(
        &self,
        family_id: &str,
    ) -> impl Future<Output = Result<Option<RefreshFamily>, StoreError>> + Send;
}

/// Storage key of each record kind (SPEC §7).
pub mod keys {
    pub fn client(client_id: &str) -> String {
        format!("client#{client_id}")
    }
    pub fn user(username: &str) -> String {
        format!("user#{username}")
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
}
