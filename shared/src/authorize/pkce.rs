//! Proof Key for Code Exchange (RFC 7636), S256 only: `plain` would send the verifier itself
//! through the browser (RFC 9700 §2.1.1 recommends S256).

use crate::crypto::{digests_equal, sha256_b64};

/// The only method offered (discovery: `code_challenge_methods_supported`).
pub const S256: &str = "S256";

/// RFC 7636 §4.1: 43–128 characters of `[A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~"`.
pub fn is_verifier(text: &str) -> bool {
    (43..=128).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// RFC 7636 §4.2: an S256 challenge is BASE64URL(SHA-256(verifier)): 43 characters.
pub fn is_challenge(text: &str) -> bool {
    text.len() == 43
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
}

/// The challenge a verifier answers.
pub fn challenge_of(verifier: &str) -> String {
    sha256_b64(verifier.as_bytes())
}

/// RFC 7636 §4.6: the verifier answers the challenge (compared in constant time).
pub fn verifies(verifier: &str, challenge: &str) -> bool {
    is_verifier(verifier) && digests_equal(&challenge_of(verifier), challenge)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rfc_7636_appendix_b_example_verifies() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(is_verifier(verifier) && is_challenge(challenge));
        assert_eq!(challenge_of(verifier), challenge);
        assert!(verifies(verifier, challenge));
        assert!(!verifies(&verifier.replace('d', "e"), challenge));
        // The right digest of a malformed verifier is still refused.
        assert!(!verifies("short", &challenge_of("short")));
        assert!(!is_verifier(&"a".repeat(129)) && !is_verifier(&"a".repeat(42)));
        assert!(!is_challenge("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-c"));
    }
}
