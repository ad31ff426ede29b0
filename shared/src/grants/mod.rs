//! The grants of the token endpoint (RFC 6749 §4.1, §4.3, §4.4, §6) and what they share: client
//! authentication, scope resolution and token issuance.

pub mod authorization_code;
pub mod client_assertion;
pub mod client_auth;
pub mod client_cache;
pub mod client_credentials;
pub mod client_jwks;
mod issue;
pub mod password;
pub mod refresh;
pub mod scope;

use serde::Serialize;

use crate::config::Config;
use crate::keys::KeySet;
use crate::request::{Params, Presented};

/// Everything a grant needs besides its parameters.
pub struct GrantContext<'a, S> {
    pub config: &'a Config,
    pub store: &'a S,
    pub keys: &'a KeySet,
    /// Client records a warm instance may reuse (client_credentials only; off by default).
    pub clients: &'a client_cache::ClientCache,
    /// Keys of clients registered by `jwks_uri`, as this instance fetched them.
    pub client_jwks: &'a client_jwks::ClientJwks,
    pub issuer: &'a str,
    pub now: i64,
    pub params: &'a Params,
    pub credentials: &'a Presented,
    /// Value of the API-key header, if sent.
    pub api_key: Option<&'a str>,
    /// What a client assertion's `aud` may be (`client_auth::Presentation`).
    pub assertion_audiences: &'a [String],
    /// The request's DPoP proof, verified (`authenticate` spends it): the tokens are bound to
    /// its key.
    pub dpop: Option<&'a crate::tokens::dpop::Proof>,
}

impl<S> GrantContext<'_, S> {
    pub(crate) fn presentation(&self) -> client_auth::Presentation<'_> {
        client_auth::Presentation {
            api_key: self.api_key,
            audiences: self.assertion_audiences,
            now: self.now,
            fetched_jwks: None,
        }
    }
}

impl<S: crate::storage::AssertionReplays> GrantContext<'_, S> {
    /// The presented client, authenticated against `record` (assertions spent), with the
    /// DPoP proof it requires: checked before a grant spends a code or rotates a family.
    pub(crate) async fn authenticate<'c>(
        &self,
        record: Option<&'c crate::storage::Client>,
    ) -> Result<&'c crate::storage::Client, crate::error::OAuthError> {
        let credentials = self.credentials.client();
        let client = client_auth::authenticate(
            self.store,
            self.client_jwks,
            record,
            credentials,
            self.presentation(),
        )
        .await?;
        match self.dpop {
            // RFC 9449 §5.2: a client registered with `dpop_bound_access_tokens` gets no
            // bearer token.
            None if client.dpop_bound_access_tokens => {
                return Err(crate::error::OAuthError::InvalidDpopProof(
                    "this client must send a DPoP proof with every token request",
                ));
            }
            None => {}
            Some(proof) => {
                spend_dpop_proof(self.store, proof, self.now).await?;
            }
        }
        Ok(client)
    }
}

/// Spends a verified proof (RFC 9449 §11.1): its `jti` is remembered per key by one
/// conditional write, so a replay, or all but one of concurrent uses, is refused.
pub(crate) async fn spend_dpop_proof<S: crate::storage::AssertionReplays>(
    store: &S,
    proof: &crate::tokens::dpop::Proof,
    now: i64,
) -> Result<(), crate::error::OAuthError> {
    let key = crate::storage::keys::dpop_proof(&proof.jkt, &proof.jti);
    if store.first_use(&key, proof.replayable_until(), now).await? {
        Ok(())
    } else {
        Err(crate::error::OAuthError::InvalidDpopProof(
            "the DPoP proof was used before: make a new one for each request",
        ))
    }
}

/// RFC 6749 §5.1 successful response.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TokenResponse {
    /// For the audit line, not the body.
    #[serde(skip)]
    pub issued: Issued,
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    pub scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}

/// Who got which token (the audit line of an issued token).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Issued {
    pub client_id: String,
    pub user_id: Option<String>,
    pub jti: String,
    pub family: Option<String>,
}

/// `redirect_uri`, when sent, must exactly match a registered one (RFC 6749 §4.1.3 compares
/// exactly; EmpowerID callers send it with the password grant).
pub(crate) fn check_redirect_uri(
    params: &Params,
    client: &crate::storage::Client,
) -> Result<(), crate::error::OAuthError> {
    match params.get("redirect_uri") {
        Some(uri) if !client.redirect_uris.iter().any(|r| r == uri) => {
            Err(crate::error::OAuthError::InvalidGrant(
                "redirect_uri does not match a registered redirect URI",
            ))
        }
        _ => Ok(()),
    }
}
