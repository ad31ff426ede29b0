//! Key generation for `oauthctl` (init and rotation).

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair};

use super::{Alg, KeyEntry, KeyStatus};
use crate::crypto::{b64url, random_bytes};

/// A fresh key pair as a key-set entry: PKCS#8 v1 PEM, `kid` random (not derived from the key,
/// so it reveals nothing).
pub fn generate_key(alg: Alg, status: KeyStatus, now: i64) -> Result<KeyEntry, String> {
    let der: Vec<u8> = match alg {
        Alg::Rs256 => aws_lc_rs::rsa::KeyPair::generate(KeySize::Rsa2048)
            .and_then(|k| k.as_der())
            .map(|d| d.as_ref().to_vec()),
        Alg::Es256 => EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
            .and_then(|k| k.to_pkcs8v1())
            .map(|d| d.as_ref().to_vec()),
        Alg::EdDsa => Ed25519KeyPair::generate()
            .and_then(|k| k.to_pkcs8v1())
            .map(|d| d.as_ref().to_vec()),
    }
    .map_err(|_| format!("could not generate a {alg} key"))?;
    let private_key_pem = pem::encode(&pem::Pem::new("PRIVATE KEY", der));
    Ok(KeyEntry {
        kid: format!(
            "{}-{}",
            alg.as_str().to_ascii_lowercase(),
            b64url(&random_bytes::<9>())
        ),
        alg,
        private_key_pem,
        status,
        created_at: now,
        activated_at: (status == KeyStatus::Active).then_some(now),
        retired_at: None,
    })
}
