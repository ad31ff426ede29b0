"""What goes over the wire (issue #11, "Also fix"): the userinfo challenge without credentials
(RFC 6750 §3.1), the `address` claim as a JSON object (OIDC Core §5.1.1), an over-long username
(an unknown user, not a client failure), and duplicate keys in a JSON body (SPEC §4).

Every test makes its own clients and users."""

from __future__ import annotations

import uuid

import pytest

from helpers import (
    BARE_CHALLENGE,
    assert_error,
    assert_success,
    client_basic,
    client_lock_pk,
    describe,
    failures_counted,
    jwt_payload,
    make_client,
    make_user,
    password_token,
    post_token,
    unique,
    verify_id_token,
)

USERINFO = "/oauth/v2/userinfo"
USER_GRANTS = ("password", "refresh_token")
OIDC_SCOPES = ("openid", "profile", "email", "address", "read", "write")


# ============================================================ userinfo challenge
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_userinfo_without_credentials_gets_bare_bearer_and_dpop_challenges(stack, method):
    # WHEN userinfo is called with no credentials at all
    resp = stack.http(method, USERINFO)
    # THEN 401 with a challenge that names no error (RFC 6750 §3.1: the request lacked any
    # authentication information)
    assert resp.status_code == 401, describe(resp)
    assert resp.headers.get("WWW-Authenticate") == BARE_CHALLENGE, describe(resp)
    # AND with a bad token the challenge says invalid_token, as before
    bad = stack.http(method, USERINFO, headers={"Authorization": "Bearer garbage"})
    assert bad.status_code == 401, describe(bad)
    challenge = bad.headers.get("WWW-Authenticate", "")
    assert challenge.startswith('Bearer realm="oauth"'), describe(bad)
    assert 'error="invalid_token"' in challenge, describe(bad)


# ============================================================ address claim
@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        ('{"street_address":"1 Main St","locality":"Springfield"}',
         {"street_address": "1 Main St", "locality": "Springfield"}),
        ("1 Main St", {"formatted": "1 Main St"}),
    ],
    ids=["json-object", "plain-string"],
)
def test_address_claim_is_a_json_object(stack, stored, expected):
    # GIVEN a user whose address claim is a JSON object, or a plain string
    client = make_client(stack, grants=USER_GRANTS, scopes=OIDC_SCOPES)
    user = make_user(stack, claims={"address": stored, "email": "adr@example.org"})
    # WHEN the address scope is granted
    body = assert_success(password_token(stack, client, user, scope="openid address"),
                          refresh=True, id_token=True)
    # THEN id_token and userinfo carry it as an object (OIDC Core §5.1.1); a plain string is
    # the object's `formatted` member
    idt = verify_id_token(stack, body["id_token"], client_id=client["client_id"])
    assert idt.get("address") == expected, idt
    resp = stack.http("GET", USERINFO, headers={"Authorization": f"Bearer {body['access_token']}"})
    assert resp.status_code == 200, describe(resp)
    assert resp.json() == {"sub": user["user_id"], "address": expected}
    # AND it is a standard claim: not in the access token
    assert "address" not in jwt_payload(body["access_token"])
    # AND without the address scope it is not released
    other = assert_success(password_token(stack, client, user, scope="openid email"),
                           refresh=True, id_token=True)
    assert "address" not in verify_id_token(stack, other["id_token"], client_id=client["client_id"])
    resp = stack.http("GET", USERINFO, headers={"Authorization": f"Bearer {other['access_token']}"})
    assert resp.status_code == 200 and "address" not in resp.json(), describe(resp)


# ============================================================ over-long username
def test_overlong_username_is_an_unknown_user_not_a_client_failure(stack):
    # GIVEN a client with the password grant
    client = make_client(stack, grants=USER_GRANTS, scopes=OIDC_SCOPES)
    pw = "Pw-" + uuid.uuid4().hex
    at_limit = (unique("e2e-long") + "u" * 256)[:256]
    # (the limit itself: an unknown 256-byte username is an ordinary unknown user)
    edge = password_token(stack, client, {"username": at_limit, "password": pw})
    expected = assert_error(edge, 400, "invalid_grant", secrets=[client["client_secret"], pw])
    # WHEN the username is longer than 256 bytes (in bytes: 129 two-byte characters too)
    for name in ("u" * 257, "é" * 129):
        resp = password_token(stack, client, {"username": name, "password": pw})
        # THEN it is an unknown user: 400 invalid_grant, the same answer, nothing echoed
        body = assert_error(resp, 400, "invalid_grant", secrets=[client["client_secret"], pw])
        assert body == expected, describe(resp)
        assert name not in resp.text
    # AND nothing was counted against the (correctly authenticated) client
    assert failures_counted(stack, client_lock_pk(client["client_id"])) == 0
    # AND a wrong client secret still comes first: 401 invalid_client
    wrong = dict(client, client_secret="Wrong-" + uuid.uuid4().hex)
    resp = password_token(stack, wrong, {"username": "u" * 300, "password": pw})
    assert_error(resp, 401, "invalid_client", secrets=[wrong["client_secret"], pw],
                 basic_challenge=True)
    # AND the client's real users still sign in
    user = make_user(stack)
    assert_success(password_token(stack, client, user, scope="read"), refresh=True)


# ============================================================ duplicate JSON keys
def test_json_body_with_a_duplicate_unknown_key_is_invalid_request(stack):
    # GIVEN a client, and a JSON body that is fine apart from an unknown key (control)
    client = make_client(stack)
    ok = post_token(stack, raw=b'{"grant_type":"client_credentials","x":"1"}',
                    content_type="application/json", headers=client_basic(client))
    assert_success(ok)
    # WHEN the unknown key is repeated (with different or equal values)
    for raw in (b'{"grant_type":"client_credentials","x":"1","x":"2"}',
                b'{"grant_type":"client_credentials","x":"1","x":"1"}'):
        resp = post_token(stack, raw=raw, content_type="application/json",
                          headers=client_basic(client))
        # THEN 400 invalid_request (SPEC §4: duplicates poison the request, known key or not)
        assert_error(resp, 400, "invalid_request", secrets=[client["client_secret"]])
    # AND the same with the client's credentials in the body
    raw = ('{"grant_type":"client_credentials","client_id":"%s","client_secret":"%s",'
           '"x":"1","x":"2"}' % (client["client_id"], client["client_secret"])).encode()
    resp = post_token(stack, raw=raw, content_type="application/json")
    assert_error(resp, 400, "invalid_request", secrets=[client["client_secret"]])
