//! Key-set cache: one read of the secret per `KEY_CACHE_SECONDS`, parsed once per read.

use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use super::{KeySet, KeySetDocument};
use crate::error::StoreError;

/// Port: where the key-set document comes from (Secrets Manager in production).
pub trait KeySource: Send + Sync {
    /// The secret's current text, `None` when the secret is missing or empty.
    fn load(&self) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;
}

/// After a failed refresh with a usable stale set, wait this long before trying again.
const RETRY_STALE_AFTER: Duration = Duration::from_secs(10);

struct Snapshot {
    set: Arc<KeySet>,
    fresh_until: Instant,
    /// An unknown `kid` may force one early re-read per period, no more.
    early_reload_used: bool,
}

pub struct KeyCache<K> {
    source: K,
    ttl: Duration,
    snapshot: RwLock<Option<Snapshot>>,
    reload: tokio::sync::Mutex<()>,
}

impl<K: KeySource> KeyCache<K> {
    pub fn new(source: K, ttl: Duration) -> Self {
        Self {
            source,
            ttl,
            snapshot: RwLock::new(None),
            reload: tokio::sync::Mutex::new(()),
        }
    }

    pub fn source(&self) -> &K {
        &self.source
    }

    /// The current key set, re-read when older than the cache period. A failed re-read keeps
    /// serving the previous set (keys change rarely; availability matters more).
    pub async fn current(&self) -> Result<Arc<KeySet>, StoreError> {
        if let Some(set) = self.fresh() {
            return Ok(set);
        }
        let _guard = self.reload.lock().await;
        if let Some(set) = self.fresh() {
            return Ok(set);
        }
        self.reload_now(false).await
    }

    /// Called when a token names a `kid` the current set lacks: re-reads at most once per period,
    /// so a flood of made-up kids cannot turn into a flood of Secrets Manager calls.
    pub async fn refresh_for_unknown_kid(&self) -> Result<Option<Arc<KeySet>>, StoreError> {
        let _guard = self.reload.lock().await;
        let already_used = self
            .snapshot
            .read()
            .map(|s| s.as_ref().is_some_and(|s| s.early_reload_used))
            .unwrap_or(true);
        if already_used {
            return Ok(None);
        }
        self.reload_now(true).await.map(Some)
    }

    fn fresh(&self) -> Option<Arc<KeySet>> {
        let guard = self.snapshot.read().ok()?;
        let snap = guard.as_ref()?;
        (Instant::now() < snap.fresh_until).then(|| snap.set.clone())
    }

    async fn reload_now(&self, early: bool) -> Result<Arc<KeySet>, StoreError> {
        match self.load_set().await {
            Ok(set) => {
                let set = Arc::new(set);
                if let Ok(mut guard) = self.snapshot.write() {
                    // An early re-read neither extends the period nor grants another early re-read.
                    let (fresh_until, early_reload_used) = match (early, guard.as_ref()) {
                        (true, Some(previous)) => (previous.fresh_until, true),
                        _ => (Instant::now() + self.ttl, early),
                    };
                    *guard = Some(Snapshot {
                        set: set.clone(),
                        fresh_until,
                        early_reload_used,
                    });
                }
                Ok(set)
            }
            Err(err) => {
                let mut guard = self
                    .snapshot
                    .write()
                    .map_err(|_| StoreError::Unavailable("key cache poisoned".into()))?;
                match guard.as_mut() {
                    Some(stale) => {
                        tracing::warn!(error = %err, "key set refresh failed; serving the cached set");
                        if !early {
                            stale.fresh_until = Instant::now() + RETRY_STALE_AFTER;
                        }
                        Ok(stale.set.clone())
                    }
                    None => Err(err),
                }
            }
        }
    }

    async fn load_set(&self) -> Result<KeySet, StoreError> {
        let text = self.source.load().await?.ok_or(StoreError::NoSigningKeys)?;
        let doc = KeySetDocument::parse(&text).map_err(StoreError::Corrupt)?;
        if doc.keys.is_empty() {
            return Err(StoreError::NoSigningKeys);
        }
        KeySet::from_document(&doc).map_err(StoreError::Corrupt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{Alg, KeyStatus, generate_key};
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct CountingSource {
        text: Mutex<Option<String>>,
        loads: AtomicUsize,
    }

    impl KeySource for CountingSource {
        async fn load(&self) -> Result<Option<String>, StoreError> {
            self.loads.fetch_add(1, Ordering::SeqCst);
            Ok(self.text.lock().unwrap().clone())
        }
    }

    fn doc_text() -> String {
        let doc = KeySetDocument {
            keys: vec![generate_key(Alg::Es256, KeyStatus::Active, 0).unwrap()],
            ..KeySetDocument::default()
        };
        serde_json::to_string(&doc).unwrap()
    }

    #[tokio::test]
    async fn reads_once_per_period_and_early_reload_is_limited_to_one() {
        let source = CountingSource {
            text: Mutex::new(Some(doc_text())),
            loads: AtomicUsize::new(0),
        };
        let cache = KeyCache::new(source, Duration::from_secs(300));
        cache.current().await.unwrap();
        cache.current().await.unwrap();
        assert_eq!(cache.source().loads.load(Ordering::SeqCst), 1);
        assert!(cache.refresh_for_unknown_kid().await.unwrap().is_some());
        assert!(cache.refresh_for_unknown_kid().await.unwrap().is_none());
        cache.current().await.unwrap();
        assert_eq!(cache.source().loads.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn empty_secret_is_the_no_signing_keys_error() {
        let source = CountingSource {
            text: Mutex::new(None),
            loads: AtomicUsize::new(0),
        };
        let cache = KeyCache::new(source, Duration::from_secs(300));
        assert!(matches!(
            cache.current().await,
            Err(StoreError::NoSigningKeys)
        ));
        *cache.source().text.lock().unwrap() = Some(r#"{"keys":[]}"#.into());
        assert!(matches!(
            cache.current().await,
            Err(StoreError::NoSigningKeys)
        ));
    }

    #[tokio::test]
    async fn a_failed_refresh_keeps_the_stale_set() {
        let source = CountingSource {
            text: Mutex::new(Some(doc_text())),
            loads: AtomicUsize::new(0),
        };
        let cache = KeyCache::new(source, Duration::from_millis(1));
        cache.current().await.unwrap();
        *cache.source().text.lock().unwrap() = Some("not json".into());
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(cache.current().await.is_ok());
    }
}
