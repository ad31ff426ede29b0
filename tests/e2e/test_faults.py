"""Dependency faults (SPEC §4, §6): the fault proxy between the functions and moto breaks
DynamoDB or Secrets Manager; the functions must answer `503 temporarily_unavailable` with
`Retry-After`, never a token, within a bounded time (the SDK: 1.5 s per attempt, 4 s per
operation, 3 attempts), and recover as soon as the dependency is back.

Every request has a 30 s client timeout: that is a liveness bound (no hang), not a timing
assertion. Elapsed times are printed for the report only.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from helpers import (
    assert_error,
    assert_success,
    basic,
    client_basic,
    describe,
    make_client,
    make_user,
    password_token,
    post_token,
    refresh,
)

DYNAMODB = ("DynamoDB_20120810",)
SECRETS_MANAGER = ("secretsmanager.",)
LIVENESS = 30  # seconds a request may take before we call it a hang
USER_GRANTS = ("client_credentials", "password", "refresh_token")
SCOPES = ("openid", "profile", "email", "read", "write")
TOKENINFO = "/oauth/v2/tokeninfo"

# mode name -> FaultProxy.set_mode kwargs
DYNAMODB_FAULTS = {
    "down": dict(mode="down", targets=DYNAMODB),          # connection reset
    "slow": dict(mode="slow", delay=6.0, targets=DYNAMODB),  # beyond the 4 s operation timeout
    "throttle": dict(mode="throttle", targets=DYNAMODB),  # ThrottlingException on every call
    "error": dict(mode="error", status=500, targets=DYNAMODB),  # InternalServerError
    "refuse": dict(mode="refuse"),                        # ECONNREFUSED (all services)
}


def _timed(fn, *args, **kwargs):
    t0 = time.monotonic()
    resp = fn(*args, **kwargs)
    return resp, time.monotonic() - t0


def expect_503(resp, secrets=()) -> None:
    """503 temporarily_unavailable, Retry-After in seconds, no-store, nothing token-like."""
    body = assert_error(resp, 503, "temporarily_unavailable", secrets=secrets)
    assert set(body) == {"error", "error_description"}, describe(resp)
    assert resp.headers.get("Retry-After", "").strip().isdigit(), describe(resp)
    assert resp.headers.get("Cache-Control") == "no-store", describe(resp)
    for word in ("access_token", "refresh_token", "id_token", "active"):
        assert word not in resp.text, describe(resp)


def introspect(stack, client, token):
    return stack.http("POST", TOKENINFO, data={"token": token}, headers=client_basic(client),
                      timeout=LIVENESS)


@pytest.fixture
def world(stack):
    """A client with every grant, a user, and live tokens — obtained before any fault."""
    client = make_client(stack, grants=USER_GRANTS, scopes=SCOPES)
    user = make_user(stack)
    login = assert_success(password_token(stack, client, user, scope="openid profile read"),
                           refresh=True, id_token=True)
    return {"client": client, "user": user, "login": login,
            "secrets": [client["client_secret"], user["password"], login["refresh_token"]]}


@pytest.mark.parametrize("fault", list(DYNAMODB_FAULTS))
def test_dynamodb_fault_is_503_then_recovers(stack, fault_proxy, world, fault):
    client, user, login = world["client"], world["user"], world["login"]
    secrets = world["secrets"]
    at, rt = login["access_token"], login["refresh_token"]
    # Discovery reads only Secrets Manager: warm it so it has keys cached before the fault.
    assert stack.http("GET", "/oauth/v2/jwks").status_code == 200

    fault_proxy.set_mode(**DYNAMODB_FAULTS[fault])
    elapsed: dict[str, float] = {}
    try:
        calls = {
            "client_credentials": lambda: post_token(
                stack, data={"grant_type": "client_credentials", "scope": "read"},
                headers=client_basic(client), timeout=LIVENESS),
            "password": lambda: post_token(
                stack, data={"grant_type": "password", "username": user["username"],
                             "password": user["password"], "scope": "read"},
                headers=client_basic(client), timeout=LIVENESS),
            "password_json_empowerid": lambda: post_token(
                stack, json_body={"grant_type": "password", "client_id": client["client_id"],
                                  "client_secret": client["client_secret"]},
                headers={"Authorization": basic(user["username"], user["password"],
                                                form_encode=False)},
                timeout=LIVENESS),
            "refresh_token": lambda: post_token(
                stack, data={"grant_type": "refresh_token", "refresh_token": rt},
                headers=client_basic(client), timeout=LIVENESS),
            "introspection": lambda: introspect(stack, client, at),
            "tokeninfo_get": lambda: stack.http("GET", TOKENINFO, params={"access_token": at},
                                                timeout=LIVENESS),
            "userinfo": lambda: stack.http("GET", "/oauth/v2/userinfo",
                                           headers={"Authorization": f"Bearer {at}"},
                                           timeout=LIVENESS),
            "revoke": lambda: stack.http("POST", "/oauth/v2/revoke", data={"token": rt},
                                         headers=client_basic(client), timeout=LIVENESS),
        }
        for name, call in calls.items():
            resp, elapsed[name] = _timed(call)
            expect_503(resp, secrets=secrets)
        if fault != "refuse":
            # Discovery and JWKS do not touch DynamoDB: they keep answering.
            for path in ("/oauth/.well-known/openid-configuration", "/oauth/v2/jwks"):
                r = stack.http("GET", path, timeout=LIVENESS)
                assert r.status_code == 200, describe(r)
        stats = dict(fault_proxy.stats)
    finally:
        fault_proxy.set_mode("pass")
    print(f"\n[{fault}] 503 latency (s): " + ", ".join(f"{k}={v:.2f}" for k, v in elapsed.items())
          + f"; proxy stats {stats}")
    # The proxy really saw (and broke) calls of the functions.
    key = {"down": "reset", "slow": "delayed", "throttle": "throttled", "error": "errored"}.get(fault)
    if key:
        assert stats.get(key, 0) >= len(calls), stats

    # Recovery: the very next requests succeed; nothing was burnt or locked by the outage.
    assert_success(post_token(stack, data={"grant_type": "client_credentials", "scope": "read"},
                              headers=client_basic(client), timeout=LIVENESS))
    assert_success(password_token(stack, client, user, scope="read"), refresh=True)
    rotated = assert_success(refresh(stack, client, rt), refresh=True, id_token=True)  # not spent by the 503s
    body = introspect(stack, client, rotated["access_token"]).json()
    assert body.get("active") is True, body
    assert introspect(stack, client, at).json().get("active") is True  # revoke during outage did nothing


def test_dynamodb_fault_under_concurrency_never_hangs_or_leaks(stack, fault_proxy, world):
    """24 concurrent token requests during a DynamoDB outage (4 instances per function):
    every one is answered, each a 503, none with a token."""
    client, user = world["client"], world["user"]
    fault_proxy.set_mode("down", targets=DYNAMODB)
    try:
        def one(i):
            if i % 2:
                return post_token(stack, data={"grant_type": "client_credentials"},
                                  headers=client_basic(client), timeout=LIVENESS)
            return password_token(stack, client, user)
        with ThreadPoolExecutor(max_workers=12) as pool:
            results = list(pool.map(one, range(24)))
    finally:
        fault_proxy.set_mode("pass")
    for r in results:
        expect_503(r, secrets=world["secrets"])
    assert_success(password_token(stack, client, user), refresh=True)


# ----------------------------------------------------------------------------- Secrets Manager
def _warm(base_url_http, client, rounds=3, width=16):
    """Concurrent rounds so that every instance of token, tokeninfo and discovery has served
    (and so loaded the key set) at least once."""
    def one(i):
        kind = i % 3
        if kind == 0:
            return base_url_http("POST", "/oauth/v2/token",
                                 data={"grant_type": "client_credentials", "scope": "read"},
                                 headers=client_basic(client), timeout=LIVENESS)
        if kind == 1:
            return base_url_http("GET", TOKENINFO, params={"access_token": "a.b.c"}, timeout=LIVENESS)
        return base_url_http("GET", "/oauth/v2/jwks", timeout=LIVENESS)
    for _ in range(rounds):
        with ThreadPoolExecutor(max_workers=width) as pool:
            for r in pool.map(one, range(width * 3)):
                assert r.status_code == 200, describe(r)


def test_secrets_manager_down_after_keys_are_cached_keeps_serving(stack, fault_proxy, world):
    """Keys are cached per instance (KEY_CACHE_SECONDS, default 300 s; a failed re-read keeps
    the previous set): with Secrets Manager unreachable, warm functions keep issuing and
    verifying tokens, and JWKS keeps answering."""
    client, user = world["client"], world["user"]
    _warm(stack.http, client)
    fault_proxy.set_mode("down", targets=SECRETS_MANAGER)
    try:
        def one(i):
            if i % 3 == 0:
                return "cc", post_token(stack, data={"grant_type": "client_credentials", "scope": "read"},
                                        headers=client_basic(client), timeout=LIVENESS)
            if i % 3 == 1:
                return "jwks", stack.http("GET", "/oauth/v2/jwks", timeout=LIVENESS)
            return "introspect", introspect(stack, client, world["login"]["access_token"])
        with ThreadPoolExecutor(max_workers=12) as pool:
            results = list(pool.map(one, range(36)))
        pw = password_token(stack, client, user, scope="openid read")
        stats = dict(fault_proxy.stats)
    finally:
        fault_proxy.set_mode("pass")
    bad = [f"{kind}: {describe(r)}" for kind, r in results if r.status_code != 200]
    assert not bad, "with keys cached, Secrets Manager down must not matter:\n" + "\n".join(bad)
    for kind, r in results:
        if kind == "introspect":
            assert r.json().get("active") is True, describe(r)
    assert_success(pw, refresh=True, id_token=True)
    print(f"\n[secrets manager down, warm] 37/37 answered 200; proxy stats {stats}")


def test_secrets_manager_faults_cold_start_and_stale_cache(stack, fault_proxy):
    """A second set of functions with KEY_CACHE_SECONDS=2:
    - cold, Secrets Manager down: token → 503 (no keys can be loaded), JWKS → 503, the
      discovery metadata (no keys needed) → 200; Secrets Manager back → 200;
    - warm, Secrets Manager down past the cache period: the stale set keeps serving."""
    fault_proxy.set_mode("down", targets=SECRETS_MANAGER)
    observed = []
    try:
        with stack.functions_with(KEY_CACHE_SECONDS="2") as w:
            def http(method, path, **kw):
                kw.setdefault("timeout", LIVENESS)
                return requests.request(method, w.base_url + path, **kw)

            client = make_client(stack, grants=USER_GRANTS, scopes=SCOPES)
            cc = {"grant_type": "client_credentials", "scope": "read"}
            r, t = _timed(http, "POST", "/oauth/v2/token", data=cc, headers=client_basic(client))
            expect_503(r, secrets=[client["client_secret"]])
            observed.append(f"cold+SM down: token {r.status_code} in {t:.2f}s")
            r = http("GET", "/oauth/v2/jwks")
            expect_503(r)
            observed.append(f"jwks {r.status_code}")
            r = http("GET", "/oauth/.well-known/openid-configuration")
            assert r.status_code == 200, describe(r)
            observed.append(f"metadata {r.status_code}")

            fault_proxy.set_mode("pass")
            r = http("POST", "/oauth/v2/token", data=cc, headers=client_basic(client))
            assert_success(r)
            observed.append("SM back: token 200")

            _warm(http, client)
            fault_proxy.set_mode("down", targets=SECRETS_MANAGER)
            time.sleep(3)  # past KEY_CACHE_SECONDS: every instance must try to re-read
            results = []
            for _ in range(6):
                r, t = _timed(http, "POST", "/oauth/v2/token", data=cc, headers=client_basic(client))
                results.append((r, t))
            jwks = http("GET", "/oauth/v2/jwks")
            stats = dict(fault_proxy.stats)
            fault_proxy.set_mode("pass")
            for r, _ in results:
                assert_success(r)
            assert jwks.status_code == 200, describe(jwks)
            observed.append("warm+SM down past cache period: token " +
                            ", ".join(f"{r.status_code} ({t:.2f}s)" for r, t in results) +
                            f"; jwks {jwks.status_code}; proxy stats {stats}")
    finally:
        fault_proxy.set_mode("pass")
        print("\n[secrets manager, KEY_CACHE_SECONDS=2] " + "; ".join(observed))


# ----------------------------------------------------------------------------- bounded time
def _function_timeout() -> int:
    """The Lambda functions' Timeout (template.yaml Globals): beyond it API Gateway answers
    its own generic error instead of ours."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "template.yaml").read_text()
    globals_part = text.split("\nGlobals:", 1)[-1]
    match = re.search(r"^\s+Timeout:\s*(\d+)\s*$", globals_part, re.M)
    return int(match.group(1)) if match else 10


# Below the SDK's 1.5 s attempt timeout: every BatchGetItem succeeds, slowly, having processed
# nothing, so only the functions' own retry policy bounds the request.
UNPROCESSED_DELAY = 1.2


def test_unprocessed_batch_keys_answer_503_within_the_function_timeout(stack, fault_proxy, world):
    client, user, login = world["client"], world["user"], world["login"]
    rt = login["refresh_token"]
    timeout = _function_timeout()
    calls = {
        "password": lambda: post_token(
            stack, data={"grant_type": "password", "username": user["username"],
                         "password": user["password"], "scope": "read"},
            headers=client_basic(client), timeout=timeout),
        "refresh_token": lambda: post_token(
            stack, data={"grant_type": "refresh_token", "refresh_token": rt},
            headers=client_basic(client), timeout=timeout),
        "introspection": lambda: stack.http(
            "POST", TOKENINFO, data={"token": login["access_token"]},
            headers=client_basic(client), timeout=timeout),
    }
    # GIVEN DynamoDB answering every BatchGetItem slowly with all keys unprocessed
    fault_proxy.set_mode("unprocessed", delay=UNPROCESSED_DELAY)
    answers, elapsed, late = {}, {}, []
    try:
        for name, call in calls.items():
            try:
                answers[name], elapsed[name] = _timed(call)
            except requests.exceptions.Timeout:  # the one timing assertion: the function Timeout
                late.append(name)
        stats = dict(fault_proxy.stats)
    finally:
        fault_proxy.set_mode("pass")
    print(f"\n[unprocessed {UNPROCESSED_DELAY}s] 503 latency (s): "
          + ", ".join(f"{k}={v:.2f}" for k, v in elapsed.items()) + f"; proxy stats {stats}")
    # THEN each request is answered within the function timeout ...
    assert not late, (f"{late}: no answer within the function Timeout ({timeout} s); behind API "
                      "Gateway the caller would get its generic error, not our 503")
    # ... with our 503 temporarily_unavailable and Retry-After, never a token
    for name, resp in answers.items():
        expect_503(resp, secrets=world["secrets"])
    assert stats.get("unprocessed", 0) >= len(calls), stats
    # AND once DynamoDB is back, the same requests succeed (the refresh token was not spent)
    assert_success(password_token(stack, client, user, scope="read"), refresh=True)
    assert_success(refresh(stack, client, rt), refresh=True, id_token=True)
