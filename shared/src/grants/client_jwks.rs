//! The keys of a `private_key_jwt` client registered by `jwks_uri` (RFC 7591 §2, OIDC Core
//! §9): fetched through the `JwksFetcher` port, checked like a registered JWKS, and kept by
//! the warm instance, so a token request fetches nothing while the copy is fresh.
//!
//! A client rotates keys by publishing the new one first. An assertion the cached copy cannot
//! verify makes the instance fetch again, at most once per `RETRY_SECONDS` per URI: bad
//! assertions cannot turn into a stream of requests to the client's host. While that host is
//! unreachable, the last good copy keeps serving for up to `STALE_SECONDS`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;

use super::client_assertion::validate_client_jwks;

/// A fetched document is used this long without asking again.
pub const FRESH_SECONDS: i64 = 300;
/// The earliest next fetch after a failed one, or for an assertion the copy did not verify.
pub const RETRY_SECONDS: i64 = 30;
/// How long the last good copy serves while fetches fail.
pub const STALE_SECONDS: i64 = 3600;
/// URIs a warm instance remembers (one per private_key_jwt client that used it).
const MAX_ENTRIES: usize = 256;

/// Why a JWKS could not be had (logged with the URI; never answered to the client).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FetchError(pub String);

/// The outbound port: the body of a GET of a client's `jwks_uri`.
pub trait JwksFetcher: Send + Sync {
    fn fetch<'a>(&'a self, uri: &'a str) -> BoxFuture<'a, Result<String, FetchError>>;
}

/// No outbound HTTP (tests, fuzzing, a function wired without it): every fetch fails.
pub struct NoFetcher;

impl JwksFetcher for NoFetcher {
    fn fetch<'a>(&'a self, _uri: &'a str) -> BoxFuture<'a, Result<String, FetchError>> {
        Box::pin(async { Err(FetchError("this function fetches no jwks_uri".into())) })
    }
}

/// Checks a `jwks_uri` as registered: an absolute `https` URL, or `http` to a loopback host
/// (a local stack). Returns the reason when it is not one.
pub fn validate_jwks_uri(uri: &str) -> Result<(), &'static str> {
    let (scheme, rest) = uri
        .split_once("://")
        .ok_or("a jwks_uri is an absolute https URL")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty() || authority.contains('@') {
        return Err("a jwks_uri names a host and no user information");
    }
    if uri.contains('#') || uri.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("a jwks_uri has no fragment, spaces or control characters");
    }
    match scheme {
        "https" => Ok(()),
        "http" if is_loopback(authority) => Ok(()),
        _ => Err("a jwks_uri is https (http only to a loopback host)"),
    }
}

fn is_loopback(authority: &str) -> bool {
    let host = match authority.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default(),
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[derive(Clone)]
struct Entry {
    /// The last good document, if any.
    jwks: Option<Arc<str>>,
    fetched_at: i64,
    attempted_at: i64,
}

/// The per-instance copies of clients' remote JWKS documents.
pub struct ClientJwks {
    fetcher: Box<dyn JwksFetcher>,
    entries: Mutex<HashMap<String, Entry>>,
}

impl Default for ClientJwks {
    fn default() -> Self {
        Self::new(Box::new(NoFetcher))
    }
}

impl ClientJwks {
    pub fn new(fetcher: Box<dyn JwksFetcher>) -> Self {
        Self {
            fetcher,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The document at `uri`: the kept copy while fresh, else fetched (not more often than
    /// every `RETRY_SECONDS`). `None` when there is no usable document.
    pub async fn keys(&self, uri: &str, now: i64) -> Option<Arc<str>> {
        let entry = self.entry(uri);
        match &entry {
            Some(e) if e.jwks.is_some() && now - e.fetched_at < FRESH_SECONDS => e.jwks.clone(),
            Some(e) if now - e.attempted_at < RETRY_SECONDS => usable(e, now),
            _ => self.fetch(uri, now, entry).await,
        }
    }

    /// A new copy, after the kept one verified nothing (the client may have rotated its
    /// keys): fetched unless the last fetch was under `RETRY_SECONDS` ago. `None` when nothing
    /// new was fetched.
    pub async fn refreshed(&self, uri: &str, now: i64) -> Option<Arc<str>> {
        let entry = self.entry(uri);
        if entry
            .as_ref()
            .is_some_and(|e| now - e.attempted_at < RETRY_SECONDS)
        {
            return None;
        }
        let previous = entry.as_ref().and_then(|e| e.jwks.clone());
        let fetched = self.fetch(uri, now, entry).await?;
        (previous.as_deref() != Some(&*fetched)).then_some(fetched)
    }

    async fn fetch(&self, uri: &str, now: i64, previous: Option<Entry>) -> Option<Arc<str>> {
        let fetched = match validate_jwks_uri(uri) {
            Ok(()) => self.fetcher.fetch(uri).await,
            Err(reason) => Err(FetchError(reason.into())),
        };
        let checked = fetched.and_then(|text| validate_client_jwks(&text).map_err(FetchError));
        let entry = match checked {
            Ok(document) => Entry {
                jwks: Some(document.into()),
                fetched_at: now,
                attempted_at: now,
            },
            Err(error) => {
                tracing::warn!(jwks_uri = uri, %error, "a client's jwks_uri gave no usable keys");
                let stale = previous.filter(|p| now - p.fetched_at < STALE_SECONDS);
                Entry {
                    jwks: stale.as_ref().and_then(|p| p.jwks.clone()),
                    fetched_at: stale.map_or(0, |p| p.fetched_at),
                    attempted_at: now,
                }
            }
        };
        let document = usable(&entry, now);
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= MAX_ENTRIES && !entries.contains_key(uri) {
            entries.clear();
        }
        entries.insert(uri.to_owned(), entry);
        document
    }

    fn entry(&self, uri: &str) -> Option<Entry> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.get(uri).cloned()
    }
}

/// The kept document, unless it is older than `STALE_SECONDS`.
fn usable(entry: &Entry, now: i64) -> Option<Arc<str>> {
    entry
        .jwks
        .clone()
        .filter(|_| now - entry.fetched_at < STALE_SECONDS)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::keys::{Alg, KeySet, KeySetDocument};

    const URI: &str = "https://client.example.com/jwks.json";

    /// Serves whatever `document` holds (an error when empty) and counts the fetches.
    #[derive(Default)]
    struct Scripted {
        document: Mutex<String>,
        fetches: AtomicUsize,
    }

    impl JwksFetcher for Arc<Scripted> {
        fn fetch<'a>(&'a self, _uri: &'a str) -> BoxFuture<'a, Result<String, FetchError>> {
            self.fetches.fetch_add(1, Ordering::SeqCst);
            let document = self.document.lock().unwrap().clone();
            Box::pin(async move {
                if document.is_empty() {
                    Err(FetchError("connection refused".into()))
                } else {
                    Ok(document)
                }
            })
        }
    }

    fn jwks(algs: &[Alg]) -> String {
        let text = crate::testing::key_set(algs).0;
        let set = KeySet::from_document(&KeySetDocument::parse(&text).unwrap()).unwrap();
        validate_client_jwks(set.jwks_json()).unwrap()
    }

    fn cache() -> (Arc<Scripted>, ClientJwks) {
        let script = Arc::new(Scripted::default());
        (script.clone(), ClientJwks::new(Box::new(script)))
    }

    fn serve(script: &Scripted, document: &str) {
        *script.document.lock().unwrap() = document.to_owned();
    }

    #[tokio::test]
    async fn a_fetched_document_is_kept_while_fresh() {
        let (script, cache) = cache();
        let first = jwks(&[Alg::Es256]);
        serve(&script, &first);
        assert_eq!(cache.keys(URI, 0).await.as_deref(), Some(first.as_str()));
        assert_eq!(
            cache.keys(URI, FRESH_SECONDS - 1).await.as_deref(),
            Some(first.as_str())
        );
        assert_eq!(script.fetches.load(Ordering::SeqCst), 1);
        let second = jwks(&[Alg::Rs256]);
        serve(&script, &second);
        assert_eq!(
            cache.keys(URI, FRESH_SECONDS).await.as_deref(),
            Some(second.as_str())
        );
        assert_eq!(script.fetches.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_refresh_is_rate_limited_and_returns_only_a_new_document() {
        let (script, cache) = cache();
        let first = jwks(&[Alg::Es256]);
        serve(&script, &first);
        cache.keys(URI, 0).await.unwrap();
        // Within RETRY_SECONDS of the fetch: nothing is fetched.
        assert_eq!(cache.refreshed(URI, RETRY_SECONDS - 1).await, None);
        assert_eq!(script.fetches.load(Ordering::SeqCst), 1);
        // The same document again is no news.
        assert_eq!(cache.refreshed(URI, RETRY_SECONDS).await, None);
        assert_eq!(script.fetches.load(Ordering::SeqCst), 2);
        let rotated = jwks(&[Alg::Es256, Alg::Rs256]);
        serve(&script, &rotated);
        assert_eq!(cache.refreshed(URI, RETRY_SECONDS + 1).await, None);
        assert_eq!(
            cache.refreshed(URI, 2 * RETRY_SECONDS).await.as_deref(),
            Some(rotated.as_str())
        );
        assert_eq!(
            cache.keys(URI, 2 * RETRY_SECONDS + 1).await.as_deref(),
            Some(rotated.as_str())
        );
    }

    #[tokio::test]
    async fn failures_back_off_and_the_last_good_copy_serves_until_stale() {
        let (script, cache) = cache();
        assert_eq!(cache.keys(URI, 0).await, None);
        assert_eq!(cache.keys(URI, RETRY_SECONDS - 1).await, None);
        assert_eq!(script.fetches.load(Ordering::SeqCst), 1, "backed off");
        let good = jwks(&[Alg::Es256]);
        serve(&script, &good);
        assert_eq!(
            cache.keys(URI, RETRY_SECONDS).await.as_deref(),
            Some(good.as_str())
        );
        serve(&script, "");
        let later = RETRY_SECONDS + FRESH_SECONDS;
        assert_eq!(cache.keys(URI, later).await.as_deref(), Some(good.as_str()));
        assert_eq!(
            cache.keys(URI, RETRY_SECONDS + STALE_SECONDS).await,
            None,
            "too old to serve"
        );
    }

    #[tokio::test]
    async fn a_document_that_is_no_public_jwks_is_refused() {
        let (script, cache) = cache();
        for document in [
            "not json",
            r#"{"keys":[]}"#,
            r#"{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}"#,
        ] {
            serve(&script, document);
            assert_eq!(cache.keys(URI, 0).await, None, "{document}");
            cache.entries.lock().unwrap().clear();
        }
    }

    #[tokio::test]
    async fn an_unusable_uri_is_never_fetched() {
        let (script, cache) = cache();
        serve(&script, &jwks(&[Alg::Es256]));
        for uri in [
            "http://client.example.com/jwks.json",
            "ftp://client.example.com/jwks.json",
            "https://user@client.example.com/jwks.json",
            "https:///jwks.json",
            "client.example.com/jwks.json",
        ] {
            assert_eq!(cache.keys(uri, 0).await, None, "{uri}");
        }
        assert_eq!(script.fetches.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn jwks_uris_are_https_or_loopback_http() {
        for uri in [
            URI,
            "https://client.example.com:8443/keys?v=2",
            "http://127.0.0.1:8080/jwks.json",
            "http://localhost/jwks.json",
            "http://[::1]:9000/jwks",
        ] {
            assert_eq!(validate_jwks_uri(uri), Ok(()), "{uri}");
        }
        for uri in [
            "http://10.0.0.1/jwks.json",
            "http://localhost.example.com/jwks.json",
            "https://client.example.com/jwks.json#keys",
            "https://client.example.com/jw ks.json",
            "/jwks.json",
        ] {
            assert!(validate_jwks_uri(uri).is_err(), "{uri}");
        }
    }
}
