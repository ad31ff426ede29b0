//! `user create|set-password|disable|enable|delete|unlock`.

use std::io::BufRead;

use clap::{Args, Subcommand};
use serde_json::json;
use shared::now_epoch;
use shared::password::hash_password;
use shared::storage::{MAX_USERNAME_LEN, User, keys};

use crate::{Admin, CliResult, parse_claims, store_error};

#[derive(Args)]
#[group(required = true, multiple = false)]
pub struct PasswordSource {
    /// Read the password from the first line of standard input (keeps it out of shell history).
    #[arg(long)]
    password_stdin: bool,
    #[arg(long)]
    password: Option<String>,
}

impl PasswordSource {
    fn read(self) -> Result<String, String> {
        let password = match self.password {
            Some(p) => p,
            None => {
                let mut line = String::new();
                std::io::stdin()
                    .lock()
                    .read_line(&mut line)
                    .map_err(|e| e.to_string())?;
                line.trim_end_matches(['\r', '\n']).to_owned()
            }
        };
        if password.is_empty() {
            return Err("the password is empty".into());
        }
        Ok(password)
    }
}

#[derive(Subcommand)]
pub enum UserCommand {
    Create {
        /// Exact login name (WSO2's `user@email@org` is just a username).
        #[arg(long)]
        username: String,
        #[command(flatten)]
        password: PasswordSource,
        /// Claim k=v (repeatable); OIDC standard names go to id_token/userinfo by scope.
        #[arg(long = "claim")]
        claims: Vec<String>,
    },
    /// Sets a new password and revokes the user's refresh tokens.
    SetPassword {
        username: String,
        #[command(flatten)]
        password: PasswordSource,
    },
    /// Disables the user and revokes the user's refresh tokens.
    Disable {
        username: String,
    },
    Enable {
        username: String,
    },
    /// Deletes the user and revokes the user's refresh tokens.
    Delete {
        username: String,
    },
    /// Clears the failed-login counter.
    Unlock {
        username: String,
    },
}

fn view(user: &User) -> serde_json::Value {
    json!({
        "username": user.username,
        "user_id": user.user_id,
        "claims": user.claims,
        "enabled": user.enabled,
        "created_at": user.created_at,
    })
}

fn validate_username(username: &str) -> Result<(), String> {
    // ':' would make the user unable to log in through a Basic header (RFC 7617 §2).
    if username.is_empty()
        || username.len() > MAX_USERNAME_LEN
        || username.contains(':')
        || username.chars().any(char::is_control)
    {
        return Err(format!(
            "username must be 1-{MAX_USERNAME_LEN} bytes, without ':' or control characters"
        ));
    }
    Ok(())
}

async fn existing(admin: &Admin, username: &str) -> Result<User, String> {
    admin
        .store
        .user(username)
        .await
        .map_err(store_error)?
        .ok_or_else(|| format!("no user {username:?}"))
}

async fn hash_blocking(password: String) -> Result<String, String> {
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|e| e.to_string())?
}

pub async fn run(admin: &Admin, command: UserCommand) -> CliResult {
    match command {
        UserCommand::Create {
            username,
            password,
            claims,
        } => {
            validate_username(&username)?;
            let user = User {
                username: username.clone(),
                user_id: uuid::Uuid::new_v4().to_string(),
                password_hash: hash_blocking(password.read()?).await?,
                claims: parse_claims(&claims)?,
                enabled: true,
                created_at: now_epoch(),
                credentials_changed_at: now_epoch(),
            };
            if !admin
                .store
                .put_user(&user, true)
                .await
                .map_err(store_error)?
            {
                return Err(format!("user {username:?} already exists"));
            }
            Ok(view(&user))
        }
        UserCommand::SetPassword { username, password } => {
            let mut user = existing(admin, &username).await?;
            user.password_hash = hash_blocking(password.read()?).await?;
            // Refresh and introspection refuse what began before this (the Scan below only
            // cleans up).
            user.credentials_changed_at = now_epoch();
            admin
                .store
                .put_user(&user, false)
                .await
                .map_err(store_error)?;
            let revoked = admin
                .store
                .revoke_user_families(&user.user_id)
                .await
                .map_err(store_error)?;
            Ok(
                json!({ "username": username, "password_changed": true, "sessions_revoked": revoked }),
            )
        }
        UserCommand::Disable { username } => {
            let mut user = existing(admin, &username).await?;
            user.enabled = false;
            admin
                .store
                .put_user(&user, false)
                .await
                .map_err(store_error)?;
            let revoked = admin
                .store
                .revoke_user_families(&user.user_id)
                .await
                .map_err(store_error)?;
            let mut out = view(&user);
            out["sessions_revoked"] = revoked.into();
            Ok(out)
        }
        UserCommand::Enable { username } => {
            let mut user = existing(admin, &username).await?;
            user.enabled = true;
            admin
                .store
                .put_user(&user, false)
                .await
                .map_err(store_error)?;
            Ok(view(&user))
        }
        UserCommand::Delete { username } => {
            let user = existing(admin, &username).await?;
            admin.store.delete_user(&user).await.map_err(store_error)?;
            let revoked = admin
                .store
                .revoke_user_families(&user.user_id)
                .await
                .map_err(store_error)?;
            Ok(json!({ "username": username, "deleted": true, "sessions_revoked": revoked }))
        }
        UserCommand::Unlock { username } => {
            admin
                .store
                .delete(keys::user_lock(&username))
                .await
                .map_err(store_error)?;
            Ok(json!({ "username": username, "unlocked": true }))
        }
    }
}
