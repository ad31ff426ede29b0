//! User passwords: argon2id with m = 19456 KiB, t = 2, p = 1 (OWASP's minimum recommendation),
//! always verified on a blocking thread so the async executor never stalls for ~20 ms.
//!
//! Verification fills its 19 MiB of argon2 blocks in one buffer kept for the life of the
//! process. Allocating it per call cost more than the memory: glibc keeps a freed buffer that
//! large in the arena of whichever blocking thread freed it, so a warm function grew by 19 MiB
//! per pool thread (126 MiB RSS, measured), and every call paid the page faults of touching
//! fresh memory again.

use std::sync::Mutex;

use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use subtle::ConstantTimeEq;

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

/// The largest memory cost a stored hash may ask for: the buffer grows to the largest hash
/// verified, so a hash asking for more is refused rather than allowed to take the function's
/// memory (every hash `oauthctl` writes uses `MEMORY_KIB`).
const MAX_STORED_MEMORY_KIB: u32 = 4 * MEMORY_KIB;

/// The process's argon2 working memory; a verification that finds it busy uses its own.
static BLOCKS: Mutex<Vec<Block>> = Mutex::new(Vec::new());

/// Verifies `password` against `stored`, or against the dummy hash when there is no user (the
/// result is then always false). A malformed stored hash also verifies as false.
pub fn verify_password(password: &str, stored: Option<&str>) -> bool {
    let target = stored.unwrap_or(DUMMY_HASH);
    let parsed = PasswordHash::new(target).or_else(|_| PasswordHash::new(DUMMY_HASH));
    let matches = parsed.is_ok_and(|hash| match BLOCKS.try_lock() {
        Ok(mut blocks) => verify_in(&mut blocks, password, &hash),
        Err(_) => verify_in(&mut Vec::new(), password, &hash),
    });
    matches && stored.is_some()
}

/// What `PasswordVerifier::verify_password` does, with the blocks in `blocks` (grown to the
/// hash's memory cost, never shrunk).
fn verify_in(blocks: &mut Vec<Block>, password: &str, hash: &PasswordHash) -> bool {
    let (Some(salt), Some(expected)) = (hash.salt, hash.hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(hash.algorithm) else {
        return false;
    };
    let version = match hash.version.map(Version::try_from).transpose() {
        Ok(version) => version.unwrap_or_default(),
        Err(_) => return false,
    };
    let Ok(params) = Params::try_from(hash) else {
        return false;
    };
    if params.m_cost() > MAX_STORED_MEMORY_KIB {
        return false;
    }
    let mut salt_buffer = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buffer) else {
        return false;
    };
    if blocks.len() < params.block_count() {
        blocks.resize(params.block_count(), Block::default());
    }
    let mut computed = vec![0u8; expected.len()];
    let hashed = Argon2::new(algorithm, version, params).hash_password_into_with_memory(
        password.as_bytes(),
        salt,
        &mut computed,
        &mut blocks[..],
    );
    hashed.is_ok() && bool::from(computed.ct_eq(expected.as_bytes()))
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
    fn verifies_as_the_argon2_crate_does_whatever_the_stored_parameters() {
        use argon2::password_hash::PasswordVerifier;
        let salt = SaltString::encode_b64(&[7u8; 16]).unwrap();
        for (algorithm, version, m, t, len) in [
            (Algorithm::Argon2id, Version::V0x13, 64, 1, 32),
            (Algorithm::Argon2i, Version::V0x10, 256, 3, 16),
            (Algorithm::Argon2d, Version::V0x13, 128, 2, 64),
        ] {
            let params = Params::new(m, t, 1, Some(len)).unwrap();
            let hash = Argon2::new(algorithm, version, params)
                .hash_password(b"pw", &salt)
                .unwrap()
                .to_string();
            let parsed = PasswordHash::new(&hash).unwrap();
            assert!(hasher().verify_password(b"pw", &parsed).is_ok());
            assert!(verify_password("pw", Some(&hash)), "{hash}");
            assert!(!verify_password("pW", Some(&hash)), "{hash}");
        }
    }

    #[test]
    fn the_working_memory_is_kept_for_the_next_verification() {
        let hash = hash_password("correct horse").unwrap();
        assert!(verify_password("correct horse", Some(&hash)));
        let kept = BLOCKS.lock().unwrap().len();
        assert!(kept >= MEMORY_KIB as usize, "{kept} blocks kept");
    }

    #[test]
    fn a_hash_asking_for_more_memory_than_allowed_is_refused_unrun() {
        let params = Params::new(MAX_STORED_MEMORY_KIB + 8, 1, 1, None).unwrap();
        let salt = SaltString::encode_b64(&[1u8; 16]).unwrap();
        let hash = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password(b"pw", &salt)
            .unwrap()
            .to_string();
        assert!(!verify_password("pw", Some(&hash)));
    }

    #[test]
    fn missing_or_malformed_hashes_never_verify() {
        assert!(!verify_password("anything", None));
        assert!(!verify_password("anything", Some("not a hash")));
        assert!(PasswordHash::new(DUMMY_HASH).is_ok());
    }
}
