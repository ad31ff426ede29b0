//! Fixtures both fuzz targets share: one ES256 key set (generated once per process), the
//! configuration, and a fresh in-memory store per input, so every input is reproducible on
//! its own (no failure counters or families carried over from earlier inputs).

use std::sync::OnceLock;

use shared::config::Config;
use shared::error::StoreError;
use shared::keys::rotation::ensure_keys;
use shared::keys::{Alg, KeySetDocument, KeySource};
use shared::storage::memory::MemoryStore;

pub const ISSUER: &str = "https://id.example.com/oauth";
/// `app:client-secret`: client `app` authenticates with this.
pub const APP_BASIC: &str = "Basic YXBwOmNsaWVudC1zZWNyZXQ=";

pub struct Keys(&'static str);

impl KeySource for Keys {
    async fn load(&self) -> Result<Option<String>, StoreError> {
        Ok(Some(self.0.to_owned()))
    }
}

/// The key set: generation is slow, parsing it per input is not.
pub fn keys() -> Keys {
    static KEYS: OnceLock<String> = OnceLock::new();
    Keys(KEYS.get_or_init(|| {
        let mut doc = KeySetDocument { keys: vec![] };
        ensure_keys(&mut doc, Alg::Es256, 0).unwrap();
        serde_json::to_string(&doc).unwrap()
    }))
}

pub fn config() -> Config {
    let vars = [
        ("TABLE_NAME", "t"),
        ("SIGNING_KEYS_SECRET_ID", "s"),
        ("ISSUER", ISSUER),
        ("ACCESS_TOKEN_ALG", "ES256"),
    ];
    Config::from_lookup(|k| {
        vars.iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.to_string())
    })
    .unwrap()
}

/// A store with client `app` (`APP_BASIC`) allowed `grants`. No password grant anywhere: it
/// would put argon2 (tens of ms under ASan) in the loop.
pub fn store(grants: &[&str]) -> MemoryStore {
    let store = MemoryStore::default();
    store.put_client(
        serde_json::from_value(serde_json::json!({
            "client_id": "app",
            "name": "fuzz",
            "secrets": [{"sha256": shared::crypto::sha256_b64(b"client-secret")}],
            "grants": grants,
            "allowed_scopes": ["read", "write"],
            "default_scopes": ["read"],
            "access_token_ttl": 3600,
            "refresh_token_ttl": 86400,
            "enabled": true,
            "created_at": 0
        }))
        .unwrap(),
    );
    store
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}
