"""End-to-end tests of `private_key_jwt` client authentication (RFC 7523 §2.2 and §3, OIDC
Core §9) over real HTTP: the client registers a JWKS of public keys with
`oauthctl client create --auth-method private_key_jwt --jwks FILE`, and authenticates at the
token, introspection and revocation endpoints with a JWT signed by one of its private keys.

Three kinds of relying party: Authlib's OAuth2Session with `PrivateKeyJWT`, openid-client v6
(tests/e2e/rp/rp.mjs, `client.PrivateKeyJwt`), and assertions built by hand with PyJWT for
every rule an assertion must satisfy. Every refusal is 401 invalid_client, except a request
that mixes authentication methods or names another assertion type (400 invalid_request).

The keys (RSA 2048, EC P-256 and P-384, Ed25519) are generated here; the clients are
registered once per module. Every assertion has a fresh uuid4 jti, except in the replay tests.
"""

from __future__ import annotations

import base64
import collections
import hashlib
import hmac
import json
import os
import shutil
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import jwt
import pytest
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from joserfc import jwk as joserfc_jwk

from browser import INSTALL_HINT, RP_DIR, Refused, run_rp
from helpers import (
    REVOKE,
    TOKEN_PATH,
    TOKENINFO,
    assert_error,
    assert_success,
    basic,
    cc_token,
    describe,
    jwt_payload,
    make_client,
    post_token,
    unique,
    verify_access_token,
)

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
OIDC_PATH = "/oauth/.well-known/openid-configuration"
MAX_LIFETIME = 3600  # exp at most this far ahead (plus LEEWAY)
LEEWAY = 5
CONCURRENT = 20
# joserfc (under Authlib) warns that RFC 9864 deprecates the name "EdDSA"; it still signs.
EDDSA_WARNING = "ignore:EdDSA is deprecated"


# ----------------------------------------------------------------------------- keys
@dataclass
class Signer:
    """One key pair: the private key (cryptography), its public JWK as registered, and its
    private JWK (for Authlib and openid-client). `alg` is what this key signs with by default."""

    kid: str
    alg: str
    private_key: Any
    public_jwk: dict
    private_jwk: dict


KINDS = {  # kind -> (generate, PyJWT algorithm class, default alg)
    "rsa": (lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
            jwt.algorithms.RSAAlgorithm, "RS256"),
    "ec": (lambda: ec.generate_private_key(ec.SECP256R1()), jwt.algorithms.ECAlgorithm, "ES256"),
    "p384": (lambda: ec.generate_private_key(ec.SECP384R1()), jwt.algorithms.ECAlgorithm, "ES384"),
    "ed": (ed25519.Ed25519PrivateKey.generate, jwt.algorithms.OKPAlgorithm, "EdDSA"),
}


def new_signer(kind: str) -> Signer:
    generate, algorithm, alg = KINDS[kind]
    private_key = generate()
    kid = f"{kind}-{uuid.uuid4().hex[:12]}"

    def as_jwk(key) -> dict:
        out = algorithm.to_jwk(key, as_dict=True)
        out.pop("key_ops", None)  # PyJWT adds it for RSA; `use` says the same (RFC 7517 §4.3)
        return {**out, "kid": kid, "use": "sig"}

    return Signer(kid, alg, private_key, as_jwk(private_key.public_key()), as_jwk(private_key))


def public_pem(signer: Signer) -> bytes:
    return signer.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


# ----------------------------------------------------------------------------- clients
@dataclass
class PkClient:
    """A registered private_key_jwt client and the keys of its JWKS (by kind)."""

    client_id: str
    keys: dict[str, Signer]
    created: dict = field(repr=False)

    @property
    def key(self) -> Signer:
        return next(iter(self.keys.values()))


@dataclass
class Registry:
    rsa: PkClient
    ec: PkClient
    ed: PkClient
    multi: PkClient  # RSA, EC P-256 and EC P-384 keys in one JWKS
    stranger: Signer  # registered nowhere

    def by_kind(self, kind: str) -> PkClient:
        return getattr(self, kind)


def write_jwks(directory, keys: list[dict]):
    path = directory / f"{uuid.uuid4().hex}.jwks.json"
    path.write_text(json.dumps({"keys": keys}))
    return path


def create_args(jwks_path) -> list[str]:
    return ["client", "create", "--name", unique("e2e-pkjwt"), "--grant", "client_credentials",
            "--scope", "read", "--auth-method", "private_key_jwt", "--jwks", str(jwks_path)]


def register(stack, directory, **keys: Signer) -> PkClient:
    out = stack.oauthctl(*create_args(write_jwks(directory, [s.public_jwk for s in keys.values()])))
    assert isinstance(out, dict) and out.get("client_id"), out
    return PkClient(out["client_id"], dict(keys), out)


@pytest.fixture(scope="module")
def pk(stack, tmp_path_factory) -> Registry:
    directory = tmp_path_factory.mktemp("pkjwt")
    return Registry(
        rsa=register(stack, directory, rsa=new_signer("rsa")),
        ec=register(stack, directory, ec=new_signer("ec")),
        ed=register(stack, directory, ed=new_signer("ed")),
        multi=register(stack, directory, rsa=new_signer("rsa"), ec=new_signer("ec"),
                       p384=new_signer("p384")),
        stranger=new_signer("rsa"),
    )


# ----------------------------------------------------------------------------- assertions
DROP = object()  # a claim value meaning "leave this claim out"
KID = object()  # the signer's own kid


def endpoint(stack, path: str) -> str:
    """The issuer's URL of an endpoint, as an `aud` names it (issuer + /v2/...)."""
    assert path.startswith("/oauth/"), path
    return stack.issuer + path[len("/oauth"):]


def claims(stack, client_id: str, **overrides: Any) -> dict:
    """Valid assertion claims for client_id (aud the token endpoint, exp 5 min ahead, a fresh
    jti); `name=DROP` leaves a claim out."""
    now = int(time.time())
    out = {"iss": client_id, "sub": client_id, "aud": endpoint(stack, TOKEN_PATH),
           "iat": now, "exp": now + 300, "jti": str(uuid.uuid4())}
    for name, value in overrides.items():
        if value is DROP:
            out.pop(name, None)
        else:
            out[name] = value
    return out


def sign(signer: Signer, payload: dict, *, alg: Optional[str] = None, kid: Any = KID,
         key: Any = None) -> str:
    """A JWS by PyJWT: signer's key and alg unless told otherwise; kid=None sends none."""
    headers = {"kid": signer.kid if kid is KID else kid} if kid is not None else None
    return jwt.encode(payload, key or signer.private_key, algorithm=alg or signer.alg,
                      headers=headers)


def assertion_for(stack, client: PkClient, kind: Optional[str] = None, **overrides: Any) -> str:
    signer = client.keys[kind] if kind else client.key
    return sign(signer, claims(stack, client.client_id, **overrides))


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64json(value: dict) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def unsigned(header: dict, payload: dict) -> str:
    """`alg: none` (RFC 7515 §A.5): header.payload. with an empty signature."""
    return f"{b64json(header)}.{b64json(payload)}."


def hs256(payload: dict, secret: bytes, kid: Optional[str] = None) -> str:
    """HS256 by hand (PyJWT refuses to HMAC with a PEM or JWK, which is the point here)."""
    header = {"alg": "HS256", "typ": "JWT", **({"kid": kid} if kid else {})}
    signing_input = f"{b64json(header)}.{b64json(payload)}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(mac)}"


# ----------------------------------------------------------------------------- requests
def token_request(stack, assertion: Optional[str], *, scope: Optional[str] = "read",
                  assertion_type: Optional[str] = ASSERTION_TYPE,
                  headers: Optional[dict] = None, **form: str):
    """client_credentials authenticated by client_assertion (form body)."""
    data = {"grant_type": "client_credentials"}
    if assertion_type is not None:
        data["client_assertion_type"] = assertion_type
    if assertion is not None:
        data["client_assertion"] = assertion
    if scope is not None:
        data["scope"] = scope
    data.update(form)
    return post_token(stack, data=data, headers=headers)


def with_assertion(stack, path: str, assertion: str, **form: str):
    """POST `form` to introspection or revocation, authenticated by client_assertion."""
    data = {"client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion, **form}
    return stack.http("POST", path, data=data, timeout=60)


def issued(stack, client: PkClient) -> str:
    """An access token of client (hand-built assertion), checked to be the client's."""
    body = assert_success(token_request(stack, assertion_for(stack, client)))
    assert jwt_payload(body["access_token"])["client_id"] == client.client_id
    return body["access_token"]


def introspect(stack, client: PkClient, token: str, **overrides: Any) -> dict:
    assertion = assertion_for(stack, client, **{"aud": endpoint(stack, TOKENINFO), **overrides})
    resp = with_assertion(stack, TOKENINFO, assertion, token=token)
    assert resp.status_code == 200, describe(resp)
    return resp.json()


def assert_invalid_client(resp, *secrets: str) -> None:
    assert_error(resp, 401, "invalid_client", secrets=secrets)


def outcome(resp) -> str:
    try:
        error = resp.json().get("error")
    except ValueError:
        error = None
    return f"{resp.status_code} {error}" if error else str(resp.status_code)


# ============================================================ registration (oauthctl)
def test_oauthctl_registers_private_key_jwt_clients_without_a_secret(pk):
    for client in (pk.rsa, pk.ec, pk.ed, pk.multi):
        out = client.created
        assert out["token_endpoint_auth_method"] == "private_key_jwt", out
        assert "client_secret" not in out, "a private_key_jwt client has no secret"
        assert not any("secret" in k for k in out), out


def test_oauthctl_default_auth_method_is_still_client_secret_basic(stack):
    # make_client asserts the secret is printed, as before
    client = make_client(stack, scopes=("read",))
    if "token_endpoint_auth_method" in client:
        assert client["token_endpoint_auth_method"] == "client_secret_basic", client
    assert_success(cc_token(stack, client))


def bad_jwks(case: str) -> list[dict]:
    """Key lists oauthctl must refuse: a private JWK (with "d") or a symmetric one."""
    if case == "oct":
        return [{"kty": "oct", "kid": "hmac-1", "use": "sig", "k": b64url(uuid.uuid4().bytes * 2)}]
    if case == "private-among-public":
        return [new_signer("ec").public_jwk, new_signer("rsa").private_jwk]
    return [new_signer(case).private_jwk]


@pytest.mark.parametrize("case", ["rsa", "ec", "ed", "oct", "private-among-public"])
def test_oauthctl_refuses_private_or_symmetric_keys(stack, tmp_path, case):
    # GIVEN a JWKS with a private member (d) or a symmetric key (kty oct)
    keys = bad_jwks(case)
    # WHEN it is registered THEN oauthctl refuses (non-zero exit), printing no client
    res = stack.oauthctl_run(*create_args(write_jwks(tmp_path, keys)))
    assert res.returncode != 0, f"oauthctl accepted {keys}:\n{res.stdout}\n{res.stderr}"
    assert "client_id" not in res.stdout, res.stdout
    # AND it does not echo the private material back
    for key in keys:
        for member in ("d", "k", "p", "q"):
            if key.get(member):
                assert key[member] not in res.stdout + res.stderr, "private key material echoed"


# ============================================================ discovery
@pytest.mark.sam_local
def test_discovery_advertises_private_key_jwt(stack):
    resp = stack.http("GET", OIDC_PATH)
    assert resp.status_code == 200, describe(resp)
    meta = resp.json()
    for name in ("token_endpoint", "introspection_endpoint", "revocation_endpoint"):
        methods = meta[f"{name}_auth_methods_supported"]
        assert "private_key_jwt" in methods, (name, methods)
        assert "client_secret_basic" in methods, (name, methods)  # secrets still work
    algs = meta["token_endpoint_auth_signing_alg_values_supported"]
    assert isinstance(algs, list) and {"RS256", "ES256", "EdDSA"} <= set(algs), algs
    assert "none" not in algs and not any(a.startswith("HS") for a in algs), algs


# ============================================================ Authlib
def authlib_session(stack, client: PkClient, signer: Signer) -> tuple[OAuth2Session, list]:
    """OAuth2Session with PrivateKeyJWT: aud the token endpoint for token requests; the
    registered "private_key_jwt" method (no fixed endpoint) takes the URL of each request as
    aud, which is how introspection and revocation get theirs. Returns the session and a list
    collecting the client_assertion of every request it sends."""
    key = joserfc_jwk.import_key(signer.private_jwk)
    token_auth = PrivateKeyJWT(endpoint(stack, TOKEN_PATH), alg=signer.alg,
                               headers={"kid": signer.kid})
    session = OAuth2Session(client.client_id, key, token_endpoint_auth_method=token_auth,
                            revocation_endpoint_auth_method="private_key_jwt")
    session.register_client_auth_method(PrivateKeyJWT(alg=signer.alg, headers={"kid": signer.kid}))
    sent: list = []

    def record(resp, *args, **kwargs):
        from urllib.parse import parse_qs

        body = resp.request.body or ""
        body = body.decode() if isinstance(body, bytes) else body
        sent.append(parse_qs(body).get("client_assertion", [None])[0])

    session.hooks["response"].append(record)
    return session, sent


@pytest.mark.filterwarnings(EDDSA_WARNING)
@pytest.mark.parametrize("kind", ["rsa", "ec", "ed"], ids=["RS256", "ES256", "EdDSA"])
def test_authlib_private_key_jwt_token_introspection_and_revocation(stack, pk, kind):
    client = pk.by_kind(kind)
    session, sent = authlib_session(stack, client, client.key)
    # WHEN Authlib fetches a client_credentials token with private_key_jwt
    token = session.fetch_token(stack.url(TOKEN_PATH), grant_type="client_credentials",
                                scope="read")
    # THEN it is the client's Bearer token
    assert token["token_type"] == "Bearer", token
    assert token["scope"] == "read", token
    claims = verify_access_token(stack, token["access_token"])
    assert claims["client_id"] == client.client_id and claims["sub"] == client.client_id, claims
    # (Authlib's assertion: aud the token endpoint, exp = iat + 3600, the longest allowed)
    first, header = jwt_payload(sent[0]), jwt.get_unverified_header(sent[0])
    assert first["aud"] == endpoint(stack, TOKEN_PATH) and first["exp"] - first["iat"] == 3600
    assert (header["alg"], header["kid"]) == (client.key.alg, client.key.kid), header

    # WHEN it introspects the token with a fresh assertion (aud the introspection endpoint)
    auth = session.client_auth("private_key_jwt")
    resp = session.introspect_token(stack.url(TOKENINFO), token=token["access_token"], auth=auth)
    # THEN the token is active and the client's
    assert resp.status_code == 200, describe(resp)
    info = resp.json()
    assert info["active"] is True and info["client_id"] == client.client_id, info
    assert jwt_payload(sent[-1])["aud"] == stack.url(TOKENINFO)

    # WHEN it revokes the token (aud the revocation endpoint)
    resp = session.revoke_token(stack.url(REVOKE), token=token["access_token"])
    assert resp.status_code == 200, describe(resp)
    assert jwt_payload(sent[-1])["aud"] == stack.url(REVOKE)
    # THEN the token is inactive
    resp = session.introspect_token(stack.url(TOKENINFO), token=token["access_token"], auth=auth)
    assert resp.status_code == 200 and resp.json() == {"active": False}, describe(resp)
    # AND every assertion Authlib sent had its own jti
    jtis = [jwt_payload(a)["jti"] for a in sent]
    assert len(set(jtis)) == len(jtis) == 4, jtis


# ============================================================ openid-client v6
def openid_client(stack, client: PkClient, signer: Signer, op: str, **fields: Any) -> dict:
    """One rp.mjs run (discovery, then `op`) with client.PrivateKeyJwt(signer's key)."""
    if not shutil.which("node") or not (RP_DIR / "node_modules" / "openid-client").is_dir():
        pytest.fail(f"node and {RP_DIR / 'node_modules' / 'openid-client'} needed: {INSTALL_HINT}",
                    pytrace=False)
    return run_rp({"op": op, "server": stack.issuer, "client_id": client.client_id,
                   "client_secret": None, "private_jwk": signer.private_jwk, **fields})


@pytest.mark.parametrize("kind", ["rsa", "ec", "ed"], ids=["RS256", "ES256", "EdDSA"])
def test_openid_client_private_key_jwt_token_introspection_and_revocation(stack, pk, kind):
    client = pk.by_kind(kind)
    # WHEN openid-client (discovery, then clientCredentialsGrant; its assertion's aud is the
    # issuer, with client_id in the body) asks for a token
    tokens = openid_client(stack, client, client.key, "client_credentials", scope="read")["tokens"]
    # THEN it gets the client's Bearer token
    assert tokens["token_type"].lower() == "bearer", tokens
    at = tokens["access_token"]
    assert jwt_payload(at)["client_id"] == client.client_id
    # AND tokenIntrospection and tokenRevocation authenticate the same way
    info = openid_client(stack, client, client.key, "introspect", token=at)["introspection"]
    assert info["active"] is True and info["client_id"] == client.client_id, info
    assert openid_client(stack, client, client.key, "revoke", token=at) == {"revoked": True}
    info = openid_client(stack, client, client.key, "introspect", token=at)["introspection"]
    assert info["active"] is False, info


def test_openid_client_ed25519_assertion_under_its_rfc_9864_name(stack, pk):
    # openid-client v6 names an Ed25519 key's alg "Ed25519" (RFC 9864), not "EdDSA" (RFC 8037):
    # the same signature, accepted under both names
    tokens = openid_client(stack, pk.ed, pk.ed.key, "client_credentials", scope="read")["tokens"]
    assert jwt_payload(tokens["access_token"])["client_id"] == pk.ed.client_id
    renamed = openid_client(stack, pk.ed, pk.ed.key, "client_credentials", scope="read",
                            assertion_alg="EdDSA")["tokens"]
    assert jwt_payload(renamed["access_token"])["client_id"] == pk.ed.client_id


def test_openid_client_with_an_unregistered_key_is_refused(stack, pk):
    with pytest.raises(Refused) as refused:
        openid_client(stack, pk.rsa, pk.stranger, "client_credentials", scope="read")
    answer = refused.value.refused
    assert answer.get("status") == 401, answer
    assert answer.get("error") in ("invalid_client", None), answer


# ============================================================ hand-built assertions: accepted
@pytest.mark.sam_local
@pytest.mark.parametrize("kind", ["rsa", "ec", "ed"], ids=["RS256", "ES256", "EdDSA"])
def test_hand_built_assertion_is_accepted(stack, pk, kind):
    client = pk.by_kind(kind)
    assertion = assertion_for(stack, client)
    body = assert_success(token_request(stack, assertion))
    assert body["scope"] == "read"
    assert jwt_payload(body["access_token"])["client_id"] == client.client_id


@pytest.mark.parametrize("aud", ["issuer", "token_endpoint", "array", "array_with_issuer"])
def test_token_endpoint_accepts_each_allowed_audience(stack, pk, aud):
    values = {
        "issuer": stack.issuer,
        "token_endpoint": endpoint(stack, TOKEN_PATH),
        "array": ["https://elsewhere.example/token", endpoint(stack, TOKEN_PATH)],
        "array_with_issuer": [stack.issuer, "https://elsewhere.example/"],
    }
    assertion = assertion_for(stack, pk.ec, aud=values[aud])
    assert_success(token_request(stack, assertion))


def test_body_client_id_equal_to_sub_and_minimal_claims_are_accepted(stack, pk):
    # client_id in the body, equal to the assertion's sub
    assertion = assertion_for(stack, pk.rsa)
    assert_success(token_request(stack, assertion, client_id=pk.rsa.client_id))
    # only iss, sub, aud, exp, jti (iat and nbf are optional)
    assertion = assertion_for(stack, pk.rsa, iat=DROP)
    assert "iat" not in jwt_payload(assertion) and "nbf" not in jwt_payload(assertion)
    assert_success(token_request(stack, assertion))
    # iat and nbf in the past, exp the full hour ahead
    now = int(time.time())
    assertion = assertion_for(stack, pk.rsa, iat=now - 60, nbf=now - 60, exp=now + MAX_LIFETIME)
    assert_success(token_request(stack, assertion))


@pytest.mark.parametrize("alg,kind", [("RS384", "rsa"), ("RS512", "rsa"), ("PS256", "rsa"),
                                      ("PS384", "rsa"), ("PS512", "rsa"), ("ES256", "ec"),
                                      ("ES384", "p384")])
def test_every_listed_algorithm_of_the_key_is_accepted(stack, pk, alg, kind):
    # GIVEN a client whose JWKS holds an RSA, an EC P-256 and an EC P-384 key (no "alg" member)
    signer = pk.multi.keys[kind]
    # WHEN it signs with an algorithm of the key's family THEN the key named by kid verifies it
    assertion = sign(signer, claims(stack, pk.multi.client_id), alg=alg)
    assert jwt.get_unverified_header(assertion)["alg"] == alg
    assert_success(token_request(stack, assertion))


@pytest.mark.parametrize("kind", ["rsa", "ec", "p384"])
def test_assertion_without_kid_is_checked_against_the_registered_keys(stack, pk, kind):
    signer = pk.multi.keys[kind]
    assertion = sign(signer, claims(stack, pk.multi.client_id), kid=None)
    assert "kid" not in jwt.get_unverified_header(assertion)
    assert_success(token_request(stack, assertion))


# ============================================================ hand-built assertions: refused
# Each case builds an assertion (and extra form fields) that the token endpoint must refuse
# with 401 invalid_client. The client is pk.rsa unless the case says otherwise.
def _wrong_key(stack, pk):  # signed by a key not in the JWKS, under the registered kid
    return sign(pk.stranger, claims(stack, pk.rsa.client_id), kid=pk.rsa.key.kid), {}


def _wrong_key_unknown_kid(stack, pk):
    return sign(pk.stranger, claims(stack, pk.rsa.client_id)), {}


def _wrong_key_no_kid(stack, pk):
    return sign(pk.stranger, claims(stack, pk.rsa.client_id), kid=None), {}


def _kid_of_another_key(stack, pk):  # EC signature under the kid of the client's RSA key
    ec_key = pk.multi.keys["ec"]
    return sign(ec_key, claims(stack, pk.multi.client_id), kid=pk.multi.keys["rsa"].kid), {}


def _another_clients_key(stack, pk):  # pk.ec's key (and kid) for pk.rsa
    return sign(pk.ec.key, claims(stack, pk.rsa.client_id)), {}


def _tampered(stack, pk):  # a valid assertion whose payload was changed after signing
    header, _, signature = assertion_for(stack, pk.rsa).split(".")
    forged = claims(stack, pk.rsa.client_id, exp=int(time.time()) + 600)
    return f"{header}.{b64json(forged)}.{signature}", {}


def _expired(stack, pk):
    now = int(time.time())
    return assertion_for(stack, pk.rsa, iat=now - 120, exp=now - 60), {}


def _exp_more_than_an_hour_ahead(stack, pk):
    return assertion_for(stack, pk.rsa, exp=int(time.time()) + MAX_LIFETIME + 120), {}


def _no_exp(stack, pk):
    return assertion_for(stack, pk.rsa, exp=DROP), {}


def _no_jti(stack, pk):
    return assertion_for(stack, pk.rsa, jti=DROP), {}


def _iat_in_the_future(stack, pk):
    return assertion_for(stack, pk.rsa, iat=int(time.time()) + 120), {}


def _nbf_in_the_future(stack, pk):
    return assertion_for(stack, pk.rsa, nbf=int(time.time()) + 120), {}


def _alg_none(stack, pk):
    header = {"alg": "none", "typ": "JWT", "kid": pk.rsa.key.kid}
    return unsigned(header, claims(stack, pk.rsa.client_id)), {}


def _alg_none_no_kid(stack, pk):
    return unsigned({"alg": "none"}, claims(stack, pk.rsa.client_id)), {}


def _hs256_client_id(stack, pk):
    return hs256(claims(stack, pk.rsa.client_id), pk.rsa.client_id.encode(), pk.rsa.key.kid), {}


def _hs256_public_pem(stack, pk):  # the classic alg confusion: HMAC keyed with the public key
    return hs256(claims(stack, pk.rsa.client_id), public_pem(pk.rsa.key), pk.rsa.key.kid), {}


def _hs256_public_jwk(stack, pk):
    secret = json.dumps(pk.rsa.key.public_jwk).encode()
    return hs256(claims(stack, pk.rsa.client_id), secret, pk.rsa.key.kid), {}


def _wrong_aud(stack, pk):
    return assertion_for(stack, pk.rsa, aud="https://elsewhere.example/oauth/v2/token"), {}


def _aud_of_another_endpoint(stack, pk):  # the revocation endpoint's aud, at the token endpoint
    return assertion_for(stack, pk.rsa, aud=endpoint(stack, REVOKE)), {}


def _no_aud(stack, pk):
    return assertion_for(stack, pk.rsa, aud=DROP), {}


def _iss_not_sub(stack, pk):
    return assertion_for(stack, pk.rsa, iss=pk.ec.client_id), {}


def _sub_not_iss(stack, pk):
    return assertion_for(stack, pk.rsa, sub=pk.ec.client_id), {}


def _no_iss(stack, pk):
    return assertion_for(stack, pk.rsa, iss=DROP), {}


def _unknown_client(stack, pk):
    nobody = "nobody-" + uuid.uuid4().hex[:12]
    return sign(pk.rsa.key, claims(stack, nobody)), {"client_id": nobody}


def _body_client_id_differs(stack, pk):
    return assertion_for(stack, pk.rsa), {"client_id": pk.ec.client_id}


def _not_a_jwt(stack, pk):
    return "not-a-jwt", {}


REFUSED: dict[str, Callable] = {
    "wrong_key": _wrong_key,
    "wrong_key_unknown_kid": _wrong_key_unknown_kid,
    "wrong_key_no_kid": _wrong_key_no_kid,
    "kid_of_another_key": _kid_of_another_key,
    "another_clients_key": _another_clients_key,
    "tampered": _tampered,
    "expired": _expired,
    "exp_more_than_an_hour_ahead": _exp_more_than_an_hour_ahead,
    "no_exp": _no_exp,
    "no_jti": _no_jti,
    "iat_in_the_future": _iat_in_the_future,
    "nbf_in_the_future": _nbf_in_the_future,
    "alg_none": _alg_none,
    "alg_none_no_kid": _alg_none_no_kid,
    "hs256_client_id": _hs256_client_id,
    "hs256_public_pem": _hs256_public_pem,
    "hs256_public_jwk": _hs256_public_jwk,
    "wrong_aud": _wrong_aud,
    "aud_of_another_endpoint": _aud_of_another_endpoint,
    "no_aud": _no_aud,
    "iss_not_sub": _iss_not_sub,
    "sub_not_iss": _sub_not_iss,
    "no_iss": _no_iss,
    "unknown_client": _unknown_client,
    "body_client_id_differs": _body_client_id_differs,
    "not_a_jwt": _not_a_jwt,
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_bad_assertion_is_invalid_client(stack, pk, case):
    # GIVEN an assertion breaking one rule
    assertion, form = REFUSED[case](stack, pk)
    # WHEN it is presented at the token endpoint THEN 401 invalid_client, no token
    assert_invalid_client(token_request(stack, assertion, **form), assertion)


def test_refusals_leave_the_client_working(stack, pk):
    """Refused assertions never lock the client out (clients are never locked)."""
    for _ in range(6):
        assert_invalid_client(token_request(stack, _wrong_key(stack, pk)[0]))
    assert_success(token_request(stack, assertion_for(stack, pk.rsa)))


# ============================================================ single use (jti)
@pytest.mark.sam_local
def test_an_assertion_is_single_use(stack, pk):
    # GIVEN an assertion that was accepted once
    assertion = assertion_for(stack, pk.ec)
    assert_success(token_request(stack, assertion))
    # WHEN it is presented again THEN 401 invalid_client
    assert_invalid_client(token_request(stack, assertion), assertion)
    # AND a new assertion (new exp, new signature) reusing its jti is refused too
    jti = jwt_payload(assertion)["jti"]
    again = assertion_for(stack, pk.ec, jti=jti, exp=int(time.time()) + 600)
    assert again != assertion
    assert_invalid_client(token_request(stack, again), again)
    # AND a fresh jti works
    assert_success(token_request(stack, assertion_for(stack, pk.ec)))


def test_an_assertion_spent_at_the_token_endpoint_is_refused_elsewhere(stack, pk):
    token = issued(stack, pk.rsa)
    # aud the issuer: valid at every endpoint, but only once
    assertion = assertion_for(stack, pk.rsa, aud=stack.issuer)
    assert_success(token_request(stack, assertion))
    assert_invalid_client(with_assertion(stack, TOKENINFO, assertion, token=token), assertion, token)
    assert_invalid_client(with_assertion(stack, REVOKE, assertion, token=token), assertion, token)
    assert introspect(stack, pk.rsa, token)["active"] is True


def test_concurrent_requests_with_one_assertion_have_exactly_one_winner(stack, pk):
    # GIVEN one assertion
    assertion = assertion_for(stack, pk.ec)
    start = threading.Barrier(CONCURRENT)

    def one(_):
        start.wait(timeout=60)
        return token_request(stack, assertion)

    # WHEN 20 requests present it at once (several function instances race)
    with ThreadPoolExecutor(max_workers=CONCURRENT) as pool:
        results = list(pool.map(one, range(CONCURRENT)))
    outcomes = collections.Counter(outcome(r) for r in results)
    # THEN exactly one gets a token and the other 19 are invalid_client
    winners = [r for r in results if r.status_code == 200]
    assert len(winners) == 1, f"{CONCURRENT} concurrent uses of one assertion: {dict(outcomes)}"
    assert_success(winners[0])
    for r in results:
        if r.status_code != 200:
            assert_invalid_client(r, assertion)
    assert outcomes == {"200": 1, "401 invalid_client": CONCURRENT - 1}, dict(outcomes)


# ============================================================ introspection and revocation
def test_introspection_and_revocation_audiences(stack, pk):
    token = issued(stack, pk.ec)
    tokeninfo, revoke = endpoint(stack, TOKENINFO), endpoint(stack, REVOKE)
    # introspection: its own URL, the issuer, the token endpoint, or an array with one of them
    for aud in (tokeninfo, stack.issuer, endpoint(stack, TOKEN_PATH),
                ["https://elsewhere.example/", tokeninfo]):
        assert introspect(stack, pk.ec, token, aud=aud)["active"] is True, aud
    # ... but not the revocation endpoint's URL, nor another server's
    for aud in (revoke, "https://elsewhere.example/oauth/v2/tokeninfo"):
        assertion = assertion_for(stack, pk.ec, aud=aud)
        assert_invalid_client(with_assertion(stack, TOKENINFO, assertion, token=token), assertion)
    # revocation: not the introspection endpoint's URL (nothing is revoked)
    assertion = assertion_for(stack, pk.ec, aud=tokeninfo)
    assert_invalid_client(with_assertion(stack, REVOKE, assertion, token=token), assertion)
    assert introspect(stack, pk.ec, token)["active"] is True
    # ... its own URL works
    resp = with_assertion(stack, REVOKE, assertion_for(stack, pk.ec, aud=revoke), token=token)
    assert resp.status_code == 200, describe(resp)
    assert introspect(stack, pk.ec, token) == {"active": False}


@pytest.mark.parametrize("path", [TOKENINFO, REVOKE], ids=["introspection", "revocation"])
def test_introspection_and_revocation_refuse_bad_assertions(stack, pk, path):
    token = issued(stack, pk.rsa)
    aud = endpoint(stack, path)
    now = int(time.time())
    bad = {
        "wrong key": sign(pk.stranger, claims(stack, pk.rsa.client_id, aud=aud),
                          kid=pk.rsa.key.kid),
        "expired": assertion_for(stack, pk.rsa, aud=aud, iat=now - 120, exp=now - 60),
        "no jti": assertion_for(stack, pk.rsa, aud=aud, jti=DROP),
        "alg none": unsigned({"alg": "none"}, claims(stack, pk.rsa.client_id, aud=aud)),
        "hs256": hs256(claims(stack, pk.rsa.client_id, aud=aud), public_pem(pk.rsa.key)),
    }
    for name, assertion in bad.items():
        resp = with_assertion(stack, path, assertion, token=token)
        assert resp.status_code == 401, (name, describe(resp))
        assert_invalid_client(resp, assertion, token)
    # a replay: accepted once, then refused
    assertion = assertion_for(stack, pk.rsa, aud=aud)
    if path == TOKENINFO:
        resp = with_assertion(stack, path, assertion, token=token)
        assert resp.status_code == 200 and resp.json()["active"] is True, describe(resp)
        assert_invalid_client(with_assertion(stack, path, assertion, token=token), assertion)
        assert introspect(stack, pk.rsa, token)["active"] is True
    else:
        other = issued(stack, pk.rsa)
        assert with_assertion(stack, path, assertion, token=other).status_code == 200
        assert_invalid_client(with_assertion(stack, path, assertion, token=token), assertion)
        # the refused revocation revoked nothing; the accepted one did
        assert introspect(stack, pk.rsa, token)["active"] is True
        assert introspect(stack, pk.rsa, other) == {"active": False}


# ============================================================ one method per request
@pytest.mark.parametrize("path", [TOKEN_PATH, TOKENINFO, REVOKE])
def test_private_key_jwt_client_cannot_use_a_secret(stack, pk, path):
    token = issued(stack, pk.rsa)
    cid = pk.rsa.client_id
    form = {"grant_type": "client_credentials", "scope": "read"} if path == TOKEN_PATH \
        else {"token": token}
    for secret in ("", "x", "s" * 43, str(uuid.uuid4())):
        # client_secret_basic with any value
        resp = stack.http("POST", path, data=form, headers={"Authorization": basic(cid, secret)})
        assert_invalid_client(resp, token)
        # client_secret_post with any value
        resp = stack.http("POST", path, data={**form, "client_id": cid, "client_secret": secret})
        assert_invalid_client(resp, token)
    # client_id alone (auth method none) is no authentication either
    resp = stack.http("POST", path, data={**form, "client_id": cid})
    assert_invalid_client(resp, token)
    assert introspect(stack, pk.rsa, token)["active"] is True


def test_assertion_plus_basic_auth_is_invalid_request(stack, pk):
    secret_client = make_client(stack, scopes=("read",))
    for headers in (
        {"Authorization": basic(pk.rsa.client_id, "whatever")},  # the same client id
        {"Authorization": basic(secret_client["client_id"], secret_client["client_secret"])},
    ):
        assertion = assertion_for(stack, pk.rsa)
        resp = token_request(stack, assertion, headers=headers)
        assert_error(resp, 400, "invalid_request",
                     secrets=[assertion, secret_client["client_secret"]])
    # an assertion plus a body client_secret is two methods too
    assertion = assertion_for(stack, pk.rsa)
    resp = token_request(stack, assertion, client_id=pk.rsa.client_id, client_secret="whatever")
    assert resp.status_code in (400, 401), describe(resp)
    assert resp.json()["error"] in ("invalid_request", "invalid_client"), describe(resp)


@pytest.mark.parametrize("assertion_type", [
    "urn:ietf:params:oauth:client-assertion-type:saml2-bearer",
    "urn:ietf:params:oauth:grant-type:jwt-bearer",  # the RFC 7523 §2.1 grant, not client auth
    "jwt-bearer",
])
def test_other_assertion_type_is_invalid_request(stack, pk, assertion_type):
    assertion = assertion_for(stack, pk.rsa)
    resp = token_request(stack, assertion, assertion_type=assertion_type)
    assert_error(resp, 400, "invalid_request", secrets=[assertion])
    # the assertion was not spent by the refused request
    assert_success(token_request(stack, assertion))


def test_assertion_type_without_an_assertion_is_invalid_request(stack, pk):
    assert_error(token_request(stack, None), 400, "invalid_request")
    assert_error(token_request(stack, None, client_id=pk.rsa.client_id), 400, "invalid_request")


def test_secret_client_cannot_authenticate_with_an_assertion(stack, pk):
    # GIVEN a client_secret_basic client (no JWKS) and a key it never registered
    client = make_client(stack, scopes=("read",))
    assertion = sign(pk.stranger, claims(stack, client["client_id"]))
    # WHEN it presents an assertion THEN 401 invalid_client (its secret still works)
    assert_invalid_client(token_request(stack, assertion), assertion)
    assert_invalid_client(token_request(stack, assertion, client_id=client["client_id"]),
                          assertion)
    assert_success(cc_token(stack, client))


# ============================================================ rolling a client's keys
def test_oauthctl_client_update_rolls_a_clients_keys(stack, tmp_path):
    # GIVEN a private_key_jwt client registered with one key
    old, new = new_signer("ec"), new_signer("ed")
    client = register(stack, tmp_path, ec=old)
    assert_success(token_request(stack, sign(old, claims(stack, client.client_id))))
    # WHEN its JWKS is replaced by one with the old and the new key THEN both authenticate
    both = write_jwks(tmp_path, [old.public_jwk, new.public_jwk])
    stack.oauthctl("client", "update", client.client_id, "--jwks", str(both))
    for signer in (old, new):
        assert_success(token_request(stack, sign(signer, claims(stack, client.client_id))))
    # WHEN the old key is dropped THEN only the new one does
    stack.oauthctl("client", "update", client.client_id,
                   "--jwks", str(write_jwks(tmp_path, [new.public_jwk])))
    assert_invalid_client(token_request(stack, sign(old, claims(stack, client.client_id))))
    assert_success(token_request(stack, sign(new, claims(stack, client.client_id))))
    # AND the same checks as at registration apply, and a secret client has no keys to replace
    with pytest.raises(Exception, match="private"):
        stack.oauthctl("client", "update", client.client_id,
                       "--jwks", str(write_jwks(tmp_path, [new.private_jwk])))
    secret_client = make_client(stack)
    with pytest.raises(Exception, match="no keys"):
        stack.oauthctl("client", "update", secret_client["client_id"],
                       "--jwks", str(write_jwks(tmp_path, [new.public_jwk])))


# ============================================================ keys published at a jwks_uri
# Instances per function under `cargo lambda watch` (conftest's --concurrency).
INSTANCES = int(os.environ.get("OAUTH_E2E_CONCURRENCY", "4"))


class JwksHost:
    """The client's own web server on loopback: serves `document` at /jwks.json (a status
    instead when `status` is set) and counts what it was asked."""

    def __init__(self):
        import http.server

        host = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                host.fetches += 1
                body = json.dumps(host.document).encode()
                self.send_response(host.status or 200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.document: dict = {"keys": []}
        self.status: Optional[int] = None
        self.fetches = 0
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/jwks.json"

    def publish(self, *signers: Signer) -> None:
        self.document = {"keys": [s.public_jwk for s in signers]}


@pytest.fixture()
def jwks_host():
    host = JwksHost()
    yield host
    host.server.shutdown()


def register_by_uri(stack, uri: str) -> dict:
    out = stack.oauthctl("client", "create", "--name", unique("e2e-jwks-uri"),
                         "--grant", "client_credentials", "--scope", "read",
                         "--auth-method", "private_key_jwt", "--jwks-uri", uri)
    assert out["token_endpoint_auth_method"] == "private_key_jwt", out
    assert out["jwks_uri"] == uri and "client_secret" not in out, out
    return out


def test_a_client_registered_by_jwks_uri_authenticates_with_its_published_keys(
        stack, jwks_host):
    # GIVEN a client whose keys are published at its jwks_uri
    signer = new_signer("ec")
    jwks_host.publish(signer)
    client = PkClient(register_by_uri(stack, jwks_host.uri)["client_id"], {"ec": signer}, {})
    # WHEN Authlib authenticates with one of them THEN the token endpoint fetched and used it
    session, _ = authlib_session(stack, client, signer)
    token = session.fetch_token(stack.url(TOKEN_PATH), grant_type="client_credentials",
                                scope="read")
    verify_access_token(stack, token["access_token"])
    assert jwks_host.fetches >= 1
    # AND a warm function does not fetch again for the next assertions: at most one fetch per
    # instance of the token function
    for _ in range(3 * INSTANCES):
        assert_success(token_request(stack, assertion_for(stack, client)))
    assert jwks_host.fetches <= INSTANCES
    # AND introspection takes the client's assertions too
    assert introspect(stack, client, token["access_token"])["active"] is True


def test_a_jwks_uri_that_gives_no_keys_is_invalid_client(stack, jwks_host):
    signer = new_signer("rsa")
    jwks_host.status = 500
    client = PkClient(register_by_uri(stack, jwks_host.uri)["client_id"], {"rsa": signer}, {})
    assertion = assertion_for(stack, client)
    resp = token_request(stack, assertion)
    assert_invalid_client(resp, assertion)
    assert jwks_host.uri not in resp.text and "127.0.0.1" not in resp.text
    # A host that is down: nothing listens at the URI.
    gone = JwksHost()
    uri = gone.uri
    gone.server.shutdown()
    gone.server.server_close()
    client = PkClient(register_by_uri(stack, uri)["client_id"], {"rsa": signer}, {})
    assert_invalid_client(token_request(stack, assertion_for(stack, client)))


@pytest.mark.parametrize("uri", [
    "http://client.example.com/jwks.json",  # http only to a loopback host
    "ftp://client.example.com/jwks.json",
    "https://user@client.example.com/jwks.json",
    "https://client.example.com/jwks.json#keys",
    "client.example.com/jwks.json",
])
def test_oauthctl_refuses_a_jwks_uri_that_is_not_https(stack, uri):
    with pytest.raises(Exception, match="jwks-uri"):
        register_by_uri(stack, uri)


def test_oauthctl_takes_one_source_of_keys(stack, tmp_path, jwks_host):
    signer = new_signer("ec")
    both = create_args(write_jwks(tmp_path, [signer.public_jwk])) + ["--jwks-uri", jwks_host.uri]
    with pytest.raises(Exception, match="cannot be used with"):
        stack.oauthctl(*both)
    with pytest.raises(Exception, match="private_key_jwt"):
        stack.oauthctl("client", "create", "--name", unique("e2e"), "--grant",
                       "client_credentials", "--scope", "read", "--jwks-uri", jwks_host.uri)
    # A client registered with a JWKS file moves to a jwks_uri (and the file's keys go).
    client = register(stack, tmp_path, ec=signer)
    moved = new_signer("ed")
    jwks_host.publish(moved)
    out = stack.oauthctl("client", "update", client.client_id, "--jwks-uri", jwks_host.uri)
    assert out["jwks_uri"] == jwks_host.uri, out
    assert_success(token_request(stack, sign(moved, claims(stack, client.client_id))))
    assert_invalid_client(token_request(stack, sign(signer, claims(stack, client.client_id))))
