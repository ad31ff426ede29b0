//! Verifies presented client credentials against the stored client (RFC 6749 §2.3).
//!
//! Unknown client, wrong secret, wrong or missing API key and disabled client are one error,
//! reached through the same work: every candidate digest is compared in constant time, and an
//! unknown client is compared against a dummy digest.

use std::sync::LazyLock;

use subtle::{Choice, ConstantTimeEq};

use crate::crypto::sha256_b64;
use crate::error::OAuthError;
use crate::request::ClientCredentials;
use crate::storage::{Client, StoredSecret};

/// Digest compared when there is no stored secret: SHA-256 of nothing anyone can present.
const DUMMY_DIGEST: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

fn digest_matches(presented: &str, stored: &str) -> Choice {
    presented.as_bytes().ct_eq(stored.as_bytes())
}

pub fn authenticate_client<'c>(
    record: Option<&'c Client>,
    credentials: &ClientCredentials,
    api_key: Option<&str>,
    now: i64,
) -> Result<&'c Client, OAuthError> {
    let failure = OAuthError::InvalidClient {
        basic_challenge: credentials.via_basic,
    };
    let presented = sha256_b64(credentials.client_secret.as_bytes());
    // An unknown client is checked like a known one with one secret, then refused.
    static DUMMY_SECRETS: LazyLock<[StoredSecret; 1]> = LazyLock::new(|| {
        [StoredSecret {
            sha256: DUMMY_DIGEST.to_owned(),
            expires_at: None,
        }]
    });
    let (secrets, exists) = match record {
        Some(client) => (client.secrets.as_slice(), Choice::from(1)),
        None => (&DUMMY_SECRETS[..], Choice::from(0)),
    };
    let mut secret_ok = Choice::from(0);
    for secret in secrets {
        let live = Choice::from(u8::from(secret.expires_at.is_none_or(|exp| exp > now)));
        secret_ok |= digest_matches(&presented, &secret.sha256) & live & exists;
    }
    // The API key is a second factor of the same failure (SPEC §4): compared whenever the
    // client requires one, against a dummy when it was not sent.
    let api_key_ok = match record.and_then(|c| c.api_key_sha256.as_deref()) {
        Some(stored) => {
            let sent = api_key.map(|k| sha256_b64(k.as_bytes()));
            let matches = digest_matches(sent.as_deref().unwrap_or(DUMMY_DIGEST), stored);
            matches & Choice::from(u8::from(sent.is_some()))
        }
        None => Choice::from(1),
    };
    // Auth method `none` (RFC 6749 §2.1): enough for a public client, and for any other the
    // wrong-secret answer after the same work. A public client has no secret to match.
    let method_ok = match record {
        Some(client) => client.public == credentials.secretless,
        None => false,
    };
    let authenticated = if credentials.secretless {
        method_ok
    } else {
        bool::from(secret_ok & api_key_ok) && method_ok
    };
    match record {
        Some(client) if authenticated && client.enabled => Ok(client),
        _ => Err(failure),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fixture client with its one secret `secret`.
    fn client(id: &str, secret: &str) -> Client {
        let mut client = crate::testing::client(id, &[]);
        client.secrets = vec![StoredSecret {
            sha256: sha256_b64(secret.as_bytes()),
            expires_at: None,
        }];
        client
    }

    fn creds(id: &str, secret: &str) -> ClientCredentials {
        ClientCredentials {
            client_id: id.into(),
            client_secret: secret.into(),
            via_basic: true,
            secretless: false,
        }
    }

    fn client_id_only(id: &str) -> ClientCredentials {
        ClientCredentials {
            client_id: id.into(),
            client_secret: String::new(),
            via_basic: false,
            secretless: true,
        }
    }

    #[test]
    fn a_client_id_alone_authenticates_only_a_public_client() {
        let mut public = client("spa", "unused");
        public.public = true;
        public.secrets.clear();
        assert!(authenticate_client(Some(&public), &client_id_only("spa"), None, 0).is_ok());
        let confidential = client("c1", "s3cret");
        let refused = authenticate_client(Some(&confidential), &client_id_only("c1"), None, 0);
        assert_eq!(
            refused.unwrap_err(),
            OAuthError::InvalidClient {
                basic_challenge: false
            }
        );
        assert!(authenticate_client(None, &client_id_only("nobody"), None, 0).is_err());
        // A public client cannot be made confidential by sending a secret.
        assert!(authenticate_client(Some(&public), &creds("spa", ""), None, 0).is_err());
        let mut disabled = public.clone();
        disabled.enabled = false;
        assert!(authenticate_client(Some(&disabled), &client_id_only("spa"), None, 0).is_err());
    }

    #[test]
    fn right_secret_authenticates() {
        let c = client("c1", "s3cret");
        assert!(authenticate_client(Some(&c), &creds("c1", "s3cret"), None, 0).is_ok());
    }

    #[test]
    fn every_failure_is_the_same_error() {
        let mut disabled = client("c1", "s3cret");
        disabled.enabled = false;
        let mut with_key = client("c1", "s3cret");
        with_key.api_key_sha256 = Some(sha256_b64(b"key"));
        let expected = OAuthError::InvalidClient {
            basic_challenge: true,
        };
        let plain = client("c1", "s3cret");
        let cases = [
            authenticate_client(None, &creds("nobody", "s3cret"), None, 0),
            authenticate_client(Some(&plain), &creds("c1", "wrong"), None, 0),
            authenticate_client(Some(&disabled), &creds("c1", "s3cret"), None, 0),
            authenticate_client(Some(&with_key), &creds("c1", "s3cret"), None, 0),
            authenticate_client(Some(&with_key), &creds("c1", "s3cret"), Some("nope"), 0),
        ];
        for case in cases {
            assert_eq!(case.unwrap_err(), expected);
        }
        assert!(
            authenticate_client(Some(&with_key), &creds("c1", "s3cret"), Some("key"), 0).is_ok()
        );
    }

    #[test]
    fn an_expired_grace_secret_no_longer_works() {
        let mut c = client("c1", "new");
        c.secrets.push(StoredSecret {
            sha256: sha256_b64(b"old"),
            expires_at: Some(100),
        });
        assert!(authenticate_client(Some(&c), &creds("c1", "old"), None, 99).is_ok());
        assert!(authenticate_client(Some(&c), &creds("c1", "old"), None, 100).is_err());
        assert!(authenticate_client(Some(&c), &creds("c1", "new"), None, 100).is_ok());
    }
}
