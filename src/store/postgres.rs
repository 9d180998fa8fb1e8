//! The PostgreSQL store, shared by several gateway instances.
//!
//! The pool connects lazily and migrations run on first use, so a gateway whose
//! database is down at start-up still starts, responds `503 database_unavailable`,
//! and recovers by itself once the database is back.

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{PgPool, Postgres, Row, Transaction};
use tokio::sync::Mutex;

use super::{
    ApiKeyRecord, ConnectionRecord, ConnectionStatus, OAuthStateRecord, RefreshLease, Store,
    StoreError, StoreResult, StoredTokens, Tenant, new_id, user_key,
};
use crate::Provider;

/// SQLSTATE of `lock_not_available`, raised when `lock_timeout` expires.
const LOCK_NOT_AVAILABLE: &str = "55P03";

pub struct PostgresStore {
    pool: PgPool,
    migrated: Arc<AtomicBool>,
    migrating: Arc<Mutex<()>>,
}

impl PostgresStore {
    /// Creates the pool without connecting and tries the migrations once; a
    /// database that is down now is tried again on each later use.
    pub async fn connect(database_url: &str, pool_size: u32) -> anyhow::Result<Self> {
        let options = PgConnectOptions::from_str(database_url)?;
        let pool = PgPoolOptions::new()
            .max_connections(pool_size.max(1))
            .acquire_timeout(Duration::from_secs(5))
            .connect_lazy_with(options);
        let store = PostgresStore {
            pool,
            migrated: Arc::new(AtomicBool::new(false)),
            migrating: Arc::new(Mutex::new(())),
        };
        match store.ready().await {
            Ok(()) => {}
            Err(StoreError::Unavailable(error)) => {
                tracing::warn!(error = %error, "PostgreSQL is unavailable; retrying on each request");
            }
            Err(other) => return Err(other.into()),
        }
        Ok(store)
    }

    /// Applies the migrations once per process before any other query.
    async fn ready(&self) -> StoreResult<()> {
        if self.migrated.load(Ordering::Acquire) {
            return Ok(());
        }
        let _guard = self.migrating.lock().await;
        if self.migrated.load(Ordering::Acquire) {
            return Ok(());
        }
        sqlx::migrate!("./migrations/postgres")
            .run(&self.pool)
            .await
            .map_err(|error| match error {
                sqlx::migrate::MigrateError::Execute(inner) => StoreError::from(inner),
                other => StoreError::Corrupt(format!("migration failed: {other}")),
            })?;
        self.migrated.store(true, Ordering::Release);
        tracing::info!("PostgreSQL migrations applied");
        Ok(())
    }
}

fn provider_of(text: &str) -> StoreResult<Provider> {
    text.parse()
        .map_err(|_| StoreError::Corrupt(format!("unknown provider {text:?}")))
}

fn user_of(text: String) -> Option<String> {
    (!text.is_empty()).then_some(text)
}

fn tenant_from_row(row: &PgRow) -> StoreResult<Tenant> {
    Ok(Tenant {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        created_at: row.try_get("created_at")?,
    })
}

fn api_key_from_row(row: &PgRow) -> StoreResult<ApiKeyRecord> {
    Ok(ApiKeyRecord {
        id: row.try_get("id")?,
        tenant_id: row.try_get("tenant_id")?,
        name: row.try_get("name")?,
        key_hint: row.try_get("hint")?,
        created_at: row.try_get("created_at")?,
        last_used_at: row.try_get("last_used_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

fn state_from_row(row: &PgRow) -> StoreResult<OAuthStateRecord> {
    Ok(OAuthStateRecord {
        state_hash: row.try_get("state_hash")?,
        tenant_id: row.try_get("tenant_id")?,
        provider: provider_of(&row.try_get::<String, _>("provider")?)?,
        user_id: user_of(row.try_get("user_id")?),
        redirect_after: row.try_get("redirect_after")?,
        pkce_verifier: row.try_get("pkce_verifier")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
    })
}

fn connection_from_row(row: &PgRow) -> StoreResult<ConnectionRecord> {
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
            expires_at: row.try_get("expires_at")?,
            user_access_token: row.try_get("user_access_token")?,
            user_refresh_token: row.try_get("user_refresh_token")?,
            user_expires_at: row.try_get("user_expires_at")?,
        },
        connected_at: row.try_get("connected_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

const UPDATE_TOKENS: &str = "UPDATE connections SET access_token = $1, refresh_token = $2, \
     expires_at = $3, user_access_token = $4, user_refresh_token = $5, user_expires_at = $6, \
     updated_at = $7 WHERE id = $8";

const UPDATE_STATUS: &str = "UPDATE connections SET status = $1, updated_at = $2 WHERE id = $3";

fn bind_tokens<'q>(
    query: sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>,
    tokens: &'q StoredTokens,
    now: DateTime<Utc>,
    id: &'q str,
) -> sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments> {
    query
        .bind(&tokens.access_token)
        .bind(&tokens.refresh_token)
        .bind(tokens.expires_at)
        .bind(&tokens.user_access_token)
        .bind(&tokens.user_refresh_token)
        .bind(tokens.user_expires_at)
        .bind(now)
        .bind(id)
}

#[async_trait]
impl Store for PostgresStore {
    async fn ping(&self) -> StoreResult<()> {
        self.ready().await?;
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn create_tenant(&self, name: &str) -> StoreResult<Tenant> {
        self.ready().await?;
        let tenant = Tenant {
            id: new_id("ten"),
            name: name.to_owned(),
            created_at: Utc::now(),
        };
        sqlx::query("INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(&tenant.id)
            .bind(&tenant.name)
            .bind(tenant.created_at)
            .execute(&self.pool)
            .await?;
        Ok(tenant)
    }

    async fn get_tenant(&self, tenant_id: &str) -> StoreResult<Option<Tenant>> {
        self.ready().await?;
        let row = sqlx::query("SELECT * FROM tenants WHERE id = $1")
            .bind(tenant_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(tenant_from_row).transpose()
    }

    async fn list_tenants(&self) -> StoreResult<Vec<Tenant>> {
        self.ready().await?;
        let rows = sqlx::query("SELECT * FROM tenants ORDER BY created_at, id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(tenant_from_row).collect()
    }

    async fn add_redirect_origin(&self, tenant_id: &str, origin: &str) -> StoreResult<()> {
        self.ready().await?;
        sqlx::query(
            "INSERT INTO tenant_redirect_origins (tenant_id, origin) VALUES ($1, $2) \
             ON CONFLICT DO NOTHING",
        )
        .bind(tenant_id)
        .bind(origin)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn redirect_origins(&self, tenant_id: &str) -> StoreResult<Vec<String>> {
        self.ready().await?;
        let rows = sqlx::query(
            "SELECT origin FROM tenant_redirect_origins WHERE tenant_id = $1 ORDER BY origin",
        )
        .bind(tenant_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|row| Ok(row.try_get("origin")?)).collect()
    }

    async fn insert_api_key(&self, key: &ApiKeyRecord, key_hash: &str) -> StoreResult<()> {
        self.ready().await?;
        sqlx::query(
            "INSERT INTO api_keys (id, tenant_id, name, key_hash, hint, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&key.id)
        .bind(&key.tenant_id)
        .bind(&key.name)
        .bind(key_hash)
        .bind(&key.key_hint)
        .bind(key.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn list_api_keys(&self, tenant_id: &str) -> StoreResult<Vec<ApiKeyRecord>> {
        self.ready().await?;
        let rows =
            sqlx::query("SELECT * FROM api_keys WHERE tenant_id = $1 ORDER BY created_at, id")
                .bind(tenant_id)
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(api_key_from_row).collect()
    }

    async fn revoke_api_key(&self, key_id: &str, now: DateTime<Utc>) -> StoreResult<bool> {
        self.ready().await?;
        let result =
            sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(now)
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
        self.ready().await?;
        let row = sqlx::query("SELECT * FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL")
            .bind(key_hash)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let key = api_key_from_row(&row)?;
        let stale = key
            .last_used_at
            .is_none_or(|used| now - used > chrono::Duration::minutes(1));
        if stale {
            sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE id = $2")
                .bind(now)
                .bind(&key.id)
                .execute(&self.pool)
                .await?;
        }
        Ok(Some(key))
    }

    async fn insert_oauth_state(&self, state: &OAuthStateRecord) -> StoreResult<()> {
        self.ready().await?;
        sqlx::query(
            "INSERT INTO oauth_states (state_hash, tenant_id, provider, user_id, redirect_after, \
             pkce_verifier, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&state.state_hash)
        .bind(&state.tenant_id)
        .bind(state.provider.as_str())
        .bind(user_key(state.user_id.as_deref()))
        .bind(&state.redirect_after)
        .bind(&state.pkce_verifier)
        .bind(state.created_at)
        .bind(state.expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn take_oauth_state(
        &self,
        state_hash: &str,
        provider: Provider,
    ) -> StoreResult<Option<OAuthStateRecord>> {
        self.ready().await?;
        let row = sqlx::query(
            "DELETE FROM oauth_states WHERE state_hash = $1 AND provider = $2 RETURNING *",
        )
        .bind(state_hash)
        .bind(provider.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(state_from_row).transpose()
    }

    async fn delete_expired_oauth_states(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        self.ready().await?;
        let result = sqlx::query("DELETE FROM oauth_states WHERE expires_at < $1")
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected())
    }

    async fn upsert_connection(&self, c: &ConnectionRecord) -> StoreResult<()> {
        self.ready().await?;
        sqlx::query(
            "INSERT INTO connections (id, tenant_id, provider, user_id, account_name, \
             account_avatar, scopes, user_scopes, status, access_token, refresh_token, \
             expires_at, user_access_token, user_refresh_token, user_expires_at, connected_at, \
             updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, \
             $15, $16, $17) \
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
        .bind(c.tokens.expires_at)
        .bind(&c.tokens.user_access_token)
        .bind(&c.tokens.user_refresh_token)
        .bind(c.tokens.user_expires_at)
        .bind(c.connected_at)
        .bind(c.updated_at)
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
        self.ready().await?;
        let row = sqlx::query(
            "SELECT * FROM connections WHERE tenant_id = $1 AND provider = $2 AND user_id = $3",
        )
        .bind(tenant_id)
        .bind(provider.as_str())
        .bind(user_key(user_id))
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(connection_from_row).transpose()
    }

    async fn get_connection_by_id(&self, id: &str) -> StoreResult<Option<ConnectionRecord>> {
        self.ready().await?;
        let row = sqlx::query("SELECT * FROM connections WHERE id = $1")
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
        self.ready().await?;
        let rows = match user_id {
            Some(user) => {
                sqlx::query(
                    "SELECT * FROM connections WHERE tenant_id = $1 AND user_id = $2 \
                     ORDER BY provider",
                )
                .bind(tenant_id)
                .bind(user)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(
                    "SELECT * FROM connections WHERE tenant_id = $1 ORDER BY user_id, provider",
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
        self.ready().await?;
        let row = sqlx::query(
            "DELETE FROM connections WHERE tenant_id = $1 AND provider = $2 AND user_id = $3 \
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
        self.ready().await?;
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM connections WHERE provider = $1 AND account_name = $2",
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
        self.ready().await?;
        let result = bind_tokens(sqlx::query(UPDATE_TOKENS), tokens, now, id)
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
        self.ready().await?;
        sqlx::query(UPDATE_STATUS)
            .bind(status.as_str())
            .bind(now)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn lease_refresh(
        &self,
        id: &str,
        wait: Duration,
    ) -> StoreResult<Option<Box<dyn RefreshLease>>> {
        self.ready().await?;
        let mut tx = self.pool.begin().await?;
        // `SET LOCAL` takes no bind parameters; the value is a number we format.
        let millis = wait.as_millis().max(1);
        sqlx::query(&format!("SET LOCAL lock_timeout = '{millis}ms'"))
            .execute(&mut *tx)
            .await?;
        let row = sqlx::query("SELECT * FROM connections WHERE id = $1 FOR UPDATE")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(|error| match &error {
                sqlx::Error::Database(db) if db.code().as_deref() == Some(LOCK_NOT_AVAILABLE) => {
                    StoreError::LockTimeout
                }
                _ => StoreError::from(error),
            })?;
        let Some(row) = row else { return Ok(None) };
        let record = connection_from_row(&row)?;
        Ok(Some(Box::new(PgLease { tx, record })))
    }
}

/// A row lock on one connection, held by an open transaction. PostgreSQL releases
/// it when the transaction ends, including when its holder crashes or its
/// connection drops.
struct PgLease {
    tx: Transaction<'static, Postgres>,
    record: ConnectionRecord,
}

#[async_trait]
impl RefreshLease for PgLease {
    fn record(&self) -> &ConnectionRecord {
        &self.record
    }

    async fn finish(
        self: Box<Self>,
        tokens: Option<StoredTokens>,
        status: Option<ConnectionStatus>,
    ) -> StoreResult<()> {
        let PgLease { mut tx, record } = *self;
        let now = Utc::now();
        if let Some(tokens) = &tokens {
            bind_tokens(sqlx::query(UPDATE_TOKENS), tokens, now, &record.id)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(status) = status {
            sqlx::query(UPDATE_STATUS)
                .bind(status.as_str())
                .bind(now)
                .bind(&record.id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
