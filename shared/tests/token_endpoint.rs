//! The token, revocation and introspection endpoints in-process (in-memory store, real keys):
//! every grant and the error each bad request gets, as the caller sees it.

mod support;

use std::sync::Arc;

use shared::endpoints::token::TokenService;
use shared::keys::Alg;
use shared::storage::memory::MemoryStore;
use support::*;

fn service(alg: &str) -> (TokenService<MemoryStore, StaticKeys>, StaticKeys) {
    let alg = Alg::parse(alg).unwrap();
    (token_service(alg, password_hash()), all_keys())
}

/// alice's password grant at `app`: the token response.
async fn alices_password_login(
    service: &TokenService<MemoryStore, StaticKeys>,
) -> serde_json::Value {
    let body = format!(
        "grant_type=password&username=alice&password={}",
        PASSWORD.replace(' ', "+")
    );
    json_of(
        &service
            .handle(&form(&body, &[("authorization", &app_basic())]))
            .await,
    )
}

fn app_basic() -> String {
    basic("app", CLIENT_SECRET)
}

#[tokio::test]
async fn client_credentials_issues_an_rfc9068_token_in_each_algorithm() {
    for alg in ["RS256", "ES256", "EdDSA"] {
        // GIVEN a service signing with `alg`
        let (service, _) = service(alg);
        // WHEN the client asks with client_secret_basic
        let response = service
            .handle(&form(
                "grant_type=client_credentials",
                &[("authorization", &app_basic())],
            ))
            .await;
        // THEN a no-store 200 with an at+jwt access token for the client itself
        assert_eq!(response.status, 200, "{alg}: {}", response.body);
        assert_eq!(response.header_value("cache-control"), Some("no-store"));
        assert_eq!(response.header_value("pragma"), Some("no-cache"));
        let body = json_of(&response);
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["expires_in"], 3600);
        assert_eq!(body["scope"], "read");
        assert!(body.get("refresh_token").is_none() && body.get("id_token").is_none());
        let token = body["access_token"].as_str().unwrap();
        let header = jsonwebtoken::decode_header(token).unwrap();
        assert_eq!(header.typ.as_deref(), Some("at+jwt"));
        assert_eq!(format!("{:?}", header.alg), alg);
        let claims = claims_of(token);
        assert_eq!(claims["sub"], "app");
        assert_eq!(claims["client_id"], "app");
        assert_eq!(claims["aud"], ISSUER);
        assert_eq!(claims["iss"], ISSUER);
        assert_eq!(claims["tier"], "gold");
        assert_eq!(
            claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
            3600
        );
    }
}

#[tokio::test]
async fn client_credentials_drops_user_scopes() {
    let (service, _) = service("ES256");
    let response = service
        .handle(&form(
            "grant_type=client_credentials&scope=openid%20read%20email",
            &[("authorization", &app_basic())],
        ))
        .await;
    assert_eq!(json_of(&response)["scope"], "read");
    let response = service
        .handle(&form(
            "grant_type=client_credentials&scope=openid",
            &[("authorization", &app_basic())],
        ))
        .await;
    assert_eq!(
        (response.status, json_of(&response)["error"].as_str()),
        (400, Some("invalid_scope"))
    );
}

#[tokio::test]
async fn password_grant_issues_refresh_and_id_token_and_refresh_rotates() {
    let (service, _) = service("ES256");
    // GIVEN a password login with openid and email
    let body = format!(
        "grant_type=password&username=alice&password={}&scope=openid%20email%20read",
        PASSWORD.replace(' ', "+")
    );
    let response = service
        .handle(&form(&body, &[("authorization", &app_basic())]))
        .await;
    assert_eq!(response.status, 200, "{}", response.body);
    let first = json_of(&response);
    let id_token = claims_of(first["id_token"].as_str().unwrap());
    assert_eq!(id_token["aud"], "app");
    assert_eq!(id_token["email"], "alice@example.com");
    assert_eq!(id_token["sub"], "6f0c1d2e-3b4a-4c5d-8e9f-0a1b2c3d4e5f");
    let access = claims_of(first["access_token"].as_str().unwrap());
    assert!(
        access.get("username").is_none() && access.get("preferred_username").is_none(),
        "no personal data without the profile scope (RFC 9068 §6)"
    );
    assert!(
        access.get("email").is_none(),
        "standard claims stay out of access tokens"
    );
    let refresh_token = first["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(
        access["sid"].as_str().unwrap(),
        refresh_token.split('.').next().unwrap()
    );

    // WHEN the refresh token is used, narrowing the scope
    let refresh = |token: &str, scope: &str| {
        form(
            &format!("grant_type=refresh_token&refresh_token={token}&scope={scope}"),
            &[("authorization", &app_basic())],
        )
    };
    let response = service.handle(&refresh(&refresh_token, "read")).await;
    assert_eq!(response.status, 200, "{}", response.body);
    let second = json_of(&response);
    assert_eq!(second["scope"], "read");
    assert!(
        second.get("id_token").is_none(),
        "no openid in the narrowed scope"
    );
    let next = second["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(next, refresh_token);
    // THEN widening is refused, and replaying the old token kills the family
    let wider = service.handle(&refresh(&next, "read%20write")).await;
    assert_eq!(json_of(&wider)["error"], "invalid_scope");
    let replay = service.handle(&refresh(&refresh_token, "read")).await;
    assert_eq!(
        (replay.status, json_of(&replay)["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let after = service.handle(&refresh(&next, "read")).await;
    assert_eq!(
        json_of(&after)["error"],
        "invalid_grant",
        "the family is revoked"
    );
    // AND the family is marked revoked in the store
    let family_id = refresh_token.split('.').next().unwrap();
    assert!(service.store.family_snapshot(family_id).unwrap().revoked);
}

#[tokio::test]
async fn a_made_up_secret_for_a_known_family_is_refused_and_ends_nothing() {
    let (service, _) = service("ES256");
    // GIVEN a family whose id anyone holding an access token knows (its `sid`)
    let first = alices_password_login(&service).await;
    let refresh_token = first["refresh_token"].as_str().unwrap().to_owned();
    let family_id = refresh_token.split('.').next().unwrap();
    let forged = format!("{family_id}.{}", "A".repeat(43));
    let refresh = |token: &str| {
        form(
            &format!("grant_type=refresh_token&refresh_token={token}"),
            &[("authorization", &app_basic())],
        )
    };
    // WHEN a secret the family never issued is refreshed, and revoked
    let refused = service.handle(&refresh(&forged)).await;
    assert_eq!(json_of(&refused)["error"], "invalid_grant");
    let revoke = post(
        "/oauth/v2/revoke",
        "application/x-www-form-urlencoded",
        &format!("token={forged}&token_type_hint=refresh_token"),
        &[("authorization", &app_basic())],
    );
    assert_eq!(service.handle(&revoke).await.status, 200, "RFC 7009 §2.2");
    // THEN the family lives: its real token still refreshes
    let real = service.handle(&refresh(&refresh_token)).await;
    assert_eq!(real.status, 200, "{}", real.body);
    assert!(!service.store.family_snapshot(family_id).unwrap().revoked);
    // AND the token it replaced, presented again, is reuse: the family is revoked
    let replay = service.handle(&refresh(&refresh_token)).await;
    assert_eq!(json_of(&replay)["error"], "invalid_grant");
    assert!(service.store.family_snapshot(family_id).unwrap().revoked);
}

#[tokio::test]
async fn revoking_with_a_token_the_family_replaced_still_ends_it() {
    let (service, _) = service("ES256");
    let first = alices_password_login(&service).await;
    let old = first["refresh_token"].as_str().unwrap().to_owned();
    let rotated = service
        .handle(&form(
            &format!("grant_type=refresh_token&refresh_token={old}"),
            &[("authorization", &app_basic())],
        ))
        .await;
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    let revoke = post(
        "/oauth/v2/revoke",
        "application/x-www-form-urlencoded",
        &format!("token={old}"),
        &[("authorization", &app_basic())],
    );
    assert_eq!(service.handle(&revoke).await.status, 200);
    let family_id = old.split('.').next().unwrap();
    assert!(service.store.family_snapshot(family_id).unwrap().revoked);
}

#[tokio::test]
async fn of_concurrent_refreshes_exactly_one_wins_and_the_family_dies() {
    let (service, _) = service("ES256");
    let service = Arc::new(service);
    let first = alices_password_login(&service).await;
    let token = first["refresh_token"].as_str().unwrap().to_owned();
    let racers: Vec<_> = (0..8)
        .map(|_| {
            let service = service.clone();
            let request = form(
                &format!("grant_type=refresh_token&refresh_token={token}"),
                &[("authorization", &app_basic())],
            );
            tokio::spawn(async move { service.handle(&request).await })
        })
        .collect();
    let mut winners = Vec::new();
    for racer in racers {
        let response = racer.await.unwrap();
        if response.status == 200 {
            winners.push(
                json_of(&response)["refresh_token"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
        } else {
            assert_eq!(json_of(&response)["error"], "invalid_grant");
        }
    }
    assert_eq!(winners.len(), 1);
    let late = service
        .handle(&form(
            &format!("grant_type=refresh_token&refresh_token={}", winners[0]),
            &[("authorization", &app_basic())],
        ))
        .await;
    assert_eq!(json_of(&late)["error"], "invalid_grant");
}

#[tokio::test]
async fn empowerid_shape_takes_the_user_from_basic_and_the_client_from_json() {
    let (service, _) = service("ES256");
    let body = format!(
        r#"{{"grant_type":"password","client_id":"app","client_secret":"{CLIENT_SECRET}","redirect_uri":""}}"#
    );
    let body = body.as_str();
    let request = post(
        "/oauth/v2/token",
        "application/json; charset=utf-8",
        body,
        &[("authorization", &basic("alice", PASSWORD))],
    );
    let response = service.handle(&request).await;
    assert_eq!(response.status, 200, "{}", response.body);
    let bad_user = post(
        "/oauth/v2/token",
        "application/json",
        body,
        &[("authorization", &basic("alice", "nope"))],
    );
    let response = service.handle(&bad_user).await;
    assert_eq!(
        (response.status, json_of(&response)["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let bad_client = body.replace(CLIENT_SECRET, "wrong");
    let response = service
        .handle(&post(
            "/oauth/v2/token",
            "application/json",
            &bad_client,
            &[("authorization", &basic("alice", PASSWORD))],
        ))
        .await;
    assert_eq!(response.status, 401);
    assert_eq!(
        response.header_value("www-authenticate"),
        None,
        "the Basic header carried the user"
    );
}

#[tokio::test]
async fn every_error_is_an_rfc6749_error_with_the_right_status() {
    let (service, _) = service("ES256");
    let auth = app_basic();
    let wrong = basic("app", "wrong");
    let unknown = basic("nobody", CLIENT_SECRET);
    let cases: Vec<(shared::http::ApiRequest, u16, &str)> = vec![
        (
            form("", &[("authorization", &auth)]),
            400,
            "invalid_request",
        ),
        (
            form(
                "grant_type=client_credentials&grant_type=client_credentials",
                &[("authorization", &auth)],
            ),
            400,
            "invalid_request",
        ),
        (
            form(
                "grant_type=client_credentials&client_secret=x",
                &[("authorization", &auth)],
            ),
            400,
            "invalid_request",
        ),
        (
            form(
                "grant_type=client_credentials&client_id=other",
                &[("authorization", &auth)],
            ),
            400,
            "invalid_request",
        ),
        (
            post(
                "/oauth/v2/token",
                "text/plain",
                "grant_type=client_credentials",
                &[("authorization", &auth)],
            ),
            400,
            "invalid_request",
        ),
        (
            post(
                "/oauth/v2/token",
                "application/json",
                "{\"grant_type\":1}",
                &[("authorization", &auth)],
            ),
            400,
            "invalid_request",
        ),
        (
            post(
                "/oauth/v2/token",
                "application/json",
                "{\"a\":\"1\",\"a\":\"2\"}",
                &[("authorization", &auth)],
            ),
            400,
            "invalid_request",
        ),
        (
            form(
                "grant_type=authorization_code&code=x&redirect_uri=https%3A%2F%2Fapp.example.com%2Fcb",
                &[("authorization", &auth)],
            ),
            400,
            "unauthorized_client",
        ),
        (
            form("grant_type=urn:x", &[("authorization", &auth)]),
            400,
            "unsupported_grant_type",
        ),
        (
            form(
                "grant_type=client_credentials&scope=admin",
                &[("authorization", &auth)],
            ),
            400,
            "invalid_scope",
        ),
        (
            form(
                "grant_type=client_credentials&redirect_uri=https://evil",
                &[("authorization", &auth)],
            ),
            400,
            "invalid_grant",
        ),
        (
            form(
                "grant_type=client_credentials",
                &[("authorization", &wrong)],
            ),
            401,
            "invalid_client",
        ),
        (
            form(
                "grant_type=client_credentials",
                &[("authorization", &unknown)],
            ),
            401,
            "invalid_client",
        ),
        (
            form("grant_type=client_credentials", &[]),
            401,
            "invalid_client",
        ),
        (
            form(
                "grant_type=client_credentials",
                &[("authorization", "Bearer x")],
            ),
            401,
            "invalid_client",
        ),
        (
            form(
                "grant_type=password&username=alice",
                &[("authorization", &auth)],
            ),
            400,
            "invalid_request",
        ),
        (
            form(
                "grant_type=password&username=alice&password=nope",
                &[("authorization", &auth)],
            ),
            400,
            "invalid_grant",
        ),
        (
            form(
                "grant_type=password&username=bob&password=nope",
                &[("authorization", &auth)],
            ),
            400,
            "invalid_grant",
        ),
        (
            form(
                "grant_type=refresh_token&refresh_token=garbage",
                &[("authorization", &auth)],
            ),
            400,
            "invalid_grant",
        ),
        (
            form("grant_type=refresh_token", &[("authorization", &auth)]),
            400,
            "invalid_request",
        ),
        (
            form(&"a".repeat(17 * 1024), &[("authorization", &auth)]),
            400,
            "invalid_request",
        ),
    ];
    for (request, status, code) in cases {
        let response = service.handle(&request).await;
        assert_eq!(
            (response.status, json_of(&response)["error"].as_str()),
            (status, Some(code)),
            "{}",
            String::from_utf8_lossy(&request.body)
                .chars()
                .take(80)
                .collect::<String>()
        );
        assert!(json_of(&response)["error_description"].is_string());
        assert!(!response.body.contains(CLIENT_SECRET) && !response.body.contains("nope"));
    }
    // Unknown client and wrong secret are one answer.
    let a = service
        .handle(&form(
            "grant_type=client_credentials",
            &[("authorization", &wrong)],
        ))
        .await;
    let b = service
        .handle(&form(
            "grant_type=client_credentials",
            &[("authorization", &unknown)],
        ))
        .await;
    assert_eq!(a, b);
    assert_eq!(
        a.header_value("www-authenticate"),
        Some(r#"Basic realm="oauth""#)
    );
    // A grant the client lacks.
    let limited = client("limited", &[shared::storage::GrantType::Password]);
    service.store.put_client(limited);
    let response = service
        .handle(&form(
            "grant_type=client_credentials",
            &[("authorization", &basic("limited", CLIENT_SECRET))],
        ))
        .await;
    assert_eq!(json_of(&response)["error"], "unauthorized_client");
}

#[tokio::test]
async fn revoked_access_tokens_are_inactive_at_introspection() {
    let service = token_service(Alg::Rs256, password_hash());
    let token = json_of(
        &service
            .handle(&form(
                "grant_type=client_credentials",
                &[("authorization", &app_basic())],
            ))
            .await,
    )["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let tokeninfo = tokeninfo_service(Alg::Rs256, service.store);
    let introspect = |t: &str| {
        post(
            "/oauth/v2/tokeninfo",
            "application/x-www-form-urlencoded",
            &format!("token={t}"),
            &[("authorization", &basic("app", CLIENT_SECRET))],
        )
    };
    let active = json_of(&tokeninfo.handle(&introspect(&token)).await);
    assert_eq!(active["active"], true);
    assert_eq!(active["client_id"], "app");
    assert_eq!(active["token_type"], "Bearer");
    let tampered = format!("{}x", token);
    assert_eq!(
        tokeninfo.handle(&introspect(&tampered)).await.body,
        r#"{"active":false}"#
    );
    use shared::storage::Revocations;
    let jti = claims_of(&token)["jti"].as_str().unwrap().to_owned();
    tokeninfo
        .store
        .revoke_access_token(&jti, i64::MAX)
        .await
        .unwrap();
    assert_eq!(
        tokeninfo.handle(&introspect(&token)).await.body,
        r#"{"active":false}"#
    );
}

#[tokio::test]
async fn failed_client_authentication_is_counted_on_every_client_authenticated_route() {
    use shared::storage::Counted;

    let service = token_service(Alg::Es256, password_hash());
    let wrong = basic("app", "not-the-secret");
    let unknown = basic("nobody", "whatever");
    let routes = [
        ("/oauth/v2/token", "grant_type=client_credentials"),
        ("/oauth/v2/revoke", "token=abc.def"),
    ];
    for (path, body) in routes {
        for auth in [&wrong, &unknown] {
            let request = post(
                path,
                "application/x-www-form-urlencoded",
                body,
                &[("authorization", auth)],
            );
            assert_eq!(service.handle(&request).await.status, 401, "{path}");
        }
    }
    let tokeninfo = tokeninfo_service(Alg::Es256, service.store);
    for auth in [&wrong, &unknown] {
        let request = post(
            "/oauth/v2/tokeninfo",
            "application/x-www-form-urlencoded",
            "token=abc.def",
            &[("authorization", auth)],
        );
        assert_eq!(tokeninfo.handle(&request).await.status, 401);
    }
    // Existing and unknown client ids alike: three routes, one failure each.
    assert_eq!(tokeninfo.store.failures_recorded(Counted::Client("app")), 3);
    assert_eq!(
        tokeninfo.store.failures_recorded(Counted::Client("nobody")),
        3
    );
    // A success counts nothing more.
    let ok = post(
        "/oauth/v2/tokeninfo",
        "application/x-www-form-urlencoded",
        "token=abc.def",
        &[("authorization", &app_basic())],
    );
    assert_eq!(tokeninfo.handle(&ok).await.status, 200);
    assert_eq!(tokeninfo.store.failures_recorded(Counted::Client("app")), 3);
}
