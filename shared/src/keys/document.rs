//! The JSON document stored in the signing-key secret.

use serde::{Deserialize, Serialize};

use super::Alg;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct KeySetDocument {
    pub keys: Vec<KeyEntry>,
    /// The deployment's cache and token lifetimes, which decide when a rotation may promote a
    /// key and when a retired one may go: kept with the keys so that whoever rotates (an
    /// operator's shell, the rotation function) uses the deployed values, not its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<KeyPolicy>,
    /// On a set staged by the rotation function: the version id it was derived from, so the
    /// rotation can tell whether AWSCURRENT moved meanwhile (`keys::secret_rotation`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub built_from: Option<String>,
}

/// The functions' `KEY_CACHE_SECONDS` and `MAX_TOKEN_TTL` as deployed.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct KeyPolicy {
    pub key_cache_seconds: i64,
    pub max_token_ttl: i64,
}

impl KeyPolicy {
    /// The stricter of two policies: longer caches and lifetimes make rotation wait longer and
    /// keep retired keys longer, which is safe for both.
    pub fn covering(self, other: KeyPolicy) -> KeyPolicy {
        KeyPolicy {
            key_cache_seconds: self.key_cache_seconds.max(other.key_cache_seconds),
            max_token_ttl: self.max_token_ttl.max(other.max_token_ttl),
        }
    }
}

#[derive(Clone, Serialize, Deserialize, PartialEq)]
pub struct KeyEntry {
    pub kid: String,
    pub alg: Alg,
    /// Unencrypted PKCS#8 (`BEGIN PRIVATE KEY`).
    pub private_key_pem: String,
    pub status: KeyStatus,
    pub created_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activated_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired_at: Option<i64>,
}

impl std::fmt::Debug for KeyEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyEntry")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("private_key_pem", &"<redacted>")
            .field("status", &self.status)
            .finish()
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum KeyStatus {
    /// Signs new tokens; at most one per alg.
    Active,
    /// Published in JWKS ahead of activation so caches learn it first.
    Next,
    /// Published so tokens it signed still verify; signs nothing.
    Retired,
}

impl KeySetDocument {
    pub fn parse(text: &str) -> Result<Self, String> {
        serde_json::from_str(text).map_err(|e| format!("key set is not valid JSON: {e}"))
    }

    pub fn active(&self, alg: Alg) -> Option<&KeyEntry> {
        self.keys
            .iter()
            .find(|k| k.alg == alg && k.status == KeyStatus::Active)
    }
}
