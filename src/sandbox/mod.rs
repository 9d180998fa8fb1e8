//! Sandbox providers: fake Google (OAuth 2.0 and Gmail API v1) and fake Slack (OAuth v2 and
//! Web API) in one HTTP server. They use the request and response shapes of the real
//! services, so the gateway and its tests run without internet access.
//!
//! URL layout, relative to [`Sandbox::base_url`]:
//! - `/google/o/oauth2/v2/auth`, `/google/token`, `/google/revoke`: Google OAuth.
//! - `/gmail/v1/users/{userId}/…` and `/upload/gmail/v1/users/{userId}/messages/send`: Gmail.
//! - `/slack/oauth/v2/authorize` and `/slack/api/{method}`: Slack.
//! - `/_sandbox/…`: the control API for tests (see `control`).

mod control;
mod gmail;
mod gmail_send;
mod google_error;
mod google_oauth;
mod mailbox;
mod mime;
mod params;
mod query;
mod slack;
mod slack_oauth;
mod state;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use state::{AppState, SharedState};

const DEFAULT_GOOGLE_ACCOUNT: &str = "ada@example.com";
const DEFAULT_SLACK_TEAM: &str = "Sandbox Team";
const DEFAULT_GOOGLE_CLIENT_ID: &str = "sandbox-google-client";
const DEFAULT_GOOGLE_CLIENT_SECRET: &str = "sandbox-google-secret";
const DEFAULT_SLACK_CLIENT_ID: &str = "sandbox-slack-client";
const DEFAULT_SLACK_CLIENT_SECRET: &str = "sandbox-slack-secret";
const DEFAULT_ACCESS_TOKEN_TTL: u64 = 3599;

/// Request bodies up to this size are read, so that the sandbox itself can reject messages
/// over Gmail's 35 MB limit with Gmail's error.
const MAX_REQUEST_BYTES: usize = 64 * 1024 * 1024;

/// Settings of the sandbox server (`patchbay sandbox`).
///
/// The client secrets are fixed test values, not credentials, so they are plain strings.
#[derive(Debug, Clone, clap::Args)]
pub struct SandboxConfig {
    /// Address to serve on; port 0 picks a free port.
    #[arg(
        long,
        env = "PATCHBAY_SANDBOX_LISTEN",
        default_value = "127.0.0.1:8090"
    )]
    pub listen: SocketAddr,
    /// Folder of .eml files loaded into the default Google account's mailbox.
    #[arg(long, env = "PATCHBAY_SANDBOX_MAILBOX")]
    pub mailbox: Option<PathBuf>,
    /// Email address of the Google account that consents when no login_hint is given.
    #[arg(long, default_value = DEFAULT_GOOGLE_ACCOUNT)]
    pub google_account: String,
    /// Name of the Slack workspace that installs the app when no team is given.
    #[arg(long, default_value = DEFAULT_SLACK_TEAM)]
    pub slack_team: String,
    /// OAuth client id that the fake Google accepts.
    #[arg(long, default_value = DEFAULT_GOOGLE_CLIENT_ID)]
    pub google_client_id: String,
    /// OAuth client secret that the fake Google accepts.
    #[arg(long, default_value = DEFAULT_GOOGLE_CLIENT_SECRET)]
    pub google_client_secret: String,
    /// OAuth client id that the fake Slack accepts.
    #[arg(long, default_value = DEFAULT_SLACK_CLIENT_ID)]
    pub slack_client_id: String,
    /// OAuth client secret that the fake Slack accepts.
    #[arg(long, default_value = DEFAULT_SLACK_CLIENT_SECRET)]
    pub slack_client_secret: String,
    /// Lifetime in seconds of Google access tokens and of Slack rotating tokens.
    #[arg(long, default_value_t = DEFAULT_ACCESS_TOKEN_TTL)]
    pub access_token_ttl: u64,
    /// Return expiring tokens and refresh tokens from oauth.v2.access (Slack token rotation).
    #[arg(long)]
    pub slack_token_rotation: bool,
    /// Delay in milliseconds added to every Gmail and Slack API response.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Enforce Gmail's per-user quota: 250 units per second and 10 concurrent requests.
    #[arg(long)]
    pub gmail_quota: bool,
}

impl Default for SandboxConfig {
    /// Returns the command-line defaults, except that `listen` is `127.0.0.1:0` for tests.
    fn default() -> SandboxConfig {
        SandboxConfig {
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            mailbox: None,
            google_account: DEFAULT_GOOGLE_ACCOUNT.to_string(),
            slack_team: DEFAULT_SLACK_TEAM.to_string(),
            google_client_id: DEFAULT_GOOGLE_CLIENT_ID.to_string(),
            google_client_secret: DEFAULT_GOOGLE_CLIENT_SECRET.to_string(),
            slack_client_id: DEFAULT_SLACK_CLIENT_ID.to_string(),
            slack_client_secret: DEFAULT_SLACK_CLIENT_SECRET.to_string(),
            access_token_ttl: DEFAULT_ACCESS_TOKEN_TTL,
            slack_token_rotation: false,
            latency_ms: 0,
            gmail_quota: false,
        }
    }
}

/// The URLs to configure the gateway with (`PATCHBAY_GOOGLE_AUTHORIZE_URL` and the rest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxUrls {
    pub google_authorize: String,
    pub google_token: String,
    pub google_revoke: String,
    /// Gmail API base; `/gmail/v1/users/me/…` follows it.
    pub google_api: String,
    pub slack_authorize: String,
    /// Slack Web API base; method names follow it (`/chat.postMessage`).
    pub slack_api: String,
}

/// A running sandbox server.
pub struct Sandbox {
    addr: SocketAddr,
    base_url: String,
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Sandbox {
    /// Binds `config.listen` (port 0 allowed), loads the mailbox folder and serves in a tokio
    /// task.
    pub async fn start(config: SandboxConfig) -> anyhow::Result<Sandbox> {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("failed to bind the sandbox to {}", config.listen))?;
        let addr = listener
            .local_addr()
            .context("failed to read the bound address")?;
        let base_url = base_url_for(addr);

        let state = Arc::new(AppState::new(config.clone(), base_url.clone()));
        if let Some(folder) = &config.mailbox {
            load_mailbox(&state, folder)?;
        }
        let app = router(state);

        let (shutdown, signal) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let server = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = signal.await;
            });
            if let Err(error) = server.await {
                tracing::error!(%error, "sandbox server failed");
            }
        });
        tracing::info!(%base_url, "sandbox started");
        Ok(Sandbox {
            addr,
            base_url,
            shutdown,
            task,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Returns `http://127.0.0.1:PORT` (an unspecified listen address becomes 127.0.0.1).
    pub fn base_url(&self) -> String {
        self.base_url.clone()
    }

    pub fn urls(&self) -> SandboxUrls {
        let base = &self.base_url;
        SandboxUrls {
            google_authorize: format!("{base}/google/o/oauth2/v2/auth"),
            google_token: format!("{base}/google/token"),
            google_revoke: format!("{base}/google/revoke"),
            google_api: base.clone(),
            slack_authorize: format!("{base}/slack/oauth/v2/authorize"),
            slack_api: format!("{base}/slack/api"),
        }
    }

    /// Stops accepting connections and waits for open requests to finish.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(());
        if let Err(error) = self.task.await {
            tracing::error!(%error, "sandbox task ended abnormally");
        }
        tracing::info!(base_url = %self.base_url, "sandbox stopped");
    }
}

/// Runs the sandbox until ctrl-c (`patchbay sandbox`).
pub async fn run(config: SandboxConfig) -> anyhow::Result<()> {
    let sandbox = Sandbox::start(config).await?;
    let urls = sandbox.urls();
    tracing::info!(
        google_authorize = %urls.google_authorize,
        google_token = %urls.google_token,
        google_revoke = %urls.google_revoke,
        google_api = %urls.google_api,
        slack_authorize = %urls.slack_authorize,
        slack_api = %urls.slack_api,
        "sandbox provider URLs"
    );
    tokio::signal::ctrl_c()
        .await
        .context("failed to listen for ctrl-c")?;
    sandbox.shutdown().await;
    Ok(())
}

fn base_url_for(addr: SocketAddr) -> String {
    let host = match addr.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        ip if ip.is_unspecified() => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(host, addr.port()))
}

fn router(state: SharedState) -> Router {
    let gmail_routes = Router::new()
        .route("/users/{user_id}/profile", get(gmail::get_profile))
        .route("/users/{user_id}/messages", get(gmail::list_messages))
        .route(
            "/users/{user_id}/messages/send",
            post(gmail_send::send_json),
        )
        .route(
            "/users/{user_id}/messages/{id}",
            get(gmail::get_message).delete(gmail::delete_message),
        )
        .route(
            "/users/{user_id}/messages/{id}/modify",
            post(gmail::modify_message),
        )
        .route(
            "/users/{user_id}/messages/{id}/attachments/{attachment_id}",
            get(gmail::get_attachment),
        )
        .route("/users/{user_id}/history", get(gmail::list_history))
        .fallback(gmail::unknown_method);

    Router::new()
        .route("/google/o/oauth2/v2/auth", get(google_oauth::authorize))
        .route("/google/token", post(google_oauth::token))
        .route("/google/revoke", post(google_oauth::revoke))
        .nest("/gmail/v1", gmail_routes)
        .route(
            "/upload/gmail/v1/users/{user_id}/messages/send",
            post(gmail_send::send_upload),
        )
        .route("/slack/oauth/v2/authorize", get(slack_oauth::authorize))
        .route(
            "/slack/api/{method}",
            get(slack::web_api).post(slack::web_api),
        )
        .nest(control::CONTROL_PREFIX, control::router())
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            control::intercept,
        ))
        .with_state(state)
}

/// Loads every `*.eml` file of `folder`, sorted by name, into the default Google account
/// with labels INBOX and UNREAD (or those of an `X-Sandbox-Labels` header). A file that does
/// not parse is skipped with a warning.
fn load_mailbox(state: &SharedState, folder: &Path) -> anyhow::Result<()> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(folder)
        .with_context(|| format!("failed to read mailbox folder {}", folder.display()))?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| {
            path.extension()
                .is_some_and(|extension| extension.eq_ignore_ascii_case("eml"))
        })
        .collect();
    files.sort();

    let labels = vec!["INBOX".to_string(), "UNREAD".to_string()];
    let mut inner = state.lock();
    let mailbox = &mut inner
        .google
        .account_mut(&state.config.google_account)
        .mailbox;
    let mut loaded = 0;
    for path in &files {
        let raw = match std::fs::read(path) {
            Ok(raw) => raw,
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "skipped unreadable mailbox file");
                continue;
            }
        };
        let modified_ms = std::fs::metadata(path)
            .and_then(|metadata| metadata.modified())
            .map(|time| chrono::DateTime::<chrono::Utc>::from(time).timestamp_millis())
            .unwrap_or_else(|_| chrono::Utc::now().timestamp_millis());
        if mailbox.import_eml(&raw, &labels, modified_ms).is_some() {
            loaded += 1;
        } else {
            tracing::warn!(path = %path.display(), "skipped mailbox file that does not parse as a message");
        }
    }
    tracing::info!(folder = %folder.display(), loaded, skipped = files.len() - loaded, "mailbox loaded");
    Ok(())
}

/// Renders `raw` (an RFC 5322 message) as the Gmail `Message` resource that the sandbox
/// serves for `messages.get?format=full`, or `None` when it does not parse as a message.
pub fn message_resource(raw: &[u8]) -> Option<serde_json::Value> {
    let mut mailbox = mailbox::Mailbox::new();
    let labels = ["INBOX".to_string()];
    let now_ms = chrono::Utc::now().timestamp_millis();
    let message = mailbox.import_eml(raw, &labels, now_ms)?;
    Some(gmail::message_json(message, gmail::Format::Full, &[]))
}
