//! The `patchbay` command line.

use clap::{Args, Parser, Subcommand};
use serde_json::json;

use crate::config::{Config, DEFAULT_DATABASE_URL};
use crate::crypto::generate_api_key;
use crate::store::{self, ApiKeyRecord, new_id};

#[derive(Debug, Parser)]
#[command(
    name = "patchbay",
    version,
    about = "Self-hosted connection gateway for Gmail and Slack"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway, configured by PATCHBAY_* environment variables.
    Serve,
    /// Create tenants and manage their allowed redirect origins.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Create, list and revoke API keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Serve fake Google and Slack providers for local development and tests.
    Sandbox(crate::sandbox::SandboxConfig),
    /// Start the sandbox and a gateway wired to it, with a tenant and an API key.
    Quickstart(crate::quickstart::QuickstartArgs),
}

/// The database the administrative commands work on.
#[derive(Debug, Args)]
pub struct DatabaseArgs {
    /// Database URL, `sqlite://PATH` or `postgres://…`.
    #[arg(long, env = "PATCHBAY_DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    pub database_url: String,
}

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant; prints {"id", "name"}.
    Create {
        #[arg(long)]
        name: String,
        #[command(flatten)]
        db: DatabaseArgs,
    },
    /// List tenants.
    List {
        #[command(flatten)]
        db: DatabaseArgs,
    },
    /// Allow an origin such as https://app.example.com as a `redirect_after` target.
    AllowRedirect {
        #[arg(long)]
        tenant: String,
        origin: String,
        #[command(flatten)]
        db: DatabaseArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create an API key; prints {"id", "key", "keyHint"}. The key is shown only once.
    Create {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        db: DatabaseArgs,
    },
    /// List a tenant's API keys (hints only, never the keys).
    List {
        #[arg(long)]
        tenant: String,
        #[command(flatten)]
        db: DatabaseArgs,
    },
    /// Revoke an API key; it is rejected from the next request on.
    Revoke {
        key_id: String,
        #[command(flatten)]
        db: DatabaseArgs,
    },
}

/// Runs a parsed command.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve => {
            let config = Config::from_env()?;
            crate::app::Gateway::start(config)
                .await?
                .run_until_signal()
                .await
        }
        Command::Tenant(command) => tenant(command).await,
        Command::Key(command) => key(command).await,
        Command::Sandbox(config) => crate::sandbox::run(config).await,
        Command::Quickstart(args) => crate::quickstart::run(args).await,
    }
}

/// Writes one JSON line to stdout. A closed pipe is an error, not a panic.
fn print(value: &serde_json::Value) -> anyhow::Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{value}")?;
    stdout.flush()?;
    Ok(())
}

/// Longest tenant name accepted, in characters.
const MAX_TENANT_NAME_CHARS: usize = 200;

fn check_tenant_name(name: &str) -> anyhow::Result<&str> {
    let name = name.trim();
    anyhow::ensure!(!name.is_empty(), "--name must not be empty");
    anyhow::ensure!(
        name.chars().count() <= MAX_TENANT_NAME_CHARS,
        "--name must be at most {MAX_TENANT_NAME_CHARS} characters"
    );
    anyhow::ensure!(
        !name.chars().any(char::is_control),
        "--name must not contain control characters"
    );
    Ok(name)
}

async fn tenant(command: TenantCommand) -> anyhow::Result<()> {
    match command {
        TenantCommand::Create { name, db } => {
            let name = check_tenant_name(&name)?;
            let store = store::connect(&db.database_url, 2).await?;
            let tenant = store.create_tenant(name).await?;
            print(&json!({"id": tenant.id, "name": tenant.name}))?;
        }
        TenantCommand::List { db } => {
            let store = store::connect(&db.database_url, 2).await?;
            print(&serde_json::to_value(store.list_tenants().await?)?)?;
        }
        TenantCommand::AllowRedirect { tenant, origin, db } => {
            let origin = parse_origin(&origin)?;
            let store = store::connect(&db.database_url, 2).await?;
            anyhow::ensure!(
                store.get_tenant(&tenant).await?.is_some(),
                "no tenant has id {tenant}"
            );
            store.add_redirect_origin(&tenant, &origin).await?;
            print(&json!({"tenant": tenant, "origin": origin}))?;
        }
    }
    Ok(())
}

/// Normalizes an origin argument: an http(s) URL with no path, query or user info.
pub fn parse_origin(text: &str) -> anyhow::Result<String> {
    let url = url::Url::parse(text).map_err(|_| {
        anyhow::anyhow!("{text:?} is not an origin such as https://app.example.com")
    })?;
    anyhow::ensure!(
        matches!(url.scheme(), "http" | "https") && url.host().is_some(),
        "{text:?} must be an http or https origin"
    );
    anyhow::ensure!(
        url.username().is_empty() && url.password().is_none(),
        "{text:?} must not contain user information"
    );
    let host = url.host_str().unwrap_or_default();
    anyhow::ensure!(
        host.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.[]:".contains(&b)),
        "{text:?} has a host that is not a domain name or IP address (wildcards are not supported)"
    );
    anyhow::ensure!(
        url.path() == "/" && url.query().is_none() && url.fragment().is_none(),
        "{text:?} must be an origin only, without a path, query or fragment"
    );
    Ok(url.origin().ascii_serialization())
}

async fn key(command: KeyCommand) -> anyhow::Result<()> {
    match command {
        KeyCommand::Create { tenant, name, db } => {
            let store = store::connect(&db.database_url, 2).await?;
            let created = create_api_key(store.as_ref(), &tenant, name).await?;
            if let Err(error) = print(&created) {
                // The key is shown only here: one that cannot be shown must not stay valid.
                let key_id = created["id"].as_str().unwrap_or_default();
                store.revoke_api_key(key_id, chrono::Utc::now()).await?;
                anyhow::bail!(
                    "could not print the new key ({error}); it was revoked, create another"
                );
            }
        }
        KeyCommand::List { tenant, db } => {
            let store = store::connect(&db.database_url, 2).await?;
            anyhow::ensure!(
                store.get_tenant(&tenant).await?.is_some(),
                "no tenant has id {tenant}"
            );
            print(&serde_json::to_value(store.list_api_keys(&tenant).await?)?)?;
        }
        KeyCommand::Revoke { key_id, db } => {
            let store = store::connect(&db.database_url, 2).await?;
            let revoked = store.revoke_api_key(&key_id, chrono::Utc::now()).await?;
            anyhow::ensure!(revoked, "no active API key has id {key_id}");
            print(&json!({"id": key_id, "revoked": true}))?;
        }
    }
    Ok(())
}

/// Creates an API key for a tenant; returns {"id", "key", "keyHint"}.
pub async fn create_api_key(
    store: &dyn store::Store,
    tenant_id: &str,
    name: Option<String>,
) -> anyhow::Result<serde_json::Value> {
    anyhow::ensure!(
        store.get_tenant(tenant_id).await?.is_some(),
        "no tenant has id {tenant_id}"
    );
    let generated = generate_api_key();
    let record = ApiKeyRecord {
        id: new_id("key"),
        tenant_id: tenant_id.to_owned(),
        name,
        key_hint: generated.hint.clone(),
        created_at: chrono::Utc::now(),
        last_used_at: None,
        revoked_at: None,
    };
    store.insert_api_key(&record, &generated.hash).await?;
    Ok(json!({
        "id": record.id,
        "key": secrecy::ExposeSecret::expose_secret(&generated.key),
        "keyHint": record.key_hint,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_normalized() {
        assert_eq!(
            parse_origin("https://App.Example.com").unwrap(),
            "https://app.example.com"
        );
        assert_eq!(
            parse_origin("https://app.example.com:443/").unwrap(),
            "https://app.example.com"
        );
        assert_eq!(
            parse_origin("http://localhost:3000").unwrap(),
            "http://localhost:3000"
        );
    }

    #[test]
    fn tenant_names_are_checked() {
        assert_eq!(check_tenant_name("  Acme  ").unwrap(), "Acme");
        assert!(check_tenant_name(" ").is_err());
        assert!(check_tenant_name("a\u{1}b").is_err());
        assert!(check_tenant_name(&"x".repeat(201)).is_err());
        assert!(check_tenant_name(&"é".repeat(200)).is_ok());
    }

    #[test]
    fn non_origins_are_rejected() {
        for bad in [
            "app.example.com",
            "ftp://x.example",
            "https://a@b.example",
            "https://x.example/path",
            "https://*.example.com",
        ] {
            assert!(parse_origin(bad).is_err(), "{bad}");
        }
    }
}

#[cfg(test)]
mod manifest_tests {
    /// `cargo run -- quickstart` is the README's first command: with a second
    /// binary in the crate it needs `default-run` to pick `patchbay`.
    #[test]
    fn cargo_run_picks_patchbay() {
        let manifest = include_str!("../Cargo.toml");
        assert!(
            manifest
                .lines()
                .any(|line| line.trim() == "default-run = \"patchbay\"")
        );
    }
}
