"""End-to-end tests of the discovery function (SPEC §3, §5, §6): OIDC Discovery 1.0 and
RFC 8414 metadata, the RFC 7517 JWK Set, and verification of access tokens of every
ACCESS_TOKEN_ALG the way a relying party does it (discovery → jwks_uri → key by kid).

No test here depends on specific kids: key rotation (test_rotation.py) may change the set."""

from __future__ import annotations

import dataclasses
import time
from urllib.parse import urlsplit

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from helpers import (
    JWKS_PATH,
    assert_error,
    assert_success,
    cc_token,
    client_basic,
    describe,
    fetch_jwks,
    make_client,
    make_user,
    password_token,
    verify_access_token,
    verify_id_token,
    verify_jwt,
)

OIDC_PATH = "/oauth/.well-known/openid-configuration"
RFC8414_PATH = "/.well-known/oauth-authorization-server/oauth"
METADATA_PATHS = (OIDC_PATH, RFC8414_PATH)
AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt"]
ASSERTION_ALGS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"]
PRIVATE_JWK_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")
ALG_SHAPE = {  # alg -> (kty, crv, public members)
    "RS256": ("RSA", None, ("n", "e")),
    "ES256": ("EC", "P-256", ("x", "y")),
    "EdDSA": ("OKP", "Ed25519", ("x",)),
}
OIDC_SCOPES = ("openid", "profile", "email", "read", "write")


def on(stack, watch):
    """The session stack seen through another `functions_with` watcher: helpers that take
    `stack` then talk to that watcher and expect its ISSUER."""
    return dataclasses.replace(stack, watch=watch, function_env=dict(watch.function_env))


def get_metadata(stack, path: str) -> requests.Response:
    resp = stack.http("GET", path)
    assert resp.status_code == 200, describe(resp)
    assert resp.headers.get("Content-Type", "").split(";")[0].strip() == "application/json", describe(resp)
    return resp


def assert_public_cacheable(resp: requests.Response) -> None:
    assert resp.headers.get("Cache-Control") == "public, max-age=300", describe(resp)
    assert resp.headers.get("Access-Control-Allow-Origin") == "*", describe(resp)


# ============================================================ metadata documents
@pytest.mark.sam_local
def test_both_metadata_documents_are_identical_and_complete(stack):
    # WHEN both well-known documents are fetched
    oidc = get_metadata(stack, OIDC_PATH).json()
    rfc8414 = get_metadata(stack, RFC8414_PATH).json()
    # THEN they carry the same content
    assert oidc == rfc8414
    iss = stack.issuer
    # AND every endpoint lives under the issuer
    assert oidc["issuer"] == iss
    assert oidc["token_endpoint"] == f"{iss}/v2/token"
    assert oidc["jwks_uri"] == f"{iss}/v2/jwks"
    assert oidc["userinfo_endpoint"] == f"{iss}/v2/userinfo"
    assert oidc["introspection_endpoint"] == f"{iss}/v2/tokeninfo"
    assert oidc["revocation_endpoint"] == f"{iss}/v2/revoke"
    # AND the advertised capabilities are the ones SPEC §3 lists
    assert oidc["authorization_endpoint"] == f"{iss}/v2/authorize"
    assert oidc["end_session_endpoint"] == f"{iss}/v2/logout"
    assert set(oidc["grant_types_supported"]) == {
        "authorization_code", "client_credentials", "password", "refresh_token"}
    # a public client authenticates with `none` at the token endpoint only
    assert oidc["token_endpoint_auth_methods_supported"] == [*AUTH_METHODS, "none"]
    for name in ("introspection_endpoint", "revocation_endpoint"):
        assert oidc[f"{name}_auth_methods_supported"] == AUTH_METHODS, name
    # private_key_jwt assertions: asymmetric algorithms only (never none, never HMAC)
    for name in ("token_endpoint", "introspection_endpoint", "revocation_endpoint"):
        assert oidc[f"{name}_auth_signing_alg_values_supported"] == ASSERTION_ALGS, name
    assert {"openid", "profile", "email"} <= set(oidc["scopes_supported"])
    assert {"sub", "iss", "email", "email_verified", "preferred_username", "name"} <= set(
        oidc["claims_supported"]
    )
    assert oidc["subject_types_supported"] == ["public"]
    assert oidc["id_token_signing_alg_values_supported"] == ["RS256"]
    assert oidc["response_types_supported"] == ["code"]
    assert oidc["response_modes_supported"] == ["query", "form_post"]
    assert oidc["code_challenge_methods_supported"] == ["S256"]
    assert oidc["authorization_response_iss_parameter_supported"] is True
    assert oidc["prompt_values_supported"] == ["none", "login", "consent"]
    assert oidc["request_parameter_supported"] is False
    assert oidc["request_uri_parameter_supported"] is False


@pytest.mark.sam_local
@pytest.mark.parametrize("path", [*METADATA_PATHS, JWKS_PATH])
def test_discovery_and_jwks_are_public_and_cacheable(stack, path):
    resp = stack.http("GET", path)
    assert resp.status_code == 200, describe(resp)
    assert_public_cacheable(resp)


@pytest.mark.sam_local
def test_rfc8414_location_is_derived_from_the_issuer(stack):
    # RFC 8414 §3: well-known suffix inserted between host and the issuer's path component;
    # OIDC Discovery §4: issuer + /.well-known/openid-configuration.
    parts = urlsplit(stack.issuer)
    origin = f"{parts.scheme}://{parts.netloc}"
    a = requests.get(f"{origin}/.well-known/oauth-authorization-server{parts.path}", timeout=30)
    b = requests.get(f"{stack.issuer}/.well-known/openid-configuration", timeout=30)
    assert a.status_code == 200 and b.status_code == 200, (describe(a), describe(b))
    assert a.json()["issuer"] == b.json()["issuer"] == stack.issuer


@pytest.mark.sam_local
def test_every_endpoint_in_the_metadata_answers(stack):
    # GIVEN the discovery document
    meta = get_metadata(stack, OIDC_PATH).json()
    # THEN the token endpoint answers a bad POST with an RFC 6749 §5.2 JSON error
    resp = requests.post(meta["token_endpoint"], data={"grant_type": "client_credentials"}, timeout=30)
    assert_error(resp, 401, "invalid_client")
    client = make_client(stack)
    resp = requests.post(meta["token_endpoint"], data={}, headers=client_basic(client), timeout=30)
    assert_error(resp, 400, "invalid_request")
    # AND revocation and introspection answer an unauthenticated POST with 401 invalid_client
    for name in ("revocation_endpoint", "introspection_endpoint"):
        resp = requests.post(meta[name], data={"token": "x"}, timeout=30)
        assert_error(resp, 401, "invalid_client")
        # and an authenticated one without `token` with 400 invalid_request
        resp = requests.post(meta[name], data={}, headers=client_basic(client), timeout=30)
        assert_error(resp, 400, "invalid_request")
    # AND the JWKS answers GET
    resp = requests.get(meta["jwks_uri"], timeout=30)
    assert resp.status_code == 200, describe(resp)
    assert resp.json()["keys"], describe(resp)
    # AND userinfo without a token is a 401 Bearer challenge
    resp = requests.get(meta["userinfo_endpoint"], timeout=30)
    assert resp.status_code == 401, describe(resp)
    assert resp.headers.get("WWW-Authenticate", "").startswith("Bearer"), describe(resp)


# ============================================================ JWKS
def _check_public_jwk(jwk: dict) -> None:
    kty, crv, members = ALG_SHAPE[jwk["alg"]]
    assert jwk["kty"] == kty, jwk
    assert jwk["use"] == "sig", jwk
    if crv is not None:
        assert jwk["crv"] == crv, jwk
    for m in members:
        assert isinstance(jwk.get(m), str) and jwk[m], (m, jwk)
    for m in PRIVATE_JWK_MEMBERS:
        assert m not in jwk, f"private member {m!r} published: {sorted(jwk)}"
    key = jwt.PyJWK(jwk).key
    if kty == "RSA":
        assert isinstance(key, rsa.RSAPublicKey) and key.key_size >= 2048, jwk
    elif kty == "EC":
        assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1", jwk
    else:
        assert isinstance(key, ed25519.Ed25519PublicKey), jwk


@pytest.mark.sam_local
def test_jwks_publishes_every_key_public_half_only(stack):
    # GIVEN the key set as oauthctl sees it (init: active + next per alg)
    listed = stack.oauthctl("key", "list")["keys"]
    for alg in ALG_SHAPE:
        statuses = [k["status"] for k in listed if k["alg"] == alg]
        assert statuses.count("active") == 1 and statuses.count("next") >= 1, (alg, listed)
    # WHEN the JWKS is fetched
    resp = stack.http("GET", JWKS_PATH)
    assert resp.status_code == 200, describe(resp)
    served = fetch_jwks(stack)
    # THEN every key (active, next, retired) is published, with its alg
    assert set(served) == {k["kid"] for k in listed}, (sorted(served), listed)
    for k in listed:
        assert served[k["kid"]]["alg"] == k["alg"], (k, served[k["kid"]])
    # AND every key is a well-formed public JWK of its kind, with no private members
    for jwk in served.values():
        _check_public_jwk(jwk)
    assert set(resp.json()) == {"keys"}


@pytest.mark.sam_local
def test_default_access_tokens_are_rs256_and_verify(stack):
    client = make_client(stack)
    token = assert_success(cc_token(stack, client))["access_token"]
    claims = verify_access_token(stack, token)  # asserts RS256, at+jwt, kid in JWKS
    assert claims["client_id"] == client["client_id"]


@pytest.fixture(scope="module", params=["ES256", "EdDSA"])
def alg_stack(request, stack):
    """The functions with ACCESS_TOKEN_ALG set (own port, so its own ISSUER; same keys)."""
    with stack.functions_with(ACCESS_TOKEN_ALG=request.param) as w:
        yield request.param, on(stack, w)


def test_access_tokens_of_each_alg_verify_against_the_jwks(stack, alg_stack):
    alg, st = alg_stack
    # GIVEN the functions signing access tokens with `alg`
    client = make_client(st)
    token = assert_success(cc_token(st, client))["access_token"]
    # THEN the token is signed with that alg, by a key the JWKS publishes under the same alg
    header, claims = verify_jwt(
        st, token, typ="at+jwt", audience=st.issuer, alg=alg,
        required=("iss", "sub", "aud", "exp", "iat", "nbf", "jti", "client_id", "scope"),
    )
    assert claims["iss"] == st.issuer and claims["sub"] == client["client_id"]
    jwk = fetch_jwks(st)[header["kid"]]
    _check_public_jwk(jwk)
    # AND the key that signed it is the active key of that alg
    listed = {k["kid"]: k for k in stack.oauthctl("key", "list")["keys"]}
    assert listed[header["kid"]]["alg"] == alg
    assert listed[header["kid"]]["status"] in ("active", "retired"), listed[header["kid"]]
    # AND tokeninfo of the same functions accepts it
    resp = st.http("POST", "/oauth/v2/tokeninfo", data={"token": token}, headers=client_basic(client))
    assert resp.status_code == 200, describe(resp)
    assert resp.json()["active"] is True, describe(resp)
    # AND a relying party that only knows the issuer verifies it too
    relying_party_verify(st.issuer, token, audience=st.issuer)


def test_id_tokens_stay_rs256_whatever_the_access_token_alg(stack, alg_stack):
    alg, st = alg_stack
    client = make_client(st, grants=("password", "refresh_token"), scopes=OIDC_SCOPES)
    user = make_user(st)
    body = assert_success(password_token(st, client, user, scope="openid read"),
                          refresh=True, id_token=True)
    assert jwt.get_unverified_header(body["access_token"])["alg"] == alg
    idt = verify_id_token(st, body["id_token"], client_id=client["client_id"])  # asserts RS256
    assert idt["sub"] == user["user_id"]


# ============================================================ relying party
def relying_party_verify(issuer: str, token: str, *, audience: str) -> dict:
    """What an OIDC relying party library does: discovery document from the issuer, then
    PyJWKClient on its jwks_uri; nothing else is trusted."""
    meta_resp = requests.get(f"{issuer}/.well-known/openid-configuration", timeout=30)
    assert meta_resp.status_code == 200, describe(meta_resp)
    meta = meta_resp.json()
    assert meta["issuer"] == issuer
    header = jwt.get_unverified_header(token)
    assert header.get("typ", "").lower() == "at+jwt", header  # RFC 9068 §4
    jwks_client = jwt.PyJWKClient(meta["jwks_uri"], cache_keys=False, timeout=30)
    signing_key = jwks_client.get_signing_key_from_jwt(token)
    assert signing_key.algorithm_name == header["alg"]
    return jwt.decode(
        token,
        key=signing_key.key,
        algorithms=[header["alg"]],
        issuer=meta["issuer"],
        audience=audience,
        leeway=5,
        options={"require": ["iss", "sub", "aud", "exp", "iat", "jti"]},
    )


@pytest.mark.sam_local
def test_relying_party_verifies_through_discovery_and_jwks_only(stack):
    # GIVEN a client with its own audience and a token for it
    audience = "https://api.example.test/orders"
    client = make_client(stack, audience=audience)
    token = assert_success(cc_token(stack, client))["access_token"]
    # WHEN a relying party verifies it knowing only the issuer
    claims = relying_party_verify(stack.issuer, token, audience=audience)
    # THEN signature, iss, aud and typ check out
    assert claims["aud"] in (audience, [audience])
    assert claims["client_id"] == client["client_id"]
    # AND the wrong audience or a tampered token is rejected by the same library
    with pytest.raises(jwt.InvalidAudienceError):
        relying_party_verify(stack.issuer, token, audience="https://other.example.test")
    head, payload, sig = token.split(".")
    flipped = sig[:-4] + ("AAAA" if sig[-4:] != "AAAA" else "BBBB")
    with pytest.raises(jwt.InvalidSignatureError):
        relying_party_verify(stack.issuer, f"{head}.{payload}.{flipped}", audience=audience)


@pytest.mark.sam_local
def test_user_token_verifies_through_discovery_and_jwks(stack):
    client = make_client(stack, grants=("password",), scopes=OIDC_SCOPES)
    user = make_user(stack)
    body = assert_success(password_token(stack, client, user, scope="openid read"), id_token=True)
    claims = relying_party_verify(stack.issuer, body["access_token"], audience=stack.issuer)
    assert claims["sub"] == user["user_id"]
    assert claims["exp"] > time.time()
