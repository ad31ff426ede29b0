//! Opt-in cache of client records for the client_credentials grant (`CLIENT_CACHE_SECONDS`,
//! default 0: every token reads its client). A warm function then signs machine tokens with no
//! storage call at all, which takes the one hot read (`client#<id>`, one partition per client)
//! off DynamoDB.
//!
//! The price is staleness, bounded by the setting: disabling or deleting a client, or removing
//! one of its secrets, takes up to that long to reach a warm instance. A refusal is never
//! answered from the cache: the record is read again first, so a newly added secret works at
//! once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::error::StoreError;
use crate::storage::{Client, ClientDirectory, presented_client};

/// Entries a warm instance keeps. Only records that exist are cached, and only once they
/// authenticated a request, so the bound is never reached by guessing client ids.
const MAX_ENTRIES: usize = 1024;

pub struct ClientCache {
    ttl_seconds: i64,
    entries: Mutex<HashMap<String, (Arc<Client>, i64)>>,
}

/// Where a client record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Cache,
    Store,
}

impl ClientCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl_seconds: ttl.as_secs() as i64,
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub fn enabled(&self) -> bool {
        self.ttl_seconds > 0
    }

    /// The record of `client_id`: from the cache while it is younger than the setting, else
    /// read from `store`.
    pub async fn client<S: ClientDirectory>(
        &self,
        store: &S,
        client_id: &str,
        now: i64,
    ) -> Result<(Option<Arc<Client>>, Source), StoreError> {
        if let Some(hit) = self.cached(client_id, now) {
            return Ok((Some(hit), Source::Cache));
        }
        self.read(store, client_id).await
    }

    /// Reads the record from `store`, bypassing (and not filling) the cache.
    pub async fn read<S: ClientDirectory>(
        &self,
        store: &S,
        client_id: &str,
    ) -> Result<(Option<Arc<Client>>, Source), StoreError> {
        let record = presented_client(store, client_id).await?;
        Ok((record.map(Arc::new), Source::Store))
    }

    /// Keeps a record that just authenticated a request.
    pub fn keep(&self, client: &Arc<Client>, now: i64) {
        if !self.enabled() {
            return;
        }
        let mut entries = self.lock();
        if entries.len() >= MAX_ENTRIES && !entries.contains_key(&client.client_id) {
            let ttl = self.ttl_seconds;
            entries.retain(|_, (_, fetched)| now - *fetched < ttl);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(client.client_id.clone(), (Arc::clone(client), now));
    }

    /// Drops a record that failed to authenticate a request.
    pub fn forget(&self, client_id: &str) {
        if self.enabled() {
            self.lock().remove(client_id);
        }
    }

    fn cached(&self, client_id: &str, now: i64) -> Option<Arc<Client>> {
        if !self.enabled() {
            return None;
        }
        let entries = self.lock();
        let (client, fetched) = entries.get(client_id)?;
        (now - fetched < self.ttl_seconds).then(|| Arc::clone(client))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Arc<Client>, i64)>> {
        // A panic while holding the lock leaves a map that is still valid.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::GrantType;
    use crate::storage::memory::MemoryStore;
    use crate::testing::client;

    async fn fetch(cache: &ClientCache, store: &MemoryStore, now: i64) -> Option<Source> {
        let (record, source) = cache.client(store, "svc", now).await.unwrap();
        if let (Some(record), Source::Store) = (&record, source) {
            cache.keep(record, now);
        }
        record.map(|_| source)
    }

    fn store() -> MemoryStore {
        let store = MemoryStore::default();
        store.put_client(client("svc", &[GrantType::ClientCredentials]));
        store
    }

    #[tokio::test]
    async fn a_kept_record_serves_until_the_setting_has_passed() {
        let (cache, store) = (ClientCache::new(Duration::from_secs(60)), store());
        assert_eq!(fetch(&cache, &store, 1000).await, Some(Source::Store));
        assert_eq!(fetch(&cache, &store, 1059).await, Some(Source::Cache));
        assert_eq!(fetch(&cache, &store, 1060).await, Some(Source::Store));
        store.remove_client("svc");
        assert_eq!(fetch(&cache, &store, 1061).await, Some(Source::Cache));
        cache.forget("svc");
        assert_eq!(fetch(&cache, &store, 1062).await, None);
    }

    #[tokio::test]
    async fn zero_seconds_keeps_nothing() {
        let (cache, store) = (ClientCache::new(Duration::ZERO), store());
        assert_eq!(fetch(&cache, &store, 1000).await, Some(Source::Store));
        assert_eq!(fetch(&cache, &store, 1000).await, Some(Source::Store));
        assert!(cache.lock().is_empty());
    }

    #[test]
    fn the_cache_stays_bounded() {
        let cache = ClientCache::new(Duration::from_secs(60));
        for i in 0..MAX_ENTRIES + 10 {
            let record = Arc::new(client(&format!("c{i}"), &[GrantType::ClientCredentials]));
            cache.keep(&record, 1000 + i as i64 / 100);
        }
        assert!(cache.lock().len() <= MAX_ENTRIES);
    }
}
