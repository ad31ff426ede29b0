//! Refresh token grant (RFC 6749 §6) with rotation and reuse detection (RFC 9700 §4.14.2).
//! One BatchGetItem (family, client) and one conditional UpdateItem.
//!
//! Every use rotates. A token that is not its family's current one — a replay, or the loser of
//! a concurrent race — revokes the whole family, so the winner's new token dies too.

use super::client_auth::{MAX_CLIENT_ID_LEN, authenticate_client};
use super::issue::{Subject, UserSession, issue};
use super::scope::{narrow, parse_scope};
use super::{GrantContext, TokenResponse, check_redirect_uri};
use crate::crypto::digests_equal;
use crate::error::OAuthError;
use crate::storage::{GrantType, RefreshFamilies, Rotation};
use crate::tokens::refresh::RefreshToken;

const INVALID: OAuthError =
    OAuthError::InvalidGrant("the refresh token is invalid, expired or revoked");

pub async fn grant<S: RefreshFamilies>(
    ctx: &GrantContext<'_, S>,
) -> Result<TokenResponse, OAuthError> {
    let presented = ctx
        .params
        .get("refresh_token")
        .ok_or(OAuthError::InvalidRequest("refresh_token is required"))?;
    let credentials = ctx.credentials.client();
    let token = RefreshToken::parse(presented);
    let (family, record) = match &token {
        Some(token) if credentials.client_id.len() <= MAX_CLIENT_ID_LEN => {
            ctx.store
                .family_and_client(&token.family_id, &credentials.client_id)
                .await?
        }
        // Not our format: authenticate the client all the same (its errors come first).
        _ if credentials.client_id.len() <= MAX_CLIENT_ID_LEN => {
            let (_, client) = ctx
                .store
                .family_and_client("-", &credentials.client_id)
                .await?;
            (None, client)
        }
        _ => (None, None),
    };
    let client = authenticate_client(record.as_ref(), credentials, ctx.api_key, ctx.now)?;
    if !client.allows_grant(GrantType::RefreshToken) {
        return Err(OAuthError::UnauthorizedClient);
    }
    check_redirect_uri(ctx.params, client)?;
    let (Some(token), Some(family)) = (token, family) else {
        return Err(INVALID);
    };
    // RFC 6749 §6: the token is bound to the client it was issued to.
    if family.client_id != client.client_id || family.revoked || family.exp <= ctx.now {
        return Err(INVALID);
    }
    let presented_hash = token.hash();
    if !digests_equal(&presented_hash, &family.current_hash) {
        tracing::warn!(family = %family.family_id, "refresh token reuse: family revoked");
        ctx.store.revoke_family(&family.family_id).await?;
        return Err(INVALID);
    }
    let granted = parse_scope(&family.scope)?;
    let scopes = narrow(ctx.params.get("scope"), &granted)?;

    let next = RefreshToken::next_in(&family.family_id);
    match ctx
        .store
        .rotate(&family.family_id, &presented_hash, &next.hash(), ctx.now)
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
        user_id: &family.user_id,
        username: &family.username,
        claims: &family.claims,
        auth_time: family.auth_time,
        family_id: Some(&family.family_id),
    };
    // The family keeps its original scope (RFC 6749 §6); only this access token is narrowed.
    issue(
        ctx,
        client,
        &scopes,
        Subject::User(session),
        Some(next.expose()),
    )
}
