//! Arbitrary token-endpoint requests (content type, Authorization, body) through the real
//! handler on the in-memory store: must never panic and must answer 200/400/401 with JSON
//! (200 only with a token; 201 only from PAR, with a `request_uri`). `@ASSERTION@` anywhere
//! becomes a valid private_key_jwt assertion of client `signer`, so mutations around a real
//! assertion are reached. A tab in the Authorization line starts a `DPoP` header, where
//! `@PROOF@` becomes a valid DPoP proof for the token endpoint (RFC 9449).

#![no_main]

use libfuzzer_sys::fuzz_target;
use shared::endpoints::token::TokenService;
use shared::http::ApiRequest;
use shared_fuzz::{assertion, config, keys, proof, runtime, store};

const CONTENT_TYPES: [&str; 4] = [
    "application/x-www-form-urlencoded",
    "application/json",
    "text/plain",
    "multipart/form-data",
];
const PATHS: [&str; 4] = [
    "/oauth/v2/token",
    "/oauth/v2/revoke",
    "/api/id/v1/auth/token",
    "/oauth/v2/par",
];

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let (selector, rest) = data.split_at(2);
    let split = rest.iter().position(|b| *b == b'\n').unwrap_or(0);
    let (auth, raw_body) = rest.split_at(split);
    let text = String::from_utf8_lossy(raw_body);
    let body = if text.contains("@ASSERTION@") {
        text.replace("@ASSERTION@", &assertion()).into_bytes()
    } else {
        raw_body.to_vec()
    };
    let mut request = ApiRequest {
        method: http::Method::POST,
        path: PATHS[selector[1] as usize % PATHS.len()].to_owned(),
        body,
        ..ApiRequest::default()
    };
    request.headers.insert(
        "content-type",
        http::HeaderValue::from_static(CONTENT_TYPES[selector[0] as usize % 4]),
    );
    let (auth, dpop) = match auth.iter().position(|b| *b == b'\t') {
        Some(tab) => (&auth[..tab], Some(&auth[tab + 1..])),
        None => (auth, None),
    };
    if let Ok(value) = http::HeaderValue::from_bytes(auth) {
        request.headers.insert("authorization", value);
    }
    if let Some(dpop) = dpop {
        let proof = String::from_utf8_lossy(dpop).replace("@PROOF@", &proof());
        if let Ok(value) = http::HeaderValue::from_str(&proof) {
            request.headers.insert("dpop", value);
        }
    }
    // Client `app` may use client_credentials, refresh_token and authorization_code: valid
    // inputs reach scope handling, token minting and a stored pushed request.
    let grants = ["client_credentials", "refresh_token", "authorization_code"];
    let service = TokenService::new(config(), store(&grants), keys());
    let response = runtime().block_on(service.handle(&request));
    let is_par = request.path == "/oauth/v2/par";
    assert!(
        matches!(response.status, 200 | 400 | 401) || (is_par && response.status == 201),
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
    if response.status == 201 {
        // RFC 9126 §2.2: a pushed request's reference, nothing else.
        assert!(json["request_uri"].is_string(), "{json}");
    } else if response.status == 200 {
        assert!(json["access_token"].is_string(), "{json}");
    } else {
        assert!(json["error"].is_string(), "{json}");
    }
});
