"""docs/openapi.yaml: the document is valid OpenAPI 3.1, and the live functions answer as it says.

Schemathesis generates requests for every operation (positive data from the schemas, then
negative data that violates them), bounded and derandomized, explicit + generate phases only
(no shrinking). Each case is sent in one of three variants so both the junk paths and the
authenticated paths run:

  0  as generated (junk credentials / tokens, or none; the browser routes get a junk or ended
     `__Host-oauth-session` cookie every other case),
  1  a real client in `Authorization: Basic` (body client_id/client_secret dropped), or a real
     user access token (openid profile email) as Bearer; on the browser routes, a real browser
     client's `client_id` and registered `redirect_uri` (logout: a client's registered
     `post_logout_redirect_uri`), a real login / consent transaction and its CSRF token,
  2  as 1, plus real values substituted for the generated ones where the body has them
     (username/password of a real user, a fresh refresh token, a real token to introspect or
     revoke); Bearer operations get a client_credentials token (→ 403 insufficient_scope). The
     browser routes get a valid PKCE S256 challenge, a real id_token as `id_token_hint`, a live
     session cookie every other case, fresh transactions with the real password (or a wrong
     one), a real logout CSRF token, so codes are issued and sessions end.

Checks on every response: no 5xx except a documented 503 `temporarily_unavailable`; status code
documented; content type documented; headers as documented; body matches the response schema;
the real client secrets / user passwords never appear in a response. On the browser routes also:
a 303's `Location` (and a form-post page's form target) is a redirect URI registered for the
test's clients and carries `iss` and exactly the `state` sent; a code only after a real login or
with a live session; a new session cookie only after a real login; no `Location` but on a 303;
a submitted password never appears in a page. Failures are collected (not raised per case) and
reported together with the number of cases.
"""

from __future__ import annotations

import collections
import html
import itertools
import re
import urllib.parse
import uuid
from pathlib import Path

import requests

from helpers import (assert_success, basic, cc_token, make_client, make_user, password_token,
                     refresh, unique)

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "openapi.yaml"

POSITIVE_EXAMPLES = 50
NEGATIVE_EXAMPLES = 25

EXPECTED_OPERATIONS = {
    "POST /oauth/v2/token",
    "POST /oauth2/token",
    "POST /api/id/v1/auth/token",
    "POST /oauth/v2/revoke",
    "POST /oauth/v2/par",
    "POST /oauth/v2/tokeninfo",
    "GET /oauth/v2/tokeninfo",
    "GET /oauth/v2/userinfo",
    "POST /oauth/v2/userinfo",
    "GET /oauth/.well-known/openid-configuration",
    "GET /.well-known/oauth-authorization-server/oauth",
    "GET /oauth/v2/jwks",
    "GET /oauth/v2/authorize",
    "POST /oauth/v2/authorize",
    "GET /oauth/v2/ui/authorize",
    "POST /oauth/v2/ui/authorize",
    "POST /oauth/v2/authorize/login",
    "POST /oauth/v2/authorize/consent",
    "GET /oauth/v2/logout",
    "POST /oauth/v2/logout",
}
TOKEN_LABELS = {"POST /oauth/v2/token", "POST /oauth2/token", "POST /api/id/v1/auth/token"}
PAR_LABEL = "POST /oauth/v2/par"
CLIENT_AUTH_LABELS = TOKEN_LABELS | {"POST /oauth/v2/revoke", "POST /oauth/v2/tokeninfo",
                                     PAR_LABEL}
BEARER_LABELS = {"GET /oauth/v2/tokeninfo", "GET /oauth/v2/userinfo", "POST /oauth/v2/userinfo"}
AUTHORIZE_LABELS = {"GET /oauth/v2/authorize", "POST /oauth/v2/authorize",
                    "GET /oauth/v2/ui/authorize", "POST /oauth/v2/ui/authorize"}
LOGIN_LABEL = "POST /oauth/v2/authorize/login"
CONSENT_LABEL = "POST /oauth/v2/authorize/consent"
LOGOUT_LABELS = {"GET /oauth/v2/logout", "POST /oauth/v2/logout"}
BROWSER_LABELS = AUTHORIZE_LABELS | {LOGIN_LABEL, CONSENT_LABEL} | LOGOUT_LABELS

REDIRECT = "http://127.0.0.1:8765/callback"
AFTER_LOGOUT = "http://127.0.0.1:8765/signed-out"
SESSION_COOKIE = "__Host-oauth-session"
CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"  # RFC 7636 appendix B
# Variant 1 presents these instead of the registered URI every other case: the loopback
# port variants are accepted (RFC 8252 §7.3), every other near miss must be refused.
REDIRECT_PROBES = (
    "http://127.0.0.1:9999/callback",
    "http://127.0.0.1/callback",
    "http://localhost:8765/callback",
    "http://[::1]:8765/callback",
    "https://127.0.0.1:8765/callback",
    "http://127.0.0.1:8765/callback/",
    "http://127.0.0.1:8765/callback?x=1",
    "http://127.0.0.1:8765/callback#x",
    "http://127.0.0.1:8765/CALLBACK",
    "http://127.0.0.1:8765/%63allback",
    "http://127.0.0.1:8765/callback/../callback",
    "http://127.0.0.1:8765@evil.example/callback",
    "http://evil.example@127.0.0.1:8765/callback",
    "http://127.0.0.1:8765\\@evil.example/callback",
    "http://127.0.0.1.evil.example:8765/callback",
    " http://127.0.0.1:8765/callback",
    "http://127.0.0.1:8765/callback\t",
)
# Post-logout return URIs are compared exactly: only AFTER_LOGOUT itself may be returned to.
LOGOUT_PROBES = (
    "http://127.0.0.1:9999/signed-out",
    "http://127.0.0.1:8765/signed-out/",
    "http://127.0.0.1:8765/signed-out?x=1",
    "http://localhost:8765/signed-out",
    REDIRECT,
    "https://evil.example/signed-out",
)
AUTHORIZATION_RESPONSE_FIELDS = {"code", "state", "iss", "error", "error_description"}


# ----------------------------------------------------------------------------- the document
def test_openapi_document_is_valid_and_complete():
    from openapi_spec_validator import validate
    from openapi_spec_validator.readers import read_from_filename

    spec, _ = read_from_filename(str(DOC))
    validate(spec)  # raises on an invalid document
    assert spec["openapi"].startswith("3.1")

    ops = {f"{m.upper()} {p}" for p, item in spec["paths"].items() for m in item
           if m in ("get", "post", "put", "delete", "patch", "head", "options")}
    assert ops == EXPECTED_OPERATIONS

    schemes = spec["components"]["securitySchemes"]
    assert schemes["clientBasic"] == {**schemes["clientBasic"], "type": "http", "scheme": "basic"}
    assert schemes["bearerAuth"]["scheme"] == "bearer"
    session = schemes["browserSession"]
    assert (session["type"], session["in"], session["name"]) == ("apiKey", "cookie", SESSION_COOKIE)

    def resolve(node):
        while isinstance(node, dict) and "$ref" in node:
            target = spec
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part]
            node = target
        return node

    def operation(label):
        method, path = label.split(" ", 1)
        return spec["paths"][path][method.lower()]

    # The token-style bodies offer both media types; the browser routes take forms only
    # (authorize.rs `form_fields`). Unknown parameters allowed everywhere (RFC 6749 §3.2).
    for label in sorted(EXPECTED_OPERATIONS):
        body = operation(label).get("requestBody")
        if body is None:
            continue
        body = resolve(body)
        if label == PAR_LABEL:  # RFC 9126 §2.1: a form
            assert set(body["content"]) == {"application/x-www-form-urlencoded"}, label
        elif label in CLIENT_AUTH_LABELS:
            assert set(body["content"]) == {"application/x-www-form-urlencoded", "application/json"}, label
        else:
            assert label in BROWSER_LABELS, label
            assert set(body["content"]) == {"application/x-www-form-urlencoded"}, label
        for media in body["content"].values():
            assert resolve(media["schema"])["additionalProperties"] == {"type": "string"}, label

    token = spec["components"]["schemas"]["TokenResponse"]
    assert set(token["required"]) == {"access_token", "token_type", "expires_in", "scope"}
    assert {"refresh_token", "id_token"} <= set(token["properties"])
    for label in CLIENT_AUTH_LABELS:
        responses = operation(label)["responses"]
        success = "201" if label == PAR_LABEL else "200"  # RFC 9126 §2.2
        assert {success, "400", "401", "503"} <= set(responses), label

    # The browser routes: pages with their security headers, redirects with Location.
    page_headers = {"Content-Security-Policy", "X-Frame-Options", "Referrer-Policy", "Cache-Control"}
    for label in BROWSER_LABELS:
        op = operation(label)
        assert {"browserSession": []} in op["security"] and {} in op["security"], label
        responses = {code: resolve(r) for code, r in op["responses"].items()}
        assert set(responses) == {"200", "303", "400", "503"}, label
        for code in ("200", "400"):
            assert set(responses[code]["content"]) == {"text/html"}, (label, code)
            assert page_headers <= set(responses[code]["headers"]), (label, code)
        assert {"Location", "Cache-Control", "Referrer-Policy"} <= set(responses["303"]["headers"]), label
        assert "content" not in responses["303"], label
        assert set(responses["503"]["content"]) == {"application/json"}, label
        if label == LOGIN_LABEL or label in LOGOUT_LABELS:
            assert "Set-Cookie" in responses["303"]["headers"], label
        if label.startswith("GET "):
            names = {resolve(p)["name"] for p in op["parameters"]}
            assert all(resolve(p)["in"] == "query" for p in op["parameters"]), label
            body_schema = resolve(resolve(operation("POST " + label[4:])["requestBody"])
                                  ["content"]["application/x-www-form-urlencoded"]["schema"])
            assert names == set(body_schema["properties"]) - {"csrf_token"}, label
    login = resolve(resolve(operation(LOGIN_LABEL)["requestBody"])["content"]
                    ["application/x-www-form-urlencoded"]["schema"])
    assert set(login["properties"]) == {"transaction", "csrf_token", "username", "password"}
    assert set(spec["paths"]["/oauth/v2/ui/authorize"]) >= {"get", "post"}

    metadata = spec["components"]["schemas"]["ServerMetadata"]
    assert "not" not in metadata  # the authorization endpoint exists now
    assert {"authorization_endpoint", "end_session_endpoint", "response_modes_supported",
            "code_challenge_methods_supported", "authorization_response_iss_parameter_supported",
            "prompt_values_supported", "request_parameter_supported",
            "request_uri_parameter_supported", "claims_parameter_supported"} <= set(metadata["required"])
    raw = DOC.read_text()
    for header in ("WWW-Authenticate", "Retry-After", "Cache-Control", "Set-Cookie", "Location"):
        assert header in raw
    assert "Metadata caveat" not in raw


def test_other_methods_on_the_browser_routes_answer_405(stack):
    """The router forwards every method on these paths to the function (API Gateway would
    route only GET and POST): the answer is the document's `MethodNotAllowed`."""
    import jsonschema
    from openapi_spec_validator.readers import read_from_filename

    spec, _ = read_from_filename(str(DOC))
    component = spec["components"]["responses"]["MethodNotAllowed"]
    body_schema = {**spec["components"]["schemas"]["MethodNotAllowedError"]}
    allow = spec["components"]["headers"]["Allow"]["schema"]
    for path in ("/oauth/v2/authorize", "/oauth/v2/ui/authorize", "/oauth/v2/logout"):
        assert "MethodNotAllowed" in spec["paths"][path]["description"], path
        for method in ("PUT", "DELETE", "PATCH"):
            resp = stack.http(method, path, allow_redirects=False)
            assert resp.status_code == 405, (method, path, resp.status_code, resp.text)
            assert resp.headers["Content-Type"].split(";")[0] in component["content"]
            assert resp.headers["Allow"] == "GET, POST"
            jsonschema.validate(resp.headers["Allow"], allow)
            assert resp.headers["X-Content-Type-Options"] == "nosniff"
            jsonschema.validate(resp.json(), body_schema)


# ----------------------------------------------------------------------------- fuzzing
class _Material:
    """Real credentials and tokens that variants 1 and 2 put into generated cases."""

    def __init__(self, stack):
        self.stack = stack
        self.client = make_client(stack, grants=("client_credentials", "password", "refresh_token"),
                                  scopes=("openid", "profile", "email", "read", "write"))
        self.user = make_user(stack, claims={"email": "fuzz@example.com", "name": "Fuzz User"})
        first = assert_success(password_token(stack, self.client, self.user,
                                              scope="openid profile email read"),
                               refresh=True, id_token=True)
        self.user_access_token = first["access_token"]
        self.cc_access_token = assert_success(cc_token(stack, self.client))["access_token"]
        self.minted_refresh = 0
        # A spent refresh token of a family of its own (rotated once): presenting it revokes
        # only that family, never the one behind user_access_token.
        spare = assert_success(password_token(stack, self.client, self.user, scope="read"),
                               refresh=True)["refresh_token"]
        assert_success(refresh(stack, self.client, spare), refresh=True)
        self.stale_refresh = spare
        self.uses = 0

    @property
    def basic(self) -> str:
        return basic(self.client["client_id"], self.client["client_secret"])

    def refresh_token(self) -> str:
        """A fresh refresh token for the first 12 asks, a spent one after that."""
        if self.minted_refresh >= 12:
            return self.stale_refresh
        self.minted_refresh += 1
        body = assert_success(password_token(self.stack, self.client, self.user, scope="read"),
                              refresh=True)
        return body["refresh_token"]

    @property
    def secrets(self) -> list[str]:
        return [self.client["client_secret"], self.user["password"]]


def _apply_variant(case, label: str, variant: int, mat: _Material) -> None:
    if variant == 0:
        return
    body = case.body if isinstance(case.body, dict) else None
    if label in CLIENT_AUTH_LABELS:
        case.headers = {**(case.headers or {}), "Authorization": mat.basic}
        if body is not None:
            body = {k: v for k, v in body.items() if k not in ("client_id", "client_secret")}
    elif label in BEARER_LABELS:
        token = mat.user_access_token if variant == 1 else mat.cc_access_token
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}
        if label == "GET /oauth/v2/tokeninfo" and variant == 2 and isinstance(case.query, dict):
            case.query = {k: v for k, v in case.query.items() if k != "access_token"}
    if variant == 2 and body is not None:
        if "scope" in body:
            body["scope"] = "openid profile email read" if body.get("grant_type") == "password" else "read"
        if "redirect_uri" in body:
            body["redirect_uri"] = ""  # empty counts as absent (RFC 6749 §3.1)
        if "username" in body:
            body["username"] = mat.user["username"]
        if "password" in body:
            body["password"] = mat.user["password"]
        if body.get("grant_type") == "refresh_token" or "refresh_token" in body:
            body["refresh_token"] = mat.refresh_token()
        if "token" in body:
            mat.uses += 1
            if mat.uses % 2:
                body["token"] = mat.refresh_token()
            elif label.endswith("tokeninfo"):
                body["token"] = mat.user_access_token
            else:  # revoke a throwaway access token, not one the other variants rely on
                body["token"] = assert_success(cc_token(mat.stack, mat.client))["access_token"]
    if body is not None:
        case.body = body


# ----------------------------------------------------------------------------- browser routes
def _hidden_fields(page: str) -> dict[str, str]:
    return {html.unescape(k): html.unescape(v)
            for k, v in re.findall(r'<input type="hidden" name="([^"]*)" value="([^"]*)">', page)}


def _header(response, name: str) -> str | None:
    """A header's first value (schemathesis responses keep lower-cased names and value lists)."""
    values = response.headers.get(name.lower())
    return values[0] if values else None


def _form_actions(page: str) -> list[str]:
    return [html.unescape(a) for a in re.findall(r'<form method="post" action="([^"]*)"', page)]


def _page_kind(response) -> str:
    text = response.text
    if 'name="password"' in text:
        return "login-failed" if 'role="alert"' in text else "login"
    if 'name="decision"' in text:
        return "consent"
    if "<title>Continuing" in text:
        return "form_post"
    if 'action="/oauth/v2/logout"' in text:
        return "logout-confirm"
    return "other"


def _registered_redirect(uri: str) -> bool:
    """REDIRECT exactly, or (RFC 8252 §7.3, SPEC §12) the same loopback IP literal redirect
    on another port: what the authorize function may redirect to for the test's clients."""
    return uri == REDIRECT or re.fullmatch(r"http://127\.0\.0\.1(:[0-9]*)?/callback", uri) is not None


class _Browser:
    """The browser clients, a user, sessions and transactions that variants 1 and 2 use.

    `client` (make_client, as a browser app registers) and `consent_client` (`--consent`, a
    post-logout redirect URI, the password grant for an id_token to hint with) share REDIRECT.
    `session` is a live session of `user` used by the authorize and consent cases; logout
    cases sign sessions of their own in (they end them)."""

    def __init__(self, stack):
        self.stack = stack
        self.client = make_client(stack, grants=("authorization_code", "refresh_token"),
                                  scopes=("openid", "profile", "email"), redirect_uris=(REDIRECT,))
        self.consent_client = stack.oauthctl(
            "client", "create", "--name", unique("e2e-openapi-consent"), "--consent",
            "--grant", "authorization_code", "--grant", "refresh_token", "--grant", "password",
            "--scope", "openid profile email", "--redirect-uri", REDIRECT,
            "--post-logout-redirect-uri", AFTER_LOGOUT)
        self.user = make_user(stack)
        self.wrong_password = "Wrong-" + uuid.uuid4().hex
        self.id_token = assert_success(password_token(stack, self.consent_client, self.user,
                                                      scope="openid"),
                                       refresh=True, id_token=True)["id_token"]
        self.turns: collections.Counter = collections.Counter()
        self.sign_ins = 0
        self.login_reference = self._authorize(self.client).text  # every static text of a page
        self.session = self.sign_in()
        self.login_tx = self.transaction(self.client, state="login-tx")
        self.consent_tx = self.transaction(self.consent_client, state="consent-tx",
                                           cookie=self.session, prompt="consent")
        ended = self.sign_in()
        signed_out = self._get("/oauth/v2/logout", {"id_token_hint": self.id_token}, ended)
        assert signed_out.status_code == 200 and "Set-Cookie" in signed_out.headers, signed_out.text
        # Cookies no session has: empty, short, too long, odd characters, an ended session.
        self.junk_cookies = ["", "x", "A" * 43, "B" * 64, "C" * 65, '"quoted"', "%00", ended]
        self.logout_cookie: str | None = None
        self.logout_csrf: dict[str, str] = {}

    @property
    def secrets(self) -> list[str]:
        return [self.client["client_secret"], self.consent_client["client_secret"],
                self.user["password"], self.wrong_password]

    def turn(self, label: str, variant: int) -> int:
        """How many cases of this operation and variant so far (1, 2, …): what rotates."""
        self.turns[label, variant] += 1
        return self.turns[label, variant]

    def _get(self, path: str, params: dict, cookie: str | None = None) -> requests.Response:
        headers = {"Cookie": f"{SESSION_COOKIE}={cookie}"} if cookie else {}
        return requests.get(self.stack.base_url + path, params=params, headers=headers,
                            timeout=60, allow_redirects=False)

    def _authorize(self, client, *, state="s", cookie=None, **extra) -> requests.Response:
        params = {"response_type": "code", "client_id": client["client_id"], "redirect_uri": REDIRECT,
                  "scope": "openid profile", "state": state, "code_challenge": CHALLENGE,
                  "code_challenge_method": "S256", **extra}
        return self._get("/oauth/v2/authorize", params, cookie)

    def transaction(self, client, *, state: str, cookie=None, **extra) -> tuple[str, str]:
        """A fresh login (or, with a session and a consent client, consent) transaction."""
        page = self._authorize(client, state=state, cookie=cookie, **extra)
        fields = _hidden_fields(page.text)
        assert page.status_code == 200 and "transaction" in fields, (page.status_code, page.text[:500])
        return fields["transaction"], fields["csrf_token"]

    def sign_in(self) -> str:
        self.sign_ins += 1
        transaction, csrf = self.transaction(self.client, state="sign-in")
        done = requests.post(self.stack.base_url + "/oauth/v2/authorize/login", timeout=60,
                             allow_redirects=False,
                             data={"transaction": transaction, "csrf_token": csrf,
                                   "username": self.user["username"], "password": self.user["password"]})
        assert done.status_code == 303, (done.status_code, done.text[:500])
        return done.headers["Set-Cookie"].split(";", 1)[0].split("=", 1)[1]

    def live_logout_cookie(self) -> str:
        if self.logout_cookie is None:
            self.logout_cookie = self.sign_in()
        return self.logout_cookie

    def csrf_for(self, cookie: str) -> str:
        """The logout confirmation form's token for `cookie`, read off the confirmation page."""
        if cookie not in self.logout_csrf:
            page = self._get("/oauth/v2/logout", {}, cookie)
            self.logout_csrf[cookie] = _hidden_fields(page.text).get("csrf_token", "")
        return self.logout_csrf[cookie]


def _browser_params(case) -> dict | None:
    """The mutable parameters of a browser case: its query (GET) or its form (POST)."""
    if case.operation.method.upper() == "GET":
        if not isinstance(case.query, dict):
            case.query = {}
        return case.query
    return case.body if isinstance(case.body, dict) else None


def _apply_browser_variant(case, label: str, variant: int, br: _Browser) -> dict:
    """Variants for the browser routes; returns what the checks may expect of the answer:
    `may_issue` (a live session or a real login is behind the request), `may_set_session`
    (a real login), `state` (the state an authorization response must carry), `logout_cookie`."""
    ctx = {"may_issue": False, "may_set_session": False, "state": None, "logout_cookie": None}
    params = _browser_params(case)
    turn = br.turn(label, variant)
    if variant == 0:
        if turn % 2:
            case.cookies = {SESSION_COOKIE: br.junk_cookies[(turn // 2) % len(br.junk_cookies)]}
        if label in AUTHORIZE_LABELS and params is not None:
            ctx["state"] = params.get("state")
        return ctx
    case.cookies = {}
    if label in AUTHORIZE_LABELS and params is not None:
        client = br.consent_client if (variant == 2 and turn % 3 == 0) else br.client
        redirect = REDIRECT
        if variant == 1 and turn % 2:
            redirect = REDIRECT_PROBES[(turn // 2) % len(REDIRECT_PROBES)]
        for name, value in (("client_id", client["client_id"]), ("redirect_uri", redirect)):
            if name in params or variant == 2:
                params[name] = value
        if variant == 2:
            params["code_challenge"], params["code_challenge_method"] = CHALLENGE, "S256"
            params.pop("request", None)
            params.pop("request_uri", None)
            if "scope" in params:
                params["scope"] = "openid profile"
            if "id_token_hint" in params:
                params["id_token_hint"] = br.id_token
            if turn % 2:
                case.cookies = {SESSION_COOKIE: br.session}
                ctx["may_issue"] = True
        ctx["state"] = params.get("state")
    elif label == LOGIN_LABEL and params is not None:
        ctx["state"] = "login-tx"
        transaction = br.login_tx
        if variant == 2:
            real = turn % 2 == 1
            if real:
                client = br.consent_client if turn % 3 == 0 else br.client
                mode = {"response_mode": "form_post"} if turn % 3 == 1 else {}
                ctx["state"] = f"login-{turn}"
                transaction = br.transaction(client, state=ctx["state"], **mode)
                ctx["may_issue"] = ctx["may_set_session"] = True
            params.update(username=br.user["username"],
                          password=br.user["password"] if real else br.wrong_password)
        for name, value in zip(("transaction", "csrf_token"), transaction):
            if name in params or variant == 2:
                params[name] = value
    elif label == CONSENT_LABEL and params is not None:
        ctx["state"] = "consent-tx"
        transaction = br.consent_tx
        if variant == 2:
            ctx["state"] = f"consent-{turn}"
            mode = {"response_mode": "form_post"} if turn % 3 == 1 else {}
            transaction = br.transaction(br.consent_client, state=ctx["state"], cookie=br.session,
                                         prompt="consent", **mode)
            case.cookies = {SESSION_COOKIE: br.session}
            ctx["may_issue"] = True
        for name, value in zip(("transaction", "csrf_token"), transaction):
            if name in params or variant == 2:
                params[name] = value
    elif label in LOGOUT_LABELS and params is not None:
        if "client_id" in params:
            params["client_id"] = br.consent_client["client_id"]
        if "post_logout_redirect_uri" in params:
            params["post_logout_redirect_uri"] = AFTER_LOGOUT
            if variant == 1 and turn % 2:
                params["post_logout_redirect_uri"] = LOGOUT_PROBES[(turn // 2) % len(LOGOUT_PROBES)]
        if variant == 2:
            if "id_token_hint" in params:
                params["id_token_hint"] = br.id_token
            if turn % 2:
                cookie = br.live_logout_cookie()
                case.cookies = {SESSION_COOKIE: cookie}
                ctx["logout_cookie"] = cookie
                if "csrf_token" in params:
                    params["csrf_token"] = br.csrf_for(cookie)
        ctx["state"] = params.get("state")
    return ctx


def _authorization_response_problems(target: str, fields: dict[str, list[str]], ctx: dict,
                                     issuer: str) -> list[str]:
    problems = []
    if not _registered_redirect(target):
        problems.append(f"authorization response sent to an unregistered URI {target!r}")
    if fields.get("iss") != [issuer]:
        problems.append(f"iss {fields.get('iss')!r} is not [{issuer!r}]")
    if not set(fields) <= AUTHORIZATION_RESPONSE_FIELDS:
        problems.append(f"unexpected response parameters {sorted(set(fields) - AUTHORIZATION_RESPONSE_FIELDS)}")
    if ("code" in fields) == ("error" in fields):
        problems.append(f"not exactly one of code and error: {sorted(fields)}")
    if "code" in fields and not ctx["may_issue"]:
        problems.append("a code issued without a login or a live session")
    state = ctx["state"]
    if state is None or isinstance(state, str):  # a non-string (negative data) is sent as it may
        expected = [state] if state else None
        if fields.get("state") != expected:
            problems.append(f"state {fields.get('state')!r} is not the one sent, {expected!r}")
    return problems


def _again_as_get_targets(issuer: str) -> set[str]:
    return {issuer + "/v2/authorize", issuer + "/v2/logout"}


def _again_as_get_target(label: str, issuer: str) -> str:
    return issuer + ("/v2/logout" if label in LOGOUT_LABELS else "/v2/authorize")


def _browser_problems(response, case, label: str, ctx: dict, br: _Browser, issuer: str) -> list[tuple[str, str]]:
    """The authorize-specific checks (see the module docstring): (kind, detail) pairs."""
    problems: list[tuple[str, str]] = []
    status = response.status_code
    location = _header(response, "Location")
    if status == 303 and location:
        base, _, query = location.partition("?")
        fields = urllib.parse.parse_qs(query, keep_blank_values=True)
        if base in _again_as_get_targets(issuer):
            # A POST without a usable session cookie, sent back as the same GET (SameSite=Lax
            # keeps the cookie off an app's cross-site POST; the redirected GET carries it).
            if case.method.upper() != "POST" or base != _again_as_get_target(label, issuer):
                problems.append(("again-as-get", f"{case.method} answered with {location!r}"))
            if _header(response, "Set-Cookie") is not None:
                problems.append(("again-as-get", "a cookie set on the way to the GET"))
        elif label in LOGOUT_LABELS:
            state = ctx["state"]
            expected = {"state": [state]} if isinstance(state, str) and state else {}
            if base != AFTER_LOGOUT or (isinstance(state, (str, type(None))) and fields != expected):
                problems.append(("logout-redirect", f"logout returned to {location!r}"))
        else:
            problems += [("redirect", p) for p in _authorization_response_problems(base, fields, ctx, issuer)]
    elif location is not None:
        problems.append(("location", f"Location {location!r} on a {status}"))
    if status == 200 and (_header(response, "Content-Type") or "").startswith("text/html"):
        for action in _form_actions(response.text):
            if label in LOGOUT_LABELS:
                if action != "/oauth/v2/logout":
                    problems.append(("form-target", f"logout page form posts to {action!r}"))
            elif action not in ("/oauth/v2/authorize/login", "/oauth/v2/authorize/consent"):
                fields = {k: [v] for k, v in _hidden_fields(response.text).items()}
                problems += [("form_post", p)
                             for p in _authorization_response_problems(action, fields, ctx, issuer)]
    cookie = _header(response, "Set-Cookie") or ""
    if cookie.startswith(SESSION_COOKIE + "=") and not cookie.startswith(SESSION_COOKIE + "=;"):
        if not ctx["may_set_session"]:
            problems.append(("session", f"a session started without a real login: {cookie[:40]!r}"))
    elif cookie and label not in LOGOUT_LABELS:
        problems.append(("cookie", f"Set-Cookie {cookie!r}"))
    params = _browser_params(case)
    if label == LOGIN_LABEL and params is not None:
        password, username = params.get("password"), params.get("username")
        if isinstance(password, str) and (password == br.wrong_password or len(password) >= 8) \
                and password not in str(username) and password not in br.login_reference:
            text = response.text
            if password in text or html.escape(password) in text:
                problems.append(("password-echo", f"the submitted password {password!r} is in the page"))
    return problems


EMULATOR_500 = '{"type":"https://httpstatuses.com/500","status":500,"title":"Internal Server Error"}'


def _is_emulator_500(response) -> bool:
    """`cargo lambda watch` itself answers this (text/plain problem JSON, the function is never
    invoked: no log line) when a non-form body is not valid UTF-8. API Gateway would pass such
    a body base64-encoded and the function answers 400 invalid_request. Not our function."""
    body = response.request.body
    if isinstance(body, str):
        body = body.encode("utf-8")
    if response.status_code != 500 or response.text != EMULATOR_500 or not body:
        return False
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def _no_server_error(response, case) -> str | None:
    """No 5xx, except a 503 temporarily_unavailable (documented; DynamoDB/Secrets Manager)."""
    if response.status_code < 500:
        return None
    if response.status_code == 503:
        try:
            if response.json().get("error") == "temporarily_unavailable":
                return None
        except ValueError:
            pass
    return f"server error {response.status_code}: {response.text[:300]!r}"


def test_schemathesis_against_live_stack(stack):
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis.errors import Unsatisfiable
    from schemathesis import GenerationMode
    from schemathesis.core.failures import FailureGroup
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_headers_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    checks = [status_code_conformance, content_type_conformance, response_headers_conformance,
              response_schema_conformance]
    schema = schemathesis.openapi.from_path(DOC)
    mat = _Material(stack)
    br = _Browser(stack)
    secrets = mat.secrets + br.secrets
    session = requests.Session()
    browser_session = requests.Session()  # its cookie jar is emptied after every case

    counts: collections.Counter = collections.Counter()
    statuses: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    failures: dict[tuple, str] = {}
    skipped_client_side = 0
    no_negative: list[str] = []
    emulator_500s: collections.Counter = collections.Counter()
    # Browser routes: which page or authorization response each answered.
    outcomes: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)

    def run_case(case, label: str, mode: str, variant: int) -> None:
        nonlocal skipped_client_side
        browser = label in BROWSER_LABELS
        if browser:
            ctx = _apply_browser_variant(case, label, variant, br)
        else:
            _apply_variant(case, label, variant, mat)
        try:
            if browser:
                try:
                    response = case.call(base_url=stack.base_url, session=browser_session,
                                         timeout=60, allow_redirects=False)
                finally:
                    browser_session.cookies.clear()
            else:
                response = case.call(base_url=stack.base_url, session=session, timeout=60)
        except (requests.ConnectionError, requests.Timeout) as exc:
            failures.setdefault((label, "transport", type(exc).__name__),
                                f"{label} [{mode} v{variant}]: {exc!r}\n{case.as_curl_command()}")
            counts[label] += 1
            return
        except (ValueError, UnicodeError, requests.RequestException):
            # Something requests itself refuses to send (e.g. an unencodable header).
            skipped_client_side += 1
            return
        counts[label] += 1
        statuses[label][response.status_code] += 1
        if _is_emulator_500(response):
            emulator_500s[label] += 1
            return
        problem = _no_server_error(response, case)
        if problem:
            failures.setdefault((label, "5xx", response.status_code),
                                f"{label} [{mode} v{variant}]: {problem}\n{case.as_curl_command()}")
        for secret in secrets:
            if secret in response.text or secret in (_header(response, "Location") or ""):
                failures.setdefault((label, "echo", response.status_code),
                                    f"{label} [{mode} v{variant}]: a real secret echoed in "
                                    f"{response.status_code} {response.text[:300]!r}")
        if browser:
            location = _header(response, "Location") or ""
            if (response.status_code == 303
                    and location.partition("?")[0] in _again_as_get_targets(stack.issuer)):
                outcomes[label]["303 again as GET"] += 1
            elif response.status_code == 303 and label in LOGOUT_LABELS:
                outcomes[label]["303 return"] += 1
            elif response.status_code == 303:
                fields = urllib.parse.parse_qs(location.partition("?")[2])
                outcomes[label]["303 code" if "code" in fields else
                                f"303 {fields.get('error', ['-'])[0]}"] += 1
            elif (_header(response, "Content-Type") or "").startswith("text/html"):
                kind = _page_kind(response)
                if kind == "other":
                    kind = "error" if response.status_code == 400 else "signed-out"
                if kind == "form_post":
                    kind += " code" if 'name="code"' in response.text else " error"
                outcomes[label][f"{response.status_code} {kind}"] += 1
            if ctx["logout_cookie"] and (response.status_code == 303 or (
                    response.status_code == 200 and _page_kind(response) != "logout-confirm")):
                br.logout_cookie = None  # that session ended
            for kind, detail in _browser_problems(response, case, label, ctx, br, stack.issuer):
                failures.setdefault((label, kind, response.status_code),
                                    f"{label} [{mode} v{variant}] {kind}: {detail}\n"
                                    f"got {response.status_code} {dict(response.headers)!r}\n"
                                    f"{response.text[:300]!r}\n{case.as_curl_command()}")
        try:
            case.validate_response(response, checks=checks)
        except FailureGroup as group:
            for f in group.exceptions:
                key = (label, f.title, response.status_code)
                failures.setdefault(key, f"{label} [{mode} v{variant}] {f.title}: {f.message[:600]}\n"
                                         f"got {response.status_code} {response.text[:300]!r}\n"
                                         f"{case.as_curl_command()}")

    operations = {}
    for result in schema.get_all_operations():
        op = result.ok()
        operations[op.label] = op
    assert set(operations) == EXPECTED_OPERATIONS

    for label, op in sorted(operations.items()):
        for mode, n in ((GenerationMode.POSITIVE, POSITIVE_EXAMPLES),
                        (GenerationMode.NEGATIVE, NEGATIVE_EXAMPLES)):
            variants = itertools.cycle((0, 1, 2))

            @settings(max_examples=n, derandomize=True, database=None, deadline=None,
                      phases=[Phase.explicit, Phase.generate],
                      suppress_health_check=list(HealthCheck))
            @given(case=op.as_strategy(generation_mode=mode))
            def explore(case):
                run_case(case, label, mode.value, next(variants))

            try:
                explore()
            except Unsatisfiable:
                # Nothing to negate (no parameters, no body): positive cases only.
                assert mode == GenerationMode.NEGATIVE, label
                no_negative.append(label)

    total = sum(counts.values())
    summary = "\n".join(f"  {label}: {counts[label]} cases, statuses {dict(sorted(statuses[label].items()))}"
                        + (f"\n      {dict(sorted(outcomes[label].items()))}" if label in outcomes else "")
                        for label in sorted(counts))
    summary += f"\n  browser sign-ins for the fuzzing: {br.sign_ins}"
    print(f"\nschemathesis: {total} cases sent over {len(counts)} operations "
          f"({skipped_client_side} not sendable by requests), {len(failures)} distinct failures; "
          f"no negative data possible for {sorted(no_negative)}; cargo-lambda emulator 500s on "
          f"non-UTF-8 non-form bodies (function not invoked, excluded): {dict(emulator_500s)}\n{summary}")
    crashed = stack.watch.crashes()
    assert not crashed, f"a function process died during fuzzing: {crashed}"
    assert total >= 200, summary
    # The authenticated paths were reached: some token requests succeeded.
    assert any(statuses[label][200] for label in TOKEN_LABELS), summary
    assert statuses["POST /oauth/v2/tokeninfo"][200] and statuses["GET /oauth/v2/userinfo"][200], summary
    # The browser routes went past their error pages: codes issued by a session, a login and a
    # consent; login pages, failed logins, consent pages; logout confirmed, signed out, returned.
    assert any(outcomes[label]["303 code"] for label in AUTHORIZE_LABELS), summary
    assert any(outcomes[label]["200 login"] and outcomes[label]["200 consent"]
               for label in AUTHORIZE_LABELS), summary
    assert outcomes[LOGIN_LABEL]["303 code"] and outcomes[LOGIN_LABEL]["200 login-failed"], summary
    assert outcomes[CONSENT_LABEL]["303 code"] and outcomes[CONSENT_LABEL]["303 access_denied"], summary
    assert any(outcomes[label]["303 return"] and outcomes[label]["200 logout-confirm"]
               and outcomes[label]["200 signed-out"] for label in LOGOUT_LABELS), summary
    assert not failures, (f"{len(failures)} distinct failures in {total} cases:\n\n"
                          + "\n\n".join(failures.values()) + "\n\n" + summary)
