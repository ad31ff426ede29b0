"""The rotation function (issue #13) through its real binary: Secrets Manager's four steps,
invoked as Secrets Manager invokes them (Lambda Invoke API of `cargo lambda watch`), while a
client keeps getting tokens and a resource server keeps verifying them: no failure.

Own secret and own watcher (as test_rotation.py, for the same reason), with KEY_CACHE_SECONDS=2
so the functions see the rotated set within seconds."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
import uuid

import pytest
import requests

from helpers import ResourceServer, cc_token, client_basic, describe, make_client


def _invoke(watch, event: dict) -> requests.Response:
    return requests.post(f"{watch.base_url}/2015-03-31/functions/rotate/invocations",
                         data=json.dumps(event), timeout=120)


def _stages(sm, secret_id: str) -> dict[str, list[str]]:
    return sm.describe_secret(SecretId=secret_id)["VersionIdsToStages"]


def test_a_rotation_step_by_step_under_load_fails_no_request_or_verification(stack):
    # GIVEN a key set of its own whose RS256 `next` key was published a day ago
    secret_id = f"oauth-e2e-rotated-{uuid.uuid4().hex[:8]}"
    own = dataclasses.replace(stack, env={**stack.env, "SIGNING_KEYS_SECRET_ID": secret_id})
    own.oauthctl("init")
    sm = stack.backend.client("secretsmanager", via_proxy=False)
    doc = json.loads(sm.get_secret_value(SecretId=secret_id, VersionStage="AWSCURRENT")["SecretString"])
    for key in doc["keys"]:
        if key["status"] == "next":
            key["created_at"] -= 86_400
    before = {k["status"]: k["kid"] for k in doc["keys"] if k["alg"] == "RS256"}
    # AND rotation turned on (moto, without a Lambda to call, relabels a copy without the
    # value as AWSCURRENT: the set is put back after)
    sm.rotate_secret(SecretId=secret_id, RotateImmediately=False,
                     RotationRules={"AutomaticallyAfterDays": 30})
    sm.put_secret_value(SecretId=secret_id, SecretString=json.dumps(doc))
    with stack.functions_with(SIGNING_KEYS_SECRET_ID=secret_id, KEY_CACHE_SECONDS="2") as w:
        st = dataclasses.replace(own, watch=w, function_env=dict(w.function_env))
        client = make_client(st)
        api = ResourceServer(st.issuer + "/v2/jwks", st.issuer)
        lock = threading.Lock()
        stop = threading.Event()
        failures: list[str] = []
        kids: list[str] = []
        counts = {"tokens": 0, "introspections": 0}

        def worker() -> None:
            while not stop.is_set():
                try:
                    resp = cc_token(st, client)
                    if resp.status_code != 200:
                        raise AssertionError(describe(resp))
                    token = resp.json()["access_token"]
                    header, _ = api.verify(token, audience=st.issuer)
                    active = st.http("POST", "/oauth/v2/tokeninfo", data={"token": token},
                                     headers=client_basic(client), timeout=60).json()
                    if active.get("active") is not True:
                        raise AssertionError(f"introspection: {active}")
                    with lock:
                        counts["tokens"] += 1
                        counts["introspections"] += 1
                        if not kids or kids[-1] != header["kid"]:
                            kids.append(header["kid"])
                except Exception as e:  # noqa: BLE001 - every failure is collected
                    with lock:
                        failures.append(f"{type(e).__name__}: {e}")

        def wait_for(pred, what: str, timeout: float = 120) -> None:
            deadline = time.monotonic() + timeout
            while not pred():
                if time.monotonic() > deadline:
                    pytest.fail(f"timed out waiting for {what}; {counts} {failures[:3]}")
                time.sleep(0.2)

        thread = threading.Thread(target=worker, name="rotation-function-load", daemon=True)
        thread.start()
        try:
            wait_for(lambda: counts["tokens"] >= 3, "the first tokens")
            # WHEN Secrets Manager runs a rotation: its four steps, each retried once as it may
            token = str(uuid.uuid4())
            for step in ("createSecret", "setSecret", "testSecret", "finishSecret"):
                for attempt in (1, 2):
                    resp = _invoke(w, {"SecretId": secret_id, "ClientRequestToken": token,
                                       "Step": step})
                    assert resp.status_code == 200 and "errorType" not in resp.text, (
                        step, attempt, resp.status_code, resp.text[:300])
                if step == "createSecret":
                    # staged, not yet current
                    assert _stages(sm, secret_id)[token] == ["AWSPENDING"]
            assert "AWSCURRENT" in _stages(sm, secret_id)[token]
            # THEN the functions sign with the promoted key within their cache time
            wait_for(lambda: before["next"] in kids, f"a token signed by {before['next']}")
            # Each warm instance reloads on its own 2 s clock: cargo lambda watch may run two
            # token instances, and until the later one's cache lapses tokens alternate between
            # the keys (both published, so they verify). After two cache periods all are new.
            time.sleep(2 * 2)
            n = counts["tokens"]
            wait_for(lambda: counts["tokens"] >= n + 3, "tokens after the rotation")
        finally:
            stop.set()
            thread.join(timeout=120)
        # AND not one request or verification failed
        assert failures == [], f"{len(failures)} failures of {counts}: {failures[:5]}"
        assert kids[0] == before["active"] and kids[-1] == before["next"], kids
        current = json.loads(sm.get_secret_value(SecretId=secret_id,
                                                 VersionStage="AWSCURRENT")["SecretString"])
        statuses = {k["kid"]: k["status"] for k in current["keys"]}
        assert statuses[before["active"]] == "retired" and statuses[before["next"]] == "active"
        print(f"rotation under load: {counts['tokens']} tokens, {counts['introspections']} "
              f"introspections, 0 failed verifications")


def test_a_step_for_a_token_not_in_rotation_fails_and_changes_nothing(stack):
    resp = _invoke(stack.watch, {"SecretId": stack.function_env["SIGNING_KEYS_SECRET_ID"],
                                 "ClientRequestToken": str(uuid.uuid4()), "Step": "finishSecret"})
    assert "errorType" in resp.text or resp.status_code >= 400, resp.text[:300]
