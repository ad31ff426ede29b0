//! Small cryptographic helpers: randomness, SHA-256 digests, constant-time comparison.

use aws_lc_rs::{digest, rand::SecureRandom};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use subtle::ConstantTimeEq;

pub fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn b64url_decode(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text).ok()
}

/// `n` bytes from the system CSPRNG.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    aws_lc_rs::rand::SystemRandom::new()
        .fill(&mut out)
        .expect("the system CSPRNG never fails on supported platforms");
    out
}

/// A 256-bit random secret as base64url: only `[A-Za-z0-9_-]`, so its raw and
/// form-urlencoded forms are the same (RFC 6749 §2.3.1).
pub fn random_secret() -> String {
    b64url(&random_bytes::<32>())
}

/// SHA-256 of `data`, base64url — the form secrets are stored in.
pub fn sha256_b64(data: &[u8]) -> String {
    b64url(digest::digest(&digest::SHA256, data).as_ref())
}

/// Constant-time equality of two stored-form digests (lengths are public).
pub fn digests_equal(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_long_url_safe_and_distinct() {
        let a = random_secret();
        let b = random_secret();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
    }

    #[test]
    fn sha256_matches_a_known_vector() {
        // SHA-256("abc"), RFC 6234 test vector.
        assert_eq!(
            sha256_b64(b"abc"),
            "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0"
        );
        assert!(digests_equal(&sha256_b64(b"x"), &sha256_b64(b"x")));
        assert!(!digests_equal(&sha256_b64(b"x"), &sha256_b64(b"y")));
    }
}
