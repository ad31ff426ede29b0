//! All logic of the token service: request parsing, client authentication, grants, token minting
//! and verification, signing keys, and the storage ports with their adapters.
//!
//! Folder = concept: `request` (wire parsing), `grants` (RFC 6749 §4–§6), `tokens` (RFC 9068
//! access tokens, id_tokens, opaque refresh tokens), `keys` (signing key set, JWKS), `storage`
//! (ports, DynamoDB / Secrets Manager / in-memory adapters), `endpoints` (HTTP-shaped handlers,
//! independent of Lambda), `lambda` (the only place that knows the Lambda runtime).

pub mod audit;
pub mod authorize;
pub mod config;
pub mod crypto;
pub mod endpoints;
pub mod error;
#[cfg(feature = "https")]
pub mod fetch;
pub mod grants;
pub mod http;
pub mod keys;
#[cfg(feature = "lambda")]
pub mod lambda;
pub mod password;
pub mod request;
pub mod storage;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod tokens;

/// Seconds since the Unix epoch.
pub fn now_epoch() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
