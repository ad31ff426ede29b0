//! Token issuance shared by every grant: the RFC 9068 access token, the id_token when `openid`
//! is granted to a user, and the RFC 6749 §5.1 response.

use std::collections::BTreeMap;

use super::{GrantContext, Issued, TokenResponse};
use crate::crypto::{b64url, random_bytes};
use crate::error::OAuthError;
use crate::keys::{Alg, Signer};
use crate::storage::Client;
use crate::tokens::claims::{custom_claims, standard_claims};
use crate::tokens::{ACCESS_TOKEN_TYP, AccessTokenClaims, ID_TOKEN_TYP, IdTokenClaims};

/// The resource owner a token is issued for.
pub(crate) enum Subject<'a> {
    /// client_credentials: the client itself.
    Client,
    User(UserSession<'a>),
}

pub(crate) struct UserSession<'a> {
    pub user_id: &'a str,
    pub username: &'a str,
    pub claims: &'a BTreeMap<String, String>,
    pub auth_time: i64,
    /// The refresh family, when the grant created or continued one.
    pub family_id: Option<&'a str>,
    /// The authorization request's `nonce` (OIDC Core §3.1.2.1), for the id_token.
    pub nonce: Option<&'a str>,
}

pub(crate) fn access_ttl<S>(ctx: &GrantContext<S>, client: &Client) -> i64 {
    client.access_token_ttl.clamp(1, ctx.config.max_token_ttl)
}

pub(crate) fn refresh_ttl<S>(ctx: &GrantContext<S>, client: &Client) -> i64 {
    client.refresh_token_ttl.clamp(1, ctx.config.max_token_ttl)
}

fn signer<'k>(ctx: &GrantContext<'k, impl Sized>, alg: Alg) -> Result<&'k Signer, OAuthError> {
    ctx.keys.signer(alg).ok_or_else(|| {
        tracing::error!(%alg, "no active signing key for this algorithm: run oauthctl init --alg {alg}");
        crate::audit::unavailable("SecretsManager");
        OAuthError::TemporarilyUnavailable
    })
}

fn sign(signer: &Signer, typ: &str, claims: &impl serde::Serialize) -> Result<String, OAuthError> {
    signer.sign_jwt(typ, claims).map_err(|e| {
        tracing::error!(error = %e, kid = signer.kid(), "signing failed");
        OAuthError::TemporarilyUnavailable
    })
}

pub(crate) fn issue<S>(
    ctx: &GrantContext<S>,
    client: &Client,
    scopes: &[String],
    subject: Subject<'_>,
    refresh_token: Option<String>,
) -> Result<TokenResponse, OAuthError> {
    let ttl = access_ttl(ctx, client);
    let scope = scopes.join(" ");
    let (sub, sid, preferred_username, custom) = match &subject {
        Subject::Client => (
            client.client_id.clone(),
            None,
            None,
            custom_claims(&client.claims),
        ),
        // RFC 9068 §6: personal data only where a scope releases it (OIDC Core §5.4).
        Subject::User(user) => (
            user.user_id.to_owned(),
            user.family_id.map(str::to_owned),
            scopes
                .iter()
                .any(|s| s == "profile")
                .then(|| user.username.to_owned()),
            custom_claims(user.claims),
        ),
    };
    let claims = AccessTokenClaims {
        iss: ctx.issuer.to_owned(),
        sub: sub.clone(),
        // RFC 9068 §3: the audience is the resource; the issuer when the client names none.
        aud: client
            .audience
            .clone()
            .unwrap_or_else(|| ctx.issuer.to_owned()),
        exp: ctx.now + ttl,
        iat: ctx.now,
        nbf: ctx.now,
        jti: b64url(&random_bytes::<16>()),
        client_id: client.client_id.clone(),
        scope: scope.clone(),
        sid,
        preferred_username,
        // RFC 9449 §6.1: bound to the key that signed the request's proof.
        cnf: ctx.dpop.map(crate::tokens::dpop::Proof::confirmation),
        custom,
    };
    let access_token = sign(
        signer(ctx, ctx.config.access_token_alg)?,
        ACCESS_TOKEN_TYP,
        &claims,
    )?;

    let id_token = match &subject {
        Subject::User(user) if scopes.iter().any(|s| s == "openid") => {
            let claims = IdTokenClaims {
                iss: ctx.issuer.to_owned(),
                sub,
                aud: client.client_id.clone(),
                exp: ctx.now + ttl,
                iat: ctx.now,
                auth_time: user.auth_time,
                nonce: user.nonce.map(str::to_owned),
                sid: user.family_id.map(str::to_owned),
                standard: standard_claims(scopes, user.username, user.claims),
            };
            // id_tokens are RS256, the one algorithm every OIDC relying party must support
            // (OIDC Core §15.1).
            Some(sign(signer(ctx, Alg::Rs256)?, ID_TOKEN_TYP, &claims)?)
        }
        _ => None,
    };

    Ok(TokenResponse {
        issued: Issued {
            client_id: claims.client_id,
            user_id: matches!(subject, Subject::User(_)).then_some(claims.sub),
            jti: claims.jti,
            family: claims.sid,
        },
        access_token,
        // RFC 9449 §5: a bound token is not a bearer token.
        token_type: crate::tokens::dpop::token_type(ctx.dpop.is_some()),
        expires_in: ttl,
        scope,
        refresh_token,
        id_token,
    })
}
