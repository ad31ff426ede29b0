"""End-to-end tests of the token endpoint (SPEC §4, §5) over real HTTP through the
`token` and `discovery` function binaries, against moto behind the fault proxy.

Every test creates its own client and user (unique names), so tests are independent and
can run in any order."""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import jwt
import pytest
import requests

from helpers import (
    DEFAULT_ACCESS_TTL,
    FORM,
    TOKEN_PATH,
    assert_error,
    assert_not_leaked,
    assert_success,
    basic,
    cc_token,
    client_basic,
    describe,
    fetch_jwks,
    make_client,
    make_user,
    password_token,
    post_token,
    refresh,
    unique,
    verify_access_token,
    verify_id_token,
)

USER_GRANTS = ("password", "refresh_token")
OIDC_SCOPES = ("openid", "profile", "email", "read", "write")
LEEWAY_S = 5


def scope_set(s: str) -> set[str]:
    return set(s.split())


# ============================================================ client_credentials
@pytest.mark.sam_local
def test_cc_basic_form_defaults_scope_and_has_exact_success_shape(stack):
    # GIVEN a client allowed "read write" whose default scope is "read"
    client = make_client(stack, scopes=("read", "write"), default_scopes=("read",))
    # WHEN it asks for a token with client_secret_basic and no scope
    resp = cc_token(stack, client, scope=None)
    # THEN the §5.1 answer carries exactly the default scope, no refresh/id token, no-store
    body = assert_success(resp)
    assert body["scope"] == "read"
    assert body["expires_in"] == DEFAULT_ACCESS_TTL
    # AND the access token verifies against the JWKS like a resource server would
    claims = verify_access_token(stack, body["access_token"])
    assert claims["aud"] in (stack.issuer, [stack.issuer])  # no --audience: the issuer
    assert claims["sub"] == client["client_id"]
    assert claims["client_id"] == client["client_id"]
    assert claims["scope"] == "read"
    assert claims["exp"] - claims["iat"] == DEFAULT_ACCESS_TTL
    assert "sid" not in claims and "username" not in claims


@pytest.mark.sam_local
def test_cc_client_secret_post_form(stack):
    # GIVEN a client
    client = make_client(stack, scopes=("read", "write"))
    # WHEN it authenticates with client_secret_post and asks for one allowed scope
    resp = post_token(
        stack,
        data={
            "grant_type": "client_credentials",
            "client_id": client["client_id"],
            "client_secret": client["client_secret"],
            "scope": "write",
        },
    )
    # THEN it gets exactly that scope
    body = assert_success(resp)
    assert body["scope"] == "write"
    assert verify_access_token(stack, body["access_token"])["scope"] == "write"


@pytest.mark.sam_local
def test_cc_json_body(stack):
    # GIVEN a client
    client = make_client(stack, scopes=("read", "write"))
    # WHEN it sends an EmpowerID-style flat JSON body
    resp = post_token(
        stack,
        json_body={
            "grant_type": "client_credentials",
            "client_id": client["client_id"],
            "client_secret": client["client_secret"],
            "scope": "read write",
        },
    )
    # THEN it is accepted like the form
    body = assert_success(resp)
    assert scope_set(body["scope"]) == {"read", "write"}


def test_cc_content_type_parameters_are_ignored(stack):
    # GIVEN a client
    client = make_client(stack)
    # WHEN the form's Content-Type carries a charset parameter
    resp = post_token(
        stack,
        data={"grant_type": "client_credentials", "scope": "read"},
        headers=client_basic(client),
        content_type=FORM + "; charset=UTF-8",
    )
    # THEN the media type alone decides, and the request succeeds
    assert_success(resp)


@pytest.mark.sam_local
@pytest.mark.parametrize("path", ["/oauth2/token", "/api/id/v1/auth/token"])
def test_cc_on_compatibility_aliases(stack, path):
    # GIVEN a client
    client = make_client(stack)
    # WHEN it uses a WSO2 / ID-API alias of the token endpoint
    resp = post_token(
        stack,
        data={"grant_type": "client_credentials", "scope": "read"},
        headers=client_basic(client),
        path=path,
    )
    # THEN it gets the same kind of token, issued by the same issuer
    body = assert_success(resp)
    assert body["scope"] == "read"
    assert verify_access_token(stack, body["access_token"])["iss"] == stack.issuer


def test_cc_drops_oidc_scopes(stack):
    # GIVEN a client allowed OIDC scopes as well as its own (several scopes in one --scope)
    client = make_client(stack, scopes=("openid profile email read",))
    # WHEN client_credentials asks for all of them
    resp = cc_token(stack, client, scope="openid profile email read")
    # THEN openid/profile/email are dropped and no id_token appears
    body = assert_success(resp)
    assert body["scope"] == "read"
    assert verify_access_token(stack, body["access_token"])["scope"] == "read"


def test_cc_only_openid_is_invalid_scope(stack):
    # GIVEN a client allowed openid
    client = make_client(stack, scopes=("openid", "read"))
    # WHEN client_credentials asks for openid only
    resp = cc_token(stack, client, scope="openid")
    # THEN nothing remains: invalid_scope
    assert_error(resp, 400, "invalid_scope", secrets=[client["client_secret"]])


def test_cc_token_claims_audience_ttl_custom_claims_and_unique_jti(stack):
    # GIVEN a client with its own audience, a 600 s TTL and custom claims
    audience = f"https://api.{unique('aud')}.example"
    client = make_client(
        stack,
        scopes=("read", "write"),
        audience=audience,
        access_ttl=600,
        claims={"dept": "ops", "tier": "gold"},
    )
    # WHEN it gets three tokens
    bodies = [assert_success(cc_token(stack, client, scope="read write")) for _ in range(3)]
    # THEN each is an RFC 9068 token for that audience with exp - iat = TTL
    jtis = set()
    for body in bodies:
        assert body["expires_in"] == 600
        claims = verify_access_token(stack, body["access_token"], audience=audience)
        assert claims["aud"] in (audience, [audience])
        assert claims["exp"] - claims["iat"] == 600
        assert claims["sub"] == claims["client_id"] == client["client_id"]
        assert scope_set(claims["scope"]) == {"read", "write"}
        assert claims["dept"] == "ops" and claims["tier"] == "gold"
        jtis.add(claims["jti"])
    # AND every jti is unique
    assert len(jtis) == 3


def test_jwks_and_discovery_publish_the_signing_key(stack):
    # GIVEN a freshly issued access token
    client = make_client(stack)
    token = assert_success(cc_token(stack, client))["access_token"]
    # WHEN a resource server reads discovery and the JWKS it points at
    resp = stack.http("GET", "/oauth/.well-known/openid-configuration")
    assert resp.status_code == 200, describe(resp)
    meta = resp.json()
    # THEN discovery names this issuer, token endpoint and JWKS
    assert meta["issuer"] == stack.issuer
    assert meta["token_endpoint"] == stack.issuer + "/v2/token"
    assert meta["jwks_uri"] == stack.issuer + "/v2/jwks"
    keys = fetch_jwks(stack)
    # AND the token's kid is published with alg RS256
    kid = jwt.get_unverified_header(token)["kid"]
    assert keys[kid]["alg"] == "RS256" and keys[kid]["kty"] == "RSA"


# ============================================================ password grant
@pytest.mark.sam_local
def test_password_form_with_openid_email_issues_id_token_and_refresh(stack):
    # GIVEN a client with password + refresh_token and a user with an email and a custom claim
    client = make_client(stack, grants=USER_GRANTS, scopes=OIDC_SCOPES)
    user = make_user(stack, claims={"email": "alice@example.org", "dept": "eng"})
    # WHEN the user logs in with openid + email through a form and Basic client auth
    t0 = int(time.time())
    resp = password_token(stack, client, user, scope="openid email read")
    # THEN access, refresh and id tokens come back
    body = assert_success(resp, refresh=True, id_token=True)
    assert scope_set(body["scope"]) == {"openid", "email", "read"}
    # AND the access token is about the user (UUID), carries the family sid and custom claims,
    # and no username (personal data: introspection answers it, RFC 9068 §6)
    at = verify_access_token(stack, body["access_token"])
    assert at["sub"] == user["user_id"]
    assert at["client_id"] == client["client_id"]
    assert "username" not in at and "preferred_username" not in at
    assert at.get("sid"), at
    assert body["refresh_token"].startswith(at["sid"] + ".")
    assert at["dept"] == "eng"
    assert "email" not in at  # standard OIDC claims go only to id_token/userinfo
    # AND the id_token is RS256, typ JWT, for this client, with email but not preferred_username
    idt = verify_id_token(stack, body["id_token"], client_id=client["client_id"])
    assert idt["sub"] == user["user_id"]
    assert idt["exp"] - idt["iat"] == DEFAULT_ACCESS_TTL
    assert t0 - LEEWAY_S <= idt["auth_time"] <= int(time.time()) + LEEWAY_S
    assert idt["email"] == "alice@example.org"
    assert "preferred_username" not in idt
    assert "dept" not in idt


def test_password_profile_scope_releases_preferred_username_only(stack):
    # GIVEN a user with an email
    client = make_client(stack, grants=USER_GRANTS, scopes=OIDC_SCOPES)
    user = make_user(stack, claims={"email": "bob@example.org"})
    # WHEN openid + profile (no email) is requested
    body = assert_success(
        password_token(stack, client, user, scope="openid profile"), refresh=True, id_token=True
    )
    # THEN the id_token has preferred_username and no email
    idt = verify_id_token(stack, body["id_token"], client_id=client["client_id"])
    assert idt["preferred_username"] == user["username"]
    assert "email" not in idt


def test_password_without_openid_or_refresh_grant_gives_access_token_only(stack):
    # GIVEN a client with the password grant but not refresh_token
    client = make_client(stack, grants=("password",), scopes=OIDC_SCOPES)
    user = make_user(stack)
    # WHEN a user logs in without openid
    body = assert_success(password_token(stack, client, user, scope="read"))
    # THEN no refresh token, no id_token, and no sid in the access token
    at = verify_access_token(stack, body["access_token"])
    assert at["sub"] == user["user_id"]
    assert "sid" not in at
    # AND that client may not use the refresh_token grant at all
    resp = refresh(stack, client, "abc.def")
    assert_error(resp, 400, "unauthorized_client", secrets=[client["client_secret"]])


def _empowerid_client(stack, **kw):
    return make_client(stack, grants=USER_GRANTS, scopes=OIDC_SCOPES, api_key=True, **kw)


def _empowerid_request(stack, client, username, password, *, as_json=True, api_key="__client__"):
    headers = {"Authorization": basic(username, password, form_encode=False)}
    if api_key == "__client__":
        headers["X-API-Key"] = client["api_key"]
    elif api_key is not None:
        headers["X-API-Key"] = api_key
    body = {
        "grant_type": "password",
        "client_id": client["client_id"],
        "client_secret": client["client_secret"],
        "redirect_uri": "",
    }
    if as_json:
        return post_token(stack, json_body=body, headers=headers)
    return post_token(stack, data=body, headers=headers)


@pytest.mark.sam_local
@pytest.mark.parametrize("as_json", [True, False], ids=["json", "form"])
def test_empowerid_shape_user_in_basic_client_in_body(stack, as_json):
    # GIVEN an API-key client and a user
    client = _empowerid_client(stack)
    user = make_user(stack)
    # WHEN the Basic header carries the USER, the body the client, with `redirect_uri` empty
    resp = _empowerid_request(stack, client, user["username"], user["password"], as_json=as_json)
    # THEN the user gets tokens (refresh because the client has refresh_token)
    body = assert_success(resp, refresh=True)
    at = verify_access_token(stack, body["access_token"])
    assert at["sub"] == user["user_id"]
    assert at["client_id"] == client["client_id"]


def test_empowerid_shape_password_with_colons_splits_at_first_colon(stack):
    # GIVEN a user whose password holds ':' and characters a percent-decoder would change
    client = _empowerid_client(stack)
    user = make_user(stack, password=f"p+a%20ss:wo:rd-{uuid.uuid4().hex[:8]}")
    # WHEN it is sent raw in the EmpowerID Basic header
    resp = _empowerid_request(stack, client, user["username"], user["password"])
    # THEN the split is at the first colon with no decoding, and the login works
    body = assert_success(resp, refresh=True)
    assert verify_access_token(stack, body["access_token"])["sub"] == user["user_id"]


@pytest.mark.parametrize("api_key", [None, "wrong-api-key-" + "x" * 20], ids=["missing", "wrong"])
def test_empowerid_shape_bad_api_key_is_invalid_client_without_challenge(stack, api_key):
    # GIVEN an API-key client and a user
    client = _empowerid_client(stack)
    user = make_user(stack)
    # WHEN the API key is missing or wrong
    resp = _empowerid_request(stack, client, user["username"], user["password"], api_key=api_key)
    # THEN 401 invalid_client, and no WWW-Authenticate (Basic carried the user, not the client)
    bad = assert_error(
        resp, 401, "invalid_client",
        secrets=[client["client_secret"], user["password"], client["api_key"]],
        basic_challenge=False,
    )
    # AND it is exactly the wrong-secret answer of this shape
    wrong_secret = dict(client, client_secret="not-the-secret-" + uuid.uuid4().hex)
    resp2 = _empowerid_request(stack, wrong_secret, user["username"], user["password"])
    assert_error(resp2, 401, "invalid_client", basic_challenge=False)
    assert resp2.json() == bad


def test_empowerid_shape_wrong_user_password_is_invalid_grant(stack):
    # GIVEN an API-key client and a user
    client = _empowerid_client(stack)
    user = make_user(stack)
    wrong = "Wrong-" + uuid.uuid4().hex
    # WHEN the Basic header carries a wrong user password
    resp = _empowerid_request(stack, client, user["username"], wrong)
    # THEN it is a user failure: 400 invalid_grant
    assert_error(resp, 400, "invalid_grant", secrets=[client["client_secret"], wrong])


@pytest.mark.sam_local
def test_api_key_client_with_basic_needs_the_key(stack):
    # GIVEN an API-key client using client_credentials with client_secret_basic
    client = make_client(stack, api_key=True)
    # WHEN the key is absent
    no_key = cc_token(stack, client, scope="read")
    # THEN it is exactly the wrong-secret response (401 + Basic challenge)
    body = assert_error(
        no_key, 401, "invalid_client",
        secrets=[client["client_secret"], client["api_key"]], basic_challenge=True,
    )
    wrong = cc_token(stack, dict(client, client_secret="nope-" + uuid.uuid4().hex), scope="read")
    assert wrong.status_code == 401 and wrong.json() == body
    # AND with the key it works
    resp = post_token(
        stack,
        data={"grant_type": "client_credentials", "scope": "read"},
        headers={**client_basic(client), "X-API-Key": client["api_key"]},
    )
    assert_success(resp)


@pytest.mark.sam_local
def test_wso2_username_on_wso2_alias(stack):
    # GIVEN a WSO2-style username (user@email@tenant is just a username)
    client = make_client(stack, grants=USER_GRANTS, scopes=OIDC_SCOPES)
    username = f"admin{uuid.uuid4().hex[:8]}@wso2.com@carbon.super"
    user = make_user(stack, username=username)
    # WHEN it logs in through /oauth2/token
    resp = post_token(
        stack,
        data={"grant_type": "password", "username": username, "password": user["password"],
              "scope": "openid profile"},
        headers=client_basic(client),
        path="/oauth2/token",
    )
    # THEN the exact username is found
    body = assert_success(resp, refresh=True, id_token=True)
    assert verify_access_token(stack, body["access_token"])["sub"] == user["user_id"]
    idt = verify_id_token(stack, body["id_token"], client_id=client["client_id"])
    assert idt["preferred_username"] == username


# ============================================================ refresh_token grant
@pytest.mark.sam_local
def test_refresh_rotates_keeps_session_and_reuse_revokes_family(stack):
    # GIVEN a user session with openid and a refresh token
    client = make_client(stack, grants=USER_GRANTS, scopes=OIDC_SCOPES)
    user = make_user(stack)
    first = assert_success(
        password_token(stack, client, user, scope="openid read"), refresh=True, id_token=True
    )
    first_at = verify_access_token(stack, first["access_token"])
    first_idt = verify_id_token(stack, first["id_token"], client_id=client["client_id"])
    time.sleep(1.2)  # so a re-stamped auth_time would differ
    # WHEN it is refreshed
    second = assert_success(refresh(stack, client, first["refresh_token"]), refresh=True, id_token=True)
    # THEN a new refresh token, same scope, same family (sid) and original auth_time
    assert second["refresh_token"] != first["refresh_token"]
    assert scope_set(second["scope"]) == {"openid", "read"}
    second_at = verify_access_token(stack, second["access_token"])
    assert second_at["sub"] == user["user_id"]
    assert second_at["sid"] == first_at["sid"]
    assert second_at["jti"] != first_at["jti"]
    second_idt = verify_id_token(stack, second["id_token"], client_id=client["client_id"])
    assert second_idt["auth_time"] == first_idt["auth_time"]
    # WHEN the old refresh token is presented again (reuse)
    reuse = refresh(stack, client, first["refresh_token"])
    # THEN invalid_grant, and the whole family is revoked: the new token fails too
    assert_error(reuse, 400, "invalid_grant",
                 secrets=[first["refresh_token"], client["client_secret"]])
    after = refresh(stack, client, second["refresh_token"])
    assert_error(after, 400, "invalid_grant",
                 secrets=[second["refresh_token"], client["client_secret"]])


def test_refresh_may_narrow_scope(stack):
    # GIVEN a session granted "read write"
    client = make_client(stack, grants=USER_GRANTS, scopes=OIDC_SCOPES)
    user = make_user(stack)
    first = assert_success(password_token(stack, client, user, scope="read write"), refresh=True)
    # WHEN the refresh asks for "read" only
    resp = refresh(stack, client, first["refresh_token"], scope="read")
    # THEN the new access token has exactly "read"
    body = assert_success(resp, refresh=True)
    assert body["scope"] == "read"
    assert verify_access_token(stack, body["access_token"])["scope"] == "read"


def test_refresh_may_not_widen_scope(stack):
    # GIVEN a session granted "read" by a client that also allows "write"
    client = make_client(stack, grants=USER_GRANTS, scopes=OIDC_SCOPES)
    user = make_user(stack)
    first = assert_success(password_token(stack, client, user, scope="read"), refresh=True)
    # WHEN the refresh asks for "read write"
    resp = refresh(stack, client, first["refresh_token"], scope="read write")
    # THEN invalid_scope
    assert_error(resp, 400, "invalid_scope",
                 secrets=[first["refresh_token"], client["client_secret"]])


def test_concurrent_refreshes_have_exactly_one_winner(stack):
    # GIVEN one refresh token
    client = make_client(stack, grants=USER_GRANTS, scopes=OIDC_SCOPES)
    user = make_user(stack)
    rt = assert_success(password_token(stack, client, user, scope="read"), refresh=True)["refresh_token"]
    n = 10
    barrier = threading.Barrier(n)

    def use(_):
        barrier.wait(timeout=30)
        return refresh(stack, client, rt)

    # WHEN it is presented 10 times concurrently
    with ThreadPoolExecutor(max_workers=n) as pool:
        results = list(pool.map(use, range(n)))
    # THEN exactly one 200; the others are 400 invalid_grant
    winners = [r for r in results if r.status_code == 200]
    losers = [r for r in results if r.status_code != 200]
    assert len(winners) == 1, [describe(r) for r in results]
    for r in losers:
        assert_error(r, 400, "invalid_grant", secrets=[rt, client["client_secret"]])
    # AND the losers' reuse revoked the family: the winner's new refresh token is rejected too
    new_rt = assert_success(winners[0], refresh=True)["refresh_token"]
    assert_error(refresh(stack, client, new_rt), 400, "invalid_grant", secrets=[new_rt])


def test_refresh_with_another_clients_credentials_is_invalid_grant(stack):
    # GIVEN a refresh token issued to client A
    a = make_client(stack, grants=USER_GRANTS, scopes=OIDC_SCOPES)
    b = make_client(stack, grants=USER_GRANTS, scopes=OIDC_SCOPES)
    user = make_user(stack)
    rt = assert_success(password_token(stack, a, user, scope="read"), refresh=True)["refresh_token"]
    # WHEN client B presents it
    resp = refresh(stack, b, rt)
    # THEN invalid_grant
    assert_error(resp, 400, "invalid_grant", secrets=[rt, b["client_secret"]])


@pytest.mark.parametrize("token", ["garbage", "nofamily.AAAA", ""], ids=["garbage", "unknown", "empty"])
def test_refresh_with_invalid_token(stack, token):
    # GIVEN a client with the refresh grant
    client = make_client(stack, grants=USER_GRANTS, scopes=OIDC_SCOPES)
    # WHEN it presents a token that was never issued (or none: empty counts as absent)
    resp = refresh(stack, client, token)
    # THEN invalid_grant for a bad token, invalid_request for a missing one
    code = "invalid_request" if token == "" else "invalid_grant"
    assert_error(resp, 400, code, secrets=[client["client_secret"]])


# ============================================================ request errors
def _post_body(client, **extra):
    return {"grant_type": "client_credentials", "client_id": client["client_id"],
            "client_secret": client["client_secret"], **extra}


def test_malformed_json_is_invalid_request(stack):
    client = make_client(stack)
    raw = ('{"grant_type":"client_credentials","client_id":"%s","client_secret":"%s"'
           % (client["client_id"], client["client_secret"])).encode()  # no closing brace
    resp = post_token(stack, raw=raw, content_type="application/json")
    assert_error(resp, 400, "invalid_request", secrets=[client["client_secret"]])


@pytest.mark.parametrize("value", [5, ["read"], {"a": "b"}, None, True], ids=["int", "list", "obj", "null", "bool"])
def test_json_non_string_value_is_invalid_request(stack, value):
    client = make_client(stack)
    resp = post_token(stack, json_body=_post_body(client, scope=value))
    assert_error(resp, 400, "invalid_request", secrets=[client["client_secret"]])


def test_json_non_object_is_invalid_request(stack):
    client = make_client(stack)
    resp = post_token(stack, json_body=[_post_body(client)])
    assert_error(resp, 400, "invalid_request", secrets=[client["client_secret"]])


def test_json_duplicate_key_is_invalid_request(stack):
    client = make_client(stack)
    raw = ('{"grant_type":"client_credentials","client_id":"%s","client_secret":"%s",'
           '"grant_type":"client_credentials"}' % (client["client_id"], client["client_secret"])).encode()
    resp = post_token(stack, raw=raw, content_type="application/json")
    assert_error(resp, 400, "invalid_request", secrets=[client["client_secret"]])


@pytest.mark.sam_local
def test_repeated_form_parameter_is_invalid_request(stack):
    client = make_client(stack)
    raw = b"grant_type=client_credentials&scope=read&scope=read"
    resp = post_token(stack, raw=raw, headers=client_basic(client))
    assert_error(resp, 400, "invalid_request", secrets=[client["client_secret"]])


def test_unknown_parameters_are_ignored(stack):
    client = make_client(stack)
    raw = b"grant_type=client_credentials&foo=1&foo=2&scope=read"
    assert_success(post_token(stack, raw=raw, headers=client_basic(client)))


def test_basic_and_body_secret_is_invalid_request(stack):
    client = make_client(stack)
    resp = post_token(stack, data=_post_body(client), headers=client_basic(client))
    assert_error(resp, 400, "invalid_request", secrets=[client["client_secret"]])


def test_basic_and_differing_body_client_id_is_invalid_request(stack):
    client = make_client(stack)
    other = make_client(stack)
    # WHEN the body names another client than Basic
    resp = post_token(
        stack,
        data={"grant_type": "client_credentials", "client_id": other["client_id"]},
        headers=client_basic(client),
    )
    assert_error(resp, 400, "invalid_request", secrets=[client["client_secret"]])
    # AND an equal body client_id is allowed
    ok = post_token(
        stack,
        data={"grant_type": "client_credentials", "client_id": client["client_id"], "scope": "read"},
        headers=client_basic(client),
    )
    assert_success(ok)


def test_text_plain_is_invalid_request(stack):
    client = make_client(stack)
    raw = ("grant_type=client_credentials&client_id=%s&client_secret=%s"
           % (client["client_id"], client["client_secret"])).encode()
    resp = post_token(stack, raw=raw, content_type="text/plain")
    assert_error(resp, 400, "invalid_request", secrets=[client["client_secret"]])


def test_missing_grant_type_is_invalid_request(stack):
    client = make_client(stack)
    resp = post_token(stack, data={"scope": "read"}, headers=client_basic(client))
    assert_error(resp, 400, "invalid_request", secrets=[client["client_secret"]])


@pytest.mark.parametrize("grant", ["urn:example:nope", "implicit"])
def test_unsupported_grant_types(stack, grant):
    client = make_client(stack)
    resp = post_token(stack, data={"grant_type": grant, "code": "abc"}, headers=client_basic(client))
    assert_error(resp, 400, "unsupported_grant_type", secrets=[client["client_secret"]])


def test_authorization_code_needs_the_grant_and_a_live_code(stack):
    # The exchange exists (the authorization endpoint that mints codes comes with issue #12).
    data = {"grant_type": "authorization_code", "code": "abc",
            "redirect_uri": "https://app.example.com/cb", "code_verifier": "v" * 43}
    client = make_client(stack)
    resp = post_token(stack, data=data, headers=client_basic(client))
    assert_error(resp, 400, "unauthorized_client", secrets=[client["client_secret"]])
    web = make_client(stack, grants=("authorization_code", "refresh_token"),
                      redirect_uris=("https://app.example.com/cb",))
    resp = post_token(stack, data=data, headers=client_basic(web))
    assert_error(resp, 400, "invalid_grant", secrets=[web["client_secret"]])
    resp = post_token(stack, data={k: v for k, v in data.items() if k != "redirect_uri"},
                      headers=client_basic(web))
    assert_error(resp, 400, "invalid_request", secrets=[web["client_secret"]])


def test_scope_outside_allowed_is_invalid_scope(stack):
    client = make_client(stack, scopes=("read",))
    resp = cc_token(stack, client, scope="read admin")
    assert_error(resp, 400, "invalid_scope", secrets=[client["client_secret"]])


@pytest.mark.sam_local
def test_wrong_secret_and_unknown_client_are_identical_401(stack):
    # GIVEN a client
    client = make_client(stack)
    wrong_secret = "Wrong-Secret-" + uuid.uuid4().hex
    # WHEN Basic carries a wrong secret
    resp = post_token(
        stack, data={"grant_type": "client_credentials"},
        headers={"Authorization": basic(client["client_id"], wrong_secret)},
    )
    # THEN 401 invalid_client with the Basic challenge, nothing echoed
    body = assert_error(resp, 401, "invalid_client", secrets=[wrong_secret], basic_challenge=True)
    # AND an unknown client gets the identical answer
    unknown = post_token(
        stack, data={"grant_type": "client_credentials"},
        headers={"Authorization": basic(unique("no-such-client"), wrong_secret)},
    )
    assert_error(unknown, 401, "invalid_client", secrets=[wrong_secret], basic_challenge=True)
    assert unknown.json() == body
    # AND client_secret_post with a wrong secret is 401 invalid_client with the same body
    post = post_token(stack, data=_post_body(client, client_secret=wrong_secret))
    assert_error(post, 401, "invalid_client", secrets=[wrong_secret])
    assert post.json() == body


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer abc.def.ghi"}, {"Authorization": "Basic !!!not-base64!!!"}],
    ids=["none", "bearer", "malformed-basic"],
)
def test_no_or_foreign_client_authentication_is_401(stack, headers):
    resp = post_token(stack, data={"grant_type": "client_credentials", "scope": "read"}, headers=headers)
    assert_error(resp, 401, "invalid_client")


def test_client_id_without_secret_is_401(stack):
    client = make_client(stack)
    resp = post_token(stack, data={"grant_type": "client_credentials", "client_id": client["client_id"]})
    assert_error(resp, 401, "invalid_client")


def test_bad_user_credentials_are_indistinguishable(stack):
    # GIVEN a client, a user, and a disabled user
    client = make_client(stack, grants=USER_GRANTS, scopes=OIDC_SCOPES)
    user = make_user(stack)
    disabled = make_user(stack)
    stack.oauthctl("user", "disable", disabled["username"])
    wrong = "Wrong-Pass-" + uuid.uuid4().hex
    # WHEN logging in with a wrong password, as an unknown user, and as the disabled user
    answers = [
        password_token(stack, client, dict(user, password=wrong)),
        password_token(stack, client, {"username": unique("ghost"), "password": wrong}),
        password_token(stack, client, disabled),
    ]
    # THEN all are the same 400 invalid_grant body, echoing nothing
    bodies = [
        assert_error(r, 400, "invalid_grant",
                     secrets=[wrong, disabled["password"], client["client_secret"]])
        for r in answers
    ]
    assert bodies[0] == bodies[1] == bodies[2]
    for r in answers:
        assert user["username"] not in r.text and disabled["username"] not in r.text


def test_password_missing_username_is_invalid_request(stack):
    client = make_client(stack, grants=USER_GRANTS, scopes=OIDC_SCOPES)
    resp = post_token(stack, data={"grant_type": "password", "password": "x" * 12},
                      headers=client_basic(client))
    assert_error(resp, 400, "invalid_request", secrets=[client["client_secret"]])


def test_grant_not_allowed_for_client_is_unauthorized_client(stack):
    # GIVEN a client_credentials-only client and a user
    client = make_client(stack, grants=("client_credentials",))
    user = make_user(stack)
    # WHEN it tries the password grant
    resp = password_token(stack, client, user, scope="read")
    # THEN unauthorized_client
    assert_error(resp, 400, "unauthorized_client",
                 secrets=[client["client_secret"], user["password"]])
    # AND a password-only client may not use client_credentials
    pw_client = make_client(stack, grants=("password",))
    assert_error(cc_token(stack, pw_client), 400, "unauthorized_client",
                 secrets=[pw_client["client_secret"]])


def test_redirect_uri_must_match_a_registered_one(stack):
    # GIVEN a client with a registered redirect URI
    cb = "https://app.example/cb"
    client = make_client(stack, grants=USER_GRANTS, scopes=OIDC_SCOPES, redirect_uris=(cb,))
    user = make_user(stack)
    # WHEN the password grant sends another redirect_uri
    bad = password_token(stack, client, user, redirect_uri="https://evil.example/cb")
    # THEN invalid_grant
    assert_error(bad, 400, "invalid_grant", secrets=[client["client_secret"], user["password"]])
    # AND a near-miss (prefix match) is refused as well
    near = password_token(stack, client, user, redirect_uri=cb + "/x")
    assert_error(near, 400, "invalid_grant")
    # AND the exact URI is accepted
    assert_success(password_token(stack, client, user, redirect_uri=cb), refresh=True)


def test_disabled_and_deleted_client_are_401_like_a_wrong_secret(stack):
    # GIVEN a client that works
    client = make_client(stack)
    assert_success(cc_token(stack, client))
    wrong = post_token(stack, data={"grant_type": "client_credentials"},
                       headers={"Authorization": basic(client["client_id"], "bad-" + uuid.uuid4().hex)})
    # WHEN it is disabled
    stack.oauthctl("client", "disable", client["client_id"])
    resp = cc_token(stack, client)
    # THEN 401 invalid_client identical to the wrong-secret answer
    body = assert_error(resp, 401, "invalid_client", secrets=[client["client_secret"]],
                        basic_challenge=True)
    assert body == wrong.json()
    # WHEN it is enabled again THEN it works
    stack.oauthctl("client", "enable", client["client_id"])
    assert_success(cc_token(stack, client))
    # WHEN it is deleted THEN 401 again
    stack.oauthctl("client", "delete", client["client_id"])
    assert_error(cc_token(stack, client), 401, "invalid_client", secrets=[client["client_secret"]])


@pytest.mark.sam_local
def test_body_over_16_kib_is_invalid_request(stack):
    client = make_client(stack)
    # GIVEN a valid request padded with an unknown parameter
    def padded(total: int) -> bytes:
        base = b"grant_type=client_credentials&scope=read&pad="
        return base + b"a" * (total - len(base))
    # WHEN just under 16 KiB THEN accepted (unknown parameters are ignored)
    assert_success(post_token(stack, raw=padded(16 * 1024 - 16), headers=client_basic(client)))
    # WHEN over 16 KiB THEN invalid_request
    resp = post_token(stack, raw=padded(16 * 1024 + 1024), headers=client_basic(client))
    assert_error(resp, 400, "invalid_request", secrets=[client["client_secret"]])


def test_rotate_secret_with_grace_keeps_old_secret_working(stack):
    # GIVEN a client
    client = make_client(stack)
    # WHEN its secret is rotated with a grace period
    out = stack.oauthctl("client", "rotate-secret", client["client_id"], "--grace", "600")
    new_secret = out["client_secret"]
    assert new_secret and new_secret != client["client_secret"]
    # THEN both the old and the new secret work during the grace period
    assert_success(cc_token(stack, client))
    assert_success(cc_token(stack, dict(client, client_secret=new_secret)))


def test_rotate_secret_without_grace_retires_old_secret(stack):
    client = make_client(stack)
    out = stack.oauthctl("client", "rotate-secret", client["client_id"], "--grace", "0")
    new_secret = out["client_secret"]
    # THEN the old secret fails at once and the new one works
    assert_error(cc_token(stack, client), 401, "invalid_client",
                 secrets=[client["client_secret"]], basic_challenge=True)
    assert_success(cc_token(stack, dict(client, client_secret=new_secret)))


# ============================================================ lockout
def test_lockout_after_five_failures_and_unlock(stack):
    # GIVEN a user
    client = make_client(stack, grants=USER_GRANTS, scopes=OIDC_SCOPES)
    user = make_user(stack)
    wrong = "Wrong-Pass-" + uuid.uuid4().hex
    # WHEN the wrong password is tried five times
    first = None
    for _ in range(5):
        r = password_token(stack, client, dict(user, password=wrong))
        body = assert_error(r, 400, "invalid_grant", secrets=[wrong])
        first = first or body
    # THEN even the right password is refused with the same answer
    locked = password_token(stack, client, user)
    assert_error(locked, 400, "invalid_grant", secrets=[user["password"]])
    assert locked.json() == first
    # WHEN an admin unlocks the user THEN the right password works
    stack.oauthctl("user", "unlock", user["username"])
    assert_success(password_token(stack, client, user), refresh=True)


def test_four_failures_then_success_does_not_lock(stack):
    client = make_client(stack, grants=USER_GRANTS, scopes=OIDC_SCOPES)
    user = make_user(stack)
    for _ in range(4):
        assert_error(password_token(stack, client, dict(user, password="nope-nope-nope")), 400, "invalid_grant")
    assert_success(password_token(stack, client, user), refresh=True)


def test_set_password_changes_what_works(stack):
    client = make_client(stack, grants=USER_GRANTS, scopes=OIDC_SCOPES)
    user = make_user(stack)
    new_pw = "New-Pass-" + uuid.uuid4().hex
    stack.oauthctl("user", "set-password", user["username"], "--password", new_pw)
    assert_error(password_token(stack, client, user), 400, "invalid_grant", secrets=[user["password"]])
    assert_success(password_token(stack, client, dict(user, password=new_pw)), refresh=True)


# ============================================================ dependency failure
def test_dependency_down_is_503_then_recovers(stack, fault_proxy):
    # GIVEN a working client (keys are cached by now)
    client = make_client(stack)
    assert_success(cc_token(stack, client))
    # WHEN DynamoDB/Secrets Manager become unreachable
    fault_proxy.set_mode("down")
    resp = cc_token(stack, client)
    # THEN 503 temporarily_unavailable with Retry-After and no token
    assert_error(resp, 503, "temporarily_unavailable", secrets=[client["client_secret"]])
    assert resp.headers.get("Retry-After", "").strip().isdigit(), describe(resp)
    assert "access_token" not in resp.text
    assert fault_proxy.stats["reset"] >= 1
    # WHEN the dependency is back THEN the next request succeeds
    fault_proxy.set_mode("pass")
    assert_success(cc_token(stack, client))


def test_dependency_down_on_password_grant_is_503(stack, fault_proxy):
    client = make_client(stack, grants=USER_GRANTS, scopes=OIDC_SCOPES)
    user = make_user(stack)
    fault_proxy.set_mode("down")
    resp = password_token(stack, client, user)
    assert_error(resp, 503, "temporarily_unavailable", secrets=[client["client_secret"], user["password"]])
    assert resp.headers.get("Retry-After")
    fault_proxy.set_mode("pass")
    assert_success(password_token(stack, client, user), refresh=True)


# ============================================================ nothing secret echoed
def test_no_error_echoes_what_was_sent(stack):
    # GIVEN distinctive secrets, a client and a user
    client = make_client(stack, grants=USER_GRANTS, scopes=OIDC_SCOPES, api_key=True)
    user = make_user(stack)
    marker_secret = "SeCrEt-" + uuid.uuid4().hex
    marker_pw = "PaSsWoRd-" + uuid.uuid4().hex
    marker_rt = "fam." + uuid.uuid4().hex
    sent = [marker_secret, marker_pw, marker_rt, client["client_secret"], client["api_key"],
            user["password"]]
    auth_wrong = {"Authorization": basic(client["client_id"], marker_secret)}
    auth_ok = {**client_basic(client), "X-API-Key": client["api_key"]}
    requests_ = [
        dict(data={"grant_type": "client_credentials"}, headers=auth_wrong),
        dict(data={"grant_type": "password", "username": user["username"], "password": marker_pw},
             headers=auth_ok),
        dict(data={"grant_type": "refresh_token", "refresh_token": marker_rt}, headers=auth_ok),
        dict(data={"grant_type": marker_secret}, headers=auth_ok),
        dict(data={"grant_type": "client_credentials", "scope": marker_secret}, headers=auth_ok),
        dict(raw=("{" + json.dumps(marker_secret)).encode(), content_type="application/json"),
        dict(raw=marker_pw.encode(), content_type="text/plain", headers=auth_ok),
        dict(data={"grant_type": "password", "client_id": client["client_id"],
                   "client_secret": client["client_secret"]},
             headers={"Authorization": basic(user["username"], marker_pw, form_encode=False),
                      "X-API-Key": client["api_key"]}),
    ]
    for kwargs in requests_:
        resp = post_token(stack, **kwargs)
        assert resp.status_code in (400, 401), describe(resp)
        assert_not_leaked(resp, sent)


# ============================================================ API_KEY_HEADER override
def test_api_key_header_is_configurable_for_empowerid_callers(stack):
    # GIVEN the functions running with API_KEY_HEADER=X-EmpowerID-API-Key, an API-key client
    client = _empowerid_client(stack)
    user = make_user(stack)
    body = {"grant_type": "password", "client_id": client["client_id"],
            "client_secret": client["client_secret"], "redirect_uri": ""}
    user_basic = basic(user["username"], user["password"], form_encode=False)
    with stack.functions_with(API_KEY_HEADER="X-EmpowerID-API-Key") as w:
        def send(headers):
            return requests.post(w.base_url + TOKEN_PATH, json=body, timeout=60,
                                 headers={"Authorization": user_basic, **headers})

        # WHEN the key comes in the configured header THEN the EmpowerID request succeeds
        ok = send({"X-EmpowerID-API-Key": client["api_key"]})
        assert_success(ok, refresh=True)
        # WHEN it comes only in the default header THEN it counts as missing: 401, no challenge
        bad = send({"X-API-Key": client["api_key"]})
        assert_error(bad, 401, "invalid_client", basic_challenge=False,
                     secrets=[client["client_secret"], client["api_key"], user["password"]])
