//! Arbitrary token-endpoint requests (content type, Authorization, body) through the real
//! handler on the in-memory store: must never panic and must answer 200/400/401 with JSON
//! (200 only with a token).

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use shared::endpoints::token::TokenService;
use shared::error::StoreError;
use shared::http::ApiRequest;
use shared::keys::rotation::ensure_keys;
use shared::keys::{Alg, KeySetDocument, KeySource};
use shared::storage::memory::MemoryStore;

struct Keys(&'static str);

impl KeySource for Keys {
    async fn load(&self) -> Result<Option<String>, StoreError> {
        Ok(Some(self.0.to_owned()))
    }
}

/// One ES256 key, generated once (generation is slow; parsing it per run is not).
fn key_set() -> &'static str {
    static KEYS: OnceLock<String> = OnceLock::new();
    KEYS.get_or_init(|| {
        let mut doc = KeySetDocument { keys: vec![] };
        ensure_keys(&mut doc, Alg::Es256, 0).unwrap();
        serde_json::to_string(&doc).unwrap()
    })
}

/// A fresh service per run, so every input is reproducible on its own (no failure counters or
/// families carried over from earlier inputs). Client `app` / `client-secret` may use
/// client_credentials and refresh_token, so valid inputs reach scope handling and token minting;
/// it has no password grant, which keeps argon2 (tens of ms under ASan) out of the loop.
fn service() -> TokenService<MemoryStore, Keys> {
    let vars = [
        ("TABLE_NAME", "t"),
        ("SIGNING_KEYS_SECRET_ID", "s"),
        ("ISSUER", "https://id.example.com/oauth"),
        ("ACCESS_TOKEN_ALG", "ES256"),
    ];
    let config = shared::config::Config::from_lookup(|k| {
        vars.iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.to_string())
    })
    .unwrap();
    let store = MemoryStore::default();
    store.put_client(
        serde_json::from_value(serde_json::json!({
            "client_id": "app",
            "name": "fuzz",
            "secrets": [{"sha256": shared::crypto::sha256_b64(b"client-secret")}],
            "grants": ["client_credentials", "refresh_token"],
            "allowed_scopes": ["read", "write"],
            "default_scopes": ["read"],
            "access_token_ttl": 3600,
            "refresh_token_ttl": 86400,
            "enabled": true,
            "created_at": 0
        }))
        .unwrap(),
    );
    TokenService::new(config, store, Keys(key_set()))
}

const CONTENT_TYPES: [&str; 4] = [
    "application/x-www-form-urlencoded",
    "application/json",
    "text/plain",
    "multipart/form-data",
];
const PATHS: [&str; 3] = [
    "/oauth/v2/token",
    "/oauth/v2/revoke",
    "/api/id/v1/auth/token",
];

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let (selector, rest) = data.split_at(2);
    let split = rest.iter().position(|b| *b == b'\n').unwrap_or(0);
    let (auth, body) = rest.split_at(split);
    let mut request = ApiRequest {
        method: http::Method::POST,
        path: PATHS[selector[1] as usize % PATHS.len()].to_owned(),
        body: body.to_vec(),
        ..ApiRequest::default()
    };
    request.headers.insert(
        "content-type",
        http::HeaderValue::from_static(CONTENT_TYPES[selector[0] as usize % 4]),
    );
    if let Ok(value) = http::HeaderValue::from_bytes(auth) {
        request.headers.insert("authorization", value);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let response = runtime.block_on(service().handle(&request));
    assert!(
        matches!(response.status, 200 | 400 | 401),
        "status {}",
        response.status
    );
    let is_revoke = request.path == "/oauth/v2/revoke";
    if response.status == 200 && is_revoke {
        // RFC 7009 §2.2: an empty 200.
        assert!(response.body.is_empty(), "{}", response.body);
        return;
    }
    let json: serde_json::Value = serde_json::from_str(&response.body).expect("JSON body");
    if response.status == 200 {
        assert!(json["access_token"].is_string(), "{json}");
    } else {
        assert!(json["error"].is_string(), "{json}");
    }
});
