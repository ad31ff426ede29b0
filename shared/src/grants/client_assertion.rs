//! `private_key_jwt` client authentication (RFC 7523 §2.2 and §3, OIDC Core §9): the client
//! signs a short-lived JWT with a key of the JWKS it registered; no shared secret exists.

use std::collections::HashSet;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;

pub use crate::tokens::jws::SIGNING_ALGS;
use crate::tokens::jws::{CompactJws, PRIVATE_MEMBERS, accepted_alg, decode_part, fits};
use crate::tokens::verify::LEEWAY_SECONDS;

/// RFC 7523 §2.2.
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// An assertion's `exp` may be at most this far ahead: a bounded lifetime bounds how long its
/// `jti` is remembered (Authlib's default lifetime is exactly one hour).
pub const MAX_LIFETIME_SECONDS: i64 = 3600;

/// Longest `jti` accepted (it is hashed into a storage key).
const MAX_JTI_LEN: usize = 256;

/// What a verified assertion leaves to do: remember its `jti` until `exp` (single use).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedAssertion {
    pub jti: String,
    pub exp: i64,
}

/// The `sub` of an assertion, unverified: only which client's keys to try.
pub fn unverified_subject(assertion: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Subject {
        sub: String,
    }
    let payload = assertion.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    serde_json::from_slice::<Subject>(&bytes)
        .ok()
        .map(|s| s.sub)
}

#[derive(Deserialize)]
struct AssertionHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    /// RFC 7515 §4.1.11: extensions we would have to understand; we understand none.
    #[serde(default)]
    crit: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    fn names_one_of(&self, audiences: &[String]) -> bool {
        match self {
            Self::One(aud) => audiences.contains(aud),
            Self::Many(auds) => auds.iter().any(|aud| audiences.contains(aud)),
        }
    }
}

#[derive(Deserialize)]
struct AssertionClaims {
    iss: String,
    sub: String,
    aud: Audience,
    exp: i64,
    #[serde(default)]
    nbf: Option<i64>,
    #[serde(default)]
    iat: Option<i64>,
    #[serde(default)]
    jti: Option<String>,
}

/// Verifies `assertion` as `client_id`'s (RFC 7523 §3): signed by a key of `jwks` with that
/// key's algorithm, `iss` = `sub` = the client, `aud` one of `audiences`, `exp` in
/// (now, now + 1 h], `nbf`/`iat` not in the future, a `jti` present. Any failure is `None`: the
/// caller answers `invalid_client` without saying which rule failed.
pub fn verify(
    assertion: &str,
    client_id: &str,
    jwks: &str,
    audiences: &[String],
    now: i64,
) -> Option<VerifiedAssertion> {
    let jws = CompactJws::split(assertion)?;
    let header: AssertionHeader = decode_part(jws.header)?;
    if header.crit.is_some() {
        return None;
    }
    let alg = accepted_alg(&header.alg)?;
    let jwks: JwkSet = serde_json::from_str(jwks).ok()?;
    let signed =
        candidate_keys(&jwks, header.kid.as_deref(), alg).any(|key| jws.signed_by(&key, alg));
    if !signed {
        return None;
    }
    let claims: AssertionClaims = decode_part(jws.claims)?;
    // RFC 7523 §3 rules 1-3: issued by the client, about the client, addressed to us.
    let addressed =
        claims.iss == client_id && claims.sub == client_id && claims.aud.names_one_of(audiences);
    let leeway = LEEWAY_SECONDS as i64;
    let timely = claims.exp > now - leeway
        && claims.exp <= now + MAX_LIFETIME_SECONDS + leeway
        && claims.nbf.is_none_or(|nbf| nbf <= now + leeway)
        && claims.iat.is_none_or(|iat| iat <= now + leeway);
    // OIDC Core §9 makes `jti` required; without it single use cannot be enforced.
    let jti = claims
        .jti
        .filter(|jti| !jti.is_empty() && jti.len() <= MAX_JTI_LEN)?;
    (addressed && timely).then_some(VerifiedAssertion {
        jti,
        exp: claims.exp,
    })
}

/// The registered keys that may have signed with `alg`: the one named by `kid` when the header
/// names one, else every key of the algorithm's family; a key that declares an `alg` or a `use`
/// is held to it.
fn candidate_keys<'a>(
    jwks: &'a JwkSet,
    kid: Option<&'a str>,
    alg: Algorithm,
) -> impl Iterator<Item = DecodingKey> + 'a {
    jwks.keys
        .iter()
        .filter(move |jwk| kid.is_none_or(|kid| jwk.common.key_id.as_deref() == Some(kid)))
        .filter(move |jwk| fits(jwk, alg))
        .filter_map(|jwk| DecodingKey::from_jwk(jwk).ok())
}

/// Checks a JWKS a client registers: public asymmetric signing keys only, at least one, kids
/// unique. Returns it compact, as stored.
pub fn validate_client_jwks(text: &str) -> Result<String, String> {
    let raw: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("the JWKS is not JSON: {e}"))?;
    let keys = raw
        .get("keys")
        .and_then(|k| k.as_array())
        .ok_or("a JWKS is an object with a \"keys\" array")?;
    if keys.is_empty() {
        return Err("the JWKS has no keys".into());
    }
    for (i, key) in keys.iter().enumerate() {
        if let Some(member) = PRIVATE_MEMBERS.iter().find(|m| key.get(**m).is_some()) {
            return Err(format!(
                "key {i} has the private or symmetric member \"{member}\": register public keys only"
            ));
        }
    }
    let set: JwkSet =
        serde_json::from_value(raw.clone()).map_err(|e| format!("the JWKS is not valid: {e}"))?;
    let mut kids = HashSet::new();
    for (i, jwk) in set.keys.iter().enumerate() {
        if matches!(jwk.algorithm, AlgorithmParameters::OctetKey(_)) {
            return Err(format!("key {i} is symmetric: register public keys only"));
        }
        if DecodingKey::from_jwk(jwk).is_err() {
            return Err(format!("key {i} cannot verify signatures"));
        }
        if let Some(kid) = &jwk.common.key_id
            && !kids.insert(kid.as_str())
        {
            return Err(format!("kid {kid:?} appears twice"));
        }
    }
    Ok(raw.to_string())
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::keys::rotation::ensure_keys;
    use crate::keys::{Alg, KeySet, KeySetDocument};

    const NOW: i64 = 1_800_000_000;
    const ISSUER: &str = "https://id.example.com/oauth";

    fn key_set(text: &str) -> KeySet {
        KeySet::from_document(&KeySetDocument::parse(text).unwrap()).unwrap()
    }

    /// The client's keys: one active and one next key per algorithm.
    fn client_keys() -> KeySet {
        key_set(&crate::testing::key_set(&Alg::ALL).0)
    }

    fn claims() -> Value {
        json!({
            "iss": "c1", "sub": "c1", "aud": format!("{ISSUER}/v2/token"),
            "exp": NOW + 60, "iat": NOW, "jti": "j-1",
        })
    }

    fn with(changes: Value) -> Value {
        let mut claims = claims();
        for (name, value) in changes.as_object().unwrap() {
            if value.is_null() {
                claims.as_object_mut().unwrap().remove(name);
            } else {
                claims[name] = value.clone();
            }
        }
        claims
    }

    fn signed(alg: Alg, claims: &Value) -> String {
        client_keys()
            .signer(alg)
            .unwrap()
            .sign_jwt("JWT", claims)
            .unwrap()
    }

    fn check_at(token: &str, endpoint: &str) -> Option<VerifiedAssertion> {
        let audiences = crate::endpoints::assertion_audiences(ISSUER, endpoint);
        verify(token, "c1", client_keys().jwks_json(), &audiences, NOW)
    }

    fn check(token: &str) -> Option<VerifiedAssertion> {
        check_at(token, "/v2/token")
    }

    fn b64(value: &Value) -> String {
        URL_SAFE_NO_PAD.encode(value.to_string())
    }

    #[test]
    fn an_assertion_signed_with_a_registered_key_verifies_for_every_algorithm() {
        for alg in Alg::ALL {
            let verified = check(&signed(alg, &claims()));
            let expected = VerifiedAssertion {
                jti: "j-1".into(),
                exp: NOW + 60,
            };
            assert_eq!(verified, Some(expected), "{alg:?}");
        }
    }

    /// A JWS with `header` over `claims`, signed by the client's key for `alg`.
    fn signed_with_header(alg: Alg, header: &Value, claims: &Value) -> String {
        let input = format!("{}.{}", b64(header), b64(claims));
        let signature = client_keys()
            .signer(alg)
            .unwrap()
            .sign(input.as_bytes())
            .unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    #[test]
    fn ed25519_is_eddsa_under_its_fully_specified_name() {
        let kid = client_keys().signer(Alg::EdDsa).unwrap().kid().to_owned();
        let header = json!({ "alg": "Ed25519", "kid": kid });
        assert!(check(&signed_with_header(Alg::EdDsa, &header, &claims())).is_some());
        // Not a name for an EC or RSA signature.
        let kid = client_keys().signer(Alg::Es256).unwrap().kid().to_owned();
        let header = json!({ "alg": "Ed25519", "kid": kid });
        assert!(check(&signed_with_header(Alg::Es256, &header, &claims())).is_none());
    }

    #[test]
    fn critical_header_extensions_are_refused() {
        let kid = client_keys().signer(Alg::Es256).unwrap().kid().to_owned();
        let header = json!({ "alg": "ES256", "kid": kid, "crit": ["exp"], "exp": 1 });
        assert!(check(&signed_with_header(Alg::Es256, &header, &claims())).is_none());
        let header = json!({ "alg": "ES256", "kid": kid });
        assert!(check(&signed_with_header(Alg::Es256, &header, &claims())).is_some());
    }

    #[test]
    fn the_audience_may_be_the_issuer_the_token_endpoint_or_the_receiving_endpoint() {
        let introspection = format!("{ISSUER}/v2/tokeninfo");
        for aud in [json!(ISSUER), json!(["x", format!("{ISSUER}/v2/token")])] {
            assert!(check(&signed(Alg::Es256, &with(json!({ "aud": aud })))).is_some());
        }
        let token = signed(Alg::Es256, &with(json!({ "aud": introspection })));
        assert!(check_at(&token, "/v2/tokeninfo").is_some());
        // Only where it was sent: an introspection assertion is no token-endpoint assertion.
        assert!(check(&token).is_none());
    }

    #[test]
    fn every_broken_rule_is_refused() {
        let cases = [
            ("another issuer", json!({ "iss": "c2" })),
            ("another subject", json!({ "sub": "c2" })),
            (
                "another audience",
                json!({ "aud": "https://elsewhere/token" }),
            ),
            ("no audience", json!({ "aud": null })),
            ("no issuer", json!({ "iss": null })),
            ("no subject", json!({ "sub": null })),
            ("a numeric audience", json!({ "aud": 7 })),
            ("expired", json!({ "exp": NOW - 6 })),
            ("over an hour ahead", json!({ "exp": NOW + 3600 + 6 })),
            ("no exp", json!({ "exp": null })),
            ("no jti", json!({ "jti": null })),
            ("empty jti", json!({ "jti": "" })),
            (
                "overlong jti",
                json!({ "jti": "j".repeat(MAX_JTI_LEN + 1) }),
            ),
            ("issued in the future", json!({ "iat": NOW + 60 })),
            ("not valid yet", json!({ "nbf": NOW + 60 })),
        ];
        for (what, changes) in cases {
            assert!(
                check(&signed(Alg::Es256, &with(changes))).is_none(),
                "{what}"
            );
        }
        // The edges themselves are accepted.
        let edges = json!({ "exp": NOW + 3600 + 5, "iat": NOW + 5, "nbf": NOW + 5 });
        assert!(check(&signed(Alg::Es256, &with(edges))).is_some());
    }

    #[test]
    fn a_key_the_client_did_not_register_is_refused() {
        let mut other = KeySetDocument::default();
        ensure_keys(&mut other, Alg::Es256, NOW).unwrap();
        let other = key_set(&serde_json::to_string(&other).unwrap());
        let token = other
            .signer(Alg::Es256)
            .unwrap()
            .sign_jwt("JWT", &claims())
            .unwrap();
        assert!(check(&token).is_none());
        // Nor a registered kid under another key's signature.
        let ours = client_keys();
        let kid = ours.signer(Alg::Es256).unwrap().kid().to_owned();
        let forged_header = b64(&json!({ "alg": "ES256", "kid": kid }));
        let signature = token.rsplit('.').next().unwrap();
        let payload = token.split('.').nth(1).unwrap();
        assert!(check(&format!("{forged_header}.{payload}.{signature}")).is_none());
    }

    #[test]
    fn unsigned_and_hmac_assertions_are_refused() {
        let none = format!("{}.{}.", b64(&json!({ "alg": "none" })), b64(&claims()));
        assert!(check(&none).is_none());
        // HMAC keyed with anything the attacker might guess, even the public JWKS text.
        let jwks = client_keys().jwks_json().to_owned();
        for secret in [b"secret".as_slice(), jwks.as_bytes()] {
            let hs256 = jsonwebtoken::encode(
                &jsonwebtoken::Header::new(Algorithm::HS256),
                &claims(),
                &jsonwebtoken::EncodingKey::from_secret(secret),
            )
            .unwrap();
            assert!(check(&hs256).is_none());
        }
    }

    #[test]
    fn the_algorithm_is_the_keys_not_the_headers() {
        let token = signed(Alg::Es256, &claims());
        let (_, rest) = token.split_once('.').unwrap();
        let kid = client_keys().signer(Alg::Es256).unwrap().kid().to_owned();
        for alg in ["ES384", "RS256", "EdDSA"] {
            let header = b64(&json!({ "alg": alg, "kid": kid }));
            assert!(check(&format!("{header}.{rest}")).is_none(), "{alg}");
        }
    }

    #[test]
    fn the_subject_is_read_unverified_only_to_find_the_client() {
        assert_eq!(
            unverified_subject(&signed(Alg::Es256, &claims())).as_deref(),
            Some("c1")
        );
        assert_eq!(unverified_subject("not a jwt"), None);
        assert_eq!(unverified_subject("a.%%%.c"), None);
    }

    #[test]
    fn a_registered_jwks_holds_public_signing_keys_only() {
        let jwks = client_keys().jwks_json().to_owned();
        assert!(validate_client_jwks(&jwks).is_ok());
        let mut private: Value = serde_json::from_str(&jwks).unwrap();
        private["keys"][0]["d"] = json!("AAAA");
        let refused = [
            "not json".to_owned(),
            json!({}).to_string(),
            json!({ "keys": [] }).to_string(),
            private.to_string(),
            json!({ "keys": [{ "kty": "oct", "k": "c2VjcmV0" }] }).to_string(),
            json!({ "keys": [{ "kty": "oct", "kid": "x" }] }).to_string(),
        ];
        for text in refused {
            assert!(validate_client_jwks(&text).is_err(), "{text}");
        }
        let mut twice: Value = serde_json::from_str(&jwks).unwrap();
        let first = twice["keys"][0].clone();
        twice["keys"].as_array_mut().unwrap().push(first);
        assert!(validate_client_jwks(&twice.to_string()).is_err());
    }
}
