//! `patchbay quickstart`: the sandbox providers and a gateway wired to them on an
//! embedded SQLite database, with a tenant and an API key, and the curl commands
//! for the whole flow.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use secrecy::ExposeSecret;

use crate::app::Gateway;
use crate::config::Config;
use crate::crypto::EncryptionKey;
use crate::sandbox::{Sandbox, SandboxConfig, SandboxUrls};

/// Sample messages loaded into the sandbox mailbox when no `--mailbox` is given.
const SAMPLE_MAILBOX: [(&str, &[u8]); 3] = [
    (
        "01-welcome.eml",
        include_bytes!("../examples/mailbox/01-welcome.eml"),
    ),
    (
        "02-report.eml",
        include_bytes!("../examples/mailbox/02-report.eml"),
    ),
    (
        "03-latin1.eml",
        include_bytes!("../examples/mailbox/03-latin1.eml"),
    ),
];

#[derive(Debug, Clone, clap::Args)]
pub struct QuickstartArgs {
    /// Address of the gateway.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Address of the sandbox providers.
    #[arg(long, default_value = "127.0.0.1:8090")]
    pub sandbox_listen: SocketAddr,
    /// SQLite database of the quickstart gateway.
    #[arg(long, default_value = "sqlite://patchbay-quickstart.db")]
    pub database_url: String,
    /// File holding the token encryption key; created with a new key when missing.
    #[arg(long, default_value = "patchbay-quickstart.key")]
    pub key_file: PathBuf,
    /// Folder of .eml files for the sandbox Gmail mailbox (default: three samples).
    #[arg(long)]
    pub mailbox: Option<PathBuf>,
}

/// The gateway configuration that points every provider URL at a sandbox.
pub fn sandbox_gateway_config(
    listen: SocketAddr,
    database_url: &str,
    encryption_key: &EncryptionKey,
    sandbox: &SandboxConfig,
    urls: &SandboxUrls,
) -> anyhow::Result<Config> {
    let key = encryption_key.to_base64();
    let pairs = [
        ("PATCHBAY_LISTEN", listen.to_string()),
        ("PATCHBAY_DATABASE_URL", database_url.to_owned()),
        ("PATCHBAY_ENCRYPTION_KEY", key.expose_secret().to_owned()),
        (
            "PATCHBAY_GOOGLE_CLIENT_ID",
            sandbox.google_client_id.clone(),
        ),
        (
            "PATCHBAY_GOOGLE_CLIENT_SECRET",
            sandbox.google_client_secret.clone(),
        ),
        ("PATCHBAY_SLACK_CLIENT_ID", sandbox.slack_client_id.clone()),
        (
            "PATCHBAY_SLACK_CLIENT_SECRET",
            sandbox.slack_client_secret.clone(),
        ),
        (
            "PATCHBAY_GOOGLE_AUTHORIZE_URL",
            urls.google_authorize.clone(),
        ),
        ("PATCHBAY_GOOGLE_TOKEN_URL", urls.google_token.clone()),
        ("PATCHBAY_GOOGLE_REVOKE_URL", urls.google_revoke.clone()),
        ("PATCHBAY_GOOGLE_API_URL", urls.google_api.clone()),
        ("PATCHBAY_SLACK_AUTHORIZE_URL", urls.slack_authorize.clone()),
        ("PATCHBAY_SLACK_API_URL", urls.slack_api.clone()),
    ];
    Config::from_lookup(|name| {
        pairs
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    })
}

/// Reads the key file, or creates it (mode 0600) with a new key.
fn load_or_create_key(path: &Path) -> anyhow::Result<EncryptionKey> {
    if path.exists() {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("could not read {}", path.display()))?;
        return EncryptionKey::from_base64(&text)
            .with_context(|| format!("{} does not hold a valid key", path.display()));
    }
    let key = EncryptionKey::generate();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("could not create {}", path.display()))?;
    std::io::Write::write_all(&mut file, key.to_base64().expose_secret().as_bytes())?;
    Ok(key)
}

/// Writes the sample messages to a temporary folder for the sandbox to load.
fn sample_mailbox() -> anyhow::Result<tempfile::TempDir> {
    let dir = tempfile::tempdir()?;
    for (name, bytes) in SAMPLE_MAILBOX {
        std::fs::write(dir.path().join(name), bytes)?;
    }
    Ok(dir)
}

pub async fn run(args: QuickstartArgs) -> anyhow::Result<()> {
    let samples = match args.mailbox {
        Some(_) => None,
        None => Some(sample_mailbox()?),
    };
    let mailbox = args
        .mailbox
        .clone()
        .or_else(|| samples.as_ref().map(|d| d.path().to_owned()));
    let sandbox_config = SandboxConfig {
        listen: args.sandbox_listen,
        mailbox,
        ..SandboxConfig::default()
    };
    let sandbox = Sandbox::start(sandbox_config.clone()).await?;

    let key = load_or_create_key(&args.key_file)?;
    let config = sandbox_gateway_config(
        args.listen,
        &args.database_url,
        &key,
        &sandbox_config,
        &sandbox.urls(),
    )?;
    let gateway = Gateway::start(config).await?;

    let store = gateway.state().store.clone();
    let tenant = store.create_tenant("Quickstart").await?;
    let created =
        crate::cli::create_api_key(store.as_ref(), &tenant.id, Some("quickstart".into())).await?;
    let api_key = created["key"].as_str().unwrap_or_default();
    println!(
        "{}",
        instructions(
            &gateway.base_url(),
            &sandbox.base_url(),
            &tenant.id,
            api_key
        )
    );

    let stopped = gateway.run_until_signal().await;
    sandbox.shutdown().await;
    stopped
}

/// The text printed at start-up: the tenant, the key and the flow as curl commands.
fn instructions(gateway: &str, sandbox: &str, tenant_id: &str, api_key: &str) -> String {
    format!(
        r##"Patchbay quickstart is running.
  gateway:  {gateway}
  sandbox:  {sandbox} (fake Google and Slack)
  tenant:   {tenant_id}
  API key:  {api_key}   (shown once)

Paste these into another terminal:

export PB={gateway} KEY={api_key}

# 1. Connect Google and Slack for user "alice": get the consent URL and follow it.
#    (The sandbox consents at once; in a browser you would open the URL.)
URL=$(curl -s "$PB/v1/connections/google/authorize" -H "Authorization: Bearer $KEY" -H "X-User-Id: alice" | sed -E 's/.*"url":"([^"]*)".*/\1/')
curl -sL "$URL"; echo
URL=$(curl -s "$PB/v1/connections/slack/authorize" -H "Authorization: Bearer $KEY" -H "X-User-Id: alice" | sed -E 's/.*"url":"([^"]*)".*/\1/')
curl -sL "$URL"; echo

# 2. List alice's connections.
curl -s "$PB/v1/connections" -H "Authorization: Bearer $KEY" -H "X-User-Id: alice"; echo

# 3. Sync and read Gmail.
curl -s "$PB/v1/execute/gmail/sync" -H "Authorization: Bearer $KEY" -H "Content-Type: application/json" -d '{{"mode":"initial","userId":"alice"}}'; echo
curl -s "$PB/v1/execute/gmail/read" -H "Authorization: Bearer $KEY" -H "Content-Type: application/json" -d '{{"query":"is:unread","maxResults":5,"userId":"alice"}}'; echo

# 4. Send an email.
curl -s "$PB/v1/execute/gmail/send" -H "Authorization: Bearer $KEY" -H "Content-Type: application/json" -d '{{"to":"bob@example.com","subject":"Hello from Patchbay","body":"Sent through the gateway.","userId":"alice"}}'; echo

# 5. Post to Slack and search.
curl -s "$PB/v1/execute/slack/message" -H "Authorization: Bearer $KEY" -H "Content-Type: application/json" -d '{{"channel":"#general","text":"Hello from Patchbay","userId":"alice"}}'; echo
curl -s "$PB/v1/execute/slack/search" -H "Authorization: Bearer $KEY" -H "Content-Type: application/json" -d '{{"query":"Patchbay","userId":"alice"}}'; echo

# 6. Disconnect Slack.
curl -s -X DELETE -o /dev/null -w "%{{http_code}}\n" "$PB/v1/connections/slack" -H "Authorization: Bearer $KEY" -H "X-User-Id: alice"

Stop with Ctrl-C."##
    )
}
