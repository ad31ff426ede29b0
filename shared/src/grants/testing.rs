//! Fixtures for unit tests of the grants.

use std::collections::BTreeMap;

use crate::crypto::sha256_b64;
use crate::storage::{Client, GrantType, StoredSecret};

pub(crate) fn client(id: &str, secret: &str) -> Client {
    Client {
        client_id: id.to_owned(),
        name: "test".to_owned(),
        secrets: vec![StoredSecret {
            sha256: sha256_b64(secret.as_bytes()),
            expires_at: None,
        }],
        api_key_sha256: None,
        grants: vec![
            GrantType::ClientCredentials,
            GrantType::Password,
            GrantType::RefreshToken,
        ],
        allowed_scopes: ["openid", "profile", "email", "read", "write"]
            .map(String::from)
            .to_vec(),
        default_scopes: vec!["read".to_owned()],
        redirect_uris: vec!["https://app.example.com/cb".to_owned()],
        access_token_ttl: 3600,
        refresh_token_ttl: 30 * 24 * 3600,
        audience: None,
        claims: BTreeMap::new(),
        enabled: true,
        created_at: 0,
    }
}
