//! User passwords: argon2id with m = 19456 KiB, t = 2, p = 1 (OWASP's minimum recommendation),
//! always verified on a blocking thread so the async executor never stalls for ~20 ms.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::crypto::random_bytes;

pub const MEMORY_KIB: u32 = 19_456;
pub const ITERATIONS: u32 = 2;
pub const PARALLELISM: u32 = 1;

/// A hash of a random, forgotten password with the same parameters: verifying against it costs
/// exactly what verifying a real user's password costs, so "no such user" and "wrong password"
/// take the same time.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$OKRukHfZ5QSIFKqUqlMqxw$jKhU/h3K8bYe5cJxwxVTpMj103I5Gt0IyVKV/4p816k";

fn hasher() -> Argon2<'static> {
    let params = Params::new(MEMORY_KIB, ITERATIONS, PARALLELISM, None)
        .expect("constant argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// A PHC string for storage.
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::encode_b64(&random_bytes::<16>()).map_err(|e| e.to_string())?;
    hasher()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Verifies `password` against `stored`, or against the dummy hash when there is no user (the
/// result is then always false). A malformed stored hash also verifies as false.
pub fn verify_password(password: &str, stored: Option<&str>) -> bool {
    let target = stored.unwrap_or(DUMMY_HASH);
    let parsed = PasswordHash::new(target).or_else(|_| PasswordHash::new(DUMMY_HASH));
    let matches =
        parsed.is_ok_and(|hash| hasher().verify_password(password.as_bytes(), &hash).is_ok());
    matches && stored.is_some()
}

/// `verify_password` on the blocking pool.
pub async fn verify_password_off_executor(password: String, stored: Option<String>) -> bool {
    tokio::task::spawn_blocking(move || verify_password(&password, stored.as_deref()))
        .await
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_use_the_agreed_parameters() {
        let hash = hash_password("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(verify_password("correct horse", Some(&hash)));
        assert!(!verify_password("wrong", Some(&hash)));
    }

    #[test]
    fn missing_or_malformed_hashes_never_verify() {
        assert!(!verify_password("anything", None));
        assert!(!verify_password("anything", Some("not a hash")));
        assert!(PasswordHash::new(DUMMY_HASH).is_ok());
    }
}
