"""End-to-end tests of DPoP (RFC 9449) over real HTTP: a proof at the token endpoint binds the
access token to the client's key (`cnf.jkt`, `token_type: DPoP`) and, for a public client, the
refresh token; introspection shows the binding; userinfo takes a bound token only under the
DPoP scheme with a proof by that key (`ath`), never as a bearer token.

Two kinds of client: openid-client v6 (tests/e2e/rp/rp.mjs, `getDPoPHandle`) for
client_credentials (here) and for sign-in, refresh and userinfo (test_browser.py), and proofs
built here with PyJWT for every rule a proof must satisfy. The thumbprints are computed here
(RFC 7638), independently of the server's.
"""

from __future__ import annotations

import collections
import hashlib
import hmac
import json
import shutil
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Optional

import jwt
import pytest
import requests

from browser import INSTALL_HINT, RP_DIR, run_rp
from dpop_keys import DpopKey, ath, b64url, new_key, proof
from helpers import (
    TOKEN_PATH,
    TOKENINFO,
    USERINFO,
    assert_error,
    assert_success,
    client_basic,
    describe,
    jwt_payload,
    make_client,
    make_user,
    post_token,
    verify_access_token,
)

OIDC_PATH = "/oauth/.well-known/openid-configuration"
MAX_AGE = 60  # a proof's iat may be this old
LEEWAY = 5
CONCURRENT = 20


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def service(stack) -> dict:
    """A confidential client with client_credentials and password (openid scopes)."""
    return make_client(stack, grants=("client_credentials", "password", "refresh_token"),
                       scopes=("openid", "email", "read"))


@pytest.fixture(scope="module")
def user(stack) -> dict:
    return make_user(stack, claims={"email": "dpop@example.org"})


def token_url(stack) -> str:
    return stack.issuer + "/v2/token"


def userinfo_url(stack) -> str:
    return stack.issuer + "/v2/userinfo"


def cc_with_proof(stack, client: dict, dpop: Optional[str], **form) -> Any:
    headers = client_basic(client)
    if dpop is not None:
        headers["DPoP"] = dpop
    return post_token(stack, data={"grant_type": "client_credentials", "scope": "read", **form},
                      headers=headers)


def assert_bound(resp, key: DpopKey, stack, *, refresh: bool = False,
                 id_token: bool = False) -> dict:
    body = assert_success(resp, refresh=refresh, id_token=id_token, token_type="DPoP")
    claims = verify_access_token(stack, body["access_token"])
    assert claims["cnf"] == {"jkt": key.jkt}, claims
    return body


def assert_invalid_proof(resp, status: int = 400) -> None:
    assert_error(resp, status, "invalid_dpop_proof")
    assert "access_token" not in resp.text, describe(resp)


def introspect(stack, client: dict, token: str) -> dict:
    resp = stack.http("POST", TOKENINFO, data={"token": token}, headers=client_basic(client))
    assert resp.status_code == 200, describe(resp)
    return resp.json()


def userinfo(stack, authorization: str, dpop: Optional[str] = None):
    headers = {"Authorization": authorization}
    if dpop is not None:
        headers["DPoP"] = dpop
    return stack.http("GET", USERINFO, headers=headers)


def password_with_proof(stack, client, user, key: DpopKey) -> dict:
    data = {"grant_type": "password", "username": user["username"], "password": user["password"],
            "scope": "openid email"}
    headers = {**client_basic(client), "DPoP": proof(key, "POST", token_url(stack))}
    return assert_bound(post_token(stack, data=data, headers=headers), key, stack, refresh=True,
                        id_token=True)


# ============================================================ discovery
@pytest.mark.sam_local
def test_discovery_advertises_dpop_algorithms(stack):
    doc = stack.http("GET", OIDC_PATH).json()
    algs = doc["dpop_signing_alg_values_supported"]
    assert {"ES256", "PS256", "RS256", "EdDSA"} <= set(algs), algs
    assert not {"none", "HS256"} & set(algs), algs


# ============================================================ openid-client v6
def openid_client(stack, client: dict, key: DpopKey, op: str, **fields: Any) -> dict:
    """One rp.mjs run (discovery, then `op`) with a DPoP handle on `key`."""
    if not shutil.which("node") or not (RP_DIR / "node_modules" / "openid-client").is_dir():
        pytest.fail(f"node and {RP_DIR / 'node_modules' / 'openid-client'} needed: {INSTALL_HINT}",
                    pytrace=False)
    return run_rp({"op": op, "server": stack.issuer, "client_id": client["client_id"],
                   "client_secret": client["client_secret"], "dpop_jwk": key.private_jwk,
                   **fields})


@pytest.mark.sam_local
@pytest.mark.parametrize("kind", ["ec", "rsa", "ed"], ids=["ES256", "PS256", "EdDSA"])
def test_openid_client_gets_a_dpop_bound_token(stack, service, kind):
    # GIVEN openid-client with a DPoP key pair (getDPoPHandle)
    key = new_key(kind)
    # WHEN it asks for a client_credentials token
    tokens = openid_client(stack, service, key, "client_credentials", scope="read")["tokens"]
    # THEN the token is DPoP-bound to its key (openid-client checks token_type itself)
    assert tokens["token_type"].lower() == "dpop", tokens
    claims = verify_access_token(stack, tokens["access_token"])
    assert claims["cnf"] == {"jkt": key.jkt}, claims
    # AND introspection says so (RFC 9449 §6.2)
    info = introspect(stack, service, tokens["access_token"])
    assert info["active"] is True and info["token_type"] == "DPoP", info
    assert info["cnf"] == {"jkt": key.jkt}, info


# ============================================================ the token endpoint
@pytest.mark.sam_local
def test_a_proof_binds_the_token_and_no_proof_gives_a_bearer_token(stack, service):
    key = new_key()
    assert_bound(cc_with_proof(stack, service, proof(key, "POST", token_url(stack))), key, stack)
    plain = assert_success(cc_with_proof(stack, service, None))
    assert plain["token_type"] == "Bearer"
    assert "cnf" not in jwt_payload(plain["access_token"])


@pytest.mark.parametrize("path", ["/oauth2/token", "/api/id/v1/auth/token"])
def test_alias_routes_take_a_proof_for_their_own_url(stack, service, path):
    key = new_key()
    origin = stack.issuer.rsplit("/oauth", 1)[0]
    headers = {**client_basic(service), "DPoP": proof(key, "POST", origin + path)}
    resp = post_token(stack, data={"grant_type": "client_credentials", "scope": "read"},
                      headers=headers, path=path)
    assert_bound(resp, key, stack)


def _bad_proofs() -> dict[str, Any]:
    """name -> (key, url) -> an invalid proof for POST url."""
    other = new_key("ec")
    # The clock is read when a proof is made, not when the module is collected: the stack
    # takes a minute to start, which would turn "iat 60 s ahead" into "iat now".
    def now() -> int:
        return int(time.time())

    return {
        "wrong htm": lambda k, u: proof(k, "GET", u),
        "wrong htu": lambda k, u: proof(k, "POST", u.replace("/v2/token", "/v2/revoke")),
        "htu of another host": lambda k, u: proof(k, "POST", "https://evil.example/oauth/v2/token"),
        "stale iat": lambda k, u: proof(k, "POST", u, iat=now() - MAX_AGE - 30),
        "future iat": lambda k, u: proof(k, "POST", u, iat=now() + 60),
        "no jti": lambda k, u: proof(k, "POST", u, jti=None),
        "no htu": lambda k, u: proof(k, "POST", u, htu=None),
        "no iat": lambda k, u: proof(k, "POST", u, iat=None),
        "typ JWT": lambda k, u: proof(k, "POST", u, header={"typ": "JWT"}),
        "no jwk": lambda k, u: jwt.encode({"jti": "x", "htm": "POST", "htu": u, "iat": now()},
                                          k.private_key, algorithm=k.alg,
                                          headers={"typ": "dpop+jwt"}),
        "signed by another key": lambda k, u: proof(k, "POST", u, signing_key=other.private_key),
        "private key in jwk": lambda k, u: proof(k, "POST", u, header={"jwk": k.private_jwk}),
        "alg none": lambda k, u: _unsigned(k, u, "none"),
        "HS256 over the jwk": lambda k, u: _hmac(k, u),
        "crit header": lambda k, u: proof(k, "POST", u, header={"crit": ["exp"], "exp": 1}),
        "not a JWT": lambda k, u: "not-a-proof",
    }


def _unsigned(key: DpopKey, url: str, alg: str) -> str:
    header = {"typ": "dpop+jwt", "alg": alg, "jwk": key.public_jwk}
    claims = {"jti": str(uuid.uuid4()), "htm": "POST", "htu": url, "iat": int(time.time())}
    return f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}."


def _hmac(key: DpopKey, url: str) -> str:
    header = {"typ": "dpop+jwt", "alg": "HS256", "jwk": key.public_jwk}
    claims = {"jti": str(uuid.uuid4()), "htm": "POST", "htu": url, "iat": int(time.time())}
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
    mac = hmac.new(json.dumps(key.public_jwk).encode(), signing_input.encode(), hashlib.sha256)
    return f"{signing_input}.{b64url(mac.digest())}"


BAD_PROOFS = _bad_proofs()


@pytest.mark.parametrize("case", sorted(BAD_PROOFS))
def test_a_bad_proof_is_invalid_dpop_proof(stack, service, case):
    key = new_key()
    bad = BAD_PROOFS[case](key, token_url(stack))
    assert_invalid_proof(cc_with_proof(stack, service, bad))


@pytest.mark.sam_local
def test_a_proof_is_good_for_one_request(stack, service):
    key = new_key()
    once = proof(key, "POST", token_url(stack))
    assert_bound(cc_with_proof(stack, service, once), key, stack)
    assert_invalid_proof(cc_with_proof(stack, service, once))


def test_concurrent_requests_with_one_proof_have_exactly_one_winner(stack, service):
    key = new_key()
    once = proof(key, "POST", token_url(stack))
    start = threading.Barrier(CONCURRENT)

    def one(_):
        start.wait(timeout=60)
        return cc_with_proof(stack, service, once)

    with ThreadPoolExecutor(max_workers=CONCURRENT) as pool:
        results = list(pool.map(one, range(CONCURRENT)))
    outcomes = collections.Counter(
        "200" if r.status_code == 200 else f"{r.status_code} {r.json().get('error')}"
        for r in results)
    assert outcomes == {"200": 1, "400 invalid_dpop_proof": CONCURRENT - 1}, dict(outcomes)


def test_a_client_registered_with_require_dpop_gets_no_bearer_token(stack):
    # GIVEN a client created with --require-dpop
    strict = make_client(stack, extra_args=["--require-dpop"])
    shown = stack.oauthctl("client", "show", strict["client_id"])
    assert shown["dpop_bound_access_tokens"] is True, shown
    # WHEN it asks without a proof THEN invalid_dpop_proof, and no token
    assert_invalid_proof(cc_with_proof(stack, strict, None))
    # WHEN it sends one THEN a bound token
    key = new_key()
    assert_bound(cc_with_proof(stack, strict, proof(key, "POST", token_url(stack))), key, stack)


def test_a_confidential_clients_refresh_may_prove_another_key(stack, service, user):
    # GIVEN a confidential client's DPoP-bound tokens from the password grant
    first, second = new_key(), new_key("ed")
    body = password_with_proof(stack, service, user, first)
    # WHEN it refreshes with a proof of another key (its refresh token is bound by its
    # authentication, not a key, RFC 9449 §5) THEN the new access token is bound to that key
    headers = {**client_basic(service), "DPoP": proof(second, "POST", token_url(stack))}
    resp = post_token(stack, data={"grant_type": "refresh_token",
                                   "refresh_token": body["refresh_token"]}, headers=headers)
    assert_bound(resp, second, stack, refresh=True, id_token=True)


def test_revocation_and_introspection_ignore_a_dpop_header(stack, service):
    # Only the token endpoint and userinfo read proofs; elsewhere the header changes nothing.
    key = new_key()
    token = assert_bound(cc_with_proof(stack, service, proof(key, "POST", token_url(stack))),
                         key, stack)["access_token"]
    resp = stack.http("POST", TOKENINFO, data={"token": token},
                      headers={**client_basic(service), "DPoP": "garbage"})
    assert resp.status_code == 200 and resp.json()["active"] is True, describe(resp)


# ============================================================ userinfo
@pytest.mark.sam_local
def test_userinfo_takes_a_bound_token_with_a_proof_by_its_key(stack, service, user):
    key = new_key()
    token = password_with_proof(stack, service, user, key)["access_token"]
    good = proof(key, "GET", userinfo_url(stack), ath=ath(token))
    resp = userinfo(stack, f"DPoP {token}", good)
    assert resp.status_code == 200, describe(resp)
    assert resp.json()["sub"] == user["user_id"]
    assert resp.json()["email"] == "dpop@example.org"
    # AND the same proof is not good twice
    again = userinfo(stack, f"DPoP {token}", good)
    assert_error(again, 401, "invalid_dpop_proof")


def test_userinfo_refuses_a_bound_token_as_bearer(stack, service, user):
    key = new_key()
    token = password_with_proof(stack, service, user, key)["access_token"]
    resp = userinfo(stack, f"Bearer {token}")
    assert_error(resp, 401, "invalid_token")
    challenge = resp.headers["WWW-Authenticate"]
    assert challenge.startswith("DPoP algs=") and 'error="invalid_token"' in challenge, challenge
    assert token not in resp.text


@pytest.mark.parametrize("case", ["no proof", "another key", "no ath", "ath of another token",
                                  "wrong htm", "proof for the token endpoint"])
def test_userinfo_refuses_a_bad_proof(stack, service, user, case):
    key, other = new_key(), new_key()
    token = password_with_proof(stack, service, user, key)["access_token"]
    url = userinfo_url(stack)
    bad = {
        "no proof": None,
        "another key": proof(other, "GET", url, ath=ath(token)),
        "no ath": proof(key, "GET", url),
        "ath of another token": proof(key, "GET", url, ath=ath(token + "x")),
        "wrong htm": proof(key, "POST", url, ath=ath(token)),
        "proof for the token endpoint": proof(key, "GET", token_url(stack), ath=ath(token)),
    }[case]
    resp = userinfo(stack, f"DPoP {token}", bad)
    assert_error(resp, 401, "invalid_dpop_proof")
    assert 'error="invalid_dpop_proof"' in resp.headers["WWW-Authenticate"]


def test_userinfo_refuses_an_unbound_token_under_the_dpop_scheme(stack, service, user):
    data = {"grant_type": "password", "username": user["username"], "password": user["password"],
            "scope": "openid email"}
    token = assert_success(post_token(stack, data=data, headers=client_basic(service)),
                           refresh=True, id_token=True)["access_token"]
    key = new_key()
    resp = userinfo(stack, f"DPoP {token}", proof(key, "GET", userinfo_url(stack), ath=ath(token)))
    assert_error(resp, 401, "invalid_token")
    # As a bearer token it works, as before
    assert userinfo(stack, f"Bearer {token}").status_code == 200


# ============================================================ server nonces
def test_with_nonces_required_proofs_carry_the_servers_nonce(stack, service, user):
    # GIVEN the functions with DPOP_NONCE_REQUIRED=true
    with stack.functions_with(DPOP_NONCE_REQUIRED="true") as w:
        issuer = f"http://127.0.0.1:{w.port}/oauth"
        url = issuer + "/v2/token"
        key = new_key()
        form = {"grant_type": "client_credentials", "scope": "read"}

        def send(dpop: str):
            return requests.post(w.base_url + TOKEN_PATH, data=form, timeout=60,
                                 headers={**client_basic(service), "DPoP": dpop})

        # WHEN a proof comes without a nonce THEN use_dpop_nonce, and the nonce to use
        first = send(proof(key, "POST", url))
        assert_error(first, 400, "use_dpop_nonce")
        nonce = first.headers["DPoP-Nonce"]
        # AND a made-up nonce is no better
        assert_error(send(proof(key, "POST", url, nonce="made-up")), 400, "use_dpop_nonce")
        # WHEN the proof carries it THEN a bound token, and the nonce again
        ok = send(proof(key, "POST", url, nonce=nonce))
        body = assert_success(ok, token_type="DPoP")
        assert jwt_payload(body["access_token"])["cnf"] == {"jkt": key.jkt}
        assert ok.headers["DPoP-Nonce"] == nonce
        # AND openid-client learns the nonce from the refusal and retries by itself, at the
        # token endpoint and at userinfo
        rp = {"server": issuer, "client_id": service["client_id"],
              "client_secret": service["client_secret"], "dpop_jwk": key.private_jwk}
        if not shutil.which("node") or not (RP_DIR / "node_modules" / "openid-client").is_dir():
            pytest.fail(f"openid-client needed: {INSTALL_HINT}", pytrace=False)
        tokens = run_rp({**rp, "op": "client_credentials", "scope": "read"})["tokens"]
        assert tokens["token_type"].lower() == "dpop", tokens
        password = {"grant_type": "password", "username": user["username"],
                    "password": user["password"], "scope": "openid email"}
        signed_in = requests.post(w.base_url + TOKEN_PATH, data=password, timeout=60, headers={
            **client_basic(service), "DPoP": proof(key, "POST", url, nonce=nonce)})
        access = assert_success(signed_in, refresh=True, id_token=True,
                                token_type="DPoP")["access_token"]
        info = run_rp({**rp, "op": "userinfo", "access_token": access,
                       "sub": user["user_id"]})["userinfo"]
        assert info["sub"] == user["user_id"], info


def test_oauthctl_client_update_turns_require_dpop_on_and_off(stack):
    # GIVEN a client that takes bearer tokens
    client = make_client(stack)
    assert_success(cc_with_proof(stack, client, None))
    # WHEN DPoP is required THEN a request without a proof gets no token
    shown = stack.oauthctl("client", "update", client["client_id"], "--require-dpop", "true")
    assert shown["dpop_bound_access_tokens"] is True, shown
    assert_invalid_proof(cc_with_proof(stack, client, None))
    key = new_key()
    assert_bound(cc_with_proof(stack, client, proof(key, "POST", token_url(stack))), key, stack)
    # WHEN it is no longer required THEN bearer tokens again
    stack.oauthctl("client", "update", client["client_id"], "--require-dpop", "false")
    assert_success(cc_with_proof(stack, client, None))
    # AND an update that changes nothing is refused
    with pytest.raises(Exception, match="nothing to change"):
        stack.oauthctl("client", "update", client["client_id"])
