"""Races over real HTTP (SPEC §4 refresh rotation, §5 revocation, lockout). The functions run
4 instances each (OAUTH_E2E_CONCURRENCY), so concurrent requests really race in separate
processes against the same DynamoDB table; the outcome must not depend on the interleaving.
The lockout burst runs on a watch of its own with one instance per request of the burst.

No timing assertions: only outcomes. Every request has a liveness timeout (60 s; 120 s on the
burst's watch, whose instances start on demand).
"""

from __future__ import annotations

import collections
import random
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import requests

from helpers import (
    assert_error,
    assert_success,
    client_basic,
    describe,
    make_client,
    make_user,
    password_token,
    refresh,
    unique,
)

WORKERS = 32
REFRESHES = 100
USER_GRANTS = ("password", "refresh_token")
SCOPES = ("openid", "profile", "email", "read", "write")
TOKENINFO = "/oauth/v2/tokeninfo"


def introspect(stack, client, token) -> dict:
    r = stack.http("POST", TOKENINFO, data={"token": token}, headers=client_basic(client), timeout=60)
    assert r.status_code == 200, describe(r)
    return r.json()


def revoke(stack, client, token):
    return stack.http("POST", "/oauth/v2/revoke", data={"token": token}, headers=client_basic(client),
                      timeout=60)


def _outcome(resp) -> str:
    try:
        err = resp.json().get("error")
    except ValueError:
        err = None
    return f"{resp.status_code} {err}" if err else str(resp.status_code)


# ----------------------------------------------------------------------------- refresh race
def test_concurrent_refreshes_of_one_token_have_exactly_one_winner(stack):
    client = make_client(stack, grants=USER_GRANTS, scopes=SCOPES)
    user = make_user(stack)
    summaries = []
    for round_no in range(2):
        login = assert_success(password_token(stack, client, user, scope="openid read"),
                               refresh=True, id_token=True)
        rt = login["refresh_token"]
        start = threading.Barrier(WORKERS)

        def one(i):
            if i < WORKERS:  # the first wave leaves together
                start.wait(timeout=60)
            return refresh(stack, client, rt)

        with ThreadPoolExecutor(max_workers=WORKERS) as pool:
            results = list(pool.map(one, range(REFRESHES)))
        outcomes = collections.Counter(_outcome(r) for r in results)
        summaries.append(f"round {round_no}: {dict(outcomes)}")
        winners = [r for r in results if r.status_code == 200]
        assert len(winners) == 1, f"{REFRESHES} concurrent refreshes: {dict(outcomes)}"
        for r in results:
            if r.status_code != 200:
                assert_error(r, 400, "invalid_grant", secrets=[rt, client["client_secret"]])
        won = assert_success(winners[0], refresh=True, id_token=True)
        # The losers were reuse: the whole family is revoked, the winner's tokens with it.
        assert introspect(stack, client, won["access_token"]) == {"active": False}
        assert introspect(stack, client, won["refresh_token"]) == {"active": False}
        assert introspect(stack, client, login["access_token"]) == {"active": False}
        assert_error(refresh(stack, client, won["refresh_token"]), 400, "invalid_grant")
        assert_error(refresh(stack, client, rt), 400, "invalid_grant")
    print(f"\n[refresh race] {REFRESHES} refreshes x {WORKERS} workers: " + "; ".join(summaries))


# ----------------------------------------------------------------------------- revoke vs refresh
def _family_state(stack, client, at0, rt0, refreshed) -> list[str]:
    """What is still alive of the family. Introspection first (it never rotates or revokes);
    refresh attempts last (presenting a spent token is itself reuse and would kill the family,
    hiding what revocation left behind)."""
    alive = []
    if introspect(stack, client, at0).get("active"):
        alive.append("original access token (sid) still active")
    if refreshed is not None:
        if introspect(stack, client, refreshed["access_token"]).get("active"):
            alive.append("rotated access token still active")
        if introspect(stack, client, refreshed["refresh_token"]).get("active"):
            alive.append("rotated refresh token still active")
        r = refresh(stack, client, refreshed["refresh_token"])
        if r.status_code == 200:
            alive.append("rotated refresh token still refreshes")
    r = refresh(stack, client, rt0)
    if r.status_code == 200:
        alive.append("original refresh token still refreshes")
    return alive


def test_concurrent_revocation_and_refresh_leave_the_family_dead(stack):
    client = make_client(stack, grants=USER_GRANTS, scopes=SCOPES)
    user = make_user(stack)
    rounds = []
    bad = []
    # Skew the start of one side a little each round so that both orders happen.
    skews = [0.0, 0.0, 0.01, -0.01, 0.03, -0.03, 0.06, -0.06, 0.0, 0.0]
    for i, skew in enumerate(skews):
        login = assert_success(password_token(stack, client, user, scope="openid read"), refresh=True,
                               id_token=True)
        at0, rt0 = login["access_token"], login["refresh_token"]
        gate = threading.Barrier(2)

        def do_revoke():
            gate.wait(timeout=60)
            if skew > 0:
                time.sleep(skew)
            return revoke(stack, client, rt0)

        def do_refresh():
            gate.wait(timeout=60)
            if skew < 0:
                time.sleep(-skew)
            return refresh(stack, client, rt0)

        with ThreadPoolExecutor(max_workers=2) as pool:
            rv, rf = pool.submit(do_revoke), pool.submit(do_refresh)
            rv, rf = rv.result(), rf.result()
        assert rv.status_code == 200 and rv.text == "", describe(rv)
        if rf.status_code == 200:
            refreshed = assert_success(rf, refresh=True, id_token=True)
            order = "refresh won"
        else:
            assert_error(rf, 400, "invalid_grant", secrets=[rt0])
            refreshed = None
            order = "revoke won"
        alive = _family_state(stack, client, at0, rt0, refreshed)
        rounds.append(f"{i}: skew {skew:+.2f}s, {order}, alive after: {alive or 'nothing'}")
        if alive:
            bad.append(rounds[-1])
    print("\n[revoke vs refresh] " + " | ".join(rounds))
    assert not bad, ("revocation raced with a refresh and the family survived:\n" + "\n".join(bad))


def test_revoking_a_just_rotated_refresh_token_kills_the_family(stack):
    """The deterministic form of the 'refresh won' interleaving above: the client revokes (logs
    out with) the refresh token it holds while a concurrent refresh has already rotated it."""
    client = make_client(stack, grants=USER_GRANTS, scopes=SCOPES)
    user = make_user(stack)
    login = assert_success(password_token(stack, client, user, scope="openid read"), refresh=True,
                           id_token=True)
    rotated = assert_success(refresh(stack, client, login["refresh_token"]), refresh=True, id_token=True)
    r = revoke(stack, client, login["refresh_token"])
    assert r.status_code == 200, describe(r)
    alive = _family_state(stack, client, login["access_token"], login["refresh_token"], rotated)
    assert not alive, (
        "POST /oauth/v2/revoke token=<rotated-out refresh token of a live family> answered 200 but "
        f"the family lives on: {alive}")


# ----------------------------------------------------------------------------- lockout race
VOLATILE_HEADERS = {"date", "x-amzn-requestid", "x-amz-apigw-id", "apigw-requestid",
                    "x-amzn-trace-id", "x-request-id", "lambda-runtime-aws-request-id"}


def _threshold(stack) -> int:
    """LOCKOUT_THRESHOLD of the functions under test (the harness leaves the default, 5)."""
    return int(stack.function_env.get("LOCKOUT_THRESHOLD", "5"))


def _comparable(resp) -> tuple:
    """Everything a caller can see of an answer but the date and request ids."""
    headers = tuple(sorted((k.lower(), v) for k, v in resp.headers.items()
                           if k.lower() not in VOLATILE_HEADERS and "request-id" not in k.lower()))
    return resp.status_code, resp.content, headers


def test_concurrent_failed_logins_lock_the_account(stack):
    client = make_client(stack, grants=USER_GRANTS, scopes=SCOPES)
    user = make_user(stack)
    wrong = "Wrong-" + uuid.uuid4().hex
    n = 20
    gate = threading.Barrier(n)

    def one(_):
        gate.wait(timeout=60)
        return password_token(stack, client, dict(user, password=wrong))

    with ThreadPoolExecutor(max_workers=n) as pool:
        results = list(pool.map(one, range(n)))
    outcomes = collections.Counter(_outcome(r) for r in results)
    print(f"\n[lockout race] {n} concurrent wrong passwords: {dict(outcomes)}")
    for r in results:
        assert_error(r, 400, "invalid_grant", secrets=[wrong, client["client_secret"]])
    answers = {_comparable(r) for r in results}
    assert len(answers) == 1, answers
    # Locked: even the right password gets the very same answer.
    locked = password_token(stack, client, user)
    assert_error(locked, 400, "invalid_grant", secrets=[user["password"]])
    assert _comparable(locked) in answers
    stack.oauthctl("user", "unlock", user["username"])
    assert_success(password_token(stack, client, user), refresh=True)


def test_wrong_password_and_locked_answers_are_byte_identical(stack):
    # GIVEN a user who fails THRESHOLD times
    client = make_client(stack, grants=USER_GRANTS, scopes=SCOPES)
    user = make_user(stack)
    wrong = dict(user, password="Wrong-" + uuid.uuid4().hex)
    failed = [password_token(stack, client, wrong) for _ in range(_threshold(stack))]
    for r in failed:
        assert_error(r, 400, "invalid_grant", secrets=[wrong["password"]])
    # WHEN the account is locked: the right password, and another wrong one
    locked_right = password_token(stack, client, user)
    locked_wrong = password_token(stack, client, wrong)
    # THEN status, body and headers (but date and request ids) are the wrong-password answer's
    expected = _comparable(failed[0])
    for r in (*failed[1:], locked_right, locked_wrong):
        assert _comparable(r) == expected, f"{describe(failed[0])}\n!=\n{describe(r)}"
    stack.oauthctl("user", "unlock", user["username"])
    assert_success(password_token(stack, client, user), refresh=True)


# A burst as wide as the functions' concurrency, so that every request of it is in flight at once
# (cargo-lambda runs one invocation per instance: a wider burst would queue, and the queue would
# hide the race).
LOCKOUT_BURST = 24
LOCKOUT_ROUNDS = 8
# Counting first and verifying only the attempt whose new count is THRESHOLD lets the right
# password in only when it happens to be that one attempt. Its position in the burst is random and
# it is indistinguishable from the others until its count is known, so each round it wins with
# probability exactly 1/LOCKOUT_BURST, independently of scheduling:
#   P(more than 2 lucky rounds of 8) = 1 - sum_{k<=2} C(8,k) (1/24)^k (23/24)^(8-k) ≈ 0.35 %.
# Verifying whatever read the counter below the threshold (read, argon2, then count) lets it in
# whenever its read precedes the first counted failure of the burst: almost every round.
LOCKOUT_MAX_LUCKY = 2


def _warm_instances(watch, client, n, *, bursts=8):
    """Start `n` token instances: bursts of `n` concurrent slow requests (argon2 on a dummy
    hash for unknown users) until that many are running. Best effort; returns the count."""
    def one(_):
        return requests.post(watch.base_url + "/oauth/v2/token", timeout=120,
                             headers=client_basic(client),
                             data={"grant_type": "password", "username": unique("warm"),
                                   "password": "Wrong-" + uuid.uuid4().hex})

    for _ in range(bursts):
        if watch.instances("token") >= n:
            break
        with ThreadPoolExecutor(max_workers=n) as pool:
            for r in pool.map(one, range(n)):
                assert_error(r, 400, "invalid_grant")
    return watch.instances("token")


def test_a_concurrent_burst_past_the_threshold_verifies_one_guess_not_all(stack):
    threshold = _threshold(stack)
    client = make_client(stack, grants=USER_GRANTS, scopes=SCOPES)
    rounds = []
    with stack.functions_with(concurrency=LOCKOUT_BURST) as w:
        def login(user, password):
            return requests.post(w.base_url + "/oauth/v2/token", timeout=120,
                                 headers=client_basic(client),
                                 data={"grant_type": "password", "username": user["username"],
                                       "password": password})

        running = _warm_instances(w, client, LOCKOUT_BURST)
        lucky = 0
        for round_no in range(LOCKOUT_ROUNDS):
            # GIVEN a fresh user one failure short of the lock
            user = make_user(stack)
            wrong = "Wrong-" + uuid.uuid4().hex
            for _ in range(threshold - 1):
                assert_error(login(user, wrong), 400, "invalid_grant", secrets=[wrong])
            # WHEN a concurrent burst of guesses arrives, one of them (anywhere) the right one
            right_at = random.randrange(LOCKOUT_BURST)
            gate = threading.Barrier(LOCKOUT_BURST)

            def one(i):
                gate.wait(timeout=60)
                return login(user, user["password"] if i == right_at else wrong)

            with ThreadPoolExecutor(max_workers=LOCKOUT_BURST) as pool:
                results = list(pool.map(one, range(LOCKOUT_BURST)))
            outcomes = collections.Counter(_outcome(r) for r in results)
            for i, r in enumerate(results):
                if i == right_at and r.status_code == 200:
                    assert_success(r, refresh=True)
                else:
                    assert_error(r, 400, "invalid_grant",
                                 secrets=[wrong, user["password"], client["client_secret"]])
            won = results[right_at].status_code == 200
            lucky += won
            rounds.append(f"{round_no}: right guess #{right_at} "
                          f"{'signed in' if won else 'refused'}, burst {dict(outcomes)}")
            if not won:
                # THEN the account is locked: the right password alone gets the wrong answer
                locked = login(user, user["password"])
                assert_error(locked, 400, "invalid_grant", secrets=[user["password"]])
                wrong_answers = {_comparable(r)[:2] for i, r in enumerate(results) if i != right_at}
                assert _comparable(locked)[:2] in wrong_answers, describe(locked)
                # AND an admin unlock restores it
                stack.oauthctl("user", "unlock", user["username"])
                assert_success(login(user, user["password"]), refresh=True)
    print(f"\n[lockout burst] {LOCKOUT_BURST} concurrent guesses x {LOCKOUT_ROUNDS} rounds, "
          f"threshold {threshold}, {running} token instances: " + " | ".join(rounds))
    # AND over all rounds, the right guess got past the threshold no more often than chance
    # allows when only one guess per burst is verified
    assert lucky <= LOCKOUT_MAX_LUCKY, (
        f"the right password signed in in {lucky} of {LOCKOUT_ROUNDS} bursts of "
        f"{LOCKOUT_BURST} that started {threshold - 1} failures in: more guesses than the "
        f"threshold were verified\n" + "\n".join(rounds))
