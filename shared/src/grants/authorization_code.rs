//! Authorization code grant (RFC 6749 §4.1.3) with PKCE (RFC 7636 §4.6). One conditional
//! UpdateItem redeems the code, one PutItem stores the session's family.
//!
//! The code is consumed before anything else is checked, so a code presented with a wrong
//! verifier, client or redirect URI is burned (RFC 9700 §2.1.1, §4.5.3). A second use of a
//! redeemed code revokes the family the first use created, and with it every token issued from
//! the code (RFC 6749 §4.1.2).

use super::issue::{Subject, UserSession, issue, refresh_ttl};
use super::scope::parse_scope;
use super::{GrantContext, TokenResponse};
use crate::authorize::code::code_hash;
use crate::authorize::pkce;
use crate::error::OAuthError;
use crate::storage::{
    AssertionReplays, AuthorizationCode, AuthorizationCodes, Client, ClientDirectory, GrantType,
    Redemption, RefreshFamilies, RefreshFamily, TokenRecords, Wanted, presented_client,
};
use crate::tokens::refresh::RefreshToken;

const INVALID: OAuthError =
    OAuthError::InvalidGrant("the authorization code is invalid, expired or already used");

/// The session family a code's exchange creates (and its reuse revokes).
fn family_of<S>(
    ctx: &GrantContext<'_, S>,
    client: &Client,
    granted: &AuthorizationCode,
    current_hash: String,
) -> RefreshFamily {
    RefreshFamily {
        family_id: granted.family_id.clone(),
        client_id: client.client_id.clone(),
        user_id: granted.user_id.clone(),
        scope: granted.scope.clone(),
        auth_time: granted.auth_time,
        issued_at: ctx.now,
        current_hash,
        retired_hashes: Vec::new(),
        revoked: false,
        exp: ctx.now + refresh_ttl(ctx, client),
        // RFC 9449 §5: a public client's refresh token is bound to its DPoP key; a
        // confidential client's is bound by its authentication already.
        jkt: ctx
            .dpop
            .filter(|_| client.public)
            .map(|proof| proof.jkt.clone()),
    }
}

pub async fn grant<
    S: ClientDirectory + AuthorizationCodes + RefreshFamilies + TokenRecords + AssertionReplays,
>(
    ctx: &GrantContext<'_, S>,
) -> Result<TokenResponse, OAuthError> {
    let code = ctx
        .params
        .get("code")
        .ok_or(OAuthError::InvalidRequest("code is required"))?;
    // RFC 6749 §4.1.3: required when the authorization request had one, which ours always do.
    let redirect_uri = ctx
        .params
        .get("redirect_uri")
        .ok_or(OAuthError::InvalidRequest("redirect_uri is required"))?;
    let verifier = ctx.params.get("code_verifier");
    let credentials = ctx.credentials.client();
    let record = presented_client(ctx.store, &credentials.client_id).await?;
    let client = ctx.authenticate(record.as_ref()).await?;
    if !client.allows_grant(GrantType::AuthorizationCode) {
        return Err(OAuthError::UnauthorizedClient);
    }
    let granted = match ctx.store.redeem_code(&code_hash(code), ctx.now).await? {
        Redemption::Redeemed(granted) => granted,
        Redemption::Reused(granted) => {
            if granted.client_id == client.client_id {
                tracing::warn!(family = %granted.family_id, "authorization code reuse: its tokens revoked");
                let family = family_of(ctx, client, &granted, String::new());
                ctx.store
                    .bury_family(&family, family.exp + ctx.config.max_token_ttl)
                    .await?;
            }
            return Err(INVALID);
        }
        Redemption::Unusable => return Err(INVALID),
    };
    // RFC 6749 §4.1.3: issued to this client, for this redirect URI (compared exactly).
    if granted.client_id != client.client_id || granted.redirect_uri != redirect_uri {
        return Err(INVALID);
    }
    // RFC 7636 §4.6, and RFC 9700 §2.1.1: a verifier without a challenge is a downgrade. The
    // authorization endpoint already refused a request without PKCE from a client that needs
    // it; checked again here, where the tokens are.
    let pkce_ok = match (&granted.code_challenge, verifier) {
        (Some(challenge), Some(verifier)) => pkce::verifies(verifier, challenge),
        (None, None) => !client.pkce_required && !client.public,
        _ => false,
    };
    if !pkce_ok {
        return Err(OAuthError::InvalidGrant(
            "the code_verifier does not match the code_challenge",
        ));
    }

    // RFC 9449 §10: a code bound to a DPoP key is redeemed only with a proof by that key (the
    // same answers as a bound refresh token's).
    if let Some(bound) = &granted.dpop_jkt {
        match ctx.dpop {
            None => {
                return Err(OAuthError::InvalidDpopProof(
                    "this code is bound to a DPoP key (dpop_jkt): send a proof by it",
                ));
            }
            Some(proof) if proof.jkt != *bound => {
                return Err(OAuthError::InvalidGrant(
                    "the code is bound to another DPoP key",
                ));
            }
            Some(_) => {}
        }
    }

    // The family is the session's record even without a refresh token: revoking it (code
    // reuse, logout) ends the access tokens that carry it as `sid`.
    let token = RefreshToken::next_in(&granted.family_id);
    let family = family_of(ctx, client, &granted, token.hash());
    if let Err(error) = ctx
        .store
        .create_family(&family, family.exp + ctx.config.max_token_ttl)
        .await
    {
        // A concurrent second use of the code got here first and buried the family: the
        // tokens below are issued revoked, as RFC 6749 §4.1.2 wants them.
        let wanted = Wanted {
            family: Some(&family.family_id),
            ..Wanted::default()
        };
        if !ctx
            .store
            .read(wanted)
            .await?
            .family
            .is_some_and(|f| f.revoked)
        {
            return Err(error.into());
        }
    }
    let refresh = client
        .allows_grant(GrantType::RefreshToken)
        .then(|| token.expose());
    let scopes = parse_scope(&granted.scope)?;
    let session = UserSession {
        user_id: &granted.user_id,
        username: &granted.username,
        claims: &granted.claims,
        auth_time: granted.auth_time,
        family_id: Some(&granted.family_id),
        nonce: granted.nonce.as_deref(),
    };
    issue(ctx, client, &scopes, Subject::User(session), refresh)
}
