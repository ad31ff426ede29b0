//! Secrets Manager adapter: the key-set document's source, and its writer for `oauthctl`.

use aws_sdk_secretsmanager::Client as SecretsClient;
use aws_sdk_secretsmanager::error::SdkError;
use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError;

use super::aws::unavailable;
use crate::error::StoreError;
use crate::keys::KeySource;
use crate::keys::secret_rotation::{CURRENT, PENDING, SecretStages, SecretVersion, SecretVersions};

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
            .map_err(unavailable("PutSecretValue"))?;
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
                    .map_err(unavailable("CreateSecret"))?;
                Ok(true)
            }
            Err(e) => Err(unavailable("DescribeSecret")(e)),
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
            Err(e) => Err(unavailable("GetSecretValue")(e)),
        }
    }
}

/// The signing-key secret's versions for the rotation function (its only writer on AWS).
pub struct SecretsRotation {
    client: SecretsClient,
    secret_id: String,
}

impl SecretsRotation {
    pub fn new(client: SecretsClient, secret_id: impl Into<String>) -> Self {
        Self {
            client,
            secret_id: secret_id.into(),
        }
    }

    async fn get(
        &self,
        version_id: Option<&str>,
        stage: &str,
    ) -> Result<Option<SecretVersion>, StoreError> {
        let result = self
            .client
            .get_secret_value()
            .secret_id(&self.secret_id)
            .set_version_id(version_id.map(str::to_owned))
            .version_stage(stage)
            .send()
            .await;
        match result {
            Ok(out) => Ok(out.secret_string().map(|text| SecretVersion {
                version_id: out.version_id().unwrap_or_default().to_owned(),
                text: text.to_owned(),
            })),
            // No such version, or it does not carry that stage (or has no value yet).
            Err(SdkError::ServiceError(e))
                if matches!(e.err(), GetSecretValueError::ResourceNotFoundException(_)) =>
            {
                Ok(None)
            }
            Err(e) => Err(unavailable("GetSecretValue")(e)),
        }
    }
}

impl SecretVersions for SecretsRotation {
    async fn stages(&self) -> Result<SecretStages, StoreError> {
        let out = self
            .client
            .describe_secret()
            .secret_id(&self.secret_id)
            .send()
            .await
            .map_err(unavailable("DescribeSecret"))?;
        let versions = out
            .version_ids_to_stages()
            .map(|map| map.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        Ok(SecretStages {
            rotation_enabled: out.rotation_enabled().unwrap_or(false),
            versions,
        })
    }

    async fn at_stage(&self, stage: &str) -> Result<Option<SecretVersion>, StoreError> {
        self.get(None, stage).await
    }

    async fn pending(&self, version_id: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .get(Some(version_id), PENDING)
            .await?
            .map(|version| version.text))
    }

    async fn put_pending(&self, version_id: &str, text: &str) -> Result<(), StoreError> {
        self.client
            .put_secret_value()
            .secret_id(&self.secret_id)
            .client_request_token(version_id)
            .secret_string(text)
            .version_stages(PENDING)
            .send()
            .await
            .map_err(unavailable("PutSecretValue"))?;
        Ok(())
    }

    async fn make_current(&self, to: &str, from: &str) -> Result<(), StoreError> {
        self.client
            .update_secret_version_stage()
            .secret_id(&self.secret_id)
            .version_stage(CURRENT)
            .move_to_version_id(to)
            .remove_from_version_id(from)
            .send()
            .await
            .map_err(unavailable("UpdateSecretVersionStage"))?;
        Ok(())
    }
}
