//! DPoP end to end in-process (RFC 9449): proofs at the token endpoint bind access tokens
//! (`cnf.jkt`) and a public client's refresh family; introspection shows the binding; userinfo
//! takes a bound token only with the DPoP scheme and a proof by its key.

mod support;

use serde_json::json;
use shared::authorize::code::issue_code;
use shared::authorize::pkce::challenge_of;
use shared::endpoints::token::TokenService;
use shared::endpoints::tokeninfo::TokenInfoService;
use shared::http::{ApiRequest, ApiResponse};
use shared::keys::Alg;
use shared::storage::memory::MemoryStore;
use shared::storage::{AuthorizationCode, AuthorizationCodes, GrantType};
use shared::tokens::dpop::{access_token_hash, thumbprint};
use shared::tokens::refresh::RefreshToken;
use support::*;

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

struct World {
    token: TokenService<MemoryStore, StaticKeys>,
    tokeninfo: TokenInfoService<MemoryStore, StaticKeys>,
    store: MemoryStore,
}

fn world() -> World {
    world_with(&[])
}

fn world_with(extra: &[(&str, &str)]) -> World {
    let store = shared::testing::store(password_hash());
    let mut spa = client(
        "spa",
        &[GrantType::AuthorizationCode, GrantType::RefreshToken],
    );
    spa.public = true;
    spa.secrets.clear();
    store.put_client(spa);
    store.put_client(client(
        "web",
        &[GrantType::AuthorizationCode, GrantType::RefreshToken],
    ));
    let mut strict = client("strict", &[GrantType::ClientCredentials]);
    strict.dpop_bound_access_tokens = true;
    store.put_client(strict);
    let mut strict_web = client(
        "strict-web",
        &[GrantType::AuthorizationCode, GrantType::RefreshToken],
    );
    strict_web.dpop_bound_access_tokens = true;
    store.put_client(strict_web);
    World {
        token: TokenService::new(config(Alg::Es256, extra), store.clone(), all_keys()),
        tokeninfo: TokenInfoService::new(config(Alg::Es256, extra), store.clone(), all_keys()),
        store,
    }
}

fn token_url() -> String {
    format!("{ISSUER}/v2/token")
}

fn userinfo_url() -> String {
    format!("{ISSUER}/v2/userinfo")
}

fn jkt(alg: Alg) -> String {
    thumbprint(&dpop_public_jwk(alg)).unwrap()
}

fn with_proof(mut request: ApiRequest, proof: &str) -> ApiRequest {
    request.headers.append("dpop", proof.parse().unwrap());
    request
}

fn cc(client_id: &str) -> ApiRequest {
    form(
        "grant_type=client_credentials&scope=read",
        &[("authorization", &basic(client_id, CLIENT_SECRET))],
    )
}

fn str_of(response: &ApiResponse, field: &str) -> String {
    let body = json_of(response);
    body[field].as_str().unwrap_or_default().to_owned()
}

/// RFC 9449 §5: `refresh` of spa is bound to the ES256 fixture key: refused without a proof
/// and with another key's (leaving the family as it was), refreshed with that key's.
async fn assert_only_its_key_refreshes(world: &World, refresh: &str) -> ApiResponse {
    let response = world.refresh("spa", refresh, None).await;
    assert_eq!(error_of(&response), (400, "invalid_dpop_proof".into()));
    let other = dpop_proof(Alg::EdDsa, "POST", &token_url());
    let response = world.refresh("spa", refresh, Some(&other)).await;
    assert_eq!(error_of(&response), (400, "invalid_grant".into()));
    let proof = dpop_proof(Alg::Es256, "POST", &token_url());
    let response = world.refresh("spa", refresh, Some(&proof)).await;
    assert_eq!(response.status, 200, "{}", response.body);
    response
}

fn error_of(response: &ApiResponse) -> (u16, String) {
    let body = json_of(response);
    let error = body["error"].as_str().unwrap_or_default().to_owned();
    (response.status, error)
}

impl World {
    async fn introspect(&self, token: &str) -> serde_json::Value {
        let request = post(
            "/oauth/v2/tokeninfo",
            "application/x-www-form-urlencoded",
            &format!("token={token}"),
            &[("authorization", &basic("app", CLIENT_SECRET))],
        );
        json_of(&self.tokeninfo.handle(&request).await)
    }

    /// A code for alice and `client_id`, exchanged with `proof` (a public client sends PKCE).
    async fn code_exchange(&self, client_id: &str, proof: Option<&str>) -> ApiResponse {
        let code = self.mint_code(client_id).await;
        self.exchange(client_id, &code, proof).await
    }

    /// A code for alice and `client_id`, as the authorization endpoint stores it.
    async fn mint_code(&self, client_id: &str) -> String {
        self.mint_bound_code(client_id, None).await
    }

    /// A code as the authorization endpoint stores it for a request with `dpop_jkt`.
    async fn mint_bound_code(&self, client_id: &str, dpop_jkt: Option<String>) -> String {
        let grant = AuthorizationCode {
            code_hash: String::new(),
            client_id: client_id.to_owned(),
            redirect_uri: REDIRECT_URI.to_owned(),
            scope: "openid email".to_owned(),
            nonce: None,
            code_challenge: Some(challenge_of(VERIFIER)),
            dpop_jkt,
            user_id: USER_ID.to_owned(),
            username: USERNAME.to_owned(),
            claims: user("").claims,
            auth_time: shared::now_epoch() - 3,
            family_id: RefreshToken::new_family(USER_ID).family_id,
            exp: 0,
            consumed_at: None,
        };
        let issued = issue_code(grant, shared::now_epoch());
        self.store.store_code(&issued.record).await.unwrap();
        issued.code
    }

    async fn exchange(&self, client_id: &str, code: &str, proof: Option<&str>) -> ApiResponse {
        let redirect: String = form_urlencoded::byte_serialize(REDIRECT_URI.as_bytes()).collect();
        let body = format!(
            "grant_type=authorization_code&code={code}&redirect_uri={redirect}&code_verifier={VERIFIER}&client_id={client_id}"
        );
        self.grant(client_id, &body, proof).await
    }

    /// A token request of `client_id` (spa is public: no secret) with `body` and `proof`.
    async fn grant(&self, client_id: &str, body: &str, proof: Option<&str>) -> ApiResponse {
        let auth = basic(client_id, CLIENT_SECRET);
        let headers: Vec<(&str, &str)> = match client_id {
            "spa" => vec![],
            _ => vec![("authorization", &auth)],
        };
        let request = form(body, &headers);
        let request = match proof {
            Some(proof) => with_proof(request, proof),
            None => request,
        };
        self.token.handle(&request).await
    }

    async fn refresh(&self, client_id: &str, token: &str, proof: Option<&str>) -> ApiResponse {
        let body = format!("grant_type=refresh_token&refresh_token={token}&client_id={client_id}");
        self.grant(client_id, &body, proof).await
    }

    async fn userinfo(&self, authorization: &str, proof: Option<&str>) -> ApiResponse {
        let mut request = ApiRequest {
            method: http::Method::GET,
            path: "/oauth/v2/userinfo".to_owned(),
            domain_name: Some("id.example.com".to_owned()),
            ..ApiRequest::default()
        };
        request
            .headers
            .insert("authorization", authorization.parse().unwrap());
        if let Some(proof) = proof {
            request.headers.insert("dpop", proof.parse().unwrap());
        }
        self.tokeninfo.handle(&request).await
    }
}

/// A userinfo proof for `token` by the fixture key for `alg`.
fn userinfo_proof(alg: Alg, token: &str) -> String {
    let mut claims = dpop_claims("GET", &userinfo_url(), shared::now_epoch());
    claims["ath"] = access_token_hash(token).into();
    dpop_proof_with(alg, &json!({}), &claims)
}

#[tokio::test]
async fn a_proof_binds_the_access_token_to_its_key_and_introspection_shows_it() {
    let world = world();
    let proof = dpop_proof(Alg::Es256, "POST", &token_url());
    let response = world.token.handle(&with_proof(cc("svc"), &proof)).await;
    assert_eq!(response.status, 200, "{}", response.body);
    let body = json_of(&response);
    assert_eq!(body["token_type"], "DPoP");
    let token = body["access_token"].as_str().unwrap();
    assert_eq!(claims_of(token)["cnf"], json!({ "jkt": jkt(Alg::Es256) }));
    let introspection = world.introspect(token).await;
    assert_eq!(introspection["active"], true);
    assert_eq!(introspection["token_type"], "DPoP");
    assert_eq!(introspection["cnf"], json!({ "jkt": jkt(Alg::Es256) }));
    // GET tokeninfo describes it too, however the header names its scheme.
    let mut get = ApiRequest {
        method: http::Method::GET,
        path: "/oauth/v2/tokeninfo".to_owned(),
        domain_name: Some("id.example.com".to_owned()),
        ..ApiRequest::default()
    };
    get.headers
        .insert("authorization", format!("DPoP {token}").parse().unwrap());
    let described = json_of(&world.tokeninfo.handle(&get).await);
    assert_eq!(described["active"], true);
    assert_eq!(described["cnf"]["jkt"], jkt(Alg::Es256));

    // Without a proof the same client gets a bearer token, as before.
    let body = json_of(&world.token.handle(&cc("svc")).await);
    assert_eq!(body["token_type"], "Bearer");
    assert!(claims_of(body["access_token"].as_str().unwrap())["cnf"].is_null());
}

#[tokio::test]
async fn a_proof_is_good_for_one_request_only() {
    let world = world();
    let proof = dpop_proof(Alg::EdDsa, "POST", &token_url());
    let first = world.token.handle(&with_proof(cc("svc"), &proof)).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let again = world.token.handle(&with_proof(cc("svc"), &proof)).await;
    assert_eq!(error_of(&again), (400, "invalid_dpop_proof".into()));
    assert!(!again.body.contains("access_token"));
}

#[tokio::test]
async fn of_twenty_concurrent_uses_of_one_proof_exactly_one_gets_a_token() {
    let world = std::sync::Arc::new(world());
    let proof = dpop_proof(Alg::Es256, "POST", &token_url());
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (world, proof) = (world.clone(), proof.clone());
            tokio::spawn(async move { world.token.handle(&with_proof(cc("svc"), &proof)).await })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap().status);
    }
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1);
    assert_eq!(statuses.iter().filter(|s| **s == 400).count(), 19);
}

#[tokio::test]
async fn a_proof_for_another_request_is_refused() {
    let world = world();
    let now = shared::now_epoch();
    let revoke_url = format!("{ISSUER}/v2/revoke");
    let proofs = [
        dpop_proof(Alg::Es256, "GET", &token_url()),
        dpop_proof(Alg::Es256, "POST", &revoke_url),
        dpop_proof_with(
            Alg::Es256,
            &json!({}),
            &dpop_claims("POST", &token_url(), now - 120),
        ),
        dpop_proof_with(
            Alg::Es256,
            &json!({"typ": "JWT"}),
            &dpop_claims("POST", &token_url(), now),
        ),
    ];
    for proof in proofs {
        let response = world.token.handle(&with_proof(cc("svc"), &proof)).await;
        assert_eq!(
            error_of(&response),
            (400, "invalid_dpop_proof".into()),
            "{}",
            response.body
        );
    }
    // Two proofs in one request (RFC 9449 §4.3 rule 1).
    let one = dpop_proof(Alg::Es256, "POST", &token_url());
    let two = dpop_proof(Alg::Es256, "POST", &token_url());
    let request = with_proof(with_proof(cc("svc"), &one), &two);
    let response = world.token.handle(&request).await;
    assert_eq!(error_of(&response), (400, "invalid_dpop_proof".into()));
}

#[tokio::test]
async fn an_alias_route_takes_a_proof_for_its_own_url() {
    let world = world();
    let url = "https://id.example.com/oauth2/token";
    let mut request = cc("svc");
    request.path = "/oauth2/token".to_owned();
    let response = world
        .token
        .handle(&with_proof(request, &dpop_proof(Alg::Es256, "POST", url)))
        .await;
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(json_of(&response)["token_type"], "DPoP");
}

#[tokio::test]
async fn a_client_that_requires_dpop_gets_no_bearer_token() {
    let world = world();
    let response = world.token.handle(&cc("strict")).await;
    assert_eq!(error_of(&response), (400, "invalid_dpop_proof".into()));
    let proof = dpop_proof(Alg::Es256, "POST", &token_url());
    let response = world.token.handle(&with_proof(cc("strict"), &proof)).await;
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(json_of(&response)["token_type"], "DPoP");
}

#[tokio::test]
async fn a_public_clients_refresh_token_is_bound_to_its_key() {
    let world = world();
    let proof = dpop_proof(Alg::Es256, "POST", &token_url());
    let response = world.code_exchange("spa", Some(&proof)).await;
    assert_eq!(response.status, 200, "{}", response.body);
    let refresh = str_of(&response, "refresh_token");
    let response = assert_only_its_key_refreshes(&world, &refresh).await;
    // The new access token is bound too.
    let body = json_of(&response);
    assert_eq!(body["token_type"], "DPoP");
    let access = claims_of(body["access_token"].as_str().unwrap());
    assert_eq!(access["cnf"]["jkt"], jkt(Alg::Es256));
}

#[tokio::test]
async fn a_confidential_clients_refresh_token_is_bound_by_its_authentication_only() {
    let world = world();
    let proof = dpop_proof(Alg::Es256, "POST", &token_url());
    let response = world.code_exchange("web", Some(&proof)).await;
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(json_of(&response)["token_type"], "DPoP");
    let refresh = str_of(&response, "refresh_token");
    let response = world.refresh("web", &refresh, None).await;
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(json_of(&response)["token_type"], "Bearer");
}

#[tokio::test]
async fn userinfo_takes_a_bound_token_only_with_a_proof_by_its_key() {
    let world = world();
    let proof = dpop_proof(Alg::Es256, "POST", &token_url());
    let response = world.code_exchange("spa", Some(&proof)).await;
    let token = str_of(&response, "access_token");

    let response = world
        .userinfo(
            &format!("DPoP {token}"),
            Some(&userinfo_proof(Alg::Es256, &token)),
        )
        .await;
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(json_of(&response)["sub"], USER_ID);

    // As a bearer token: refused, with a DPoP challenge.
    let response = world.userinfo(&format!("Bearer {token}"), None).await;
    assert_eq!(error_of(&response), (401, "invalid_token".into()));
    let challenge = response.header_value("www-authenticate").unwrap();
    assert!(challenge.starts_with("DPoP "), "{challenge}");

    let refused = [
        // No proof.
        None,
        // Another key's proof.
        Some(userinfo_proof(Alg::EdDsa, &token)),
        // A proof for another token (ath).
        Some(userinfo_proof(Alg::Es256, "another.access.token")),
        // A proof for the token endpoint.
        Some(dpop_proof(Alg::Es256, "GET", &token_url())),
    ];
    for proof in refused {
        let response = world
            .userinfo(&format!("DPoP {token}"), proof.as_deref())
            .await;
        assert_eq!(error_of(&response), (401, "invalid_dpop_proof".into()));
        assert!(
            response
                .header_value("www-authenticate")
                .unwrap()
                .contains(r#"error="invalid_dpop_proof""#)
        );
    }
    // A used proof is not good twice.
    let proof = userinfo_proof(Alg::Es256, &token);
    let scheme = format!("DPoP {token}");
    assert_eq!(world.userinfo(&scheme, Some(&proof)).await.status, 200);
    let again = world.userinfo(&scheme, Some(&proof)).await;
    assert_eq!(error_of(&again), (401, "invalid_dpop_proof".into()));
}

#[tokio::test]
async fn userinfo_refuses_an_unbound_token_under_the_dpop_scheme_and_names_both_schemes() {
    let world = world();
    let response = world.code_exchange("spa", None).await;
    let token = str_of(&response, "access_token");
    assert_eq!(
        world
            .userinfo(&format!("Bearer {token}"), None)
            .await
            .status,
        200
    );
    let response = world
        .userinfo(
            &format!("DPoP {token}"),
            Some(&userinfo_proof(Alg::Es256, &token)),
        )
        .await;
    assert_eq!(error_of(&response), (401, "invalid_token".into()));

    // No credentials: both challenges, so a client knows DPoP is accepted.
    let mut request = ApiRequest {
        method: http::Method::GET,
        path: "/oauth/v2/userinfo".to_owned(),
        domain_name: Some("id.example.com".to_owned()),
        ..ApiRequest::default()
    };
    request.headers.clear();
    let response = world.tokeninfo.handle(&request).await;
    assert_eq!(response.status, 401);
    let challenge = response.header_value("www-authenticate").unwrap();
    assert!(challenge.contains("Bearer") && challenge.contains("DPoP algs="));
}

/// A proof for `method` `url` now carrying `nonce` (and `ath` of `token`).
fn proof_with_nonce(method: &str, url: &str, nonce: &str, token: Option<&str>) -> String {
    let mut claims = dpop_claims(method, url, shared::now_epoch());
    claims["nonce"] = nonce.into();
    if let Some(token) = token {
        claims["ath"] = access_token_hash(token).into();
    }
    dpop_proof_with(Alg::Es256, &json!({}), &claims)
}

#[tokio::test]
async fn with_nonces_required_a_proof_must_carry_the_servers_nonce() {
    let world = world_with(&[("DPOP_NONCE_REQUIRED", "true")]);
    // A proof made without a nonce: use_dpop_nonce, and the nonce to use.
    let proof = dpop_proof(Alg::Es256, "POST", &token_url());
    let response = world.token.handle(&with_proof(cc("svc"), &proof)).await;
    assert_eq!(error_of(&response), (400, "use_dpop_nonce".into()));
    let nonce = response.header_value("dpop-nonce").unwrap().to_owned();
    // A forged or made-up nonce is no better.
    let (window, _) = nonce.split_once('.').unwrap();
    for forged in [format!("{window}.AAAAAAAAAAAAAAAAAAAAAA"), "n-1".to_owned()] {
        let proof = proof_with_nonce("POST", &token_url(), &forged, None);
        let response = world.token.handle(&with_proof(cc("svc"), &proof)).await;
        assert_eq!(error_of(&response), (400, "use_dpop_nonce".into()));
    }
    // With it: a bound token, and the nonce again for the next proof.
    let proof = proof_with_nonce("POST", &token_url(), &nonce, None);
    let response = world.token.handle(&with_proof(cc("svc"), &proof)).await;
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(json_of(&response)["token_type"], "DPoP");
    assert_eq!(response.header_value("dpop-nonce"), Some(nonce.as_str()));

    // A request without a proof is unaffected (a bearer token).
    let response = world.token.handle(&cc("svc")).await;
    assert_eq!(json_of(&response)["token_type"], "Bearer");

    // Userinfo answers a proof without the nonce with a DPoP challenge naming use_dpop_nonce.
    let exchanged = world
        .code_exchange(
            "spa",
            Some(&proof_with_nonce("POST", &token_url(), &nonce, None)),
        )
        .await;
    assert_eq!(exchanged.status, 200, "{}", exchanged.body);
    let user_token = str_of(&exchanged, "access_token");
    let response = world
        .userinfo(
            &format!("DPoP {user_token}"),
            Some(&userinfo_proof(Alg::Es256, &user_token)),
        )
        .await;
    assert_eq!(error_of(&response), (401, "use_dpop_nonce".into()));
    let challenge = response.header_value("www-authenticate").unwrap();
    assert!(
        challenge.contains(r#"error="use_dpop_nonce""#),
        "{challenge}"
    );
    assert_eq!(response.header_value("dpop-nonce"), Some(nonce.as_str()));
    let proof = proof_with_nonce("GET", &userinfo_url(), &nonce, Some(&user_token));
    let response = world
        .userinfo(&format!("DPoP {user_token}"), Some(&proof))
        .await;
    assert_eq!(response.status, 200, "{}", response.body);
}

#[tokio::test]
async fn without_the_setting_no_nonce_is_issued_or_needed() {
    let world = world();
    let proof = dpop_proof(Alg::Es256, "POST", &token_url());
    let response = world.token.handle(&with_proof(cc("svc"), &proof)).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.header_value("dpop-nonce"), None);
}

#[tokio::test]
async fn a_proof_is_spent_only_once_the_client_is_authenticated() {
    let world = world();
    let proof = dpop_proof(Alg::Es256, "POST", &token_url());
    let wrong = form(
        "grant_type=client_credentials&scope=read",
        &[("authorization", &basic("svc", WRONG_SECRET))],
    );
    let response = world.token.handle(&with_proof(wrong, &proof)).await;
    assert_eq!(error_of(&response), (401, "invalid_client".into()));
    // Nobody who is not the client made the proof's jti unusable.
    let response = world.token.handle(&with_proof(cc("svc"), &proof)).await;
    assert_eq!(response.status, 200, "{}", response.body);
}

#[tokio::test]
async fn a_code_of_a_client_that_requires_dpop_survives_a_request_without_a_proof() {
    let world = world();
    let code = world.mint_code("strict-web").await;
    let response = world.exchange("strict-web", &code, None).await;
    assert_eq!(error_of(&response), (400, "invalid_dpop_proof".into()));
    // The code was not redeemed: with a proof it still works.
    let proof = dpop_proof(Alg::Es256, "POST", &token_url());
    let response = world.exchange("strict-web", &code, Some(&proof)).await;
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(json_of(&response)["token_type"], "DPoP");
}

#[tokio::test]
async fn a_public_family_begun_without_a_proof_is_bound_at_its_first_refresh_with_one() {
    let world = world();
    let response = world.code_exchange("spa", None).await;
    let first = str_of(&response, "refresh_token");
    let proof = dpop_proof(Alg::Es256, "POST", &token_url());
    let response = world.refresh("spa", &first, Some(&proof)).await;
    assert_eq!(response.status, 200, "{}", response.body);
    let second = str_of(&response, "refresh_token");
    // From now on only that key refreshes it.
    assert_only_its_key_refreshes(&world, &second).await;
}

#[tokio::test]
async fn a_code_bound_by_dpop_jkt_is_redeemed_only_with_a_proof_by_that_key() {
    let world = world();
    for client_id in ["spa", "web"] {
        let code = world
            .mint_bound_code(client_id, Some(jkt(Alg::Es256)))
            .await;
        let response = world.exchange(client_id, &code, None).await;
        assert_eq!(error_of(&response), (400, "invalid_dpop_proof".into()));

        let code = world
            .mint_bound_code(client_id, Some(jkt(Alg::Es256)))
            .await;
        let other = dpop_proof(Alg::EdDsa, "POST", &token_url());
        let response = world.exchange(client_id, &code, Some(&other)).await;
        assert_eq!(error_of(&response), (400, "invalid_grant".into()));

        let code = world
            .mint_bound_code(client_id, Some(jkt(Alg::Es256)))
            .await;
        let own = dpop_proof(Alg::Es256, "POST", &token_url());
        let response = world.exchange(client_id, &code, Some(&own)).await;
        assert_eq!(response.status, 200, "{}", response.body);
        let token = str_of(&response, "access_token");
        assert_eq!(claims_of(&token)["cnf"]["jkt"], jkt(Alg::Es256));
    }
}
