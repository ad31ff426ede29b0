//! The one place that knows the Lambda runtime: events in, responses out, and the run loops
//! each function's `main` calls.

use std::future::Future;

use lambda_runtime::{LambdaEvent, service_fn};

use crate::endpoints::{REQUEST_DEADLINE, within_deadline};
use crate::http::{ApiRequest, ApiResponse};

pub mod event;

pub use lambda_runtime::Error;

use event::{HttpApiEvent, HttpApiResponse};

/// Libraries that log whole requests or responses at debug/trace (lambda_runtime writes the raw
/// event — Authorization headers, bodies with secrets — at trace; the SDK writes response bodies,
/// the signing keys among them). They stay at `info` whatever the configured level.
const CAPPED_AT_INFO: [&str; 10] = [
    "lambda_runtime",
    "lambda_runtime_api_client",
    "aws_smithy_runtime",
    "aws_smithy_http_client",
    "aws_sdk_dynamodb",
    "aws_sdk_secretsmanager",
    "aws_config",
    "hyper",
    "hyper_util",
    "h2",
];

/// Logging as Lambda's advanced logging controls expect (`AWS_LAMBDA_LOG_LEVEL`, else
/// `RUST_LOG`, else info; `AWS_LAMBDA_LOG_FORMAT=JSON`), with request-dumping libraries capped
/// so that no level turns secrets into log lines.
pub fn init_logging() {
    use tracing_subscriber::EnvFilter;
    use tracing_subscriber::filter::LevelFilter;

    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_default();
    let mut filter = EnvFilter::builder()
        .with_default_directive(LevelFilter::INFO.into())
        .parse_lossy(level);
    for target in CAPPED_AT_INFO {
        if let Ok(directive) = format!("{target}=info").parse() {
            filter = filter.add_directive(directive);
        }
    }
    let builder = tracing_subscriber::fmt()
        .with_target(false)
        .without_time()
        .with_env_filter(filter);
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// Serves events with `handler` until the runtime stops, each answered within
/// `endpoints::REQUEST_DEADLINE`.
pub async fn serve<F, Fut>(handler: F) -> Result<(), Error>
where
    F: Fn(ApiRequest) -> Fut + Send + Sync,
    Fut: Future<Output = ApiResponse> + Send,
{
    let handler = &handler;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<HttpApiEvent>| {
        // Boxed: the handler's future nested in the runtime's service stack is too deep a
        // type for the compiler's layout computation otherwise.
        Box::pin(async move {
            let response = match event.payload.into_api_request() {
                Ok(request) => within_deadline(REQUEST_DEADLINE, handler(request)).await,
                Err(refusal) => refusal,
            };
            Ok::<_, Error>(HttpApiResponse(response))
        })
    }))
    .await
}

/// Reads the configuration, or ends the cold start with one clear log line (no panic).
pub fn config_or_exit() -> crate::config::Config {
    match crate::config::Config::from_env() {
        Ok(config) => config,
        Err(error) => {
            tracing::error!(%error, "invalid configuration");
            std::process::exit(1);
        }
    }
}

/// The rotation function's run loop: each Secrets Manager rotation event runs one step
/// (`keys::secret_rotation`); a failed step fails the invocation, which is what tells Secrets
/// Manager the rotation failed (AWSCURRENT stays where it was).
#[cfg(feature = "aws")]
pub async fn serve_rotation(
    client: aws_sdk_secretsmanager::Client,
    config: crate::config::Config,
) -> Result<(), Error> {
    use crate::keys::KeyPolicy;
    use crate::keys::secret_rotation::{RotationContext, RotationEvent, StepOutcome, run_step};
    use crate::storage::secrets::SecretsRotation;

    let local = KeyPolicy {
        key_cache_seconds: config.key_cache.as_secs() as i64,
        max_token_ttl: config.max_token_ttl,
    };
    let client = &client;
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: LambdaEvent<RotationEvent>| async move {
            let event = event.payload;
            let secret = SecretsRotation::new(client.clone(), &event.secret_id);
            let ctx = RotationContext {
                now: crate::now_epoch(),
                jwks_max_age: crate::endpoints::discovery::MAX_AGE_SECONDS as i64,
                local,
            };
            let result = run_step(&secret, &event, ctx).await;
            let outcome = match &result {
                Ok(StepOutcome::Staged(_)) => "staged",
                Ok(StepOutcome::AlreadyDone) => "already_done",
                Ok(StepOutcome::Checked) => "checked",
                Ok(StepOutcome::Finished) => "finished",
                Err(_) => "failed",
            };
            crate::audit::emit(
                crate::audit::Event::RotationStep,
                &crate::audit::Record {
                    outcome: Some(outcome),
                    ..Default::default()
                },
            );
            match result {
                Ok(outcome) => {
                    tracing::info!(step = ?event.step, ?outcome, "rotation step done");
                    Ok(())
                }
                Err(error) => {
                    tracing::error!(step = ?event.step, %error, "rotation step failed");
                    Err(Error::from(error.to_string()))
                }
            }
        },
    ))
    .await
}
