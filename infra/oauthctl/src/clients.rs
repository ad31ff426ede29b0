//! `client create|list|show|disable|enable|delete|rotate-secret`.

use clap::Subcommand;
use serde_json::json;
use shared::crypto::{random_bytes, random_secret, sha256_b64};
use shared::grants::scope::parse_scope;
use shared::now_epoch;
use shared::storage::{Client, ClientDirectory, GrantType, StoredSecret, keys};

use crate::{Admin, CliResult, parse_claims, store_error};

const DEFAULT_ACCESS_TTL: i64 = 3600;
const DEFAULT_REFRESH_TTL: i64 = 30 * 24 * 3600;

#[derive(Subcommand)]
pub enum ClientCommand {
    /// Register a client; prints its secret (and API key) once.
    Create {
        #[arg(long)]
        name: String,
        /// Client id (generated when absent): [A-Za-z0-9._~-], at most 128, not UUID-shaped.
        #[arg(long)]
        id: Option<String>,
        /// Grant types: client_credentials, password, refresh_token.
        #[arg(long = "grant", required = true)]
        grants: Vec<String>,
        /// Allowed scopes (repeatable, or space-separated).
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// Scopes granted when a request names none (default: every allowed scope).
        #[arg(long = "default-scope")]
        default_scopes: Vec<String>,
        #[arg(long = "redirect-uri")]
        redirect_uris: Vec<String>,
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
    },
    List,
    Show {
        client_id: String,
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

/// Public view of a client: never a secret or a digest.
fn view(client: &Client) -> serde_json::Value {
    json!({
        "client_id": client.client_id,
        "name": client.name,
        "grants": client.grants,
        "allowed_scopes": client.allowed_scopes,
        "default_scopes": client.default_scopes,
        "redirect_uris": client.redirect_uris,
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
            access_token_ttl,
            refresh_token_ttl,
            api_key,
            audience,
            claims,
        } => {
            let client_id = id.unwrap_or_else(generated_id);
            validate_id(&client_id)?;
            let mut grant_types = Vec::new();
            for grant in &grants {
                match GrantType::parse(grant) {
                    Some(GrantType::AuthorizationCode) => {
                        return Err("authorization_code is not supported yet".into());
                    }
                    Some(g) if !grant_types.contains(&g) => grant_types.push(g),
                    Some(_) => {}
                    None => return Err(format!("unknown grant {grant:?}")),
                }
            }
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
            let secret = random_secret();
            let api_key_value = api_key.then(random_secret);
            let client = Client {
                client_id: client_id.clone(),
                name,
                secrets: vec![StoredSecret {
                    sha256: sha256_b64(secret.as_bytes()),
                    expires_at: None,
                }],
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
            out["client_secret"] = secret.into();
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
    admin
        .store
        .put_client(&client, false)
        .await
        .map_err(store_error)?;
    Ok(view(&client))
}
