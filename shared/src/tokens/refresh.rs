//! Opaque refresh tokens: `<family_id>.<256-bit random, base64url>`. Only the SHA-256 of the
//! random part is stored; the family id finds the record without an index.
//!
//! A family id is `<user_id>~<128-bit random, base64url>`: the user id lets a refresh read the
//! user's account in the same round trip as the family (the `sub` of the tokens the client
//! already holds, so it tells the client nothing new). Families written before carry only the
//! random part; they still parse, and their account is read after the family.

use crate::crypto::{b64url, random_bytes, random_secret, sha256_b64};

const RANDOM_ID_LEN: usize = 22;
const SECRET_LEN: usize = 43;
const MAX_USER_ID_LEN: usize = 64;
const USER_SEPARATOR: char = '~';

pub struct RefreshToken {
    pub family_id: String,
    secret: String,
}

fn is_b64url(part: &str, len: usize) -> bool {
    part.len() == len
        && part
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A user id that can be part of a family id: what `oauthctl` generates (a UUID) and anything
/// else of the same alphabet.
fn embeddable(user_id: &str) -> bool {
    !user_id.is_empty()
        && user_id.len() <= MAX_USER_ID_LEN
        && user_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

impl RefreshToken {
    /// A new family's first token, for the user `user_id`.
    pub fn new_family(user_id: &str) -> Self {
        let random = b64url(&random_bytes::<16>());
        let family_id = if embeddable(user_id) {
            format!("{user_id}{USER_SEPARATOR}{random}")
        } else {
            random
        };
        Self {
            family_id,
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
        let random = match family_id.split_once(USER_SEPARATOR) {
            Some((user_id, random)) if embeddable(user_id) => random,
            Some(_) => return None,
            None => family_id,
        };
        (is_b64url(random, RANDOM_ID_LEN) && is_b64url(secret, SECRET_LEN)).then(|| Self {
            family_id: family_id.to_owned(),
            secret: secret.to_owned(),
        })
    }

    /// The user the family was created for, when its id says so.
    pub fn user_id(&self) -> Option<&str> {
        self.family_id
            .split_once(USER_SEPARATOR)
            .map(|(user_id, _)| user_id)
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

    const USER: &str = "6f0c1d2e-3b4a-4c5d-8e9f-0a1b2c3d4e5f";

    #[test]
    fn round_trips_and_rejects_other_shapes() {
        let token = RefreshToken::new_family(USER);
        let parsed = RefreshToken::parse(&token.expose()).unwrap();
        assert_eq!(parsed.family_id, token.family_id);
        assert_eq!(parsed.user_id(), Some(USER));
        assert_eq!(parsed.hash(), token.hash());
        let next = RefreshToken::next_in(&token.family_id);
        assert_ne!(next.hash(), token.hash());
        assert_eq!(next.user_id(), Some(USER));
        let random = token.family_id.split_once('~').unwrap().1;
        for bad in [
            "",
            "a.b",
            "nodot",
            &format!("{}.{}x", token.family_id, "a".repeat(43)),
            &format!("~{random}.{}", "a".repeat(43)),
            &format!("us.er~{random}.{}", "a".repeat(43)),
            &format!("{}~{random}.{}", "u".repeat(65), "a".repeat(43)),
            "ü.ü",
        ] {
            assert!(RefreshToken::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn families_of_earlier_releases_still_parse() {
        let legacy = format!("{}.{}", "A".repeat(22), "b".repeat(43));
        let parsed = RefreshToken::parse(&legacy).unwrap();
        assert_eq!(parsed.user_id(), None);
        // A user id that cannot be embedded falls back to that form.
        assert_eq!(RefreshToken::new_family("a.b").user_id(), None);
    }
}
