"""Helpers for the real-browser sign-in tests (tests/e2e/test_browser.py): browser clients
through `oauthctl`, the app's loopback redirect URI as a real little HTTP server,
the login and consent pages as a person uses them (by their labels and buttons), and two real
relying parties: Authlib's OAuth2Session and openid-client v6 (tests/e2e/rp, run with node).

Tools: Debian's Chromium at /usr/bin/chromium, driven by PyPI `playwright` without any
browser download, and tests/e2e/rp/node_modules; infra/scripts/browser.sh installs both
(make test runs it).
"""

from __future__ import annotations

import http.server
import json
import subprocess
import threading
import urllib.parse
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Optional

from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session


CHROMIUM = "/usr/bin/chromium"
# As root in a container Chromium needs --no-sandbox; the rest keeps it off the (closed) network.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
RP_DIR = Path(__file__).resolve().parent / "rp"
AUTHORIZE_PATH = "/oauth/v2/authorize"
TOKEN_PATH = "/oauth/v2/token"
SESSION_COOKIE = "__Host-oauth-session"
SCOPE = "openid profile email"
FAILED_LOGIN = "The username or password is incorrect."
INSTALL_HINT = "run infra/scripts/browser.sh (make test does)"


def missing_tools() -> list[str]:
    """What infra/scripts/browser.sh would install and is not there."""
    missing = []
    if not Path(CHROMIUM).exists():
        missing.append(CHROMIUM)
    if not (RP_DIR / "node_modules" / "openid-client").is_dir():
        missing.append(str(RP_DIR / "node_modules" / "openid-client"))
    return missing


# ----------------------------------------------------------------------------- clients
def browser_client(
    stack,
    app: "AppServer",
    *,
    scopes: Iterable[str] = ("openid", "profile", "email"),
    public: bool = False,
    consent: bool = False,
    extra_grants: Iterable[str] = (),
    post_logout_path: str = "",
    extra_args: Iterable[str] = (),
) -> dict[str, Any]:
    """`oauthctl client create` for a browser app (authorization_code + refresh_token) whose
    redirect URI is `app`'s, with a distinctive display name; returns its JSON plus
    `redirect_uri`."""
    redirect_uri = app.redirect_uri
    name = f"Photos & Prints {uuid.uuid4().hex[:8]}"
    args = ["client", "create", "--name", name, "--redirect-uri", redirect_uri]
    for g in ("authorization_code", "refresh_token", *extra_grants):
        args += ["--grant", g]
    for s in scopes:
        args += ["--scope", s]
    if public:
        args.append("--public")
    if consent:
        args.append("--consent")
    if post_logout_path:
        args += ["--post-logout-redirect-uri", app.origin + post_logout_path]
    args += list(extra_args)
    out = stack.oauthctl(*args)
    assert isinstance(out, dict) and out.get("client_id"), out
    assert out["name"] == name, out
    assert bool(out.get("client_secret")) is not public, out
    return {**out, "redirect_uri": redirect_uri}


# ----------------------------------------------------------------------------- the app
@dataclass
class Captured:
    method: str
    url: str
    form: dict[str, str]

    @property
    def params(self) -> dict[str, str]:
        """The authorization response: the query (query mode) or the form (form_post)."""
        if self.method == "POST":
            return self.form
        return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.url).query))


class AppServer:
    """The relying party's side of the browser: a real HTTP server on a loopback port (an
    RFC 8252 §7.3 redirect URI) that records each request to /callback (GET for the query
    response mode, POST for form_post) and answers with a small page, as the app would; other
    paths serve `pages`. A real server rather than Playwright routing: Chromium does not hand
    a page.goto() navigation's redirect to a route (measured), and prompt=none is exactly that.
    """

    def __init__(self) -> None:
        self.seen: list[Captured] = []
        self.pages: dict[str, str] = {}
        self._lock = threading.Lock()
        app = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode("utf-8", "replace") if length else ""
                path = urllib.parse.urlsplit(self.path).path
                if path == "/callback":
                    form = dict(urllib.parse.parse_qsl(body)) if self.command == "POST" else {}
                    with app._lock:
                        app.seen.append(Captured(self.command, app.origin + self.path, form))
                    page = ("<!DOCTYPE html><html lang=en><title>App</title>"
                            "<p>Back at the app.</p></html>")
                elif path in app.pages:
                    page = app.pages[path]
                else:
                    self.send_error(404)
                    return
                data = page.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _answer

            def log_message(self, *args) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.origin = f"http://127.0.0.1:{self._server.server_address[1]}"
        self.redirect_uri = self.origin + "/callback"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def wait(self, page, *, timeout: float = 30_000) -> Captured:
        """The authorization response that brought `page` back to the app."""
        page.wait_for_url(lambda url: url.startswith(self.redirect_uri), timeout=timeout)
        with self._lock:
            matching = [c for c in self.seen if c.url == page.url]
        assert matching, f"the page is at {page.url}, the app saw {self.seen}"
        return matching[-1]


# ----------------------------------------------------------------------------- pages
def sign_in(page, username: str, password: str) -> None:
    """Fill the login form by its labels and press Sign in, as a person does."""
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def session_cookies(context) -> list[dict]:
    return [c for c in context.cookies() if c["name"] == SESSION_COOKIE]


# ----------------------------------------------------------------------------- Authlib
@dataclass
class Pending:
    """One authorization request the relying party made and must finish."""

    url: str
    state: str
    nonce: str
    code_verifier: str


class AuthlibRP:
    """Authlib's OAuth2Session with PKCE S256: a confidential client (client_secret_basic) or,
    for a public client, `client_id` in the token request's body (auth method `none`)."""

    def __init__(self, stack, client: dict[str, Any], *, scope: str = SCOPE):
        self.stack = stack
        self.client = client
        secret = client.get("client_secret")
        self.session = OAuth2Session(
            client["client_id"], secret, redirect_uri=client["redirect_uri"], scope=scope,
            code_challenge_method="S256",
            token_endpoint_auth_method="client_secret_basic" if secret else "none")

    def authorize(self, **params: str) -> Pending:
        verifier, nonce = generate_token(48), generate_token(16)
        url, state = self.session.create_authorization_url(
            self.stack.base_url + AUTHORIZE_PATH, code_verifier=verifier, nonce=nonce, **params)
        return Pending(url, state, nonce, verifier)

    def exchange(self, pending: Pending, callback: Captured) -> dict[str, Any]:
        """RFC 6749 §4.1.3 with the code from `callback`; Authlib checks the state. RFC 9207's
        `iss` Authlib does not check, so it is checked here."""
        assert callback.params.get("iss") == self.stack.issuer, callback
        if callback.method == "GET":
            return self.session.fetch_token(
                self.stack.base_url + TOKEN_PATH, authorization_response=callback.url,
                state=pending.state, code_verifier=pending.code_verifier)
        assert callback.params.get("state") == pending.state, callback
        return self.session.fetch_token(
            self.stack.base_url + TOKEN_PATH, code=callback.params["code"],
            code_verifier=pending.code_verifier)


# ----------------------------------------------------------------------------- openid-client
class Refused(AssertionError):
    """openid-client refused (a check failed, or the provider answered an error)."""

    def __init__(self, op: str, refused: dict[str, Any]):
        super().__init__(f"openid-client {op}: {refused}")
        self.refused = refused


def run_rp(request: dict[str, Any]) -> dict[str, Any]:
    """One rp.mjs run of `request` (stdin JSON); its last stdout line is the answer. A refusal
    (exit 2) raises `Refused`."""
    op = request["op"]
    res = subprocess.run(["node", str(RP_DIR / "rp.mjs")], input=json.dumps(request),
                         capture_output=True, text=True, timeout=60, cwd=RP_DIR)
    try:
        answer = json.loads(res.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        raise AssertionError(f"rp.mjs {op} exited {res.returncode}:\nstdout: {res.stdout}\n"
                             f"stderr: {res.stderr}") from None
    if res.returncode == 2 and "refused" in answer:
        raise Refused(op, answer["refused"])
    assert res.returncode == 0, f"rp.mjs {op} exited {res.returncode}: {res.stderr}"
    return answer


class OpenIdClientRP:
    """openid-client v6 (tests/e2e/rp/rp.mjs): discovery, then buildAuthorizationUrl,
    authorizationCodeGrant (state, iss, id_token, nonce checked by the library),
    refreshTokenGrant and fetchUserInfo."""

    def __init__(self, stack, client: dict[str, Any], *, scope: str = SCOPE,
                 dpop_jwk: Optional[dict[str, Any]] = None):
        self.stack = stack
        self.client = client
        self.scope = scope
        # A private JWK: token requests, refreshes and userinfo prove it (RFC 9449).
        self.dpop_jwk = dpop_jwk

    def _run(self, op: str, **fields: Any) -> dict[str, Any]:
        dpop = {"dpop_jwk": self.dpop_jwk} if self.dpop_jwk else {}
        return run_rp({"op": op, "server": self.stack.issuer, "client_id": self.client["client_id"],
                       "client_secret": self.client.get("client_secret"), **dpop, **fields})

    def authorize(self, *, par: bool = False, **params: str) -> Pending:
        """The authorization URL; `par` pushes the parameters first (RFC 9126)."""
        out = self._run("authorize", redirect_uri=self.client["redirect_uri"], scope=self.scope,
                        params=params, par=par)
        return Pending(out["url"], out["state"], out["nonce"], out["code_verifier"])

    def callback(self, pending: Pending, callback_url: str) -> dict[str, Any]:
        """{"tokens": the token response, "claims": the id_token's claims}."""
        return self._run("callback", callback_url=callback_url, state=pending.state,
                         nonce=pending.nonce, code_verifier=pending.code_verifier)

    def refresh(self, refresh_token: str) -> dict[str, Any]:
        return self._run("refresh", refresh_token=refresh_token)

    def userinfo(self, access_token: str, sub: str) -> dict[str, Any]:
        return self._run("userinfo", access_token=access_token, sub=sub)["userinfo"]
