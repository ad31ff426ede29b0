//! `client create|list|show|disable|enable|delete|rotate-secret`.

use clap::Subcommand;
use serde_json::json;
use shared::crypto::{random_bytes, random_secret, sha256_b64};
use shared::grants::client_assertion::validate_client_jwks;
use shared::grants::client_jwks::validate_jwks_uri;
use shared::grants::scope::parse_scope;
use shared::now_epoch;
use shared::storage::{Client, ClientDirectory, GrantType, StoredSecret, keys};

use crate::{Admin, CliResult, parse_claims, store_error};

const DEFAULT_ACCESS_TTL: i64 = 3600;
const DEFAULT_REFRESH_TTL: i64 = 30 * 24 * 3600;

#[derive(Subcommand)]
// Parsed once per CLI run: the size of `Create` costs nothing worth boxing it for.
#[allow(clippy::large_enum_variant)]
pub enum ClientCommand {
    /// Register a client; prints its secret (and API key) once.
    Create {
        #[arg(long)]
        name: String,
        /// Client id (generated when absent): [A-Za-z0-9._~-], at most 128, not UUID-shaped.
        #[arg(long)]
        id: Option<String>,
        /// Grant types: client_credentials, password, refresh_token, authorization_code.
        #[arg(long = "grant", required = true)]
        grants: Vec<String>,
        /// Allowed scopes (repeatable, or space-separated).
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// Scopes granted when a request names none (default: every allowed scope).
        #[arg(long = "default-scope")]
        default_scopes: Vec<String>,
        /// Redirect URI of the authorization response (repeatable; compared exactly).
        #[arg(long = "redirect-uri")]
        redirect_uris: Vec<String>,
        /// Where RP-Initiated Logout may return the browser (repeatable; compared exactly).
        #[arg(long = "post-logout-redirect-uri")]
        post_logout_redirect_uris: Vec<String>,
        #[arg(long, default_value_t = DEFAULT_ACCESS_TTL)]
        access_token_ttl: i64,
        #[arg(long, default_value_t = DEFAULT_REFRESH_TTL)]
        refresh_token_ttl: i64,
        /// Also require an API key header.
        #[arg(long)]
        api_key: bool,
        /// `aud` of access tokens (default: the issuer).
        #[arg(long)]
        audience: Option<String>,
        /// Custom access-token claim k=v (repeatable).
        #[arg(long = "claim")]
        claims: Vec<String>,
        /// A public client (a browser or native app): no secret, authorization_code and
        /// refresh_token only, PKCE always.
        #[arg(long)]
        public: bool,
        /// PKCE at the authorization endpoint; `optional` only for a confidential client.
        #[arg(long, value_enum, default_value_t = Pkce::Required)]
        pkce: Pkce,
        /// Ask each user's consent before the first sign-in (remembered per user).
        #[arg(long)]
        consent: bool,
        /// How the client authenticates: a generated secret (Basic or in the body), or
        /// assertions signed with a key of `--jwks` (RFC 7523; no secret exists).
        #[arg(long, value_enum, default_value_t = AuthMethod::ClientSecretBasic)]
        auth_method: AuthMethod,
        /// The client's public keys, a JWKS file (`{"keys": [...]}`), for private_key_jwt.
        #[arg(long, conflicts_with = "jwks_uri")]
        jwks: Option<std::path::PathBuf>,
        /// Or where the client publishes its JWKS (https): each warm function fetches it,
        /// keeps it 5 minutes, and fetches again for a key it does not know.
        #[arg(long)]
        jwks_uri: Option<String>,
        /// Every token request must carry a DPoP proof (RFC 9449): its tokens are all bound
        /// to the client's key, none is a bearer token.
        #[arg(long)]
        require_dpop: bool,
        /// Authorization requests only through PAR (RFC 9126): the browser carries a
        /// `request_uri`, never the parameters.
        #[arg(long)]
        require_par: bool,
    },
    List,
    Show {
        client_id: String,
    },
    /// Change settings of a client: the ones given change, the rest stay. A warm token
    /// function with CLIENT_CACHE_SECONDS may serve the old record for up to that long.
    Update {
        client_id: String,
        /// Require a DPoP proof with every token request (`true`), or stop requiring it.
        #[arg(long)]
        require_dpop: Option<bool>,
        /// Take authorization requests only through PAR (`true`), or also directly.
        #[arg(long)]
        require_par: Option<bool>,
        /// Replace a private_key_jwt client's public keys with this JWKS file (rolling keys:
        /// list the new key beside the old one, then drop the old one later).
        #[arg(long, conflicts_with = "jwks_uri")]
        jwks: Option<std::path::PathBuf>,
        /// Or fetch a private_key_jwt client's keys from this https URL from now on.
        #[arg(long)]
        jwks_uri: Option<String>,
    },
    Disable {
        client_id: String,
    },
    Enable {
        client_id: String,
    },
    Delete {
        client_id: String,
    },
    /// New secret; the old one keeps working for `--grace` seconds.
    RotateSecret {
        client_id: String,
        #[arg(long, default_value_t = 0)]
        grace: i64,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AuthMethod {
    /// RFC 7591 §2 names (also accepted: client_secret_post, which is the same secret).
    #[value(name = "client_secret_basic", alias = "client_secret_post")]
    ClientSecretBasic,
    #[value(name = "private_key_jwt")]
    PrivateKeyJwt,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Pkce {
    Required,
    Optional,
}

/// A redirect URI a client may register (RFC 9700 §4.1.3 compares them exactly, so they must
/// be exact): absolute, no fragment (RFC 6749 §3.1.2); https, loopback http (RFC 8252 §7.3) or
/// a private-use scheme with a dot, for native apps (RFC 8252 §7.1).
fn validate_redirect_uri(uri: &str) -> Result<(), String> {
    let refuse = |why: &str| Err(format!("redirect URI {uri:?}: {why}"));
    if uri.contains('#') {
        return refuse("a fragment is not allowed");
    }
    if uri.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return refuse("whitespace is not allowed");
    }
    let Some((scheme, rest)) = uri.split_once(':') else {
        return refuse("not an absolute URI");
    };
    let scheme = scheme.to_ascii_lowercase();
    match scheme.as_str() {
        "https" if rest.starts_with("//") && rest.len() > 2 => Ok(()),
        "http" => {
            let host = rest
                .strip_prefix("//")
                .and_then(|r| r.split(['/', '?']).next())
                .unwrap_or_default();
            let host = host.rsplit_once(':').map_or(host, |(h, port)| {
                if port.bytes().all(|b| b.is_ascii_digit()) {
                    h
                } else {
                    host
                }
            });
            if matches!(host, "127.0.0.1" | "[::1]" | "localhost") {
                Ok(())
            } else {
                refuse("plain http only for a loopback address (RFC 8252 §7.3)")
            }
        }
        s if s.contains('.')
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b)) =>
        {
            Ok(())
        }
        _ => refuse("expected https, loopback http or a reverse-domain private-use scheme"),
    }
}

/// Public view of a client: never a secret or a digest.
fn view(client: &Client) -> serde_json::Value {
    json!({
        "client_id": client.client_id,
        "name": client.name,
        "grants": client.grants,
        "allowed_scopes": client.allowed_scopes,
        "default_scopes": client.default_scopes,
        "redirect_uris": client.redirect_uris,
        "post_logout_redirect_uris": client.post_logout_redirect_uris,
        "public": client.public,
        "token_endpoint_auth_method": client.auth_method(),
        "jwks_uri": client.jwks_uri,
        "pkce_required": client.pkce_required,
        "consent": client.consent,
        "dpop_bound_access_tokens": client.dpop_bound_access_tokens,
        "require_pushed_authorization_requests": client.require_pushed_authorization_requests,
        "access_token_ttl": client.access_token_ttl,
        "refresh_token_ttl": client.refresh_token_ttl,
        "audience": client.audience,
        "claims": client.claims,
        "requires_api_key": client.api_key_sha256.is_some(),
        "enabled": client.enabled,
        "created_at": client.created_at,
    })
}

fn generated_id() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    random_bytes::<20>()
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

fn validate_id(id: &str) -> Result<(), String> {
    let charset_ok = id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._~-".contains(&b));
    if id.is_empty() || id.len() > shared::storage::MAX_CLIENT_ID_LEN || !charset_ok {
        return Err("client id must be 1-128 characters of [A-Za-z0-9._~-]".into());
    }
    // A user's `sub` is a UUID; a UUID-shaped client id could collide with one.
    if uuid::Uuid::try_parse(id).is_ok() {
        return Err("client id must not look like a UUID (users' subjects are UUIDs)".into());
    }
    Ok(())
}

fn scopes(values: &[String]) -> Result<Vec<String>, String> {
    parse_scope(&values.join(" ")).map_err(|e| e.description().to_owned())
}

fn ttl(admin: &Admin, name: &str, value: i64) -> Result<i64, String> {
    if value <= 0 || value > admin.config.max_token_ttl {
        return Err(format!(
            "{name} must be between 1 and MAX_TOKEN_TTL ({})",
            admin.config.max_token_ttl
        ));
    }
    Ok(value)
}

/// Writes a changed client over its record; answers its view.
async fn replace(admin: &Admin, client: &Client) -> CliResult {
    admin
        .store
        .put_client(client, false)
        .await
        .map_err(store_error)?;
    Ok(view(client))
}

/// A `jwks_uri` a client registers: https (http only to a loopback host).
fn checked_jwks_uri(uri: String) -> Result<String, String> {
    validate_jwks_uri(&uri).map_err(|reason| format!("--jwks-uri {uri:?}: {reason}"))?;
    Ok(uri)
}

/// A JWKS file a client registers, checked (`validate_client_jwks`) and compact.
fn read_jwks(path: &std::path::Path) -> Result<String, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("--jwks {}: {e}", path.display()))?;
    validate_client_jwks(&text)
}

async fn existing(admin: &Admin, client_id: &str) -> Result<Client, String> {
    admin
        .store
        .client(client_id)
        .await
        .map_err(store_error)?
        .ok_or_else(|| format!("no client {client_id:?}"))
}

pub async fn run(admin: &Admin, command: ClientCommand) -> CliResult {
    match command {
        ClientCommand::Create {
            name,
            id,
            grants,
            scopes: allowed,
            default_scopes,
            redirect_uris,
            post_logout_redirect_uris,
            access_token_ttl,
            refresh_token_ttl,
            api_key,
            audience,
            claims,
            public,
            pkce,
            consent,
            auth_method,
            jwks,
            jwks_uri,
            require_dpop,
            require_par,
        } => {
            let client_id = id.unwrap_or_else(generated_id);
            validate_id(&client_id)?;
            let mut grant_types = Vec::new();
            for grant in &grants {
                match GrantType::parse(grant) {
                    Some(g) if !grant_types.contains(&g) => grant_types.push(g),
                    Some(_) => {}
                    None => return Err(format!("unknown grant {grant:?}")),
                }
            }
            for uri in redirect_uris.iter().chain(&post_logout_redirect_uris) {
                validate_redirect_uri(uri)?;
            }
            if grant_types.contains(&GrantType::AuthorizationCode) && redirect_uris.is_empty() {
                return Err("authorization_code needs at least one --redirect-uri".into());
            }
            if public {
                // SPEC §4: a public client has no secret to prove anything else with.
                if let Some(g) = grant_types
                    .iter()
                    .find(|g| !matches!(g, GrantType::AuthorizationCode | GrantType::RefreshToken))
                {
                    return Err(format!(
                        "a public client may use only authorization_code and refresh_token, not {}",
                        g.as_str()
                    ));
                }
                if pkce == Pkce::Optional {
                    return Err("a public client always uses PKCE".into());
                }
                if api_key {
                    return Err("a public client cannot keep an API key secret".into());
                }
            }
            let keys_given = jwks.is_some() || jwks_uri.is_some();
            match auth_method {
                AuthMethod::PrivateKeyJwt if public => {
                    return Err("a public client has no keys: it authenticates with nothing".into());
                }
                AuthMethod::PrivateKeyJwt if !keys_given => {
                    return Err(
                        "--auth-method private_key_jwt needs --jwks FILE or --jwks-uri URL".into(),
                    );
                }
                AuthMethod::ClientSecretBasic if keys_given => {
                    return Err(
                        "--jwks and --jwks-uri go with --auth-method private_key_jwt".into(),
                    );
                }
                _ => {}
            }
            let jwks = jwks.map(|path| read_jwks(&path)).transpose()?;
            let jwks_uri = jwks_uri.map(checked_jwks_uri).transpose()?;
            let allowed_scopes = scopes(&allowed)?;
            // RFC 6749 §3.3: a request without `scope` gets a pre-defined default; unless told
            // otherwise that is everything the client may have (what Cognito users expect).
            let default_scopes = if default_scopes.is_empty() {
                allowed_scopes.clone()
            } else {
                scopes(&default_scopes)?
            };
            if let Some(s) = default_scopes.iter().find(|s| !allowed_scopes.contains(s)) {
                return Err(format!(
                    "default scope {s:?} is not among the allowed scopes"
                ));
            }
            // A private_key_jwt client has no secret to fall back on.
            let secret = (!public && !keys_given).then(random_secret);
            let api_key_value = api_key.then(random_secret);
            let client = Client {
                client_id: client_id.clone(),
                name,
                secrets: secret
                    .iter()
                    .map(|secret| StoredSecret {
                        sha256: sha256_b64(secret.as_bytes()),
                        expires_at: None,
                    })
                    .collect(),
                api_key_sha256: api_key_value.as_ref().map(|k| sha256_b64(k.as_bytes())),
                grants: grant_types,
                allowed_scopes,
                default_scopes,
                redirect_uris,
                access_token_ttl: ttl(admin, "--access-token-ttl", access_token_ttl)?,
                refresh_token_ttl: ttl(admin, "--refresh-token-ttl", refresh_token_ttl)?,
                audience,
                claims: parse_claims(&claims)?,
                enabled: true,
                created_at: now_epoch(),
                public,
                pkce_required: pkce == Pkce::Required,
                consent,
                post_logout_redirect_uris,
                jwks,
                jwks_uri,
                dpop_bound_access_tokens: require_dpop,
                require_pushed_authorization_requests: require_par,
            };
            if !admin
                .store
                .put_client(&client, true)
                .await
                .map_err(store_error)?
            {
                return Err(format!("client {client_id:?} already exists"));
            }
            let mut out = view(&client);
            if let Some(secret) = secret {
                out["client_secret"] = secret.into();
            }
            if let Some(key) = api_key_value {
                out["api_key"] = key.into();
            }
            Ok(out)
        }
        ClientCommand::List => {
            let clients: Vec<Client> = admin
                .store
                .scan_prefix("client#")
                .await
                .map_err(store_error)?;
            Ok(json!(clients.iter().map(view).collect::<Vec<_>>()))
        }
        ClientCommand::Show { client_id } => Ok(view(&existing(admin, &client_id).await?)),
        ClientCommand::Update {
            client_id,
            require_dpop,
            require_par,
            jwks,
            jwks_uri,
        } => {
            if require_dpop.is_none()
                && require_par.is_none()
                && jwks.is_none()
                && jwks_uri.is_none()
            {
                return Err(
                    "nothing to change: give --require-dpop, --require-par, --jwks or --jwks-uri"
                        .into(),
                );
            }
            let mut client = existing(admin, &client_id).await?;
            if let Some(required) = require_dpop {
                client.dpop_bound_access_tokens = required;
            }
            if let Some(required) = require_par {
                client.require_pushed_authorization_requests = required;
            }
            if (jwks.is_some() || jwks_uri.is_some()) && !client.authenticates_by_assertion() {
                return Err(format!(
                    "{client_id:?} does not authenticate with private_key_jwt: it has no keys"
                ));
            }
            // One source of keys: registering one drops the other.
            if let Some(path) = jwks {
                client.jwks = Some(read_jwks(&path)?);
                client.jwks_uri = None;
            }
            if let Some(uri) = jwks_uri {
                client.jwks_uri = Some(checked_jwks_uri(uri)?);
                client.jwks = None;
            }
            replace(admin, &client).await
        }
        ClientCommand::Disable { client_id } => set_enabled(admin, &client_id, false).await,
        ClientCommand::Enable { client_id } => set_enabled(admin, &client_id, true).await,
        ClientCommand::Delete { client_id } => {
            existing(admin, &client_id).await?;
            admin
                .store
                .delete(keys::client(&client_id))
                .await
                .map_err(store_error)?;
            // A client created again under this id must inherit nothing (refresh also refuses
            // families older than the client record; this ends them outright).
            let revoked = admin
                .store
                .revoke_client_families(&client_id)
                .await
                .map_err(store_error)?;
            Ok(json!({ "client_id": client_id, "deleted": true, "sessions_revoked": revoked }))
        }
        ClientCommand::RotateSecret { client_id, grace } => {
            if grace < 0 {
                return Err("--grace must not be negative".into());
            }
            let mut client = existing(admin, &client_id).await?;
            if client.public {
                return Err(format!(
                    "{client_id:?} is a public client: it has no secret"
                ));
            }
            if client.authenticates_by_assertion() {
                return Err(format!(
                    "{client_id:?} authenticates with private_key_jwt: it has no secret"
                ));
            }
            let now = now_epoch();
            client
                .secrets
                .retain(|s| s.expires_at.is_none_or(|exp| exp > now));
            for old in &mut client.secrets {
                old.expires_at = Some(
                    old.expires_at
                        .map_or(now + grace, |exp| exp.min(now + grace)),
                );
            }
            if grace == 0 {
                client.secrets.clear();
            }
            let secret = random_secret();
            client.secrets.push(StoredSecret {
                sha256: sha256_b64(secret.as_bytes()),
                expires_at: None,
            });
            admin
                .store
                .put_client(&client, false)
                .await
                .map_err(store_error)?;
            Ok(
                json!({ "client_id": client_id, "client_secret": secret, "previous_secret_expires_at": (grace > 0).then_some(now + grace) }),
            )
        }
    }
}

async fn set_enabled(admin: &Admin, client_id: &str, enabled: bool) -> CliResult {
    let mut client = existing(admin, client_id).await?;
    client.enabled = enabled;
    replace(admin, &client).await
}

#[cfg(test)]
mod tests {
    use super::validate_redirect_uri;

    #[test]
    fn redirect_uris_are_exact_https_loopback_or_private_use() {
        for ok in [
            "https://app.example.com/cb",
            "https://app.example.com/cb?x=1",
            "http://127.0.0.1:8080/cb",
            "http://localhost/cb",
            "http://[::1]:53123/",
            "com.example.app:/oauth2redirect",
        ] {
            assert!(validate_redirect_uri(ok).is_ok(), "{ok}");
        }
        for bad in [
            "https://app.example.com/cb#frag",
            "http://app.example.com/cb",
            "http://127.0.0.1.evil.com/cb",
            "myapp:/cb",
            "/relative",
            "https://",
            "javascript:alert(1)",
            "https://app.example.com/ cb",
        ] {
            assert!(validate_redirect_uri(bad).is_err(), "{bad}");
        }
    }
}
