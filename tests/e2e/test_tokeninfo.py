"""End-to-end tests of the tokeninfo function (RFC 7662 introspection, GET tokeninfo, OIDC
userinfo) and of revocation (RFC 7009, token function) — SPEC §3 and §5 — over real HTTP.

Every test makes its own clients and users. No test depends on specific kids."""

from __future__ import annotations

import base64
import dataclasses
import json
import time
import uuid

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from helpers import (
    BARE_CHALLENGE,
    INACTIVE,
    OIDC_SCOPES,
    REVOKE,
    TOKENINFO,
    USER_GRANTS,
    USERINFO,
    assert_error,
    assert_success,
    basic,
    cc_token,
    client_basic,
    describe,
    fetch_jwks,
    make_client,
    make_user,
    password_token,
    refresh,
    verify_access_token,
    verify_id_token,
)

ACCESS_KEYS = {"active", "scope", "client_id", "token_type", "exp", "iat", "nbf", "sub", "aud",
               "iss", "jti"}


# ----------------------------------------------------------------------------- local helpers
def introspect(stack, client, token, *, how="basic", hint=None, headers=None):
    """POST /oauth/v2/tokeninfo with client_secret_basic ("basic"), _post ("post") or none."""
    data = {"token": token} if token is not None else {}
    if hint:
        data["token_type_hint"] = hint
    hdrs = dict(headers or {})
    if how == "basic":
        hdrs.update(client_basic(client))
    elif how == "post":
        data.update(client_id=client["client_id"], client_secret=client["client_secret"])
    return stack.http("POST", TOKENINFO, data=data, headers=hdrs)


def introspection(resp) -> dict:
    assert resp.status_code == 200, describe(resp)
    assert resp.headers.get("Content-Type", "").split(";")[0].strip() == "application/json", describe(resp)
    assert resp.headers.get("Cache-Control") == "no-store", describe(resp)
    body = resp.json()
    assert isinstance(body, dict) and isinstance(body.get("active"), bool), describe(resp)
    return body


def assert_inactive(resp) -> None:
    assert introspection(resp) == INACTIVE, describe(resp)


def is_active(stack, client, token) -> bool:
    return introspection(introspect(stack, client, token))["active"]


def tokeninfo_get(stack, token=None, *, bearer=None):
    params = {"access_token": token} if token is not None else None
    headers = {"Authorization": f"Bearer {bearer}"} if bearer is not None else {}
    return stack.http("GET", TOKENINFO, params=params, headers=headers)


def revoke(stack, client, token, *, hint=None, how="basic"):
    data = {"token": token}
    if hint:
        data["token_type_hint"] = hint
    headers = {}
    if how == "basic":
        headers = client_basic(client)
    else:
        data.update(client_id=client["client_id"], client_secret=client["client_secret"])
    return stack.http("POST", REVOKE, data=data, headers=headers)


def assert_revoked_ok(resp) -> None:
    """RFC 7009 §2.2: 200, empty body."""
    assert resp.status_code == 200, describe(resp)
    assert resp.content == b"", describe(resp)


def userinfo(stack, token=None, *, method="GET", headers=None):
    hdrs = dict(headers or {})
    if token is not None:
        hdrs["Authorization"] = f"Bearer {token}"
    return stack.http(method, USERINFO, headers=hdrs)


def assert_bearer_error(resp, status: int, code: str) -> None:
    assert resp.status_code == status, describe(resp)
    challenge = resp.headers.get("WWW-Authenticate", "")
    assert challenge.startswith("Bearer"), describe(resp)
    assert f'error="{code}"' in challenge, describe(resp)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def user_session(stack, scope="openid profile email read", claims=None):
    """A refresh-capable client, a user with email/name claims, and a password-grant answer."""
    client = make_client(stack, grants=USER_GRANTS, scopes=OIDC_SCOPES)
    user = make_user(stack, claims=claims if claims is not None else {
        "email": "ada@example.org", "email_verified": "true", "name": "Ada Lovelace"})
    body = assert_success(password_token(stack, client, user, scope=scope), refresh=True,
                          id_token="openid" in scope.split())
    return client, user, body


# ============================================================ introspection: active tokens
@pytest.mark.sam_local
@pytest.mark.parametrize("how", ["basic", "post"])
def test_introspect_client_credentials_token(stack, how):
    # GIVEN a client_credentials access token
    client = make_client(stack, scopes=("read", "write"))
    token = assert_success(cc_token(stack, client, scope="read write"))["access_token"]
    claims = verify_access_token(stack, token)
    # WHEN the client introspects it (Basic or client_secret_post)
    info = introspection(introspect(stack, client, token, how=how))
    # THEN RFC 7662 §2.2 fields mirror the token; no username for a client token
    assert set(info) == ACCESS_KEYS, info
    assert info["active"] is True and info["token_type"] == "Bearer"
    assert info["scope"] == "read write"
    assert info["client_id"] == info["sub"] == client["client_id"]
    for k in ("exp", "iat", "nbf", "iss", "jti"):
        assert info[k] == claims[k], (k, info, claims)
    assert info["aud"] == claims["aud"] == stack.issuer, (info, claims)
    assert info["iss"] == stack.issuer


@pytest.mark.sam_local
def test_introspect_user_token_has_username_and_user_id(stack):
    client, user, body = user_session(stack)
    claims = verify_access_token(stack, body["access_token"])
    info = introspection(introspect(stack, client, body["access_token"]))
    assert set(info) == ACCESS_KEYS | {"username"}, info
    assert info["active"] is True and info["token_type"] == "Bearer"
    assert info["username"] == user["username"]
    assert info["sub"] == user["user_id"] == claims["sub"]
    assert info["client_id"] == client["client_id"]
    assert info["scope"] == body["scope"]
    assert info["jti"] == claims["jti"]


def test_introspect_ignores_audience_and_hint(stack):
    # GIVEN a token for a custom audience
    aud = "https://api.example.test/" + uuid.uuid4().hex[:8]
    client = make_client(stack, audience=aud)
    token = assert_success(cc_token(stack, client))["access_token"]
    # WHEN introspected with a wrong (non-binding) hint THEN it is still active with that aud
    info = introspection(introspect(stack, client, token, hint="refresh_token"))
    assert info["active"] is True and info["aud"] in (aud, [aud])
    # AND another authenticated client may introspect it too (only refresh tokens are bound)
    other = make_client(stack)
    assert introspection(introspect(stack, other, token))["active"] is True


@pytest.mark.sam_local
def test_introspect_refresh_token_for_its_client_only(stack):
    client, user, body = user_session(stack, scope="openid read")
    rt = body["refresh_token"]
    # WHEN its client introspects the refresh token
    info = introspection(introspect(stack, client, rt, hint="refresh_token"))
    # THEN it is active as a refresh token of that client and user
    assert info["active"] is True, info
    assert info["token_type"] == "refresh_token"
    assert info["client_id"] == client["client_id"]
    assert set(info["scope"].split()) == {"openid", "read"}
    assert info.get("sub") == user["user_id"], info
    assert info.get("username") == user["username"], info
    assert info["exp"] > time.time()
    assert "jti" not in info or info["jti"] != rt
    # AND without the hint the answer is the same
    assert introspection(introspect(stack, client, rt)) == info
    # AND another client sees it inactive
    other = make_client(stack, grants=USER_GRANTS, scopes=OIDC_SCOPES)
    assert_inactive(introspect(stack, other, rt))
    # AND introspection never rotates: the token still refreshes afterwards
    assert_success(refresh(stack, client, rt), refresh=True, id_token=True)


def test_rotated_out_and_reused_refresh_tokens_are_inactive(stack):
    client, user, body = user_session(stack, scope="read")
    old_rt, old_at = body["refresh_token"], body["access_token"]
    # WHEN it is refreshed
    new = assert_success(refresh(stack, client, old_rt), refresh=True)
    # THEN the old refresh token is inactive and the new one active
    assert_inactive(introspect(stack, client, old_rt))
    assert introspection(introspect(stack, client, new["refresh_token"]))["active"] is True
    # AND both access tokens (same family, not revoked) are active
    assert is_active(stack, client, old_at) and is_active(stack, client, new["access_token"])
    # WHEN the old one is reused (family revoked, RFC 9700 §4.14.2)
    assert_error(refresh(stack, client, old_rt), 400, "invalid_grant")
    # THEN the new refresh token and every access token of the family are inactive
    assert_inactive(introspect(stack, client, new["refresh_token"]))
    assert_inactive(introspect(stack, client, new["access_token"]))
    assert_inactive(introspect(stack, client, old_at))


# ============================================================ introspection: inactive tokens
def _resign_hs256_with_public_key(token: str, stack) -> str:
    """Alg-confusion attack: HS256 keyed with the RSA public key, same kid."""
    header = jwt.get_unverified_header(token)
    payload = jwt.decode(token, options={"verify_signature": False})
    jwk = fetch_jwks(stack)[header["kid"]]
    pem = jwt.PyJWK(jwk).key.public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    import hmac
    import hashlib
    h = b64url(json.dumps({"alg": "HS256", "typ": "at+jwt", "kid": header["kid"]}).encode())
    p = b64url(json.dumps(payload).encode())
    sig = hmac.new(pem, f"{h}.{p}".encode(), hashlib.sha256).digest()
    return f"{h}.{p}.{b64url(sig)}"


def _tampered_variants(stack, token: str) -> dict[str, str]:
    head, payload, sig = token.split(".")
    claims = json.loads(unb64url(payload))
    widened = b64url(json.dumps({**claims, "scope": "read write admin"}).encode())
    none_head = b64url(json.dumps({"alg": "none", "typ": "at+jwt"}).encode())
    hdr = jwt.get_unverified_header(token)
    flipped = sig[:-6] + ("AAAAAA" if not sig.endswith("AAAAAA") else "BBBBBB")
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return {
        "garbage": "not-a-token",
        "three-dots-garbage": "a.b.c",
        "bad-signature": f"{head}.{payload}.{flipped}",
        "widened-payload": f"{head}.{widened}.{sig}",
        "alg-none": f"{none_head}.{payload}.",
        "truncated": f"{head}.{payload}",
        "unknown-kid": jwt.encode(claims, stranger, algorithm="RS256",
                                  headers={"kid": "unknown-" + uuid.uuid4().hex, "typ": "at+jwt"}),
        "foreign-key-real-kid": jwt.encode(claims, stranger, algorithm="RS256",
                                           headers={"kid": hdr["kid"], "typ": "at+jwt"}),
        "alg-confusion-hs256": _resign_hs256_with_public_key(token, stack),
        "unknown-refresh": f"{uuid.uuid4()}.{b64url(uuid.uuid4().bytes * 2)}",
        "refresh-shaped-garbage": "x.y",
    }


def test_invalid_and_tampered_tokens_are_exactly_inactive(stack):
    # GIVEN a valid token of this client (sanity: active)
    client = make_client(stack)
    token = assert_success(cc_token(stack, client))["access_token"]
    assert is_active(stack, client, token)
    # WHEN anything derived from it but not issued as-is is introspected
    failures = {}
    for name, bad in _tampered_variants(stack, token).items():
        for resp in (introspect(stack, client, bad), tokeninfo_get(stack, bad)):
            try:
                assert_inactive(resp)
            except AssertionError as e:
                failures[f"{name} ({resp.request.method})"] = str(e)[:300]
    # THEN every one is exactly {"active":false}
    assert not failures, failures
    # AND the genuine token is still active
    assert is_active(stack, client, token)


def test_id_token_is_not_an_access_token(stack):
    # An id_token is signed by a published key with our iss, but typ is JWT (RFC 9068 §4).
    client, user, body = user_session(stack, scope="openid read")
    verify_id_token(stack, body["id_token"], client_id=client["client_id"])
    assert_inactive(introspect(stack, client, body["id_token"]))
    assert_inactive(tokeninfo_get(stack, body["id_token"]))
    assert_bearer_error(userinfo(stack, body["id_token"]), 401, "invalid_token")


def test_expired_access_token_is_inactive(stack):
    # GIVEN a client whose access tokens live 1 s, and a user token with openid
    client = make_client(stack, grants=USER_GRANTS, scopes=OIDC_SCOPES, access_ttl=1)
    user = make_user(stack)
    cc = assert_success(cc_token(stack, make_client(stack, access_ttl=1)))["access_token"]
    body = assert_success(password_token(stack, client, user, scope="openid read"),
                          refresh=True, id_token=True)
    at = body["access_token"]
    # AND a client whose refresh tokens live 2 s
    short = make_client(stack, grants=USER_GRANTS, scopes=OIDC_SCOPES, access_ttl=1, refresh_ttl=2)
    short_rt = assert_success(password_token(stack, short, user, scope="read"),
                              refresh=True)["refresh_token"]
    assert is_active(stack, short, short_rt)
    # WHEN more than ttl + 5 s leeway has passed
    time.sleep(7.5)
    # THEN introspection, GET tokeninfo and userinfo all treat them as invalid
    assert_inactive(introspect(stack, client, at))
    assert_inactive(introspect(stack, client, cc))
    assert_inactive(tokeninfo_get(stack, at))
    assert_inactive(tokeninfo_get(stack, bearer=cc))
    assert_bearer_error(userinfo(stack, at), 401, "invalid_token")
    # AND the refresh token (30 days) is still active and yields a fresh, active access token
    assert introspection(introspect(stack, client, body["refresh_token"]))["active"] is True
    fresh = assert_success(refresh(stack, client, body["refresh_token"]), refresh=True, id_token=True)
    assert is_active(stack, client, fresh["access_token"])
    # AND an expired refresh family is inactive and no longer refreshes
    assert_inactive(introspect(stack, short, short_rt))
    assert_error(refresh(stack, short, short_rt), 400, "invalid_grant")


def test_token_of_another_issuer_is_inactive(stack):
    client = make_client(stack, grants=("client_credentials", *USER_GRANTS), scopes=OIDC_SCOPES)
    user = make_user(stack)
    home = assert_success(cc_token(stack, client))["access_token"]
    # GIVEN functions with another ISSUER (same table, same key set)
    with stack.functions_with() as w:
        other = dataclasses.replace(stack, watch=w, function_env=dict(w.function_env))
        assert other.issuer != stack.issuer
        foreign = assert_success(cc_token(other, client))["access_token"]
        foreign_user = assert_success(password_token(other, client, user, scope="openid read"),
                                      refresh=True, id_token=True)["access_token"]
        assert jwt.decode(foreign, options={"verify_signature": False})["iss"] == other.issuer
        # THEN each issuer accepts its own tokens only
        assert is_active(other, client, foreign)
        assert_inactive(introspect(other, client, home))
        assert_inactive(tokeninfo_get(other, home))
    assert_inactive(introspect(stack, client, foreign))
    assert_inactive(tokeninfo_get(stack, foreign))
    assert_inactive(tokeninfo_get(stack, bearer=foreign))
    assert_bearer_error(userinfo(stack, foreign_user), 401, "invalid_token")
    assert is_active(stack, client, home)


# ============================================================ introspection: request errors
@pytest.mark.parametrize("how", ["basic", "post"])
def test_introspection_client_auth_failures_are_401(stack, how):
    client = make_client(stack)
    token = assert_success(cc_token(stack, client))["access_token"]
    wrong = {**client, "client_secret": client["client_secret"] + "x"}
    resp = introspect(stack, wrong, token, how=how)
    assert_error(resp, 401, "invalid_client", secrets=[wrong["client_secret"], token],
                 basic_challenge=(how == "basic"))
    unknown = {"client_id": "nobody-" + uuid.uuid4().hex[:8], "client_secret": "s" * 43}
    assert_error(introspect(stack, unknown, token, how=how), 401, "invalid_client", secrets=[token])


def test_client_auth_failures_are_counted_at_token_revocation_and_introspection(stack, aws_backend):
    """Each failed client authentication writes the presented client id's counter, existing
    client or not, in whichever function answered; the answers stay plain invalid_client."""
    from conftest import TABLE_NAME

    client = make_client(stack)
    token = assert_success(cc_token(stack, client))["access_token"]
    wrong = {**client, "client_secret": client["client_secret"] + "x"}
    unknown = {"client_id": "nobody-" + uuid.uuid4().hex[:8], "client_secret": "s" * 43}
    for presented in (wrong, unknown):
        assert_error(cc_token(stack, presented), 401, "invalid_client")
        assert_error(revoke(stack, presented, token), 401, "invalid_client")
        assert_error(introspect(stack, presented, token), 401, "invalid_client")
    dynamodb = aws_backend.client("dynamodb", via_proxy=False)

    def failures(client_id: str) -> int:
        item = dynamodb.get_item(TableName=TABLE_NAME, Key={"pk": {"S": f"lock#client#{client_id}"}},
                                 ConsistentRead=True).get("Item")
        return int(item["failures"]["N"]) if item else 0

    assert failures(client["client_id"]) == 3
    assert failures(unknown["client_id"]) == 3
    # the right secret still works: clients are counted, never locked
    for _ in range(3):
        assert_error(cc_token(stack, wrong), 401, "invalid_client")
    assert failures(client["client_id"]) == 6
    assert introspection(introspect(stack, client, token))["active"] is True


@pytest.mark.sam_local
def test_introspection_without_client_auth_is_401(stack):
    client = make_client(stack)
    token = assert_success(cc_token(stack, client))["access_token"]
    assert_error(introspect(stack, client, token, how=None), 401, "invalid_client", secrets=[token])
    # a Bearer token is not client authentication
    resp = stack.http("POST", TOKENINFO, data={"token": token},
                      headers={"Authorization": f"Bearer {token}"})
    assert_error(resp, 401, "invalid_client", secrets=[token])


def test_disabled_client_cannot_introspect(stack):
    client = make_client(stack)
    token = assert_success(cc_token(stack, client))["access_token"]
    stack.oauthctl("client", "disable", client["client_id"])
    assert_error(introspect(stack, client, token), 401, "invalid_client")


def test_introspection_and_revocation_client_auth_rules_match_the_token_endpoint(stack):
    client = make_client(stack)
    token = assert_success(cc_token(stack, client))["access_token"]
    for path in (TOKENINFO, REVOKE):
        # Basic plus a body client_secret -> invalid_request (SPEC §4, rule 2)
        resp = stack.http("POST", path, headers=client_basic(client),
                          data={"token": token, "client_secret": client["client_secret"]})
        assert_error(resp, 400, "invalid_request", secrets=[client["client_secret"], token])
        # Basic plus a differing body client_id -> invalid_request
        resp = stack.http("POST", path, headers=client_basic(client),
                          data={"token": token, "client_id": client["client_id"] + "x"})
        assert_error(resp, 400, "invalid_request", secrets=[token])
    # Basic plus the same body client_id is allowed
    resp = stack.http("POST", TOKENINFO, headers=client_basic(client),
                      data={"token": token, "client_id": client["client_id"]})
    assert introspection(resp)["active"] is True


def test_api_key_client_needs_its_key_to_introspect_and_revoke(stack):
    client = make_client(stack, api_key=True)
    key = {"X-API-Key": client["api_key"]}
    resp = stack.http("POST", "/oauth/v2/token", headers={**client_basic(client), **key},
                      data={"grant_type": "client_credentials", "scope": "read"})
    token = assert_success(resp)["access_token"]
    secrets = [client["client_secret"], client["api_key"], token]
    # without the key, or with a wrong one: exactly the wrong-secret answer
    for hdrs in ({}, {"X-API-Key": client["api_key"] + "x"}):
        assert_error(introspect(stack, client, token, headers=hdrs), 401, "invalid_client",
                     secrets=secrets, basic_challenge=True)
        resp = stack.http("POST", REVOKE, headers={**client_basic(client), **hdrs}, data={"token": token})
        assert_error(resp, 401, "invalid_client", secrets=secrets, basic_challenge=True)
    # with the key: works
    assert introspection(introspect(stack, client, token, headers=key))["active"] is True
    resp = stack.http("POST", REVOKE, headers={**client_basic(client), **key}, data={"token": token})
    assert_revoked_ok(resp)
    assert_inactive(introspect(stack, client, token, headers=key))


@pytest.mark.parametrize("form", [{}, {"token": ""}, {"token_type_hint": "access_token"}])
def test_introspection_without_token_is_invalid_request(stack, form):
    client = make_client(stack)
    resp = stack.http("POST", TOKENINFO, data=form, headers=client_basic(client))
    assert_error(resp, 400, "invalid_request")


# ============================================================ GET tokeninfo
@pytest.mark.sam_local
def test_get_tokeninfo_matches_introspection(stack):
    client, user, body = user_session(stack, scope="openid email read")
    at = body["access_token"]
    posted = introspection(introspect(stack, client, at))
    by_query = introspection(tokeninfo_get(stack, at))
    by_bearer = introspection(tokeninfo_get(stack, bearer=at))
    assert posted["active"] is True
    assert by_query == posted == by_bearer


def test_get_tokeninfo_is_for_access_tokens_only(stack):
    client, _, body = user_session(stack, scope="read")
    assert_inactive(tokeninfo_get(stack, body["refresh_token"]))
    assert_inactive(tokeninfo_get(stack, bearer=body["refresh_token"]))
    # and the refresh token still works (GET tokeninfo did nothing to it)
    assert_success(refresh(stack, client, body["refresh_token"]), refresh=True)


@pytest.mark.parametrize("bad", ["garbage", "a.b.c", "eyJhbGciOiJub25lIn0.e30."])
def test_get_tokeninfo_invalid_token_is_200_inactive(stack, bad):
    assert_inactive(tokeninfo_get(stack, bad))
    assert_inactive(tokeninfo_get(stack, bearer=bad))


@pytest.mark.sam_local
def test_get_tokeninfo_without_token_is_invalid_request(stack):
    assert_error(tokeninfo_get(stack), 400, "invalid_request")
    resp = stack.http("GET", TOKENINFO, headers={"Authorization": basic("a", "b")})
    assert_error(resp, 400, "invalid_request")


# ============================================================ revocation
@pytest.mark.sam_local
def test_revoking_a_refresh_token_revokes_its_family(stack):
    # GIVEN a session refreshed once (two access tokens with the family's sid)
    client, user, body = user_session(stack, scope="openid read")
    second = assert_success(refresh(stack, client, body["refresh_token"]), refresh=True, id_token=True)
    sid = jwt.decode(second["access_token"], options={"verify_signature": False})["sid"]
    assert jwt.decode(body["access_token"], options={"verify_signature": False})["sid"] == sid
    # AND an unrelated session of the same user and client
    other = assert_success(password_token(stack, client, user, scope="openid read"),
                           refresh=True, id_token=True)
    # WHEN the current refresh token is revoked
    assert_revoked_ok(revoke(stack, client, second["refresh_token"], hint="refresh_token"))
    # THEN it no longer refreshes
    assert_error(refresh(stack, client, second["refresh_token"]), 400, "invalid_grant")
    # AND it and every access token of the family are inactive everywhere
    assert_inactive(introspect(stack, client, second["refresh_token"]))
    for at in (body["access_token"], second["access_token"]):
        assert_inactive(introspect(stack, client, at))
        assert_inactive(tokeninfo_get(stack, at))
        assert_bearer_error(userinfo(stack, at), 401, "invalid_token")
    # AND the other session is untouched
    assert is_active(stack, client, other["access_token"])
    assert is_active(stack, client, other["refresh_token"])
    assert_success(refresh(stack, client, other["refresh_token"]), refresh=True, id_token=True)


@pytest.mark.sam_local
def test_revoking_an_access_token_revokes_only_it(stack):
    # GIVEN two tokens of one client and a user session
    client = make_client(stack, grants=("client_credentials", *USER_GRANTS), scopes=OIDC_SCOPES)
    user = make_user(stack)
    a = assert_success(cc_token(stack, client))["access_token"]
    b = assert_success(cc_token(stack, client))["access_token"]
    session = assert_success(password_token(stack, client, user, scope="openid read"),
                             refresh=True, id_token=True)
    # WHEN one access token is revoked (client_secret_post, no hint)
    assert_revoked_ok(revoke(stack, client, a, how="post"))
    # THEN it is inactive and the others are not
    assert_inactive(introspect(stack, client, a))
    assert_inactive(tokeninfo_get(stack, a))
    assert is_active(stack, client, b)
    # WHEN the user's access token is revoked THEN its refresh token still works
    assert_revoked_ok(revoke(stack, client, session["access_token"], hint="access_token"))
    assert_inactive(introspect(stack, client, session["access_token"]))
    assert_bearer_error(userinfo(stack, session["access_token"]), 401, "invalid_token")
    assert is_active(stack, client, session["refresh_token"])
    fresh = assert_success(refresh(stack, client, session["refresh_token"]), refresh=True, id_token=True)
    assert is_active(stack, client, fresh["access_token"])


def test_revoking_unknown_garbage_or_revoked_tokens_is_200(stack):
    client, _, body = user_session(stack, scope="read")
    at = body["access_token"]
    for token in ("garbage", "a.b.c", "x.y", f"{uuid.uuid4()}.{b64url(b'z' * 32)}"):
        assert_revoked_ok(revoke(stack, client, token))
    for _ in range(2):  # revoked, then already revoked
        assert_revoked_ok(revoke(stack, client, at))
        assert_revoked_ok(revoke(stack, client, body["refresh_token"]))
    assert_inactive(introspect(stack, client, at))


def test_revoking_another_clients_tokens_is_refused(stack):
    # GIVEN tokens of client A
    owner, _, body = user_session(stack, scope="read")
    cc_owner = make_client(stack)
    cc_at = assert_success(cc_token(stack, cc_owner))["access_token"]
    intruder = make_client(stack, grants=USER_GRANTS, scopes=OIDC_SCOPES)
    # WHEN client B tries to revoke them
    for token, hint in ((body["refresh_token"], "refresh_token"),
                        (body["access_token"], "access_token"), (cc_at, None)):
        resp = revoke(stack, intruder, token, hint=hint)
        # THEN 400 invalid_request
        assert_error(resp, 400, "invalid_request", secrets=[token])
    # AND nothing was revoked
    assert is_active(stack, owner, body["refresh_token"])
    assert is_active(stack, owner, body["access_token"])
    assert is_active(stack, cc_owner, cc_at)
    assert_success(refresh(stack, owner, body["refresh_token"]), refresh=True)


def test_revocation_requires_client_auth_and_a_token(stack):
    client = make_client(stack)
    token = assert_success(cc_token(stack, client))["access_token"]
    resp = stack.http("POST", REVOKE, data={"token": token})
    assert_error(resp, 401, "invalid_client", secrets=[token])
    wrong = {**client, "client_secret": client["client_secret"] + "x"}
    assert_error(revoke(stack, wrong, token), 401, "invalid_client", secrets=[token],
                 basic_challenge=True)
    resp = stack.http("POST", REVOKE, data={}, headers=client_basic(client))
    assert_error(resp, 400, "invalid_request")
    assert is_active(stack, client, token)


# ============================================================ userinfo
@pytest.mark.sam_local
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_userinfo_releases_claims_by_scope(stack, method):
    # GIVEN a user with email and name, and a token with openid profile email
    client, user, body = user_session(stack, scope="openid profile email read")
    idt = verify_id_token(stack, body["id_token"], client_id=client["client_id"])
    # WHEN userinfo is called with the access token
    resp = userinfo(stack, body["access_token"], method=method)
    assert resp.status_code == 200, describe(resp)
    assert resp.headers.get("Content-Type", "").split(";")[0].strip() == "application/json", describe(resp)
    info = resp.json()
    # THEN sub is the id_token's (the user's UUID) and the scoped claims are released
    assert info["sub"] == idt["sub"] == user["user_id"]
    assert info["email"] == "ada@example.org"
    assert info["email_verified"] is True
    assert info["name"] == "Ada Lovelace"
    assert info["preferred_username"] == user["username"]
    # AND nothing that is not a claim of the user
    for k in ("scope", "client_id", "jti", "username", "password", "exp"):
        assert k not in info, info


def test_userinfo_claims_follow_the_granted_scopes(stack):
    client, user, body = user_session(stack, scope="openid email")
    info = userinfo(stack, body["access_token"]).json()
    assert info == {"sub": user["user_id"], "email": "ada@example.org", "email_verified": True}
    body = assert_success(password_token(stack, client, user, scope="openid profile"),
                          refresh=True, id_token=True)
    info = userinfo(stack, body["access_token"], method="POST").json()
    assert info == {"sub": user["user_id"], "name": "Ada Lovelace",
                    "preferred_username": user["username"]}
    body = assert_success(password_token(stack, client, user, scope="openid"),
                          refresh=True, id_token=True)
    assert userinfo(stack, body["access_token"]).json() == {"sub": user["user_id"]}


@pytest.mark.sam_local
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_userinfo_without_or_with_invalid_token_is_401(stack, method):
    # no credentials at all: a challenge without an error code (RFC 6750 §3.1)
    bare = userinfo(stack, method=method)
    assert bare.status_code == 401, describe(bare)
    assert bare.headers.get("WWW-Authenticate") == BARE_CHALLENGE, describe(bare)
    for bad in ("garbage", "a.b.c"):
        assert_bearer_error(userinfo(stack, bad, method=method), 401, "invalid_token")
    client, _, body = user_session(stack, scope="openid read")
    head, payload, sig = body["access_token"].split(".")
    tampered = f"{head}.{payload}.{sig[:-6]}{'AAAAAA' if not sig.endswith('AAAAAA') else 'BBBBBB'}"
    assert_bearer_error(userinfo(stack, tampered, method=method), 401, "invalid_token")
    # a refresh token is not an access token
    assert_bearer_error(userinfo(stack, body["refresh_token"], method=method), 401, "invalid_token")


def test_userinfo_needs_a_user_token_with_openid(stack):
    # client_credentials token (openid is dropped from it anyway)
    client = make_client(stack, scopes=("read",))
    cc = assert_success(cc_token(stack, client))["access_token"]
    assert_bearer_error(userinfo(stack, cc), 403, "insufficient_scope")
    assert_bearer_error(userinfo(stack, cc, method="POST"), 403, "insufficient_scope")
    # user token without openid
    _, _, body = user_session(stack, scope="email read")
    assert_bearer_error(userinfo(stack, body["access_token"]), 403, "insufficient_scope")


# ============================================================ logs
def test_logs_never_contain_tokens_secrets_or_query_strings(stack):
    # GIVEN a session, with its tokens sent through every tokeninfo/revocation path
    client, user, body = user_session(stack, scope="openid profile email read")
    at, rt = body["access_token"], body["refresh_token"]
    introspect(stack, client, at)
    introspect(stack, client, rt, how="post")
    tokeninfo_get(stack, at)
    tokeninfo_get(stack, bearer=at)
    userinfo(stack, at)
    userinfo(stack, at, method="POST")
    bogus = "bogus" + uuid.uuid4().hex
    tokeninfo_get(stack, bogus)
    revoke(stack, client, at)
    revoke(stack, client, rt, how="post")
    introspect(stack, {**client, "client_secret": "wrong" + client["client_secret"]}, at)
    time.sleep(1.0)  # let the function output reach the log
    # THEN the functions' log holds none of it
    log = stack.watch.proc.log_path.read_text(errors="replace")
    sig = lambda t: t.rsplit(".", 1)[-1]  # noqa: E731
    for name, value in {"access token signature": sig(at), "refresh token secret": sig(rt),
                        "id_token signature": sig(body["id_token"]),
                        "client secret": client["client_secret"], "password": user["password"],
                        "query token": bogus}.items():
        assert value not in log, f"{name} found in {stack.watch.proc.log_path}"


def test_a_token_the_family_replaced_revokes_it_a_made_up_one_revokes_nothing(stack):
    # The family id is the access tokens' sid, so anyone who saw a token knows it: a secret
    # the family never issued is not a token of it (RFC 7009 §2.2: 200, nothing revoked).
    client, _, body = user_session(stack, scope="read")
    sid = jwt.decode(body["access_token"], options={"verify_signature": False})["sid"]
    assert body["refresh_token"].startswith(sid + ".")
    made_up = f"{sid}.{b64url(b'x' * 32)}"
    assert_inactive(introspect(stack, client, made_up))
    assert_revoked_ok(revoke(stack, client, made_up))
    assert is_active(stack, client, body["refresh_token"])
    assert_error(refresh(stack, client, made_up), 400, "invalid_grant")
    assert is_active(stack, client, body["refresh_token"]), "refused, not reuse"
    # A token the family replaced, from its own client, ends it like reuse (SPEC §4): a client
    # logging out with a token a concurrent refresh just rotated still ends the session.
    new = assert_success(refresh(stack, client, body["refresh_token"]), refresh=True)
    assert_revoked_ok(revoke(stack, client, body["refresh_token"]))
    assert not is_active(stack, client, new["refresh_token"])
    assert not is_active(stack, client, body["access_token"])
