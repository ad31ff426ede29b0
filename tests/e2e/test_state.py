"""Account, client and session state that cannot be outrun (issue #11) — over real HTTP.

oauthctl's `user disable|delete|set-password` revoke the user's refresh families afterwards
through an eventually consistent Scan, which may miss a family (or lose a race with a login).
These tests make the admin change and leave the family as such a Scan would have left it — by
writing the items in moto directly (`uid#<user_id>`, `client#<id>`, `rfam#<family_id>`), or by
running oauthctl and then un-revoking the family — and check that the functions re-check the
account and the client themselves:

- refresh refuses a disabled, deleted or re-credentialed account, a disabled or deleted client,
  a re-created client id, and narrows the scope to what the client still allows;
- a refresh family deleted by TTL does not bring its access tokens back to life, and its TTL
  outlives every access token it covers;
- introspection and userinfo know about users and clients for tokens without `sid`;
- access tokens carry no `username`; introspection still names the user;
- refresh-token introspection reports the current token's `iat`.

Every test makes its own clients and users. Item layout (SPEC §7, issue #11): `uid#<user_id>`
(account: user_id, username, enabled, claims, credentials_changed_at), `rfam#<family_id>`
(family: client_id, user_id, scope, auth_time, revoked, exp, ttl, issued_at), `client#<id>`.
"""

from __future__ import annotations

import re
import time
import uuid

import pytest

from helpers import (
    INACTIVE,
    OIDC_SCOPES,
    REVOKE,
    TOKENINFO,
    USER_GRANTS,
    USERINFO,
    account_pk,
    assert_error,
    assert_success,
    cc_token,
    client_basic,
    client_pk,
    delete_item,
    describe,
    family_pk,
    jwt_payload,
    make_client,
    make_user,
    password_token,
    refresh,
    require_item,
    set_attributes,
    unique,
    verify_access_token,
)



# ----------------------------------------------------------------------------- local helpers
def introspect(stack, client, token) -> dict:
    resp = stack.http("POST", TOKENINFO, data={"token": token}, headers=client_basic(client))
    assert resp.status_code == 200, describe(resp)
    assert resp.headers.get("Cache-Control") == "no-store", describe(resp)
    return resp.json()


def tokeninfo_get(stack, token) -> dict:
    resp = stack.http("GET", TOKENINFO, params={"access_token": token})
    assert resp.status_code == 200, describe(resp)
    return resp.json()


def userinfo(stack, token):
    return stack.http("GET", USERINFO, headers={"Authorization": f"Bearer {token}"})


def assert_userinfo_refused(stack, token) -> None:
    resp = userinfo(stack, token)
    assert resp.status_code == 401, describe(resp)
    challenge = resp.headers.get("WWW-Authenticate", "")
    assert challenge.startswith("Bearer") and 'error="invalid_token"' in challenge, describe(resp)


def assert_inactive_everywhere(stack, observer, token, *, user_token=True) -> None:
    """Exactly {"active":false} at introspection (by `observer`) and GET tokeninfo; 401 at
    userinfo for a user token with openid."""
    assert introspect(stack, observer, token) == INACTIVE
    assert tokeninfo_get(stack, token) == INACTIVE
    if user_token:
        assert_userinfo_refused(stack, token)


def assert_active(stack, observer, token, *, sub: str) -> dict:
    info = introspect(stack, observer, token)
    assert info.get("active") is True, info
    assert info.get("sub") == sub, info
    assert tokeninfo_get(stack, token).get("active") is True
    return info


def session(stack, *, refreshable=True, scope="openid read"):
    """A client (password, plus refresh_token when `refreshable`), a user, and a login."""
    grants = USER_GRANTS if refreshable else ("password",)
    client = make_client(stack, grants=grants, scopes=OIDC_SCOPES)
    user = make_user(stack)
    body = assert_success(password_token(stack, client, user, scope=scope), refresh=refreshable,
                          id_token="openid" in scope.split())
    if not refreshable:
        assert "sid" not in jwt_payload(body["access_token"]), "no refresh grant, no family"
    return client, user, body


def account(stack, user) -> dict:
    """The account record oauthctl writes beside the login record."""
    item = require_item(
        stack, account_pk(user["user_id"]),
        "oauthctl user create must write the account record uid#<user_id> beside user#<username>")
    assert item.get("user_id") == user["user_id"], item
    assert item.get("username") == user["username"], item
    assert item.get("enabled") is True, item
    return item


def family_of(stack, body) -> tuple[str, dict]:
    """The login's family id (the access token's sid) and its rfam# item."""
    sid = jwt_payload(body["access_token"]).get("sid")
    assert sid, "a user grant with a refresh token carries the family id as sid"
    return sid, require_item(stack, family_pk(sid), "the login's refresh family")


# ============================================================ refresh token format
def test_refresh_token_is_family_id_dot_secret_and_the_family_names_its_user(stack):
    # GIVEN a login with a refresh token
    client, user, body = session(stack)
    sid = jwt_payload(body["access_token"])["sid"]
    # THEN the refresh token is <family_id>.<43 base64url>, family_id = <user_id>~<22 base64url>,
    # and the access token's sid is that family id
    family_id, dot, secret = body["refresh_token"].partition(".")
    assert dot and family_id == sid, body["refresh_token"]
    assert re.fullmatch(re.escape(user["user_id"]) + r"~[A-Za-z0-9_-]{22}", family_id), family_id
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", secret), "256-bit secret, base64url"
    # AND the family item is found under that id and names the user and client
    family = require_item(stack, family_pk(sid), "rfam#<sid>")
    assert family["user_id"] == user["user_id"] and family["client_id"] == client["client_id"]
    # AND rotation keeps the family id and changes the secret
    rotated = assert_success(refresh(stack, client, body["refresh_token"]), refresh=True, id_token=True)
    assert rotated["refresh_token"].startswith(sid + ".")
    assert rotated["refresh_token"] != body["refresh_token"]
    assert jwt_payload(rotated["access_token"])["sid"] == sid


# ============================================================ 1. refresh re-checks the user
@pytest.mark.parametrize("change", ["disabled", "deleted", "credentials_changed"])
def test_refresh_rechecks_the_account_a_cleanup_missed(stack, change):
    # GIVEN a session whose account record is in order
    client, user, login = session(stack)
    account(stack, user)
    sid, family = family_of(stack, login)
    pk = account_pk(user["user_id"])
    if change == "credentials_changed":
        # control: credentials changed BEFORE the login do not matter
        set_attributes(stack, pk, credentials_changed_at=family["auth_time"] - 5)
    # AND the session refreshes (control)
    rotated = assert_success(refresh(stack, client, login["refresh_token"]), refresh=True,
                             id_token=True)
    rt = rotated["refresh_token"]
    # WHEN the account changes in the table and nothing revokes the family
    if change == "disabled":
        set_attributes(stack, pk, enabled=False)
    elif change == "deleted":
        delete_item(stack, pk)
    else:
        set_attributes(stack, pk, credentials_changed_at=family["auth_time"] + 5)
    assert require_item(stack, family_pk(sid), "the family")["revoked"] is False
    # THEN the refresh grant refuses it: 400 invalid_grant, no token
    assert_error(refresh(stack, client, rt), 400, "invalid_grant",
                 secrets=[rt, client["client_secret"]])


@pytest.mark.parametrize("cleanup", ["ran", "missed"])
@pytest.mark.parametrize("command", ["disable", "delete", "set-password"])
def test_refresh_after_oauthctl_user_change_is_invalid_grant(stack, command, cleanup):
    # GIVEN a session
    client, user, login = session(stack)
    sid, _ = family_of(stack, login)
    args = ["user", command, user["username"]]
    if command == "set-password":
        time.sleep(1.1)  # the change is then strictly later than the login's auth_time
        args += ["--password", "New-Pass-" + uuid.uuid4().hex]
    # WHEN an admin changes the user with oauthctl (which also revokes the user's families)
    stack.oauthctl(*args)
    if cleanup == "missed":
        # ... but its Scan missed this family (or a login raced the command)
        set_attributes(stack, family_pk(sid), revoked=False)
    # THEN the session's refresh token no longer refreshes
    assert_error(refresh(stack, client, login["refresh_token"]), 400, "invalid_grant",
                 secrets=[login["refresh_token"], client["client_secret"]])


@pytest.mark.parametrize("change", ["disabled", "deleted"])
def test_refresh_with_a_client_disabled_or_deleted_in_the_table_is_invalid_client(stack, change):
    # GIVEN a session
    client, _, login = session(stack)
    # WHEN the client is disabled / deleted in the table (nothing revokes its families)
    if change == "disabled":
        set_attributes(stack, client_pk(client["client_id"]), enabled=False)
    else:
        delete_item(stack, client_pk(client["client_id"]))
    # THEN the client no longer authenticates: 401 invalid_client, no token
    assert_error(refresh(stack, client, login["refresh_token"]), 401, "invalid_client",
                 secrets=[login["refresh_token"], client["client_secret"]], basic_challenge=True)


@pytest.mark.parametrize("how", ["oauthctl", "table"])
def test_a_recreated_client_id_inherits_no_refresh_tokens(stack, how):
    # GIVEN a session of a client with a chosen id
    client_id = unique("e2e-recreated")
    old = make_client(stack, grants=USER_GRANTS, scopes=OIDC_SCOPES, client_id=client_id)
    user = make_user(stack)
    login = assert_success(password_token(stack, old, user, scope="openid read"), refresh=True,
                           id_token=True)
    # WHEN the client is deleted and a new client is created with the same id
    if how == "oauthctl":
        stack.oauthctl("client", "delete", client_id)
    else:
        # deleted behind oauthctl's back: none of its families is revoked, and only the new
        # record itself (created a second later) tells the old sessions apart
        delete_item(stack, client_pk(client_id))
        time.sleep(1.1)
    new = make_client(stack, grants=USER_GRANTS, scopes=OIDC_SCOPES, client_id=client_id)
    assert new["client_secret"] != old["client_secret"]
    # THEN the new client cannot use the old client's refresh token
    assert_error(refresh(stack, new, login["refresh_token"]), 400, "invalid_grant",
                 secrets=[login["refresh_token"], new["client_secret"]])
    # AND the old session's tokens are inactive, even to the new holder of the id
    assert introspect(stack, new, login["refresh_token"]) == INACTIVE
    assert introspect(stack, new, login["access_token"]) == INACTIVE
    # AND the new client's own sessions work (refresh included)
    fresh = assert_success(password_token(stack, new, user, scope="openid read"), refresh=True,
                           id_token=True)
    assert_success(refresh(stack, new, fresh["refresh_token"]), refresh=True, id_token=True)


def test_refresh_narrows_the_scope_to_what_the_client_still_allows(stack):
    # GIVEN a session granted "openid read write"
    client = make_client(stack, grants=USER_GRANTS, scopes=OIDC_SCOPES)
    user = make_user(stack)
    login = assert_success(password_token(stack, client, user, scope="openid read write"),
                           refresh=True, id_token=True)
    assert set(login["scope"].split()) == {"openid", "read", "write"}
    # WHEN an admin takes "write" away from the client (in the table)
    pk = client_pk(client["client_id"])
    record = require_item(stack, pk, "the client")
    set_attributes(stack, pk,
                   allowed_scopes=[s for s in record["allowed_scopes"] if s != "write"],
                   default_scopes=[s for s in record.get("default_scopes", []) if s != "write"])
    # THEN the refreshed access token no longer has it
    body = assert_success(refresh(stack, client, login["refresh_token"]), refresh=True,
                          id_token=True)
    assert set(body["scope"].split()) == {"openid", "read"}, body["scope"]
    assert set(verify_access_token(stack, body["access_token"])["scope"].split()) == {"openid", "read"}
    # AND neither does the next one
    again = assert_success(refresh(stack, client, body["refresh_token"]), refresh=True,
                           id_token=True)
    assert "write" not in again["scope"].split(), again["scope"]


# ============================================================ 3. revocation outlives TTL deletion
def test_access_tokens_of_a_family_deleted_by_ttl_are_inactive(stack):
    # GIVEN a session with openid, active everywhere (control)
    client, user, login = session(stack, scope="openid read")
    at = login["access_token"]
    sid, _ = family_of(stack, login)
    assert_active(stack, client, at, sub=user["user_id"])
    assert userinfo(stack, at).status_code == 200
    # WHEN its family item disappears (TTL deletion of a revoked or expired family)
    delete_item(stack, family_pk(sid))
    # THEN a token carrying that sid is inactive: introspection, GET tokeninfo, userinfo
    assert_inactive_everywhere(stack, client, at)
    # AND the refresh token is dead too
    assert introspect(stack, client, login["refresh_token"]) == INACTIVE
    assert_error(refresh(stack, client, login["refresh_token"]), 400, "invalid_grant")


def test_family_ttl_outlives_every_access_token_it_covers(stack):
    # GIVEN a client whose refresh tokens live shorter than its access tokens
    client = make_client(stack, grants=USER_GRANTS, scopes=OIDC_SCOPES, access_ttl=900,
                         refresh_ttl=300)
    user = make_user(stack)
    login = assert_success(password_token(stack, client, user, scope="read"), refresh=True)
    sid, family = family_of(stack, login)
    # THEN the family is kept (TTL) until its last access token has expired
    assert family["ttl"] >= family["exp"] + login["expires_in"], family
    # AND after a rotation (a new access token)
    rotated = assert_success(refresh(stack, client, login["refresh_token"]), refresh=True)
    family = require_item(stack, family_pk(sid), "the family")
    assert family["ttl"] >= family["exp"] + rotated["expires_in"], family
    # AND once revoked: the revocation is remembered as long
    resp = stack.http("POST", REVOKE, data={"token": rotated["refresh_token"]},
                      headers=client_basic(client))
    assert resp.status_code == 200, describe(resp)
    family = require_item(stack, family_pk(sid), "the revoked family")
    assert family["revoked"] is True
    assert family["ttl"] >= family["exp"] + rotated["expires_in"], family


# ============================================================ 4. introspection knows users, clients
@pytest.mark.parametrize("how", ["table", "oauthctl"])
def test_disabling_the_user_deactivates_tokens_without_sid_until_enabled(stack, how):
    # GIVEN a token without sid (the client has no refresh grant), active (control)
    client, user, body = session(stack, refreshable=False)
    at = body["access_token"]
    assert_active(stack, client, at, sub=user["user_id"])
    assert userinfo(stack, at).status_code == 200
    # WHEN the user is disabled
    if how == "table":
        account(stack, user)
        set_attributes(stack, account_pk(user["user_id"]), enabled=False)
    else:
        stack.oauthctl("user", "disable", user["username"])
    # THEN the token is inactive everywhere
    assert_inactive_everywhere(stack, client, at)
    # WHEN the user is enabled again THEN it is active again (disabling is not revocation)
    if how == "table":
        set_attributes(stack, account_pk(user["user_id"]), enabled=True)
    else:
        stack.oauthctl("user", "enable", user["username"])
    info = assert_active(stack, client, at, sub=user["user_id"])
    assert info.get("username") == user["username"], info
    assert userinfo(stack, at).status_code == 200


@pytest.mark.parametrize("how", ["table", "oauthctl"])
def test_deleting_the_user_deactivates_tokens_without_sid_for_good(stack, how):
    # GIVEN a token without sid, active (control)
    client, user, body = session(stack, refreshable=False)
    at = body["access_token"]
    assert_active(stack, client, at, sub=user["user_id"])
    # WHEN the user is deleted
    if how == "table":
        account(stack, user)
        delete_item(stack, account_pk(user["user_id"]))
    else:
        stack.oauthctl("user", "delete", user["username"])
    # THEN the token is inactive everywhere
    assert_inactive_everywhere(stack, client, at)
    if how == "oauthctl":
        # AND a new user with the same username (a new user_id) does not revive it
        again = make_user(stack, username=user["username"])
        assert again["user_id"] != user["user_id"]
        assert_inactive_everywhere(stack, client, at)


@pytest.mark.parametrize("how", ["table", "oauthctl"])
def test_tokens_of_a_disabled_client_are_inactive_until_it_is_enabled(stack, how):
    # GIVEN a client_credentials token and a user token (no sid) of one client, and another
    # client that introspects on behalf of a resource server
    client = make_client(stack, grants=("client_credentials", "password"), scopes=OIDC_SCOPES)
    user = make_user(stack)
    cc = assert_success(cc_token(stack, client))["access_token"]
    ut = assert_success(password_token(stack, client, user, scope="openid read"),
                        id_token=True)["access_token"]
    observer = make_client(stack)
    assert_active(stack, observer, cc, sub=client["client_id"])
    assert_active(stack, observer, ut, sub=user["user_id"])
    # WHEN the client is disabled
    if how == "table":
        set_attributes(stack, client_pk(client["client_id"]), enabled=False)
    else:
        stack.oauthctl("client", "disable", client["client_id"])
    # THEN both tokens are inactive everywhere
    assert_inactive_everywhere(stack, observer, cc, user_token=False)
    assert_inactive_everywhere(stack, observer, ut)
    # WHEN it is enabled again THEN both are active again
    if how == "table":
        set_attributes(stack, client_pk(client["client_id"]), enabled=True)
    else:
        stack.oauthctl("client", "enable", client["client_id"])
    assert_active(stack, observer, cc, sub=client["client_id"])
    assert_active(stack, observer, ut, sub=user["user_id"])
    assert userinfo(stack, ut).status_code == 200


@pytest.mark.parametrize("how", ["table", "oauthctl"])
def test_tokens_of_a_deleted_client_are_inactive(stack, how):
    client = make_client(stack, grants=("client_credentials", *USER_GRANTS), scopes=OIDC_SCOPES)
    user = make_user(stack)
    cc = assert_success(cc_token(stack, client))["access_token"]
    login = assert_success(password_token(stack, client, user, scope="openid read"),
                           refresh=True, id_token=True)
    observer = make_client(stack)
    assert_active(stack, observer, cc, sub=client["client_id"])
    assert_active(stack, observer, login["access_token"], sub=user["user_id"])
    # WHEN the client is deleted
    if how == "table":
        delete_item(stack, client_pk(client["client_id"]))
    else:
        stack.oauthctl("client", "delete", client["client_id"])
    # THEN its tokens are inactive everywhere
    assert_inactive_everywhere(stack, observer, cc, user_token=False)
    assert_inactive_everywhere(stack, observer, login["access_token"])


# ============================================================ 5. no username in access tokens
@pytest.mark.parametrize("refreshable", [True, False], ids=["with-sid", "without-sid"])
def test_access_tokens_carry_no_username_and_introspection_still_names_the_user(stack, refreshable):
    client = make_client(stack, grants=USER_GRANTS if refreshable else ("password",),
                         scopes=OIDC_SCOPES)
    user = make_user(stack)
    tokens = []
    for scope in ("read", "openid read", "openid profile read"):
        body = assert_success(password_token(stack, client, user, scope=scope),
                              refresh=refreshable, id_token="openid" in scope.split())
        tokens.append((scope, body["access_token"]))
        if refreshable:
            rotated = assert_success(refresh(stack, client, body["refresh_token"]),
                                     refresh=True, id_token="openid" in scope.split())
            tokens.append((scope + " (refreshed)", rotated["access_token"]))
    for scope, at in tokens:
        # THEN the JWT holds no username (RFC 9068 §6: no personal data beyond need)
        claims = jwt_payload(at)
        assert "username" not in claims, (scope, claims)
        if "profile" in scope.split():
            assert claims.get("preferred_username", user["username"]) == user["username"], claims
        else:
            assert "preferred_username" not in claims, (scope, claims)
        # AND introspection still answers the username, from the account
        info = introspect(stack, client, at)
        assert info.get("active") is True, (scope, info)
        assert info.get("username") == user["username"], (scope, info)
        assert info.get("sub") == user["user_id"], (scope, info)


# ============================================================ 8. refresh-token iat
def test_refresh_token_introspection_reports_when_the_current_token_was_issued(stack):
    # GIVEN a login: its refresh token was issued with its access token
    client, _, login = session(stack, scope="read")
    first = introspect(stack, client, login["refresh_token"])
    assert first.get("active") is True, first
    assert first["iat"] == jwt_payload(login["access_token"])["iat"], first
    # WHEN it is rotated more than a second later
    time.sleep(1.1)
    before = int(time.time())
    rotated = assert_success(refresh(stack, client, login["refresh_token"]), refresh=True)
    # THEN the new refresh token's iat is the rotation time, not the login time (RFC 7662 §2.2)
    second = introspect(stack, client, rotated["refresh_token"])
    assert second.get("active") is True, second
    assert second["iat"] == jwt_payload(rotated["access_token"])["iat"], second
    assert second["iat"] >= before > first["iat"], (first, second)
