//! An in-process token service on the in-memory store: real parsing, grants, keys and signing,
//! no I/O. For endpoint tests and property tests.

#![allow(dead_code)]

use std::collections::BTreeMap;

use base64::Engine;
use shared::config::Config;
use shared::crypto::sha256_b64;
use shared::endpoints::token::TokenService;
use shared::error::StoreError;
use shared::http::{ApiRequest, ApiResponse};
use shared::keys::rotation::ensure_keys;
use shared::keys::{Alg, KeySetDocument, KeySource};
use shared::storage::memory::MemoryStore;
use shared::storage::{Client, GrantType, StoredSecret, User};

pub const ISSUER: &str = "https://id.example.com/oauth";
pub const SECRET: &str = "client-secret-value";
pub const PASSWORD: &str = "correct horse battery staple";

#[derive(Clone)]
pub struct StaticKeys(pub String);

impl KeySource for StaticKeys {
    async fn load(&self) -> Result<Option<String>, StoreError> {
        Ok(Some(self.0.clone()))
    }
}

pub fn key_set() -> StaticKeys {
    let mut doc = KeySetDocument { keys: vec![] };
    for alg in Alg::ALL {
        ensure_keys(&mut doc, alg, 0).unwrap();
    }
    StaticKeys(serde_json::to_string(&doc).unwrap())
}

pub fn config(alg: &str) -> Config {
    let vars: BTreeMap<&str, &str> = [
        ("TABLE_NAME", "t"),
        ("SIGNING_KEYS_SECRET_ID", "s"),
        ("ISSUER", ISSUER),
        ("ACCESS_TOKEN_ALG", alg),
    ]
    .into_iter()
    .collect();
    Config::from_lookup(|k| vars.get(k).map(|v| v.to_string())).unwrap()
}

pub fn client(id: &str) -> Client {
    Client {
        client_id: id.into(),
        name: id.into(),
        secrets: vec![StoredSecret {
            sha256: sha256_b64(SECRET.as_bytes()),
            expires_at: None,
        }],
        api_key_sha256: None,
        grants: vec![
            GrantType::ClientCredentials,
            GrantType::Password,
            GrantType::RefreshToken,
        ],
        allowed_scopes: ["openid", "profile", "email", "read", "write"]
            .map(String::from)
            .to_vec(),
        default_scopes: vec!["read".into()],
        redirect_uris: vec!["https://app.example.com/cb".into()],
        access_token_ttl: 3600,
        refresh_token_ttl: 86400,
        audience: None,
        claims: BTreeMap::from([("tier".into(), "gold".into())]),
        enabled: true,
        created_at: 0,
    }
}

/// A store with client `app` and user `alice` (password `PASSWORD`).
pub fn store(password_hash: &str) -> MemoryStore {
    let store = MemoryStore::default();
    store.put_client(client("app"));
    store.put_user(User {
        username: "alice".into(),
        user_id: "6f0c1d2e-3b4a-4c5d-8e9f-0a1b2c3d4e5f".into(),
        password_hash: password_hash.into(),
        claims: BTreeMap::from([("email".into(), "alice@example.com".into())]),
        enabled: true,
        created_at: 0,
    });
    store
}

pub fn token_service(
    alg: &str,
    keys: StaticKeys,
    password_hash: &str,
) -> TokenService<MemoryStore, StaticKeys> {
    TokenService::new(config(alg), store(password_hash), keys)
}

pub fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

pub fn post(path: &str, content_type: &str, body: &str, headers: &[(&str, &str)]) -> ApiRequest {
    let mut request = ApiRequest {
        method: http::Method::POST,
        path: path.into(),
        body: body.as_bytes().to_vec(),
        ..ApiRequest::default()
    };
    request
        .headers
        .insert("content-type", content_type.parse().unwrap());
    for (name, value) in headers {
        request.headers.insert(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    request
}

pub fn form(body: &str, headers: &[(&str, &str)]) -> ApiRequest {
    post(
        "/oauth/v2/token",
        "application/x-www-form-urlencoded",
        body,
        headers,
    )
}

pub fn json_of(response: &ApiResponse) -> serde_json::Value {
    serde_json::from_str(&response.body).unwrap_or(serde_json::Value::Null)
}

/// The claims of a JWT, without verification (tests verify separately).
pub fn claims_of(jwt: &str) -> serde_json::Value {
    let payload = jwt.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}
