"""End-to-end tests of pushed authorization requests (RFC 9126) over real HTTP, without a
browser: the push (client-authenticated, checked as an authorization request), its answer,
and what the authorization endpoint does with a `request_uri` (taken once, the pusher's only).
The sign-in through PAR with openid-client and Chromium is in test_browser.py."""

from __future__ import annotations

import base64
import hashlib
import secrets
import urllib.parse

import pytest

from helpers import assert_error, client_basic, describe, make_client

PAR = "/oauth/v2/par"
AUTHORIZE = "/oauth/v2/authorize"
REDIRECT = "https://app.example.com/cb"
OIDC_PATH = "/oauth/.well-known/openid-configuration"


def web_client(stack, *extra: str) -> dict:
    return make_client(stack, grants=("authorization_code", "refresh_token"),
                       scopes=("openid", "email"), default_scopes=("openid",),
                       redirect_uris=(REDIRECT,), extra_args=extra)


def parameters(**overrides: str) -> dict:
    verifier = secrets.token_urlsafe(32)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
    out = {"response_type": "code", "redirect_uri": REDIRECT, "scope": "openid email",
           "state": "s-1", "nonce": "n-1", "code_challenge": challenge.decode(),
           "code_challenge_method": "S256"}
    out.update(overrides)
    return out


def push(stack, client: dict, **overrides: str):
    return stack.http("POST", PAR, data=parameters(**overrides), headers=client_basic(client))


def pushed(stack, client: dict) -> str:
    resp = push(stack, client)
    assert resp.status_code == 201, describe(resp)
    assert resp.headers.get("Cache-Control") == "no-store", describe(resp)
    body = resp.json()
    assert set(body) == {"request_uri", "expires_in"} and body["expires_in"] == 60, body
    return body["request_uri"]


def authorize(stack, client_id: str, request_uri: str):
    query = urllib.parse.urlencode({"client_id": client_id, "request_uri": request_uri})
    return stack.http("GET", f"{AUTHORIZE}?{query}", allow_redirects=False)


@pytest.mark.sam_local
def test_discovery_names_the_par_endpoint(stack):
    doc = stack.http("GET", OIDC_PATH).json()
    assert doc["pushed_authorization_request_endpoint"] == stack.issuer + "/v2/par"
    assert doc["require_pushed_authorization_requests"] is False


@pytest.mark.sam_local
def test_a_pushed_request_opens_the_login_page_once(stack):
    client = web_client(stack)
    request_uri = pushed(stack, client)
    first = authorize(stack, client["client_id"], request_uri)
    assert first.status_code == 200 and "<form" in first.text, describe(first)
    again = authorize(stack, client["client_id"], request_uri)
    assert again.status_code == 400 and "already used" in again.text, describe(again)


def test_a_request_uri_is_only_its_pushers(stack):
    client, other = web_client(stack), web_client(stack)
    request_uri = pushed(stack, client)
    resp = authorize(stack, other["client_id"], request_uri)
    assert resp.status_code == 400 and "already used" in resp.text, describe(resp)
    assert "Location" not in resp.headers


@pytest.mark.parametrize("request_uri", [
    "urn:ietf:params:oauth:request_uri:" + "A" * 43,
    "urn:ietf:params:oauth:request_uri:short",
    "https://evil.example/request.jwt",
])
def test_a_request_uri_that_is_not_ours_is_an_error_page(stack, request_uri):
    client = web_client(stack)
    resp = authorize(stack, client["client_id"], request_uri)
    assert resp.status_code == 400 and "Location" not in resp.headers, describe(resp)


@pytest.mark.parametrize("overrides,error", [
    ({"request_uri": "urn:x"}, "invalid_request"),
    ({"redirect_uri": "https://evil.example/cb"}, "invalid_request"),
    ({"response_type": "token"}, "unsupported_response_type"),
    ({"scope": "admin"}, "invalid_scope"),
    ({"code_challenge_method": "plain"}, "invalid_request"),
])
def test_a_bad_push_is_a_json_error(stack, overrides, error):
    client = web_client(stack)
    resp = push(stack, client, **overrides)
    assert_error(resp, 400, error, secrets=[client["client_secret"]])


def test_a_push_is_client_authenticated(stack):
    client = web_client(stack)
    wrong = {**client, "client_secret": "x" * 43}
    assert_error(push(stack, wrong), 401, "invalid_client")
    # The push of one client cannot name another.
    assert_error(push(stack, client, client_id=web_client(stack)["client_id"]), 400,
                 "invalid_request")


def test_require_par_refuses_a_direct_request_and_update_turns_it_off(stack):
    client = web_client(stack, "--require-par")
    query = urllib.parse.urlencode({"client_id": client["client_id"], **parameters()})
    resp = stack.http("GET", f"{AUTHORIZE}?{query}", allow_redirects=False)
    assert resp.status_code == 303, describe(resp)
    location = urllib.parse.urlsplit(resp.headers["Location"])
    assert dict(urllib.parse.parse_qsl(location.query))["error"] == "invalid_request"
    stack.oauthctl("client", "update", client["client_id"], "--require-par", "false")
    resp = stack.http("GET", f"{AUTHORIZE}?{query}", allow_redirects=False)
    assert resp.status_code == 200, describe(resp)
