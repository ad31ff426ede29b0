//! Resource owner password credentials grant (RFC 6749 §4.3). One BatchGetItem (client, user,
//! failure counter), one counter write per attempt, one more to clear it and one for a new
//! refresh family on success.
//!
//! Unknown user, wrong password, disabled and locked user are one answer reached through the
//! same work: one counter write and one argon2id verification (against a dummy hash when there
//! is none to check).

use super::issue::{Subject, UserSession, issue, refresh_ttl};
use super::scope::resolve;
use super::{GrantContext, TokenResponse, check_redirect_uri};
use crate::error::OAuthError;
use crate::password::verify_password_off_executor;
use crate::request::Presented;
use crate::storage::{
    AssertionReplays, Counted, FailureCounters, GrantType, LoginDirectory, RefreshFamilies,
    RefreshFamily, client_key, username_key,
};
use crate::tokens::refresh::RefreshToken;

const BAD_CREDENTIALS: OAuthError =
    OAuthError::InvalidGrant("the resource owner credentials are invalid");

/// A password attempt for `username` (`None`: a name that cannot exist) under the lockout of
/// RFC 6749 §4.3.2 ("protect the endpoint against brute force"), shared by the password grant
/// and the login page: counted first, atomically, and verified only when counted within the
/// threshold, so of a concurrent burst at most the threshold's worth are verified. Every
/// presented username is counted, existing or not, so the write reveals nothing; unknown,
/// wrong, disabled and locked cost the same (one counter write, one argon2id verification).
/// `Some(user)` only for the right password of an enabled user, whose count is then cleared.
pub async fn verify_counted<S: FailureCounters>(
    store: &S,
    config: &crate::config::Config,
    now: i64,
    username: Option<&str>,
    password: &str,
    user: Option<crate::storage::User>,
    counter: Option<&crate::storage::FailureCounter>,
) -> Result<Option<crate::storage::User>, OAuthError> {
    let within_threshold = match username {
        Some(name) => {
            let seen_live = counter.is_some_and(|c| c.window_end > now);
            let attempt = store
                .increment(Counted::User(name), now, config.lockout_window, seen_live)
                .await?;
            if attempt == config.lockout_threshold + 1 {
                tracing::warn!("password login locked after repeated failures");
                // The user id is not known here (and a username may be personal data).
                crate::audit::emit(
                    crate::audit::Event::Lockout,
                    &crate::audit::Record {
                        locked: Some("user"),
                        ..Default::default()
                    },
                );
            }
            attempt <= config.lockout_threshold
        }
        None => false,
    };
    let user = user.filter(|_| within_threshold);
    let stored_hash = user.as_ref().map(|u| u.password_hash.clone());
    let verified = verify_password_off_executor(password.to_owned(), stored_hash).await;
    let user = user.filter(|u| verified && u.enabled);
    if let (Some(_), Some(name)) = (&user, username) {
        store.clear_failures(Counted::User(name)).await?;
    }
    Ok(user)
}

pub async fn grant<S: LoginDirectory + FailureCounters + RefreshFamilies + AssertionReplays>(
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
    // A username that cannot exist is an unknown user, not a reason to skip the client.
    let username = username_key(username);
    let records = ctx
        .store
        .login_records(client_key(&credentials.client_id), username)
        .await?;
    let client = ctx.authenticate(records.client.as_ref()).await?;
    if !client.allows_grant(GrantType::Password) {
        return Err(OAuthError::UnauthorizedClient);
    }
    check_redirect_uri(ctx.params, client)?;
    let scopes = resolve(ctx.params.get("scope"), client)?;

    let Some(user) = verify_counted(
        ctx.store,
        ctx.config,
        ctx.now,
        username,
        password,
        records.user,
        records.user_failures.as_ref(),
    )
    .await?
    else {
        return Err(BAD_CREDENTIALS);
    };

    let refresh = if client.allows_grant(GrantType::RefreshToken) {
        let token = RefreshToken::new_family(&user.user_id);
        let family = RefreshFamily {
            family_id: token.family_id.clone(),
            client_id: client.client_id.clone(),
            user_id: user.user_id.clone(),
            scope: scopes.join(" "),
            auth_time: ctx.now,
            issued_at: ctx.now,
            current_hash: token.hash(),
            retired_hashes: Vec::new(),
            revoked: false,
            exp: ctx.now + refresh_ttl(ctx, client),
            // A password client is confidential: its refresh tokens are bound by its
            // authentication, not by a key (RFC 9449 §5).
            jkt: None,
        };
        // Access tokens minted from the family live at most MAX_TOKEN_TTL past its end.
        let retain_until = family.exp + ctx.config.max_token_ttl;
        ctx.store.create_family(&family, retain_until).await?;
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
        nonce: None,
    };
    issue(ctx, client, &scopes, Subject::User(session), refresh_wire)
}
