//! GetItem, the hot read (a client record per token), as one SigV4-signed POST of DynamoDB's
//! JSON protocol on a kept-alive connection; every other call stays on the AWS SDK.
//!
//! Why: measured on one machine (bench/README.md, "Where a storage call's CPU goes"), the SDK's
//! per-call orchestration (interceptors, endpoint and identity resolution per request, the
//! retry state machine, its body types) costs about as much CPU again as the HTTP exchange
//! itself. The signing (`aws-sigv4`), the credentials (the SDK's provider chain), the endpoint
//! (the SDK's resolver, at cold start) and the TLS stack are the SDK's own; what is written
//! here is the request, the response decoding and the retry rule with its quota.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_runtime::retries::classifiers::{THROTTLING_ERRORS, TRANSIENT_ERRORS};
use aws_sdk_dynamodb::config::endpoint::{DefaultResolver, Params, ResolveEndpoint};
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_types::endpoint_config::AccountIdEndpointMode;
use aws_types::service_config::ServiceConfigKey;
use base64::Engine as _;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use serde::Deserialize;

use super::dynamo::full_jitter_backoff;
use crate::error::StoreError;

type Item = HashMap<String, AttributeValue>;

/// DynamoDB's limit on an item is 400 KB of raw data; on the wire binary is base64 and strings
/// are JSON-escaped, so a legal item can take well over 512 KiB.
const MAX_RESPONSE_BYTES: usize = 2 * 1024 * 1024;
/// Credentials are fetched again this long before they expire (the SDK's identity cache: 10 s).
const CREDENTIALS_REFRESH_MARGIN: Duration = Duration::from_secs(10);
/// The SDK's standard retry strategy: full-jitter exponential backoff from 1 s, so a throttled
/// read is not retried straight into the same throttling.
const RETRY_BACKOFF_BASE: Duration = Duration::from_secs(1);
/// The HTTP statuses the SDK treats as transient (aws-smithy-runtime).
const TRANSIENT_STATUSES: [u16; 4] = [500, 502, 503, 504];
/// The SDK's retry quota and its costs (aws-smithy-runtime `TokenBucket`'s defaults).
const RETRY_QUOTA_CAPACITY: u32 = 500;
const THROTTLING_RETRY_COST: u32 = 5;
const TRANSIENT_RETRY_COST: u32 = 10;
const SIGNING_NAME: &str = "dynamodb";

/// The limits of one read: the same as the SDK client's (`storage::aws`).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub connect_timeout: Duration,
    pub attempt_timeout: Duration,
    /// All attempts and the waits between them.
    pub operation_timeout: Duration,
    pub max_attempts: u32,
}

pub struct GetItemClient {
    http: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    endpoint: http::Uri,
    host: http::HeaderValue,
    region: String,
    credentials: SharedCredentialsProvider,
    cached: Mutex<Option<Credentials>>,
    limits: Limits,
    retry_quota: RetryQuota,
}

impl GetItemClient {
    /// The client for the SDK configuration's region, credentials and endpoint, or `None`
    /// where this path does not apply (no region or credentials provider, FIPS or dual-stack
    /// endpoints): the caller keeps the SDK for those.
    pub async fn from_sdk_config(sdk: &aws_config::SdkConfig, limits: Limits) -> Option<Self> {
        if sdk.use_fips() == Some(true) || sdk.use_dual_stack() == Some(true) {
            return None;
        }
        // An endpoint that must carry the account id needs one we do not resolve: the SDK's.
        if sdk.account_id_endpoint_mode() == Some(&AccountIdEndpointMode::Required) {
            return None;
        }
        let region = sdk.region()?.to_string();
        let credentials = sdk.credentials_provider()?;
        let configured = configured_endpoint(sdk);
        let params = Params::builder()
            .region(region.clone())
            .set_endpoint(configured)
            .build()
            .ok()?;
        let resolved = DefaultResolver::new()
            .resolve_endpoint(&params)
            .await
            .ok()?;
        Self::new(resolved.url(), region, credentials, limits)
    }

    fn new(
        endpoint: &str,
        region: String,
        credentials: SharedCredentialsProvider,
        limits: Limits,
    ) -> Option<Self> {
        let endpoint: http::Uri = endpoint.parse().ok()?;
        let host = http::HeaderValue::from_str(endpoint.authority()?.as_str()).ok()?;
        let http = crate::fetch::tls_client(Some(limits.connect_timeout)).ok()?;
        Some(Self {
            http,
            endpoint,
            host,
            region,
            credentials,
            cached: Mutex::new(None),
            limits,
            retry_quota: RetryQuota::new(RETRY_QUOTA_CAPACITY),
        })
    }

    /// The item whose string key attribute `key_name` is `key` in `table`, or `None`.
    pub async fn get_item(
        &self,
        table: &str,
        key_name: &str,
        key: &str,
        consistent: bool,
    ) -> Result<Option<Item>, StoreError> {
        let body = serde_json::to_vec(&serde_json::json!({
            "TableName": table,
            "Key": { key_name: { "S": key } },
            "ConsistentRead": consistent,
        }))
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let body = Bytes::from(body);
        tokio::time::timeout(self.limits.operation_timeout, self.attempts(&body))
            .await
            .unwrap_or_else(|_| Err(format!("no answer in {:?}", self.limits.operation_timeout)))
            .map_err(|text| StoreError::Unavailable(format!("GetItem: {text}")))
    }

    async fn attempts(&self, body: &Bytes) -> Result<Option<Item>, String> {
        with_retries(&self.limits, &self.retry_quota, || self.attempt(body)).await
    }

    async fn attempt(&self, body: &Bytes) -> Result<Option<Item>, Failure> {
        let request = self.signed_request(body.clone()).await?;
        let response = self
            .http
            .request(request)
            .await
            // A broken or refused connection: nothing was read, so another attempt is safe.
            .map_err(|e| Failure::Transient(format!("the request failed: {e}")))?;
        let status = response.status();
        let bytes = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
            .collect()
            .await
            .map_err(|e| match e.downcast::<http_body_util::LengthLimitError>() {
                Ok(_) => Failure::Final(format!("a response over {MAX_RESPONSE_BYTES} bytes")),
                Err(e) => Failure::Transient(format!("the response broke off: {e}")),
            })?
            .to_bytes();
        if status == http::StatusCode::OK {
            let parsed: GetItemOutput = serde_json::from_slice(&bytes)
                .map_err(|e| Failure::Final(format!("an unreadable response: {e}")))?;
            return parsed
                .item
                .map(|item| {
                    item.into_iter()
                        .map(|(k, v)| Ok((k, v.into_sdk()?)))
                        .collect()
                })
                .transpose()
                .map_err(Failure::Final);
        }
        Err(service_error(status, &bytes))
    }

    async fn signed_request(&self, body: Bytes) -> Result<http::Request<Full<Bytes>>, Failure> {
        let credentials = self.credentials().await?;
        let identity = credentials.into();
        let mut request = http::Request::post(self.endpoint.clone())
            .header(http::header::HOST, self.host.clone())
            .header(http::header::CONTENT_TYPE, "application/x-amz-json-1.0")
            .header("x-amz-target", "DynamoDB_20120810.GetItem")
            .body(Full::new(body.clone()))
            .map_err(|e| Failure::Final(e.to_string()))?;
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(SIGNING_NAME)
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| Failure::Final(format!("signing: {e}")))?
            .into();
        let signable = SignableRequest::new(
            request.method().as_str(),
            request.uri().to_string(),
            request
                .headers()
                .iter()
                .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?))),
            SignableBody::Bytes(&body),
        )
        .map_err(|e| Failure::Final(format!("signing: {e}")))?;
        let (instructions, _signature) = sign(signable, &params)
            .map_err(|e| Failure::Final(format!("signing: {e}")))?
            .into_parts();
        instructions.apply_to_request_http1x(&mut request);
        Ok(request)
    }

    /// The provider's credentials, kept until shortly before they expire.
    async fn credentials(&self) -> Result<Credentials, Failure> {
        let fresh = |c: &Credentials| {
            c.expiry()
                .is_none_or(|at| SystemTime::now() + CREDENTIALS_REFRESH_MARGIN < at)
        };
        if let Some(cached) = self.lock_cache().as_ref().filter(|c| fresh(c)) {
            return Ok(cached.clone());
        }
        let loaded = self
            .credentials
            .provide_credentials()
            .await
            .map_err(|e| Failure::Transient(format!("no credentials: {e}")))?;
        *self.lock_cache() = Some(loaded.clone());
        Ok(loaded)
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, Option<Credentials>> {
        self.cached
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

enum Failure {
    /// The service said slow down (its throttling codes).
    Throttled(String),
    /// A 5xx, a transient code, a broken connection or a timeout.
    Transient(String),
    Final(String),
}

impl Failure {
    /// What a retry after this failure costs the quota, or `None` where it is not retried.
    fn retry_cost(&self) -> Option<u32> {
        match self {
            Failure::Throttled(_) => Some(THROTTLING_RETRY_COST),
            Failure::Transient(_) => Some(TRANSIENT_RETRY_COST),
            Failure::Final(_) => None,
        }
    }

    fn into_text(self) -> String {
        match self {
            Failure::Throttled(text) | Failure::Transient(text) | Failure::Final(text) => text,
        }
    }
}

/// The SDK's retry quota (aws-smithy-runtime's token bucket under the standard strategy): a
/// retry spends from it, a success puts back the last retry's cost or regenerates one token,
/// and an empty quota means no more retries. Without it a degraded table would get up to
/// `max_attempts` times the reads from every instance while the SDK's own calls back off.
struct RetryQuota {
    available: Mutex<u32>,
    capacity: u32,
}

impl RetryQuota {
    fn new(capacity: u32) -> Self {
        Self {
            available: Mutex::new(capacity),
            capacity,
        }
    }

    fn try_spend(&self, cost: u32) -> bool {
        let mut available = self.lock();
        let spent = available.checked_sub(cost);
        if let Some(left) = spent {
            *available = left;
        }
        spent.is_some()
    }

    /// After a success: the last retry's cost back, or one token for a first-attempt success.
    fn succeeded(&self, last_retry_cost: Option<u32>) {
        let mut available = self.lock();
        *available = (*available + last_retry_cost.unwrap_or(1)).min(self.capacity);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, u32> {
        self.available
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// `attempt` until it succeeds, fails for good, runs out of attempts or of retry quota, with
/// full-jitter backoff between attempts and each attempt within `limits.attempt_timeout`.
async fn with_retries<T, F, Fut>(
    limits: &Limits,
    quota: &RetryQuota,
    mut attempt: F,
) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Failure>>,
{
    let mut attempts = 1;
    let mut last_retry_cost = None;
    loop {
        let outcome = tokio::time::timeout(limits.attempt_timeout, attempt())
            .await
            .unwrap_or_else(|_| {
                Err(Failure::Transient(format!(
                    "no answer in {:?}",
                    limits.attempt_timeout
                )))
            });
        let failure = match outcome {
            Ok(value) => {
                quota.succeeded(last_retry_cost);
                return Ok(value);
            }
            Err(failure) => failure,
        };
        match failure.retry_cost() {
            Some(cost) if attempts < limits.max_attempts && quota.try_spend(cost) => {
                last_retry_cost = Some(cost);
                tokio::time::sleep(full_jitter_backoff(RETRY_BACKOFF_BASE, attempts)).await;
                attempts += 1;
            }
            _ => return Err(failure.into_text()),
        }
    }
}

/// A service error as the SDK would name it: `__type`'s short code and the message, never
/// request data (the message names the table at most).
fn service_error(status: http::StatusCode, body: &[u8]) -> Failure {
    #[derive(Deserialize)]
    struct ErrorBody {
        #[serde(rename = "__type", default)]
        kind: String,
        #[serde(alias = "Message", default)]
        message: String,
    }
    let parsed: Option<ErrorBody> = serde_json::from_slice(body).ok();
    let (code, message) = parsed
        .map(|e| {
            let code = e.kind.rsplit('#').next().unwrap_or_default().to_owned();
            (code, e.message)
        })
        .unwrap_or_default();
    let text = format!("{status}: {code}: {message}");
    // The SDK's standard retry set: its throttling and transient codes, and 500/502/503/504.
    if THROTTLING_ERRORS.contains(&code.as_str()) {
        Failure::Throttled(text)
    } else if TRANSIENT_ERRORS.contains(&code.as_str())
        || TRANSIENT_STATUSES.contains(&status.as_u16())
    {
        Failure::Transient(text)
    } else {
        Failure::Final(text)
    }
}

/// The endpoint URL configured outside the default: set in code first, then the DynamoDB-only
/// setting (`AWS_ENDPOINT_URL_DYNAMODB`, a profile's `[services]`), then the global one: the
/// order the SDK's own `Config::from(&SdkConfig)` uses.
fn configured_endpoint(sdk: &aws_config::SdkConfig) -> Option<String> {
    if sdk.get_origin("endpoint_url").is_client_config() {
        return sdk.endpoint_url().map(str::to_owned);
    }
    let key = ServiceConfigKey::builder()
        .service_id("DynamoDB")
        .env("AWS_ENDPOINT_URL")
        .profile("endpoint_url")
        .build()
        .ok()?;
    sdk.service_config()
        .and_then(|config| config.load_config(key))
        .or_else(|| sdk.endpoint_url().map(str::to_owned))
}

#[derive(Deserialize)]
struct GetItemOutput {
    #[serde(rename = "Item")]
    item: Option<HashMap<String, Wire>>,
}

/// An attribute value as DynamoDB's JSON protocol spells it: `{"S": "..."}`, `{"N": "1"}`, ...
#[derive(Deserialize)]
enum Wire {
    S(String),
    N(String),
    B(String),
    #[serde(rename = "BOOL")]
    Bool(bool),
    #[serde(rename = "NULL")]
    Null(bool),
    M(HashMap<String, Wire>),
    L(Vec<Wire>),
    SS(Vec<String>),
    NS(Vec<String>),
    BS(Vec<String>),
}

impl Wire {
    fn into_sdk(self) -> Result<AttributeValue, String> {
        let blob = |b64: String| {
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map(Blob::new)
                .map_err(|e| format!("a binary attribute is not base64: {e}"))
        };
        Ok(match self {
            Wire::S(s) => AttributeValue::S(s),
            Wire::N(n) => AttributeValue::N(n),
            Wire::B(b) => AttributeValue::B(blob(b)?),
            Wire::Bool(b) => AttributeValue::Bool(b),
            Wire::Null(b) => AttributeValue::Null(b),
            Wire::M(m) => AttributeValue::M(
                m.into_iter()
                    .map(|(k, v)| Ok((k, v.into_sdk()?)))
                    .collect::<Result<_, String>>()?,
            ),
            Wire::L(l) => AttributeValue::L(
                l.into_iter()
                    .map(Wire::into_sdk)
                    .collect::<Result<_, _>>()?,
            ),
            Wire::SS(ss) => AttributeValue::Ss(ss),
            Wire::NS(ns) => AttributeValue::Ns(ns),
            Wire::BS(bs) => AttributeValue::Bs(bs.into_iter().map(blob).collect::<Result<_, _>>()?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_attribute_type_decodes_as_the_sdk_would() {
        let json = r#"{"Item": {
            "s": {"S": "text"}, "n": {"N": "12.5"}, "b": {"B": "AAEC"},
            "t": {"BOOL": true}, "z": {"NULL": true},
            "m": {"M": {"inner": {"S": "x"}}}, "l": {"L": [{"N": "1"}, {"S": "y"}]},
            "ss": {"SS": ["a", "b"]}, "ns": {"NS": ["1", "2"]}, "bs": {"BS": ["AQ=="]}
        }}"#;
        let parsed: GetItemOutput = serde_json::from_str(json).unwrap();
        let item: Item = parsed
            .item
            .unwrap()
            .into_iter()
            .map(|(k, v)| (k, v.into_sdk().unwrap()))
            .collect();
        let expected = Item::from([
            ("s".into(), AttributeValue::S("text".into())),
            ("n".into(), AttributeValue::N("12.5".into())),
            ("b".into(), AttributeValue::B(Blob::new(vec![0, 1, 2]))),
            ("t".into(), AttributeValue::Bool(true)),
            ("z".into(), AttributeValue::Null(true)),
            (
                "m".into(),
                AttributeValue::M(HashMap::from([(
                    "inner".into(),
                    AttributeValue::S("x".into()),
                )])),
            ),
            (
                "l".into(),
                AttributeValue::L(vec![
                    AttributeValue::N("1".into()),
                    AttributeValue::S("y".into()),
                ]),
            ),
            (
                "ss".into(),
                AttributeValue::Ss(vec!["a".into(), "b".into()]),
            ),
            (
                "ns".into(),
                AttributeValue::Ns(vec!["1".into(), "2".into()]),
            ),
            ("bs".into(), AttributeValue::Bs(vec![Blob::new(vec![1])])),
        ]);
        assert_eq!(item, expected);
    }

    #[test]
    fn no_item_is_none_and_bad_base64_is_an_error() {
        let parsed: GetItemOutput = serde_json::from_str("{}").unwrap();
        assert!(parsed.item.is_none());
        assert!(Wire::B("not base64!".into()).into_sdk().is_err());
    }

    #[test]
    fn throttling_and_server_errors_retry_validation_errors_do_not() {
        let throttled = br#"{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"slow down"}"#;
        assert!(matches!(
            service_error(http::StatusCode::BAD_REQUEST, throttled),
            Failure::Throttled(text) if text.contains("ProvisionedThroughputExceededException")
        ));
        assert!(matches!(
            service_error(http::StatusCode::INTERNAL_SERVER_ERROR, b"oops"),
            Failure::Transient(_)
        ));
        assert!(matches!(
            service_error(http::StatusCode::NOT_IMPLEMENTED, b"{}"),
            Failure::Final(_)
        ));
        let missing = br#"{"__type":"com.amazonaws.dynamodb.v20120810#ResourceNotFoundException","message":"Requested resource not found"}"#;
        assert!(matches!(
            service_error(http::StatusCode::BAD_REQUEST, missing),
            Failure::Final(text) if text.contains("ResourceNotFoundException: Requested resource not found")
        ));
    }

    const LIMITS: Limits = Limits {
        connect_timeout: Duration::from_secs(1),
        attempt_timeout: Duration::from_secs(1),
        operation_timeout: Duration::from_secs(10),
        max_attempts: 3,
    };

    /// Reads of a table that always answers 500: how many requests `reads` operations send.
    async fn requests_sent_for(reads: u32, quota: &RetryQuota) -> u32 {
        let sent = std::cell::Cell::new(0);
        for _ in 0..reads {
            let outcome: Result<(), String> = with_retries(&LIMITS, quota, || async {
                sent.set(sent.get() + 1);
                Err(Failure::Transient("500 Internal Server Error".into()))
            })
            .await;
            assert!(outcome.is_err());
        }
        sent.get()
    }

    #[tokio::test(start_paused = true)]
    async fn an_empty_retry_quota_stops_retries_of_a_failing_table() {
        // Two transient retries (10 each) empty a quota of 20: the first read makes all three
        // attempts, every later read one.
        let quota = RetryQuota::new(2 * TRANSIENT_RETRY_COST);
        assert_eq!(requests_sent_for(5, &quota).await, 3 + 1 + 1 + 1 + 1);
    }

    #[tokio::test(start_paused = true)]
    async fn successes_refill_the_quota_and_final_errors_spend_none() {
        let quota = RetryQuota::new(TRANSIENT_RETRY_COST);
        // A final error is not retried and costs nothing.
        let sent = std::cell::Cell::new(0);
        let _: Result<(), _> = with_retries(&LIMITS, &quota, || async {
            sent.set(sent.get() + 1);
            Err(Failure::Final("400: ValidationException".into()))
        })
        .await;
        assert_eq!(sent.get(), 1);
        // One retry, then a success: its cost comes back.
        let failed_once = std::cell::Cell::new(false);
        let read = with_retries(&LIMITS, &quota, || async {
            if failed_once.replace(true) {
                Ok("item")
            } else {
                Err(Failure::Throttled("ThrottlingException".into()))
            }
        })
        .await;
        assert_eq!(read.as_deref(), Ok("item"));
        assert_eq!(*quota.lock(), TRANSIENT_RETRY_COST);
        // Spent down, a first-attempt success regenerates one token, never above capacity.
        assert!(quota.try_spend(TRANSIENT_RETRY_COST));
        quota.succeeded(None);
        assert_eq!(*quota.lock(), 1);
        quota.succeeded(Some(TRANSIENT_RETRY_COST));
        assert_eq!(*quota.lock(), TRANSIENT_RETRY_COST);
    }
}
