//! DynamoDB adapter (SPEC §7): one table, partition key `pk`, TTL attribute `ttl`.
//!
//! Never relies on TTL deletion (lazy in AWS, absent in moto): expiry is checked on read.
//! Never uses TransactWriteItems: moto's transactions lose writes under concurrency (measured);
//! every race is settled by one conditional UpdateItem.

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_dynamodb::Client as DynamoClient;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, KeysAndAttributes,
    ScalarAttributeType, TimeToLiveSpecification,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::aws::unavailable;
use super::dynamo_http::GetItemClient;
use super::{
    Account, AssertionReplays, AuthorizationCode, AuthorizationCodes, BrowserSession, Client,
    ClientDirectory, Consent, Counted, FailureCounter, FailureCounters, Found, LoginDirectory,
    LoginRecords, LoginTransaction, PushedRequest, PushedRequests, Redemption, RefreshFamilies,
    RefreshFamily, Revocations, RevokedToken, Rotation, SignInRecords, TokenRecords, User, Wanted,
    keys,
};
use crate::error::StoreError;

type Item = HashMap<String, AttributeValue>;

/// Key schema shared by `oauthctl init` and template.yaml (a test compares the two).
pub const PARTITION_KEY: &str = "pk";
pub const TTL_ATTRIBUTE: &str = "ttl";

/// BatchGetItem may return part of a batch as unprocessed under throttling; retry that part a
/// bounded number of times after a jittered backoff (AWS: "retry with exponential backoff"),
/// then give up with 503. The request deadline (`endpoints::REQUEST_DEADLINE`) bounds the sum.
const BATCH_ATTEMPTS: u32 = 4;
const BATCH_BACKOFF_BASE: std::time::Duration = std::time::Duration::from_millis(25);

/// Full-jitter exponential backoff before retry `attempt` (1-based): uniform in
/// `[0, base · 2^(attempt-1)]`, so retries of concurrent requests spread out.
pub(super) fn full_jitter_backoff(base: std::time::Duration, attempt: u32) -> std::time::Duration {
    let ceiling = base * 2u32.pow(attempt.saturating_sub(1));
    let fraction = f64::from(u16::from_le_bytes(crate::crypto::random_bytes::<2>())) / 65535.0;
    ceiling.mul_f64(fraction)
}

#[derive(Clone)]
pub struct DynamoStore {
    client: DynamoClient,
    /// GetItem without the SDK's per-call orchestration (`dynamo_http`); `None`: the SDK.
    reads: Option<Arc<GetItemClient>>,
    table: String,
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn decode<T: DeserializeOwned>(item: Item) -> Result<T, StoreError> {
    serde_dynamo::from_item(item).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn encode<T: Serialize>(pk: String, record: &T, ttl: Option<i64>) -> Result<Item, StoreError> {
    let mut item: Item =
        serde_dynamo::to_item(record).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    item.insert(PARTITION_KEY.to_owned(), s(pk));
    if let Some(ttl) = ttl {
        item.insert(TTL_ATTRIBUTE.to_owned(), n(ttl));
    }
    Ok(item)
}

fn is_conditional_check_failure<E: aws_sdk_dynamodb::error::ProvideErrorMetadata, R>(
    err: &aws_sdk_dynamodb::error::SdkError<E, R>,
) -> bool {
    err.as_service_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == "ConditionalCheckFailedException")
}

impl DynamoStore {
    /// The store on the SDK client alone.
    pub fn new(client: DynamoClient, table: impl Into<String>) -> Self {
        Self {
            client,
            reads: None,
            table: table.into(),
        }
    }

    /// The store the functions use: the SDK client, and GetItem on the direct path wherever
    /// that applies to `sdk` (see `GetItemClient::from_sdk_config`).
    pub async fn from_sdk_config(sdk: &aws_config::SdkConfig, table: impl Into<String>) -> Self {
        let reads = GetItemClient::from_sdk_config(sdk, super::aws::LIMITS).await;
        if reads.is_none() {
            tracing::info!("GetItem through the AWS SDK: the direct path does not apply here");
        }
        Self {
            reads: reads.map(Arc::new),
            ..Self::new(DynamoClient::new(sdk), table)
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    fn key(pk: String) -> Item {
        HashMap::from([(PARTITION_KEY.to_owned(), s(pk))])
    }

    async fn get<T: DeserializeOwned>(
        &self,
        pk: String,
        consistent: bool,
    ) -> Result<Option<T>, StoreError> {
        if let Some(reads) = &self.reads {
            let item = reads
                .get_item(&self.table, PARTITION_KEY, &pk, consistent)
                .await?;
            return item.map(decode).transpose();
        }
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(pk)))
            .consistent_read(consistent)
            .send()
            .await
            .map_err(unavailable("GetItem"))?;
        out.item.map(decode).transpose()
    }

    /// One BatchGetItem for distinct keys; returns the items found, by `pk`. No keys, no call.
    async fn batch_get(
        &self,
        pks: Vec<String>,
        consistent: bool,
    ) -> Result<HashMap<String, Item>, StoreError> {
        let mut found = HashMap::new();
        if pks.is_empty() {
            return Ok(found);
        }
        let mut request = KeysAndAttributes::builder()
            .set_keys(Some(pks.into_iter().map(Self::key).collect()))
            .consistent_read(consistent)
            .build()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        for attempt in 0..BATCH_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(full_jitter_backoff(BATCH_BACKOFF_BASE, attempt)).await;
            }
            let out = self
                .client
                .batch_get_item()
                .request_items(&self.table, request)
                .send()
                .await
                .map_err(unavailable("BatchGetItem"))?;
            for item in out
                .responses
                .and_then(|mut r| r.remove(&self.table))
                .unwrap_or_default()
            {
                if let Some(AttributeValue::S(pk)) = item.get(PARTITION_KEY) {
                    found.insert(pk.clone(), item);
                }
            }
            match out.unprocessed_keys.and_then(|mut u| u.remove(&self.table)) {
                Some(rest) if !rest.keys.is_empty() => request = rest,
                _ => return Ok(found),
            }
        }
        Err(StoreError::Unavailable(
            "BatchGetItem: keys left unprocessed".into(),
        ))
    }

    async fn put<T: Serialize>(
        &self,
        pk: String,
        record: &T,
        ttl: Option<i64>,
        only_new: bool,
    ) -> Result<bool, StoreError> {
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(encode(pk, record, ttl)?));
        if only_new {
            put = put.condition_expression("attribute_not_exists(pk)");
        }
        match put.send().await {
            Ok(_) => Ok(true),
            Err(e) if only_new && is_conditional_check_failure(&e) => Ok(false),
            Err(e) => Err(unavailable("PutItem")(e)),
        }
    }

    /// A new record under a random key, kept until `ttl`: an existing one is a collision of
    /// 128+ random bits, never overwritten.
    async fn put_new<T: Serialize>(
        &self,
        pk: String,
        record: &T,
        ttl: i64,
        what: &str,
    ) -> Result<(), StoreError> {
        if self.put(pk, record, Some(ttl), true).await? {
            Ok(())
        } else {
            Err(StoreError::Corrupt(format!("{what} id collision")))
        }
    }

    /// One conditional write on a failure counter. `live`: add one to a counter whose window is
    /// still open; otherwise start one at one where there is none or its window has ended.
    /// `None` when the condition did not hold (the other write applies).
    async fn write_counter(
        &self,
        pk: &str,
        now: i64,
        window_end: i64,
        live: bool,
    ) -> Result<Option<u32>, StoreError> {
        let (update, condition) = if live {
            (
                "SET window_end = :end, #ttl = :end ADD failures :one",
                "window_end > :now",
            )
        } else {
            (
                "SET window_end = :end, #ttl = :end, failures = :one",
                "attribute_not_exists(pk) OR window_end <= :now",
            )
        };
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(pk.to_owned())))
            .update_expression(update)
            .condition_expression(condition)
            .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
            .expression_attribute_values(":end", n(window_end))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":now", n(now))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedNew)
            .send()
            .await;
        match result {
            Ok(out) => {
                let counter: Option<FailureCounter> = out.attributes.map(decode).transpose()?;
                Ok(Some(counter.map_or(1, |c| c.failures)))
            }
            Err(e) if is_conditional_check_failure(&e) => Ok(None),
            Err(e) => Err(unavailable("UpdateItem")(e)),
        }
    }

    // ---- administration (oauthctl) --------------------------------------------------------

    /// Creates the table (on-demand, `pk` only, TTL on `ttl`) unless it exists; idempotent.
    pub async fn create_table_if_missing(&self) -> Result<bool, StoreError> {
        let exists = match self
            .client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
        {
            Ok(_) => true,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                false
            }
            Err(e) => return Err(unavailable("DescribeTable")(e)),
        };
        if !exists {
            let build_err =
                |e: aws_sdk_dynamodb::error::BuildError| StoreError::Corrupt(e.to_string());
            self.client
                .create_table()
                .table_name(&self.table)
                .billing_mode(BillingMode::PayPerRequest)
                .attribute_definitions(
                    AttributeDefinition::builder()
                        .attribute_name(PARTITION_KEY)
                        .attribute_type(ScalarAttributeType::S)
                        .build()
                        .map_err(build_err)?,
                )
                .key_schema(
                    KeySchemaElement::builder()
                        .attribute_name(PARTITION_KEY)
                        .key_type(KeyType::Hash)
                        .build()
                        .map_err(build_err)?,
                )
                .send()
                .await
                .map_err(unavailable("CreateTable"))?;
            // Real DynamoDB refuses UpdateTimeToLive while the table is CREATING.
            self.wait_until_active().await?;
        }
        let ttl = self
            .client
            .describe_time_to_live()
            .table_name(&self.table)
            .send()
            .await
            .map_err(unavailable("DescribeTimeToLive"))?;
        let ttl_on = ttl
            .time_to_live_description()
            .and_then(|d| d.attribute_name())
            .is_some_and(|name| name == TTL_ATTRIBUTE);
        if !ttl_on {
            self.client
                .update_time_to_live()
                .table_name(&self.table)
                .time_to_live_specification(
                    TimeToLiveSpecification::builder()
                        .attribute_name(TTL_ATTRIBUTE)
                        .enabled(true)
                        .build()
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                )
                .send()
                .await
                .map_err(unavailable("UpdateTimeToLive"))?;
        }
        Ok(!exists)
    }

    async fn wait_until_active(&self) -> Result<(), StoreError> {
        const POLL: std::time::Duration = std::time::Duration::from_secs(1);
        const ATTEMPTS: u32 = 300;
        for _ in 0..ATTEMPTS {
            let out = self
                .client
                .describe_table()
                .table_name(&self.table)
                .send()
                .await
                .map_err(unavailable("DescribeTable"))?;
            let status = out.table().and_then(|t| t.table_status());
            if status == Some(&aws_sdk_dynamodb::types::TableStatus::Active) {
                return Ok(());
            }
            tokio::time::sleep(POLL).await;
        }
        Err(StoreError::Unavailable(
            "the table did not become ACTIVE within 5 minutes".into(),
        ))
    }

    /// Stores a client; with `only_new`, refuses to overwrite an existing id (returns false).
    pub async fn put_client(&self, client: &Client, only_new: bool) -> Result<bool, StoreError> {
        self.put(keys::client(&client.client_id), client, None, only_new)
            .await
    }

    /// The login record of `username` (strongly consistent).
    pub async fn user(&self, username: &str) -> Result<Option<User>, StoreError> {
        self.get(keys::user(username), true).await
    }

    /// Stores a user's two records: the login record `user#<username>` and the account
    /// `uid#<user_id>` that token checks read. A new user claims its username first (only_new);
    /// a change writes the account first, so token checks see it before new logins do.
    pub async fn put_user(&self, user: &User, only_new: bool) -> Result<bool, StoreError> {
        let account = user.account();
        if only_new {
            if !self
                .put(keys::user(&user.username), user, None, true)
                .await?
            {
                return Ok(false);
            }
            self.put(keys::account(&user.user_id), &account, None, false)
                .await?;
        } else {
            self.put(keys::account(&user.user_id), &account, None, false)
                .await?;
            self.put(keys::user(&user.username), user, None, false)
                .await?;
        }
        Ok(true)
    }

    /// Deletes a user's login record, then its account (ending its tokens).
    pub async fn delete_user(&self, user: &User) -> Result<(), StoreError> {
        self.delete(keys::user(&user.username)).await?;
        self.delete(keys::account(&user.user_id)).await
    }

    /// Writes the account record of every user that has none (users created before accounts
    /// existed); returns how many were written. Idempotent: `oauthctl init` runs it.
    pub async fn backfill_accounts(&self) -> Result<usize, StoreError> {
        let users: Vec<User> = self.scan_prefix("user#").await?;
        let mut written = 0;
        for user in users {
            let account = user.account();
            if self
                .put(keys::account(&user.user_id), &account, None, true)
                .await?
            {
                written += 1;
            }
        }
        Ok(written)
    }

    pub async fn delete(&self, pk: String) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(pk)))
            .send()
            .await
            .map_err(unavailable("DeleteItem"))?;
        Ok(())
    }

    /// Every record whose `pk` starts with `prefix` (a Scan: administration only, never on a
    /// request path).
    pub async fn scan_prefix<T: DeserializeOwned>(
        &self,
        prefix: &str,
    ) -> Result<Vec<T>, StoreError> {
        let mut records = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("begins_with(pk, :prefix)")
                .expression_attribute_values(":prefix", s(prefix))
                // Cleanup after an admin change must see what was written just before it.
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(unavailable("Scan"))?;
            for item in out.items.unwrap_or_default() {
                records.push(decode(item)?);
            }
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(records),
            }
        }
    }

    /// Revokes every live family of a user (after a password change, disable or delete).
    /// Cleanup only: refresh and introspection check the account themselves.
    pub async fn revoke_user_families(&self, user_id: &str) -> Result<usize, StoreError> {
        self.revoke_families_where(|f| f.user_id == user_id).await
    }

    /// Revokes every live family of a client (after `client delete`).
    pub async fn revoke_client_families(&self, client_id: &str) -> Result<usize, StoreError> {
        self.revoke_families_where(|f| f.client_id == client_id)
            .await
    }

    async fn revoke_families_where(
        &self,
        matches: impl Fn(&RefreshFamily) -> bool,
    ) -> Result<usize, StoreError> {
        let families: Vec<RefreshFamily> = self.scan_prefix("rfam#").await?;
        let mut revoked = 0;
        for family in families.iter().filter(|f| matches(f) && !f.revoked) {
            self.revoke_family(&family.family_id).await?;
            revoked += 1;
        }
        Ok(revoked)
    }
}

impl ClientDirectory for DynamoStore {
    async fn client(&self, client_id: &str) -> Result<Option<Client>, StoreError> {
        self.get(keys::client(client_id), false).await
    }
}

/// Takes the item stored under `pk` (when one was asked for and found) and decodes it.
fn take<T: DeserializeOwned>(
    items: &mut HashMap<String, Item>,
    pk: Option<&String>,
) -> Result<Option<T>, StoreError> {
    pk.and_then(|pk| items.remove(pk)).map(decode).transpose()
}

impl LoginDirectory for DynamoStore {
    async fn login_records(
        &self,
        client_id: Option<&str>,
        username: Option<&str>,
    ) -> Result<LoginRecords, StoreError> {
        let client_pk = client_id.map(keys::client);
        let user_pk = username.map(keys::user);
        let lock_pk = username.map(keys::user_lock);
        let pks = [&client_pk, &user_pk, &lock_pk];
        let mut items = self
            .batch_get(pks.into_iter().flatten().cloned().collect(), true)
            .await?;
        Ok(LoginRecords {
            client: take(&mut items, client_pk.as_ref())?,
            user: take(&mut items, user_pk.as_ref())?,
            user_failures: take(&mut items, lock_pk.as_ref())?,
        })
    }
}

impl TokenRecords for DynamoStore {
    async fn read(&self, wanted: Wanted<'_>) -> Result<Found, StoreError> {
        let client_pk = wanted.client.map(keys::client);
        let account_pk = wanted.account.map(keys::account);
        let family_pk = wanted.family.map(keys::family);
        let revoked_pk = wanted.revoked_jti.map(keys::revoked);
        let transaction_pk = wanted.transaction.map(keys::transaction);
        let session_pk = wanted.session.map(keys::session);
        let consent_pk = wanted
            .consent
            .map(|(user_id, client_id)| keys::consent(user_id, client_id));
        let user_pk = wanted.login.map(keys::user);
        let lock_pk = wanted.login.map(keys::user_lock);
        let pks = [
            &client_pk,
            &account_pk,
            &family_pk,
            &revoked_pk,
            &transaction_pk,
            &session_pk,
            &consent_pk,
            &user_pk,
            &lock_pk,
        ];
        let mut items = self
            .batch_get(pks.into_iter().flatten().cloned().collect(), true)
            .await?;
        Ok(Found {
            client: take(&mut items, client_pk.as_ref())?,
            account: take::<Account>(&mut items, account_pk.as_ref())?,
            family: take(&mut items, family_pk.as_ref())?,
            jti_revoked: revoked_pk.is_some_and(|pk| items.contains_key(&pk)),
            transaction: take(&mut items, transaction_pk.as_ref())?,
            session: take(&mut items, session_pk.as_ref())?,
            consent: take(&mut items, consent_pk.as_ref())?,
            user: take(&mut items, user_pk.as_ref())?,
            user_failures: take(&mut items, lock_pk.as_ref())?,
        })
    }
}

impl FailureCounters for DynamoStore {
    async fn increment(
        &self,
        counted: Counted<'_>,
        now: i64,
        window: i64,
        seen_live: bool,
    ) -> Result<u32, StoreError> {
        let pk = counted.key();
        let window_end = now + window;
        // Live counter: add one and slide the window. Expired or missing: start again at one.
        // Each is one conditional write; trying the one the caller's read suggests first makes
        // the usual case a single write, and a lost race just tries the other.
        for attempt in 0..4 {
            let try_live = seen_live == (attempt % 2 == 0);
            if let Some(failures) = self.write_counter(&pk, now, window_end, try_live).await? {
                return Ok(failures);
            }
        }
        Err(StoreError::Unavailable(
            "failure counter kept changing under contention".into(),
        ))
    }

    async fn clear_failures(&self, counted: Counted<'_>) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(counted.key())))
            .update_expression("SET failures = :zero")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":zero", n(0))
            .send()
            .await
            .map(|_| ())
            .or_else(|e| {
                if is_conditional_check_failure(&e) {
                    Ok(())
                } else {
                    Err(unavailable("UpdateItem")(e))
                }
            })
    }
}

impl RefreshFamilies for DynamoStore {
    async fn create_family(
        &self,
        family: &RefreshFamily,
        retain_until: i64,
    ) -> Result<(), StoreError> {
        let pk = keys::family(&family.family_id);
        self.put_new(pk, family, retain_until.max(family.exp), "refresh family")
            .await
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
        const SET: &str = "SET current_hash = :new, issued_at = :now, retired_hashes = :retired";
        let retired = AttributeValue::L(retired.iter().map(|h| s(h.as_str())).collect());
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(keys::family(family_id))))
            .update_expression(SET)
            .condition_expression("current_hash = :presented AND revoked = :false AND exp > :now")
            .expression_attribute_values(":new", s(new_hash))
            .expression_attribute_values(":presented", s(presented_hash))
            .expression_attribute_values(":retired", retired)
            .expression_attribute_values(":false", AttributeValue::Bool(false))
            .expression_attribute_values(":now", n(now));
        if let Some(jkt) = bind_jkt {
            update = update
                .update_expression(format!("{SET}, jkt = if_not_exists(jkt, :jkt)"))
                .expression_attribute_values(":jkt", s(jkt));
        }
        let result = update.send().await;
        match result {
            Ok(_) => Ok(Rotation::Rotated),
            Err(e) if is_conditional_check_failure(&e) => {
                // A retried attempt fails its condition when the first attempt did land but its
                // answer was lost (timeout). `new_hash` is 256 random bits nobody else can write,
                // so finding it current means this rotation won.
                let family: Option<RefreshFamily> = self.get(keys::family(family_id), true).await?;
                Ok(if family.is_some_and(|f| f.current_hash == new_hash) {
                    Rotation::Rotated
                } else {
                    Rotation::Rejected
                })
            }
            Err(e) => Err(unavailable("UpdateItem")(e)),
        }
    }

    async fn bury_family(
        &self,
        family: &RefreshFamily,
        retain_until: i64,
    ) -> Result<(), StoreError> {
        let buried = RefreshFamily {
            revoked: true,
            ..family.clone()
        };
        let pk = keys::family(&family.family_id);
        if !self
            .put(pk, &buried, Some(retain_until.max(family.exp)), true)
            .await?
        {
            self.revoke_family(&family.family_id).await?;
        }
        Ok(())
    }

    async fn revoke_family(&self, family_id: &str) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(keys::family(family_id))))
            .update_expression("SET revoked = :true")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_conditional_check_failure(&e) => Ok(()),
            Err(e) => Err(unavailable("UpdateItem")(e)),
        }
    }
}

impl Revocations for DynamoStore {
    async fn revoke_access_token(&self, jti: &str, exp: i64) -> Result<(), StoreError> {
        let marker = RevokedToken {
            jti: jti.to_owned(),
            exp,
        };
        self.put(keys::revoked(jti), &marker, Some(exp), false)
            .await
            .map(|_| ())
    }
}

impl AssertionReplays for DynamoStore {
    async fn first_use(&self, key: &str, expires_at: i64, now: i64) -> Result<bool, StoreError> {
        // An item past its `ttl` that TTL has not deleted yet is an old use, not this one.
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(PARTITION_KEY, s(key.to_owned()))
            .item(TTL_ATTRIBUTE, n(expires_at))
            .condition_expression("attribute_not_exists(pk) OR #ttl < :now")
            .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
            .expression_attribute_values(":now", n(now))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if is_conditional_check_failure(&e) => Ok(false),
            Err(e) => Err(unavailable("PutItem")(e)),
        }
    }
}

/// A code item is kept this long past its expiry, so that a late second use is still seen as
/// reuse (and revokes what the first issued) rather than as an unknown code.
const CODE_RETENTION_SECONDS: i64 = 3600;

impl PushedRequests for DynamoStore {
    async fn push_request(&self, request: &PushedRequest) -> Result<(), StoreError> {
        let pk = keys::pushed_request(&request.reference_hash);
        self.put_new(pk, request, request.exp, "pushed request")
            .await
    }

    /// A retried delete whose first attempt landed (its answer lost) finds nothing: the user
    /// sees the used-link page and starts again. That fails safe, so it is not worked around.
    async fn take_request(
        &self,
        reference_hash: &str,
        client_id: &str,
        now: i64,
    ) -> Result<Option<PushedRequest>, StoreError> {
        use aws_sdk_dynamodb::types::ReturnValue;
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(keys::pushed_request(reference_hash))))
            .condition_expression("attribute_exists(pk) AND client_id = :client AND exp > :now")
            .expression_attribute_values(":client", s(client_id))
            .expression_attribute_values(":now", n(now))
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        match result {
            Ok(out) => out.attributes.map(decode).transpose(),
            Err(e) if is_conditional_check_failure(&e) => Ok(None),
            Err(e) => Err(unavailable("DeleteItem")(e)),
        }
    }
}

impl AuthorizationCodes for DynamoStore {
    async fn store_code(&self, code: &AuthorizationCode) -> Result<(), StoreError> {
        let ttl = code.exp + CODE_RETENTION_SECONDS;
        self.put_new(keys::code(&code.code_hash), code, ttl, "authorization code")
            .await
    }

    async fn redeem_code(&self, code_hash: &str, now: i64) -> Result<Redemption, StoreError> {
        use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
        use aws_sdk_dynamodb::types::{ReturnValue, ReturnValuesOnConditionCheckFailure};

        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(keys::code(code_hash))))
            .update_expression("SET consumed_at = :now")
            // Expiry is part of the condition: TTL deletion is lazy (SPEC §7).
            .condition_expression(
                "attribute_exists(pk) AND attribute_not_exists(consumed_at) AND exp > :now",
            )
            .expression_attribute_values(":now", n(now))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(out) => match out.attributes {
                Some(item) => Ok(Redemption::Redeemed(decode(item)?)),
                None => Err(StoreError::Corrupt(
                    "redeemed code without attributes".into(),
                )),
            },
            Err(e) if is_conditional_check_failure(&e) => {
                let old = match e.as_service_error() {
                    Some(UpdateItemError::ConditionalCheckFailedException(failed)) => {
                        failed.item().cloned()
                    }
                    _ => None,
                };
                let old: Option<AuthorizationCode> = old.map(decode).transpose()?;
                Ok(match old {
                    Some(code) if code.consumed_at.is_some() => Redemption::Reused(code),
                    _ => Redemption::Unusable,
                })
            }
            Err(e) => Err(unavailable("UpdateItem")(e)),
        }
    }
}

impl SignInRecords for DynamoStore {
    async fn put_transaction(&self, transaction: &LoginTransaction) -> Result<(), StoreError> {
        let pk = keys::transaction(&transaction.id);
        self.put_new(pk, transaction, transaction.exp, "login transaction")
            .await
    }

    async fn finish_transaction(&self, id: &str) -> Result<bool, StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(keys::transaction(id))))
            .condition_expression("attribute_exists(pk)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if is_conditional_check_failure(&e) => Ok(false),
            Err(e) => Err(unavailable("DeleteItem")(e)),
        }
    }

    async fn put_session(&self, session: &BrowserSession) -> Result<(), StoreError> {
        let pk = keys::session(&session.id_hash);
        self.put_new(pk, session, session.absolute_exp, "session")
            .await
    }

    async fn touch_session(&self, id_hash: &str, idle_exp: i64) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(keys::session(id_hash))))
            .update_expression("SET idle_exp = :idle")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":idle", n(idle_exp))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Ended meanwhile (logout): nothing to slide, and nothing re-created.
            Err(e) if is_conditional_check_failure(&e) => Ok(()),
            Err(e) => Err(unavailable("UpdateItem")(e)),
        }
    }

    async fn add_session_family(&self, id_hash: &str, family_id: &str) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(keys::session(id_hash))))
            .update_expression("SET families = list_append(if_not_exists(families, :none), :one)")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":none", AttributeValue::L(Vec::new()))
            .expression_attribute_values(
                ":one",
                AttributeValue::L(vec![AttributeValue::S(family_id.to_owned())]),
            )
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if is_conditional_check_failure(&e) => Ok(false),
            Err(e) => Err(unavailable("UpdateItem")(e)),
        }
    }

    async fn end_session(&self, id_hash: &str) -> Result<Option<BrowserSession>, StoreError> {
        let ended = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(keys::session(id_hash))))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await
            .map_err(unavailable("DeleteItem"))?;
        ended.attributes.map(decode).transpose()
    }

    async fn put_consent(&self, consent: &Consent) -> Result<(), StoreError> {
        let pk = keys::consent(&consent.user_id, &consent.client_id);
        self.put(pk, consent, None, false).await.map(|_| ())
    }
}
