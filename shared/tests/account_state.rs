//! Account, client and session state that cannot be outrun (issue #11), in-process: the token
//! and tokeninfo services over one in-memory store, which the tests change the way an admin
//! command (or a cleanup it missed) would.

mod support;

use shared::endpoints::token::TokenService;
use shared::endpoints::tokeninfo::TokenInfoService;
use shared::keys::Alg;
use shared::storage::memory::MemoryStore;
use shared::storage::{Counted, FailureCounters, GrantType};
use support::*;

struct World {
    token: TokenService<MemoryStore, StaticKeys>,
    tokeninfo: TokenInfoService<MemoryStore, StaticKeys>,
    store: MemoryStore,
}

fn world() -> World {
    let store = shared::testing::store(password_hash());
    // `cc_only` has the password grant but no refresh_token: its user tokens carry no `sid`.
    store.put_client(client("cc_only", &[GrantType::Password]));
    World {
        token: TokenService::new(config(Alg::Es256, &[]), store.clone(), all_keys()),
        tokeninfo: TokenInfoService::new(config(Alg::Es256, &[]), store.clone(), all_keys()),
        store,
    }
}

fn app_auth() -> [(&'static str, String); 1] {
    [("authorization", basic("app", CLIENT_SECRET))]
}

fn headers<'a>(pairs: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    pairs.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

impl World {
    async fn password_login(&self, client_id: &str, scope: &str) -> serde_json::Value {
        let body = format!(
            "grant_type=password&username={USERNAME}&password={}&scope={scope}",
            PASSWORD.replace(' ', "+")
        );
        let auth = [("authorization", basic(client_id, CLIENT_SECRET))];
        let response = self.token.handle(&form(&body, &headers(&auth))).await;
        assert_eq!(response.status, 200, "{}", response.body);
        json_of(&response)
    }

    async fn refresh(&self, refresh_token: &str) -> shared::http::ApiResponse {
        let body = format!("grant_type=refresh_token&refresh_token={refresh_token}");
        self.token.handle(&form(&body, &headers(&app_auth()))).await
    }

    async fn introspect(&self, token: &str) -> serde_json::Value {
        let request = post(
            "/oauth/v2/tokeninfo",
            "application/x-www-form-urlencoded",
            &format!("token={token}"),
            &headers(&app_auth()),
        );
        let response = self.tokeninfo.handle(&request).await;
        assert_eq!(response.status, 200, "{}", response.body);
        json_of(&response)
    }

    async fn userinfo(&self, access_token: &str) -> shared::http::ApiResponse {
        let mut request = post("/oauth/v2/userinfo", "text/plain", "", &[]);
        request.method = http::Method::GET;
        request.headers.insert(
            "authorization",
            format!("Bearer {access_token}").parse().unwrap(),
        );
        self.tokeninfo.handle(&request).await
    }

    fn change_user(&self, change: impl FnOnce(&mut shared::storage::User)) {
        let mut user = shared::testing::user(password_hash());
        change(&mut user);
        self.store.put_user(user);
    }
}

fn error_of(response: &shared::http::ApiResponse) -> (u16, String) {
    (
        response.status,
        json_of(response)["error"].as_str().unwrap_or("").to_owned(),
    )
}

fn str_of<'a>(value: &'a serde_json::Value, key: &str) -> &'a str {
    value[key].as_str().unwrap()
}

#[tokio::test]
async fn refresh_refuses_when_the_user_changed_since_login() {
    type Change = fn(&mut shared::storage::User);
    let changes: [(&str, Change); 3] = [
        ("disabled", |u| u.enabled = false),
        ("password set after login", |u| {
            u.credentials_changed_at = shared::now_epoch() + 5
        }),
        ("another user under the name", |u| {
            u.user_id = "0d9b8a7c-0000-4000-8000-000000000000".into()
        }),
    ];
    for (what, change) in changes {
        let world = world();
        let login = world.password_login("app", "openid").await;
        if what == "another user under the name" {
            // `user delete` then `user create`: the old account goes with the old user.
            world.store.remove_user(USERNAME);
        }
        // The cleanup Scan of the admin command missed this family: the refresh must see it.
        world.change_user(change);
        let response = world.refresh(str_of(&login, "refresh_token")).await;
        assert_eq!(
            error_of(&response),
            (400, "invalid_grant".to_owned()),
            "{what}"
        );
        assert!(!response.body.contains("access_token"), "{what}");
    }
    // A deleted user.
    let world = world();
    let login = world.password_login("app", "openid").await;
    world.store.remove_user(USERNAME);
    let response = world.refresh(str_of(&login, "refresh_token")).await;
    assert_eq!(error_of(&response), (400, "invalid_grant".to_owned()));
}

#[tokio::test]
async fn refresh_follows_the_client_as_it_is_now() {
    let world = world();
    let login = world.password_login("app", "read%20write").await;
    // The client may no longer have `write`: the refreshed token loses it.
    let mut narrowed = client(
        "app",
        &[
            GrantType::ClientCredentials,
            GrantType::Password,
            GrantType::RefreshToken,
        ],
    );
    narrowed.allowed_scopes.retain(|s| s != "write");
    world.store.put_client(narrowed.clone());
    let response = world.refresh(str_of(&login, "refresh_token")).await;
    assert_eq!(response.status, 200, "{}", response.body);
    let refreshed = json_of(&response);
    assert_eq!(refreshed["scope"], "read");

    // Deleted and created again under the same id: the new client inherits nothing.
    world.store.remove_client("app");
    narrowed.created_at = shared::now_epoch() + 1;
    world.store.put_client(narrowed);
    let response = world.refresh(str_of(&refreshed, "refresh_token")).await;
    assert_eq!(error_of(&response), (400, "invalid_grant".to_owned()));
}

#[tokio::test]
async fn refresh_uses_the_accounts_current_claims() {
    let world = world();
    let login = world.password_login("app", "openid%20email").await;
    world.change_user(|u| {
        u.claims.insert("email".into(), "alice@new.example".into());
    });
    let response = world.refresh(str_of(&login, "refresh_token")).await;
    assert_eq!(response.status, 200, "{}", response.body);
    let id_token = claims_of(str_of(&json_of(&response), "id_token"));
    assert_eq!(id_token["email"], "alice@new.example");
}

#[tokio::test]
async fn a_concurrent_burst_verifies_at_most_the_threshold() {
    // GIVEN a username one failure short of the lock (threshold 5)
    let world = world();
    for _ in 0..4 {
        world
            .store
            .increment(Counted::User(USERNAME), shared::now_epoch(), 900, true)
            .await
            .unwrap();
    }
    // WHEN a burst of wrong guesses with the right password last arrives at once
    let guess = |password: &str| {
        let body = format!(
            "grant_type=password&username={USERNAME}&password={}",
            password.replace(' ', "+")
        );
        form(&body, &headers(&app_auth()))
    };
    let mut requests: Vec<_> = (0..7).map(|i| guess(&format!("wrong {i}"))).collect();
    requests.push(guess(PASSWORD));
    let answers = futures_join_all(requests.iter().map(|r| world.token.handle(r))).await;
    // THEN only the first attempt was counted within the threshold and verified: the right
    // password, counted eighth, is refused like every wrong one. (Reading the counter before
    // verifying, as before, let every request of the burst be verified.)
    for answer in &answers {
        assert_eq!(error_of(answer), (400, "invalid_grant".to_owned()));
    }
    assert_eq!(world.store.failures_recorded(Counted::User(USERNAME)), 12);
    // AND the right password alone is still refused while locked, with the same answer
    let locked = world.token.handle(&guess(PASSWORD)).await;
    assert_eq!(locked.body, answers[0].body);
}

/// Polls every future in order on this task (a current-thread runtime): each runs until it
/// waits — here on its argon2 verification — before the next starts, so every request has
/// read the store before any has finished.
async fn futures_join_all<F: std::future::Future>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output> {
    let handles: Vec<_> = futures.map(Box::pin).collect();
    let mut pending: Vec<_> = handles.into_iter().map(Some).collect();
    let mut results: Vec<Option<F::Output>> = pending.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut done = true;
        for (slot, result) in pending.iter_mut().zip(results.iter_mut()) {
            if let Some(future) = slot {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(output) => {
                        *result = Some(output);
                        *slot = None;
                    }
                    std::task::Poll::Pending => done = false,
                }
            }
        }
        if done {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    results.into_iter().map(Option::unwrap).collect()
}

#[tokio::test]
async fn a_right_password_resets_the_count() {
    let world = world();
    world.password_login("app", "read").await;
    assert_eq!(world.store.failures_recorded(Counted::User(USERNAME)), 0);
}

#[tokio::test]
async fn access_tokens_die_with_their_family_even_once_it_is_deleted() {
    let world = world();
    let login = world.password_login("app", "openid").await;
    let access = str_of(&login, "access_token");
    assert_eq!(world.introspect(access).await["active"], true);
    let sid = claims_of(access)["sid"].as_str().unwrap().to_owned();
    // TTL deleted the family (or it never was ours): the token is inactive, not revived.
    world.store.remove_family(&sid);
    assert_eq!(
        world.introspect(access).await,
        serde_json::json!({"active": false})
    );
    assert_eq!(world.userinfo(access).await.status, 401);
}

#[tokio::test]
async fn introspection_knows_the_user_and_the_client() {
    let world = world();
    // A user token without a family (no refresh_token grant), and a client token.
    let user_token = world.password_login("cc_only", "openid").await;
    let user_access = str_of(&user_token, "access_token").to_owned();
    assert!(claims_of(&user_access).get("sid").is_none());
    let cc = world
        .token
        .handle(&form(
            "grant_type=client_credentials",
            &headers(&app_auth()),
        ))
        .await;
    let cc_access = str_of(&json_of(&cc), "access_token").to_owned();
    let introspected = world.introspect(&user_access).await;
    assert_eq!(introspected["active"], true);
    assert_eq!(introspected["username"], USERNAME, "from the account");

    world.change_user(|u| u.enabled = false);
    assert_eq!(
        world.introspect(&user_access).await["active"],
        false,
        "user disabled"
    );
    world.change_user(|_| {});
    assert_eq!(
        world.introspect(&user_access).await["active"],
        true,
        "enabled again"
    );
    world.change_user(|u| u.credentials_changed_at = shared::now_epoch() + 5);
    assert_eq!(
        world.introspect(&user_access).await["active"],
        false,
        "password set"
    );
    world.change_user(|_| {});
    world.store.remove_user(USERNAME);
    assert_eq!(
        world.introspect(&user_access).await["active"],
        false,
        "user deleted"
    );

    let mut app = client(
        "app",
        &[
            GrantType::ClientCredentials,
            GrantType::Password,
            GrantType::RefreshToken,
        ],
    );
    assert_eq!(world.introspect(&cc_access).await["active"], true);
    app.enabled = false;
    world.store.put_client(app.clone());
    // The disabled client cannot introspect either: ask as `svc`.
    let as_svc = |token: &str| {
        post(
            "/oauth/v2/tokeninfo",
            "application/x-www-form-urlencoded",
            &format!("token={token}"),
            &[("authorization", &basic("svc", CLIENT_SECRET))],
        )
    };
    let answer = world.tokeninfo.handle(&as_svc(&cc_access)).await;
    assert_eq!(answer.body, r#"{"active":false}"#, "client disabled");
    world.store.remove_client("app");
    let answer = world.tokeninfo.handle(&as_svc(&cc_access)).await;
    assert_eq!(answer.body, r#"{"active":false}"#, "client deleted");
}

#[tokio::test]
async fn access_tokens_carry_the_username_only_with_profile() {
    let world = world();
    let without = world.password_login("app", "openid").await;
    let claims = claims_of(str_of(&without, "access_token"));
    assert!(claims.get("username").is_none() && claims.get("preferred_username").is_none());
    let with = world.password_login("app", "openid%20profile").await;
    assert_eq!(
        claims_of(str_of(&with, "access_token"))["preferred_username"],
        USERNAME
    );
}

#[tokio::test]
async fn refresh_token_introspection_reports_when_the_current_token_was_issued() {
    let world = world();
    let login = world.password_login("app", "read").await;
    let sid = claims_of(str_of(&login, "access_token"))["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    let response = world.refresh(str_of(&login, "refresh_token")).await;
    let refreshed = json_of(&response);
    // Move the login back in time so the two instants differ.
    let family = world.store.family_snapshot(&sid).unwrap();
    world.store.remove_family(&sid);
    use shared::storage::RefreshFamilies;
    let mut earlier = family.clone();
    earlier.auth_time -= 100;
    world.store.create_family(&earlier, 0).await.unwrap();
    let introspected = world.introspect(str_of(&refreshed, "refresh_token")).await;
    assert_eq!(introspected["active"], true);
    assert_eq!(introspected["iat"], family.issued_at);
    assert_eq!(introspected["username"], USERNAME);
}

#[tokio::test]
async fn userinfo_without_credentials_is_a_bare_challenge() {
    let world = world();
    let mut request = post("/oauth/v2/userinfo", "text/plain", "", &[]);
    request.method = http::Method::GET;
    let response = world.tokeninfo.handle(&request).await;
    assert_eq!(response.status, 401);
    // RFC 6750 §3.1: no error code when the request had no authentication at all; both
    // schemes the resource takes (RFC 9449 §7.1).
    assert_eq!(
        response.header_value("www-authenticate"),
        Some(
            r#"Bearer realm="oauth", DPoP algs="RS256 RS384 RS512 PS256 PS384 PS512 ES256 ES384 EdDSA""#
        )
    );
    let response = world.userinfo("not-a-token").await;
    assert!(
        response
            .header_value("www-authenticate")
            .unwrap()
            .contains(r#"error="invalid_token""#)
    );
}

#[tokio::test]
async fn a_username_that_cannot_exist_is_an_unknown_user_not_a_client_failure() {
    let world = world();
    let body = format!(
        "grant_type=password&username={}&password=x",
        "u".repeat(300)
    );
    let response = world
        .token
        .handle(&form(&body, &headers(&app_auth())))
        .await;
    assert_eq!(error_of(&response), (400, "invalid_grant".to_owned()));
    assert_eq!(world.store.failures_recorded(Counted::Client("app")), 0);
}

#[tokio::test(start_paused = true)]
async fn a_request_is_answered_within_the_deadline() {
    use shared::endpoints::{REQUEST_DEADLINE, within_deadline};

    /// A key source that answers long after any caller gave up.
    #[derive(Clone)]
    struct Stalled;
    impl shared::keys::KeySource for Stalled {
        async fn load(&self) -> Result<Option<String>, shared::error::StoreError> {
            tokio::time::sleep(std::time::Duration::from_secs(60)).await;
            Ok(None)
        }
    }
    let service = TokenService::new(config(Alg::Es256, &[]), store(""), Stalled);
    let request = form("grant_type=client_credentials", &headers(&app_auth()));
    let started = tokio::time::Instant::now();
    let response = within_deadline(REQUEST_DEADLINE, service.handle(&request)).await;
    assert_eq!(
        error_of(&response),
        (503, "temporarily_unavailable".to_owned())
    );
    assert_eq!(response.header_value("retry-after"), Some("1"));
    // Virtual time: the answer came at the deadline, not after the stalled call.
    assert_eq!(started.elapsed(), REQUEST_DEADLINE);
}

/// The opt-in client cache (`CLIENT_CACHE_SECONDS`): a warm instance keeps serving a client
/// it already authenticated for up to that long, whatever an admin changed meanwhile (the
/// documented price), but never answers a refusal from it.
mod client_cache {
    use super::*;
    use shared::crypto::sha256_b64;
    use shared::storage::StoredSecret;

    const NEW_SECRET: &str = "a-second-secret-added-by-rotate-secret";

    fn cached_world(seconds: &str) -> World {
        let store = shared::testing::store(password_hash());
        let config = config(Alg::Es256, &[("CLIENT_CACHE_SECONDS", seconds)]);
        World {
            token: TokenService::new(config.clone(), store.clone(), all_keys()),
            tokeninfo: TokenInfoService::new(config, store.clone(), all_keys()),
            store,
        }
    }

    async fn machine_token(world: &World, secret: &str) -> (u16, String) {
        let auth = [("authorization", basic("app", secret))];
        let response = world
            .token
            .handle(&form("grant_type=client_credentials", &headers(&auth)))
            .await;
        let error = json_of(&response)["error"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        (response.status, error)
    }

    fn disable_app(world: &World) {
        let mut app = client("app", &[GrantType::ClientCredentials]);
        app.enabled = false;
        world.store.put_client(app);
    }

    #[tokio::test]
    async fn off_by_default_a_disabled_client_is_refused_at_once() {
        let world = cached_world("0");
        assert_eq!(machine_token(&world, CLIENT_SECRET).await.0, 200);
        disable_app(&world);
        assert_eq!(
            machine_token(&world, CLIENT_SECRET).await,
            (401, "invalid_client".to_owned())
        );
    }

    #[tokio::test]
    async fn on_a_warm_instance_serves_the_client_it_read_without_reading_again() {
        let world = cached_world("60");
        assert_eq!(machine_token(&world, CLIENT_SECRET).await.0, 200);
        // GIVEN the record gone from the store (an admin disabled or deleted it)
        world.store.remove_client("app");
        // THEN within the window the warm instance still issues (SPEC: up to the setting)
        assert_eq!(machine_token(&world, CLIENT_SECRET).await.0, 200);
        disable_app(&world);
        assert_eq!(machine_token(&world, CLIENT_SECRET).await.0, 200);
    }

    #[tokio::test]
    async fn a_refusal_is_never_answered_from_the_cache() {
        let world = cached_world("60");
        assert_eq!(machine_token(&world, CLIENT_SECRET).await.0, 200);
        // A secret added after the record was cached works at once...
        let mut app = client("app", &[GrantType::ClientCredentials]);
        app.secrets.push(StoredSecret {
            sha256: sha256_b64(NEW_SECRET.as_bytes()),
            expires_at: None,
        });
        world.store.put_client(app);
        assert_eq!(machine_token(&world, NEW_SECRET).await.0, 200);
        // ...a wrong one is refused, and the re-read it caused also ends a disabled client.
        disable_app(&world);
        assert_eq!(
            machine_token(&world, "wrong").await,
            (401, "invalid_client".to_owned())
        );
        assert_eq!(
            machine_token(&world, CLIENT_SECRET).await,
            (401, "invalid_client".to_owned())
        );
    }

    #[tokio::test]
    async fn other_grants_always_read_the_client() {
        let world = cached_world("60");
        let first = world.password_login("app", "read").await;
        assert!(first["access_token"].is_string());
        disable_app(&world);
        let response = world.refresh(str_of(&first, "refresh_token")).await;
        assert_eq!(error_of(&response).0, 401, "{}", response.body);
    }
}
