//! Arbitrary introspection, GET tokeninfo and userinfo requests through the real tokeninfo
//! handler on the in-memory store: must never panic, must answer only the statuses the
//! OpenAPI document lists, always with a JSON body, and only ever `active` for a token that
//! the key set really signed.
//!
//! Input: byte 0 picks the route and method, then an `Authorization` line, then the body (or
//! the query, for GET). `@TOKEN@` anywhere is replaced by a valid access token, so mutations
//! around a real token (suffixes, duplicated parameters, odd encodings) are reached.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use shared::endpoints::token::TokenService;
use shared::endpoints::tokeninfo::TokenInfoService;
use shared::http::ApiRequest;
use shared_fuzz::{APP_BASIC, ISSUER, config, keys, runtime, store};

/// A real access token of `app`, minted once through the token endpoint.
fn valid_token() -> &'static str {
    static TOKEN: OnceLock<String> = OnceLock::new();
    TOKEN.get_or_init(|| {
        let service = TokenService::new(config(), store(&["client_credentials"]), keys());
        let mut request = ApiRequest {
            method: http::Method::POST,
            path: "/oauth/v2/token".to_owned(),
            body: b"grant_type=client_credentials".to_vec(),
            ..ApiRequest::default()
        };
        request.headers.insert(
            "content-type",
            http::HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        request
            .headers
            .insert("authorization", http::HeaderValue::from_static(APP_BASIC));
        let response = runtime().block_on(service.handle(&request));
        let body: serde_json::Value = serde_json::from_str(&response.body).unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    })
}

const ROUTES: [(http::Method, &str, &str); 5] = [
    (
        http::Method::POST,
        "/oauth/v2/tokeninfo",
        "application/x-www-form-urlencoded",
    ),
    (
        http::Method::POST,
        "/oauth/v2/tokeninfo",
        "application/json",
    ),
    (http::Method::GET, "/oauth/v2/tokeninfo", ""),
    (http::Method::GET, "/oauth/v2/userinfo", ""),
    (
        http::Method::POST,
        "/oauth/v2/userinfo",
        "application/x-www-form-urlencoded",
    ),
];

fn with_token(bytes: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(bytes);
    if text.contains("@TOKEN@") {
        text.replace("@TOKEN@", valid_token()).into_bytes()
    } else {
        bytes.to_vec()
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((selector, rest)) = data.split_first() else {
        return;
    };
    let split = rest.iter().position(|b| *b == b'\n').unwrap_or(0);
    let (auth, body) = rest.split_at(split);
    let body = with_token(body.get(1..).unwrap_or_default());
    let auth = with_token(auth);
    let (method, path, content_type) = &ROUTES[*selector as usize % ROUTES.len()];
    let mut request = ApiRequest {
        method: method.clone(),
        path: (*path).to_owned(),
        ..ApiRequest::default()
    };
    if *method == http::Method::GET {
        request.query = Some(String::from_utf8_lossy(&body).into_owned());
    } else {
        request.body = body;
        request
            .headers
            .insert("content-type", http::HeaderValue::from_static(content_type));
    }
    if let Ok(value) = http::HeaderValue::from_bytes(&auth) {
        request.headers.insert("authorization", value);
    }
    let service = TokenInfoService::new(config(), store(&["client_credentials"]), keys());
    let response = runtime().block_on(service.handle(&request));
    assert!(
        matches!(response.status, 200 | 400 | 401 | 403),
        "status {}",
        response.status
    );
    let json: serde_json::Value = serde_json::from_str(&response.body).expect("JSON body");
    if response.status != 200 {
        assert!(json["error"].is_string(), "{json}");
    } else if path.ends_with("tokeninfo") && json["active"] == true {
        // Only the one token the key set signed can be active.
        assert_eq!(json["client_id"], "app", "{json}");
        assert_eq!(json["iss"], ISSUER, "{json}");
    } else if path.ends_with("tokeninfo") {
        assert_eq!(json, serde_json::json!({"active": false}));
    }
});
