//! In-memory adapter for unit tests and in-process benchmarks: the DynamoDB adapter's
//! semantics (conditional rotation, refused family-id collisions, counter windows), none of its
//! I/O. Test set-up (`put_client`, `put_user`) overwrites, as an administrator would.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use super::{
    Account, AssertionReplays, AuthorizationCode, AuthorizationCodes, BrowserSession, Client,
    ClientDirectory, Consent, Counted, FailureCounter, FailureCounters, Found, LoginDirectory,
    LoginRecords, LoginTransaction, PushedRequest, PushedRequests, Redemption, RefreshFamilies,
    RefreshFamily, Revocations, RevokedToken, Rotation, SignInRecords, TokenRecords, User, Wanted,
};
use crate::error::StoreError;

/// Clones share one set of records (a token and a tokeninfo service over the same "table").
#[derive(Default, Clone)]
pub struct MemoryStore {
    records: Arc<Records>,
}

#[derive(Default)]
struct Records {
    clients: Mutex<HashMap<String, Client>>,
    users: Mutex<HashMap<String, User>>,
    accounts: Mutex<HashMap<String, Account>>,
    families: Mutex<HashMap<String, RefreshFamily>>,
    failures: Mutex<HashMap<String, FailureCounter>>,
    revoked: Mutex<HashMap<String, RevokedToken>>,
    codes: Mutex<HashMap<String, AuthorizationCode>>,
    transactions: Mutex<HashMap<String, LoginTransaction>>,
    sessions: Mutex<HashMap<String, BrowserSession>>,
    consents: Mutex<HashMap<(String, String), Consent>>,
    /// Used client assertions: key to expiry.
    assertions: Mutex<HashMap<String, i64>>,
    pushed: Mutex<HashMap<String, PushedRequest>>,
}

fn lock<T>(mutex: &Mutex<T>) -> Result<MutexGuard<'_, T>, StoreError> {
    mutex
        .lock()
        .map_err(|_| StoreError::Unavailable("memory store lock poisoned".into()))
}

impl MemoryStore {
    pub fn put_client(&self, client: Client) {
        if let Ok(mut clients) = lock(&self.records.clients) {
            clients.insert(client.client_id.clone(), client);
        }
    }

    pub fn remove_client(&self, client_id: &str) {
        if let Ok(mut clients) = lock(&self.records.clients) {
            clients.remove(client_id);
        }
    }

    /// Stores the login record and the account, as `oauthctl` does.
    pub fn put_user(&self, user: User) {
        if let (Ok(mut users), Ok(mut accounts)) =
            (lock(&self.records.users), lock(&self.records.accounts))
        {
            accounts.insert(user.user_id.clone(), user.account());
            users.insert(user.username.clone(), user);
        }
    }

    pub fn remove_user(&self, username: &str) {
        if let (Ok(mut users), Ok(mut accounts)) =
            (lock(&self.records.users), lock(&self.records.accounts))
            && let Some(user) = users.remove(username)
        {
            accounts.remove(&user.user_id);
        }
    }

    pub fn family_snapshot(&self, family_id: &str) -> Option<RefreshFamily> {
        lock(&self.records.families).ok()?.get(family_id).cloned()
    }

    pub fn remove_family(&self, family_id: &str) {
        if let Ok(mut families) = lock(&self.records.families) {
            families.remove(family_id);
        }
    }

    /// The count recorded for `counted` (0 without a counter), whatever its window.
    pub fn failures_recorded(&self, counted: Counted<'_>) -> u32 {
        lock(&self.records.failures)
            .ok()
            .and_then(|counters| counters.get(&counted.key()).map(|c| c.failures))
            .unwrap_or(0)
    }
}

impl ClientDirectory for MemoryStore {
    async fn client(&self, client_id: &str) -> Result<Option<Client>, StoreError> {
        Ok(lock(&self.records.clients)?.get(client_id).cloned())
    }
}

impl LoginDirectory for MemoryStore {
    async fn login_records(
        &self,
        client_id: Option<&str>,
        username: Option<&str>,
    ) -> Result<LoginRecords, StoreError> {
        let clients = lock(&self.records.clients)?;
        let users = lock(&self.records.users)?;
        let failures = lock(&self.records.failures)?;
        Ok(LoginRecords {
            client: client_id.and_then(|id| clients.get(id).cloned()),
            user: username.and_then(|name| users.get(name).cloned()),
            user_failures: username
                .and_then(|name| failures.get(&Counted::User(name).key()).cloned()),
        })
    }
}

impl TokenRecords for MemoryStore {
    async fn read(&self, wanted: Wanted<'_>) -> Result<Found, StoreError> {
        Ok(Found {
            client: wanted
                .client
                .and_then(|id| lock(&self.records.clients).ok()?.get(id).cloned()),
            account: wanted
                .account
                .and_then(|id| lock(&self.records.accounts).ok()?.get(id).cloned()),
            family: wanted.family.and_then(|id| self.family_snapshot(id)),
            jti_revoked: wanted
                .revoked_jti
                .is_some_and(|jti| lock(&self.records.revoked).is_ok_and(|r| r.contains_key(jti))),
            transaction: wanted
                .transaction
                .and_then(|id| lock(&self.records.transactions).ok()?.get(id).cloned()),
            session: wanted
                .session
                .and_then(|id| lock(&self.records.sessions).ok()?.get(id).cloned()),
            consent: wanted.consent.and_then(|(user, client)| {
                lock(&self.records.consents)
                    .ok()?
                    .get(&(user.to_owned(), client.to_owned()))
                    .cloned()
            }),
            user: wanted
                .login
                .and_then(|name| lock(&self.records.users).ok()?.get(name).cloned()),
            user_failures: wanted.login.and_then(|name| {
                lock(&self.records.failures)
                    .ok()?
                    .get(&Counted::User(name).key())
                    .cloned()
            }),
        })
    }
}

impl FailureCounters for MemoryStore {
    async fn increment(
        &self,
        counted: Counted<'_>,
        now: i64,
        window: i64,
        _seen_live: bool,
    ) -> Result<u32, StoreError> {
        let mut counters = lock(&self.records.failures)?;
        let counter = counters.entry(counted.key()).or_default();
        if counter.window_end <= now {
            counter.failures = 0;
        }
        counter.failures += 1;
        counter.window_end = now + window;
        Ok(counter.failures)
    }

    async fn clear_failures(&self, counted: Counted<'_>) -> Result<(), StoreError> {
        if let Some(counter) = lock(&self.records.failures)?.get_mut(&counted.key()) {
            counter.failures = 0;
        }
        Ok(())
    }
}

impl RefreshFamilies for MemoryStore {
    async fn create_family(
        &self,
        family: &RefreshFamily,
        _retain_until: i64,
    ) -> Result<(), StoreError> {
        let mut families = lock(&self.records.families)?;
        if families.contains_key(&family.family_id) {
            return Err(StoreError::Corrupt("refresh family id collision".into()));
        }
        families.insert(family.family_id.clone(), family.clone());
        Ok(())
    }

    async fn rotate(
        &self,
        family_id: &str,
        presented_hash: &str,
        new_hash: &str,
        retired: &[String],
        now: i64,
        bind_jkt: Option<&str>,
    ) -> Result<Rotation, StoreError> {
        let mut families = lock(&self.records.families)?;
        match families.get_mut(family_id) {
            Some(f) if f.current_hash == presented_hash && !f.revoked && f.exp > now => {
                f.current_hash = new_hash.to_owned();
                f.retired_hashes = retired.to_vec();
                f.issued_at = now;
                if f.jkt.is_none() {
                    f.jkt = bind_jkt.map(str::to_owned);
                }
                Ok(Rotation::Rotated)
            }
            _ => Ok(Rotation::Rejected),
        }
    }

    async fn bury_family(
        &self,
        family: &RefreshFamily,
        _retain_until: i64,
    ) -> Result<(), StoreError> {
        lock(&self.records.families)?
            .entry(family.family_id.clone())
            .or_insert_with(|| family.clone())
            .revoked = true;
        Ok(())
    }

    async fn revoke_family(&self, family_id: &str) -> Result<(), StoreError> {
        if let Some(f) = lock(&self.records.families)?.get_mut(family_id) {
            f.revoked = true;
        }
        Ok(())
    }
}

impl Revocations for MemoryStore {
    async fn revoke_access_token(&self, jti: &str, exp: i64) -> Result<(), StoreError> {
        lock(&self.records.revoked)?.insert(
            jti.to_owned(),
            RevokedToken {
                jti: jti.to_owned(),
                exp,
            },
        );
        Ok(())
    }
}

impl AssertionReplays for MemoryStore {
    async fn first_use(&self, key: &str, expires_at: i64, now: i64) -> Result<bool, StoreError> {
        let mut used = lock(&self.records.assertions)?;
        if used.get(key).is_some_and(|exp| *exp >= now) {
            return Ok(false);
        }
        used.insert(key.to_owned(), expires_at);
        Ok(true)
    }
}

impl PushedRequests for MemoryStore {
    async fn push_request(&self, request: &PushedRequest) -> Result<(), StoreError> {
        let mut pushed = lock(&self.records.pushed)?;
        if pushed.contains_key(&request.reference_hash) {
            return Err(StoreError::Corrupt("pushed request collision".into()));
        }
        pushed.insert(request.reference_hash.clone(), request.clone());
        Ok(())
    }

    async fn take_request(
        &self,
        reference_hash: &str,
        client_id: &str,
        now: i64,
    ) -> Result<Option<PushedRequest>, StoreError> {
        let mut pushed = lock(&self.records.pushed)?;
        let takeable = pushed
            .get(reference_hash)
            .is_some_and(|r| r.client_id == client_id && r.exp > now);
        Ok(takeable.then(|| pushed.remove(reference_hash)).flatten())
    }
}

impl AuthorizationCodes for MemoryStore {
    async fn store_code(&self, code: &AuthorizationCode) -> Result<(), StoreError> {
        let mut codes = lock(&self.records.codes)?;
        if codes.contains_key(&code.code_hash) {
            return Err(StoreError::Corrupt("authorization code collision".into()));
        }
        codes.insert(code.code_hash.clone(), code.clone());
        Ok(())
    }

    async fn redeem_code(&self, code_hash: &str, now: i64) -> Result<Redemption, StoreError> {
        let mut codes = lock(&self.records.codes)?;
        Ok(match codes.get_mut(code_hash) {
            Some(code) if code.consumed_at.is_some() => Redemption::Reused(code.clone()),
            Some(code) if code.exp > now => {
                code.consumed_at = Some(now);
                Redemption::Redeemed(code.clone())
            }
            _ => Redemption::Unusable,
        })
    }
}

impl SignInRecords for MemoryStore {
    async fn put_transaction(&self, transaction: &LoginTransaction) -> Result<(), StoreError> {
        let mut transactions = lock(&self.records.transactions)?;
        if transactions.contains_key(&transaction.id) {
            return Err(StoreError::Corrupt("login transaction id collision".into()));
        }
        transactions.insert(transaction.id.clone(), transaction.clone());
        Ok(())
    }

    async fn finish_transaction(&self, id: &str) -> Result<bool, StoreError> {
        Ok(lock(&self.records.transactions)?.remove(id).is_some())
    }

    async fn put_session(&self, session: &BrowserSession) -> Result<(), StoreError> {
        let mut sessions = lock(&self.records.sessions)?;
        if sessions.contains_key(&session.id_hash) {
            return Err(StoreError::Corrupt("session id collision".into()));
        }
        sessions.insert(session.id_hash.clone(), session.clone());
        Ok(())
    }

    async fn touch_session(&self, id_hash: &str, idle_exp: i64) -> Result<(), StoreError> {
        if let Some(session) = lock(&self.records.sessions)?.get_mut(id_hash) {
            session.idle_exp = idle_exp;
        }
        Ok(())
    }

    async fn add_session_family(&self, id_hash: &str, family_id: &str) -> Result<bool, StoreError> {
        Ok(lock(&self.records.sessions)?
            .get_mut(id_hash)
            .map(|session| session.families.push(family_id.to_owned()))
            .is_some())
    }

    async fn end_session(&self, id_hash: &str) -> Result<Option<BrowserSession>, StoreError> {
        Ok(lock(&self.records.sessions)?.remove(id_hash))
    }

    async fn put_consent(&self, consent: &Consent) -> Result<(), StoreError> {
        lock(&self.records.consents)?.insert(
            (consent.user_id.clone(), consent.client_id.clone()),
            consent.clone(),
        );
        Ok(())
    }
}

/// A secret's versions and staging labels in memory, with Secrets Manager's rules: one
/// version per label, a `ClientRequestToken` names one value for good, and a plain write
/// becomes AWSCURRENT at once.
#[derive(Default, Clone)]
pub struct MemorySecret {
    inner: Arc<Mutex<SecretRecords>>,
}

#[derive(Default)]
struct SecretRecords {
    rotation_enabled: bool,
    /// (version id, value, labels), oldest first.
    versions: Vec<(String, String, Vec<String>)>,
    writes: u64,
}

impl MemorySecret {
    pub fn with_rotation(current: &str) -> Self {
        let secret = Self::default();
        secret.inner.lock().unwrap().rotation_enabled = true;
        secret.put_current(current);
        secret
    }

    /// What `oauthctl` does: a plain `PutSecretValue` (AWSCURRENT moves to it).
    pub fn put_current(&self, text: &str) -> String {
        let mut records = self.inner.lock().unwrap();
        records.writes += 1;
        let id = format!("v{}", records.writes);
        Self::take_label(&mut records, "AWSCURRENT");
        records
            .versions
            .push((id.clone(), text.to_owned(), vec!["AWSCURRENT".into()]));
        id
    }

    pub fn current_text(&self) -> Option<String> {
        let records = self.inner.lock().unwrap();
        records
            .versions
            .iter()
            .find(|(_, _, labels)| labels.iter().any(|l| l == "AWSCURRENT"))
            .map(|(_, text, _)| text.clone())
    }

    fn take_label(records: &mut SecretRecords, label: &str) {
        for (_, _, labels) in &mut records.versions {
            labels.retain(|l| l != label);
        }
    }
}

impl crate::keys::secret_rotation::SecretVersions for MemorySecret {
    async fn stages(&self) -> Result<crate::keys::secret_rotation::SecretStages, StoreError> {
        let records = lock(&self.inner)?;
        Ok(crate::keys::secret_rotation::SecretStages {
            rotation_enabled: records.rotation_enabled,
            versions: records
                .versions
                .iter()
                .map(|(id, _, labels)| (id.clone(), labels.clone()))
                .collect(),
        })
    }

    async fn at_stage(
        &self,
        stage: &str,
    ) -> Result<Option<crate::keys::secret_rotation::SecretVersion>, StoreError> {
        Ok(lock(&self.inner)?
            .versions
            .iter()
            .find(|(_, _, labels)| labels.iter().any(|l| l == stage))
            .map(
                |(id, text, _)| crate::keys::secret_rotation::SecretVersion {
                    version_id: id.clone(),
                    text: text.clone(),
                },
            ))
    }

    async fn pending(&self, version_id: &str) -> Result<Option<String>, StoreError> {
        Ok(lock(&self.inner)?
            .versions
            .iter()
            .find(|(id, _, labels)| id == version_id && labels.iter().any(|l| l == "AWSPENDING"))
            .map(|(_, text, _)| text.clone()))
    }

    async fn put_pending(&self, version_id: &str, text: &str) -> Result<(), StoreError> {
        let mut records = lock(&self.inner)?;
        if let Some((_, existing, _)) = records.versions.iter().find(|(id, _, _)| id == version_id)
        {
            // Secrets Manager: the same token with another value is refused.
            return if existing == text {
                Ok(())
            } else {
                Err(StoreError::Unavailable(
                    "PutSecretValue: ResourceExistsException".into(),
                ))
            };
        }
        Self::take_label(&mut records, "AWSPENDING");
        records.versions.push((
            version_id.to_owned(),
            text.to_owned(),
            vec!["AWSPENDING".into()],
        ));
        Ok(())
    }

    async fn make_current(&self, to: &str, from: &str) -> Result<(), StoreError> {
        let mut records = lock(&self.inner)?;
        let current_is_from = records
            .versions
            .iter()
            .any(|(id, _, labels)| id == from && labels.iter().any(|l| l == "AWSCURRENT"));
        if !current_is_from || !records.versions.iter().any(|(id, _, _)| id == to) {
            return Err(StoreError::Unavailable(
                "UpdateSecretVersionStage: InvalidParameterException".into(),
            ));
        }
        Self::take_label(&mut records, "AWSCURRENT");
        for (id, _, labels) in &mut records.versions {
            if id == to {
                labels.push("AWSCURRENT".into());
            }
        }
        Ok(())
    }
}
