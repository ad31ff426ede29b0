//! Configuration read once at cold start from the environment (SPEC §2).

use std::time::Duration;

use crate::keys::Alg;

/// Default cap on any client's access/refresh token lifetime: 90 days.
pub const DEFAULT_MAX_TOKEN_TTL: i64 = 90 * 24 * 3600;

/// A disabled, deleted or re-keyed client is refused by every warm instance within the hour.
pub const MAX_CLIENT_CACHE_SECONDS: u64 = 3600;

#[derive(Debug, Clone)]
pub struct Config {
    pub table_name: String,
    pub signing_keys_secret_id: String,
    /// Fixed issuer; `None` derives `https://{requestContext.domainName}/oauth` per request.
    pub issuer: Option<String>,
    pub access_token_alg: Alg,
    pub max_token_ttl: i64,
    pub key_cache: Duration,
    /// How long a warm token function may reuse a client record for client_credentials
    /// (`CLIENT_CACHE_SECONDS`, default 0 = never; at most `MAX_CLIENT_CACHE_SECONDS`).
    pub client_cache: Duration,
    /// Lower-cased header name carrying a client's API key.
    pub api_key_header: String,
    /// Failed password logins within `lockout_window` that lock a username.
    pub lockout_threshold: u32,
    /// Seconds a failure counts for; a locked username unlocks this long after its last failure.
    pub lockout_window: i64,
    /// A browser session ends this long after its last use (`SESSION_IDLE_SECONDS`)...
    pub session_idle: i64,
    /// ...and this long after the login at the latest (`SESSION_MAX_SECONDS`).
    pub session_max: i64,
    /// The hosted login page's look: `LOGIN_TITLE`, `LOGIN_LOGO_URL`, `LOGIN_EXTRA_CSS`.
    pub branding: crate::authorize::page::Branding,
    /// DPoP proofs must carry a server-provided nonce (`DPOP_NONCE_REQUIRED`, RFC 9449 §8-9):
    /// a proof made in advance, before the nonce existed, is refused.
    pub dpop_nonce_required: bool,
    /// Every client's authorization requests only as pushed ones (`REQUIRE_PAR`, RFC 9126 §5).
    pub require_par: bool,
    /// Every DynamoDB call through the AWS SDK, GetItem too (`DYNAMODB_SDK_ONLY`): the escape
    /// hatch from the direct read path (`storage::dynamo_http`), and the bench's comparison.
    pub dynamodb_sdk_only: bool,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    #[error("{0} is required")]
    Missing(&'static str),
    #[error("{0} is invalid: {1}")]
    Invalid(&'static str, &'static str),
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Parses configuration from any key/value source (testable without touching the process env).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        let table_name = get("TABLE_NAME").ok_or(ConfigError::Missing("TABLE_NAME"))?;
        let signing_keys_secret_id =
            get("SIGNING_KEYS_SECRET_ID").ok_or(ConfigError::Missing("SIGNING_KEYS_SECRET_ID"))?;
        let issuer = match get("ISSUER") {
            Some(issuer) => Some(validate_issuer(&issuer)?),
            None => None,
        };
        let access_token_alg = match get("ACCESS_TOKEN_ALG") {
            Some(v) => Alg::parse(&v).ok_or(ConfigError::Invalid(
                "ACCESS_TOKEN_ALG",
                "expected RS256, ES256 or EdDSA",
            ))?,
            None => Alg::Rs256,
        };
        let max_token_ttl =
            parse_positive(get("MAX_TOKEN_TTL"), "MAX_TOKEN_TTL")?.unwrap_or(DEFAULT_MAX_TOKEN_TTL);
        let key_cache =
            parse_positive(get("KEY_CACHE_SECONDS"), "KEY_CACHE_SECONDS")?.unwrap_or(300);
        let client_cache = match get("CLIENT_CACHE_SECONDS") {
            None => 0,
            Some(v) => match v.trim().parse::<u64>() {
                Ok(n) if n <= MAX_CLIENT_CACHE_SECONDS => n,
                _ => {
                    return Err(ConfigError::Invalid(
                        "CLIENT_CACHE_SECONDS",
                        "expected 0 to 3600 seconds",
                    ));
                }
            },
        };
        let api_key_header = get("API_KEY_HEADER")
            .unwrap_or_else(|| "X-API-Key".to_owned())
            .to_ascii_lowercase();
        if http::HeaderName::from_bytes(api_key_header.as_bytes()).is_err() {
            return Err(ConfigError::Invalid(
                "API_KEY_HEADER",
                "not a valid header name",
            ));
        }
        let lockout_threshold =
            parse_positive(get("LOCKOUT_THRESHOLD"), "LOCKOUT_THRESHOLD")?.unwrap_or(5);
        let lockout_window =
            parse_positive(get("LOCKOUT_WINDOW_SECONDS"), "LOCKOUT_WINDOW_SECONDS")?
                .unwrap_or(15 * 60);
        // Keycloak's defaults (SSO Session Idle 30 min, Max 10 h): what teams moving over expect.
        let session_idle =
            parse_positive(get("SESSION_IDLE_SECONDS"), "SESSION_IDLE_SECONDS")?.unwrap_or(1800);
        let session_max =
            parse_positive(get("SESSION_MAX_SECONDS"), "SESSION_MAX_SECONDS")?.unwrap_or(36_000);
        let branding = crate::authorize::page::Branding {
            title: get("LOGIN_TITLE").unwrap_or_else(|| "Sign in".to_owned()),
            logo_url: get("LOGIN_LOGO_URL"),
            extra_css: get("LOGIN_EXTRA_CSS"),
        };
        let dpop_nonce_required = parse_bool(get("DPOP_NONCE_REQUIRED"), "DPOP_NONCE_REQUIRED")?;
        let require_par = parse_bool(get("REQUIRE_PAR"), "REQUIRE_PAR")?;
        let dynamodb_sdk_only = parse_bool(get("DYNAMODB_SDK_ONLY"), "DYNAMODB_SDK_ONLY")?;
        Ok(Self {
            dynamodb_sdk_only,
            dpop_nonce_required,
            require_par,
            session_idle,
            session_max,
            branding,
            table_name,
            signing_keys_secret_id,
            issuer,
            access_token_alg,
            max_token_ttl,
            key_cache: Duration::from_secs(key_cache as u64),
            client_cache: Duration::from_secs(client_cache),
            api_key_header,
            lockout_threshold: u32::try_from(lockout_threshold)
                .map_err(|_| ConfigError::Invalid("LOCKOUT_THRESHOLD", "too large"))?,
            lockout_window,
        })
    }
}

/// `true` or `false`; absent is false.
fn parse_bool(value: Option<String>, name: &'static str) -> Result<bool, ConfigError> {
    match value.as_deref().map(str::trim) {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(_) => Err(ConfigError::Invalid(name, "expected true or false")),
    }
}

fn parse_positive(value: Option<String>, name: &'static str) -> Result<Option<i64>, ConfigError> {
    match value {
        None => Ok(None),
        Some(v) => match v.trim().parse::<i64>() {
            Ok(n) if n > 0 => Ok(Some(n)),
            _ => Err(ConfigError::Invalid(name, "expected a positive integer")),
        },
    }
}

/// The issuer must be `https://<host>/oauth`; plain http only on loopback (RFC 8414 §2 requires
/// https, local development is the one exception).
pub fn validate_issuer(issuer: &str) -> Result<String, ConfigError> {
    const INVALID: ConfigError = ConfigError::Invalid(
        "ISSUER",
        "expected https://<host>/oauth (http only for 127.0.0.1/localhost)",
    );
    let rest = if let Some(rest) = issuer.strip_prefix("https://") {
        rest
    } else if let Some(rest) = issuer.strip_prefix("http://") {
        let host = rest.split(['/', ':']).next().unwrap_or_default();
        if host != "127.0.0.1" && host != "localhost" {
            return Err(INVALID);
        }
        rest
    } else {
        return Err(INVALID);
    };
    let (authority, path) = rest.split_once('/').ok_or(INVALID)?;
    let valid_authority = !authority.is_empty()
        && authority
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'));
    if !valid_authority || path != "oauth" {
        return Err(INVALID);
    }
    Ok(issuer.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    const BASE: [(&str, &str); 2] = [("TABLE_NAME", "t"), ("SIGNING_KEYS_SECRET_ID", "s")];

    #[test]
    fn defaults_apply_when_only_required_variables_are_set() {
        let c = config(&BASE).unwrap();
        assert_eq!(c.access_token_alg, Alg::Rs256);
        assert_eq!(c.max_token_ttl, DEFAULT_MAX_TOKEN_TTL);
        assert_eq!(c.key_cache, Duration::from_secs(300));
        assert_eq!(c.api_key_header, "x-api-key");
        assert_eq!(c.issuer, None);
    }

    #[test]
    fn boolean_settings_are_off_unless_set_to_true() {
        let base = config(&BASE).unwrap();
        assert!(!base.dpop_nonce_required && !base.require_par && !base.dynamodb_sdk_only);
        let read = |name: &'static str, field: fn(&Config) -> bool| {
            let with = |value| {
                let mut vars = BASE.to_vec();
                vars.push((name, value));
                config(&vars)
            };
            assert!(field(&with("true").unwrap()), "{name}");
            assert!(!field(&with("false").unwrap()), "{name}");
            assert!(matches!(with("yes"), Err(ConfigError::Invalid(n, _)) if n == name));
        };
        read("DPOP_NONCE_REQUIRED", |c| c.dpop_nonce_required);
        read("REQUIRE_PAR", |c| c.require_par);
        read("DYNAMODB_SDK_ONLY", |c| c.dynamodb_sdk_only);
    }

    #[test]
    fn missing_required_variable_is_named() {
        assert_eq!(
            config(&[("TABLE_NAME", "t")]).unwrap_err(),
            ConfigError::Missing("SIGNING_KEYS_SECRET_ID")
        );
        assert_eq!(config(&[]).unwrap_err(), ConfigError::Missing("TABLE_NAME"));
    }

    #[test]
    fn issuer_rules() {
        for ok in [
            "https://id.example.com/oauth",
            "http://127.0.0.1:9000/oauth",
            "http://localhost/oauth",
        ] {
            assert!(validate_issuer(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://id.example.com/oauth",
            "https://id.example.com",
            "https://id.example.com/oauth/",
            "https://id.example.com/other",
            "ftp://x/oauth",
            "https:///oauth",
            "https://a b/oauth",
        ] {
            assert!(validate_issuer(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bad_numbers_and_algs_are_rejected() {
        let mut vars = BASE.to_vec();
        vars.push(("ACCESS_TOKEN_ALG", "HS256"));
        assert!(config(&vars).is_err());
        let mut vars = BASE.to_vec();
        vars.push(("MAX_TOKEN_TTL", "-5"));
        assert!(config(&vars).is_err());
        let mut vars = BASE.to_vec();
        vars.push(("ACCESS_TOKEN_ALG", "ES256"));
        vars.push(("API_KEY_HEADER", "X-EmpowerID-API-Key"));
        let c = config(&vars).unwrap();
        assert_eq!(c.access_token_alg, Alg::Es256);
        assert_eq!(c.api_key_header, "x-empowerid-api-key");
    }

    #[test]
    fn the_client_cache_is_off_unless_set_and_bounded_by_the_hour() {
        assert_eq!(config(&BASE).unwrap().client_cache, Duration::ZERO);
        let with = |v: &str| {
            let mut vars = BASE.to_vec();
            vars.push(("CLIENT_CACHE_SECONDS", v));
            config(&vars).map(|c| c.client_cache)
        };
        assert_eq!(with("0"), Ok(Duration::ZERO));
        assert_eq!(with("60"), Ok(Duration::from_secs(60)));
        assert_eq!(with("3600"), Ok(Duration::from_secs(3600)));
        for bad in ["3601", "-1", "1.5", "soon"] {
            assert!(with(bad).is_err(), "{bad}");
        }
    }
}
