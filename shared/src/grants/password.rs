//! Resource owner password credentials grant (RFC 6749 §4.3). One BatchGetItem (client, user,
//! failure counter), one write for a new refresh family, one more when a counter changes.
//!
//! Unknown user, wrong password, disabled and locked user are one answer reached through the
//! same work: an argon2id verification always runs (against a dummy hash when there is none).

use super::client_auth::{MAX_CLIENT_ID_LEN, authenticate_client};
use super::issue::{Subject, UserSession, issue, refresh_ttl};
use super::scope::resolve;
use super::{GrantContext, TokenResponse, check_redirect_uri};
use crate::error::OAuthError;
use crate::password::verify_password_off_executor;
use crate::request::Presented;
use crate::storage::{
    Counted, FailureCounters, GrantType, LoginDirectory, LoginRecords, RefreshFamilies,
    RefreshFamily,
};
use crate::tokens::refresh::RefreshToken;

/// Longest username looked up (DynamoDB keys are at most 2048 bytes; the CLI refuses longer).
pub const MAX_USERNAME_LEN: usize = 256;

const BAD_CREDENTIALS: OAuthError =
    OAuthError::InvalidGrant("the resource owner credentials are invalid");

pub async fn grant<S: LoginDirectory + FailureCounters + RefreshFamilies>(
    ctx: &GrantContext<'_, S>,
) -> Result<TokenResponse, OAuthError> {
    let (username, password) = match ctx.credentials {
        Presented::ClientAndBasicUser { user, .. } => (user.user.as_str(), user.password.as_str()),
        Presented::Client(_) => match (ctx.params.get("username"), ctx.params.get("password")) {
            (Some(u), Some(p)) => (u, p),
            _ => {
                return Err(OAuthError::InvalidRequest(
                    "username and password are required",
                ));
            }
        },
    };
    let credentials = ctx.credentials.client();
    let records =
        if credentials.client_id.len() <= MAX_CLIENT_ID_LEN && username.len() <= MAX_USERNAME_LEN {
            ctx.store
                .login_records(&credentials.client_id, username)
                .await?
        } else {
            LoginRecords::default()
        };
    let client = authenticate_client(records.client.as_ref(), credentials, ctx.api_key, ctx.now)?;
    if !client.allows_grant(GrantType::Password) {
        return Err(OAuthError::UnauthorizedClient);
    }
    check_redirect_uri(ctx.params, client)?;
    let scopes = resolve(ctx.params.get("scope"), client)?;

    let live_counter = records
        .user_failures
        .as_ref()
        .filter(|c| c.window_end > ctx.now);
    let failures = live_counter.map_or(0, |c| c.failures);
    let locked = failures >= ctx.config.lockout_threshold;
    let stored_hash = records.user.as_ref().map(|u| u.password_hash.clone());
    let verified = verify_password_off_executor(password.to_owned(), stored_hash).await;
    let user = match &records.user {
        Some(user) if verified && user.enabled && !locked => user,
        _ => {
            // Counted for every presented username, existing or not, so writes reveal nothing.
            // A locked username is not counted further: the lock ends one window after the
            // last failure that was counted.
            if !locked {
                let counted = ctx
                    .store
                    .record_failure(
                        Counted::User(username),
                        ctx.now,
                        ctx.config.lockout_window,
                        live_counter.is_some(),
                    )
                    .await?;
                if counted >= ctx.config.lockout_threshold {
                    tracing::warn!("password login locked after repeated failures");
                }
            }
            return Err(BAD_CREDENTIALS);
        }
    };
    if failures > 0 {
        ctx.store.clear_failures(Counted::User(username)).await?;
    }

    let refresh = if client.allows_grant(GrantType::RefreshToken) {
        let token = RefreshToken::new_family();
        ctx.store
            .create_family(&RefreshFamily {
                family_id: token.family_id.clone(),
                client_id: client.client_id.clone(),
                user_id: user.user_id.clone(),
                username: user.username.clone(),
                scope: scopes.join(" "),
                auth_time: ctx.now,
                current_hash: token.hash(),
                revoked: false,
                exp: ctx.now + refresh_ttl(ctx, client),
                claims: user.claims.clone(),
            })
            .await?;
        Some(token)
    } else {
        None
    };
    let refresh_wire = refresh.as_ref().map(RefreshToken::expose);
    let session = UserSession {
        user_id: &user.user_id,
        username: &user.username,
        claims: &user.claims,
        auth_time: ctx.now,
        family_id: refresh.as_ref().map(|t| t.family_id.as_str()),
    };
    issue(ctx, client, &scopes, Subject::User(session), refresh_wire)
}
