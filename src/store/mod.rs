//! Persistence: one [`Store`] interface over the tables of tenants, API keys,
//! pending OAuth authorizations and connections.
//!
//! Token fields of [`ConnectionRecord`] contain ciphertexts, so the store never
//! receives a token in plain text. User ids are `Option<&str>`, where `None` is the tenant's
//! org-wide connection.

mod postgres;
mod sqlite;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use rand::distributions::{Alphanumeric, DistString};

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

use crate::Provider;

/// Failure of a store operation.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or timed out.
    #[error("the database is unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    /// Another holder kept the row locked longer than the wait allowed.
    #[error("timed out waiting for a lock")]
    LockTimeout,
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        match &error {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_) => StoreError::Unavailable(error),
            sqlx::Error::Database(db) if db.code().as_deref().is_some_and(is_transient_code) => {
                StoreError::Unavailable(error)
            }
            _ => StoreError::Database(error),
        }
    }
}

/// Database error codes that mean "try again later" rather than a bad query:
/// SQLite's SQLITE_BUSY (5), SQLITE_LOCKED (6) and their extended codes, and
/// PostgreSQL's connection exceptions (class 08), shutdowns (57P01 to 57P03) and
/// too many connections (53300).
fn is_transient_code(code: &str) -> bool {
    let sqlite_busy = code.parse::<u32>().is_ok_and(|n| matches!(n & 0xff, 5 | 6));
    sqlite_busy || code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03" | "53300")
}

pub type StoreResult<T> = Result<T, StoreError>;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Tenant {
    pub id: String,
    pub name: String,
    #[serde(rename = "createdAt")]
    pub created_at: DateTime<Utc>,
}

/// An API key without its secret: only the hash is stored, and the hash is not
/// part of this record.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyRecord {
    pub id: String,
    pub tenant_id: String,
    pub name: Option<String>,
    pub key_hint: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A pending authorization, found again by the SHA-256 of its `state`.
#[derive(Debug, Clone)]
pub struct OAuthStateRecord {
    pub state_hash: String,
    pub tenant_id: String,
    pub provider: Provider,
    pub user_id: Option<String>,
    pub redirect_after: Option<String>,
    /// Encrypted PKCE verifier (Google only).
    pub pkce_verifier: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionStatus {
    Active,
    ReauthorizationRequired,
}

impl ConnectionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionStatus::Active => "active",
            ConnectionStatus::ReauthorizationRequired => "reauthorization_required",
        }
    }

    fn parse(text: &str) -> StoreResult<Self> {
        match text {
            "active" => Ok(ConnectionStatus::Active),
            "reauthorization_required" => Ok(ConnectionStatus::ReauthorizationRequired),
            other => Err(StoreError::Corrupt(format!(
                "unknown connection status {other:?}"
            ))),
        }
    }
}

/// Encrypted tokens of a connection. For Slack, `user_*` is the `authed_user` token.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredTokens {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub user_access_token: Option<String>,
    pub user_refresh_token: Option<String>,
    pub user_expires_at: Option<DateTime<Utc>>,
}

/// One connected provider account of a tenant's user (or of the tenant itself).
#[derive(Debug, Clone)]
pub struct ConnectionRecord {
    pub id: String,
    pub tenant_id: String,
    pub provider: Provider,
    pub user_id: Option<String>,
    pub account_name: Option<String>,
    pub account_avatar: Option<String>,
    /// Scopes granted to the main token, space separated.
    pub scopes: String,
    /// Scopes granted to Slack's user token, space separated; empty for Google.
    pub user_scopes: String,
    pub status: ConnectionStatus,
    pub tokens: StoredTokens,
    pub connected_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The exclusive right to refresh one connection's tokens. On PostgreSQL it is a
/// row lock, shared by every gateway instance on the database; dropping the lease
/// without [`RefreshLease::finish`] releases it and changes nothing.
#[async_trait]
pub trait RefreshLease: Send {
    /// Returns the connection as stored when the lease was taken.
    fn record(&self) -> &ConnectionRecord;
    /// Stores new tokens and/or a new status, then releases the lease.
    async fn finish(
        self: Box<Self>,
        tokens: Option<StoredTokens>,
        status: Option<ConnectionStatus>,
    ) -> StoreResult<()>;
}

/// The storage interface; SQLite and PostgreSQL implement it.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Checks that the database responds.
    async fn ping(&self) -> StoreResult<()>;

    async fn create_tenant(&self, name: &str) -> StoreResult<Tenant>;
    async fn get_tenant(&self, tenant_id: &str) -> StoreResult<Option<Tenant>>;
    async fn list_tenants(&self) -> StoreResult<Vec<Tenant>>;
    async fn add_redirect_origin(&self, tenant_id: &str, origin: &str) -> StoreResult<()>;
    async fn redirect_origins(&self, tenant_id: &str) -> StoreResult<Vec<String>>;

    async fn insert_api_key(&self, key: &ApiKeyRecord, key_hash: &str) -> StoreResult<()>;
    async fn list_api_keys(&self, tenant_id: &str) -> StoreResult<Vec<ApiKeyRecord>>;
    /// Marks a key revoked; returns false when no unrevoked key has this id.
    async fn revoke_api_key(&self, key_id: &str, now: DateTime<Utc>) -> StoreResult<bool>;
    /// Finds the unrevoked key with this hash and records its use at `now`
    /// (at most once a minute, to keep writes off the hot path).
    async fn authenticate_api_key(
        &self,
        key_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<ApiKeyRecord>>;

    async fn insert_oauth_state(&self, state: &OAuthStateRecord) -> StoreResult<()>;
    /// Deletes and returns the pending authorization with this hash for `provider`,
    /// so that a state works at most once. A state of another provider is left alone.
    async fn take_oauth_state(
        &self,
        state_hash: &str,
        provider: Provider,
    ) -> StoreResult<Option<OAuthStateRecord>>;
    async fn delete_expired_oauth_states(&self, now: DateTime<Utc>) -> StoreResult<u64>;

    /// Stores the connection, replacing (id included) any connection of the same
    /// tenant, provider and user.
    async fn upsert_connection(&self, connection: &ConnectionRecord) -> StoreResult<()>;
    async fn get_connection(
        &self,
        tenant_id: &str,
        provider: Provider,
        user_id: Option<&str>,
    ) -> StoreResult<Option<ConnectionRecord>>;
    async fn get_connection_by_id(&self, id: &str) -> StoreResult<Option<ConnectionRecord>>;
    /// With `Some(user)`, that user's connections; with `None`, all of the tenant's.
    async fn list_connections(
        &self,
        tenant_id: &str,
        user_id: Option<&str>,
    ) -> StoreResult<Vec<ConnectionRecord>>;
    async fn delete_connection(
        &self,
        tenant_id: &str,
        provider: Provider,
        user_id: Option<&str>,
    ) -> StoreResult<Option<ConnectionRecord>>;
    /// Counts the connections, across every tenant, to one provider account. Used
    /// only inside the gateway, to keep a shared grant from being revoked.
    async fn count_account_connections(
        &self,
        provider: Provider,
        account_name: &str,
    ) -> StoreResult<i64>;
    /// Replaces the tokens of connection `id`; returns false when it no longer exists.
    async fn update_connection_tokens(
        &self,
        id: &str,
        tokens: &StoredTokens,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
    async fn set_connection_status(
        &self,
        id: &str,
        status: ConnectionStatus,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// Takes the refresh lease of connection `id`, waiting at most `wait` for another
    /// holder. `None` when the connection no longer exists.
    async fn lease_refresh(
        &self,
        id: &str,
        wait: Duration,
    ) -> StoreResult<Option<Box<dyn RefreshLease>>>;
}

/// Opens the store named by a database URL, with at most `pool_size` connections,
/// and applies its migrations.
pub async fn connect(database_url: &str, pool_size: u32) -> anyhow::Result<Arc<dyn Store>> {
    if database_url.starts_with("sqlite:") {
        Ok(Arc::new(
            SqliteStore::connect(database_url, pool_size).await?,
        ))
    } else if database_url.starts_with("postgres:") || database_url.starts_with("postgresql:") {
        Ok(Arc::new(
            PostgresStore::connect(database_url, pool_size).await?,
        ))
    } else {
        anyhow::bail!("unsupported database URL: use sqlite://PATH or postgres://…")
    }
}

/// Generates a random id with a type prefix, such as `ten_8GZk…`.
pub fn new_id(prefix: &str) -> String {
    format!(
        "{prefix}_{}",
        Alphanumeric.sample_string(&mut rand::rngs::OsRng, 20)
    )
}

/// Fixed-width RFC 3339 UTC text, so that stored times compare correctly as strings.
pub(crate) fn format_time(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Micros, true)
}

pub(crate) fn parse_time(text: &str) -> StoreResult<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|time| time.with_timezone(&Utc))
        .map_err(|_| StoreError::Corrupt(format!("invalid stored time {text:?}")))
}

/// Returns the stored form of a user id, where '' is the org-wide connection.
pub(crate) fn user_key(user_id: Option<&str>) -> &str {
    user_id.unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_and_connection_codes_are_transient() {
        for code in ["5", "517", "6", "262", "08006", "57P01", "53300"] {
            assert!(is_transient_code(code), "{code}");
        }
        for code in ["19", "2067", "23505", "42P01"] {
            assert!(!is_transient_code(code), "{code}");
        }
    }
}
