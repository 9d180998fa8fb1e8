//! Running actions on a connection: pick the connection by the routing rules,
//! check scopes, keep its token fresh, and map provider failures.

pub mod gmail;
pub mod slack;
pub mod sync;

use std::future::Future;
use std::time::Duration;

use chrono::Utc;
use secrecy::{ExposeSecret, SecretString};

use crate::Provider;
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::oauth::refresh::RefreshFailure;
use crate::oauth::{self, OAuthError};
use crate::providers::ProviderError;
use crate::store::{ConnectionRecord, ConnectionStatus, StoreError, StoredTokens};

/// A token that expires within this margin is refreshed before use.
pub const REFRESH_MARGIN: chrono::Duration = chrono::Duration::minutes(5);

/// The token of a connection that an action uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// Google's token, or Slack's bot token.
    Main,
    /// Slack's `authed_user` token.
    User,
}

/// The connection an execute request runs on.
pub struct Connection {
    pub record: ConnectionRecord,
}

impl Connection {
    /// Loads the connection of (tenant, provider, user); never falls back from a
    /// user to the org-wide connection.
    pub async fn resolve(
        state: &AppState,
        tenant_id: &str,
        provider: Provider,
        user_id: Option<&str>,
    ) -> Result<Connection, ApiError> {
        let record = state
            .store
            .get_connection(tenant_id, provider, user_id)
            .await?
            .ok_or(ApiError::ConnectionNotFound {
                provider,
                owner: if user_id.is_some() {
                    "user"
                } else {
                    "tenant (org-wide)"
                },
                on_delete: false,
            })?;
        if record.status == ConnectionStatus::ReauthorizationRequired {
            return Err(ApiError::ReauthorizationRequired(provider));
        }
        Ok(Connection { record })
    }

    /// Returns `403 missing_scope` unless the grant has one of `accepted`.
    pub fn require_any_scope(&self, kind: TokenKind, accepted: &[&str]) -> Result<(), ApiError> {
        let granted = match kind {
            TokenKind::Main => &self.record.scopes,
            TokenKind::User => &self.record.user_scopes,
        };
        if granted.split(' ').any(|scope| accepted.contains(&scope)) {
            return Ok(());
        }
        Err(ApiError::MissingScope(format!(
            "the {} connection was granted none of the scopes this action needs: {}",
            self.record.provider,
            accepted.join(", ")
        )))
    }

    /// Calls `action` with a fresh token. A 401 from the provider although the
    /// token looked fresh leads to one forced refresh and one retry.
    pub async fn call<T, F, Fut>(
        &self,
        state: &AppState,
        kind: TokenKind,
        action: F,
    ) -> Result<T, ApiError>
    where
        F: Fn(SecretString) -> Fut,
        Fut: Future<Output = Result<T, ProviderError>>,
    {
        let (token, ciphertext) = self.fresh_token(state, kind, None).await?;
        match action(token).await {
            Err(ProviderError::Unauthorized) => {
                tracing::info!(connection_id = %self.record.id, "token rejected; refreshing once");
                let (token, _) = self.fresh_token(state, kind, Some(&ciphertext)).await?;
                match action(token).await {
                    Ok(value) => Ok(value),
                    // The grant itself just worked at the token endpoint, so a second
                    // 401 is the provider's fault, not a revocation.
                    Err(ProviderError::Unauthorized) => {
                        tracing::warn!(
                            connection_id = %self.record.id,
                            "provider rejected a freshly refreshed token"
                        );
                        Err(ApiError::ProviderUnavailable(format!(
                            "{} rejected a freshly refreshed token; retry later",
                            self.provider_name()
                        )))
                    }
                    Err(error) => Err(self.provider_error(state, error).await),
                }
            }
            Err(error) => Err(self.provider_error(state, error).await),
            Ok(value) => Ok(value),
        }
    }

    async fn provider_error(&self, state: &AppState, error: ProviderError) -> ApiError {
        match error {
            ProviderError::Unauthorized | ProviderError::Revoked(_) => {
                self.mark_revoked(state).await
            }
            ProviderError::MissingScope(message) => ApiError::MissingScope(message),
            ProviderError::Rejected { code, message } => ApiError::ProviderRejected {
                provider_code: code,
                message,
            },
            ProviderError::RateLimited { retry_after } => {
                ApiError::ProviderRateLimited { retry_after }
            }
            ProviderError::Unavailable(detail) => {
                tracing::warn!(connection_id = %self.record.id, detail = %detail, "provider failed");
                ApiError::ProviderUnavailable(format!(
                    "{} failed; retry later",
                    self.provider_name()
                ))
            }
            ProviderError::Timeout => ApiError::ProviderTimeout,
            ProviderError::InvalidInput { param, message } => ApiError::invalid(param, message),
        }
    }

    fn provider_name(&self) -> &'static str {
        match self.record.provider {
            Provider::Google => "Google",
            Provider::Slack => "Slack",
        }
    }

    /// Marks the connection `reauthorization_required` and returns the matching error.
    async fn mark_revoked(&self, state: &AppState) -> ApiError {
        tracing::warn!(connection_id = %self.record.id, "grant revoked; reauthorization required");
        let result = state
            .store
            .set_connection_status(
                &self.record.id,
                ConnectionStatus::ReauthorizationRequired,
                Utc::now(),
            )
            .await;
        if let Err(error) = result {
            return error.into();
        }
        ApiError::ReauthorizationRequired(self.record.provider)
    }

    /// Returns a usable token and its ciphertext, refreshing it first when it
    /// expires within [`REFRESH_MARGIN`] or when `rejected` is the ciphertext the
    /// provider just refused.
    async fn fresh_token(
        &self,
        state: &AppState,
        kind: TokenKind,
        rejected: Option<&str>,
    ) -> Result<(SecretString, String), ApiError> {
        let mut record = self.record.clone();
        if needs_refresh(&record.tokens, kind, rejected) {
            let key = format!("{}:{kind:?}", record.id);
            let refresh = refresh_task(
                state.clone(),
                record.id.clone(),
                kind,
                rejected.map(str::to_owned),
            );
            match state.refresher.run(&key, || refresh).await {
                Ok(()) => {}
                Err(RefreshFailure::Revoked) => {
                    return Err(ApiError::ReauthorizationRequired(record.provider));
                }
                Err(RefreshFailure::RateLimited { retry_after }) => {
                    return Err(ApiError::ProviderRateLimited { retry_after });
                }
                Err(RefreshFailure::TimedOut) => return Err(ApiError::ProviderTimeout),
                Err(RefreshFailure::Unavailable(detail)) => {
                    tracing::warn!(connection_id = %record.id, detail = %detail, "refresh failed");
                    return Err(ApiError::ProviderUnavailable(format!(
                        "{} token refresh failed; retry later",
                        self.provider_name()
                    )));
                }
                Err(RefreshFailure::Internal(detail)) => {
                    return Err(ApiError::internal(anyhow::anyhow!(detail)));
                }
            }
            record = state
                .store
                .get_connection_by_id(&record.id)
                .await?
                .ok_or(ApiError::ReauthorizationRequired(record.provider))?;
            if record.status == ConnectionStatus::ReauthorizationRequired {
                return Err(ApiError::ReauthorizationRequired(record.provider));
            }
        }
        let ciphertext = match kind {
            TokenKind::Main => record.tokens.access_token.clone(),
            TokenKind::User => record.tokens.user_access_token.clone().ok_or_else(|| {
                ApiError::MissingScope(
                    "the Slack connection has no user token; connect it again to grant search:read"
                        .to_owned(),
                )
            })?,
        };
        let token = state
            .cipher
            .decrypt(&ciphertext, &token_context(&record.id, kind, false))
            .map_err(ApiError::internal)?;
        Ok((token, ciphertext))
    }
}

/// Builds the associated data that binds a token ciphertext to its connection and field.
pub fn token_context(connection_id: &str, kind: TokenKind, refresh: bool) -> String {
    let field = match (kind, refresh) {
        (TokenKind::Main, false) => "access_token",
        (TokenKind::Main, true) => "refresh_token",
        (TokenKind::User, false) => "user_access_token",
        (TokenKind::User, true) => "user_refresh_token",
    };
    format!("connection:{connection_id}:{field}")
}

fn needs_refresh(tokens: &StoredTokens, kind: TokenKind, rejected: Option<&str>) -> bool {
    if rejected.is_some() {
        return true;
    }
    let expires_at = match kind {
        TokenKind::Main => tokens.expires_at,
        TokenKind::User => tokens.user_expires_at,
    };
    expires_at.is_some_and(|at| at - Utc::now() < REFRESH_MARGIN)
}

/// Backoff before each retry of a transient refresh failure.
const REFRESH_BACKOFF: [Duration; 3] = [
    Duration::from_millis(250),
    Duration::from_secs(1),
    Duration::from_secs(3),
];

/// How long a refresh waits for the lease that another instance holds.
const LEASE_WAIT: Duration = Duration::from_secs(12);

/// The refresh itself, run once per flight: takes the connection's refresh lease
/// (a row lock on PostgreSQL, so instances refresh one at a time), skips the call
/// when another flight or instance already refreshed, and stores the new tokens
/// before releasing the lease, so that no one can use a rotated refresh token.
async fn refresh_task(
    state: AppState,
    connection_id: String,
    kind: TokenKind,
    rejected: Option<String>,
) -> Result<(), RefreshFailure> {
    let internal = |e: &dyn std::fmt::Display| RefreshFailure::Internal(e.to_string());
    let lease = match state.store.lease_refresh(&connection_id, LEASE_WAIT).await {
        Ok(Some(lease)) => lease,
        Ok(None) => return Err(RefreshFailure::Revoked),
        Err(StoreError::LockTimeout) => return Err(RefreshFailure::TimedOut),
        Err(StoreError::Unavailable(error)) => {
            return Err(RefreshFailure::Unavailable(format!(
                "database unavailable: {error}"
            )));
        }
        Err(error) => return Err(internal(&error)),
    };
    let record = lease.record().clone();
    if record.status == ConnectionStatus::ReauthorizationRequired {
        return Err(RefreshFailure::Revoked);
    }
    let current = match kind {
        TokenKind::Main => Some(&record.tokens.access_token),
        TokenKind::User => record.tokens.user_access_token.as_ref(),
    };
    let already_refreshed = match &rejected {
        Some(rejected) => current != Some(rejected),
        None => !needs_refresh(&record.tokens, kind, None),
    };
    if already_refreshed {
        return Ok(());
    }
    let refresh_ciphertext = match kind {
        TokenKind::Main => record.tokens.refresh_token.as_ref(),
        TokenKind::User => record.tokens.user_refresh_token.as_ref(),
    };
    let Some(refresh_ciphertext) = refresh_ciphertext else {
        // Without a refresh token nothing can renew the grant.
        let revoked = Some(ConnectionStatus::ReauthorizationRequired);
        lease
            .finish(None, revoked)
            .await
            .map_err(|e| internal(&e))?;
        return Err(RefreshFailure::Revoked);
    };
    let refresh_token = state
        .cipher
        .decrypt(
            refresh_ciphertext,
            &token_context(&connection_id, kind, true),
        )
        .map_err(|e| internal(&e))?;
    let settings = state.config.provider(record.provider);
    let client = settings.client.as_ref().ok_or_else(|| {
        RefreshFailure::Unavailable(format!(
            "the {} OAuth client is not configured",
            record.provider
        ))
    })?;

    let mut attempt = 0;
    let fresh = loop {
        tracing::info!(connection_id = %connection_id, attempt, "refreshing access token");
        let outcome = oauth::refresh_token(
            &state.http,
            record.provider,
            settings,
            client,
            &refresh_token,
        )
        .await;
        match outcome {
            Ok(tokens) => break tokens,
            Err(OAuthError::InvalidGrant { code, description }) => {
                let description = description.unwrap_or_default();
                tracing::warn!(
                    connection_id = %connection_id,
                    code = %code,
                    description = %description,
                    "refresh token rejected"
                );
                let revoked = Some(ConnectionStatus::ReauthorizationRequired);
                lease
                    .finish(None, revoked)
                    .await
                    .map_err(|e| internal(&e))?;
                return Err(RefreshFailure::Revoked);
            }
            Err(OAuthError::RateLimited { retry_after }) => {
                return Err(RefreshFailure::RateLimited { retry_after });
            }
            Err(error) if error.is_transient() && attempt < REFRESH_BACKOFF.len() => {
                tracing::warn!(connection_id = %connection_id, error = %error, "refresh failed; retrying");
                tokio::time::sleep(REFRESH_BACKOFF[attempt]).await;
                attempt += 1;
            }
            Err(error) => return Err(RefreshFailure::Unavailable(error.to_string())),
        }
    };

    let tokens = sealed_tokens(&state, &record, kind, &fresh);
    lease
        .finish(Some(tokens), None)
        .await
        .map_err(|e| internal(&e))?;
    tracing::info!(connection_id = %connection_id, "access token refreshed");
    Ok(())
}

/// Returns the connection's tokens with the refreshed ones sealed in. The old
/// refresh token stays when the provider sent no new one.
fn sealed_tokens(
    state: &AppState,
    record: &ConnectionRecord,
    kind: TokenKind,
    fresh: &oauth::TokenSet,
) -> StoredTokens {
    let seal = |token: &SecretString, refresh: bool| {
        state.cipher.encrypt(
            token.expose_secret(),
            &token_context(&record.id, kind, refresh),
        )
    };
    let access = seal(&fresh.access_token, false);
    let refresh = fresh.refresh_token.as_ref().map(|token| seal(token, true));
    let mut tokens = record.tokens.clone();
    match kind {
        TokenKind::Main => {
            tokens.access_token = access;
            tokens.expires_at = fresh.expires_at;
            if refresh.is_some() {
                tokens.refresh_token = refresh;
            }
        }
        TokenKind::User => {
            tokens.user_access_token = Some(access);
            tokens.user_expires_at = fresh.expires_at;
            if refresh.is_some() {
                tokens.user_refresh_token = refresh;
            }
        }
    }
    tokens
}
