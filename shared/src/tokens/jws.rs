//! What verifying a JWS signed by someone else's key takes, shared by client assertions
//! (RFC 7523) and DPoP proofs (RFC 9449): the algorithms we accept, a key held to the
//! algorithm it may sign with, and compact-serialization parsing.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};

/// Asymmetric algorithms only: `none` cannot authenticate anything and an HMAC key would be a
/// shared secret again (RFC 8725 §3.1; discovery's `*_signing_alg_values_supported`).
pub const SIGNING_ALGS: [&str; 9] = [
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
];

/// Members that only a private or symmetric JWK has (RFC 7518 §6.2.2, §6.3.2, §6.4; RFC 8037).
pub const PRIVATE_MEMBERS: [&str; 7] = ["d", "p", "q", "dp", "dq", "qi", "k"];

/// A compact JWS split into its parts; `signing_input` is `header.claims` as signed.
pub struct CompactJws<'a> {
    pub header: &'a str,
    pub claims: &'a str,
    pub signature: &'a str,
    pub signing_input: &'a str,
}

impl<'a> CompactJws<'a> {
    pub fn split(token: &'a str) -> Option<Self> {
        let mut parts = token.split('.');
        let (Some(header), Some(claims), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        Some(Self {
            header,
            claims,
            signature,
            signing_input: &token[..header.len() + 1 + claims.len()],
        })
    }

    /// Whether `key` made the signature with `alg`.
    pub fn signed_by(&self, key: &DecodingKey, alg: Algorithm) -> bool {
        jsonwebtoken::crypto::verify(self.signature, self.signing_input.as_bytes(), key, alg)
            .unwrap_or(false)
    }
}

/// The header's algorithm, if it is one we accept. `Ed25519` (RFC 9864's fully specified name,
/// which openid-client v6 sends for an Ed25519 key) is the EdDSA signature under another name.
pub fn accepted_alg(name: &str) -> Option<Algorithm> {
    match name {
        "Ed25519" => Some(Algorithm::EdDSA),
        name if SIGNING_ALGS.contains(&name) => name.parse().ok(),
        _ => None,
    }
}

/// A base64url JSON part, decoded.
pub fn decode_part<T: serde::de::DeserializeOwned>(part: &str) -> Option<T> {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).ok()?).ok()
}

/// Whether `jwk` may verify an `alg` signature: the algorithm's key type and curve (RFC 7518
/// §3.4, RFC 8037 §3.1: a key claiming another curve would verify under a false name), and the
/// key's own `alg` and `use` when it declares them.
pub fn fits(jwk: &Jwk, alg: Algorithm) -> bool {
    use Algorithm::{ES256, ES384, EdDSA, PS256, PS384, PS512, RS256, RS384, RS512};
    use jsonwebtoken::jwk::EllipticCurve::{Ed25519, P256, P384};
    let family_fits = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => {
            matches!(alg, RS256 | RS384 | RS512 | PS256 | PS384 | PS512)
        }
        AlgorithmParameters::EllipticCurve(ec) => {
            matches!((alg, &ec.curve), (ES256, P256) | (ES384, P384))
        }
        AlgorithmParameters::OctetKeyPair(okp) => alg == EdDSA && okp.curve == Ed25519,
        _ => false,
    };
    let declared_alg_fits = jwk
        .common
        .key_algorithm
        .is_none_or(|declared| format!("{declared:?}") == alg_name(alg));
    let use_fits = jwk
        .common
        .public_key_use
        .as_ref()
        .is_none_or(|u| *u == PublicKeyUse::Signature);
    family_fits && declared_alg_fits && use_fits
}

/// The JOSE name of an algorithm (its `Debug` form is exactly that).
fn alg_name(alg: Algorithm) -> String {
    format!("{alg:?}")
}
