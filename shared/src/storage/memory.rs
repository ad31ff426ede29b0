//! In-memory adapter for unit tests and in-process benchmarks. Same semantics as the DynamoDB
//! adapter (conditional rotation included), none of its I/O.

use std::collections::HashMap;
use std::sync::Mutex;

use super::{
    AccessTokenState, Client, ClientDirectory, Counted, FailureCounter, FailureCounters,
    LoginDirectory, LoginRecords, RefreshFamilies, RefreshFamily, Revocations, RevokedToken,
    Rotation, User, UserDirectory,
};
use crate::error::StoreError;

#[derive(Default)]
pub struct MemoryStore {
    clients: Mutex<HashMap<String, Client>>,
    users: Mutex<HashMap<String, User>>,
    families: Mutex<HashMap<String, RefreshFamily>>,
    failures: Mutex<HashMap<String, FailureCounter>>,
    revoked: Mutex<HashMap<String, RevokedToken>>,
}

fn poisoned<T>(_: T) -> StoreError {
    StoreError::Unavailable("memory store lock poisoned".into())
}

impl MemoryStore {
    pub fn put_client(&self, client: Client) {
        if let Ok(mut clients) = self.clients.lock() {
            clients.insert(client.client_id.clone(), client);
        }
    }

    pub fn put_user(&self, user: User) {
        if let Ok(mut users) = self.users.lock() {
            users.insert(user.username.clone(), user);
        }
    }

    pub fn family_snapshot(&self, family_id: &str) -> Option<RefreshFamily> {
        self.families.lock().ok()?.get(family_id).cloned()
    }

    /// Failures recorded for `counted` (0 without a counter), whatever its window.
    pub fn failures_recorded(&self, counted: Counted<'_>) -> u32 {
        self.failures
            .lock()
            .ok()
            .and_then(|counters| counters.get(&counted.key()).map(|c| c.failures))
            .unwrap_or(0)
    }
}

impl ClientDirectory for MemoryStore {
    async fn client(&self, client_id: &str) -> Result<Option<Client>, StoreError> {
        Ok(self
            .clients
            .lock()
            .map_err(poisoned)?
            .get(client_id)
            .cloned())
    }
}

impl UserDirectory for MemoryStore {
    async fn user(&self, username: &str) -> Result<Option<User>, StoreError> {
        Ok(self.users.lock().map_err(poisoned)?.get(username).cloned())
    }
}

impl LoginDirectory for MemoryStore {
    async fn login_records(
        &self,
        client_id: &str,
        username: &str,
    ) -> Result<LoginRecords, StoreError> {
        Ok(LoginRecords {
            client: self
                .clients
                .lock()
                .map_err(poisoned)?
                .get(client_id)
                .cloned(),
            user: self.users.lock().map_err(poisoned)?.get(username).cloned(),
            user_failures: self
                .failures
                .lock()
                .map_err(poisoned)?
                .get(&Counted::User(username).key())
                .cloned(),
        })
    }
}

impl FailureCounters for MemoryStore {
    async fn record_failure(
        &self,
        counted: Counted<'_>,
        now: i64,
        window: i64,
        _seen_live: bool,
    ) -> Result<u32, StoreError> {
        let mut counters = self.failures.lock().map_err(poisoned)?;
        let counter = counters.entry(counted.key()).or_default();
        if counter.window_end <= now {
            *counter = FailureCounter {
                failures: 0,
                window_end: now + window,
            };
        }
        counter.failures += 1;
        counter.window_end = now + window;
        Ok(counter.failures)
    }

    async fn clear_failures(&self, counted: Counted<'_>) -> Result<(), StoreError> {
        self.failures
            .lock()
            .map_err(poisoned)?
            .remove(&counted.key());
        Ok(())
    }
}

impl RefreshFamilies for MemoryStore {
    async fn create_family(&self, family: &RefreshFamily) -> Result<(), StoreError> {
        self.families
            .lock()
            .map_err(poisoned)?
            .insert(family.family_id.clone(), family.clone());
        Ok(())
    }

    async fn family_and_client(
        &self,
        family_id: &str,
        client_id: &str,
    ) -> Result<(Option<RefreshFamily>, Option<Client>), StoreError> {
        Ok((
            self.families
                .lock()
                .map_err(poisoned)?
                .get(family_id)
                .cloned(),
            self.clients
                .lock()
                .map_err(poisoned)?
                .get(client_id)
                .cloned(),
        ))
    }

    async fn rotate(
        &self,
        family_id: &str,
        presented_hash: &str,
        new_hash: &str,
        now: i64,
    ) -> Result<Rotation, StoreError> {
        let mut families = self.families.lock().map_err(poisoned)?;
        match families.get_mut(family_id) {
            Some(f) if f.current_hash == presented_hash && !f.revoked && f.exp > now => {
                f.current_hash = new_hash.to_owned();
                Ok(Rotation::Rotated)
            }
            _ => Ok(Rotation::Rejected),
        }
    }

    async fn revoke_family(&self, family_id: &str) -> Result<(), StoreError> {
        if let Some(f) = self.families.lock().map_err(poisoned)?.get_mut(family_id) {
            f.revoked = true;
        }
        Ok(())
    }
}

impl Revocations for MemoryStore {
    async fn access_token_state(
        &self,
        jti: &str,
        sid: Option<&str>,
    ) -> Result<AccessTokenState, StoreError> {
        Ok(AccessTokenState {
            jti_revoked: self.revoked.lock().map_err(poisoned)?.contains_key(jti),
            family: sid.and_then(|sid| self.family_snapshot(sid)),
        })
    }

    async fn revoke_access_token(&self, jti: &str, exp: i64) -> Result<(), StoreError> {
        self.revoked.lock().map_err(poisoned)?.insert(
            jti.to_owned(),
            RevokedToken {
                jti: jti.to_owned(),
                exp,
            },
        );
        Ok(())
    }

    async fn family(&self, family_id: &str) -> Result<Option<RefreshFamily>, StoreError> {
        Ok(self
            .families
            .lock()
            .map_err(poisoned)?
            .get(family_id)
            .cloned())
    }
}
