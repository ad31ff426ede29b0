//! Browser sign-in in-process (SPEC §12): the authorization endpoint, the login form, the
//! session cookie and the consent step, then the code exchange at the token endpoint. The real
//! browser and relying-party libraries test the same through the binaries (tests/e2e).

mod support;

use shared::authorize::pkce::challenge_of;
use shared::endpoints::authorize::{AuthorizeService, LOGOUT_PATH, SESSION_COOKIE};
use shared::endpoints::token::TokenService;
use shared::endpoints::tokeninfo::TokenInfoService;
use shared::http::{ApiRequest, ApiResponse};
use shared::keys::Alg;
use shared::storage::memory::MemoryStore;
use shared::storage::{Counted, GrantType};
use support::*;

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const AFTER_LOGOUT: &str = "https://app.example.com/bye";

struct World {
    authorize: AuthorizeService<MemoryStore, StaticKeys>,
    token: TokenService<MemoryStore, StaticKeys>,
    tokeninfo: TokenInfoService<MemoryStore, StaticKeys>,
    store: MemoryStore,
}

fn world() -> World {
    let store = shared::testing::store(password_hash());
    let mut web = client(
        "web",
        &[GrantType::AuthorizationCode, GrantType::RefreshToken],
    );
    web.allowed_scopes.push("offline_access".into());
    web.post_logout_redirect_uris = vec![AFTER_LOGOUT.into()];
    store.put_client(web);
    let mut asks = client("asks", &[GrantType::AuthorizationCode]);
    asks.consent = true;
    asks.name = "Asks First".into();
    store.put_client(asks);
    World {
        authorize: AuthorizeService::new(config(Alg::Es256, &[]), store.clone(), all_keys()),
        token: TokenService::new(config(Alg::Es256, &[]), store.clone(), all_keys()),
        tokeninfo: tokeninfo_service(Alg::Es256, store.clone()),
        store,
    }
}

fn authorize_url(client_id: &str, extra: &str) -> ApiRequest {
    authorize_scoped(client_id, "openid%20email", extra)
}

fn authorize_scoped(client_id: &str, scope: &str, extra: &str) -> ApiRequest {
    let query = format!(
        "response_type=code&client_id={client_id}&redirect_uri={}&scope={scope}&state=st%3D1&nonce=n1&code_challenge={}&code_challenge_method=S256{extra}",
        form_urlencoded::byte_serialize(REDIRECT_URI.as_bytes()).collect::<String>(),
        challenge_of(VERIFIER)
    );
    ApiRequest {
        method: http::Method::GET,
        path: "/oauth/v2/authorize".into(),
        query: Some(query),
        domain_name: Some("id.example.com".into()),
        ..ApiRequest::default()
    }
}

fn with_cookie(mut request: ApiRequest, cookie: Option<&str>) -> ApiRequest {
    if let Some(cookie) = cookie {
        request.headers.insert(
            "cookie",
            format!("other=1; {SESSION_COOKIE}={cookie}")
                .parse()
                .unwrap(),
        );
    }
    request
}

/// The consent page's form, answered `decision`, from the browser holding `cookie`.
fn decision(consent: &ApiResponse, cookie: &str, decision: &str) -> ApiRequest {
    let body = format!(
        "transaction={}&csrf_token={}&decision={decision}",
        hidden(consent, "transaction"),
        hidden(consent, "csrf_token")
    );
    let mut request = post(
        "/oauth/v2/authorize/consent",
        "application/x-www-form-urlencoded",
        &body,
        &[("sec-fetch-site", "same-origin")],
    );
    request.headers.insert(
        "cookie",
        format!("{SESSION_COOKIE}={cookie}").parse().unwrap(),
    );
    request
}

fn cookie_of(response: &ApiResponse) -> String {
    let set = response
        .header_value("set-cookie")
        .expect("a session cookie");
    let value = set.split(';').next().unwrap();
    value
        .strip_prefix(&format!("{SESSION_COOKIE}="))
        .unwrap()
        .to_owned()
}

impl World {
    /// A second user, `bob` (user id `b0b`), with alice's password.
    fn add_bob(&self) {
        let mut bob = user(password_hash());
        bob.username = "bob".into();
        bob.user_id = "b0b".into();
        self.store.put_user(bob);
    }

    /// The authorization request for `client_id` (with `extra`) from the browser holding
    /// `cookie`.
    async fn authorize_in(&self, client_id: &str, extra: &str, cookie: &str) -> ApiResponse {
        let request = with_cookie(authorize_url(client_id, extra), Some(cookie));
        self.authorize.handle(&request).await
    }

    /// A full sign-in; returns the session cookie and the code.
    async fn sign_in(&self, client_id: &str) -> (String, String) {
        self.sign_in_with(authorize_url(client_id, "")).await
    }

    async fn sign_in_with(&self, request: ApiRequest) -> (String, String) {
        let page = self.authorize.handle(&request).await;
        assert_eq!(page.status, 200, "{}", page.body);
        let done = self
            .authorize
            .handle(&login_form(&page, PASSWORD, "same-origin"))
            .await;
        let cookie = cookie_of(&done);
        let params = redirected(&done);
        (cookie, params["code"].clone())
    }

    async fn exchange(&self, code: &str) -> ApiResponse {
        let body = format!(
            "grant_type=authorization_code&code={code}&redirect_uri={}&code_verifier={VERIFIER}",
            form_urlencoded::byte_serialize(REDIRECT_URI.as_bytes()).collect::<String>()
        );
        self.token
            .handle(&form(
                &body,
                &[("authorization", &basic("web", CLIENT_SECRET))],
            ))
            .await
    }

    /// The tokens of a code: (access, refresh, id_token).
    async fn tokens(&self, code: &str) -> (String, String, String) {
        let tokens = json_of(&self.exchange(code).await);
        let field = |name: &str| tokens[name].as_str().unwrap().to_owned();
        (
            field("access_token"),
            field("refresh_token"),
            field("id_token"),
        )
    }

    async fn refresh(&self, refresh_token: &str) -> ApiResponse {
        self.token
            .handle(&form(
                &format!("grant_type=refresh_token&refresh_token={refresh_token}"),
                &[("authorization", &basic("web", CLIENT_SECRET))],
            ))
            .await
    }

    async fn active(&self, access_token: &str) -> bool {
        let request = post(
            "/oauth/v2/tokeninfo",
            "application/x-www-form-urlencoded",
            &format!("token={access_token}"),
            &[("authorization", &basic("web", CLIENT_SECRET))],
        );
        json_of(&self.tokeninfo.handle(&request).await)["active"] == true
    }

    async fn silent(&self, cookie: &str) -> std::collections::HashMap<String, String> {
        let request = with_cookie(authorize_url("web", "&prompt=none"), Some(cookie));
        redirected(&self.authorize.handle(&request).await)
    }
}

fn logout(method: http::Method, params: &str, cookie: Option<&str>) -> ApiRequest {
    let mut request = ApiRequest {
        method: method.clone(),
        path: LOGOUT_PATH.into(),
        domain_name: Some("id.example.com".into()),
        ..ApiRequest::default()
    };
    if method == http::Method::POST {
        request.body = params.as_bytes().to_vec();
        request.headers.insert(
            "content-type",
            "application/x-www-form-urlencoded".parse().unwrap(),
        );
        request
            .headers
            .insert("sec-fetch-site", "same-origin".parse().unwrap());
    } else {
        request.query = Some(params.to_owned());
    }
    with_cookie(request, cookie)
}

fn encoded(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

#[tokio::test]
async fn a_user_signs_in_through_the_login_page_and_the_code_gets_tokens() {
    let world = world();
    let page = world
        .authorize
        .handle(&authorize_url("web", "&login_hint=alice"))
        .await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains(r#"autocomplete="current-password""#));
    assert_eq!(page.header_value("x-frame-options"), Some("DENY"));
    let done = world
        .authorize
        .handle(&login_form(&page, PASSWORD, "same-origin"))
        .await;
    let params = redirected(&done);
    assert_eq!(params["state"], "st=1", "state echoed exactly");
    assert_eq!(params["iss"], ISSUER, "RFC 9207");
    let set_cookie = done.header_value("set-cookie").unwrap();
    for attribute in ["Secure", "HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    assert!(set_cookie.starts_with("__Host-"));
    let tokens = world.exchange(&params["code"]).await;
    assert_eq!(tokens.status, 200, "{}", tokens.body);
    let id_token = claims_of(json_of(&tokens)["id_token"].as_str().unwrap());
    assert_eq!(id_token["nonce"], "n1");
    assert_eq!(id_token["sub"], USER_ID);
}

#[tokio::test]
async fn prompt_none_uses_the_session_or_answers_login_required() {
    let world = world();
    let without = world
        .authorize
        .handle(&authorize_url("web", "&prompt=none"))
        .await;
    assert_eq!(redirected(&without)["error"], "login_required");
    let (cookie, _) = world.sign_in("web").await;
    let silent = world
        .authorize
        .handle(&with_cookie(
            authorize_url("web", "&prompt=none"),
            Some(&cookie),
        ))
        .await;
    let params = redirected(&silent);
    assert!(params.contains_key("code"), "{params:?}");
    assert_eq!(world.exchange(&params["code"]).await.status, 200);
    // max_age=0 and prompt=login ask again; with prompt=none that is login_required.
    for extra in ["&max_age=0", "&prompt=login"] {
        let again = world
            .authorize
            .handle(&with_cookie(authorize_url("web", extra), Some(&cookie)))
            .await;
        assert_eq!(again.status, 200, "{extra}: the login page");
    }
    let stale = world
        .authorize
        .handle(&with_cookie(
            authorize_url("web", "&prompt=none&max_age=0"),
            Some(&cookie),
        ))
        .await;
    assert_eq!(redirected(&stale)["error"], "login_required");
}

#[tokio::test]
async fn a_failed_login_shows_the_form_again_and_counts_like_the_password_grant() {
    let world = world();
    let page = world.authorize.handle(&authorize_url("web", "")).await;
    let failed = world
        .authorize
        .handle(&login_form(&page, "wrong", "same-origin"))
        .await;
    assert_eq!(failed.status, 200);
    assert!(failed.body.contains("role=\"alert\""));
    assert!(
        !failed.body.contains("wrong"),
        "the password is never echoed"
    );
    assert_eq!(world.store.failures_recorded(Counted::User(USERNAME)), 1);
    // The same transaction still completes.
    let done = world
        .authorize
        .handle(&login_form(&failed, PASSWORD, "same-origin"))
        .await;
    assert!(redirected(&done).contains_key("code"));
    assert_eq!(world.store.failures_recorded(Counted::User(USERNAME)), 0);
}

#[tokio::test]
async fn a_form_without_its_csrf_token_or_from_another_site_signs_nobody_in() {
    let world = world();
    let page = world.authorize.handle(&authorize_url("web", "")).await;
    let cross_site = world
        .authorize
        .handle(&login_form(&page, PASSWORD, "cross-site"))
        .await;
    assert_eq!(cross_site.status, 400);
    assert!(cross_site.header_value("set-cookie").is_none());
    let mut forged = login_form(&page, PASSWORD, "same-origin");
    let body = String::from_utf8(forged.body.clone()).unwrap();
    forged.body = body
        .replace(&hidden(&page, "csrf_token"), "forged")
        .into_bytes();
    let refused = world.authorize.handle(&forged).await;
    assert_eq!(refused.status, 400);
    assert!(refused.header_value("set-cookie").is_none());
    // The real form still works once, and only once.
    let done = world
        .authorize
        .handle(&login_form(&page, PASSWORD, "same-origin"))
        .await;
    assert_eq!(done.status, 303);
    let replay = world
        .authorize
        .handle(&login_form(&page, PASSWORD, "same-origin"))
        .await;
    assert_eq!(replay.status, 400);
}

#[tokio::test]
async fn two_tabs_sign_in_independently() {
    let world = world();
    let first = world.authorize.handle(&authorize_url("web", "")).await;
    let second = world.authorize.handle(&authorize_url("web", "")).await;
    assert_ne!(
        hidden(&first, "transaction"),
        hidden(&second, "transaction")
    );
    let done_second = world
        .authorize
        .handle(&login_form(&second, PASSWORD, "same-origin"))
        .await;
    let done_first = world
        .authorize
        .handle(&login_form(&first, PASSWORD, "same-origin"))
        .await;
    assert!(redirected(&done_second).contains_key("code"));
    assert!(redirected(&done_first).contains_key("code"));
}

#[tokio::test]
async fn consent_is_asked_once_and_remembered() {
    let world = world();
    let page = world.authorize.handle(&authorize_url("asks", "")).await;
    let consent = world
        .authorize
        .handle(&login_form(&page, PASSWORD, "same-origin"))
        .await;
    assert_eq!(consent.status, 200);
    assert!(consent.body.contains("Asks First"));
    let cookie = cookie_of(&consent);
    // prompt=none before consent was given: consent_required.
    let silent = world
        .authorize
        .handle(&with_cookie(
            authorize_url("asks", "&prompt=none"),
            Some(&cookie),
        ))
        .await;
    assert_eq!(redirected(&silent)["error"], "consent_required");
    let allowed = world
        .authorize
        .handle(&decision(&consent, &cookie, "allow"))
        .await;
    assert!(redirected(&allowed).contains_key("code"));
    let silent = world
        .authorize
        .handle(&with_cookie(
            authorize_url("asks", "&prompt=none"),
            Some(&cookie),
        ))
        .await;
    assert!(redirected(&silent).contains_key("code"), "remembered");
}

#[tokio::test]
async fn the_user_may_deny() {
    let world = world();
    let page = world.authorize.handle(&authorize_url("asks", "")).await;
    let consent = world
        .authorize
        .handle(&login_form(&page, PASSWORD, "same-origin"))
        .await;
    let cookie = cookie_of(&consent);
    let denied = world
        .authorize
        .handle(&decision(&consent, &cookie, "deny"))
        .await;
    assert_eq!(redirected(&denied)["error"], "access_denied");
}

#[tokio::test]
async fn an_unregistered_redirect_is_a_page_never_a_redirect() {
    let world = world();
    let mut request = authorize_url("web", "");
    request.query = request
        .query
        .map(|q| q.replace("app.example.com", "evil.example"));
    let page = world.authorize.handle(&request).await;
    assert_eq!(page.status, 400);
    assert!(page.header_value("location").is_none());
    let unknown = authorize_url("nobody", "");
    assert_eq!(world.authorize.handle(&unknown).await.status, 400);
}

#[tokio::test]
async fn logout_with_a_hint_ends_the_session_and_what_was_signed_in_under_it() {
    let world = world();
    let (cookie, code) = world.sign_in("web").await;
    let (access, refresh, id_token) = world.tokens(&code).await;
    // A second sign-in of the session whose code is not exchanged before the logout.
    let pending = world.silent(&cookie).await["code"].clone();
    let query = format!(
        "id_token_hint={id_token}&post_logout_redirect_uri={}&state=bye%3D1",
        encoded(AFTER_LOGOUT)
    );
    let out = world
        .authorize
        .handle(&logout(http::Method::GET, &query, Some(&cookie)))
        .await;
    assert_eq!(out.status, 303, "{}", out.body);
    assert_eq!(
        out.header_value("location"),
        Some(format!("{AFTER_LOGOUT}?state=bye%3D1").as_str()),
        "state echoed"
    );
    let cleared = out.header_value("set-cookie").unwrap();
    assert!(
        cleared.starts_with(&format!("{SESSION_COOKIE}=;")),
        "{cleared}"
    );
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    // The session is gone, and so is everything signed in under it.
    assert_eq!(world.silent(&cookie).await["error"], "login_required");
    assert!(
        !world.active(&access).await,
        "access token revoked with its family"
    );
    assert_eq!(
        json_of(&world.refresh(&refresh).await)["error"],
        "invalid_grant"
    );
    let (late_access, late_refresh, _) = world.tokens(&pending).await;
    assert!(
        !world.active(&late_access).await,
        "a code of the ended session issues nothing live"
    );
    assert_eq!(
        json_of(&world.refresh(&late_refresh).await)["error"],
        "invalid_grant"
    );
}

#[tokio::test]
async fn offline_access_outlives_the_session() {
    let world = world();
    let (cookie, code) = world
        .sign_in_with(authorize_scoped("web", "openid%20offline_access", ""))
        .await;
    let (access, refresh, id_token) = world.tokens(&code).await;
    let out = world
        .authorize
        .handle(&logout(
            http::Method::GET,
            &format!("id_token_hint={id_token}"),
            Some(&cookie),
        ))
        .await;
    assert_eq!(out.status, 200, "the signed-out page");
    assert!(out.body.contains("signed out"), "{}", out.body);
    assert!(world.active(&access).await, "OIDC Core §11");
    assert_eq!(world.refresh(&refresh).await.status, 200);
}

#[tokio::test]
async fn logout_without_a_hint_asks_the_user_first() {
    let world = world();
    let (cookie, code) = world.sign_in("web").await;
    let (access, _, _) = world.tokens(&code).await;
    let query = format!(
        "client_id=web&post_logout_redirect_uri={}&state=s",
        encoded(AFTER_LOGOUT)
    );
    let asked = world
        .authorize
        .handle(&logout(http::Method::GET, &query, Some(&cookie)))
        .await;
    assert_eq!(asked.status, 200);
    assert!(
        asked.body.contains(&format!("action=\"{LOGOUT_PATH}\"")),
        "{}",
        asked.body
    );
    assert!(
        world.silent(&cookie).await.contains_key("code"),
        "nothing ended yet"
    );
    // A forged confirmation (no token, or another's) ends nothing.
    for csrf in ["", "&csrf_token=forged"] {
        let forged = world
            .authorize
            .handle(&logout(
                http::Method::POST,
                &format!("{query}{csrf}"),
                Some(&cookie),
            ))
            .await;
        assert_eq!(forged.status, 200, "asked again");
        assert!(world.active(&access).await);
    }
    let confirm = format!(
        "{query}&csrf_token={}",
        encoded(&hidden(&asked, "csrf_token"))
    );
    let mut cross_site = logout(http::Method::POST, &confirm, Some(&cookie));
    cross_site
        .headers
        .insert("sec-fetch-site", "cross-site".parse().unwrap());
    assert_eq!(
        world.authorize.handle(&cross_site).await.status,
        200,
        "asked again"
    );
    assert!(world.active(&access).await);
    let out = world
        .authorize
        .handle(&logout(http::Method::POST, &confirm, Some(&cookie)))
        .await;
    assert_eq!(out.status, 303, "{}", out.body);
    assert_eq!(
        out.header_value("location"),
        Some(format!("{AFTER_LOGOUT}?state=s").as_str())
    );
    assert!(!world.active(&access).await);
    assert_eq!(world.silent(&cookie).await["error"], "login_required");
}

#[tokio::test]
async fn a_logout_link_that_does_not_check_out_is_a_page() {
    let world = world();
    let (cookie, code) = world.sign_in("web").await;
    let (access, _, id_token) = world.tokens(&code).await;
    let mut tampered = id_token.clone();
    tampered.pop();
    tampered.push(if id_token.ends_with('A') { 'B' } else { 'A' });
    let bad = [
        // not registered for the client
        format!(
            "client_id=web&post_logout_redirect_uri={}",
            encoded("https://evil.example/")
        ),
        // no client named, so no URI can be checked
        format!("post_logout_redirect_uri={}", encoded(AFTER_LOGOUT)),
        // a hint we did not sign, an access token as the hint, a hint of another client
        format!("id_token_hint={tampered}"),
        format!("id_token_hint={access}"),
        format!("id_token_hint={id_token}&client_id=asks"),
        "client_id=web&client_id=web".to_owned(),
    ];
    for query in bad {
        let page = world
            .authorize
            .handle(&logout(http::Method::GET, &query, Some(&cookie)))
            .await;
        assert_eq!(page.status, 400, "{query}");
        assert!(page.header_value("location").is_none(), "{query}");
        assert!(page.header_value("set-cookie").is_none(), "{query}");
    }
    assert!(world.active(&access).await, "nothing ended");
    assert!(world.silent(&cookie).await.contains_key("code"));
}

#[tokio::test]
async fn another_users_hint_does_not_end_this_session_unasked() {
    let world = world();
    let (cookie, code) = world.sign_in("web").await;
    let (access, _, _) = world.tokens(&code).await;
    // An id_token of someone else (bob, in another browser): ours, but not this session's user.
    world.add_bob();
    let page = world.authorize.handle(&authorize_url("web", "")).await;
    let done = world
        .authorize
        .handle(&login_form_as(&page, "bob", PASSWORD, "same-origin"))
        .await;
    let (_, _, theirs) = world.tokens(&redirected(&done)["code"]).await;
    assert_eq!(claims_of(&theirs)["sub"], "b0b");
    let asked = world
        .authorize
        .handle(&logout(
            http::Method::GET,
            &format!("id_token_hint={theirs}"),
            Some(&cookie),
        ))
        .await;
    assert_eq!(asked.status, 200);
    assert!(asked.body.contains("csrf_token"), "the confirmation page");
    assert!(world.active(&access).await);
}

#[tokio::test]
async fn a_consent_form_is_answered_only_by_the_session_it_was_shown_to() {
    let world = world();
    // Alice signs in to the consent client and is shown its consent form.
    let page = world.authorize.handle(&authorize_url("asks", "")).await;
    let alices_form = world
        .authorize
        .handle(&login_form(&page, PASSWORD, "same-origin"))
        .await;
    assert!(alices_form.body.contains("Asks First"));
    // Bob has a session of his own in another browser.
    world.add_bob();
    let page = world.authorize.handle(&authorize_url("web", "")).await;
    let bobs = cookie_of(
        &world
            .authorize
            .handle(&login_form_as(&page, "bob", PASSWORD, "same-origin"))
            .await,
    );
    // Alice's form posted with Bob's cookie gets no code, for either of them.
    let crossed = world
        .authorize
        .handle(&decision(&alices_form, &bobs, "allow"))
        .await;
    let params = redirected(&crossed);
    assert_eq!(params["error"], "login_required", "{params:?}");
    assert!(!params.contains_key("code"));
}

#[tokio::test]
async fn signing_in_again_keeps_what_the_old_session_signed_in_under_logout() {
    let world = world();
    let (cookie, code) = world.sign_in("web").await;
    let (access, refresh, _) = world.tokens(&code).await;
    // prompt=login in the same browser: a new session replaces the old one.
    let page = world.authorize_in("web", "&prompt=login", &cookie).await;
    let relogin = with_cookie(login_form(&page, PASSWORD, "same-origin"), Some(&cookie));
    let done = world.authorize.handle(&relogin).await;
    let new_cookie = cookie_of(&done);
    assert_ne!(new_cookie, cookie);
    let (_, _, id_token) = world.tokens(&redirected(&done)["code"]).await;
    // The refresh token from before the re-login still works until logout...
    let refreshed = world.refresh(&refresh).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.body);
    let refresh = json_of(&refreshed)["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = world
        .authorize
        .handle(&logout(
            http::Method::GET,
            &format!("id_token_hint={id_token}"),
            Some(&new_cookie),
        ))
        .await;
    assert_eq!(out.status, 200, "{}", out.body);
    // ...and logout of the new session revokes it too.
    assert!(!world.active(&access).await);
    assert_eq!(world.refresh(&refresh).await.status, 400);
}

#[tokio::test]
async fn a_password_change_elsewhere_sends_the_browser_to_the_login_page_not_an_error() {
    let world = world();
    let (cookie, _) = world.sign_in("web").await;
    let mut changed = shared::testing::user(password_hash());
    changed.credentials_changed_at = shared::now_epoch() + 5;
    world.store.put_user(changed);
    // prompt=none cannot show a page: login_required, and the stale session is forgotten.
    let silent = world.authorize_in("web", "&prompt=none", &cookie).await;
    assert_eq!(redirected(&silent)["error"], "login_required");
    let cleared = silent
        .header_value("set-cookie")
        .expect("the cookie cleared");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    // Without prompt the user is asked to sign in again (OIDC Core §3.1.2.6).
    let page = world.authorize_in("web", "", &cookie).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("name=\"password\""), "{}", page.body);
}

/// The request a browser makes when it follows `redirect` (a 303 to a path of ours).
fn followed(redirect: &ApiResponse, cookie: Option<&str>) -> ApiRequest {
    assert_eq!(redirect.status, 303, "{}", redirect.body);
    let location = redirect.header_value("location").unwrap();
    let (url, query) = location.split_once('?').unwrap();
    let path = url.strip_prefix("https://id.example.com").unwrap();
    let request = ApiRequest {
        method: http::Method::GET,
        path: path.into(),
        query: Some(query.into()),
        domain_name: Some("id.example.com".into()),
        ..ApiRequest::default()
    };
    with_cookie(request, cookie)
}

#[tokio::test]
async fn a_cross_site_post_to_logout_is_answered_as_the_get_it_becomes() {
    let world = world();
    let (cookie, code) = world.sign_in("web").await;
    let (access, _, id_token) = world.tokens(&code).await;
    let body = format!(
        "id_token_hint={id_token}&post_logout_redirect_uri={}&state=bye",
        encoded(AFTER_LOGOUT)
    );
    // An app's form POST from its own site: the SameSite=Lax cookie stays behind.
    let mut cross_site = logout(http::Method::POST, &body, None);
    cross_site
        .headers
        .insert("sec-fetch-site", "cross-site".parse().unwrap());
    let again = world.authorize.handle(&cross_site).await;
    // Nothing is decided without the cookie: the same parameters again, as a GET...
    assert!(
        again
            .header_value("location")
            .unwrap()
            .starts_with(&format!(
                "https://id.example.com{LOGOUT_PATH}?id_token_hint="
            )),
        "{:?}",
        again.header_value("location")
    );
    assert!(world.active(&access).await);
    // ...which the browser sends with its cookie, and which ends the session.
    let out = world
        .authorize
        .handle(&followed(&again, Some(&cookie)))
        .await;
    assert_eq!(
        out.header_value("location"),
        Some(format!("{AFTER_LOGOUT}?state=bye").as_str())
    );
    assert!(!world.active(&access).await);
    assert!(world.silent(&cookie).await.contains_key("error"));
}

#[tokio::test]
async fn a_cross_site_post_to_authorize_sees_the_session_through_the_get() {
    let world = world();
    let (cookie, _) = world.sign_in("web").await;
    let get = authorize_url("web", "&prompt=none");
    let body = get.query.clone().unwrap();
    let without_cookie = post(
        "/oauth/v2/authorize",
        "application/x-www-form-urlencoded",
        &body,
        &[("sec-fetch-site", "cross-site")],
    );
    let again = world.authorize.handle(&without_cookie).await;
    let silent = world
        .authorize
        .handle(&followed(&again, Some(&cookie)))
        .await;
    assert!(redirected(&silent).contains_key("code"), "{silent:?}");
    // A POST that carries the cookie is answered at once.
    let with = with_cookie(without_cookie, Some(&cookie));
    assert!(redirected(&world.authorize.handle(&with).await).contains_key("code"));
}

#[tokio::test]
async fn whoever_signs_in_must_be_the_user_the_id_token_hint_names() {
    let world = world();
    let (_, code) = world.sign_in("web").await;
    let (_, _, alices) = world.tokens(&code).await;
    world.add_bob();
    // A fresh browser, a request hinting alice: bob signs in on the page...
    let hinted = authorize_url("web", &format!("&id_token_hint={alices}"));
    let page = world.authorize.handle(&hinted).await;
    let done = world
        .authorize
        .handle(&login_form_as(&page, "bob", PASSWORD, "same-origin"))
        .await;
    // ...and the client gets login_required, not a code for bob (OIDC Core §3.1.2.1).
    let params = redirected(&done);
    assert_eq!(params["error"], "login_required", "{params:?}");
    assert!(!params.contains_key("code"));
    // alice herself gets her code.
    let page = world.authorize.handle(&hinted).await;
    let done = world
        .authorize
        .handle(&login_form(&page, PASSWORD, "same-origin"))
        .await;
    assert!(redirected(&done).contains_key("code"));
}
