//! Refresh token grant (RFC 6749 §6) with rotation and reuse detection (RFC 9700 §4.14.2).
//! One BatchGetItem (family, client, the user's account) and one conditional UpdateItem.
//!
//! Every use rotates. A token that is not its family's current one — a replay, or the loser of
//! a concurrent race — revokes the whole family, so the winner's new token dies too. The user
//! and the client are checked again at every refresh, as they stand now: an admin change takes
//! effect at the next refresh even if the cleanup that revokes families missed this one.

use super::issue::{Subject, UserSession, issue};
use super::scope::{narrow, parse_scope};
use super::{GrantContext, TokenResponse, check_redirect_uri};
use crate::crypto::digests_equal;
use crate::error::{OAuthError, StoreError};
use crate::storage::{
    Account, AssertionReplays, GrantType, RefreshFamilies, RefreshFamily, Rotation, TokenRecords,
    Wanted, client_key,
};
use crate::tokens::refresh::RefreshToken;

const INVALID: OAuthError =
    OAuthError::InvalidGrant("the refresh token is invalid, expired or revoked");

/// The account behind a family: read with it when the family id names the user, else (families
/// of earlier releases) read now.
pub(crate) async fn family_account<S: TokenRecords>(
    store: &S,
    read_with_family: Option<Account>,
    token: &RefreshToken,
    family: &RefreshFamily,
) -> Result<Option<Account>, StoreError> {
    if token.user_id().is_some() {
        return Ok(read_with_family);
    }
    let wanted = Wanted {
        account: Some(&family.user_id),
        ..Wanted::default()
    };
    Ok(store.read(wanted).await?.account)
}

pub async fn grant<S: TokenRecords + RefreshFamilies + AssertionReplays>(
    ctx: &GrantContext<'_, S>,
) -> Result<TokenResponse, OAuthError> {
    let presented = ctx
        .params
        .get("refresh_token")
        .ok_or(OAuthError::InvalidRequest("refresh_token is required"))?;
    let credentials = ctx.credentials.client();
    let token = RefreshToken::parse(presented);
    // Not our format: the client is authenticated all the same (its errors come first).
    let found = ctx
        .store
        .read(Wanted {
            client: client_key(&credentials.client_id),
            family: token.as_ref().map(|t| t.family_id.as_str()),
            account: token.as_ref().and_then(RefreshToken::user_id),
            ..Wanted::default()
        })
        .await?;
    let client = ctx.authenticate(found.client.as_ref()).await?;
    if !client.allows_grant(GrantType::RefreshToken) {
        return Err(OAuthError::UnauthorizedClient);
    }
    check_redirect_uri(ctx.params, client)?;
    let (Some(token), Some(family)) = (token, found.family) else {
        return Err(INVALID);
    };
    if !family.live_for(client, ctx.now) {
        return Err(INVALID);
    }
    let presented_hash = token.hash();
    if !digests_equal(&presented_hash, &family.current_hash) {
        // RFC 9700 §4.14.2: a token the family replaced, presented again, is reuse. One it
        // never issued is only refused: the family id is in every token's `sid`, so anyone
        // could otherwise end a user's session with a made-up secret.
        if family.issued(&presented_hash) {
            tracing::warn!(family = %family.family_id, "refresh token reuse: family revoked");
            ctx.store.revoke_family(&family.family_id).await?;
        } else {
            tracing::info!(family = %family.family_id, "refresh token the family never issued");
        }
        return Err(INVALID);
    }
    // RFC 9449 §5: a family bound to a DPoP key is refreshed only with a proof by that key.
    // Not a reuse signal: the token is current, whoever holds it lacks the key (or forgot it).
    match (&family.jkt, ctx.dpop) {
        (None, _) => {}
        (Some(_), None) => {
            return Err(OAuthError::InvalidDpopProof(
                "the refresh token is bound to a DPoP key: send a proof signed with it",
            ));
        }
        (Some(bound), Some(proof)) if *bound != proof.jkt => {
            tracing::warn!(family = %family.family_id, "refresh with another DPoP key refused");
            return Err(OAuthError::InvalidGrant(
                "the refresh token is bound to another DPoP key",
            ));
        }
        (Some(_), Some(_)) => {}
    }
    let account = family_account(ctx.store, found.account, &token, &family).await?;
    let Some(account) = account.filter(|a| a.honours(&family.user_id, family.auth_time)) else {
        // Deleted, disabled, another user under the name, or a new password since the login.
        tracing::info!(family = %family.family_id, "refresh refused: the user changed since login");
        ctx.store.revoke_family(&family.family_id).await?;
        return Err(INVALID);
    };
    // The family keeps its original scope (RFC 6749 §6), as far as the client may still have
    // it; only this access token is narrowed by a requested `scope`.
    let still_allowed: Vec<String> = parse_scope(&family.scope)?
        .into_iter()
        .filter(|s| client.allowed_scopes.contains(s))
        .collect();
    let scopes = narrow(ctx.params.get("scope"), &still_allowed)?;

    // RFC 9449 §5: a public client's refresh token is bound to the key of the proof it is
    // issued with; a family begun without one is bound at its first refresh with one.
    let bind_jkt = ctx
        .dpop
        .filter(|_| client.public && family.jkt.is_none())
        .map(|proof| proof.jkt.as_str());
    let next = RefreshToken::next_in(&family.family_id);
    match ctx
        .store
        .rotate(
            &family.family_id,
            &presented_hash,
            &next.hash(),
            &family.retired_after_rotation(),
            ctx.now,
            bind_jkt,
        )
        .await?
    {
        Rotation::Rotated => {}
        Rotation::Rejected => {
            // Lost a race with another use of the same token: that is reuse too.
            tracing::warn!(family = %family.family_id, "concurrent refresh token use: family revoked");
            ctx.store.revoke_family(&family.family_id).await?;
            return Err(INVALID);
        }
    }
    let session = UserSession {
        user_id: &account.user_id,
        username: &account.username,
        claims: &account.claims,
        auth_time: family.auth_time,
        family_id: Some(&family.family_id),
        nonce: None,
    };
    issue(
        ctx,
        client,
        &scopes,
        Subject::User(session),
        Some(next.expose()),
    )
}
