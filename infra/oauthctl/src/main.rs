//! oauthctl: administration of the token service's table, key set, clients and users (SPEC §8).
//! Same environment as the functions; output is JSON; errors go to stderr with exit code 1.

mod clients;
mod keys;
mod users;

use clap::{Parser, Subcommand};
use shared::config::Config;
use shared::storage::dynamo::DynamoStore;
use shared::storage::secrets::SecretsKeySource;

#[derive(Parser)]
#[command(
    name = "oauthctl",
    version,
    about = "Administer the OAuth token service"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// One value per process: its size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Create the table and the signing-key set where missing (idempotent).
    Init(keys::InitArgs),
    /// Manage clients.
    #[command(subcommand)]
    Client(clients::ClientCommand),
    /// Manage users.
    #[command(subcommand)]
    User(users::UserCommand),
    /// Inspect and rotate signing keys.
    #[command(subcommand)]
    Key(keys::KeyCommand),
}

/// What every command works with.
pub struct Admin {
    pub config: Config,
    pub store: DynamoStore,
    pub keys: SecretsKeySource,
}

pub type CliResult = Result<serde_json::Value, String>;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let cli = Cli::parse();
    let result = run(cli).await;
    match result {
        Ok(output) => println!(
            "{}",
            serde_json::to_string_pretty(&output).unwrap_or_default()
        ),
        Err(error) => {
            eprintln!("{}", serde_json::json!({ "error": error }));
            std::process::exit(1);
        }
    }
}

async fn run(cli: Cli) -> CliResult {
    let config = Config::from_env().map_err(|e| e.to_string())?;
    let (store, keys) = shared::storage::aws::adapters(&config).await;
    let admin = Admin {
        config,
        store,
        keys,
    };
    match cli.command {
        Command::Init(args) => keys::init(&admin, args).await,
        Command::Client(command) => clients::run(&admin, command).await,
        Command::User(command) => users::run(&admin, command).await,
        Command::Key(command) => keys::run(&admin, command).await,
    }
}

/// `k=v` pairs of `--claim`, refusing names the service sets itself.
pub fn parse_claims(
    pairs: &[String],
) -> Result<std::collections::BTreeMap<String, String>, String> {
    let mut claims = std::collections::BTreeMap::new();
    for pair in pairs {
        let (name, value) = pair
            .split_once('=')
            .ok_or_else(|| format!("--claim {pair:?} is not k=v"))?;
        if name.is_empty() {
            return Err("a claim name is empty".into());
        }
        if shared::tokens::claims::is_registered(name) {
            return Err(format!(
                "claim {name:?} is registered and set by the service"
            ));
        }
        claims.insert(name.to_owned(), value.to_owned());
    }
    Ok(claims)
}

pub fn store_error(err: shared::error::StoreError) -> String {
    err.to_string()
}
