//! An in-process token service on the in-memory store: real parsing, grants, keys and signing,
//! no I/O. The fixtures are `shared::testing`'s, shared with the benches and fuzz targets.

#![allow(dead_code)]

pub use shared::testing::*;

use shared::endpoints::token::TokenService;
use shared::endpoints::tokeninfo::TokenInfoService;
use shared::keys::Alg;
use shared::storage::memory::MemoryStore;

pub fn all_keys() -> StaticKeys {
    key_set(&Alg::ALL)
}

pub fn token_service(alg: Alg, password_hash: &str) -> TokenService<MemoryStore, StaticKeys> {
    TokenService::new(config(alg, &[]), store(password_hash), all_keys())
}

/// The tokeninfo function over the same store records as a token service's.
pub fn tokeninfo_service(
    alg: Alg,
    store: MemoryStore,
) -> TokenInfoService<MemoryStore, StaticKeys> {
    TokenInfoService::new(config(alg, &[]), store, all_keys())
}
