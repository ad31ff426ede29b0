//! Access-token verification as a resource server would do it (SPEC §6): key by `kid`, `alg`
//! pinned to that key, `typ` = at+jwt, `iss` = our issuer, `exp`/`nbf` with 5 s leeway.

use jsonwebtoken::Validation;

use super::{ACCESS_TOKEN_TYP, AccessTokenClaims, ID_TOKEN_TYP, IdTokenClaims};
use crate::keys::{KeySet, VerifyingKey};

/// Clock skew tolerated on `exp` and `nbf`.
pub const LEEWAY_SECONDS: u64 = 5;

#[derive(Debug, PartialEq, Eq)]
pub enum VerifyError {
    /// The `kid` is not in the key set (maybe a key newer than the cache).
    UnknownKid,
    /// Anything else: malformed, bad signature, wrong alg/typ/iss, expired, not yet valid.
    Invalid,
}

/// The key a JWT names by `kid`, once its `typ` passes `typ_ok`; its `alg` must be the key's
/// (RFC 8725 §3.1: the algorithm is the key's, never the token's choice).
fn pinned_key<'k>(
    token: &str,
    keys: &'k KeySet,
    typ_ok: impl Fn(Option<&str>) -> bool,
) -> Result<&'k VerifyingKey, VerifyError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| VerifyError::Invalid)?;
    if !typ_ok(header.typ.as_deref()) {
        return Err(VerifyError::Invalid);
    }
    let kid = header.kid.as_deref().ok_or(VerifyError::Invalid)?;
    let key = keys.verifying_key(kid).ok_or(VerifyError::UnknownKid)?;
    if header.alg != key.alg.jsonwebtoken() {
        return Err(VerifyError::Invalid);
    }
    Ok(key)
}

pub fn verify_access_token(
    token: &str,
    keys: &KeySet,
    issuer: &str,
) -> Result<AccessTokenClaims, VerifyError> {
    // RFC 9068 §4: resource servers MUST check the typ header.
    let key = pinned_key(token, keys, |typ| {
        typ.is_some_and(|t| t.eq_ignore_ascii_case(ACCESS_TOKEN_TYP))
    })?;
    let mut validation = Validation::new(key.alg.jsonwebtoken());
    validation.leeway = LEEWAY_SECONDS;
    validation.validate_exp = true;
    validation.validate_nbf = true;
    // Introspection answers for any audience; resource servers check their own.
    validation.validate_aud = false;
    validation.set_issuer(&[issuer]);
    validation.set_required_spec_claims(&["exp", "iat", "nbf", "iss", "sub", "jti"]);
    jsonwebtoken::decode::<AccessTokenClaims>(token, &key.key, &validation)
        .map(|data| data.claims)
        .map_err(|_| VerifyError::Invalid)
}

/// An id_token we issued, presented back as `id_token_hint` (OIDC Core §3.1.2.1, RP-Initiated
/// Logout §2): our key and issuer, the key's alg; expiry is not checked, since an expired
/// hint still names its user and client (RP-Initiated Logout §2 accepts it).
pub fn verify_id_token_hint(
    token: &str,
    keys: &KeySet,
    issuer: &str,
) -> Result<IdTokenClaims, VerifyError> {
    // Never an access token (at+jwt) posing as an id_token.
    let key = pinned_key(token, keys, |typ| typ == Some(ID_TOKEN_TYP))?;
    let mut validation = Validation::new(key.alg.jsonwebtoken());
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.set_issuer(&[issuer]);
    validation.set_required_spec_claims(&["iss", "sub", "aud"]);
    jsonwebtoken::decode::<IdTokenClaims>(token, &key.key, &validation)
        .map(|data| data.claims)
        .map_err(|_| VerifyError::Invalid)
}

/// Verifies with the cached key set; a `kid` the set lacks triggers one rate-limited re-read
/// (a key may be newer than the cache). `Ok(None)` means the token is not valid.
pub async fn verify_with_cache<K: crate::keys::KeySource, T>(
    keys: &crate::keys::KeyCache<K>,
    verify: impl Fn(&KeySet) -> Result<T, VerifyError>,
) -> Result<Option<T>, crate::error::StoreError> {
    let current = keys.current().await?;
    match verify(&current) {
        Ok(claims) => Ok(Some(claims)),
        Err(VerifyError::Invalid) => Ok(None),
        Err(VerifyError::UnknownKid) => Ok(keys
            .refresh_for_unknown_kid()
            .await?
            .and_then(|fresh| verify(&fresh).ok())),
    }
}
