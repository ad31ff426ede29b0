//! private_key_jwt end to end in-process (RFC 7523 §2.2, §3): the token, introspection and
//! revocation endpoints over one in-memory store, with a client that holds keys, not a secret.

mod support;

use serde_json::json;
use shared::endpoints::token::TokenService;
use shared::endpoints::tokeninfo::TokenInfoService;
use shared::grants::client_jwks::{FetchError, JwksFetcher};
use shared::keys::rotation::ensure_keys;
use shared::keys::{Alg, KeySet, KeySetDocument};
use shared::storage::GrantType;
use shared::storage::memory::MemoryStore;
use support::*;

const CLIENT: &str = "signer";
const ASSERTION_TYPE: &str = "urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer";

/// The client's own key pair (its private half stays with the client).
fn client_keys() -> &'static KeySet {
    static KEYS: std::sync::OnceLock<KeySet> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| {
        let mut doc = KeySetDocument::default();
        ensure_keys(&mut doc, Alg::Es256, shared::now_epoch()).unwrap();
        KeySet::from_document(&doc).unwrap()
    })
}

struct World {
    token: TokenService<MemoryStore, StaticKeys>,
    tokeninfo: TokenInfoService<MemoryStore, StaticKeys>,
}

fn world(extra: &[(&str, &str)]) -> World {
    let store = shared::testing::store(password_hash());
    let mut client = client(CLIENT, &[GrantType::ClientCredentials]);
    client.secrets.clear();
    client.jwks = Some(client_keys().jwks_json().to_owned());
    store.put_client(client);
    World {
        token: TokenService::new(config(Alg::Es256, extra), store.clone(), all_keys()),
        tokeninfo: TokenInfoService::new(config(Alg::Es256, extra), store, all_keys()),
    }
}

fn assertion(aud: &str, jti: &str) -> String {
    let now = shared::now_epoch();
    let claims = json!({
        "iss": CLIENT, "sub": CLIENT, "aud": aud, "exp": now + 60, "iat": now, "jti": jti,
    });
    client_keys()
        .signer(Alg::Es256)
        .unwrap()
        .sign_jwt("JWT", &claims)
        .unwrap()
}

fn token_url() -> String {
    format!("{ISSUER}/v2/token")
}

fn cc_body(assertion: &str) -> String {
    format!(
        "grant_type=client_credentials&scope=read&client_assertion_type={ASSERTION_TYPE}&client_assertion={assertion}"
    )
}

impl World {
    async fn client_credentials(&self, assertion: &str) -> shared::http::ApiResponse {
        self.token.handle(&form(&cc_body(assertion), &[])).await
    }
}

fn error_of(response: &shared::http::ApiResponse) -> String {
    json_of(response)["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn a_signed_assertion_gets_a_token_once() {
    let world = world(&[]);
    let jwt = assertion(&token_url(), "once");
    let first = world.client_credentials(&jwt).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let token = json_of(&first)["access_token"].as_str().unwrap().to_owned();
    assert_eq!(claims_of(&token)["client_id"], CLIENT);
    let replay = world.client_credentials(&jwt).await;
    assert_eq!(
        (replay.status, error_of(&replay).as_str()),
        (401, "invalid_client")
    );
}

#[tokio::test]
async fn of_concurrent_replays_exactly_one_is_accepted() {
    let world = world(&[]);
    let jwt = assertion(&token_url(), "raced");
    let answers =
        futures_util::future::join_all((0..20).map(|_| world.client_credentials(&jwt))).await;
    let accepted = answers.iter().filter(|r| r.status == 200).count();
    assert_eq!(accepted, 1);
    assert!(
        answers
            .iter()
            .all(|r| r.status == 200 || error_of(r) == "invalid_client")
    );
}

#[tokio::test]
async fn a_cached_client_still_spends_its_assertions() {
    let world = world(&[("CLIENT_CACHE_SECONDS", "60")]);
    let jwt = assertion(&token_url(), "cached");
    assert_eq!(world.client_credentials(&jwt).await.status, 200);
    assert_eq!(world.client_credentials(&jwt).await.status, 401);
    let fresh = assertion(&token_url(), "cached-2");
    assert_eq!(world.client_credentials(&fresh).await.status, 200);
}

#[tokio::test]
async fn a_key_client_cannot_fall_back_to_a_secret() {
    let world = world(&[]);
    for auth in [basic(CLIENT, CLIENT_SECRET), basic(CLIENT, "")] {
        let request = form("grant_type=client_credentials", &[("authorization", &auth)]);
        let response = world.token.handle(&request).await;
        assert_eq!(
            (response.status, error_of(&response).as_str()),
            (401, "invalid_client")
        );
    }
    let post =
        format!("grant_type=client_credentials&client_id={CLIENT}&client_secret={CLIENT_SECRET}");
    assert_eq!(world.token.handle(&form(&post, &[])).await.status, 401);
    let id_only = format!("grant_type=client_credentials&client_id={CLIENT}");
    assert_eq!(world.token.handle(&form(&id_only, &[])).await.status, 401);
}

#[tokio::test]
async fn one_request_uses_one_authentication_method() {
    let world = world(&[]);
    let jwt = assertion(&token_url(), "two-ways");
    let auth = basic(CLIENT, CLIENT_SECRET);
    let both = world
        .token
        .handle(&form(&cc_body(&jwt), &[("authorization", &auth)]))
        .await;
    assert_eq!(
        (both.status, error_of(&both).as_str()),
        (400, "invalid_request")
    );
    let wrong_type = cc_body(&jwt).replace("jwt-bearer", "saml2-bearer");
    let response = world.token.handle(&form(&wrong_type, &[])).await;
    assert_eq!(
        (response.status, error_of(&response).as_str()),
        (400, "invalid_request")
    );
    let other_id = format!("{}&client_id=someone-else", cc_body(&jwt));
    assert_eq!(world.token.handle(&form(&other_id, &[])).await.status, 401);
    // None of these spent the assertion.
    assert_eq!(world.client_credentials(&jwt).await.status, 200);
}

#[tokio::test]
async fn introspection_and_revocation_take_assertions_for_their_own_url() {
    let world = world(&[]);
    let issued = world
        .client_credentials(&assertion(&token_url(), "issue"))
        .await;
    let token = json_of(&issued)["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let introspect = |jwt: String| {
        let body =
            format!("token={token}&client_assertion_type={ASSERTION_TYPE}&client_assertion={jwt}");
        post(
            "/oauth/v2/tokeninfo",
            "application/x-www-form-urlencoded",
            &body,
            &[],
        )
    };
    let own_url = assertion(&format!("{ISSUER}/v2/tokeninfo"), "introspect");
    let response = world.tokeninfo.handle(&introspect(own_url.clone())).await;
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(json_of(&response)["active"], true);
    assert_eq!(
        world.tokeninfo.handle(&introspect(own_url)).await.status,
        401
    );
    // The revocation URL is not introspection's audience.
    let elsewhere = assertion(&format!("{ISSUER}/v2/revoke"), "misdirected");
    assert_eq!(
        world.tokeninfo.handle(&introspect(elsewhere)).await.status,
        401
    );

    let revoke_jwt = assertion(&format!("{ISSUER}/v2/revoke"), "revoke");
    let body = format!(
        "token={token}&client_assertion_type={ASSERTION_TYPE}&client_assertion={revoke_jwt}"
    );
    let request = post(
        "/oauth/v2/revoke",
        "application/x-www-form-urlencoded",
        &body,
        &[],
    );
    let revoked = world.token.handle(&request).await;
    assert_eq!(revoked.status, 200, "{}", revoked.body);
    let after = assertion(&token_url(), "after-revoke");
    let response = world.tokeninfo.handle(&introspect(after)).await;
    assert_eq!(json_of(&response)["active"], false);
}

/// A client's host for `jwks_uri`: serves what it holds (nothing: the host is down) and
/// counts the fetches.
#[derive(Clone, Default)]
struct ClientHost {
    document: std::sync::Arc<std::sync::Mutex<Option<String>>>,
    fetches: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl ClientHost {
    fn serve(&self, document: Option<&str>) {
        *self.document.lock().unwrap() = document.map(str::to_owned);
    }

    fn fetches(&self) -> usize {
        self.fetches.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl JwksFetcher for ClientHost {
    fn fetch<'a>(
        &'a self,
        uri: &'a str,
    ) -> futures_util::future::BoxFuture<'a, Result<String, FetchError>> {
        assert_eq!(uri, JWKS_URI);
        self.fetches
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let document = self.document.lock().unwrap().clone();
        Box::pin(async move { document.ok_or_else(|| FetchError("connection refused".into())) })
    }
}

const JWKS_URI: &str = "https://signer.example.com/.well-known/jwks.json";

/// The world with the client registered by `jwks_uri` instead of keys.
fn remote_world(host: &ClientHost) -> World {
    let store = shared::testing::store(password_hash());
    let mut client = client(CLIENT, &[GrantType::ClientCredentials]);
    client.secrets.clear();
    client.jwks_uri = Some(JWKS_URI.to_owned());
    store.put_client(client);
    let config = || config(Alg::Es256, &[]);
    World {
        token: TokenService::new(config(), store.clone(), all_keys())
            .with_jwks_fetcher(Box::new(host.clone())),
        tokeninfo: TokenInfoService::new(config(), store, all_keys())
            .with_jwks_fetcher(Box::new(host.clone())),
    }
}

#[tokio::test]
async fn a_jwks_uri_client_is_checked_against_its_fetched_keys_kept_warm() {
    let host = ClientHost::default();
    host.serve(Some(client_keys().jwks_json()));
    let world = remote_world(&host);
    for jti in ["remote-1", "remote-2"] {
        let response = world
            .client_credentials(&assertion(&token_url(), jti))
            .await;
        assert_eq!(response.status, 200, "{}", response.body);
    }
    assert_eq!(host.fetches(), 1, "the second request used the kept copy");
    let replay = world
        .client_credentials(&assertion(&token_url(), "remote-1"))
        .await;
    assert_eq!(error_of(&replay), "invalid_client");
    // Introspection (another function) fetches its own copy.
    let jwt = assertion(&format!("{ISSUER}/v2/tokeninfo"), "remote-introspect");
    let body = format!("token=x&client_assertion_type={ASSERTION_TYPE}&client_assertion={jwt}");
    let request = post(
        "/oauth/v2/tokeninfo",
        "application/x-www-form-urlencoded",
        &body,
        &[],
    );
    let response = world.tokeninfo.handle(&request).await;
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(host.fetches(), 2);
}

#[tokio::test]
async fn a_jwks_uri_client_whose_keys_cannot_be_had_is_an_invalid_client() {
    let other_keys = {
        let mut doc = KeySetDocument::default();
        ensure_keys(&mut doc, Alg::Es256, shared::now_epoch()).unwrap();
        KeySet::from_document(&doc).unwrap()
    };
    let secret_member = r#"{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}"#;
    for document in [
        None,
        Some("<html>"),
        Some(secret_member),
        Some(other_keys.jwks_json()),
    ] {
        let host = ClientHost::default();
        host.serve(document);
        let world = remote_world(&host);
        let response = world
            .client_credentials(&assertion(&token_url(), "unverifiable"))
            .await;
        assert_eq!(
            (response.status, error_of(&response).as_str()),
            (401, "invalid_client"),
            "{document:?}"
        );
        assert!(!response.body.contains("jwks"), "{}", response.body);
        // A failed fetch is not repeated at once: bad assertions cannot flood the host.
        world
            .client_credentials(&assertion(&token_url(), "unverifiable-2"))
            .await;
        assert_eq!(host.fetches(), 1, "{document:?}");
    }
}

#[tokio::test]
async fn a_jwks_uri_client_has_no_secret_either() {
    let host = ClientHost::default();
    host.serve(Some(client_keys().jwks_json()));
    let world = remote_world(&host);
    let request = form(
        "grant_type=client_credentials",
        &[("authorization", &basic(CLIENT, CLIENT_SECRET))],
    );
    assert_eq!(world.token.handle(&request).await.status, 401);
    let id_only = format!("grant_type=client_credentials&client_id={CLIENT}");
    assert_eq!(world.token.handle(&form(&id_only, &[])).await.status, 401);
    assert_eq!(host.fetches(), 0, "no assertion, nothing fetched");
}
