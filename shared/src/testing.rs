//! The one fixture set of the project's unit tests, integration tests, benchmarks and fuzz
//! targets (feature `testing`): a key set, a configuration, clients, a user, an in-memory
//! store holding them, and request builders.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use base64::Engine;

use crate::config::Config;
use crate::crypto::sha256_b64;
use crate::error::StoreError;
use crate::http::{ApiRequest, ApiResponse};
use crate::keys::rotation::ensure_keys;
use crate::keys::{Alg, KeySetDocument, KeySource};
use crate::storage::memory::MemoryStore;
use crate::storage::{Client, GrantType, StoredSecret, User};

pub const ISSUER: &str = "https://id.example.com/oauth";
/// Every fixture client's secret: the shape `oauthctl` generates (43 base64url characters).
pub const CLIENT_SECRET: &str = "Vd2mQ1o8cX4yZ7bN0aR5tU3wE6hJ9kL2pS4fG8dA1qC";
/// A secret of the same shape that no client has.
pub const WRONG_SECRET: &str = "Xd2mQ1o8cX4yZ7bN0aR5tU3wE6hJ9kL2pS4fG8dA1qC";
pub const USERNAME: &str = "alice";
pub const USER_ID: &str = "6f0c1d2e-3b4a-4c5d-8e9f-0a1b2c3d4e5f";
pub const PASSWORD: &str = "correct horse battery staple";
pub const REDIRECT_URI: &str = "https://app.example.com/cb";

/// A key source that always answers the same key-set document.
#[derive(Clone)]
pub struct StaticKeys(pub String);

impl KeySource for StaticKeys {
    async fn load(&self) -> Result<Option<String>, StoreError> {
        Ok(Some(self.0.clone()))
    }
}

/// A key set with an active and a next key for each of `algs` (RS256 always: id_tokens).
/// Generated once per process and set of algorithms: RSA generation is slow.
pub fn key_set(algs: &[Alg]) -> StaticKeys {
    static ALL: OnceLock<String> = OnceLock::new();
    static ES256_ONLY: OnceLock<String> = OnceLock::new();
    let generate = |algs: &[Alg]| {
        let mut doc = KeySetDocument::default();
        for alg in algs {
            ensure_keys(&mut doc, *alg, crate::now_epoch()).expect("key generation");
        }
        serde_json::to_string(&doc).expect("key set JSON")
    };
    let text = if algs == [Alg::Es256] {
        // The fuzz targets: no RSA generation under a sanitizer.
        ES256_ONLY.get_or_init(|| generate(algs))
    } else {
        ALL.get_or_init(|| generate(&Alg::ALL))
    };
    StaticKeys(text.clone())
}

/// Configuration with `ISSUER` fixed, `ACCESS_TOKEN_ALG = alg`, and `extra` variables.
pub fn config(alg: Alg, extra: &[(&str, &str)]) -> Config {
    // The audit lines are checked on the real binaries (tests/e2e); here they would only
    // flood the terminal.
    crate::audit::quiet();
    let mut vars: BTreeMap<&str, String> = [
        ("TABLE_NAME", "test".to_owned()),
        ("SIGNING_KEYS_SECRET_ID", "test".to_owned()),
        ("ISSUER", ISSUER.to_owned()),
        ("ACCESS_TOKEN_ALG", alg.as_str().to_owned()),
    ]
    .into_iter()
    .collect();
    vars.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
    Config::from_lookup(|k| vars.get(k).cloned()).expect("test configuration")
}

/// An enabled client with secret `CLIENT_SECRET`, allowed the OIDC scopes and `read write`
/// (default `read`), redirect URI `REDIRECT_URI`, claim `tier=gold`.
pub fn client(id: &str, grants: &[GrantType]) -> Client {
    Client {
        client_id: id.to_owned(),
        name: id.to_owned(),
        secrets: vec![StoredSecret {
            sha256: sha256_b64(CLIENT_SECRET.as_bytes()),
            expires_at: None,
        }],
        api_key_sha256: None,
        grants: grants.to_vec(),
        allowed_scopes: ["openid", "profile", "email", "address", "read", "write"]
            .map(String::from)
            .to_vec(),
        default_scopes: vec!["read".to_owned()],
        redirect_uris: vec![REDIRECT_URI.to_owned()],
        access_token_ttl: 3600,
        refresh_token_ttl: 86_400,
        audience: None,
        claims: BTreeMap::from([("tier".to_owned(), "gold".to_owned())]),
        enabled: true,
        created_at: 0,
        public: false,
        pkce_required: true,
        consent: false,
        post_logout_redirect_uris: Vec::new(),
        jwks: None,
        jwks_uri: None,
        dpop_bound_access_tokens: false,
        require_pushed_authorization_requests: false,
    }
}

/// User `alice` (`USER_ID`) with an e-mail claim.
pub fn user(password_hash: &str) -> User {
    User {
        username: USERNAME.to_owned(),
        user_id: USER_ID.to_owned(),
        password_hash: password_hash.to_owned(),
        claims: BTreeMap::from([("email".to_owned(), "alice@example.com".to_owned())]),
        enabled: true,
        created_at: 0,
        credentials_changed_at: 0,
    }
}

/// The argon2id hash of `PASSWORD`, computed once per process.
pub fn password_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| crate::password::hash_password(PASSWORD).expect("argon2 hash"))
}

/// Clients `app` (client_credentials, password, refresh_token), `svc` (client_credentials),
/// `off` (client_credentials, disabled); user `alice` with `password_hash`.
pub fn store(password_hash: &str) -> MemoryStore {
    let store = MemoryStore::default();
    let all = [
        GrantType::ClientCredentials,
        GrantType::Password,
        GrantType::RefreshToken,
    ];
    store.put_client(client("app", &all));
    store.put_client(client("svc", &[GrantType::ClientCredentials]));
    let mut off = client("off", &[GrantType::ClientCredentials]);
    off.enabled = false;
    store.put_client(off);
    store.put_user(user(password_hash));
    store
}

/// `Authorization: Basic` of `user:password` (RFC 7617).
pub fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// A POST with a body of `content_type` and extra `headers`.
pub fn post(path: &str, content_type: &str, body: &str, headers: &[(&str, &str)]) -> ApiRequest {
    let mut request = ApiRequest {
        method: http::Method::POST,
        path: path.to_owned(),
        body: body.as_bytes().to_vec(),
        domain_name: Some("id.example.com".to_owned()),
        ..ApiRequest::default()
    };
    request.headers.insert(
        "content-type",
        content_type.parse().expect("content type header"),
    );
    for (name, value) in headers {
        request.headers.insert(
            http::HeaderName::from_bytes(name.as_bytes()).expect("header name"),
            value.parse().expect("header value"),
        );
    }
    request
}

/// A form POST to the token endpoint.
pub fn form(body: &str, headers: &[(&str, &str)]) -> ApiRequest {
    post(
        "/oauth/v2/token",
        "application/x-www-form-urlencoded",
        body,
        headers,
    )
}

pub fn json_of(response: &ApiResponse) -> serde_json::Value {
    serde_json::from_str(&response.body).unwrap_or(serde_json::Value::Null)
}

/// The claims of a JWT, without verification (tests verify separately).
pub fn claims_of(jwt: &str) -> serde_json::Value {
    let payload = jwt.split('.').nth(1).expect("a JWS has a payload");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url payload");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

/// The fixture key set holding `alg`, parsed once (DPoP proofs sign with it); ES256 alone
/// from the fuzz targets' set, without RSA generation.
fn parsed_keys(alg: Alg) -> &'static crate::keys::KeySet {
    static ALL: OnceLock<crate::keys::KeySet> = OnceLock::new();
    static ES256_ONLY: OnceLock<crate::keys::KeySet> = OnceLock::new();
    let (cell, algs): (_, &[Alg]) = match alg {
        Alg::Es256 => (&ES256_ONLY, &[Alg::Es256]),
        _ => (&ALL, &Alg::ALL),
    };
    cell.get_or_init(|| {
        let doc = KeySetDocument::parse(&key_set(algs).0).expect("fixture key set");
        crate::keys::KeySet::from_document(&doc).expect("fixture keys")
    })
}

/// The public JWK of the fixture key for `alg`, as a DPoP proof embeds it.
pub fn dpop_public_jwk(alg: Alg) -> serde_json::Value {
    let keys = parsed_keys(alg);
    let kid = keys.signer(alg).expect("a key per algorithm").kid();
    let jwks: serde_json::Value = serde_json::from_str(keys.jwks_json()).expect("JWKS JSON");
    jwks["keys"]
        .as_array()
        .and_then(|keys| keys.iter().find(|k| k["kid"] == kid))
        .cloned()
        .expect("the signer's key is in the JWKS")
}

/// The claims of a DPoP proof for `method` `url` at `iat`, with a fresh `jti`.
pub fn dpop_claims(method: &str, url: &str, iat: i64) -> serde_json::Value {
    serde_json::json!({
        "jti": crate::crypto::b64url(&crate::crypto::random_bytes::<12>()),
        "htm": method, "htu": url, "iat": iat,
    })
}

/// A DPoP proof (RFC 9449 §4.2) over `claims`, signed by the fixture key for `alg`, with that
/// key as `jwk`; `header_changes` replace header members (null removes one).
pub fn dpop_proof_with(
    alg: Alg,
    header_changes: &serde_json::Value,
    claims: &serde_json::Value,
) -> String {
    let mut header = serde_json::json!({
        "typ": "dpop+jwt", "alg": alg.as_str(), "jwk": dpop_public_jwk(alg),
    });
    for (name, value) in header_changes.as_object().into_iter().flatten() {
        match value {
            serde_json::Value::Null => drop(header.as_object_mut().and_then(|h| h.remove(name))),
            value => header[name] = value.clone(),
        }
    }
    let b64 = |v: &serde_json::Value| crate::crypto::b64url(v.to_string().as_bytes());
    let input = format!("{}.{}", b64(&header), b64(claims));
    let signer = parsed_keys(alg).signer(alg).expect("a key per algorithm");
    let signature = signer.sign(input.as_bytes()).expect("signing");
    format!("{input}.{}", crate::crypto::b64url(&signature))
}

/// A DPoP proof for `method` `url` now, by the fixture key for `alg`.
pub fn dpop_proof(alg: Alg, method: &str, url: &str) -> String {
    let claims = dpop_claims(method, url, crate::now_epoch());
    dpop_proof_with(alg, &serde_json::json!({}), &claims)
}

/// An API Gateway HTTP API event (payload format 2.0) as AWS sends it for a client_credentials
/// request, every field of the documented shape present: base64 body, cookies apart, a header
/// API Gateway has joined, the authorizer-free request context.
pub fn http_api_event_json() -> serde_json::Value {
    let body = base64::engine::general_purpose::STANDARD
        .encode("grant_type=client_credentials&scope=read");
    serde_json::json!({
        "version": "2.0",
        "routeKey": "POST /oauth/v2/token",
        "rawPath": "/oauth/v2/token",
        "rawQueryString": "a=1&b=two%20words",
        "cookies": ["sid=abc", "theme=dark"],
        "headers": {
            "accept": "application/json",
            "authorization": "Basic Y2xpZW50OnNlY3JldA==",
            "content-length": "40",
            "content-type": "application/x-www-form-urlencoded",
            "host": "id.example.com",
            "user-agent": "python-requests/2.32.3",
            "x-amzn-trace-id": "Root=1-67891233-abcdef012345678912345678",
            "x-forwarded-for": "198.51.100.7, 203.0.113.9",
            "x-forwarded-port": "443",
            "x-forwarded-proto": "https"
        },
        "queryStringParameters": {"a": "1", "b": "two words"},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "api-id",
            "domainName": "id.example.com",
            "domainPrefix": "id",
            "http": {
                "method": "POST",
                "path": "/oauth/v2/token",
                "protocol": "HTTP/1.1",
                "sourceIp": "198.51.100.7",
                "userAgent": "python-requests/2.32.3"
            },
            "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
            "routeKey": "POST /oauth/v2/token",
            "stage": "$default",
            "time": "03/Dec/2026:19:03:58 +0000",
            "timeEpoch": 1796324638000_u64
        },
        "body": body,
        "isBase64Encoded": true
    })
}
