"""Helpers for the token-endpoint end-to-end tests: fresh clients and users through
`oauthctl`, token requests over HTTP, RFC 6749 §5.2 error checks, and a resource-server
style JWT verifier that trusts only the JWK Set served at /oauth/v2/jwks."""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any, Iterable, Optional
from urllib.parse import quote_plus

import jwt
import requests

TOKEN_PATH = "/oauth/v2/token"
JWKS_PATH = "/oauth/v2/jwks"
TOKEN_PATHS = (TOKEN_PATH, "/oauth2/token", "/api/id/v1/auth/token")
FORM = "application/x-www-form-urlencoded"

DEFAULT_ACCESS_TTL = 3600
LEEWAY = 5


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


# ----------------------------------------------------------------------------- admin
def make_client(
    stack,
    *,
    grants: Iterable[str] = ("client_credentials",),
    scopes: Iterable[str] = ("read", "write"),
    default_scopes: Optional[Iterable[str]] = None,
    redirect_uris: Iterable[str] = (),
    access_ttl: Optional[int] = None,
    refresh_ttl: Optional[int] = None,
    api_key: bool = False,
    audience: Optional[str] = None,
    claims: Optional[dict[str, str]] = None,
    client_id: Optional[str] = None,
    extra_args: Iterable[str] = (),
) -> dict[str, Any]:
    """`oauthctl client create` with a unique name (and `extra_args`); returns its JSON
    (client_id, client_secret, api_key when asked for)."""
    args = ["client", "create", "--name", unique("e2e-client")]
    if client_id:
        args += ["--id", client_id]
    for g in grants:
        args += ["--grant", g]
    for s in scopes:
        args += ["--scope", s]
    if default_scopes is None:
        # Deterministic defaults: "read" when allowed (clients may otherwise default to all).
        allowed = " ".join(scopes).split()
        default_scopes = ("read",) if "read" in allowed else ()
    for s in default_scopes:
        args += ["--default-scope", s]
    for u in redirect_uris:
        args += ["--redirect-uri", u]
    if access_ttl is not None:
        args += ["--access-token-ttl", str(access_ttl)]
    if refresh_ttl is not None:
        args += ["--refresh-token-ttl", str(refresh_ttl)]
    if api_key:
        args.append("--api-key")
    if audience:
        args += ["--audience", audience]
    for k, v in (claims or {}).items():
        args += ["--claim", f"{k}={v}"]
    args += list(extra_args)
    out = stack.oauthctl(*args)
    assert isinstance(out, dict), out
    assert out.get("client_id") and out.get("client_secret"), out
    if api_key:
        assert out.get("api_key"), out
    return out


def make_user(
    stack,
    *,
    username: Optional[str] = None,
    password: Optional[str] = None,
    claims: Optional[dict[str, str]] = None,
) -> dict[str, Any]:
    """`oauthctl user create`; returns its JSON plus the plaintext `password` used."""
    username = username or unique("e2e-user")
    password = password or ("Pw-" + uuid.uuid4().hex)
    args = ["user", "create", "--username", username, "--password", password]
    for k, v in (claims or {}).items():
        args += ["--claim", f"{k}={v}"]
    out = stack.oauthctl(*args)
    assert isinstance(out, dict), out
    assert out.get("username") == username, out
    uuid.UUID(out["user_id"])  # an immutable UUID
    return {**out, "password": password}


# ----------------------------------------------------------------------------- HTTP
def basic(user: str, password: str, *, form_encode: bool = True) -> str:
    """An `Authorization: Basic` value. RFC 6749 §2.3.1 form-encodes client credentials
    before base64; RFC 7617 (the EmpowerID user header) does not."""
    if form_encode:
        user, password = quote_plus(user), quote_plus(password)
    raw = f"{user}:{password}".encode("utf-8")
    return "Basic " + base64.b64encode(raw).decode("ascii")


def client_basic(client: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": basic(client["client_id"], client["client_secret"])}


def post_token(
    stack,
    *,
    data: Any = None,
    json_body: Any = None,
    raw: Optional[bytes] = None,
    content_type: Optional[str] = None,
    headers: Optional[dict[str, str]] = None,
    path: str = TOKEN_PATH,
    timeout: float = 60,
) -> requests.Response:
    """POST to the token endpoint with a form (`data`), a JSON value (`json_body`), or
    raw bytes with an explicit content type."""
    hdrs = dict(headers or {})
    body: Any
    if raw is not None:
        body = raw
        hdrs.setdefault("Content-Type", content_type or FORM)
    elif json_body is not None:
        body = json.dumps(json_body).encode()
        hdrs.setdefault("Content-Type", content_type or "application/json")
    else:
        body = data if data is not None else {}
        if content_type:
            hdrs["Content-Type"] = content_type
    return stack.http("POST", path, data=body, headers=hdrs, timeout=timeout)


def cc_token(stack, client: dict[str, Any], scope: Optional[str] = "read", **form) -> requests.Response:
    """client_credentials with client_secret_basic and a form body; `scope=None` sends none
    (clients created without --default-scope have no defaults, so tests name a scope)."""
    data = {"grant_type": "client_credentials", **form}
    if scope is not None:
        data["scope"] = scope
    return post_token(stack, data=data, headers=client_basic(client))


def password_token(stack, client, user, **form) -> requests.Response:
    """password grant, form body, client_secret_basic."""
    data = {"grant_type": "password", "username": user["username"], "password": user["password"]}
    data.update(form)
    return post_token(stack, data=data, headers=client_basic(client))


def refresh(stack, client, refresh_token: str, **form) -> requests.Response:
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token, **form}
    return post_token(stack, data=data, headers=client_basic(client))


def describe(resp: requests.Response) -> str:
    return f"{resp.request.method} {resp.request.url} -> {resp.status_code} {resp.headers!r} {resp.text[:500]!r}"


def assert_success(resp: requests.Response, *, refresh: bool = False, id_token: bool = False,
                   token_type: str = "Bearer") -> dict:
    """RFC 6749 §5.1 success exactly as SPEC §4 describes it."""
    assert resp.status_code == 200, describe(resp)
    assert resp.headers.get("Content-Type", "").split(";")[0].strip() == "application/json", describe(resp)
    assert resp.headers.get("Cache-Control") == "no-store", describe(resp)
    assert resp.headers.get("Pragma") == "no-cache", describe(resp)
    body = resp.json()
    expected = {"access_token", "token_type", "expires_in", "scope"}
    if refresh:
        expected.add("refresh_token")
    if id_token:
        expected.add("id_token")
    assert set(body) == expected, f"keys {sorted(body)} != {sorted(expected)}; scope={body.get('scope')!r}"
    assert body["token_type"] == token_type
    assert isinstance(body["expires_in"], int) and body["expires_in"] > 0
    assert isinstance(body["scope"], str)
    assert isinstance(body["access_token"], str) and body["access_token"].count(".") == 2
    if refresh:
        assert isinstance(body["refresh_token"], str) and body["refresh_token"]
    return body


def assert_error(
    resp: requests.Response,
    status: int,
    code: str,
    *,
    secrets: Iterable[str] = (),
    basic_challenge: Optional[bool] = None,
) -> dict:
    """RFC 6749 §5.2: status, JSON {"error","error_description"}, nothing sent echoed back.
    basic_challenge True/False asserts presence/absence of WWW-Authenticate."""
    assert resp.status_code == status, describe(resp)
    assert resp.headers.get("Content-Type", "").split(";")[0].strip() == "application/json", describe(resp)
    body = resp.json()
    assert isinstance(body, dict), describe(resp)
    assert body.get("error") == code, describe(resp)
    assert isinstance(body.get("error_description"), str) and body["error_description"], describe(resp)
    assert "access_token" not in body and "refresh_token" not in body, describe(resp)
    assert_not_leaked(resp, secrets)
    if basic_challenge is True:
        assert resp.headers.get("WWW-Authenticate") == 'Basic realm="oauth"', describe(resp)
    elif basic_challenge is False:
        assert "WWW-Authenticate" not in resp.headers, describe(resp)
    return body


def assert_not_leaked(resp: requests.Response, secrets: Iterable[str]) -> None:
    text = resp.text
    head = "\n".join(f"{k}: {v}" for k, v in resp.headers.items())
    for s in secrets:
        if s and len(s) >= 6:
            assert s not in text, f"secret {s!r} echoed in body: {describe(resp)}"
            assert s not in head, f"secret {s!r} echoed in headers: {describe(resp)}"


# ----------------------------------------------------------------------------- JWT
def fetch_jwks(stack) -> dict[str, dict]:
    """The JWK Set over HTTP (RFC 7517), as kid -> JWK, checking each key's shape."""
    resp = stack.http("GET", JWKS_PATH)
    assert resp.status_code == 200, describe(resp)
    doc = resp.json()
    assert isinstance(doc.get("keys"), list) and doc["keys"], doc
    by_kid: dict[str, dict] = {}
    for k in doc["keys"]:
        assert k.get("kid") and k.get("alg") and k.get("use") == "sig", k
        assert k.get("kty") in ("RSA", "EC", "OKP"), k
        assert "d" not in k and "p" not in k, "JWKS must not publish private key material"
        assert k["kid"] not in by_kid, f"duplicate kid {k['kid']}"
        by_kid[k["kid"]] = k
    return by_kid


def verify_jwt(
    stack,
    token: str,
    *,
    typ: str,
    audience: str,
    required: Iterable[str] = ("iss", "sub", "aud", "exp", "iat"),
    alg: Optional[str] = None,
) -> tuple[dict, dict]:
    """Verify like a resource server: the kid must be in the served JWKS, the header alg
    must be the key's alg, then signature, iss, aud, exp/iat/nbf via PyJWT.
    Returns (header, claims)."""
    header = jwt.get_unverified_header(token)
    assert header.get("typ") == typ, header
    assert header.get("kid"), header
    if alg is not None:
        assert header.get("alg") == alg, header
    keys = fetch_jwks(stack)
    assert header["kid"] in keys, f"kid {header['kid']} not published in JWKS {list(keys)}"
    jwk = keys[header["kid"]]
    assert header["alg"] == jwk["alg"], (header, jwk)
    key = jwt.PyJWK(jwk)
    claims = jwt.decode(
        token,
        key=key.key,
        algorithms=[jwk["alg"]],
        audience=audience,
        issuer=stack.issuer,
        leeway=LEEWAY,
        options={"require": list(required), "verify_signature": True},
    )
    now = time.time()
    assert claims["iat"] <= now + LEEWAY and claims["exp"] > now, claims
    return header, claims


def verify_access_token(stack, token: str, *, audience: Optional[str] = None) -> dict:
    """RFC 9068 access token checks; returns the claims."""
    header, claims = verify_jwt(
        stack,
        token,
        typ="at+jwt",
        audience=audience or stack.issuer,
        required=("iss", "sub", "aud", "exp", "iat", "nbf", "jti", "client_id", "scope"),
    )
    assert header["alg"] == "RS256", header  # ACCESS_TOKEN_ALG default
    assert claims["iss"] == stack.issuer
    assert claims["nbf"] <= claims["iat"] + LEEWAY
    assert isinstance(claims["jti"], str) and len(claims["jti"]) >= 16
    assert isinstance(claims["scope"], str)
    return claims


def verify_id_token(stack, token: str, *, client_id: str) -> dict:
    """OIDC Core §2 id_token: typ JWT, RS256, aud = client_id, auth_time present."""
    _, claims = verify_jwt(
        stack,
        token,
        typ="JWT",
        audience=client_id,
        alg="RS256",
        required=("iss", "sub", "aud", "exp", "iat", "auth_time"),
    )
    aud = claims["aud"]
    assert aud == client_id or aud == [client_id], claims
    return claims


# ----------------------------------------------------------------------------- JWT payloads
def jwt_payload(token: str) -> dict:
    """The claims of a JWS without verifying it (tests that only look at what a token says)."""
    return jwt.decode(token, options={"verify_signature": False})


# ----------------------------------------------------------------------------- tokeninfo routes
TOKENINFO = "/oauth/v2/tokeninfo"
USERINFO = "/oauth/v2/userinfo"
REVOKE = "/oauth/v2/revoke"
INACTIVE = {"active": False}
# Userinfo without credentials: both schemes it takes (RFC 6750 §3.1, RFC 9449 §7.1).
DPOP_ALGS = "RS256 RS384 RS512 PS256 PS384 PS512 ES256 ES384 EdDSA"
BARE_CHALLENGE = f'Bearer realm="oauth", DPoP algs="{DPOP_ALGS}"'
USER_GRANTS = ("password", "refresh_token")
OIDC_SCOPES = ("openid", "profile", "email", "read", "write")


# ----------------------------------------------------------------------------- the table
# Direct reads and writes of the service's DynamoDB items in moto, bypassing the functions and
# oauthctl: they simulate an admin change whose family-revoking cleanup Scan missed a family,
# or TTL deleting an item. Keys as SPEC §7 and issue #11 name them.
def account_pk(user_id: str) -> str:
    return f"uid#{user_id}"


def login_pk(username: str) -> str:
    return f"user#{username}"


def client_pk(client_id: str) -> str:
    return f"client#{client_id}"


def family_pk(family_id: str) -> str:
    return f"rfam#{family_id}"


def user_lock_pk(username: str) -> str:
    return f"lock#user#{username}"


def client_lock_pk(client_id: str) -> str:
    return f"lock#client#{client_id}"


def _table():
    from conftest import TABLE_NAME

    return TABLE_NAME


def _dynamodb(stack):
    """A boto3 DynamoDB client talking to moto directly (not through the fault proxy)."""
    return stack.backend.client("dynamodb", via_proxy=False)


def get_item(stack, pk: str) -> Optional[dict[str, Any]]:
    """The item `pk` as plain Python values (numbers as int), or None."""
    from decimal import Decimal

    from boto3.dynamodb.types import TypeDeserializer

    item = _dynamodb(stack).get_item(TableName=_table(), Key={"pk": {"S": pk}},
                                     ConsistentRead=True).get("Item")
    if item is None:
        return None
    de = TypeDeserializer()

    def plain(v):
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, list):
            return [plain(x) for x in v]
        if isinstance(v, set):
            return {plain(x) for x in v}
        if isinstance(v, Decimal):
            return int(v) if v == int(v) else float(v)
        return v

    return {k: plain(de.deserialize(v)) for k, v in item.items()}


def require_item(stack, pk: str, what: str) -> dict[str, Any]:
    item = get_item(stack, pk)
    assert item is not None, f"no {pk!r} in the table: {what}"
    return item


def set_attributes(stack, pk: str, **values: Any) -> None:
    """UpdateItem SET name = value on an existing item (never creates one). A list replaces a
    string set as a string set, anything else keeps boto3's natural type."""
    from boto3.dynamodb.types import TypeSerializer

    current = _dynamodb(stack).get_item(TableName=_table(), Key={"pk": {"S": pk}},
                                        ConsistentRead=True).get("Item")
    assert current is not None, f"no {pk!r} in the table to update"
    ser = TypeSerializer()
    names, vals, sets = {}, {}, []
    for i, (name, value) in enumerate(values.items()):
        if isinstance(value, list) and "SS" in current.get(name, {}):
            encoded = {"SS": list(value)} if value else {"NULL": True}
        else:
            encoded = ser.serialize(value)
        names[f"#a{i}"] = name
        vals[f":v{i}"] = encoded
        sets.append(f"#a{i} = :v{i}")
    _dynamodb(stack).update_item(
        TableName=_table(), Key={"pk": {"S": pk}},
        UpdateExpression="SET " + ", ".join(sets),
        ConditionExpression="attribute_exists(pk)",
        ExpressionAttributeNames=names, ExpressionAttributeValues=vals,
    )


def delete_item(stack, pk: str) -> None:
    _dynamodb(stack).delete_item(TableName=_table(), Key={"pk": {"S": pk}})


def failures_counted(stack, pk: str) -> int:
    """`failures` of a lock#… counter (0 when there is none)."""
    item = get_item(stack, pk)
    return int(item.get("failures", 0)) if item else 0


class ResourceServer:
    """Verifies access tokens as an API would: its own JWKS cache, refetched (once) when a
    token names an unknown kid; alg pinned to the key; typ, iss, aud, exp checked."""

    def __init__(self, jwks_url: str, issuer: str):
        self.jwks_url = jwks_url
        self.issuer = issuer
        self.keys: dict[str, jwt.PyJWK] = {}
        self.fetches = 0

    def _fetch(self) -> None:
        resp = requests.get(self.jwks_url, timeout=60)
        assert resp.status_code == 200, describe(resp)
        self.keys = {k["kid"]: jwt.PyJWK(k) for k in resp.json()["keys"]}
        self.fetches += 1

    def verify(self, token: str, audience: str) -> tuple[dict, dict]:
        header = jwt.get_unverified_header(token)
        assert header.get("typ") == "at+jwt", header
        kid = header["kid"]
        if kid not in self.keys:
            self._fetch()
        assert kid in self.keys, f"kid {kid} not in JWKS after a refetch ({sorted(self.keys)})"
        key = self.keys[kid]
        assert header["alg"] == key.algorithm_name, (header, key.algorithm_name)
        claims = jwt.decode(token, key.key, algorithms=[key.algorithm_name], issuer=self.issuer,
                            audience=audience, leeway=5,
                            options={"require": ["iss", "sub", "aud", "exp", "iat", "jti"]})
        return header, claims


def audit_lines(log_path) -> list[dict]:
    """The EMF audit lines of a watcher's log (the functions' stdout, one JSON object each)."""
    out = []
    for line in log_path.read_text(errors="replace").splitlines():
        start = line.find('{"')
        if start >= 0 and '"_aws"' in line:
            try:
                out.append(json.loads(line[start:]))
            except ValueError:
                pass
    return out
