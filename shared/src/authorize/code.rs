//! Authorization codes (RFC 6749 §4.1.2): 256 random bits handed to the browser once, stored
//! only as their SHA-256 under `code#<hash>`, valid 60 s and redeemed by one conditional write
//! (SPEC §12).

use crate::crypto::{random_secret, sha256_b64};
use crate::storage::AuthorizationCode;

/// RFC 6749 §4.1.2 recommends at most 10 minutes; a browser redirect takes seconds.
pub const CODE_LIFETIME_SECONDS: i64 = 60;

/// A freshly minted code: the wire form for the redirect, the record to store.
pub struct IssuedCode {
    pub code: String,
    pub record: AuthorizationCode,
}

/// The stored key of a presented code.
pub fn code_hash(code: &str) -> String {
    sha256_b64(code.as_bytes())
}

/// Mints a code for `grant`, whose `code_hash` and `exp` it fills in.
pub fn issue_code(mut grant: AuthorizationCode, now: i64) -> IssuedCode {
    let code = random_secret();
    grant.code_hash = code_hash(&code);
    grant.exp = now + CODE_LIFETIME_SECONDS;
    grant.consumed_at = None;
    IssuedCode {
        code,
        record: grant,
    }
}
