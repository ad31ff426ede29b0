//! Verifies presented client credentials against the stored client (RFC 6749 §2.3).
//!
//! Unknown client, wrong secret, wrong or missing API key and disabled client are one error,
//! reached through the same work: every candidate digest is compared in constant time, and an
//! unknown client is compared against a dummy digest. A `private_key_jwt` client authenticates
//! with a signed assertion only (`client_assertion`), never with a secret.

use std::sync::LazyLock;

use subtle::{Choice, ConstantTimeEq};

use super::client_assertion::{self, VerifiedAssertion};
use super::client_jwks::ClientJwks;
use crate::crypto::sha256_b64;
use crate::error::OAuthError;
use crate::request::ClientCredentials;
use crate::storage::{AssertionReplays, Client, StoredSecret, keys};

/// Digest compared when there is no stored secret: SHA-256 of nothing anyone can present.
const DUMMY_DIGEST: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

fn digest_matches(presented: &str, stored: &str) -> Choice {
    presented.as_bytes().ct_eq(stored.as_bytes())
}

/// What authenticates a request besides its credentials.
#[derive(Debug, Clone, Copy)]
pub struct Presentation<'a> {
    pub api_key: Option<&'a str>,
    /// The `aud` values an assertion may name: the issuer, the token endpoint and the
    /// endpoint receiving it (RFC 7523 §3 rule 3).
    pub audiences: &'a [String],
    pub now: i64,
    /// The keys fetched from the client's `jwks_uri`, when it registered one.
    pub fetched_jwks: Option<&'a str>,
}

/// An authenticated client; an assertion's `jti` still has to be spent (`authenticate`).
#[derive(Debug)]
pub struct Authenticated<'c> {
    pub client: &'c Client,
    pub assertion: Option<VerifiedAssertion>,
}

/// `authenticate_client`, then the assertion's single use (RFC 7523 §3 rule 7): a replayed
/// assertion fails like any other, one conditional write settling concurrent replays. A
/// client registered by `jwks_uri` is checked against its fetched keys, and once more against
/// a new copy when they verify nothing (it may have rotated).
pub async fn authenticate<'c, S: AssertionReplays>(
    store: &S,
    client_jwks: &ClientJwks,
    record: Option<&'c Client>,
    credentials: &ClientCredentials,
    presentation: Presentation<'_>,
) -> Result<&'c Client, OAuthError> {
    let jwks_uri = record
        .and_then(|client| client.jwks_uri.as_deref())
        .filter(|_| credentials.assertion.is_some());
    let authenticated = match jwks_uri {
        None => authenticate_client(record, credentials, presentation)?,
        Some(uri) => {
            let now = presentation.now;
            let kept = client_jwks.keys(uri, now).await;
            let with = |jwks: Option<&str>| {
                let presentation = Presentation {
                    fetched_jwks: jwks,
                    ..presentation
                };
                authenticate_client(record, credentials, presentation)
            };
            match with(kept.as_deref()) {
                Ok(authenticated) => authenticated,
                Err(failure) => match client_jwks.refreshed(uri, now).await {
                    Some(fresh) => with(Some(&fresh))?,
                    None => return Err(failure),
                },
            }
        }
    };
    if let Some(assertion) = &authenticated.assertion {
        let key = keys::assertion(&authenticated.client.client_id, &assertion.jti);
        let leeway = crate::tokens::verify::LEEWAY_SECONDS as i64;
        if !store
            .first_use(&key, assertion.exp + leeway, presentation.now)
            .await?
        {
            return Err(OAuthError::InvalidClient {
                basic_challenge: false,
            });
        }
    }
    Ok(authenticated.client)
}

pub fn authenticate_client<'c>(
    record: Option<&'c Client>,
    credentials: &ClientCredentials,
    presentation: Presentation<'_>,
) -> Result<Authenticated<'c>, OAuthError> {
    let Presentation { api_key, now, .. } = presentation;
    let failure = OAuthError::InvalidClient {
        basic_challenge: credentials.via_basic,
    };
    if let Some(assertion) = &credentials.assertion {
        return authenticate_assertion(record, credentials, assertion, presentation);
    }
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
    // wrong-secret answer after the same work. A public client has no secret to match, nor a
    // private_key_jwt client.
    let method_ok = match record {
        Some(client) => {
            client.public == credentials.secretless && !client.authenticates_by_assertion()
        }
        None => false,
    };
    let authenticated = if credentials.secretless {
        method_ok
    } else {
        bool::from(secret_ok & api_key_ok) && method_ok
    };
    match record {
        Some(client) if authenticated && client.enabled => Ok(Authenticated {
            client,
            assertion: None,
        }),
        _ => Err(failure),
    }
}

/// private_key_jwt: the client's registered keys, its API key when it requires one.
fn authenticate_assertion<'c>(
    record: Option<&'c Client>,
    credentials: &ClientCredentials,
    assertion: &str,
    presentation: Presentation<'_>,
) -> Result<Authenticated<'c>, OAuthError> {
    let failure = OAuthError::InvalidClient {
        basic_challenge: false,
    };
    let client = record.filter(|c| c.enabled).ok_or(failure)?;
    let jwks = match &client.jwks_uri {
        Some(_) => presentation.fetched_jwks,
        None => client.jwks.as_deref(),
    }
    .ok_or(failure)?;
    if let Some(stored) = client.api_key_sha256.as_deref() {
        let sent = presentation.api_key.map(|k| sha256_b64(k.as_bytes()));
        if !sent.is_some_and(|sent| bool::from(digest_matches(&sent, stored))) {
            return Err(failure);
        }
    }
    let verified = client_assertion::verify(
        assertion,
        &credentials.client_id,
        jwks,
        presentation.audiences,
        presentation.now,
    )
    .ok_or(failure)?;
    Ok(Authenticated {
        client,
        assertion: Some(verified),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(api_key: Option<&str>, now: i64) -> Presentation<'_> {
        Presentation {
            api_key,
            audiences: &[],
            now,
            fetched_jwks: None,
        }
    }

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
            assertion: None,
        }
    }

    fn client_id_only(id: &str) -> ClientCredentials {
        ClientCredentials {
            client_id: id.into(),
            client_secret: String::new(),
            via_basic: false,
            secretless: true,
            assertion: None,
        }
    }

    #[test]
    fn a_client_id_alone_authenticates_only_a_public_client() {
        let mut public = client("spa", "unused");
        public.public = true;
        public.secrets.clear();
        assert!(authenticate_client(Some(&public), &client_id_only("spa"), at(None, 0)).is_ok());
        let confidential = client("c1", "s3cret");
        let refused = authenticate_client(Some(&confidential), &client_id_only("c1"), at(None, 0));
        assert_eq!(
            refused.unwrap_err(),
            OAuthError::InvalidClient {
                basic_challenge: false
            }
        );
        assert!(authenticate_client(None, &client_id_only("nobody"), at(None, 0)).is_err());
        // A public client cannot be made confidential by sending a secret.
        assert!(authenticate_client(Some(&public), &creds("spa", ""), at(None, 0)).is_err());
        let mut disabled = public.clone();
        disabled.enabled = false;
        assert!(authenticate_client(Some(&disabled), &client_id_only("spa"), at(None, 0)).is_err());
    }

    #[test]
    fn right_secret_authenticates() {
        let c = client("c1", "s3cret");
        assert!(authenticate_client(Some(&c), &creds("c1", "s3cret"), at(None, 0)).is_ok());
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
            authenticate_client(None, &creds("nobody", "s3cret"), at(None, 0)),
            authenticate_client(Some(&plain), &creds("c1", "wrong"), at(None, 0)),
            authenticate_client(Some(&disabled), &creds("c1", "s3cret"), at(None, 0)),
            authenticate_client(Some(&with_key), &creds("c1", "s3cret"), at(None, 0)),
            authenticate_client(Some(&with_key), &creds("c1", "s3cret"), at(Some("nope"), 0)),
        ];
        for case in cases {
            assert_eq!(case.unwrap_err(), expected);
        }
        assert!(
            authenticate_client(Some(&with_key), &creds("c1", "s3cret"), at(Some("key"), 0))
                .is_ok()
        );
    }

    #[test]
    fn an_expired_grace_secret_no_longer_works() {
        let mut c = client("c1", "new");
        c.secrets.push(StoredSecret {
            sha256: sha256_b64(b"old"),
            expires_at: Some(100),
        });
        assert!(authenticate_client(Some(&c), &creds("c1", "old"), at(None, 99)).is_ok());
        assert!(authenticate_client(Some(&c), &creds("c1", "old"), at(None, 100)).is_err());
        assert!(authenticate_client(Some(&c), &creds("c1", "new"), at(None, 100)).is_ok());
    }
}
