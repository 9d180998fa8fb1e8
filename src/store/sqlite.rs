//! The embedded SQLite store.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow};
use sqlx::{Row, SqlitePool};

use super::{
    ApiKeyRecord, ConnectionRecord, ConnectionStatus, OAuthStateRecord, RefreshLease, Store,
    StoreError, StoreResult, StoredTokens, Tenant, format_time, new_id, parse_time, user_key,
};
use crate::Provider;

pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and applies migrations.
    pub async fn connect(database_url: &str, pool_size: u32) -> anyhow::Result<Self> {
        let options = SqliteConnectOptions::from_str(database_url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        // A pooled SQLite connection is an open file that cannot go stale, so the pool does
        // not ping it on every acquire. Each ping is a round trip to the connection's worker
        // thread, which doubled the thread hand-offs of every query.
        let pool = SqlitePoolOptions::new()
            .max_connections(pool_size.max(1))
            .acquire_timeout(Duration::from_secs(5))
            .test_before_acquire(false)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        Ok(SqliteStore { pool })
    }
}

fn opt_time(value: Option<String>) -> StoreResult<Option<DateTime<Utc>>> {
    value.as_deref().map(parse_time).transpose()
}

fn provider_of(text: &str) -> StoreResult<Provider> {
    text.parse()
        .map_err(|_| StoreError::Corrupt(format!("unknown provider {text:?}")))
}

fn user_of(text: String) -> Option<String> {
    (!text.is_empty()).then_some(text)
}

fn tenant_from_row(row: &SqliteRow) -> StoreResult<Tenant> {
    Ok(Tenant {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        created_at: parse_time(&row.try_get::<String, _>("created_at")?)?,
    })
}

fn api_key_from_row(row: &SqliteRow) -> StoreResult<ApiKeyRecord> {
    Ok(ApiKeyRecord {
        id: row.try_get("id")?,
        tenant_id: row.try_get("tenant_id")?,
        name: row.try_get("name")?,
        key_hint: row.try_get("hint")?,
        created_at: parse_time(&row.try_get::<String, _>("created_at")?)?,
        last_used_at: opt_time(row.try_get("last_used_at")?)?,
        revoked_at: opt_time(row.try_get("revoked_at")?)?,
    })
}

fn state_from_row(row: &SqliteRow) -> StoreResult<OAuthStateRecord> {
    Ok(OAuthStateRecord {
        state_hash: row.try_get("state_hash")?,
        tenant_id: row.try_get("tenant_id")?,
        provider: provider_of(&row.try_get::<String, _>("provider")?)?,
        user_id: user_of(row.try_get("user_id")?),
        redirect_after: row.try_get("redirect_after")?,
        pkce_verifier: row.try_get("pkce_verifier")?,
        created_at: parse_time(&row.try_get::<String, _>("created_at")?)?,
        expires_at: parse_time(&row.try_get::<String, _>("expires_at")?)?,
    })
}

fn connection_from_row(row: &SqliteRow) -> StoreResult<ConnectionRecord> {
    Ok(ConnectionRecord {
        id: row.try_get("id")?,
        tenant_id: row.try_get("tenant_id")?,
        provider: provider_of(&row.try_get::<String, _>("provider")?)?,
        user_id: user_of(row.try_get("user_id")?),
        account_name: row.try_get("account_name")?,
        account_avatar: row.try_get("account_avatar")?,
        scopes: row.try_get("scopes")?,
        user_scopes: row.try_get("user_scopes")?,
        status: ConnectionStatus::parse(&row.try_get::<String, _>("status")?)?,
        tokens: StoredTokens {
            access_token: row.try_get("access_token")?,
            refresh_token: row.try_get("refresh_token")?,
            expires_at: opt_time(row.try_get("expires_at")?)?,
            user_access_token: row.try_get("user_access_token")?,
            user_refresh_token: row.try_get("user_refresh_token")?,
            user_expires_at: opt_time(row.try_get("user_expires_at")?)?,
        },
        connected_at: parse_time(&row.try_get::<String, _>("connected_at")?)?,
        updated_at: parse_time(&row.try_get::<String, _>("updated_at")?)?,
    })
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn create_tenant(&self, name: &str) -> StoreResult<Tenant> {
        let tenant = Tenant {
            id: new_id("ten"),
            name: name.to_owned(),
            created_at: Utc::now(),
        };
        sqlx::query("INSERT INTO tenants (id, name, created_at) VALUES (?, ?, ?)")
            .bind(&tenant.id)
            .bind(&tenant.name)
            .bind(format_time(tenant.created_at))
            .execute(&self.pool)
            .await?;
        Ok(tenant)
    }

    async fn get_tenant(&self, tenant_id: &str) -> StoreResult<Option<Tenant>> {
        let row = sqlx::query("SELECT * FROM tenants WHERE id = ?")
            .bind(tenant_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(tenant_from_row).transpose()
    }

    async fn list_tenants(&self) -> StoreResult<Vec<Tenant>> {
        let rows = sqlx::query("SELECT * FROM tenants ORDER BY created_at, id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(tenant_from_row).collect()
    }

    async fn add_redirect_origin(&self, tenant_id: &str, origin: &str) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO tenant_redirect_origins (tenant_id, origin) VALUES (?, ?) \
             ON CONFLICT DO NOTHING",
        )
        .bind(tenant_id)
        .bind(origin)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn redirect_origins(&self, tenant_id: &str) -> StoreResult<Vec<String>> {
        let rows = sqlx::query(
            "SELECT origin FROM tenant_redirect_origins WHERE tenant_id = ? ORDER BY origin",
        )
        .bind(tenant_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|row| Ok(row.try_get("origin")?)).collect()
    }

    async fn insert_api_key(&self, key: &ApiKeyRecord, key_hash: &str) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO api_keys (id, tenant_id, name, key_hash, hint, created_at) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&key.id)
        .bind(&key.tenant_id)
        .bind(&key.name)
        .bind(key_hash)
        .bind(&key.key_hint)
        .bind(format_time(key.created_at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn list_api_keys(&self, tenant_id: &str) -> StoreResult<Vec<ApiKeyRecord>> {
        let rows =
            sqlx::query("SELECT * FROM api_keys WHERE tenant_id = ? ORDER BY created_at, id")
                .bind(tenant_id)
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(api_key_from_row).collect()
    }

    async fn revoke_api_key(&self, key_id: &str, now: DateTime<Utc>) -> StoreResult<bool> {
        let result =
            sqlx::query("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
                .bind(format_time(now))
                .bind(key_id)
                .execute(&self.pool)
                .await?;
        Ok(result.rows_affected() == 1)
    }

    async fn authenticate_api_key(
        &self,
        key_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<ApiKeyRecord>> {
        let row = sqlx::query("SELECT * FROM api_keys WHERE key_hash = ? AND revoked_at IS NULL")
            .bind(key_hash)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let key = api_key_from_row(&row)?;
        let stale = key
            .last_used_at
            .is_none_or(|used| now - used > chrono::Duration::minutes(1));
        if stale {
            sqlx::query("UPDATE api_keys SET last_used_at = ? WHERE id = ?")
                .bind(format_time(now))
                .bind(&key.id)
                .execute(&self.pool)
                .await?;
        }
        Ok(Some(key))
    }

    async fn insert_oauth_state(&self, state: &OAuthStateRecord) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO oauth_states (state_hash, tenant_id, provider, user_id, redirect_after, \
             pkce_verifier, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&state.state_hash)
        .bind(&state.tenant_id)
        .bind(state.provider.as_str())
        .bind(user_key(state.user_id.as_deref()))
        .bind(&state.redirect_after)
        .bind(&state.pkce_verifier)
        .bind(format_time(state.created_at))
        .bind(format_time(state.expires_at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn take_oauth_state(
        &self,
        state_hash: &str,
        provider: Provider,
    ) -> StoreResult<Option<OAuthStateRecord>> {
        let row = sqlx::query(
            "DELETE FROM oauth_states WHERE state_hash = ? AND provider = ? RETURNING *",
        )
        .bind(state_hash)
        .bind(provider.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(state_from_row).transpose()
    }

    async fn delete_expired_oauth_states(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        let result = sqlx::query("DELETE FROM oauth_states WHERE expires_at < ?")
            .bind(format_time(now))
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected())
    }

    async fn upsert_connection(&self, c: &ConnectionRecord) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO connections (id, tenant_id, provider, user_id, account_name, \
             account_avatar, scopes, user_scopes, status, access_token, refresh_token, \
             expires_at, user_access_token, user_refresh_token, user_expires_at, connected_at, \
             updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (tenant_id, provider, user_id) DO UPDATE SET id = excluded.id, \
             account_name = excluded.account_name, account_avatar = excluded.account_avatar, \
             scopes = excluded.scopes, user_scopes = excluded.user_scopes, \
             status = excluded.status, access_token = excluded.access_token, \
             refresh_token = excluded.refresh_token, expires_at = excluded.expires_at, \
             user_access_token = excluded.user_access_token, \
             user_refresh_token = excluded.user_refresh_token, \
             user_expires_at = excluded.user_expires_at, connected_at = excluded.connected_at, \
             updated_at = excluded.updated_at",
        )
        .bind(&c.id)
        .bind(&c.tenant_id)
        .bind(c.provider.as_str())
        .bind(user_key(c.user_id.as_deref()))
        .bind(&c.account_name)
        .bind(&c.account_avatar)
        .bind(&c.scopes)
        .bind(&c.user_scopes)
        .bind(c.status.as_str())
        .bind(&c.tokens.access_token)
        .bind(&c.tokens.refresh_token)
        .bind(c.tokens.expires_at.map(format_time))
        .bind(&c.tokens.user_access_token)
        .bind(&c.tokens.user_refresh_token)
        .bind(c.tokens.user_expires_at.map(format_time))
        .bind(format_time(c.connected_at))
        .bind(format_time(c.updated_at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn get_connection(
        &self,
        tenant_id: &str,
        provider: Provider,
        user_id: Option<&str>,
    ) -> StoreResult<Option<ConnectionRecord>> {
        let row = sqlx::query(
            "SELECT * FROM connections WHERE tenant_id = ? AND provider = ? AND user_id = ?",
        )
        .bind(tenant_id)
        .bind(provider.as_str())
        .bind(user_key(user_id))
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(connection_from_row).transpose()
    }

    async fn get_connection_by_id(&self, id: &str) -> StoreResult<Option<ConnectionRecord>> {
        let row = sqlx::query("SELECT * FROM connections WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(connection_from_row).transpose()
    }

    async fn list_connections(
        &self,
        tenant_id: &str,
        user_id: Option<&str>,
    ) -> StoreResult<Vec<ConnectionRecord>> {
        let rows = match user_id {
            Some(user) => {
                sqlx::query(
                    "SELECT * FROM connections WHERE tenant_id = ? AND user_id = ? \
                     ORDER BY provider",
                )
                .bind(tenant_id)
                .bind(user)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(
                    "SELECT * FROM connections WHERE tenant_id = ? ORDER BY user_id, provider",
                )
                .bind(tenant_id)
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter().map(connection_from_row).collect()
    }

    async fn delete_connection(
        &self,
        tenant_id: &str,
        provider: Provider,
        user_id: Option<&str>,
    ) -> StoreResult<Option<ConnectionRecord>> {
        let row = sqlx::query(
            "DELETE FROM connections WHERE tenant_id = ? AND provider = ? AND user_id = ? \
             RETURNING *",
        )
        .bind(tenant_id)
        .bind(provider.as_str())
        .bind(user_key(user_id))
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(connection_from_row).transpose()
    }

    async fn count_account_connections(
        &self,
        provider: Provider,
        account_name: &str,
    ) -> StoreResult<i64> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM connections WHERE provider = ? AND account_name = ?",
        )
        .bind(provider.as_str())
        .bind(account_name)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get("n")?)
    }

    async fn update_connection_tokens(
        &self,
        id: &str,
        tokens: &StoredTokens,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let result = sqlx::query(
            "UPDATE connections SET access_token = ?, refresh_token = ?, expires_at = ?, \
             user_access_token = ?, user_refresh_token = ?, user_expires_at = ?, \
             updated_at = ? WHERE id = ?",
        )
        .bind(&tokens.access_token)
        .bind(&tokens.refresh_token)
        .bind(tokens.expires_at.map(format_time))
        .bind(&tokens.user_access_token)
        .bind(&tokens.user_refresh_token)
        .bind(tokens.user_expires_at.map(format_time))
        .bind(format_time(now))
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    async fn set_connection_status(
        &self,
        id: &str,
        status: ConnectionStatus,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        sqlx::query("UPDATE connections SET status = ?, updated_at = ? WHERE id = ?")
            .bind(status.as_str())
            .bind(format_time(now))
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn lease_refresh(
        &self,
        id: &str,
        _wait: Duration,
    ) -> StoreResult<Option<Box<dyn RefreshLease>>> {
        let Some(record) = self.get_connection_by_id(id).await? else {
            return Ok(None);
        };
        Ok(Some(Box::new(SqliteLease {
            pool: self.pool.clone(),
            record,
        })))
    }
}

/// On SQLite, one gateway process owns the file, so the in-process single flight
/// of the refresher is the whole lock and the lease only writes the outcome.
struct SqliteLease {
    pool: SqlitePool,
    record: ConnectionRecord,
}

#[async_trait]
impl RefreshLease for SqliteLease {
    fn record(&self) -> &ConnectionRecord {
        &self.record
    }

    async fn finish(
        self: Box<Self>,
        tokens: Option<StoredTokens>,
        status: Option<ConnectionStatus>,
    ) -> StoreResult<()> {
        let store = SqliteStore { pool: self.pool };
        let now = Utc::now();
        if let Some(tokens) = tokens {
            store
                .update_connection_tokens(&self.record.id, &tokens, now)
                .await?;
        }
        if let Some(status) = status {
            store
                .set_connection_status(&self.record.id, status, now)
                .await?;
        }
        Ok(())
    }
}
