"""Browser sign-in and logout through the real authorize and token binaries (SPEC §12) at the
HTTP level: Authlib's OAuth2Session as the relying party, the hosted login form and
RP-Initiated Logout driven by hand (test_browser.py does the same in Chromium).

Python's cookie jar never sends `Secure` cookies to http://127.0.0.1, so the session cookie is
carried by hand.
"""

from __future__ import annotations

import html
import re
import threading
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.common.security import generate_token

from helpers import (
    assert_error,
    assert_success,
    audit_lines,
    jwt_payload,
    make_client,
    make_user,
)

REDIRECT = "http://127.0.0.1:8765/callback"
AFTER_LOGOUT = "http://127.0.0.1:8765/signed-out"
SESSION_COOKIE = "__Host-oauth-session"


def _browser_client(stack, **extra):
    return make_client(stack, grants=("authorization_code", "refresh_token"),
                       scopes=("openid", "profile", "email"), redirect_uris=(REDIRECT,), **extra)


def _logout_client(stack):
    """A confidential browser client that may return to AFTER_LOGOUT after RP-Initiated Logout."""
    out = stack.oauthctl("client", "create", "--name", "e2e-logout", "--grant", "authorization_code",
                         "--grant", "refresh_token", "--scope", "openid profile email",
                         "--redirect-uri", REDIRECT, "--post-logout-redirect-uri", AFTER_LOGOUT)
    assert out["post_logout_redirect_uris"] == [AFTER_LOGOUT], out
    return out


def _hidden(page: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert found, f"no {name} in the page:\n{page[:2000]}"
    return html.unescape(found.group(1))


def _login(stack, page: requests.Response, user, *, password=None, site="same-origin",
           cookie=None) -> requests.Response:
    headers = {"Sec-Fetch-Site": site}
    if cookie:
        headers["Cookie"] = f"{SESSION_COOKIE}={cookie}"
    return requests.post(
        stack.base_url + "/oauth/v2/authorize/login", timeout=60, allow_redirects=False,
        headers=headers,
        data={"transaction": _hidden(page.text, "transaction"),
              "csrf_token": _hidden(page.text, "csrf_token"),
              "username": user["username"], "password": password or user["password"]})


def _session_cookie(resp: requests.Response) -> str:
    set_cookie = resp.headers.get("Set-Cookie", "")
    assert set_cookie.startswith(SESSION_COOKIE + "="), set_cookie
    for attribute in ("Secure", "HttpOnly", "SameSite=Lax", "Path=/"):
        assert attribute in set_cookie, set_cookie
    return set_cookie.split(";", 1)[0].split("=", 1)[1]


def _rp(stack, client):
    return OAuth2Session(client["client_id"], client["client_secret"], redirect_uri=REDIRECT,
                         scope="openid profile email", code_challenge_method="S256")


@pytest.mark.sam_local
def test_authlib_signs_a_user_in_through_the_login_page(stack):
    client, user = _browser_client(stack), make_user(stack, claims={"email": "e@example.org"})
    rp = _rp(stack, client)
    verifier = generate_token(48)
    nonce = generate_token(16)
    url, state = rp.create_authorization_url(stack.base_url + "/oauth/v2/authorize",
                                             code_verifier=verifier, nonce=nonce)
    page = requests.get(url, timeout=60, allow_redirects=False)
    assert page.status_code == 200, page.text
    assert 'autocomplete="current-password"' in page.text
    assert page.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    assert "form-action" not in page.headers["Content-Security-Policy"]
    done = _login(stack, page, user)
    assert done.status_code == 303, done.text
    location = done.headers["Location"]
    assert location.startswith(REDIRECT + "?")
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))
    assert query["state"] == state and query["iss"] == stack.issuer
    _session_cookie(done)
    token = rp.fetch_token(stack.base_url + "/oauth/v2/token", authorization_response=location,
                           code_verifier=verifier)
    assert token["token_type"] == "Bearer" and token["refresh_token"]
    claims = jwt_payload(token["id_token"])
    assert claims["nonce"] == nonce and claims["sub"] == user["user_id"]
    assert claims["email"] == "e@example.org"
    # The code works once; its second use revokes what the first issued.
    again = requests.post(stack.base_url + "/oauth/v2/token", timeout=60,
                          auth=(client["client_id"], client["client_secret"]),
                          data={"grant_type": "authorization_code", "code": query["code"],
                                "redirect_uri": REDIRECT, "code_verifier": verifier})
    assert_error(again, 400, "invalid_grant")
    introspected = requests.post(stack.base_url + "/oauth/v2/tokeninfo", timeout=60,
                                 auth=(client["client_id"], client["client_secret"]),
                                 data={"token": token["access_token"]}).json()
    assert introspected == {"active": False}


def test_prompt_none_with_and_without_a_session(stack):
    client, user = _browser_client(stack), make_user(stack)
    rp = _rp(stack, client)
    verifier = generate_token(48)
    url, _ = rp.create_authorization_url(stack.base_url + "/oauth/v2/authorize",
                                         code_verifier=verifier, prompt="none")
    silent = requests.get(url, timeout=60, allow_redirects=False)
    assert silent.status_code == 303
    assert "error=login_required" in silent.headers["Location"]
    login_url, _ = rp.create_authorization_url(stack.base_url + "/oauth/v2/authorize",
                                               code_verifier=verifier)
    cookie = _session_cookie(_login(stack, requests.get(login_url, timeout=60), user))
    silent = requests.get(url, timeout=60, allow_redirects=False,
                          headers={"Cookie": f"{SESSION_COOKIE}={cookie}"})
    assert silent.status_code == 303
    assert "code=" in silent.headers["Location"], silent.headers["Location"]


def test_a_forged_or_cross_site_login_form_signs_nobody_in(stack):
    client, user = _browser_client(stack), make_user(stack)
    url, _ = _rp(stack, client).create_authorization_url(
        stack.base_url + "/oauth/v2/authorize", code_verifier=generate_token(48))
    page = requests.get(url, timeout=60)
    cross = _login(stack, page, user, site="cross-site")
    assert cross.status_code == 400 and "Set-Cookie" not in cross.headers
    forged = requests.post(stack.base_url + "/oauth/v2/authorize/login", timeout=60,
                           allow_redirects=False, headers={"Sec-Fetch-Site": "same-origin"},
                           data={"transaction": _hidden(page.text, "transaction"),
                                 "csrf_token": "forged", "username": user["username"],
                                 "password": user["password"]})
    assert forged.status_code == 400 and "Set-Cookie" not in forged.headers
    wrong = _login(stack, page, user, password="not-it")
    assert wrong.status_code == 200 and 'role="alert"' in wrong.text
    assert "not-it" not in wrong.text


def test_an_unregistered_redirect_gets_a_page_not_a_redirect(stack):
    client = _browser_client(stack)
    resp = requests.get(stack.base_url + "/oauth/v2/authorize", timeout=60, allow_redirects=False,
                        params={"response_type": "code", "client_id": client["client_id"],
                                "redirect_uri": "https://evil.example/cb", "state": "s"})
    assert resp.status_code == 400 and "Location" not in resp.headers


def test_of_fifty_concurrent_redemptions_of_one_code_exactly_one_succeeds(stack):
    client, user = _browser_client(stack), make_user(stack)
    rp = _rp(stack, client)
    verifier = generate_token(48)
    url, _ = rp.create_authorization_url(stack.base_url + "/oauth/v2/authorize",
                                         code_verifier=verifier)
    done = _login(stack, requests.get(url, timeout=60), user)
    code = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(done.headers["Location"]).query))["code"]
    gate = threading.Barrier(50)

    def redeem(_):
        gate.wait(timeout=60)
        return requests.post(stack.base_url + "/oauth/v2/token", timeout=60,
                             auth=(client["client_id"], client["client_secret"]),
                             data={"grant_type": "authorization_code", "code": code,
                                   "redirect_uri": REDIRECT, "code_verifier": verifier})

    with ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(redeem, range(50)))
    winners = [r for r in results if r.status_code == 200]
    assert len(winners) == 1, [r.status_code for r in results]
    for r in results:
        if r.status_code != 200:
            assert_error(r, 400, "invalid_grant")
    assert_success(winners[0], refresh=True, id_token=True)


def _signed_in(stack, client, user):
    """A sign-in through the login page and the code exchange: (session cookie, tokens)."""
    rp = _rp(stack, client)
    verifier = generate_token(48)
    url, _ = rp.create_authorization_url(stack.base_url + "/oauth/v2/authorize",
                                         code_verifier=verifier, nonce=generate_token(16))
    done = _login(stack, requests.get(url, timeout=60), user)
    token = rp.fetch_token(stack.base_url + "/oauth/v2/token",
                           authorization_response=done.headers["Location"], code_verifier=verifier)
    return _session_cookie(done), token


def _silent(stack, client, cookie) -> str:
    """The Location of a prompt=none authorization request made with `cookie`."""
    url, _ = _rp(stack, client).create_authorization_url(
        stack.base_url + "/oauth/v2/authorize", code_verifier=generate_token(48), prompt="none")
    resp = requests.get(url, timeout=60, allow_redirects=False,
                        headers={"Cookie": f"{SESSION_COOKIE}={cookie}"})
    assert resp.status_code == 303, resp.text
    return resp.headers["Location"]


def _logout(stack, params, cookie, method="GET", **headers):
    headers["Cookie"] = f"{SESSION_COOKIE}={cookie}"
    if method == "GET":
        return requests.get(stack.base_url + "/oauth/v2/logout", params=params, headers=headers,
                            timeout=60, allow_redirects=False)
    return requests.post(stack.base_url + "/oauth/v2/logout", data=params, headers=headers,
                         timeout=60, allow_redirects=False)


@pytest.mark.sam_local
def test_logout_with_a_hint_ends_the_session_and_its_tokens(stack):
    # GIVEN a user signed in through the login page, holding tokens
    client, user = _logout_client(stack), make_user(stack)
    cookie, token = _signed_in(stack, client, user)
    # WHEN the app sends the browser to the end_session_endpoint with its id_token
    out = _logout(stack, {"id_token_hint": token["id_token"], "state": "bye 1",
                          "post_logout_redirect_uri": AFTER_LOGOUT}, cookie)
    # THEN the browser returns to the registered URI with the state, the cookie cleared
    assert out.status_code == 303, out.text
    assert out.headers["Location"] == AFTER_LOGOUT + "?state=bye+1"
    cleared = out.headers["Set-Cookie"]
    assert cleared.startswith(SESSION_COOKIE + "=;") and "Max-Age=0" in cleared, cleared
    # AND the session and the tokens issued under it are over
    assert "error=login_required" in _silent(stack, client, cookie)
    again = requests.post(stack.base_url + "/oauth/v2/token", timeout=60,
                          auth=(client["client_id"], client["client_secret"]),
                          data={"grant_type": "refresh_token",
                                "refresh_token": token["refresh_token"]})
    assert_error(again, 400, "invalid_grant")
    introspected = requests.post(stack.base_url + "/oauth/v2/tokeninfo", timeout=60,
                                 auth=(client["client_id"], client["client_secret"]),
                                 data={"token": token["access_token"]}).json()
    assert introspected == {"active": False}


def test_logout_without_a_hint_asks_and_an_unregistered_return_is_refused(stack):
    client, user = _logout_client(stack), make_user(stack)
    cookie, _ = _signed_in(stack, client, user)
    # A bare logout link (no hint) only asks: a link on another site cannot end the session.
    asked = _logout(stack, {"client_id": client["client_id"]}, cookie)
    assert asked.status_code == 200 and 'action="/oauth/v2/logout"' in asked.text, asked.text
    assert "code=" in _silent(stack, client, cookie)
    # A return address that is not registered is a page, never a redirect.
    bad = _logout(stack, {"client_id": client["client_id"],
                          "post_logout_redirect_uri": "https://evil.example/"}, cookie)
    assert bad.status_code == 400 and "Location" not in bad.headers
    # The confirmation form, posted from our origin, signs out.
    confirmed = _logout(stack, {"client_id": client["client_id"],
                                "csrf_token": _hidden(asked.text, "csrf_token")},
                        cookie, method="POST", **{"Sec-Fetch-Site": "same-origin"})
    assert confirmed.status_code == 200 and "signed out" in confirmed.text, confirmed.text
    assert "error=login_required" in _silent(stack, client, cookie)


_CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"  # RFC 7636 Appendix B


@pytest.mark.parametrize("change, error", [
    ({"response_type": None}, "invalid_request"),
    ({"scope": ["openid", "openid email"]}, "invalid_request"),  # a repeated parameter
    ({"response_type": "token"}, "unsupported_response_type"),
    ({"scope": "openid admin"}, "invalid_scope"),
    ({"code_challenge": None}, "invalid_request"),
    ({"code_challenge_method": "plain"}, "invalid_request"),
    ({"code_challenge_method": None}, "invalid_request"),
    ({"prompt": "none login"}, "invalid_request"),
    ({"request": "eyJhbGciOiJub25lIn0.e30."}, "request_not_supported"),
    ({"prompt": "none"}, "login_required"),
    ({"max_age": "soon"}, "invalid_request"),
    ({"response_mode": "fragment"}, "invalid_request"),
])
def test_each_refusal_after_the_redirect_check_goes_back_to_the_client(stack, change, error):
    # GIVEN a well-formed authorization request of a registered browser client
    client = _browser_client(stack)
    params = {"response_type": "code", "client_id": client["client_id"], "redirect_uri": REDIRECT,
              "scope": "openid", "state": "st 1/2", "code_challenge": _CHALLENGE,
              "code_challenge_method": "S256"}
    # WHEN one thing about it is wrong
    for name, value in change.items():
        if value is None:
            params.pop(name)
        else:
            params[name] = value
    resp = requests.get(stack.base_url + "/oauth/v2/authorize", params=params, timeout=60,
                        allow_redirects=False)
    # THEN the error goes to the redirect URI with the exact state and our iss (RFC 9207)
    assert resp.status_code == 303, resp.text
    location = resp.headers["Location"]
    assert location.startswith(REDIRECT + "?"), location
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))
    assert query["error"] == error, query
    assert query["state"] == "st 1/2" and query["iss"] == stack.issuer, query
    assert "code" not in query


def test_a_client_without_the_grant_is_unauthorized_at_the_authorization_endpoint(stack):
    client = make_client(stack, grants=("client_credentials",), scopes=("openid",),
                         redirect_uris=(REDIRECT,))
    resp = requests.get(stack.base_url + "/oauth/v2/authorize", timeout=60, allow_redirects=False,
                        params={"response_type": "code", "client_id": client["client_id"],
                                "redirect_uri": REDIRECT, "state": "s",
                                "code_challenge": _CHALLENGE, "code_challenge_method": "S256"})
    assert resp.status_code == 303, resp.text
    assert "error=unauthorized_client" in resp.headers["Location"]


def test_a_sign_in_and_a_failed_login_leave_audit_lines(stack):
    import json
    import time
    from pathlib import Path

    client, user = _browser_client(stack), make_user(stack)
    rp = _rp(stack, client)
    url, _ = rp.create_authorization_url(stack.base_url + "/oauth/v2/authorize",
                                         code_verifier=generate_token(48))
    page = requests.get(url, timeout=60)
    wrong = _login(stack, page, user, password="not-the-password")
    assert wrong.status_code == 200
    done = _login(stack, wrong, user)
    assert done.status_code == 303
    deadline = time.monotonic() + 30
    while True:
        lines = audit_lines(Path(stack.watch.proc.log_path))
        ours = [l for l in lines if l.get("client_id") == client["client_id"]]
        events = [l["event"] for l in ours]
        if ("code_issued" in events and "login_failed" in events) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    issued = next(l for l in ours if l["event"] == "code_issued")
    assert issued["user_id"] == user["user_id"] and issued["CodesIssued"] == 1
    assert issued["family"].startswith(user["user_id"] + "~")
    failed = next(l for l in ours if l["event"] == "login_failed")
    assert failed["LoginFailures"] == 1 and "user_id" not in failed
    assert "not-the-password" not in json.dumps(ours) and user["password"] not in json.dumps(ours)
