"""Races over real HTTP (SPEC §4 refresh rotation, §5 revocation, lockout). The functions run
4 instances each (OAUTH_E2E_CONCURRENCY), so concurrent requests really race in separate
processes against the same DynamoDB table; the outcome must not depend on the interleaving.

No timing assertions: only outcomes. Every request has a 60 s liveness timeout.
"""

from __future__ import annotations

import collections
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from helpers import (
    assert_error,
    assert_success,
    client_basic,
    describe,
    make_client,
    make_user,
    password_token,
    refresh,
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
    bodies = {r.text for r in results}
    # Locked: even the right password gets the very same answer.
    locked = password_token(stack, client, user)
    assert_error(locked, 400, "invalid_grant", secrets=[user["password"]])
    assert locked.text in bodies
    stack.oauthctl("user", "unlock", user["username"])
    assert_success(password_token(stack, client, user), refresh=True)
