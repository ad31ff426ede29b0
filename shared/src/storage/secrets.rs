//! Secrets Manager adapter: the key-set document's source, and its writer for `oauthctl`.

use aws_sdk_secretsmanager::Client as SecretsClient;
use aws_sdk_secretsmanager::error::SdkError;
use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError;

use super::aws::aws_error_text;
use crate::error::StoreError;
use crate::keys::KeySource;

pub struct SecretsKeySource {
    client: SecretsClient,
    secret_id: String,
}

impl SecretsKeySource {
    pub fn new(client: SecretsClient, secret_id: impl Into<String>) -> Self {
        Self {
            client,
            secret_id: secret_id.into(),
        }
    }

    /// Writes the whole set with one plain `PutSecretValue` (it becomes AWSCURRENT).
    pub async fn store(&self, text: &str) -> Result<(), StoreError> {
        self.client
            .put_secret_value()
            .secret_id(&self.secret_id)
            .secret_string(text)
            .send()
            .await
            .map_err(|e| {
                StoreError::Unavailable(format!("PutSecretValue: {}", aws_error_text(&e)))
            })?;
        Ok(())
    }

    /// Creates the secret when it does not exist; returns whether it was created.
    pub async fn create_if_missing(&self) -> Result<bool, StoreError> {
        match self
            .client
            .describe_secret()
            .secret_id(&self.secret_id)
            .send()
            .await
        {
            Ok(_) => Ok(false),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                self.client
                    .create_secret()
                    .name(&self.secret_id)
                    .description("Signing keys of the OAuth token service (managed by oauthctl)")
                    .send()
                    .await
                    .map_err(|e| {
                        StoreError::Unavailable(format!("CreateSecret: {}", aws_error_text(&e)))
                    })?;
                Ok(true)
            }
            Err(e) => Err(StoreError::Unavailable(format!(
                "DescribeSecret: {}",
                aws_error_text(&e)
            ))),
        }
    }
}

impl KeySource for SecretsKeySource {
    async fn load(&self) -> Result<Option<String>, StoreError> {
        // AWSCURRENT explicitly: moto does not move the default version on
        // UpdateSecretVersionStage (measured), and AWS resolves the same stage by default.
        let result = self
            .client
            .get_secret_value()
            .secret_id(&self.secret_id)
            .version_stage("AWSCURRENT")
            .send()
            .await;
        match result {
            Ok(out) => Ok(out
                .secret_string()
                .filter(|s| !s.trim().is_empty())
                .map(str::to_owned)),
            Err(SdkError::ServiceError(e))
                if matches!(e.err(), GetSecretValueError::ResourceNotFoundException(_)) =>
            {
                // A secret created empty has no AWSCURRENT version yet.
                Ok(None)
            }
            Err(e) => Err(StoreError::Unavailable(format!(
                "GetSecretValue: {}",
                aws_error_text(&e)
            ))),
        }
    }
}
