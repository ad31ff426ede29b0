//! Client credentials grant (RFC 6749 §4.4): the client is the subject. One GetItem, or none
//! while the opt-in client cache holds the record (`grants::client_cache`).

use super::client_auth::authenticate_client;
use super::client_cache::Source;
use super::issue::{Subject, issue};
use super::scope::{USER_ONLY_SCOPES, resolve};
use super::{GrantContext, TokenResponse, check_redirect_uri};
use crate::error::OAuthError;
use crate::storage::{AssertionReplays, Client, ClientDirectory, GrantType};

pub async fn grant<S: ClientDirectory + AssertionReplays>(
    ctx: &GrantContext<'_, S>,
) -> Result<TokenResponse, OAuthError> {
    let credentials = ctx.credentials.client();
    let id = &credentials.client_id;
    let authenticates = |record: Option<&Client>| {
        authenticate_client(record, credentials, ctx.presentation()).is_ok()
    };
    let (mut record, mut source) = ctx.clients.client(ctx.store, id, ctx.now).await?;
    // A refusal is never answered from the cache: the client may have a new secret.
    if source == Source::Cache && !authenticates(record.as_deref()) {
        ctx.clients.forget(id);
        (record, source) = ctx.clients.read(ctx.store, id).await?;
    }
    let client = ctx.authenticate(record.as_deref()).await?;
    if !client.allows_grant(GrantType::ClientCredentials) {
        return Err(OAuthError::UnauthorizedClient);
    }
    if let (Some(record), Source::Store) = (&record, source) {
        ctx.clients.keep(record, ctx.now);
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
