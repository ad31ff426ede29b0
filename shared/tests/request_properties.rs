//! Property tests of request handling: arbitrary bodies, content types, Authorization values
//! (non-UTF-8, no colon, bad base64, bad percent-encoding) and sizes never panic and always get
//! an RFC 6749 error (or, for valid input, a token) — never a 5xx, never an echo.

mod support;

use base64::Engine;
use proptest::prelude::*;
use shared::request::{parse_body, presented_credentials};
use support::*;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn content_type() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(Some("application/x-www-form-urlencoded".to_owned())),
        Just(Some("application/json".to_owned())),
        Just(Some("APPLICATION/JSON; charset=utf-8".to_owned())),
        Just(Some("text/plain".to_owned())),
        Just(None),
        "[ -~]{0,40}".prop_map(Some),
    ]
}

fn authorization() -> impl Strategy<Value = Option<String>> {
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    prop_oneof![
        Just(None),
        // Basic over arbitrary bytes: non-UTF-8, missing colon, %-escapes, empty halves.
        proptest::collection::vec(any::<u8>(), 0..64)
            .prop_map(move |b| Some(format!("Basic {}", b64(&b)))),
        "[%a-zA-Z0-9:+ ]{0,30}".prop_map(move |s| Some(format!("Basic {}", b64(s.as_bytes())))),
        "[ -~]{0,60}".prop_map(|s| Some(format!("Basic {s}"))),
        "[ -~]{0,60}".prop_map(Some),
        Just(Some(basic("app", CLIENT_SECRET))),
    ]
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..512),
        "(grant_type|client_id|client_secret|scope|username|password|refresh_token|redirect_uri|x)=[%&=+a-z0-9_.:-]{0,20}(&(grant_type|scope|client_id|refresh_token)=[a-z_%+]{0,20}){0,4}"
            .prop_map(String::into_bytes),
        "\\{(\"(grant_type|client_id|client_secret|scope)\":(\"[a-z_]{0,12}\"|1|null|\\[\\]|\\{\\}),?){0,5}\\}?".prop_map(String::into_bytes),
        (0usize..3).prop_map(|k| vec![b'a'; 16 * 1024 + k]),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn parsing_never_panics(content_type in content_type(), body in body(), auth in authorization()) {
        let media = content_type.as_deref().map(|c| c.split(';').next().unwrap().trim().to_ascii_lowercase());
        match parse_body(media.as_deref(), &body) {
            Ok(params) => {
                let _ = presented_credentials(auth.as_deref(), &params);
            }
            Err(error) => prop_assert_eq!(error.code(), "invalid_request"),
        }
    }

    #[test]
    fn the_endpoint_answers_every_request_with_a_token_or_an_rfc6749_error(
        content_type in content_type(),
        body in body(),
        auth in authorization(),
        path in prop_oneof![Just("/oauth/v2/token"), Just("/oauth/v2/revoke"), Just("/oauth2/token")],
    ) {
        let service = token_service(shared::keys::Alg::Es256, "");
        let mut request = shared::http::ApiRequest {
            method: http::Method::POST,
            path: path.to_owned(),
            body: body.clone(),
            ..Default::default()
        };
        if let Some(ct) = content_type.as_deref().and_then(|c| c.parse().ok()) {
            request.headers.insert("content-type", ct);
        }
        if let Some(value) = auth.as_deref().and_then(|a| http::HeaderValue::from_str(a).ok()) {
            request.headers.insert("authorization", value);
        }
        let response = runtime().block_on(service.handle(&request));
        prop_assert!(matches!(response.status, 200 | 400 | 401), "status {} body {}", response.status, response.body);
        if response.status != 200 {
            let json: serde_json::Value = serde_json::from_str(&response.body).unwrap();
            let code = json["error"].as_str().unwrap();
            prop_assert!(
                ["invalid_request", "invalid_client", "invalid_grant", "unauthorized_client", "unsupported_grant_type", "invalid_scope"].contains(&code),
                "unexpected error {}", code
            );
            prop_assert!(json["error_description"].is_string());
            prop_assert!(!response.body.contains(CLIENT_SECRET));
        }
    }
}
