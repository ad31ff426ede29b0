//! The JSON document stored in the signing-key secret.

use serde::{Deserialize, Serialize};

use super::Alg;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct KeySetDocument {
    pub keys: Vec<KeyEntry>,
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
