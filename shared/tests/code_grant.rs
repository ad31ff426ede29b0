//! The authorization code grant at the token endpoint (RFC 6749 §4.1.3, RFC 7636), in-process:
//! codes minted as the authorization endpoint will mint them, then exchanged.

mod support;

use shared::authorize::code::issue_code;
use shared::authorize::pkce::challenge_of;
use shared::endpoints::token::TokenService;
use shared::endpoints::tokeninfo::TokenInfoService;
use shared::keys::Alg;
use shared::storage::memory::MemoryStore;
use shared::storage::{AuthorizationCode, AuthorizationCodes, GrantType};
use shared::tokens::refresh::RefreshToken;
use support::*;

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

struct World {
    token: TokenService<MemoryStore, StaticKeys>,
    tokeninfo: TokenInfoService<MemoryStore, StaticKeys>,
    store: MemoryStore,
}

fn world() -> World {
    let store = shared::testing::store(password_hash());
    let web = client(
        "web",
        &[GrantType::AuthorizationCode, GrantType::RefreshToken],
    );
    store.put_client(web);
    let mut spa = client(
        "spa",
        &[GrantType::AuthorizationCode, GrantType::ClientCredentials],
    );
    spa.public = true;
    spa.secrets.clear();
    store.put_client(spa);
    World {
        token: TokenService::new(config(Alg::Es256, &[]), store.clone(), all_keys()),
        tokeninfo: TokenInfoService::new(config(Alg::Es256, &[]), store.clone(), all_keys()),
        store,
    }
}

/// What the authorization endpoint stores after alice signs in for `client_id`.
fn granted(client_id: &str, challenge: Option<String>) -> AuthorizationCode {
    AuthorizationCode {
        code_hash: String::new(),
        client_id: client_id.to_owned(),
        redirect_uri: REDIRECT_URI.to_owned(),
        scope: "openid email".to_owned(),
        nonce: Some("n-0S6_WzA2Mj".to_owned()),
        code_challenge: challenge,
        dpop_jkt: None,
        user_id: USER_ID.to_owned(),
        username: USERNAME.to_owned(),
        claims: shared::testing::user("").claims,
        auth_time: shared::now_epoch() - 3,
        family_id: RefreshToken::new_family(USER_ID).family_id,
        exp: 0,
        consumed_at: None,
    }
}

impl World {
    async fn mint(&self, grant: AuthorizationCode) -> (String, AuthorizationCode) {
        let issued = issue_code(grant, shared::now_epoch());
        self.store.store_code(&issued.record).await.unwrap();
        (issued.code, issued.record)
    }

    async fn exchange(&self, client_id: &str, body: &str) -> shared::http::ApiResponse {
        let auth = basic(client_id, CLIENT_SECRET);
        let headers: Vec<(&str, &str)> = if client_id == "spa" {
            vec![]
        } else {
            vec![("authorization", &auth)]
        };
        let body = if client_id == "spa" {
            format!("{body}&client_id=spa")
        } else {
            body.to_owned()
        };
        self.token.handle(&form(&body, &headers)).await
    }

    async fn active(&self, token: &str) -> bool {
        let request = post(
            "/oauth/v2/tokeninfo",
            "application/x-www-form-urlencoded",
            &format!("token={token}"),
            &[("authorization", &basic("web", CLIENT_SECRET))],
        );
        json_of(&self.tokeninfo.handle(&request).await)["active"] == true
    }
}

fn exchange_body(code: &str, verifier: Option<&str>) -> String {
    let mut body = format!(
        "grant_type=authorization_code&code={code}&redirect_uri={}",
        urlencode(REDIRECT_URI)
    );
    if let Some(verifier) = verifier {
        body.push_str(&format!("&code_verifier={verifier}"));
    }
    body
}

fn urlencode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

fn error_of(response: &shared::http::ApiResponse) -> (u16, String) {
    let body = json_of(response);
    (
        response.status,
        body["error"].as_str().unwrap_or("").to_owned(),
    )
}

#[tokio::test]
async fn a_code_with_its_verifier_gets_tokens_with_nonce_auth_time_and_sid() {
    let world = world();
    let grant = granted("web", Some(challenge_of(VERIFIER)));
    let (code, record) = world.mint(grant).await;
    let response = world
        .exchange("web", &exchange_body(&code, Some(VERIFIER)))
        .await;
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(response.header_value("cache-control"), Some("no-store"));
    let body = json_of(&response);
    assert_eq!(body["scope"], "openid email");
    assert!(
        body["refresh_token"].is_string(),
        "the client has refresh_token"
    );
    let id_token = claims_of(body["id_token"].as_str().unwrap());
    assert_eq!(id_token["nonce"], "n-0S6_WzA2Mj");
    assert_eq!(id_token["auth_time"], record.auth_time);
    assert_eq!(id_token["sid"], record.family_id.as_str());
    assert_eq!(id_token["email"], "alice@example.com");
    let access = claims_of(body["access_token"].as_str().unwrap());
    assert_eq!(access["sid"], record.family_id.as_str());
    assert_eq!(access["sub"], USER_ID);
    // The refresh token continues the code's family.
    let refresh = body["refresh_token"].as_str().unwrap();
    let refreshed = world
        .token
        .handle(&form(
            &format!("grant_type=refresh_token&refresh_token={refresh}"),
            &[("authorization", &basic("web", CLIENT_SECRET))],
        ))
        .await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.body);
}

#[tokio::test]
async fn a_second_use_is_refused_and_revokes_what_the_first_issued() {
    let world = world();
    let (code, _) = world
        .mint(granted("web", Some(challenge_of(VERIFIER))))
        .await;
    let first = json_of(
        &world
            .exchange("web", &exchange_body(&code, Some(VERIFIER)))
            .await,
    );
    let access = first["access_token"].as_str().unwrap();
    assert!(world.active(access).await);
    let second = world
        .exchange("web", &exchange_body(&code, Some(VERIFIER)))
        .await;
    assert_eq!(error_of(&second), (400, "invalid_grant".to_owned()));
    assert!(!second.body.contains("access_token"));
    assert!(
        !world.active(access).await,
        "RFC 6749 §4.1.2: tokens revoked"
    );
    let refresh = first["refresh_token"].as_str().unwrap();
    assert!(!world.active(refresh).await);
}

#[tokio::test]
async fn a_wrong_verifier_burns_the_code() {
    let world = world();
    let (code, _) = world
        .mint(granted("web", Some(challenge_of(VERIFIER))))
        .await;
    let wrong = VERIFIER.replace('d', "e");
    let response = world
        .exchange("web", &exchange_body(&code, Some(&wrong)))
        .await;
    assert_eq!(error_of(&response), (400, "invalid_grant".to_owned()));
    let retry = world
        .exchange("web", &exchange_body(&code, Some(VERIFIER)))
        .await;
    assert_eq!(error_of(&retry), (400, "invalid_grant".to_owned()));
}

#[tokio::test]
async fn pkce_cannot_be_dropped_or_added_at_the_exchange() {
    let world = world();
    // RFC 7636 §4.6: a challenge without a verifier.
    let (code, _) = world
        .mint(granted("web", Some(challenge_of(VERIFIER))))
        .await;
    let response = world.exchange("web", &exchange_body(&code, None)).await;
    assert_eq!(error_of(&response), (400, "invalid_grant".to_owned()));
    // RFC 9700 §2.1.1: a verifier without a challenge (a downgrade).
    let (code, _) = world.mint(granted("web", None)).await;
    let response = world
        .exchange("web", &exchange_body(&code, Some(VERIFIER)))
        .await;
    assert_eq!(error_of(&response), (400, "invalid_grant".to_owned()));
    // Neither, from a client that needs PKCE.
    let (code, _) = world.mint(granted("web", None)).await;
    let response = world.exchange("web", &exchange_body(&code, None)).await;
    assert_eq!(error_of(&response), (400, "invalid_grant".to_owned()));
    // A confidential client registered --pkce optional sends neither.
    let mut legacy = client("legacy", &[GrantType::AuthorizationCode]);
    legacy.pkce_required = false;
    world.store.put_client(legacy);
    let (code, _) = world.mint(granted("legacy", None)).await;
    let response = world.exchange("legacy", &exchange_body(&code, None)).await;
    assert_eq!(response.status, 200, "{}", response.body);
}

#[tokio::test]
async fn the_code_is_bound_to_its_client_and_redirect_uri() {
    let world = world();
    let (code, _) = world
        .mint(granted("web", Some(challenge_of(VERIFIER))))
        .await;
    let other_uri = exchange_body(&code, Some(VERIFIER)).replace("%2Fcb", "%2Fother");
    let response = world.exchange("web", &other_uri).await;
    assert_eq!(error_of(&response), (400, "invalid_grant".to_owned()));
    let missing = format!("grant_type=authorization_code&code={code}&code_verifier={VERIFIER}");
    let response = world.exchange("web", &missing).await;
    assert_eq!(error_of(&response), (400, "invalid_request".to_owned()));
    // Another client cannot redeem it.
    let (code, _) = world
        .mint(granted("web", Some(challenge_of(VERIFIER))))
        .await;
    world
        .store
        .put_client(client("app2", &[GrantType::AuthorizationCode]));
    let response = world
        .exchange("app2", &exchange_body(&code, Some(VERIFIER)))
        .await;
    assert_eq!(error_of(&response), (400, "invalid_grant".to_owned()));
}

#[tokio::test]
async fn an_expired_or_unknown_code_is_invalid_grant() {
    let world = world();
    let mut grant = granted("web", Some(challenge_of(VERIFIER)));
    grant.code_hash = shared::authorize::code::code_hash("stale-code");
    grant.exp = shared::now_epoch() - 1;
    world.store.store_code(&grant).await.unwrap();
    for code in ["stale-code", "never-issued"] {
        let response = world
            .exchange("web", &exchange_body(code, Some(VERIFIER)))
            .await;
        assert_eq!(
            error_of(&response),
            (400, "invalid_grant".to_owned()),
            "{code}"
        );
    }
}

#[tokio::test]
async fn a_public_client_presents_only_its_id_and_only_for_its_grants() {
    let world = world();
    let (code, _) = world
        .mint(granted("spa", Some(challenge_of(VERIFIER))))
        .await;
    let response = world
        .exchange("spa", &exchange_body(&code, Some(VERIFIER)))
        .await;
    assert_eq!(response.status, 200, "{}", response.body);
    assert!(
        json_of(&response).get("refresh_token").is_none(),
        "spa has no refresh_token grant"
    );
    // SPEC §4: a public client may use only authorization_code and refresh_token, whatever
    // its registration lists.
    let response = world
        .token
        .handle(&form("grant_type=client_credentials&client_id=spa", &[]))
        .await;
    assert_eq!(error_of(&response), (400, "unauthorized_client".to_owned()));
    // A confidential client cannot leave its secret out.
    let (code, _) = world
        .mint(granted("web", Some(challenge_of(VERIFIER))))
        .await;
    let response = world
        .token
        .handle(&form(
            &format!("{}&client_id=web", exchange_body(&code, Some(VERIFIER))),
            &[],
        ))
        .await;
    assert_eq!(error_of(&response), (401, "invalid_client".to_owned()));
}

#[tokio::test]
async fn a_public_clients_id_alone_does_not_open_introspection() {
    let world = world();
    let (code, _) = world
        .mint(granted("spa", Some(challenge_of(VERIFIER))))
        .await;
    let tokens = json_of(
        &world
            .exchange("spa", &exchange_body(&code, Some(VERIFIER)))
            .await,
    );
    let access = tokens["access_token"].as_str().unwrap();
    // RFC 7662 §2.1: anyone can name a public client, so that is no authorization to scan.
    let introspect = post(
        "/oauth/v2/tokeninfo",
        "application/x-www-form-urlencoded",
        &format!("client_id=spa&token={access}"),
        &[],
    );
    let response = world.tokeninfo.handle(&introspect).await;
    assert_eq!(error_of(&response), (401, "invalid_client".to_owned()));
    assert!(!response.body.contains("active"), "{}", response.body);
}

#[tokio::test]
async fn a_reuse_seen_before_the_first_exchange_finished_still_revokes_its_family() {
    use shared::storage::RefreshFamilies;

    let world = world();
    let (code, record) = world
        .mint(granted("web", Some(challenge_of(VERIFIER))))
        .await;
    // The first exchange has consumed the code but not yet created its family...
    world
        .store
        .redeem_code(
            &shared::authorize::code::code_hash(&code),
            shared::now_epoch(),
        )
        .await
        .unwrap();
    // ...when the second use arrives: refused, and the family is written revoked.
    let second = world
        .exchange("web", &exchange_body(&code, Some(VERIFIER)))
        .await;
    assert_eq!(error_of(&second), (400, "invalid_grant".to_owned()));
    let buried = world.store.family_snapshot(&record.family_id).unwrap();
    assert!(buried.revoked);
    // The first exchange's create then finds it taken, and what it issues is dead.
    let mut family = buried.clone();
    family.revoked = false;
    assert!(world.store.create_family(&family, 0).await.is_err());
}
