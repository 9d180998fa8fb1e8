//! Gateway configuration, read from `PATCHBAY_*` environment variables.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use secrecy::SecretString;

use crate::crypto::EncryptionKey;
use crate::providers::google::quota::{DEFAULT_UNITS_PER_SECOND, MAX_IN_FLIGHT};

/// Everything the gateway needs to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address the HTTP server binds (`PATCHBAY_LISTEN`).
    pub listen: SocketAddr,
    /// `sqlite://…` or `postgres://…` (`PATCHBAY_DATABASE_URL`).
    pub database_url: String,
    /// Maximum number of pooled database connections (`PATCHBAY_DATABASE_POOL_SIZE`).
    pub database_pool_size: u32,
    /// External base URL without a trailing slash; `redirect_uri` is built from it only.
    pub public_url: String,
    /// Key that encrypts new token ciphertexts.
    pub encryption_key: EncryptionKey,
    pub google: ProviderConfig,
    pub slack: ProviderConfig,
    /// Overall time limit of one provider API call. A call that takes longer gives
    /// `504 provider_timeout`. Not read from the environment.
    pub provider_timeout: Duration,
    /// Gmail quota units per second that each connection may spend
    /// (`PATCHBAY_GMAIL_QUOTA_UNITS_PER_SECOND`).
    pub gmail_quota_units_per_second: u32,
    /// Message fetches that one `gmail/read` or `gmail/sync` request runs at a time
    /// (`PATCHBAY_GMAIL_FETCH_CONCURRENCY`).
    pub gmail_fetch_concurrency: usize,
}

/// Default of [`Config::provider_timeout`].
pub const DEFAULT_PROVIDER_TIMEOUT: Duration = Duration::from_secs(30);

/// OAuth client and endpoints of one provider.
#[derive(Debug, Clone)]
pub struct ProviderConfig {
    /// `None` when the client id or secret is not set: authorize returns `provider_not_configured`.
    pub client: Option<OAuthClient>,
    pub authorize_url: String,
    /// Token endpoint; for Slack it is `{api_url}/oauth.v2.access`.
    pub token_url: String,
    pub revoke_url: String,
    /// API base: Gmail paths `/gmail/v1/users/me/…` or Slack method names follow it.
    pub api_url: String,
}

/// OAuth client credentials registered with a provider.
#[derive(Debug, Clone)]
pub struct OAuthClient {
    pub client_id: String,
    pub client_secret: SecretString,
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_DATABASE_URL: &str = "sqlite://patchbay.db";
/// Default of `PATCHBAY_GMAIL_FETCH_CONCURRENCY`.
pub const DEFAULT_GMAIL_FETCH_CONCURRENCY: usize = 8;

impl Config {
    /// Reads the configuration from the process environment.
    ///
    /// `PATCHBAY_ENCRYPTION_KEY` is required; the sandbox and quickstart commands
    /// build their configuration in code instead.
    pub fn from_env() -> anyhow::Result<Config> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup`, which returns a variable's value.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> anyhow::Result<Config> {
        let get = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());

        let listen_text = get("PATCHBAY_LISTEN").unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
        let listen: SocketAddr = listen_text.parse().with_context(|| {
            format!(
                "PATCHBAY_LISTEN must be an address such as 127.0.0.1:8080, got {listen_text:?}"
            )
        })?;
        let public_url = match get("PATCHBAY_PUBLIC_URL") {
            Some(url) => normalize_public_url(&url)?,
            None => format!("http://{listen}"),
        };
        let Some(key_text) = get("PATCHBAY_ENCRYPTION_KEY") else {
            bail!(
                "PATCHBAY_ENCRYPTION_KEY is missing: set it to the base64 of 32 random bytes, \
                 for example the output of `openssl rand -base64 32`"
            );
        };
        let encryption_key =
            EncryptionKey::from_base64(&key_text).context("PATCHBAY_ENCRYPTION_KEY is invalid")?;

        let client = |id_var: &str, secret_var: &str| match (get(id_var), get(secret_var)) {
            (Some(client_id), Some(secret)) => Some(OAuthClient {
                client_id,
                client_secret: SecretString::from(secret),
            }),
            _ => None,
        };
        let or = |name: &str, default: &str| get(name).unwrap_or_else(|| default.to_owned());
        let slack_api_url = trim_slash(&or("PATCHBAY_SLACK_API_URL", "https://slack.com/api"));

        let pool_text = or("PATCHBAY_DATABASE_POOL_SIZE", "10");
        let database_pool_size = pool_text.parse().ok().filter(|size| *size >= 1).with_context(|| {
            format!("PATCHBAY_DATABASE_POOL_SIZE must be a whole number of at least 1, got {pool_text:?}")
        })?;

        let quota_text = or(
            "PATCHBAY_GMAIL_QUOTA_UNITS_PER_SECOND",
            &DEFAULT_UNITS_PER_SECOND.to_string(),
        );
        let gmail_quota_units_per_second = quota_text
            .parse()
            .ok()
            .filter(|units| *units >= 1)
            .with_context(|| {
                format!(
                    "PATCHBAY_GMAIL_QUOTA_UNITS_PER_SECOND must be a whole number of at least 1, \
                     got {quota_text:?}"
                )
            })?;
        let fetch_text = or(
            "PATCHBAY_GMAIL_FETCH_CONCURRENCY",
            &DEFAULT_GMAIL_FETCH_CONCURRENCY.to_string(),
        );
        let gmail_fetch_concurrency = fetch_text
            .parse()
            .ok()
            .filter(|count| (1..=MAX_IN_FLIGHT).contains(count))
            .with_context(|| {
                format!(
                    "PATCHBAY_GMAIL_FETCH_CONCURRENCY must be a whole number from 1 to \
                     {MAX_IN_FLIGHT}, got {fetch_text:?}"
                )
            })?;

        Ok(Config {
            listen,
            database_url: or("PATCHBAY_DATABASE_URL", DEFAULT_DATABASE_URL),
            database_pool_size,
            public_url,
            encryption_key,
            google: ProviderConfig {
                client: client("PATCHBAY_GOOGLE_CLIENT_ID", "PATCHBAY_GOOGLE_CLIENT_SECRET"),
                authorize_url: or(
                    "PATCHBAY_GOOGLE_AUTHORIZE_URL",
                    "https://accounts.google.com/o/oauth2/v2/auth",
                ),
                token_url: or(
                    "PATCHBAY_GOOGLE_TOKEN_URL",
                    "https://oauth2.googleapis.com/token",
                ),
                revoke_url: or(
                    "PATCHBAY_GOOGLE_REVOKE_URL",
                    "https://oauth2.googleapis.com/revoke",
                ),
                api_url: trim_slash(&or(
                    "PATCHBAY_GOOGLE_API_URL",
                    "https://gmail.googleapis.com",
                )),
            },
            slack: ProviderConfig {
                client: client("PATCHBAY_SLACK_CLIENT_ID", "PATCHBAY_SLACK_CLIENT_SECRET"),
                authorize_url: or(
                    "PATCHBAY_SLACK_AUTHORIZE_URL",
                    "https://slack.com/oauth/v2/authorize",
                ),
                token_url: format!("{slack_api_url}/oauth.v2.access"),
                revoke_url: format!("{slack_api_url}/auth.revoke"),
                api_url: slack_api_url,
            },
            provider_timeout: DEFAULT_PROVIDER_TIMEOUT,
            gmail_quota_units_per_second,
            gmail_fetch_concurrency,
        })
    }

    /// The provider settings for `provider`.
    pub fn provider(&self, provider: crate::Provider) -> &ProviderConfig {
        match provider {
            crate::Provider::Google => &self.google,
            crate::Provider::Slack => &self.slack,
        }
    }
}

fn trim_slash(url: &str) -> String {
    url.trim_end_matches('/').to_owned()
}

/// Checks that the public URL is an absolute http(s) URL and drops a trailing slash.
fn normalize_public_url(text: &str) -> anyhow::Result<String> {
    let url = url::Url::parse(text)
        .with_context(|| format!("PATCHBAY_PUBLIC_URL is not a valid URL: {text:?}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        bail!("PATCHBAY_PUBLIC_URL must be an absolute http or https URL, got {text:?}");
    }
    if url.query().is_some() || url.fragment().is_some() {
        bail!("PATCHBAY_PUBLIC_URL must not have a query or fragment, got {text:?}");
    }
    Ok(trim_slash(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }

    const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    #[test]
    fn defaults_follow_listen_address() {
        let config = Config::from_lookup(lookup(&[
            ("PATCHBAY_ENCRYPTION_KEY", KEY),
            ("PATCHBAY_LISTEN", "127.0.0.1:9000"),
        ]))
        .unwrap();
        assert_eq!(config.public_url, "http://127.0.0.1:9000");
        assert_eq!(config.database_url, "sqlite://patchbay.db");
        assert!(config.google.client.is_none());
        assert_eq!(
            config.slack.token_url,
            "https://slack.com/api/oauth.v2.access"
        );
    }

    #[test]
    fn gmail_pacing_defaults_and_overrides() {
        let defaults = Config::from_lookup(lookup(&[("PATCHBAY_ENCRYPTION_KEY", KEY)])).unwrap();
        assert_eq!(defaults.gmail_quota_units_per_second, 240);
        assert_eq!(defaults.gmail_fetch_concurrency, 8);
        let set = Config::from_lookup(lookup(&[
            ("PATCHBAY_ENCRYPTION_KEY", KEY),
            ("PATCHBAY_GMAIL_QUOTA_UNITS_PER_SECOND", "100"),
            ("PATCHBAY_GMAIL_FETCH_CONCURRENCY", "1"),
        ]))
        .unwrap();
        assert_eq!(set.gmail_quota_units_per_second, 100);
        assert_eq!(set.gmail_fetch_concurrency, 1);
    }

    #[test]
    fn gmail_pacing_rejects_out_of_range() {
        for (name, value) in [
            ("PATCHBAY_GMAIL_QUOTA_UNITS_PER_SECOND", "0"),
            ("PATCHBAY_GMAIL_QUOTA_UNITS_PER_SECOND", "fast"),
            ("PATCHBAY_GMAIL_FETCH_CONCURRENCY", "0"),
            ("PATCHBAY_GMAIL_FETCH_CONCURRENCY", "11"),
        ] {
            let error =
                Config::from_lookup(lookup(&[("PATCHBAY_ENCRYPTION_KEY", KEY), (name, value)]))
                    .unwrap_err();
            assert!(error.to_string().contains(name), "{name}={value}: {error}");
        }
    }

    #[test]
    fn missing_encryption_key_is_an_error() {
        let error = Config::from_lookup(lookup(&[])).unwrap_err();
        assert!(error.to_string().contains("PATCHBAY_ENCRYPTION_KEY"));
    }

    #[test]
    fn public_url_must_be_absolute() {
        let error = Config::from_lookup(lookup(&[
            ("PATCHBAY_ENCRYPTION_KEY", KEY),
            ("PATCHBAY_PUBLIC_URL", "gateway.example.com"),
        ]))
        .unwrap_err();
        assert!(error.to_string().contains("PATCHBAY_PUBLIC_URL"));
    }

    #[test]
    fn public_url_loses_trailing_slash() {
        let config = Config::from_lookup(lookup(&[
            ("PATCHBAY_ENCRYPTION_KEY", KEY),
            ("PATCHBAY_PUBLIC_URL", "https://gw.example.com/base/"),
        ]))
        .unwrap();
        assert_eq!(config.public_url, "https://gw.example.com/base");
    }
}
