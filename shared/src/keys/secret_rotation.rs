//! Automatic key rotation the Secrets Manager way (SPEC §6, issue #13): the four steps a
//! rotation function answers (`createSecret`, `setSecret`, `testSecret`, `finishSecret`), each
//! idempotent on retries, with the new key set staged as `AWSPENDING` under the rotation's
//! `ClientRequestToken` and made `AWSCURRENT` only at the end.
//!
//! A plain `PutSecretValue` (`oauthctl key rotate`) becomes AWSCURRENT at once, so a set built
//! from an older version would undo it: the pending set names the version it was built from,
//! and the later steps refuse to go on once AWSCURRENT has moved (the next rotation starts
//! from the new current set).

use serde::Deserialize;

use super::rotation::{RotationPolicy, SetRotation, rotate_all};
use super::{KeyPolicy, KeySet, KeySetDocument};
use crate::error::StoreError;

pub const CURRENT: &str = "AWSCURRENT";
pub const PENDING: &str = "AWSPENDING";

/// The event Secrets Manager invokes a rotation function with.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct RotationEvent {
    #[serde(rename = "SecretId")]
    pub secret_id: String,
    #[serde(rename = "ClientRequestToken")]
    pub token: String,
    #[serde(rename = "Step")]
    pub step: Step,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
pub enum Step {
    #[serde(rename = "createSecret")]
    Create,
    #[serde(rename = "setSecret")]
    Set,
    #[serde(rename = "testSecret")]
    Test,
    #[serde(rename = "finishSecret")]
    Finish,
}

/// One version of the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretVersion {
    pub version_id: String,
    pub text: String,
}

/// `DescribeSecret`'s view: whether rotation is on, and each version id's staging labels.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretStages {
    pub rotation_enabled: bool,
    pub versions: Vec<(String, Vec<String>)>,
}

/// The versions of the signing-key secret, as the rotation steps need them (port; the
/// Secrets Manager adapter implements it).
pub trait SecretVersions: Send + Sync {
    fn stages(&self) -> impl Future<Output = Result<SecretStages, StoreError>> + Send;

    /// The version labelled `stage`.
    fn at_stage(
        &self,
        stage: &str,
    ) -> impl Future<Output = Result<Option<SecretVersion>, StoreError>> + Send;

    /// The value of version `version_id` if it carries `AWSPENDING` (a version with no value
    /// yet is absent).
    fn pending(
        &self,
        version_id: &str,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;

    /// `PutSecretValue` with `ClientRequestToken = version_id`, staged `AWSPENDING` only.
    fn put_pending(
        &self,
        version_id: &str,
        text: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// `UpdateSecretVersionStage`: AWSCURRENT from `from` to `to`.
    fn make_current(
        &self,
        to: &str,
        from: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    #[error("rotation is not enabled on the secret")]
    NotEnabled,
    #[error("version {0} is not a pending version of the secret")]
    NotPending(String),
    #[error("the secret has no AWSCURRENT key set: run oauthctl init")]
    NoCurrentSet,
    #[error("the key set is invalid: {0}")]
    InvalidSet(String),
    /// A concurrent writer (`oauthctl key rotate`) moved AWSCURRENT after `createSecret`.
    #[error(
        "AWSCURRENT moved since this rotation's key set was built (a concurrent oauthctl key rotate?); nothing changed, the next rotation starts from the new current set"
    )]
    CurrentMoved,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a step did, for the log and the rotation metric.
#[derive(Debug, PartialEq)]
pub enum StepOutcome {
    /// `createSecret` staged a new set.
    Staged(SetRotation),
    /// A retried step found its work done.
    AlreadyDone,
    /// `setSecret` (the set is our own: no downstream system to tell) or a passed test.
    Checked,
    /// `finishSecret` moved AWSCURRENT.
    Finished,
}

/// The rotation's inputs besides the secret: the deployment's policy and the clock.
#[derive(Debug, Clone, Copy)]
pub struct RotationContext {
    pub now: i64,
    pub jwks_max_age: i64,
    /// This function's `KEY_CACHE_SECONDS` / `MAX_TOKEN_TTL` (the deployed stack's).
    pub local: KeyPolicy,
}

pub async fn run_step<S: SecretVersions>(
    secret: &S,
    event: &RotationEvent,
    ctx: RotationContext,
) -> Result<StepOutcome, RotationError> {
    let SecretStages {
        rotation_enabled,
        versions,
    } = secret.stages().await?;
    if !rotation_enabled {
        return Err(RotationError::NotEnabled);
    }
    let labels = versions
        .iter()
        .find(|(id, _)| *id == event.token)
        .map(|(_, labels)| labels.clone());
    // The AWS rotation protocol: a token already AWSCURRENT has finished; any other must be
    // staged AWSPENDING (Secrets Manager labels it before createSecret; a store that shows
    // no placeholder is let through for that one step).
    match &labels {
        Some(labels) if labels.iter().any(|l| l == CURRENT) => {
            return Ok(StepOutcome::AlreadyDone);
        }
        Some(labels) if labels.iter().any(|l| l == PENDING) => {}
        None if event.step == Step::Create => {}
        _ => return Err(RotationError::NotPending(event.token.clone())),
    }
    if event.step == Step::Test && configuration_test(secret, &event.token).await? {
        return Ok(StepOutcome::Checked);
    }
    let current = secret
        .at_stage(CURRENT)
        .await?
        .ok_or(RotationError::NoCurrentSet)?;
    match event.step {
        Step::Create => {
            if secret.pending(&event.token).await?.is_some() {
                return Ok(StepOutcome::AlreadyDone);
            }
            let mut doc =
                KeySetDocument::parse(&current.text).map_err(RotationError::InvalidSet)?;
            let policy = RotationPolicy::for_document(&doc, ctx.jwks_max_age, ctx.local);
            let rotation =
                rotate_all(&mut doc, ctx.now, policy).map_err(RotationError::InvalidSet)?;
            doc.built_from = Some(current.version_id);
            let text = serde_json::to_string(&doc)
                .map_err(|e| RotationError::InvalidSet(e.to_string()))?;
            secret.put_pending(&event.token, &text).await?;
            Ok(StepOutcome::Staged(rotation))
        }
        Step::Set => Ok(StepOutcome::Checked),
        Step::Test => {
            let doc = pending_set(secret, &event.token, &current).await?;
            // Every key parses, RS256 signs (id_tokens), and each active key signs a token
            // its own public half verifies.
            let keys = KeySet::from_document(&doc).map_err(RotationError::InvalidSet)?;
            if keys.signer(super::Alg::Rs256).is_none() {
                return Err(RotationError::InvalidSet("no active RS256 key".into()));
            }
            for alg in super::Alg::ALL {
                if let Some(signer) = keys.signer(alg) {
                    probe(&keys, signer).map_err(RotationError::InvalidSet)?;
                }
            }
            Ok(StepOutcome::Checked)
        }
        Step::Finish => {
            pending_set(secret, &event.token, &current).await?;
            secret
                .make_current(&event.token, &current.version_id)
                .await?;
            Ok(StepOutcome::Finished)
        }
    }
}

/// Whether this `testSecret` is Secrets Manager checking the set-up rather than a rotation:
/// a schedule created without an immediate rotation calls `testSecret` alone, on a pending
/// version it made itself (no value, or a copy of the current one). Nothing was staged by
/// `createSecret`, so there is nothing to test and nothing may fail (the first deploy runs
/// it before `oauthctl init` has written any set).
async fn configuration_test<S: SecretVersions>(
    secret: &S,
    token: &str,
) -> Result<bool, RotationError> {
    let Some(pending) = secret.pending(token).await? else {
        return Ok(true);
    };
    let current = secret.at_stage(CURRENT).await?;
    Ok(current.is_none_or(|c| c.text == pending))
}

/// The staged set, if it was built from the version that is still current.
async fn pending_set<S: SecretVersions>(
    secret: &S,
    token: &str,
    current: &SecretVersion,
) -> Result<KeySetDocument, RotationError> {
    let text = secret
        .pending(token)
        .await?
        .ok_or_else(|| RotationError::NotPending(token.to_owned()))?;
    let doc = KeySetDocument::parse(&text).map_err(RotationError::InvalidSet)?;
    if doc.built_from.as_deref() != Some(current.version_id.as_str()) {
        return Err(RotationError::CurrentMoved);
    }
    Ok(doc)
}

/// Signs a throwaway JWT with `signer` and verifies it with the set's public key for its kid.
fn probe(keys: &KeySet, signer: &super::Signer) -> Result<(), String> {
    let claims = serde_json::json!({"probe": true});
    let token = signer.sign_jwt("JWT", &claims)?;
    let key = keys
        .verifying_key(signer.kid())
        .ok_or_else(|| format!("key {} is not published", signer.kid()))?;
    let mut validation = jsonwebtoken::Validation::new(key.alg.jsonwebtoken());
    validation.validate_exp = false;
    validation.set_required_spec_claims::<&str>(&[]);
    jsonwebtoken::decode::<serde_json::Value>(&token, &key.key, &validation)
        .map(|_| ())
        .map_err(|e| {
            format!(
                "key {} does not verify its own signature: {e}",
                signer.kid()
            )
        })
}
