//! Arbitrary requests to the authorize function (authorization endpoint, login and consent
//! forms, logout) through the real handler on the in-memory store: must never panic, must
//! answer only the statuses the pages use, and must never redirect anywhere but a URI the
//! client registered, nor issue a code or a session — no user exists to sign in.
//!
//! Input: byte 0 picks the route and method, then a `Cookie` line, then the body (or the
//! query, for GET).

#![no_main]

use libfuzzer_sys::fuzz_target;
use shared::endpoints::authorize::AuthorizeService;
use shared::http::ApiRequest;
use shared::testing::REDIRECT_URI;
use shared_fuzz::{AFTER_LOGOUT_URI, browser_store, config, keys, runtime};

const ROUTES: [(http::Method, &str); 8] = [
    (http::Method::GET, "/oauth/v2/authorize"),
    (http::Method::POST, "/oauth/v2/authorize"),
    (http::Method::GET, "/oauth/v2/ui/authorize"),
    (http::Method::POST, "/oauth/v2/authorize/login"),
    (http::Method::POST, "/oauth/v2/authorize/consent"),
    (http::Method::GET, "/oauth/v2/logout"),
    (http::Method::POST, "/oauth/v2/logout"),
    (http::Method::PUT, "/oauth/v2/authorize"),
];

fuzz_target!(|data: &[u8]| {
    let Some((selector, rest)) = data.split_first() else {
        return;
    };
    let split = rest.iter().position(|b| *b == b'\n').unwrap_or(0);
    let (cookie, body) = rest.split_at(split);
    let body = body.get(1..).unwrap_or_default();
    let (method, path) = &ROUTES[*selector as usize % ROUTES.len()];
    let mut request = ApiRequest {
        method: method.clone(),
        path: (*path).to_owned(),
        ..ApiRequest::default()
    };
    if *method == http::Method::GET {
        request.query = Some(String::from_utf8_lossy(body).into_owned());
    } else {
        request.body = body.to_vec();
        request.headers.insert(
            "content-type",
            http::HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        request
            .headers
            .insert("sec-fetch-site", http::HeaderValue::from_static("same-origin"));
    }
    if let Ok(value) = http::HeaderValue::from_bytes(cookie) {
        request.headers.insert("cookie", value);
    }
    let service = AuthorizeService::new(config(), browser_store(), keys());
    let response = runtime().block_on(service.handle(&request));
    assert!(
        matches!(response.status, 200 | 303 | 400 | 405),
        "status {}",
        response.status
    );
    if let Some(location) = response.header_value("location") {
        assert!(
            location.starts_with(&format!("{REDIRECT_URI}?"))
                || location == AFTER_LOGOUT_URI
                || location.starts_with(&format!("{AFTER_LOGOUT_URI}?")),
            "redirected to {location}"
        );
        assert!(!location.contains("code="), "a code without a login: {location}");
    }
    // form_post carries the response in the page: never a code either.
    assert!(!response.body.contains("name=\"code\""), "{}", response.body);
    if let Some(cookie) = response.header_value("set-cookie") {
        assert!(cookie.contains("=;"), "a session without a login: {cookie}");
    }
});
