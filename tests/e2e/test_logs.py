"""Nothing secret in logs or error bodies (SPEC §4: "Errors never contain internals, secrets or
echoed input. Logs never contain secrets, passwords, tokens or query strings").

A second `cargo lambda watch` runs the functions with RUST_LOG=debug (what an operator sets while
debugging; the AWS SDK, hyper and lambda_runtime log at debug too) and, as a second case, with
RUST_LOG=trace; both with the EmpowerID API-key header. Every flow is driven through it; then every line of that watcher's log
(.local/e2e/watch-extra.log: cargo-lambda's output plus the functions' stdout/stderr) and every
error response body is searched for each secret that was sent or received.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from pathlib import Path

import pytest
import requests

from helpers import audit_lines, basic, cc_token, make_client, make_user, password_token

API_KEY_HEADER = "X-EmpowerID-API-Key"
USER_GRANTS = ("client_credentials", "password", "refresh_token")
SCOPES = ("openid", "profile", "email", "read", "write")


class Driver:
    """Sends requests to one watcher and remembers every response and every secret."""

    def __init__(self, base_url: str):
        self.base_url = base_url
        self.responses: list[tuple[str, requests.Response]] = []
        self.secrets: dict[str, str] = {}  # value -> what it is

    def secret(self, what: str, value: str | None) -> None:
        if value and len(value) >= 8:
            self.secrets.setdefault(value, what)

    def token_material(self, body: dict) -> None:
        for name in ("access_token", "id_token"):
            if body.get(name):
                self.secret(name, body[name])
                self.secret(f"{name} signature", body[name].rsplit(".", 1)[1])
        if body.get("refresh_token"):
            rt = body["refresh_token"]
            self.secret("refresh_token", rt)
            self.secret("refresh_token random part", rt.split(".", 1)[1])

    def send(self, what: str, method: str, path: str, **kw) -> requests.Response:
        kw.setdefault("timeout", 60)
        headers = kw.get("headers") or {}
        auth = headers.get("Authorization")
        if auth:
            self.secret(f"Authorization header of {what}", auth.split(" ", 1)[1])
        resp = requests.request(method, self.base_url + path, **kw)
        self.responses.append((what, resp))
        if resp.status_code == 200 and resp.headers.get("Content-Type", "").startswith("application/json"):
            body = resp.json()
            if isinstance(body, dict):
                self.token_material(body)
        return resp


def _excerpt(line: str, value: str, what: str) -> str:
    """Where in the line the secret sits, without printing the secret itself."""
    i = line.index(value)
    return (f"{line[:110]!r} ... {line[max(0, i - 90):i]!r}<{what}>"
            f"{line[i + len(value):i + len(value) + 40]!r}")


def _check(resp: requests.Response, status: int, what: str) -> dict:
    assert resp.status_code == status, f"{what}: {resp.status_code} {resp.text[:300]}"
    return resp.json() if resp.text else {}


def _flows(stack, d: Driver) -> None:
    # ---- clients and users (secrets known before any request)
    svc = make_client(stack, grants=("client_credentials",), scopes=("read", "write"))
    app = make_client(stack, grants=USER_GRANTS, scopes=SCOPES)
    eid = make_client(stack, grants=USER_GRANTS, scopes=SCOPES, api_key=True)
    user = make_user(stack, claims={"email": "log@example.com", "name": "Log Test"})
    wrong_pw = "Wrong-Password-" + uuid.uuid4().hex
    wrong_secret = "Wrong-Secret-" + uuid.uuid4().hex
    wrong_key = "Wrong-ApiKey-" + uuid.uuid4().hex
    for c in (svc, app, eid):
        d.secret("client_secret", c["client_secret"])
    d.secret("api_key", eid["api_key"])
    d.secret("password", user["password"])
    for what, v in (("wrong password", wrong_pw), ("wrong secret", wrong_secret), ("wrong api key", wrong_key)):
        d.secret(what, v)
    token = "/oauth/v2/token"
    basic_app = {"Authorization": basic(app["client_id"], app["client_secret"])}

    # ---- client_credentials: basic, post (form and JSON), WSO2 + ID-API aliases, failures
    _check(d.send("cc basic", "POST", token, headers={"Authorization": basic(svc["client_id"], svc["client_secret"])},
                  data={"grant_type": "client_credentials", "scope": "read"}), 200, "cc basic")
    _check(d.send("cc post form", "POST", "/oauth2/token",
                  data={"grant_type": "client_credentials", "client_id": svc["client_id"],
                        "client_secret": svc["client_secret"]}), 200, "cc post")
    _check(d.send("cc post json", "POST", "/api/id/v1/auth/token",
                  json={"grant_type": "client_credentials", "client_id": svc["client_id"],
                        "client_secret": svc["client_secret"], "scope": "write"}), 200, "cc json")
    _check(d.send("cc wrong secret", "POST", token,
                  headers={"Authorization": basic(svc["client_id"], wrong_secret)},
                  data={"grant_type": "client_credentials"}), 401, "cc wrong secret")
    _check(d.send("cc wrong secret post", "POST", token,
                  data={"grant_type": "client_credentials", "client_id": svc["client_id"],
                        "client_secret": wrong_secret}), 401, "cc wrong secret post")

    # ---- password: WSO2 shape (client in Basic, user in body)
    pw = _check(d.send("password wso2", "POST", "/oauth2/token", headers=basic_app,
                       data={"grant_type": "password", "username": user["username"],
                             "password": user["password"], "scope": "openid profile email read"}),
                200, "password")
    assert pw.get("id_token") and pw.get("refresh_token")

    # ---- password: EmpowerID shape (user in Basic, client in JSON body, API key header)
    eid_body = {"grant_type": "password", "client_id": eid["client_id"],
                "client_secret": eid["client_secret"], "redirect_uri": "", "scope": "openid read"}
    user_basic = {"Authorization": basic(user["username"], user["password"], form_encode=False)}
    eid_ok = _check(d.send("password empowerid", "POST", token, json=eid_body,
                           headers={**user_basic, API_KEY_HEADER: eid["api_key"]}), 200, "empowerid")
    _check(d.send("empowerid wrong api key", "POST", token, json=eid_body,
                  headers={**user_basic, API_KEY_HEADER: wrong_key}), 401, "wrong key")
    _check(d.send("empowerid no api key", "POST", token, json=eid_body, headers=user_basic), 401, "no key")
    _check(d.send("empowerid form", "POST", token,
                  data={k: v for k, v in eid_body.items()},
                  headers={**user_basic, API_KEY_HEADER: eid["api_key"]}), 200, "empowerid form")

    # ---- failed logins (wrong password, unknown user, EmpowerID wrong password)
    _check(d.send("wrong password", "POST", token, headers=basic_app,
                  data={"grant_type": "password", "username": user["username"], "password": wrong_pw}),
           400, "wrong pw")
    _check(d.send("unknown user", "POST", token, headers=basic_app,
                  data={"grant_type": "password", "username": "ghost-" + uuid.uuid4().hex,
                        "password": wrong_pw}), 400, "unknown user")
    _check(d.send("empowerid wrong password", "POST", token, json=eid_body,
                  headers={"Authorization": basic(user["username"], wrong_pw, form_encode=False),
                           API_KEY_HEADER: eid["api_key"]}), 400, "eid wrong pw")

    # ---- refresh: rotate, then reuse of the spent token (family revoked)
    rt1 = pw["refresh_token"]
    rot = _check(d.send("refresh", "POST", token, headers=basic_app,
                        data={"grant_type": "refresh_token", "refresh_token": rt1}), 200, "refresh")
    rot2 = _check(d.send("refresh json", "POST", token, headers=basic_app,
                         json={"grant_type": "refresh_token", "refresh_token": rot["refresh_token"],
                               "scope": "openid read"}), 200, "refresh json")
    _check(d.send("refresh reuse", "POST", token, headers=basic_app,
                  data={"grant_type": "refresh_token", "refresh_token": rt1}), 400, "reuse")
    _check(d.send("refresh garbage", "POST", token, headers=basic_app,
                  data={"grant_type": "refresh_token", "refresh_token": "x." + uuid.uuid4().hex * 2}),
           400, "garbage refresh")

    # ---- a live session for introspection / userinfo / revocation
    live = _check(d.send("password for session", "POST", token, headers=basic_app,
                         data={"grant_type": "password", "username": user["username"],
                               "password": user["password"], "scope": "openid profile email read"}),
                  200, "session")
    at, rt = live["access_token"], live["refresh_token"]

    # ---- introspection (POST, client auth basic and post), GET tokeninfo (query and Bearer)
    tokeninfo = "/oauth/v2/tokeninfo"
    assert _check(d.send("introspect at", "POST", tokeninfo, headers=basic_app, data={"token": at}),
                  200, "introspect")["active"] is True
    assert _check(d.send("introspect rt", "POST", tokeninfo,
                         data={"token": rt, "token_type_hint": "refresh_token",
                               "client_id": app["client_id"], "client_secret": app["client_secret"]}),
                  200, "introspect rt")["active"] is True
    _check(d.send("introspect wrong secret", "POST", tokeninfo,
                  headers={"Authorization": basic(app["client_id"], wrong_secret)},
                  data={"token": at}), 401, "introspect 401")
    _check(d.send("introspect no token", "POST", tokeninfo, headers=basic_app, data={}), 400, "no token")
    assert _check(d.send("tokeninfo query", "GET", tokeninfo, params={"access_token": at}),
                  200, "tokeninfo q")["active"] is True
    assert _check(d.send("tokeninfo bearer", "GET", tokeninfo, headers={"Authorization": f"Bearer {at}"}),
                  200, "tokeninfo b")["active"] is True
    assert _check(d.send("tokeninfo junk", "GET", tokeninfo,
                         params={"access_token": at[:-6] + "AAAAAA"}), 200, "junk") == {"active": False}

    # ---- userinfo (GET and POST), with a bad token and a client token
    _check(d.send("userinfo get", "GET", "/oauth/v2/userinfo", headers={"Authorization": f"Bearer {at}"}),
           200, "userinfo")
    _check(d.send("userinfo post", "POST", "/oauth/v2/userinfo", headers={"Authorization": f"Bearer {at}"}),
           200, "userinfo post")
    cc_at = eid_ok["access_token"]  # any token; a tampered one is invalid
    _check(d.send("userinfo bad", "GET", "/oauth/v2/userinfo",
                  headers={"Authorization": f"Bearer {cc_at[:-6]}AAAAAA"}), 401, "userinfo 401")
    svc_at = _check(d.send("cc for userinfo", "POST", token,
                           headers={"Authorization": basic(svc["client_id"], svc["client_secret"])},
                           data={"grant_type": "client_credentials", "scope": "read"}), 200, "cc")["access_token"]
    _check(d.send("userinfo client token", "GET", "/oauth/v2/userinfo",
                  headers={"Authorization": f"Bearer {svc_at}"}), 403, "userinfo 403")

    # ---- revocation: access token, refresh token, another client's token, wrong secret
    _check(d.send("revoke other client's", "POST", "/oauth/v2/revoke",
                  headers={"Authorization": basic(svc["client_id"], svc["client_secret"])},
                  data={"token": rt}), 400, "revoke other")
    _check(d.send("revoke wrong secret", "POST", "/oauth/v2/revoke",
                  headers={"Authorization": basic(app["client_id"], wrong_secret)},
                  data={"token": rt}), 401, "revoke 401")
    _check(d.send("revoke at", "POST", "/oauth/v2/revoke", headers=basic_app, data={"token": rot2["access_token"]}),
           200, "revoke at")
    _check(d.send("revoke rt", "POST", "/oauth/v2/revoke", headers=basic_app,
                  json={"token": rt, "token_type_hint": "refresh_token"}), 200, "revoke rt")
    assert _check(d.send("introspect after revoke", "POST", tokeninfo, headers=basic_app, data={"token": at}),
                  200, "after revoke") == {"active": False}
    _check(d.send("refresh revoked", "POST", token, headers=basic_app,
                  data={"grant_type": "refresh_token", "refresh_token": rt}), 400, "refresh revoked")

    # ---- discovery and JWKS (the functions load the key set: the PEMs must not be logged)
    _check(d.send("jwks", "GET", "/oauth/v2/jwks"), 200, "jwks")
    _check(d.send("metadata", "GET", "/oauth/.well-known/openid-configuration"), 200, "metadata")


@pytest.mark.parametrize("level", ["debug", "trace"])
def test_logs_and_error_bodies_carry_no_secrets(stack, level):
    with stack.functions_with(RUST_LOG=level, API_KEY_HEADER=API_KEY_HEADER) as w:
        log_path = Path(w.proc.log_path)
        d = Driver(w.base_url)
        _flows(stack, d)
    # The watcher is stopped: its log is complete.
    lines = log_path.read_text(errors="replace").splitlines()
    debug_lines = [l for l in lines if level.upper() in l]
    assert debug_lines, f"no {level.upper()} lines in {log_path}: RUST_LOG={level} did not take effect"
    token_lines = [l for l in lines if '"event":"token_refused"' in l]
    assert token_lines, f"the functions' own log lines are missing from {log_path}"

    findings = []
    for no, line in enumerate(lines, 1):
        if "PRIVATE KEY" in line:
            findings.append(f"{log_path.name}:{no}: private key PEM: {line[:300]}")
        for value, what in d.secrets.items():
            if value in line:
                findings.append(f"{log_path.name}:{no}: {what}: {_excerpt(line, value, what)}")
    for what, resp in d.responses:
        if resp.status_code >= 400:
            for value, kind in d.secrets.items():
                if value in resp.text or any(value in v for v in resp.headers.values()):
                    findings.append(f"error response of '{what}' ({resp.status_code}) carries {kind}: "
                                    f"{resp.text[:300]}")
            if "PRIVATE KEY" in resp.text:
                findings.append(f"error response of '{what}' carries a private key")
    errors = sum(1 for _, r in d.responses if r.status_code >= 400)
    print(f"\n[logs] {len(d.responses)} requests ({errors} errors) through RUST_LOG={level}, "
          f"{len(d.secrets)} secret values, {len(lines)} log lines ({len(debug_lines)} {level.upper()}) "
          f"in {log_path}; "
          f"{len(findings)} findings")
    assert not findings, "secrets found:\n" + "\n".join(findings[:60]) + (
        f"\n... and {len(findings) - 60} more" if len(findings) > 60 else "")


def _claims(jwt_text: str) -> dict:
    payload = jwt_text.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def test_every_issued_token_and_refusal_has_an_audit_line_that_is_also_a_metric(stack):
    # GIVEN a client and a user
    client = make_client(stack, grants=("client_credentials", "password", "refresh_token"),
                         scopes=("openid", "read"))
    user = make_user(stack)
    # WHEN a token is issued for each, and one request is refused
    cc = cc_token(stack, client)
    pw = password_token(stack, client, user, scope="openid read")
    assert cc.status_code == 200 and pw.status_code == 200, (cc.text, pw.text)
    refused = stack.http("POST", "/oauth/v2/token", auth=(client["client_id"], "wrong-secret"),
                         data={"grant_type": "client_credentials"},
                         headers={"User-Agent": "audit-test/1"})
    assert refused.status_code == 401
    cc_jti, pw_claims = _claims(cc.json()["access_token"])["jti"], _claims(pw.json()["access_token"])
    # THEN the function's log has one line per event, with who, what and where from
    deadline = time.monotonic() + 30
    while True:
        lines = audit_lines(Path(stack.watch.proc.log_path))
        issued = {l.get("jti"): l for l in lines if l.get("event") == "token_issued"}
        refusals = [l for l in lines if l.get("event") == "token_refused"
                    and l.get("user_agent") == "audit-test/1"]
        if (cc_jti in issued and pw_claims["jti"] in issued and refusals) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert cc_jti in issued and pw_claims["jti"] in issued and refusals, lines[-5:]
    cc_line, pw_line, refusal = issued[cc_jti], issued[pw_claims["jti"]], refusals[-1]
    assert cc_line["grant"] == "client_credentials" and cc_line["client_id"] == client["client_id"]
    assert cc_line["scope"] == "read" and "user_id" not in cc_line
    assert pw_line["grant"] == "password" and pw_line["user_id"] == user["user_id"]
    assert pw_line["family"] == pw_claims["sid"] and pw_line["scope"] == "openid read"
    assert refusal["error"] == "invalid_client" and refusal["client_id"] == client["client_id"]
    assert cc_line["source_ip"] and cc_line["user_agent"].startswith("python-requests")
    # AND each is an Embedded Metric Format document: the metric and its dimension on the line
    for line, metric, dimension in ((cc_line, "TokensIssued", "Grant"),
                                    (refusal, "Refusals", "Error")):
        directives = line["_aws"]["CloudWatchMetrics"]
        assert {d["Namespace"] for d in directives} == {"OAuthProvider"}
        names = {m["Name"] for d in directives for m in d["Metrics"]}
        assert {metric, "HandlerMs"} <= names, directives
        assert line[metric] == 1 and isinstance(line["HandlerMs"], float)
        assert [[dimension]] in [d["Dimensions"] for d in directives]
    assert cc_line["Grant"] == "client_credentials" and refusal["Error"] == "invalid_client"
    # AND no secret in any of them (the debug/trace tests above search every line as well)
    text = json.dumps([cc_line, pw_line, refusal])
    for secret in (client["client_secret"], user["password"], "wrong-secret",
                   cc.json()["access_token"], pw.json()["access_token"], pw.json()["refresh_token"]):
        assert secret not in text
