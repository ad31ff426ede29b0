//! What the fuzz targets share, on top of the project's one fixture set (`shared::testing`):
//! an ES256-only key set (no RSA generation under a sanitizer), its configuration, and a fresh
//! in-memory store per input, so every input is reproducible on its own (no failure counters
//! or families carried over from earlier inputs).

pub use shared::testing::ISSUER;
use shared::config::Config;
use shared::keys::Alg;
use shared::storage::GrantType;
use shared::storage::memory::MemoryStore;
use shared::testing::StaticKeys;

/// `Authorization` with which client `app` authenticates (`shared::testing::CLIENT_SECRET`).
pub const APP_BASIC: &str = "Basic YXBwOlZkMm1RMW84Y1g0eVo3Yk4wYVI1dFUzd0U2aEo5a0wycFM0Zkc4ZEExcUM=";

pub fn keys() -> StaticKeys {
    shared::testing::key_set(&[Alg::Es256])
}

pub fn config() -> Config {
    shared::testing::config(Alg::Es256, &[])
}

/// The private_key_jwt client of `store`: its JWKS is the fuzz key set's public half.
pub const SIGNER: &str = "signer";

fn key_set() -> &'static shared::keys::KeySet {
    static KEYS: std::sync::OnceLock<shared::keys::KeySet> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| {
        let doc = shared::keys::KeySetDocument::parse(&keys().0).expect("fuzz key set");
        shared::keys::KeySet::from_document(&doc).expect("fuzz key set")
    })
}

/// A valid client assertion of `SIGNER` for the token endpoint, with a fresh `jti`.
pub fn assertion() -> String {
    let now = shared::now_epoch();
    let claims = serde_json::json!({
        "iss": SIGNER, "sub": SIGNER, "aud": format!("{ISSUER}/v2/token"),
        "exp": now + 60, "iat": now, "jti": shared::crypto::random_secret(),
    });
    let signer = key_set().signer(Alg::Es256).expect("an ES256 key");
    signer.sign_jwt("JWT", &claims).expect("signed assertion")
}

/// A valid DPoP proof for the token endpoint (ES256, the fixtures' key), with a fresh `jti`.
pub fn proof() -> String {
    shared::testing::dpop_proof(Alg::Es256, "POST", &format!("{ISSUER}/v2/token"))
}

/// A store with client `app` (`APP_BASIC`) and the private_key_jwt client `SIGNER`, both
/// allowed `grants`. No password grant anywhere: it would put argon2 (tens of ms under ASan)
/// in the loop.
pub fn store(grants: &[&str]) -> MemoryStore {
    let grants: Vec<GrantType> = grants.iter().filter_map(|g| GrantType::parse(g)).collect();
    let store = MemoryStore::default();
    store.put_client(shared::testing::client("app", &grants));
    let mut signer = shared::testing::client(SIGNER, &grants);
    signer.secrets.clear();
    signer.jwks = Some(key_set().jwks_json().to_owned());
    store.put_client(signer);
    store
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
}

/// Where client `web` may return after logout.
pub const AFTER_LOGOUT_URI: &str = "https://app.example.com/bye";

/// A store with browser client `web` (authorization_code, consent asked, redirect URI
/// `shared::testing::REDIRECT_URI`, post-logout URI `AFTER_LOGOUT_URI`) and no user.
pub fn browser_store() -> MemoryStore {
    let store = MemoryStore::default();
    let mut web = shared::testing::client("web", &[GrantType::AuthorizationCode]);
    web.consent = true;
    web.post_logout_redirect_uris = vec![AFTER_LOGOUT_URI.to_owned()];
    store.put_client(web);
    store
}
