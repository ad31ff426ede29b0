//! Pushed authorization requests in-process (RFC 9126): the token function takes a client's
//! authenticated push, the authorization endpoint takes the `request_uri` once, and only the
//! pushed parameters count.

mod support;

use shared::authorize::page::messages;
use shared::authorize::pkce::challenge_of;
use shared::endpoints::authorize::AuthorizeService;
use shared::endpoints::token::TokenService;
use shared::http::{ApiRequest, ApiResponse};
use shared::keys::Alg;
use shared::storage::GrantType;
use shared::storage::memory::MemoryStore;
use support::*;

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

struct World {
    authorize: AuthorizeService<MemoryStore, StaticKeys>,
    token: TokenService<MemoryStore, StaticKeys>,
}

fn world_with(extra: &[(&str, &str)]) -> World {
    let store = shared::testing::store(password_hash());
    for (id, strict) in [("web", false), ("pushes", true), ("other", false)] {
        let mut web = client(id, &[GrantType::AuthorizationCode, GrantType::RefreshToken]);
        web.require_pushed_authorization_requests = strict;
        store.put_client(web);
    }
    World {
        authorize: AuthorizeService::new(config(Alg::Es256, extra), store.clone(), all_keys()),
        token: TokenService::new(config(Alg::Es256, extra), store, all_keys()),
    }
}

fn world() -> World {
    world_with(&[])
}

fn encoded(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// The authorization parameters of a sign-in of `web`-like clients (PKCE, state, nonce).
fn parameters(extra: &str) -> String {
    format!(
        "response_type=code&redirect_uri={}&scope=openid%20email&state=st-1&nonce=n-1&code_challenge={}&code_challenge_method=S256{extra}",
        encoded(REDIRECT_URI),
        challenge_of(VERIFIER)
    )
}

impl World {
    async fn push(&self, client_id: &str, body: &str) -> ApiResponse {
        let request = post(
            "/oauth/v2/par",
            "application/x-www-form-urlencoded",
            body,
            &[("authorization", &basic(client_id, CLIENT_SECRET))],
        );
        self.token.handle(&request).await
    }

    /// A push of `client_id` that must succeed; its `request_uri`.
    async fn pushed(&self, client_id: &str, extra: &str) -> String {
        let response = self.push(client_id, &parameters(extra)).await;
        assert_eq!(response.status, 201, "{}", response.body);
        assert_eq!(response.header_value("cache-control"), Some("no-store"));
        let body = json_of(&response);
        assert_eq!(body["expires_in"], 60);
        body["request_uri"].as_str().unwrap().to_owned()
    }

    async fn authorize(&self, query: &str) -> ApiResponse {
        let request = ApiRequest {
            method: http::Method::GET,
            path: "/oauth/v2/authorize".into(),
            query: Some(query.to_owned()),
            domain_name: Some("id.example.com".into()),
            ..ApiRequest::default()
        };
        self.authorize.handle(&request).await
    }
}

fn by_reference(client_id: &str, request_uri: &str) -> String {
    format!("client_id={client_id}&request_uri={}", encoded(request_uri))
}

fn is_error_page(page: &ApiResponse, message: &str) -> bool {
    let escaped = message.replace('\'', "&#x27;");
    page.status == 400 && (page.body.contains(message) || page.body.contains(&escaped))
}

#[tokio::test]
async fn a_pushed_request_signs_in_once_with_only_its_parameters() {
    let world = world();
    let request_uri = world.pushed("web", "").await;
    assert!(request_uri.starts_with("urn:ietf:params:oauth:request_uri:"));
    // The browser brings client_id and request_uri; a state it adds does not count.
    let page = world
        .authorize(&format!(
            "{}&state=forged",
            by_reference("web", &request_uri)
        ))
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    let done = world
        .authorize
        .handle(&login_form(&page, PASSWORD, "same-origin"))
        .await;
    let params = redirected(&done);
    assert_eq!(params["state"], "st-1");
    assert!(params.contains_key("code"));
    // Single use (RFC 9126 §4).
    let again = world.authorize(&by_reference("web", &request_uri)).await;
    assert!(
        is_error_page(&again, messages::PUSHED_REQUEST_UNUSABLE),
        "{}",
        again.body
    );
}

#[tokio::test]
async fn a_request_uri_of_another_client_or_not_ours_is_refused() {
    let world = world();
    let request_uri = world.pushed("web", "").await;
    let page = world.authorize(&by_reference("other", &request_uri)).await;
    assert!(
        is_error_page(&page, messages::PUSHED_REQUEST_UNUSABLE),
        "{}",
        page.body
    );
    // Naming the wrong client did not burn it for its own.
    let page = world.authorize(&by_reference("web", &request_uri)).await;
    assert_eq!(page.status, 200, "{}", page.body);
    for forged in [
        "urn:ietf:params:oauth:request_uri:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "https://evil.example/request.jwt",
        "urn:ietf:params:oauth:request_uri:",
    ] {
        let page = world.authorize(&by_reference("web", forged)).await;
        assert!(
            is_error_page(&page, messages::PUSHED_REQUEST_UNUSABLE),
            "{forged}"
        );
    }
}

#[tokio::test]
async fn a_push_is_checked_as_the_authorization_endpoint_checks_a_request() {
    let world = world();
    let refusals = [
        (parameters("&request_uri=urn%3Ax"), "invalid_request"),
        (parameters("&client_id=other"), "invalid_request"),
        (
            parameters("").replace("response_type=code", "response_type=token"),
            "unsupported_response_type",
        ),
        (
            parameters("").replace("openid%20email", "admin"),
            "invalid_scope",
        ),
        (
            parameters("").replace("code_challenge_method=S256", "code_challenge_method=plain"),
            "invalid_request",
        ),
        (
            parameters("").replace(&encoded(REDIRECT_URI), "https%3A%2F%2Fevil.example%2Fcb"),
            "invalid_request",
        ),
    ];
    for (body, error) in refusals {
        let response = world.push("web", &body).await;
        assert_eq!(response.status, 400, "{body}: {}", response.body);
        assert_eq!(json_of(&response)["error"], error, "{body}");
        assert!(
            !response.body.contains("request_uri\":"),
            "{}",
            response.body
        );
    }
    // Unauthenticated: the token endpoint's rules.
    let request = post(
        "/oauth/v2/par",
        "application/x-www-form-urlencoded",
        &parameters(""),
        &[("authorization", &basic("web", WRONG_SECRET))],
    );
    let response = world.token.handle(&request).await;
    assert_eq!(response.status, 401);
    assert_eq!(json_of(&response)["error"], "invalid_client");
    // Not a form.
    let request = post(
        "/oauth/v2/par",
        "application/json",
        "{}",
        &[("authorization", &basic("web", CLIENT_SECRET))],
    );
    assert_eq!(world.token.handle(&request).await.status, 400);
}

#[tokio::test]
async fn the_secret_is_not_kept_with_the_pushed_parameters() {
    let world = world();
    let body = format!(
        "{}&client_id=web&client_secret={CLIENT_SECRET}",
        parameters("")
    );
    let request = post(
        "/oauth/v2/par",
        "application/x-www-form-urlencoded",
        &body,
        &[],
    );
    let response = world.token.handle(&request).await;
    assert_eq!(response.status, 201, "{}", response.body);
    let request_uri = json_of(&response)["request_uri"]
        .as_str()
        .unwrap()
        .to_owned();
    let page = world.authorize(&by_reference("web", &request_uri)).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(!page.body.contains(CLIENT_SECRET));
}

#[tokio::test]
async fn a_client_that_requires_par_takes_only_pushed_requests() {
    let world = world();
    let direct = world
        .authorize(&format!("client_id=pushes&{}", parameters("")))
        .await;
    let params = redirected(&direct);
    assert_eq!(params["error"], "invalid_request");
    let request_uri = world.pushed("pushes", "").await;
    let page = world.authorize(&by_reference("pushes", &request_uri)).await;
    assert_eq!(page.status, 200, "{}", page.body);
}

#[tokio::test]
async fn require_par_for_the_deployment_applies_to_every_client() {
    let world = world_with(&[("REQUIRE_PAR", "true")]);
    let direct = world
        .authorize(&format!("client_id=web&{}", parameters("")))
        .await;
    assert_eq!(redirected(&direct)["error"], "invalid_request");
    let request_uri = world.pushed("web", "").await;
    assert_eq!(
        world
            .authorize(&by_reference("web", &request_uri))
            .await
            .status,
        200
    );
}

impl World {
    /// A push of web with a DPoP proof by the fixture key for `alg`.
    async fn push_with_proof(&self, extra: &str, proof: &str) -> ApiResponse {
        let mut request = post(
            "/oauth/v2/par",
            "application/x-www-form-urlencoded",
            &parameters(extra),
            &[("authorization", &basic("web", CLIENT_SECRET))],
        );
        request.headers.append("dpop", proof.parse().unwrap());
        self.token.handle(&request).await
    }

    /// Signs alice in through `request_uri`; the code.
    async fn code_through(&self, request_uri: &str) -> String {
        let page = self.authorize(&by_reference("web", request_uri)).await;
        assert_eq!(page.status, 200, "{}", page.body);
        let done = self
            .authorize
            .handle(&login_form(&page, PASSWORD, "same-origin"))
            .await;
        redirected(&done)["code"].clone()
    }

    async fn exchange(&self, code: &str, proof: Option<&str>) -> ApiResponse {
        let body = format!(
            "grant_type=authorization_code&code={code}&redirect_uri={}&code_verifier={VERIFIER}",
            encoded(REDIRECT_URI)
        );
        let mut request = form(&body, &[("authorization", &basic("web", CLIENT_SECRET))]);
        if let Some(proof) = proof {
            request.headers.append("dpop", proof.parse().unwrap());
        }
        self.token.handle(&request).await
    }
}

fn par_url() -> String {
    format!("{ISSUER}/v2/par")
}

fn token_url() -> String {
    format!("{ISSUER}/v2/token")
}

#[tokio::test]
async fn a_proof_with_the_push_binds_the_code_to_its_key() {
    let world = world();
    let response = world
        .push_with_proof("", &dpop_proof(Alg::Es256, "POST", &par_url()))
        .await;
    assert_eq!(response.status, 201, "{}", response.body);
    let request_uri = json_of(&response)["request_uri"]
        .as_str()
        .unwrap()
        .to_owned();
    let code = world.code_through(&request_uri).await;
    // RFC 9449 §10: another key's proof does not redeem it (and the code is spent).
    let other = dpop_proof(Alg::EdDsa, "POST", &token_url());
    let refused = world.exchange(&code, Some(&other)).await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert_eq!(json_of(&refused)["error"], "invalid_grant");

    let response = world
        .push_with_proof("", &dpop_proof(Alg::Es256, "POST", &par_url()))
        .await;
    let request_uri = json_of(&response)["request_uri"]
        .as_str()
        .unwrap()
        .to_owned();
    let code = world.code_through(&request_uri).await;
    let without = world.exchange(&code, None).await;
    assert_eq!(json_of(&without)["error"], "invalid_dpop_proof");

    let response = world
        .push_with_proof("", &dpop_proof(Alg::Es256, "POST", &par_url()))
        .await;
    let request_uri = json_of(&response)["request_uri"]
        .as_str()
        .unwrap()
        .to_owned();
    let code = world.code_through(&request_uri).await;
    let own = dpop_proof(Alg::Es256, "POST", &token_url());
    let issued = world.exchange(&code, Some(&own)).await;
    assert_eq!(issued.status, 200, "{}", issued.body);
    assert_eq!(json_of(&issued)["token_type"], "DPoP");
}

#[tokio::test]
async fn a_push_proof_must_fit_the_push_and_its_dpop_jkt() {
    let world = world();
    let es256 = shared::tokens::dpop::thumbprint(&dpop_public_jwk(Alg::Es256)).unwrap();
    // The same key twice is fine; another key's thumbprint is refused.
    let same = format!("&dpop_jkt={es256}");
    let response = world
        .push_with_proof(&same, &dpop_proof(Alg::Es256, "POST", &par_url()))
        .await;
    assert_eq!(response.status, 201, "{}", response.body);
    let response = world
        .push_with_proof(&same, &dpop_proof(Alg::EdDsa, "POST", &par_url()))
        .await;
    assert_eq!(response.status, 400, "{}", response.body);
    assert_eq!(json_of(&response)["error"], "invalid_dpop_proof");
    // A proof made for the token endpoint is not one for the push.
    let response = world
        .push_with_proof("", &dpop_proof(Alg::Es256, "POST", &token_url()))
        .await;
    assert_eq!(json_of(&response)["error"], "invalid_dpop_proof");
    // A malformed dpop_jkt is the authorization endpoint's invalid_request.
    let response = world.push("web", &parameters("&dpop_jkt=abc")).await;
    assert_eq!(json_of(&response)["error"], "invalid_request");
}
