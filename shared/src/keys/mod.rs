//! Signing keys (SPEC §6): the key-set document kept in Secrets Manager, key pairs parsed once
//! per load into signers, public halves for JWKS and verification, and the cache.

mod cache;
mod document;
mod generate;
pub mod rotation;
pub mod secret_rotation;
mod signer;

pub use cache::{KeyCache, KeySource};
pub use document::{KeyEntry, KeyPolicy, KeySetDocument, KeyStatus};
pub use generate::generate_key;
pub use signer::{KeySet, Signer, VerifyingKey};

use serde::{Deserialize, Serialize};

/// The JWS algorithms the service signs with (RFC 7518 §3.3, §3.4; RFC 8037 §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Alg {
    #[serde(rename = "RS256")]
    Rs256,
    #[serde(rename = "ES256")]
    Es256,
    #[serde(rename = "EdDSA")]
    EdDsa,
}

impl Alg {
    pub const ALL: [Alg; 3] = [Alg::Rs256, Alg::Es256, Alg::EdDsa];

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "RS256" => Some(Self::Rs256),
            "ES256" => Some(Self::Es256),
            "EdDSA" => Some(Self::EdDsa),
            _ => None,
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Rs256 => "RS256",
            Self::Es256 => "ES256",
            Self::EdDsa => "EdDSA",
        }
    }

    pub fn jsonwebtoken(&self) -> jsonwebtoken::Algorithm {
        match self {
            Self::Rs256 => jsonwebtoken::Algorithm::RS256,
            Self::Es256 => jsonwebtoken::Algorithm::ES256,
            Self::EdDsa => jsonwebtoken::Algorithm::EdDSA,
        }
    }
}

impl std::fmt::Display for Alg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
