//! Opaque refresh tokens: `<family_id>.<256-bit random, base64url>`. Only the SHA-256 of the
//! random part is stored; the family id finds the record without an index.

use crate::crypto::{b64url, random_bytes, random_secret, sha256_b64};

pub struct RefreshToken {
    pub family_id: String,
    secret: String,
}

impl RefreshToken {
    /// A new family's first token.
    pub fn new_family() -> Self {
        Self {
            family_id: b64url(&random_bytes::<16>()),
            secret: random_secret(),
        }
    }

    /// The family's next token (rotation).
    pub fn next_in(family_id: &str) -> Self {
        Self {
            family_id: family_id.to_owned(),
            secret: random_secret(),
        }
    }

    /// Parses the presented form; anything else is simply not a refresh token of ours.
    pub fn parse(text: &str) -> Option<Self> {
        let (family_id, secret) = text.split_once('.')?;
        let well_formed = |part: &str, len: usize| {
            part.len() == len
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        (well_formed(family_id, 22) && well_formed(secret, 43)).then(|| Self {
            family_id: family_id.to_owned(),
            secret: secret.to_owned(),
        })
    }

    pub fn hash(&self) -> String {
        sha256_b64(self.secret.as_bytes())
    }

    /// The wire form, handed to the client once.
    pub fn expose(&self) -> String {
        format!("{}.{}", self.family_id, self.secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_other_shapes() {
        let token = RefreshToken::new_family();
        let parsed = RefreshToken::parse(&token.expose()).unwrap();
        assert_eq!(parsed.family_id, token.family_id);
        assert_eq!(parsed.hash(), token.hash());
        let next = RefreshToken::next_in(&token.family_id);
        assert_ne!(next.hash(), token.hash());
        for bad in [
            "",
            "a.b",
            "nodot",
            &format!("{}.{}x", token.family_id, "a".repeat(43)),
            "ü.ü",
        ] {
            assert!(RefreshToken::parse(bad).is_none(), "{bad}");
        }
    }
}
