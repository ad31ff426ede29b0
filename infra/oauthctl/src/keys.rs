//! `init`, `key list`, `key rotate`.

use clap::{Args, Subcommand};
use serde_json::json;
use shared::endpoints::discovery::MAX_AGE_SECONDS;
use shared::keys::rotation::{RotationPolicy, ensure_keys, prune, rotate};
use shared::keys::{Alg, KeyPolicy, KeySetDocument, KeySource};
use shared::now_epoch;

use crate::{Admin, CliResult, store_error};

fn parse_alg(text: &str) -> Result<Alg, String> {
    Alg::parse(text).ok_or_else(|| format!("{text:?} is not RS256, ES256 or EdDSA"))
}

#[derive(Args)]
pub struct InitArgs {
    /// Algorithms to create keys for (RS256 is always created: id_tokens use it).
    #[arg(long = "alg", value_parser = parse_alg)]
    algs: Vec<Alg>,
}

/// The deployed functions' values; rotation reads them from the key set from then on.
#[derive(Args)]
pub struct PolicyArgs {
    /// The functions' KEY_CACHE_SECONDS (template parameter KeyCacheSeconds).
    #[arg(long)]
    key_cache_seconds: i64,
    /// The functions' MAX_TOKEN_TTL (template parameter MaxTokenTtl).
    #[arg(long)]
    max_token_ttl: i64,
}

#[derive(Subcommand)]
pub enum KeyCommand {
    /// List the key set (public facts only).
    List,
    /// next → active, active → retired, new next, for one algorithm.
    Rotate {
        #[arg(long, value_parser = parse_alg)]
        alg: Alg,
        /// Rotate even though caches may not know the next key yet.
        #[arg(long)]
        force: bool,
    },
    /// Record the deployed KEY_CACHE_SECONDS / MAX_TOKEN_TTL in the key set (replaces the
    /// recorded values; `init` only ever raises them).
    Policy(PolicyArgs),
}

async fn load(admin: &Admin) -> Result<KeySetDocument, String> {
    match admin.keys.load().await.map_err(store_error)? {
        Some(text) => KeySetDocument::parse(&text),
        None => Ok(KeySetDocument::default()),
    }
}

async fn save(admin: &Admin, doc: &KeySetDocument) -> Result<(), String> {
    // A set written here is nobody's rotation in progress.
    let doc = KeySetDocument {
        built_from: None,
        ..doc.clone()
    };
    let text = serde_json::to_string(&doc).map_err(|e| e.to_string())?;
    admin.keys.store(&text).await.map_err(store_error)
}

/// This shell's KEY_CACHE_SECONDS / MAX_TOKEN_TTL (the functions' defaults when unset).
fn local_policy(admin: &Admin) -> KeyPolicy {
    KeyPolicy {
        key_cache_seconds: admin.config.key_cache.as_secs() as i64,
        max_token_ttl: admin.config.max_token_ttl,
    }
}

/// Rotation and pruning follow the policy recorded with the keys, never weaker than this
/// shell's own values.
fn policy(admin: &Admin, doc: &KeySetDocument) -> RotationPolicy {
    RotationPolicy::for_document(doc, MAX_AGE_SECONDS as i64, local_policy(admin))
}

pub async fn init(admin: &Admin, args: InitArgs) -> CliResult {
    let table_created = admin
        .store
        .create_table_if_missing()
        .await
        .map_err(store_error)?;
    let secret_created = admin.keys.create_if_missing().await.map_err(store_error)?;
    let mut doc = load(admin).await?;
    let mut algs = vec![Alg::Rs256];
    if args.algs.is_empty() {
        algs.extend([Alg::Es256, Alg::EdDsa]);
    } else {
        algs.extend(args.algs.into_iter().filter(|a| *a != Alg::Rs256));
    }
    let now = now_epoch();
    let mut added = Vec::new();
    for alg in algs {
        added.extend(ensure_keys(&mut doc, alg, now)?);
    }
    let recorded = doc.policy;
    doc.policy = Some(recorded.map_or(local_policy(admin), |p| p.covering(local_policy(admin))));
    let rules = policy(admin, &doc);
    let pruned = prune(&mut doc, now, rules);
    if !added.is_empty() || !pruned.is_empty() || doc.policy != recorded {
        save(admin, &doc).await?;
    }
    let accounts_written = admin.store.backfill_accounts().await.map_err(store_error)?;
    Ok(json!({
        "table": admin.store.table(),
        "table_created": table_created,
        "secret": admin.config.signing_keys_secret_id,
        "secret_created": secret_created,
        "keys_added": added,
        "keys_pruned": pruned,
        "key_policy": doc.policy,
        "accounts_written": accounts_written,
    }))
}

fn describe(doc: &KeySetDocument) -> serde_json::Value {
    let keys: Vec<_> = doc
        .keys
        .iter()
        .map(|k| {
            json!({
                "kid": k.kid, "alg": k.alg, "status": k.status, "created_at": k.created_at,
                "activated_at": k.activated_at, "retired_at": k.retired_at,
            })
        })
        .collect();
    json!({ "keys": keys, "policy": doc.policy })
}

pub async fn run(admin: &Admin, command: KeyCommand) -> CliResult {
    match command {
        KeyCommand::List => Ok(describe(&load(admin).await?)),
        KeyCommand::Rotate { alg, force } => {
            let mut doc = load(admin).await?;
            let policy = policy(admin, &doc);
            let report = rotate(&mut doc, alg, now_epoch(), force, policy)?;
            save(admin, &doc).await?;
            Ok(json!({
                "alg": alg, "activated": report.activated, "retired": report.retired,
                "next": report.new_next, "pruned": report.pruned,
            }))
        }
        KeyCommand::Policy(args) => {
            if args.key_cache_seconds < 1 || args.max_token_ttl < 1 {
                return Err("--key-cache-seconds and --max-token-ttl must be positive".into());
            }
            let mut doc = load(admin).await?;
            doc.policy = Some(KeyPolicy {
                key_cache_seconds: args.key_cache_seconds,
                max_token_ttl: args.max_token_ttl,
            });
            save(admin, &doc).await?;
            Ok(json!({ "key_policy": doc.policy }))
        }
    }
}
