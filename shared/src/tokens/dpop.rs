//! DPoP proofs (RFC 9449): a JWT the client signs, per request, with a key whose public half it
//! embeds. A token issued against a proof names that key (`cnf.jkt`, its RFC 7638 thumbprint)
//! and is worth nothing to whoever steals it without the private key.

use std::collections::BTreeMap;

use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::Jwk;
use serde::{Deserialize, Serialize};

use super::jws::{CompactJws, PRIVATE_MEMBERS, accepted_alg, decode_part, fits};
use super::verify::LEEWAY_SECONDS;
use crate::crypto::{b64url, sha256_b64};
use crate::keys::KeySet;
use aws_lc_rs::hmac;

/// The request header carrying the proof, and the `Authorization` scheme of a bound token.
pub const HEADER: &str = "dpop";
pub const SCHEME: &str = "DPoP";
/// The `token_type` of a bound access token (RFC 9449 §5).
pub const TOKEN_TYPE: &str = "DPoP";
/// RFC 9449 §4.2.
pub const PROOF_TYP: &str = "dpop+jwt";

/// The `token_type` of an access token (RFC 6749 §7.1): `DPoP` when bound to a key.
pub fn token_type(bound: bool) -> &'static str {
    if bound { TOKEN_TYPE } else { "Bearer" }
}

/// How old a proof may be (RFC 9449 §11.1 leaves the window to the server). Proofs are made
/// for one request and sent at once; a minute absorbs clock skew without keeping `jti`s long.
pub const MAX_AGE_SECONDS: i64 = 60;

/// A proof is a few hundred bytes (an RSA-4096 `jwk` about a kilobyte).
const MAX_PROOF_LEN: usize = 8192;
const MAX_JTI_LEN: usize = 256;

/// RFC 7800 §3.1 confirmation claim of a bound token (RFC 9449 §6.1: `jkt`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Confirmation {
    pub jkt: String,
}

/// A proof whose signature and claims verified; its `jti` still has to be spent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    /// RFC 7638 SHA-256 thumbprint of the proof's key.
    pub jkt: String,
    pub jti: String,
    pub iat: i64,
    /// The server-provided nonce the proof carries, if any (RFC 9449 §8).
    pub nonce: Option<String>,
}

impl Proof {
    /// Until when its `jti` must be remembered: after that its `iat` is too old anyway.
    pub fn replayable_until(&self) -> i64 {
        self.iat + MAX_AGE_SECONDS + LEEWAY_SECONDS as i64 + 1
    }

    pub fn confirmation(&self) -> Confirmation {
        Confirmation {
            jkt: self.jkt.clone(),
        }
    }
}

/// The request a proof must be for.
pub struct Expected<'a> {
    /// `htm`: the request's method.
    pub method: &'a str,
    /// `htu`: the request's URL without query or fragment.
    pub url: &'a str,
    /// The access token presented with the proof (`ath`, RFC 9449 §4.3 rule 12).
    pub access_token: Option<&'a str>,
    pub now: i64,
}

#[derive(Deserialize)]
struct ProofHeader {
    typ: Option<String>,
    alg: String,
    jwk: serde_json::Value,
    /// RFC 7515 §4.1.11: extensions we would have to understand; we understand none.
    crit: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct ProofClaims {
    jti: String,
    htm: String,
    htu: String,
    iat: i64,
    #[serde(default)]
    ath: Option<String>,
    #[serde(default)]
    nonce: Option<String>,
}

/// A server nonce (RFC 9449 §8) is good for the window it was issued in and the next one:
/// five to ten minutes.
pub const NONCE_WINDOW_SECONDS: i64 = 300;
/// The response header carrying the current nonce.
pub const NONCE_HEADER: &str = "dpop-nonce";

/// The current nonce: `<window>.<MAC of the window>`, stateless, so every instance of every
/// function issues and accepts the same values without storing any.
pub fn nonce(keys: &KeySet, now: i64) -> Option<String> {
    let key = keys.nonce_keys().first()?;
    Some(nonce_for(key, now.div_euclid(NONCE_WINDOW_SECONDS)))
}

fn nonce_for(key: &hmac::Key, window: i64) -> String {
    let tag = hmac::sign(key, format!("dpop-nonce:{window}").as_bytes());
    format!("{window}.{}", b64url(&tag.as_ref()[..16]))
}

/// Whether `nonce` is one of ours from this window or the previous one, under any key of the
/// set (a set before or after a rotation shares keys with this one).
pub fn nonce_is_current(keys: &KeySet, nonce: &str, now: i64) -> bool {
    let Some(window) = nonce
        .split_once('.')
        .and_then(|(window, _)| window.parse::<i64>().ok())
    else {
        return false;
    };
    let current = now.div_euclid(NONCE_WINDOW_SECONDS);
    (window == current || window == current - 1)
        && keys
            .nonce_keys()
            .iter()
            .any(|key| crate::crypto::digests_equal(&nonce_for(key, window), nonce))
}

/// `ath`: base64url SHA-256 of the access token's ASCII (RFC 9449 §4.2).
pub fn access_token_hash(token: &str) -> String {
    sha256_b64(token.as_bytes())
}

/// Checks a DPoP proof on its own (RFC 9449 §4.3 rules 2-9, 11 and the `ath` of 12). The
/// callers check the rest: one header (rule 1), the nonce when they require one (rule 10),
/// the bound token's `cnf.jkt` (rule 12) and the `jti`'s single use. The error is a fixed
/// description for `invalid_dpop_proof`.
pub fn verify(proof: &str, expected: &Expected) -> Result<Proof, &'static str> {
    const MALFORMED: &str = "the DPoP proof is not a valid JWT";
    if proof.len() > MAX_PROOF_LEN {
        return Err(MALFORMED);
    }
    let jws = CompactJws::split(proof).ok_or(MALFORMED)?;
    let header: ProofHeader = decode_part(jws.header).ok_or(MALFORMED)?;
    if header.typ.as_deref() != Some(PROOF_TYP) {
        return Err("the DPoP proof's typ must be dpop+jwt");
    }
    if header.crit.is_some() {
        return Err("the DPoP proof has a crit header this server does not understand");
    }
    let alg = accepted_alg(&header.alg)
        .ok_or("the DPoP proof's alg is not one of dpop_signing_alg_values_supported")?;
    const BAD_KEY: &str = "the DPoP proof's jwk is not a public signing key for its alg";
    let jkt = thumbprint(&header.jwk).ok_or(BAD_KEY)?;
    let jwk: Jwk = serde_json::from_value(header.jwk).map_err(|_| BAD_KEY)?;
    let key = fits(&jwk, alg)
        .then(|| DecodingKey::from_jwk(&jwk).ok())
        .flatten()
        .ok_or(BAD_KEY)?;
    if !jws.signed_by(&key, alg) {
        return Err("the DPoP proof's signature does not verify with its jwk");
    }
    let claims: ProofClaims = decode_part(jws.claims)
        .ok_or("the DPoP proof lacks one of jti, htm, htu and iat (integer)")?;
    if claims.jti.is_empty() || claims.jti.len() > MAX_JTI_LEN {
        return Err("the DPoP proof's jti must be 1 to 256 bytes");
    }
    if claims.htm != expected.method {
        return Err("the DPoP proof's htm is not this request's method");
    }
    if !same_url(&claims.htu, expected.url) {
        return Err("the DPoP proof's htu is not this endpoint's URL");
    }
    let leeway = LEEWAY_SECONDS as i64;
    if claims.iat > expected.now + leeway || claims.iat < expected.now - MAX_AGE_SECONDS {
        return Err("the DPoP proof's iat is not within the last minute");
    }
    if let Some(token) = expected.access_token {
        let hash = access_token_hash(token);
        if !claims
            .ath
            .is_some_and(|ath| crate::crypto::digests_equal(&ath, &hash))
        {
            return Err("the DPoP proof's ath is not the hash of the access token");
        }
    }
    Ok(Proof {
        jkt,
        jti: claims.jti,
        iat: claims.iat,
        nonce: claims.nonce,
    })
}

/// The RFC 7638 SHA-256 thumbprint of a public asymmetric JWK: its required members, sorted,
/// as compact JSON. `None` for a private or symmetric key (RFC 9449 §4.3 rule 7) or a key
/// missing a member.
pub fn thumbprint(jwk: &serde_json::Value) -> Option<String> {
    if PRIVATE_MEMBERS.iter().any(|m| jwk.get(*m).is_some()) {
        return None;
    }
    let members: &[&str] = match jwk.get("kty")?.as_str()? {
        "EC" => &["crv", "kty", "x", "y"],
        "RSA" => &["e", "kty", "n"],
        "OKP" => &["crv", "kty", "x"],
        _ => return None,
    };
    let required: BTreeMap<&str, &str> = members
        .iter()
        .map(|m| Some((*m, jwk.get(*m)?.as_str()?)))
        .collect::<Option<_>>()?;
    let canonical = serde_json::to_string(&required).ok()?;
    Some(sha256_b64(canonical.as_bytes()))
}

/// Whether `htu` names `url`: query and fragment ignored (RFC 9449 §4.3 rule 9); scheme and
/// host case-insensitive, the scheme's default port implied (RFC 3986 §6.2.2.1, §6.2.3); one
/// trailing slash ignored.
fn same_url(htu: &str, url: &str) -> bool {
    let htu = htu.split(['?', '#']).next().unwrap_or_default();
    match (normalized(htu), normalized(url)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// `scheme://authority` lower-cased without a default port, and the path without one
/// trailing slash.
fn normalized(url: &str) -> Option<(String, &str)> {
    let after_scheme = url.find("://")? + 3;
    let path_at = url[after_scheme..]
        .find('/')
        .map_or(url.len(), |p| after_scheme + p);
    let origin = url[..path_at].to_ascii_lowercase();
    let without_default_port = match origin.split_once("://") {
        Some(("https", authority)) => authority
            .strip_suffix(":443")
            .map(|a| format!("https://{a}")),
        Some(("http", authority)) => authority.strip_suffix(":80").map(|a| format!("http://{a}")),
        _ => None,
    };
    let path = &url[path_at..];
    Some((
        without_default_port.unwrap_or(origin),
        path.strip_suffix('/').unwrap_or(path),
    ))
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::keys::Alg;
    use crate::testing::{dpop_claims, dpop_proof_with};

    const NOW: i64 = 1_800_000_000;
    const URL: &str = "https://id.example.com/oauth/v2/token";

    fn expected(access_token: Option<&str>) -> Expected<'_> {
        Expected {
            method: "POST",
            url: URL,
            access_token,
            now: NOW,
        }
    }

    fn claims_with(changes: Value) -> Value {
        let mut claims = dpop_claims("POST", URL, NOW);
        for (name, value) in changes.as_object().unwrap() {
            match value {
                Value::Null => drop(claims.as_object_mut().unwrap().remove(name)),
                value => claims[name] = value.clone(),
            }
        }
        claims
    }

    fn check(header: Value, claims: Value) -> Result<Proof, &'static str> {
        verify(
            &dpop_proof_with(Alg::Es256, &header, &claims),
            &expected(None),
        )
    }

    #[test]
    fn a_proof_verifies_for_every_algorithm_and_names_its_keys_thumbprint() {
        for alg in Alg::ALL {
            let claims = dpop_claims("POST", URL, NOW);
            let proof = verify(&dpop_proof_with(alg, &json!({}), &claims), &expected(None));
            let jwk = crate::testing::dpop_public_jwk(alg);
            let proof = proof.unwrap_or_else(|e| panic!("{alg:?}: {e}"));
            assert_eq!(proof.jkt, thumbprint(&jwk).unwrap());
            assert_eq!(proof.jti, claims["jti"].as_str().unwrap());
        }
    }

    #[test]
    fn the_thumbprint_is_rfc_7638s() {
        // RFC 7638 §3.1's example key and thumbprint; members that are not required (alg,
        // kid) do not count.
        let jwk = json!({
            "kty": "RSA", "alg": "RS256", "kid": "2011-04-29", "e": "AQAB",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
        });
        assert_eq!(
            thumbprint(&jwk).as_deref(),
            Some("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs")
        );
        // A private key is refused (RFC 9449 §4.3 rule 7), as is a symmetric one.
        let mut private = jwk.clone();
        private["d"] = json!("secret");
        assert_eq!(thumbprint(&private), None);
        assert_eq!(thumbprint(&json!({"kty": "oct", "k": "AAAA"})), None);
    }

    #[test]
    fn every_header_rule_is_enforced() {
        let refused = [
            json!({"typ": "JWT"}),
            json!({"typ": null}),
            json!({"crit": ["exp"]}),
            json!({"alg": "none"}),
            json!({"alg": "HS256"}),
            // The signature is ES256 but the header claims another key type's algorithm.
            json!({"alg": "RS256"}),
            // Another key than the one that signed.
            json!({"jwk": crate::testing::dpop_public_jwk(Alg::EdDsa)}),
            json!({"jwk": {"kty": "oct", "k": "c2VjcmV0"}}),
            json!({"jwk": null}),
        ];
        for header in refused {
            assert!(
                check(header.clone(), claims_with(json!({}))).is_err(),
                "{header}"
            );
        }
        let mut private = crate::testing::dpop_public_jwk(Alg::Es256);
        private["d"] = json!("AAAA");
        assert!(check(json!({ "jwk": private }), claims_with(json!({}))).is_err());
        // A key claiming another curve than its algorithm's (its thumbprint would be another).
        let mut p384 = crate::testing::dpop_public_jwk(Alg::Es256);
        p384["crv"] = json!("P-384");
        assert!(check(json!({ "jwk": p384 }), claims_with(json!({}))).is_err());
        let mut ed448 = crate::testing::dpop_public_jwk(Alg::EdDsa);
        ed448["crv"] = json!("Ed448");
        let proof = dpop_proof_with(
            Alg::EdDsa,
            &json!({ "jwk": ed448 }),
            &claims_with(json!({})),
        );
        assert!(verify(&proof, &expected(None)).is_err());
    }

    #[test]
    fn every_claim_rule_is_enforced() {
        let refused = [
            json!({"jti": null}),
            json!({"jti": ""}),
            json!({"jti": "x".repeat(257)}),
            json!({"htm": "GET"}),
            json!({"htm": null}),
            json!({"htu": "https://id.example.com/oauth/v2/revoke"}),
            json!({"htu": "https://evil.example.com/oauth/v2/token"}),
            json!({"htu": "https://id.example.com:8443/oauth/v2/token"}),
            json!({"htu": "http://id.example.com/oauth/v2/token"}),
            json!({"htu": "https://id.example.com/oauth/v2/token//"}),
            json!({"htu": null}),
            json!({"iat": NOW - MAX_AGE_SECONDS - 1}),
            json!({"iat": NOW + 6}),
            json!({"iat": "1800000000"}),
            json!({"iat": null}),
        ];
        for changes in refused {
            assert!(
                check(json!({}), claims_with(changes.clone())).is_err(),
                "{changes}"
            );
        }
        let accepted = [
            json!({"iat": NOW - MAX_AGE_SECONDS}),
            json!({"iat": NOW + 5}),
            json!({"htu": format!("{URL}?x=1#f")}),
            json!({"htu": "HTTPS://ID.EXAMPLE.COM/oauth/v2/token/"}),
            json!({"htu": "https://id.example.com:443/oauth/v2/token"}),
            json!({"nonce": "n-1"}),
        ];
        for changes in accepted {
            assert!(
                check(json!({}), claims_with(changes.clone())).is_ok(),
                "{changes}"
            );
        }
        // The path is compared exactly.
        let upper = json!({"htu": "https://id.example.com/OAUTH/v2/token"});
        assert!(check(json!({}), claims_with(upper)).is_err());
    }

    #[test]
    fn with_an_access_token_the_proof_must_carry_its_hash() {
        let token = "eyJ.a.b";
        let bound = claims_with(json!({ "ath": access_token_hash(token) }));
        let proof = dpop_proof_with(Alg::Es256, &json!({}), &bound);
        assert!(verify(&proof, &expected(Some(token))).is_ok());
        assert!(verify(&proof, &expected(Some("eyJ.other.token"))).is_err());
        let unbound = dpop_proof_with(Alg::Es256, &json!({}), &claims_with(json!({})));
        assert!(verify(&unbound, &expected(Some(token))).is_err());
    }

    #[test]
    fn nonces_are_good_for_two_windows_and_only_ours() {
        let keys = crate::keys::KeySet::from_document(
            &crate::keys::KeySetDocument::parse(&crate::testing::key_set(&Alg::ALL).0).unwrap(),
        )
        .unwrap();
        let issued = nonce(&keys, NOW).unwrap();
        assert!(nonce_is_current(&keys, &issued, NOW));
        assert!(nonce_is_current(&keys, &issued, NOW + NONCE_WINDOW_SECONDS));
        assert!(!nonce_is_current(
            &keys,
            &issued,
            NOW + 2 * NONCE_WINDOW_SECONDS
        ));
        assert!(!nonce_is_current(
            &keys,
            &issued,
            NOW - NONCE_WINDOW_SECONDS
        ));
        let (window, _) = issued.split_once('.').unwrap();
        let forged = format!("{window}.AAAAAAAAAAAAAAAAAAAAAA");
        for bad in [forged.as_str(), "", ".", "x.y", &issued[1..]] {
            assert!(!nonce_is_current(&keys, bad, NOW), "{bad}");
        }
        // Another key set (another deployment) issues other nonces.
        let mut doc = crate::keys::KeySetDocument::default();
        crate::keys::rotation::ensure_keys(&mut doc, Alg::Es256, NOW).unwrap();
        let other = crate::keys::KeySet::from_document(&doc).unwrap();
        assert!(!nonce_is_current(&other, &issued, NOW));
    }

    #[test]
    fn a_tampered_or_malformed_proof_is_refused() {
        let proof = dpop_proof_with(Alg::Es256, &json!({}), &claims_with(json!({})));
        let (input, _) = proof.rsplit_once('.').unwrap();
        let other = dpop_proof_with(Alg::Es256, &json!({}), &claims_with(json!({})));
        let (_, other_signature) = other.rsplit_once('.').unwrap();
        for bad in [
            format!("{input}.{other_signature}"),
            input.to_owned(),
            format!("{proof}.x"),
            "not a jwt".to_owned(),
            "x".repeat(MAX_PROOF_LEN + 1),
        ] {
            assert!(verify(&bad, &expected(None)).is_err());
        }
    }
}
