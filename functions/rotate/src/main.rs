//! Rotation function: Secrets Manager's four rotation steps for the signing-key secret
//! (`AWS::SecretsManager::RotationSchedule`, "Rotate now", `aws secretsmanager rotate-secret`).

use shared::{lambda, storage};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda::Error> {
    lambda::init_logging();
    let config = lambda::config_or_exit();
    let client = storage::aws::secrets_client().await;
    lambda::serve_rotation(client, config).await
}
