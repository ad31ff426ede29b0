//! Arbitrary token-endpoint requests (content type, Authorization, body) through the real
//! handler on the in-memory store: must never panic and must answer 200/400/401 with JSON.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use shared::endpoints::token::TokenService;
use shared::error::StoreError;
use shared::http::ApiRequest;
use shared::keys::rotation::ensure_keys;
use shared::keys::{Alg, KeySetDocument, KeySource};
use shared::storage::memory::MemoryStore;

struct Keys(String);

impl KeySource for Keys {
    async fn load(&self) -> Result<Option<String>, StoreError> {
        Ok(Some(self.0.clone()))
    }
}

fn service() -> &'static TokenService<MemoryStore, Keys> {
    static SERVICE: OnceLock<TokenService<MemoryStore, Keys>> = OnceLock::new();
    SERVICE.get_or_init(|| {
        let mut doc = KeySetDocument { keys: vec![] };
        ensure_keys(&mut doc, Alg::Rs256, 0).unwrap();
        ensure_keys(&mut doc, Alg::Es256, 0).unwrap();
        let vars = [
            ("TABLE_NAME", "t"),
            ("SIGNING_KEYS_SECRET_ID", "s"),
            ("ISSUER", "https://id.example.com/oauth"),
            ("ACCESS_TOKEN_ALG", "ES256"),
        ];
        let config = shared::config::Config::from_lookup(|k| {
            vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
        })
        .unwrap();
        TokenService::new(config, MemoryStore::default(), Keys(serde_json::to_string(&doc).unwrap()))
    })
}

const CONTENT_TYPES: [&str; 4] =
    ["application/x-www-form-urlencoded", "application/json", "text/plain", "multipart/form-data"];
const PATHS: [&str; 3] = ["/oauth/v2/token", "/oauth/v2/revoke", "/api/id/v1/auth/token"];

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
    request
        .headers
        .insert("content-type", http::HeaderValue::from_static(CONTENT_TYPES[selector[0] as usize % 4]));
    if let Ok(value) = http::HeaderValue::from_bytes(auth) {
        request.headers.insert("authorization", value);
    }
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let response = runtime.block_on(service().handle(&request));
    assert!(matches!(response.status, 200 | 400 | 401), "status {}", response.status);
    let json: serde_json::Value = serde_json::from_str(&response.body).expect("JSON body");
    assert!(response.status == 200 || json["error"].is_string());
});
