//! Preparing a gateway database and connecting accounts, as an operator and a client
//! application would.

use std::path::Path;

use anyhow::{Context, bail};
use chrono::Utc;
use patchbay::Provider;
use patchbay::crypto::{EncryptionKey, TokenCipher};
use patchbay::execute::{TokenKind, token_context};
use patchbay::sandbox::SandboxUrls;
use patchbay::store::{self, ConnectionRecord, ConnectionStatus, Store, StoredTokens, new_id};
use secrecy::ExposeSecret;

/// A gateway database with one tenant and its API key.
pub struct GatewayDb {
    pub database_url: String,
    pub key: EncryptionKey,
    pub tenant_id: String,
    pub api_key: String,
}

impl GatewayDb {
    /// Creates the database file in `dir` with a tenant and an API key.
    pub async fn create(dir: &Path) -> anyhow::Result<GatewayDb> {
        let database_url = format!("sqlite://{}", dir.join("gateway.db").display());
        let store = store::connect(&database_url, 1).await?;
        let tenant = store.create_tenant("Bench").await?;
        let created = patchbay::cli::create_api_key(store.as_ref(), &tenant.id, None).await?;
        let api_key = created["key"]
            .as_str()
            .context("create_api_key returned no key")?
            .to_owned();
        Ok(GatewayDb {
            database_url,
            key: EncryptionKey::generate(),
            tenant_id: tenant.id,
            api_key,
        })
    }

    pub async fn store(&self) -> anyhow::Result<std::sync::Arc<dyn Store>> {
        store::connect(&self.database_url, 1).await
    }

    /// Environment of a `patchbay serve` on this database, with Google and Slack at
    /// `urls` and the Slack Web API at `slack_api` (the sandbox's or a fake's).
    pub fn env(&self, urls: &SandboxUrls, slack_api: &str) -> Vec<(String, String)> {
        let pairs = [
            ("PATCHBAY_DATABASE_URL", self.database_url.clone()),
            (
                "PATCHBAY_ENCRYPTION_KEY",
                self.key.to_base64().expose_secret().to_owned(),
            ),
            ("PATCHBAY_GOOGLE_CLIENT_ID", "sandbox-google-client".into()),
            (
                "PATCHBAY_GOOGLE_CLIENT_SECRET",
                "sandbox-google-secret".into(),
            ),
            ("PATCHBAY_SLACK_CLIENT_ID", "sandbox-slack-client".into()),
            (
                "PATCHBAY_SLACK_CLIENT_SECRET",
                "sandbox-slack-secret".into(),
            ),
            (
                "PATCHBAY_GOOGLE_AUTHORIZE_URL",
                urls.google_authorize.clone(),
            ),
            ("PATCHBAY_GOOGLE_TOKEN_URL", urls.google_token.clone()),
            ("PATCHBAY_GOOGLE_REVOKE_URL", urls.google_revoke.clone()),
            ("PATCHBAY_GOOGLE_API_URL", urls.google_api.clone()),
            ("PATCHBAY_SLACK_AUTHORIZE_URL", urls.slack_authorize.clone()),
            ("PATCHBAY_SLACK_API_URL", slack_api.to_owned()),
        ];
        pairs
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value))
            .collect()
    }

    /// Stores an org-wide Slack connection whose bot token is `bot_token`, as the OAuth
    /// callback would.
    pub async fn insert_slack_connection(&self, bot_token: &str) -> anyhow::Result<()> {
        let store = self.store().await?;
        let cipher = TokenCipher::new(&self.key, &[]);
        let id = new_id("conn");
        let now = Utc::now();
        let record = ConnectionRecord {
            id: id.clone(),
            tenant_id: self.tenant_id.clone(),
            provider: Provider::Slack,
            user_id: None,
            account_name: Some("Bench workspace".to_owned()),
            account_avatar: None,
            scopes: "chat:write".to_owned(),
            user_scopes: String::new(),
            status: ConnectionStatus::Active,
            tokens: StoredTokens {
                access_token: cipher
                    .encrypt(bot_token, &token_context(&id, TokenKind::Main, false)),
                ..StoredTokens::default()
            },
            connected_at: now,
            updated_at: now,
        };
        store.upsert_connection(&record).await?;
        Ok(())
    }

    /// Marks the stored access token of a connection as expired, so that the next request
    /// refreshes it.
    pub async fn expire_access_token(
        &self,
        provider: Provider,
        user_id: Option<&str>,
    ) -> anyhow::Result<()> {
        let store = self.store().await?;
        let record = store
            .get_connection(&self.tenant_id, provider, user_id)
            .await?
            .context("connection to expire not found")?;
        let mut tokens = record.tokens.clone();
        tokens.expires_at = Some(Utc::now() - chrono::Duration::hours(1));
        store
            .update_connection_tokens(&record.id, &tokens, Utc::now())
            .await?;
        Ok(())
    }
}

/// Connects `provider` for `user_id` through the gateway's OAuth flow against the sandbox:
/// authorize, consent, callback.
pub async fn connect(
    gateway_url: &str,
    api_key: &str,
    provider: &str,
    user_id: Option<&str>,
) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let mut authorize = client
        .get(format!("{gateway_url}/v1/connections/{provider}/authorize"))
        .bearer_auth(api_key);
    if let Some(user_id) = user_id {
        authorize = authorize.header("X-User-Id", user_id);
    }
    let answer: serde_json::Value = authorize.send().await?.error_for_status()?.json().await?;
    let consent_url = answer["url"]
        .as_str()
        .context("authorize returned no url")?;
    let consent = client.get(consent_url).send().await?;
    let callback = consent
        .headers()
        .get("location")
        .and_then(|value| value.to_str().ok())
        .context("the sandbox consent did not redirect")?
        .to_owned();
    let done = client.get(&callback).send().await?;
    if !done.status().is_success() {
        bail!("the {provider} callback failed with {}", done.status());
    }
    Ok(())
}
