//! AWS SDK configuration shared by the adapters: built once at cold start, with bounded
//! timeouts and retries so a slow or failing dependency becomes a quick 503, never a hang.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::stalled_stream_protection::StalledStreamProtectionConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::error::SdkError;

/// One attempt may take this long; the whole operation (with retries) at most `OPERATION`.
const ATTEMPT_TIMEOUT: Duration = Duration::from_millis(1500);
const OPERATION_TIMEOUT: Duration = Duration::from_secs(4);
const CONNECT_TIMEOUT: Duration = Duration::from_millis(1000);
const MAX_ATTEMPTS: u32 = 3;

/// The same limits for the reads that bypass the SDK (`dynamo_http`).
pub(crate) const LIMITS: super::dynamo_http::Limits = super::dynamo_http::Limits {
    connect_timeout: CONNECT_TIMEOUT,
    attempt_timeout: ATTEMPT_TIMEOUT,
    operation_timeout: OPERATION_TIMEOUT,
    max_attempts: MAX_ATTEMPTS,
};

/// Loads the SDK configuration from the environment (region, credentials, `AWS_ENDPOINT_URL`).
pub async fn load_sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                .operation_timeout(OPERATION_TIMEOUT)
                .build(),
        )
        .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS))
        // The timeouts above already end a stalled call; the stalled-stream monitor would
        // wrap every request and response body in a throughput check with its own timers.
        .stalled_stream_protection(StalledStreamProtectionConfig::disabled())
        .load()
        .await
}

/// A one-line description of an SDK error for logs: its kind and the service's code and
/// message, never request data.
pub(crate) fn aws_error_text<E: std::error::Error + 'static, R: std::fmt::Debug>(
    err: &SdkError<E, R>,
) -> String {
    aws_sdk_dynamodb::error::DisplayErrorContext(err).to_string()
}

/// The 503-bound error of a failed SDK call, naming the operation (both adapters use it).
pub(crate) fn unavailable<E: std::error::Error + 'static, R: std::fmt::Debug>(
    operation: &'static str,
) -> impl FnOnce(SdkError<E, R>) -> crate::error::StoreError {
    move |e| crate::error::StoreError::Unavailable(format!("{operation}: {}", aws_error_text(&e)))
}

/// The Secrets Manager client alone (the rotation function), built once at cold start.
pub async fn secrets_client() -> aws_sdk_secretsmanager::Client {
    aws_sdk_secretsmanager::Client::new(&load_sdk_config().await)
}

/// The production adapters, built once at cold start.
pub async fn adapters(
    config: &crate::config::Config,
) -> (super::dynamo::DynamoStore, super::secrets::SecretsKeySource) {
    let sdk = load_sdk_config().await;
    (
        if config.dynamodb_sdk_only {
            super::dynamo::DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), &config.table_name)
        } else {
            super::dynamo::DynamoStore::from_sdk_config(&sdk, &config.table_name).await
        },
        super::secrets::SecretsKeySource::new(
            aws_sdk_secretsmanager::Client::new(&sdk),
            &config.signing_keys_secret_id,
        ),
    )
}
