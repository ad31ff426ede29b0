"""Browser sign-in end to end with a real browser and real relying parties (issue #12,
SPEC §12): Chromium (Debian's, driven by Playwright) on the hosted login and consent pages,
Authlib's OAuth2Session and openid-client v6 as the apps, the real authorize and token
binaries behind them.

The redirect URI is the app's: a real little HTTP server on a loopback port (browser.AppServer)
that records what the browser brings back (query or form_post) and answers as the app would.
One browser for the module, a new context (cookie jar) per test. Tools:
infra/scripts/browser.sh (make test runs it).
"""

from __future__ import annotations

import dataclasses
import html
import re
import urllib.parse
import uuid

import pytest
import requests
from playwright.sync_api import expect, sync_playwright

from browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    FAILED_LOGIN,
    INSTALL_HINT,
    SESSION_COOKIE,
    AuthlibRP,
    AppServer,
    OpenIdClientRP,
    Refused,
    browser_client,
    missing_tools,
    session_cookies,
    sign_in,
)
from dpop_keys import new_key
from helpers import (
    assert_error,
    failures_counted,
    jwt_payload,
    make_client,
    make_user,
    password_token,
    user_lock_pk,
    verify_id_token,
)

LOGIN_PATH = "/oauth/v2/authorize/login"


# ---------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def chromium():
    """One headless Chromium for the module. Module, not session, scope: while Playwright's
    sync API is started, its event loop counts as running in the main thread (asyncio.run()
    raises there), so it is stopped before the next module runs."""
    missing = missing_tools()
    if missing:
        pytest.fail(f"browser tools missing ({', '.join(missing)}): {INSTALL_HINT}", pytrace=False)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def new_context(chromium):
    """Contexts (a fresh cookie jar each) with a 30 s default timeout, closed after the test."""
    opened = []

    def make(**options):
        context = chromium.new_context(**options)
        context.set_default_timeout(30_000)
        opened.append(context)
        return context

    yield make
    for context in opened:
        context.close()


@pytest.fixture
def context(new_context):
    return new_context()


@pytest.fixture
def app():
    """The app's redirect URI: a real HTTP server on a loopback port, for this test."""
    server = AppServer()
    yield server
    server.stop()


def _csp_errors(page) -> list[str]:
    """Console messages in which Chromium reports a CSP violation (a refused style or script)."""
    seen: list[str] = []
    page.on("console",
            lambda m: seen.append(m.text) if "Content Security Policy" in m.text else None)
    return seen


def _one_hop(response, authorize_url: str) -> None:
    """The browser went authorize → 303 → app: no page of ours was shown in between."""
    first = response.request.redirected_from
    assert first is not None and first.url == authorize_url, first and first.url
    assert first.redirected_from is None
    assert first.response().status == 303


# -------------------------------------------------------------------------------------- a. Authlib
def test_authlib_signs_in_through_chromium_and_gets_a_host_only_session_cookie(stack, app, context):
    # GIVEN a confidential browser client, a user, Authlib as the app and a fresh browser
    client = browser_client(stack, app)
    user = make_user(stack, claims={"email": "ada@example.org"})
    rp = AuthlibRP(stack, client)
    pending = rp.authorize()
    page = context.new_page()
    # WHEN the browser opens the authorization URL
    page.goto(pending.url)
    # THEN the login page names the client (escaped as text, not markup)
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Sign in to {client['name']}")
    expect(page).to_have_title(re.compile(re.escape(f"Sign in to {client['name']}")))
    # WHEN the user signs in with the form's labelled fields
    with page.expect_response(lambda r: r.url == stack.base_url + LOGIN_PATH) as login:
        sign_in(page, user["username"], user["password"])
    callback = app.wait(page)
    # THEN the login POST answered 303 to the app with the code, the state and iss
    assert login.value.status == 303
    assert callback.method == "GET" and callback.params["state"] == pending.state
    assert callback.params["iss"] == stack.issuer and callback.params["code"]
    # AND Authlib's exchange returns an id_token with nonce, sid and auth_time
    token = rp.exchange(pending, callback)
    assert token["token_type"] == "Bearer" and token["refresh_token"]
    claims = verify_id_token(stack, token["id_token"], client_id=client["client_id"])
    assert claims["nonce"] == pending.nonce and claims["sub"] == user["user_id"]
    assert claims["sid"] and isinstance(claims["auth_time"], int)
    assert claims["email"] == "ada@example.org"
    # AND the browser keeps one __Host- session cookie: Secure, HttpOnly, Lax, Path=/, host-only
    [cookie] = session_cookies(context)
    assert cookie["secure"] and cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    assert cookie["path"] == "/" and cookie["domain"] == "127.0.0.1"
    set_cookie = login.value.all_headers()["set-cookie"]
    assert set_cookie.startswith(SESSION_COOKIE + "=")
    attributes = [a.strip().lower() for a in set_cookie.split(";")[1:]]
    assert {"secure", "httponly", "samesite=lax", "path=/"} <= set(attributes), set_cookie
    assert not any(a.startswith("domain") for a in attributes), set_cookie


# -------------------------------------------------------------------------------- b. openid-client
def test_openid_client_signs_in_refreshes_and_reads_userinfo(stack, app, context):
    # GIVEN a confidential browser client, a user, and openid-client (discovery over http://)
    client = browser_client(stack, app)
    user = make_user(stack, claims={"email": "grace@example.org", "name": "Grace"})
    rp = OpenIdClientRP(stack, client)
    pending = rp.authorize()
    assert "code_challenge_method=S256" in pending.url
    # WHEN the user signs in through Chromium
    page = context.new_page()
    page.goto(pending.url)
    sign_in(page, user["username"], user["password"])
    callback = app.wait(page)
    # THEN openid-client refuses the response if iss is missing or another issuer's (RFC 9207,
    # advertised by discovery), before it spends the code
    parts = urllib.parse.urlsplit(callback.url)
    params = urllib.parse.parse_qsl(parts.query)
    for forged in ([(k, v) for k, v in params if k != "iss"],
                   [(k, "http://127.0.0.1:1/oauth" if k == "iss" else v) for k, v in params]):
        with pytest.raises(Refused) as refused:
            rp.callback(pending, parts._replace(query=urllib.parse.urlencode(forged)).geturl())
        assert '"iss"' in refused.value.refused["cause"]["message"], refused.value.refused
    # AND so does it when the state is not the one it sent
    with pytest.raises(Refused) as refused:
        rp.callback(dataclasses.replace(pending, state="another"), callback.url)
    assert '"state"' in refused.value.refused["cause"]["message"], refused.value.refused
    # WHEN the real response is handed over THEN authorizationCodeGrant succeeds (state, iss,
    # id_token signature, nonce all checked by the library)
    done = rp.callback(pending, callback.url)
    tokens, claims = done["tokens"], done["claims"]
    assert tokens["token_type"].lower() == "bearer" and tokens["refresh_token"]
    assert claims["sub"] == user["user_id"] and claims["nonce"] == pending.nonce
    assert claims["iss"] == stack.issuer
    assert claims["aud"] in (client["client_id"], [client["client_id"]])
    # WHEN it refreshes THEN a new access token and a rotated refresh token come back
    refreshed = rp.refresh(tokens["refresh_token"])["tokens"]
    assert refreshed["access_token"] != tokens["access_token"]
    assert refreshed["refresh_token"] and refreshed["refresh_token"] != tokens["refresh_token"]
    # WHEN it reads userinfo with the new access token THEN it is this user's
    info = rp.userinfo(refreshed["access_token"], user["user_id"])
    assert info["sub"] == user["user_id"] and info["email"] == "grace@example.org"


def test_openid_client_with_dpop_binds_a_public_clients_tokens_to_its_key(stack, app, context):
    # GIVEN a public browser client, a user, and openid-client with a DPoP key (getDPoPHandle)
    client = browser_client(stack, app, public=True)
    user = make_user(stack, claims={"email": "dpop@example.org"})
    key = new_key("ec")
    rp = OpenIdClientRP(stack, client, dpop_jwk=key.private_jwk)
    pending = rp.authorize()
    page = context.new_page()
    page.goto(pending.url)
    sign_in(page, user["username"], user["password"])
    # WHEN it exchanges the code with a proof THEN the access token is bound to its key
    tokens = rp.callback(pending, app.wait(page).url)["tokens"]
    assert tokens["token_type"].lower() == "dpop", tokens
    assert jwt_payload(tokens["access_token"])["cnf"] == {"jkt": key.jkt}
    # AND the refresh token is bound too (RFC 9449 §5): another key cannot refresh it
    stranger = OpenIdClientRP(stack, client, dpop_jwk=new_key("ed").private_jwk)
    with pytest.raises(Refused) as refused:
        stranger.refresh(tokens["refresh_token"])
    assert refused.value.refused["error"] == "invalid_grant", refused.value.refused
    # AND no key at all cannot either
    with pytest.raises(Refused) as refused:
        OpenIdClientRP(stack, client).refresh(tokens["refresh_token"])
    assert refused.value.refused["error"] == "invalid_dpop_proof", refused.value.refused
    # WHEN its own key refreshes THEN a new bound token comes back
    refreshed = rp.refresh(tokens["refresh_token"])["tokens"]
    assert refreshed["token_type"].lower() == "dpop"
    assert jwt_payload(refreshed["access_token"])["cnf"] == {"jkt": key.jkt}
    # AND userinfo answers it under the DPoP scheme (fetchUserInfo sends a proof with ath)
    info = rp.userinfo(refreshed["access_token"], user["user_id"])
    assert info["sub"] == user["user_id"] and info["email"] == "dpop@example.org"
    # AND not as a bearer token
    bearer = stack.http("GET", "/oauth/v2/userinfo",
                        headers={"Authorization": "Bearer " + refreshed["access_token"]})
    assert_error(bearer, 401, "invalid_token")


def test_a_code_is_bound_to_the_dpop_key_of_the_push_or_of_dpop_jkt(stack, app, context):
    # GIVEN a confidential browser client, a user, and openid-client with a DPoP key
    client = browser_client(stack, app)
    user = make_user(stack)
    key = new_key("ec")
    rp = OpenIdClientRP(stack, client, dpop_jwk=key.private_jwk)
    # WHEN it pushes with a DPoP proof (buildAuthorizationUrlWithPAR with its DPoP handle) and
    # the user signs in THEN its own key redeems the code and the token is bound to it
    pending = rp.authorize(par=True)
    page = context.new_page()
    page.goto(pending.url)
    sign_in(page, user["username"], user["password"])
    tokens = rp.callback(pending, app.wait(page).url)["tokens"]
    assert jwt_payload(tokens["access_token"])["cnf"] == {"jkt": key.jkt}
    # WHEN a request names the key by dpop_jkt (RFC 9449 §10) THEN another key cannot redeem
    # the code (the browser still has its session: no login page)
    pending = rp.authorize(dpop_jkt=key.jkt)
    page.goto(pending.url)
    callback_url = app.wait(page).url
    stranger = OpenIdClientRP(stack, client, dpop_jwk=new_key("ed").private_jwk)
    with pytest.raises(Refused) as refused:
        stranger.callback(pending, callback_url)
    assert refused.value.refused["error"] == "invalid_grant", refused.value.refused


def test_openid_client_signs_in_through_a_pushed_authorization_request(stack, app, context):
    # GIVEN a client that takes authorization requests only through PAR (RFC 9126), and
    # openid-client's buildAuthorizationUrlWithPAR (discovery names the PAR endpoint)
    client = browser_client(stack, app, extra_args=["--require-par"])
    user = make_user(stack, claims={"email": "par@example.org"})
    rp = OpenIdClientRP(stack, client)
    # WHEN it asks without PAR THEN the error goes back to the app, no login page
    page = context.new_page()
    page.goto(rp.authorize().url)
    back = app.wait(page).params
    assert back["error"] == "invalid_request", back
    # WHEN it pushes first THEN the URL carries only client_id and the request_uri
    pending = rp.authorize(par=True)
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(pending.url).query))
    assert set(query) == {"client_id", "request_uri"}, query
    assert query["request_uri"].startswith("urn:ietf:params:oauth:request_uri:")
    # AND the user signs in, and the code exchange checks state, nonce and PKCE as ever
    page.goto(pending.url)
    sign_in(page, user["username"], user["password"])
    done = rp.callback(pending, app.wait(page).url)
    assert done["claims"]["nonce"] == pending.nonce
    assert done["claims"]["email"] == "par@example.org"
    # AND the request_uri is spent: the same link again is an error page
    again = page.goto(pending.url)
    assert again.status == 400
    expect(page.get_by_text("expired or was already used")).to_be_visible()


# ---------------------------------------------------------------------------------- c. prompt=none
def test_prompt_none_answers_login_required_then_a_code_once_signed_in(stack, app, context):
    # GIVEN a browser client, a user and a browser with no session
    client, user = browser_client(stack, app), make_user(stack)
    rp = AuthlibRP(stack, client)
    page = context.new_page()
    # WHEN the app asks silently (prompt=none)
    silent = rp.authorize(prompt="none")
    response = page.goto(silent.url)
    # THEN the browser is sent straight back with login_required, the state and iss
    _one_hop(response, silent.url)
    back = app.wait(page).params
    assert set(back) == {"error", "error_description", "state", "iss"}, back
    assert back["error"] == "login_required" and back["state"] == silent.state
    assert back["iss"] == stack.issuer
    # WHEN the user signs in once in this browser
    first = rp.authorize()
    page.goto(first.url)
    sign_in(page, user["username"], user["password"])
    rp.exchange(first, app.wait(page))
    # AND the app asks silently again
    again = rp.authorize(prompt="none")
    response = page.goto(again.url)
    # THEN a code comes back with no page shown, and it exchanges
    _one_hop(response, again.url)
    callback = app.wait(page)
    assert callback.params["state"] == again.state and "error" not in callback.params
    token = rp.exchange(again, callback)
    assert jwt_payload(token["id_token"])["nonce"] == again.nonce


# ------------------------------------------------------------------------ d. prompt=login, max_age
def test_prompt_login_and_max_age_zero_show_the_form_a_large_max_age_does_not(stack, app, context):
    # GIVEN a user signed in once in this browser
    client, user = browser_client(stack, app), make_user(stack)
    rp = AuthlibRP(stack, client)
    page = context.new_page()
    first = rp.authorize()
    page.goto(first.url)
    sign_in(page, user["username"], user["password"])
    auth_time = jwt_payload(rp.exchange(first, app.wait(page))["id_token"])["auth_time"]
    [cookie] = session_cookies(context)

    for params in ({"prompt": "login"}, {"max_age": "0"}):
        # WHEN the app asks for a fresh login (prompt=login, or max_age=0) despite the session
        pending = rp.authorize(**params)
        page.goto(pending.url)
        # THEN the login form is shown again, and signing in starts a new session
        expect(page.get_by_label("Password")).to_be_visible()
        sign_in(page, user["username"], user["password"])
        token = rp.exchange(pending, app.wait(page))
        claims = jwt_payload(token["id_token"])
        assert claims["auth_time"] >= auth_time and claims["nonce"] == pending.nonce, params
        [renewed] = session_cookies(context)
        assert renewed["value"] != cookie["value"], f"{params}: the session id was not renewed"
        cookie, auth_time = renewed, claims["auth_time"]

    # WHEN the app accepts a login up to an hour old (max_age=3600)
    pending = rp.authorize(max_age="3600")
    response = page.goto(pending.url)
    # THEN no form: a code at once, for the login that was done
    _one_hop(response, pending.url)
    token = rp.exchange(pending, app.wait(page))
    assert jwt_payload(token["id_token"])["auth_time"] == auth_time
    assert session_cookies(context)[0]["value"] == cookie["value"]


# ------------------------------------------------------------------------------------- e. two tabs
def test_two_tabs_sign_in_independently(stack, app, context):
    # GIVEN two authorization requests (different state) open in two tabs of one browser
    client, user = browser_client(stack, app), make_user(stack)
    rp = AuthlibRP(stack, client)
    one, two = rp.authorize(), rp.authorize()
    assert one.state != two.state
    tab_one, tab_two = context.new_page(), context.new_page()
    tab_one.goto(one.url)
    tab_two.goto(two.url)
    # AND a silent check (prompt=none) in a third tab meanwhile, answered login_required
    # (Keycloak #11340: there it could break the login open in another tab)
    silent = rp.authorize(prompt="none")
    tab_three = context.new_page()
    tab_three.goto(silent.url)
    assert app.wait(tab_three).params["error"] == "login_required"
    # WHEN the user signs in on the second tab first, then on the first
    sign_in(tab_two, user["username"], user["password"])
    back_two = app.wait(tab_two)
    sign_in(tab_one, user["username"], user["password"])
    back_one = app.wait(tab_one)
    # THEN each tab comes back with its own state and a code of its own, and both exchange
    assert back_one.params["state"] == one.state and back_two.params["state"] == two.state
    assert back_one.params["code"] != back_two.params["code"]
    for pending, back in ((one, back_one), (two, back_two)):
        claims = jwt_payload(rp.exchange(pending, back)["id_token"])
        assert claims["nonce"] == pending.nonce and claims["sub"] == user["user_id"]


# -------------------------------------------------------------------------------------- f. consent
def test_consent_lists_scopes_deny_is_access_denied_allow_is_remembered(stack, app, context):
    # GIVEN a client that asks for consent and a user who has never given it
    client, user = browser_client(stack, app, consent=True), make_user(stack)
    rp = AuthlibRP(stack, client)
    page = context.new_page()
    denied = rp.authorize()
    page.goto(denied.url)
    sign_in(page, user["username"], user["password"])
    # THEN after the login the consent page names the client and lists the scopes in words
    expect(page.get_by_role("heading", level=1)).to_have_text(f"{client['name']} wants to:")
    expect(page.get_by_role("listitem")).to_have_text([
        "Sign you in with your account",
        "See your profile: name, username, picture and locale",
        "See your email address",
    ])
    # WHEN the user presses Deny THEN the app gets access_denied with its state and iss
    page.get_by_role("button", name="Deny").click()
    back = app.wait(page).params
    assert back["error"] == "access_denied" and back["state"] == denied.state, back
    assert back["iss"] == stack.issuer and "code" not in back
    # WHEN the app asks silently without consent THEN consent_required, with state and iss
    silent = rp.authorize(prompt="none")
    page.goto(silent.url)
    back = app.wait(page).params
    assert back["error"] == "consent_required" and back["state"] == silent.state, back
    assert back["iss"] == stack.issuer
    # WHEN the app asks again THEN (signed in already) the consent page comes without a login
    allowed = rp.authorize()
    page.goto(allowed.url)
    expect(page.get_by_role("button", name="Allow")).to_be_visible()
    expect(page.get_by_label("Password")).to_have_count(0)
    # AND Allow gives a code that exchanges
    page.get_by_role("button", name="Allow").click()
    callback = app.wait(page)
    assert callback.params["state"] == allowed.state
    assert rp.exchange(allowed, callback)["access_token"]
    # WHEN the app then asks silently THEN the consent is remembered: a code, no page
    silent = rp.authorize(prompt="none")
    response = page.goto(silent.url)
    _one_hop(response, silent.url)
    callback = app.wait(page)
    assert "error" not in callback.params, callback.params
    assert rp.exchange(silent, callback)["access_token"]
    # WHEN the app asks with prompt=consent THEN the consent page is shown again
    page.goto(rp.authorize(prompt="consent").url)
    expect(page.get_by_role("button", name="Allow")).to_be_visible()


# -------------------------------------------------------------------------------- g. public client
def test_public_client_signs_in_and_refreshes_with_its_client_id_only(stack, app, context):
    # GIVEN a public client (auth method none: no secret) and a user
    client, user = browser_client(stack, app, public=True), make_user(stack)
    rp = AuthlibRP(stack, client)
    page = context.new_page()
    # WHEN it asks without PKCE THEN invalid_request comes back to it (PKCE is required)
    url, state = rp.session.create_authorization_url(stack.base_url + "/oauth/v2/authorize")
    assert "code_challenge" not in url
    page.goto(url)
    back = app.wait(page).params
    assert back["error"] == "invalid_request" and back["state"] == state, back
    # WHEN it signs a user in with PKCE S256
    pending = rp.authorize()
    page.goto(pending.url)
    sign_in(page, user["username"], user["password"])
    callback = app.wait(page)
    # THEN the exchange with client_id in the body (no Authorization header) succeeds
    token = rp.exchange(pending, callback)
    claims = verify_id_token(stack, token["id_token"], client_id=client["client_id"])
    assert claims["sub"] == user["user_id"] and claims["nonce"] == pending.nonce
    # AND so does a refresh the same way
    refreshed = rp.session.refresh_token(stack.base_url + "/oauth/v2/token",
                                         refresh_token=token["refresh_token"])
    assert refreshed["access_token"] and refreshed["refresh_token"] != token["refresh_token"]


# ------------------------------------------------------------------------ h. failed login, lockout
def test_failed_logins_show_one_message_and_lock_the_password_grant_too(stack, app, context):
    # GIVEN a user, a browser client and a password-grant client for the same user
    client, user = browser_client(stack, app), make_user(stack)
    password_client = make_client(stack, grants=("password",), scopes=("openid",),
                                  default_scopes=("openid",))
    rp = AuthlibRP(stack, client)
    page = context.new_page()
    pending = rp.authorize()
    page.goto(pending.url)
    wrong = "Wrong-" + uuid.uuid4().hex
    # WHEN the user types a wrong password
    sign_in(page, user["username"], wrong)
    # THEN the form comes back with one generic alert, the username kept, the password emptied,
    # and the password nowhere in the page
    expect(page.get_by_role("alert")).to_have_text(FAILED_LOGIN)
    expect(page.get_by_role("alert")).to_have_count(1)
    expect(page.get_by_label("Username")).to_have_value(user["username"])
    expect(page.get_by_label("Password")).to_have_value("")
    assert wrong not in page.content()
    # AND an unknown username gets exactly the same page text
    wrong_password_text = page.locator("main").inner_text()
    sign_in(page, "nobody-" + uuid.uuid4().hex, wrong)
    expect(page.get_by_role("alert")).to_have_text(FAILED_LOGIN)
    assert page.locator("main").inner_text() == wrong_password_text
    # WHEN the wrong password is tried until the lockout threshold (5, LOCKOUT_THRESHOLD)
    for _ in range(4):
        sign_in(page, user["username"], wrong)
        expect(page.get_by_role("alert")).to_have_text(FAILED_LOGIN)
    assert failures_counted(stack, user_lock_pk(user["username"])) == 5
    # THEN the right password is refused the same way in the browser...
    sign_in(page, user["username"], user["password"])
    expect(page.get_by_role("alert")).to_have_text(FAILED_LOGIN)
    assert not app.seen and not session_cookies(context)
    # ...and at the token endpoint: the password grant shares the counter
    assert_error(password_token(stack, password_client, user), 400, "invalid_grant",
                 secrets=[user["password"]])
    # WHEN an admin unlocks the user THEN the same form signs in
    stack.oauthctl("user", "unlock", user["username"])
    sign_in(page, user["username"], user["password"])
    assert rp.exchange(pending, app.wait(page))["access_token"]


# ----------------------------------------------------------------------- i. headers, no JavaScript
def test_login_page_headers_as_the_browser_sees_them_and_no_csp_violation(stack, app, context):
    # GIVEN a browser client
    client = browser_client(stack, app)
    rp = AuthlibRP(stack, client)
    page = context.new_page()
    violations = _csp_errors(page)
    # WHEN Chromium opens the login page
    response = page.goto(rp.authorize().url)
    # THEN it got the security headers
    assert response.status == 200
    headers = response.all_headers()
    csp = headers["content-security-policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp, csp
    assert "form-action" not in csp, csp
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["cache-control"] == "no-store"
    assert "access-control-allow-origin" not in headers
    # AND the page's own style passed its CSP by hash (no violation reported) and applied
    expect(page.get_by_label("Username")).to_be_visible()
    assert page.locator("main").evaluate("m => getComputedStyle(m).maxWidth") == "384px"
    assert violations == [], violations


def test_another_site_cannot_frame_the_login_page(stack, app, context):
    # GIVEN a page of another origin that puts the login page in an iframe
    client = browser_client(stack, app)
    login_url = AuthlibRP(stack, client).authorize().url
    app.pages["/framer"] = (f'<!DOCTYPE html><title>Framer</title>'
                            f'<iframe src="{html.escape(login_url)}"></iframe>')
    other = app.origin + "/framer"
    page = context.new_page()
    framed, refusals = [], _csp_errors(page)
    page.on("response", lambda r: framed.append(r) if r.url == login_url else None)
    # WHEN the browser loads it (the load event waits for the iframe too)
    page.goto(other, wait_until="load")
    # THEN the login page was fetched, but Chromium refused to show it: frame-ancestors 'none'
    assert framed and framed[0].status == 200
    assert any("frame-ancestors 'none'" in text for text in refusals), refusals
    [child] = page.main_frame.child_frames
    assert child.url.startswith("chrome-error:"), child.url
    assert page.frame_locator("iframe").get_by_label("Password").count() == 0


def test_sign_in_works_with_javascript_disabled(stack, app, new_context):
    # GIVEN a browser with JavaScript off, a browser client and a user
    context = new_context(java_script_enabled=False)
    client, user = browser_client(stack, app), make_user(stack)
    rp = AuthlibRP(stack, client)
    page = context.new_page()
    # WHEN the user signs in
    pending = rp.authorize()
    page.goto(pending.url)
    sign_in(page, user["username"], user["password"])
    # THEN the app gets a code that exchanges
    callback = app.wait(page)
    assert callback.params["state"] == pending.state
    assert rp.exchange(pending, callback)["access_token"]


# ------------------------------------------------------------------------------------ j. form_post
@pytest.mark.parametrize("javascript", [True, False], ids=["auto-submit", "no-javascript"])
def test_form_post_posts_code_state_and_iss_to_the_redirect_uri(stack, app, new_context,
                                                                javascript):
    # GIVEN a browser (JavaScript on or off), a browser client and a user
    context = new_context(java_script_enabled=javascript)
    client, user = browser_client(stack, app), make_user(stack)
    rp = AuthlibRP(stack, client)
    page = context.new_page()
    violations = _csp_errors(page)
    # WHEN the app asks for response_mode=form_post and the user signs in
    pending = rp.authorize(response_mode="form_post")
    page.goto(pending.url)
    sign_in(page, user["username"], user["password"])
    if not javascript:
        # THEN without JavaScript the page offers a Continue button
        page.get_by_role("button", name="Continue").click()
    # THEN the browser POSTs code, state and iss to the redirect URI (the page's one script,
    # allowed by its CSP hash, submits it when JavaScript is on)
    callback = app.wait(page)
    assert callback.method == "POST" and callback.url == client["redirect_uri"]
    assert set(callback.form) == {"code", "state", "iss"}, callback.form
    assert callback.form["state"] == pending.state and callback.form["iss"] == stack.issuer
    assert violations == [], violations
    # AND the code exchanges
    token = rp.exchange(pending, callback)
    assert jwt_payload(token["id_token"])["nonce"] == pending.nonce


# ------------------------------------------------------------------------------------ k. logout
@dataclasses.dataclass
class SignedIn:
    client: dict
    rp: AuthlibRP
    page: object
    token: dict


def _signed_in_with_a_return_page(stack, app, context) -> SignedIn:
    """A user signed in through Chromium, holding tokens, its client with /signed-out
    registered as the post_logout_redirect_uri."""
    app.pages["/signed-out"] = "<!DOCTYPE html><html lang=en><title>Bye</title><p>Signed out.</p>"
    client = browser_client(stack, app, post_logout_path="/signed-out")
    user = make_user(stack)
    rp = AuthlibRP(stack, client)
    pending = rp.authorize()
    page = context.new_page()
    page.goto(pending.url)
    sign_in(page, user["username"], user["password"])
    return SignedIn(client, rp, page, rp.exchange(pending, app.wait(page)))


def _refresh_is_dead(stack, signed_in: SignedIn) -> bool:
    client = signed_in.client
    refreshed = requests.post(stack.base_url + "/oauth/v2/token", timeout=60,
                              auth=(client["client_id"], client["client_secret"]),
                              data={"grant_type": "refresh_token",
                                    "refresh_token": signed_in.token["refresh_token"]})
    return refreshed.status_code == 400 and refreshed.json()["error"] == "invalid_grant"


def test_rp_initiated_logout_in_the_browser_ends_the_session_and_its_tokens(stack, app, context):
    # GIVEN a user signed in through Chromium, holding tokens, with a return page registered
    signed_in = _signed_in_with_a_return_page(stack, app, context)
    page, token = signed_in.page, signed_in.token
    assert session_cookies(context)
    # WHEN the app sends the browser to the end_session_endpoint with its id_token
    end_session = stack.base_url + "/oauth/v2/logout?" + urllib.parse.urlencode({
        "id_token_hint": token["id_token"], "state": "bye",
        "post_logout_redirect_uri": app.origin + "/signed-out"})
    page.goto(end_session)
    # THEN the browser is back at the app with the state, without a session cookie
    page.wait_for_url(app.origin + "/signed-out?state=bye")
    assert session_cookies(context) == []
    # AND the refresh token is dead, and a silent sign-in needs a login again
    assert _refresh_is_dead(stack, signed_in)
    silent = signed_in.rp.authorize(prompt="none")
    page.goto(silent.url)
    callback = app.wait(page)
    assert callback.params["error"] == "login_required"


def test_an_apps_cross_site_form_post_to_logout_ends_the_session(stack, app, context):
    # GIVEN a user signed in through Chromium, and an app page on another site (localhost is
    # not the same site as the provider's 127.0.0.1) whose form POSTs the logout
    signed_in = _signed_in_with_a_return_page(stack, app, context)
    fields = {"id_token_hint": signed_in.token["id_token"], "state": "bye",
              "post_logout_redirect_uri": app.origin + "/signed-out"}
    inputs = "".join(f'<input type=hidden name="{k}" value="{html.escape(v)}">'
                     for k, v in fields.items())
    app.pages["/logout"] = (f'<!DOCTYPE html><title>App</title>'
                            f'<form method=post action="{stack.base_url}/oauth/v2/logout">'
                            f'{inputs}</form><script>document.forms[0].submit()</script>')
    # WHEN the browser submits it (SameSite=Lax: the POST itself carries no session cookie)
    signed_in.page.goto(app.origin.replace("127.0.0.1", "localhost") + "/logout")
    # THEN it is back at the app, and the session is really over
    signed_in.page.wait_for_url(app.origin + "/signed-out?state=bye")
    assert session_cookies(context) == []
    assert _refresh_is_dead(stack, signed_in)


def test_a_logout_link_without_a_hint_asks_before_signing_out(stack, app, context):
    client = browser_client(stack, app)
    user = make_user(stack)
    rp = AuthlibRP(stack, client)
    pending = rp.authorize()
    page = context.new_page()
    page.goto(pending.url)
    sign_in(page, user["username"], user["password"])
    app.wait(page)
    # A bare link (as another site could embed) shows a confirmation, ending nothing...
    page.goto(stack.base_url + "/oauth/v2/logout")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Sign out")
    assert session_cookies(context)
    # ...until the user presses the button.
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("You are signed out")
    assert session_cookies(context) == []
