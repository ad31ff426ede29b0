//! Client credentials grant (RFC 6749 §4.4): the client is the subject. One GetItem.

use super::client_auth::authenticate_client;
use super::issue::{Subject, issue};
use super::scope::{USER_ONLY_SCOPES, resolve};
use super::{GrantContext, TokenResponse, check_redirect_uri};
use crate::error::OAuthError;
use crate::storage::{ClientDirectory, GrantType, presented_client};

pub async fn grant<S: ClientDirectory>(
    ctx: &GrantContext<'_, S>,
) -> Result<TokenResponse, OAuthError> {
    let credentials = ctx.credentials.client();
    let record = presented_client(ctx.store, &credentials.client_id).await?;
    let client = authenticate_client(record.as_ref(), credentials, ctx.api_key, ctx.now)?;
    if !client.allows_grant(GrantType::ClientCredentials) {
        return Err(OAuthError::UnauthorizedClient);
    }
    check_redirect_uri(ctx.params, client)?;
    // User scopes mean nothing without a user; RFC 6749 §3.3 lets the server grant less.
    let scopes: Vec<String> = resolve(ctx.params.get("scope"), client)?
        .into_iter()
        .filter(|s| !USER_ONLY_SCOPES.contains(&s.as_str()))
        .collect();
    if scopes.is_empty() {
        return Err(OAuthError::InvalidScope(
            "no requested scope applies to a client without a user",
        ));
    }
    // RFC 6749 §4.4.3: no refresh token for this grant.
    issue(ctx, client, &scopes, Subject::Client, None)
}
