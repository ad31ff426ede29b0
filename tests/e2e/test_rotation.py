"""End-to-end tests of signing-key rotation (SPEC §6): `oauthctl key rotate` refuses while the
next key is young, `--force` moves every key one step, and no request or verification fails
while keys rotate under load.

Isolation: rotating the session's shared secret would change the keys the session watcher
(KEY_CACHE_SECONDS=300) signs with while its discovery function may still serve an older JWKS
for up to 300 s, breaking unrelated tests that verify tokens against the JWKS. So this module
runs `oauthctl init` on a secret of its own (same table) and points a second watcher at it
with `functions_with(SIGNING_KEYS_SECRET_ID=..., KEY_CACHE_SECONDS="2")`."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
import uuid

import jwt
import pytest
import requests

from conftest import OauthctlError
from helpers import (
    ResourceServer,
    cc_token,
    client_basic,
    describe,
    make_client,
)

ALGS = ("RS256", "ES256", "EdDSA")
TOKENINFO = "/oauth/v2/tokeninfo"


@pytest.fixture(scope="module")
def rot(stack):
    """`stack` whose oauthctl works on a fresh key-set secret of this module's own."""
    secret_id = f"oauth-e2e-rotation-{uuid.uuid4().hex[:8]}"
    st = dataclasses.replace(stack, env={**stack.env, "SIGNING_KEYS_SECRET_ID": secret_id})
    out = st.oauthctl("init")
    assert out["secret_created"] is True, out
    return st


def key_list(st) -> list[dict]:
    return st.oauthctl("key", "list")["keys"]


def by_status(keys: list[dict], alg: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {"active": [], "next": [], "retired": []}
    for k in keys:
        if k["alg"] == alg:
            out[k["status"]].append(k["kid"])
    return out


# ============================================================ oauthctl key rotate
def test_init_creates_an_active_and_a_next_key_per_alg(rot):
    keys = key_list(rot)
    for alg in ALGS:
        s = by_status(keys, alg)
        assert len(s["active"]) == 1 and len(s["next"]) == 1 and not s["retired"], (alg, keys)
    assert len({k["kid"] for k in keys}) == len(keys)


@pytest.mark.parametrize("key_cache_seconds", [None, "2"])
def test_rotate_refuses_while_next_is_younger_than_max_age_plus_cache(rot, key_cache_seconds):
    # GIVEN a next key created moments ago (younger than 300 + KEY_CACHE_SECONDS)
    st = rot
    if key_cache_seconds:
        st = dataclasses.replace(rot, env={**rot.env, "KEY_CACHE_SECONDS": key_cache_seconds})
    before = key_list(st)
    # WHEN rotation is asked for without --force
    res = st.oauthctl_run("key", "rotate", "--alg", "RS256")
    # THEN it refuses: non-zero exit, a JSON error on stderr, nothing on stdout
    assert res.returncode != 0, (res.stdout, res.stderr)
    err = json.loads(res.stderr.strip().splitlines()[-1])
    assert isinstance(err, dict) and err.get("error"), res.stderr
    assert res.stdout.strip() == "", res.stdout
    with pytest.raises(OauthctlError):
        st.oauthctl("key", "rotate", "--alg", "RS256")
    # AND the key set is unchanged
    assert key_list(st) == before


def test_forced_rotation_moves_every_key_of_that_alg_one_step(rot):
    before = key_list(rot)
    old = by_status(before, "RS256")
    # WHEN RS256 is rotated with --force
    rot.oauthctl("key", "rotate", "--alg", "RS256", "--force")
    after = key_list(rot)
    new = by_status(after, "RS256")
    # THEN next → active, active → retired, and a brand-new next
    assert new["active"] == old["next"], (before, after)
    assert set(new["retired"]) == set(old["retired"]) | set(old["active"]), (before, after)
    assert len(new["next"]) == 1 and new["next"][0] not in {k["kid"] for k in before}
    info = {k["kid"]: k for k in after}
    assert info[new["active"][0]].get("activated_at"), info[new["active"][0]]
    assert info[old["active"][0]].get("retired_at"), info[old["active"][0]]
    # AND the other algorithms are untouched
    for alg in ("ES256", "EdDSA"):
        assert by_status(after, alg) == by_status(before, alg), alg
    # AND the brand-new next key is young: a plain rotation refuses again
    assert rot.oauthctl_run("key", "rotate", "--alg", "RS256").returncode != 0
    assert key_list(rot) == after


# ============================================================ rotation under load
def test_no_request_or_verification_fails_while_keys_rotate(stack, rot):
    secret_id = rot.env["SIGNING_KEYS_SECRET_ID"]
    with stack.functions_with(SIGNING_KEYS_SECRET_ID=secret_id, KEY_CACHE_SECONDS="2") as w:
        st = dataclasses.replace(rot, watch=w, function_env=dict(w.function_env))
        client = make_client(st)
        jwks_url = st.issuer + "/v2/jwks"
        assert requests.get(jwks_url, timeout=60).status_code == 200
        own_cache = ResourceServer(jwks_url, st.issuer)
        # Caches the set; refetches on an unknown kid. PyJWT >= 2.13 rate-limits that refetch
        # (cooldown_duration, default 30 s); forced rotations 3 s apart outpace it by design,
        # so turn the cooldown off (this is what a rotation-aware relying party configures).
        pyjwk_client = jwt.PyJWKClient(jwks_url, timeout=60, cooldown_duration=0)

        lock = threading.Lock()
        stop = threading.Event()
        failures: list[str] = []
        kids_seen: list[str] = []  # in order of issue
        tokens: list[str] = []
        counts = {"tokens": 0, "introspections": 0, "old_introspections": 0}

        def fail(what: str) -> None:
            with lock:
                failures.append(what)

        def introspect(token: str) -> None:
            resp = st.http("POST", TOKENINFO, data={"token": token},
                           headers=client_basic(client), timeout=60)
            if resp.status_code != 200 or resp.json().get("active") is not True:
                fail(f"introspection: {describe(resp)}")

        def worker() -> None:
            i = 0
            while not stop.is_set():
                i += 1
                try:
                    resp = cc_token(st, client)
                    if resp.status_code != 200:
                        fail(f"token #{i}: {describe(resp)}")
                        continue
                    token = resp.json()["access_token"]
                    header, claims = own_cache.verify(token, audience=st.issuer)
                    key = pyjwk_client.get_signing_key_from_jwt(token)
                    jwt.decode(token, key.key, algorithms=[header["alg"]], issuer=st.issuer,
                               audience=st.issuer, leeway=5)
                    assert claims["client_id"] == client["client_id"]
                    with lock:
                        counts["tokens"] += 1
                        tokens.append(token)
                        if not kids_seen or kids_seen[-1] != header["kid"]:
                            kids_seen.append(header["kid"])
                    if i % 3 == 0:
                        introspect(token)
                        with lock:
                            counts["introspections"] += 1
                    if i % 5 == 0:
                        # a token from the start, by now maybe signed by a retired key
                        introspect(tokens[0])
                        with lock:
                            counts["old_introspections"] += 1
                except Exception as e:  # noqa: BLE001 - every failure is collected
                    fail(f"token #{i}: {type(e).__name__}: {e}")

        def wait_for(pred, timeout: float, what: str) -> None:
            deadline = time.monotonic() + timeout
            while not pred():
                if time.monotonic() > deadline or not thread.is_alive():
                    pytest.fail(f"timed out waiting for {what}; counts={counts} failures={failures[:5]}")
                time.sleep(0.2)

        thread = threading.Thread(target=worker, name="rotation-load", daemon=True)
        thread.start()
        try:
            wait_for(lambda: counts["tokens"] >= 3, 180, "the first tokens")
            first_kid = kids_seen[0]
            # WHEN RS256 is force-rotated 3 times, a few seconds apart, under load
            for _ in range(3):
                st.oauthctl("key", "rotate", "--alg", "RS256", "--force")
                time.sleep(3)
            final_active = by_status(key_list(st), "RS256")["active"][0]
            # THEN the functions pick up the final active key (cache 2 s) ...
            wait_for(lambda: final_active in kids_seen, 180, f"a token signed by {final_active}")
            n = counts["tokens"]
            wait_for(lambda: counts["tokens"] >= n + 3, 180, "more tokens after the last rotation")
        finally:
            stop.set()
            thread.join(timeout=180)
        assert not thread.is_alive(), "load thread did not stop"
        # ... without a single failed request or verification
        assert failures == [], f"{len(failures)} failures, e.g. {failures[:5]}"
        assert len(set(kids_seen)) >= 2, kids_seen
        assert counts["introspections"] >= 1 and counts["old_introspections"] >= 1, counts
        # AND the first token (signed by a now-retired key) still verifies and introspects
        keys = {k["kid"]: k for k in key_list(st)}
        assert keys[first_kid]["status"] == "retired", keys[first_kid]
        ResourceServer(jwks_url, st.issuer).verify(tokens[0], audience=st.issuer)
        resp = st.http("POST", TOKENINFO, data={"token": tokens[0]}, headers=client_basic(client))
        assert resp.status_code == 200 and resp.json()["active"] is True, describe(resp)
        # AND every kid that signed was published all along and still is
        published = {k["kid"] for k in requests.get(jwks_url, timeout=60).json()["keys"]}
        assert set(kids_seen) <= published, (kids_seen, published)
        assert set(keys) == published
