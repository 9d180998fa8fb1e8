//! `/v1/connections`: list, authorize, OAuth callback, delete.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::Utc;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::error::ApiError;
use super::extract::{HeaderUserId, ProviderPath, Tenant};
use crate::Provider;
use crate::crypto::{pkce_challenge, random_urlsafe, sha256_hex};
use crate::execute::{TokenKind, token_context};
use crate::oauth::{self, Grant, OAuthError, STATE_TTL};
use crate::store::{ConnectionRecord, ConnectionStatus, OAuthStateRecord, StoredTokens, new_id};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(list))
        .route("/{provider}", axum::routing::delete(delete))
        .route("/{provider}/authorize", get(authorize))
        .route("/{provider}/callback", get(callback))
}

/// A connection as listed: no token, secret or hash.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ConnectionView {
    provider: Provider,
    user_id: Option<String>,
    account_name: Option<String>,
    account_avatar: Option<String>,
    connected_at: String,
    scopes: String,
    status: ConnectionStatus,
}

impl From<ConnectionRecord> for ConnectionView {
    fn from(record: ConnectionRecord) -> Self {
        let scopes = [record.scopes.as_str(), record.user_scopes.as_str()]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        ConnectionView {
            provider: record.provider,
            user_id: record.user_id,
            account_name: record.account_name,
            account_avatar: record.account_avatar,
            connected_at: record
                .connected_at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            scopes,
            status: record.status,
        }
    }
}

async fn list(
    State(state): State<AppState>,
    tenant: Tenant,
    HeaderUserId(user_id): HeaderUserId,
) -> Result<Json<Vec<ConnectionView>>, ApiError> {
    let records = state
        .store
        .list_connections(&tenant.tenant_id, user_id.as_deref())
        .await?;
    Ok(Json(
        records.into_iter().map(ConnectionView::from).collect(),
    ))
}

#[derive(Debug, Deserialize)]
struct AuthorizeQuery {
    redirect_after: Option<String>,
}

#[derive(Debug, Serialize)]
struct AuthorizeOutput {
    url: String,
}

async fn authorize(
    State(state): State<AppState>,
    tenant: Tenant,
    ProviderPath(provider): ProviderPath,
    HeaderUserId(user_id): HeaderUserId,
    query: Result<Query<AuthorizeQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<AuthorizeOutput>, ApiError> {
    let Query(query) = query.map_err(|_| {
        ApiError::invalid("redirect_after", "the query string could not be decoded")
    })?;
    let settings = state.config.provider(provider);
    let client = settings
        .client
        .as_ref()
        .ok_or(ApiError::ProviderNotConfigured(provider))?;
    let redirect_after = match query.redirect_after {
        Some(target) => {
            let allowed = state.store.redirect_origins(&tenant.tenant_id).await?;
            Some(check_redirect_after(&target, &allowed)?)
        }
        None => None,
    };

    let state_value = random_urlsafe(32);
    let verifier = (provider == Provider::Google).then(|| SecretString::from(random_urlsafe(32)));
    let now = Utc::now();
    let state_hash = sha256_hex(&state_value);
    let record = OAuthStateRecord {
        state_hash: state_hash.clone(),
        tenant_id: tenant.tenant_id.clone(),
        provider,
        user_id,
        redirect_after,
        pkce_verifier: verifier.as_ref().map(|v| {
            state
                .cipher
                .encrypt(v.expose_secret(), &verifier_context(&state_hash))
        }),
        created_at: now,
        expires_at: now + STATE_TTL,
    };
    state.store.insert_oauth_state(&record).await?;
    if let Err(error) = state.store.delete_expired_oauth_states(now).await {
        tracing::warn!(error = %error, "could not delete expired authorizations");
    }

    let challenge = verifier.as_ref().map(pkce_challenge);
    let redirect_uri = oauth::redirect_uri(&state.config.public_url, provider);
    let url = oauth::authorize_url(
        provider,
        settings,
        client,
        &redirect_uri,
        &state_value,
        challenge.as_deref(),
    )
    .map_err(ApiError::internal)?;
    Ok(Json(AuthorizeOutput { url }))
}

fn verifier_context(state_hash: &str) -> String {
    format!("oauth_state:{state_hash}:pkce_verifier")
}

/// Checks `redirect_after`: an absolute http(s) URL without user info whose exact
/// origin (scheme, host, port) is one of the tenant's allowed origins.
fn check_redirect_after(target: &str, allowed: &[String]) -> Result<String, ApiError> {
    let invalid = |why: &str| ApiError::InvalidRedirect(format!("redirect_after {why}"));
    let url = url::Url::parse(target).map_err(|_| invalid("must be an absolute URL"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("must use http or https"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("must not contain user information"));
    }
    let origin = url.origin().ascii_serialization();
    let permitted = allowed.iter().any(|candidate| {
        url::Url::parse(candidate).is_ok_and(|c| c.origin().ascii_serialization() == origin)
    });
    if !permitted {
        return Err(invalid(&format!(
            "has origin {origin}, which is not an allowed redirect origin of this tenant"
        )));
    }
    Ok(url.into())
}

#[derive(Debug, Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

async fn callback(
    State(state): State<AppState>,
    ProviderPath(provider): ProviderPath,
    headers: HeaderMap,
    query: Result<Query<CallbackQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let wants_json = accepts_json(&headers);
    let query = match query {
        Ok(Query(query)) => query,
        Err(_) => {
            let error = ApiError::invalid("state", "the callback query could not be decoded");
            return failure_page(error, wants_json);
        }
    };
    match complete(&state, provider, query).await {
        Ok(Completion::Redirect(url)) => found(&url),
        Ok(Completion::Page { title, message }) => success_page(&title, &message),
        Err(error) => failure_page(error, wants_json),
    }
}

/// `302 Found` to `url`: the callback's redirect status that the API contract fixes.
/// axum's `Redirect::to` would respond `303 See Other`.
fn found(url: &str) -> Response {
    match HeaderValue::from_str(url) {
        Ok(location) => (StatusCode::FOUND, [(header::LOCATION, location)]).into_response(),
        Err(error) => ApiError::internal(error).into_response(),
    }
}

enum Completion {
    Redirect(String),
    Page { title: String, message: String },
}

/// Consumes the state, exchanges the code and stores the connection.
async fn complete(
    state: &AppState,
    provider: Provider,
    query: CallbackQuery,
) -> Result<Completion, ApiError> {
    let restart = "start the connection again from the application";
    let Some(state_value) = query.state.filter(|s| !s.is_empty() && s.len() <= 512) else {
        return Err(ApiError::InvalidState(format!(
            "the callback has no state; {restart}"
        )));
    };
    let code = query.code.filter(|c| !c.is_empty());
    if code.is_none() && query.error.is_none() {
        // Checked before the state is taken, so a malformed callback does not use it up.
        return Err(ApiError::invalid(
            "code",
            "the callback has neither code nor error",
        ));
    }
    let state_hash = sha256_hex(&state_value);
    let pending = state.store.take_oauth_state(&state_hash, provider).await?;
    let Some(pending) = pending.filter(|p| p.expires_at > Utc::now()) else {
        return Err(ApiError::InvalidState(format!(
            "this authorization is unknown, expired or already used; {restart}"
        )));
    };

    if let Some(error) = query.error {
        let error: String = error
            .chars()
            .filter(|c| !c.is_control())
            .take(100)
            .collect();
        tracing::info!(provider = %provider, error = %error, "the user did not grant access");
        return Ok(finish(&pending, provider, Err(&error)));
    }
    let Some(code) = code else {
        return Err(ApiError::invalid(
            "code",
            "the callback has neither code nor error",
        ));
    };
    let settings = state.config.provider(provider);
    let client = settings
        .client
        .as_ref()
        .ok_or(ApiError::ProviderNotConfigured(provider))?;
    let verifier = match &pending.pkce_verifier {
        Some(sealed) => Some(
            state
                .cipher
                .decrypt(sealed, &verifier_context(&pending.state_hash))
                .map_err(ApiError::internal)?,
        ),
        None => None,
    };
    let redirect_uri = oauth::redirect_uri(&state.config.public_url, provider);
    let exchanged = oauth::exchange_code(
        &state.http,
        provider,
        settings,
        client,
        &code,
        &redirect_uri,
        verifier.as_ref(),
    )
    .await;
    let grant = match exchanged {
        Ok(grant) => grant,
        Err(error) => {
            tracing::warn!(provider = %provider, error = %error, "code exchange failed");
            let code = exchange_error_code(&error);
            if pending.redirect_after.is_some() {
                return Ok(finish(&pending, provider, Err(&code)));
            }
            return Err(exchange_api_error(error));
        }
    };
    store_connection(state, &pending, provider, grant).await?;
    Ok(finish(&pending, provider, Ok(())))
}

fn exchange_error_code(error: &OAuthError) -> String {
    match error {
        OAuthError::InvalidGrant { code, .. } => code.clone(),
        OAuthError::Rejected { code, .. } => code.clone(),
        OAuthError::RateLimited { .. } => "rate_limited".to_owned(),
        OAuthError::Unavailable(_) | OAuthError::Timeout => "provider_unavailable".to_owned(),
    }
}

fn exchange_api_error(error: OAuthError) -> ApiError {
    match error {
        OAuthError::InvalidGrant { code, .. } => ApiError::ProviderRejected {
            provider_code: code,
            message: "the provider rejected the authorization code; start the connection again"
                .to_owned(),
        },
        OAuthError::Rejected { code, .. } => ApiError::ProviderRejected {
            message: format!("the provider rejected the code exchange: {code}"),
            provider_code: code,
        },
        OAuthError::RateLimited { retry_after } => ApiError::ProviderRateLimited { retry_after },
        OAuthError::Unavailable(_) => {
            ApiError::ProviderUnavailable("the provider's token endpoint failed".to_owned())
        }
        OAuthError::Timeout => ApiError::ProviderTimeout,
    }
}

/// Chooses where the browser goes after the callback: `redirect_after` with
/// `connected=` or `error=` added, or the built-in page.
fn finish(pending: &OAuthStateRecord, provider: Provider, outcome: Result<(), &str>) -> Completion {
    if let Some(target) = &pending.redirect_after
        && let Ok(mut url) = url::Url::parse(target)
    {
        // The outcome parameters are the gateway's: drop any the target already had.
        let other_params: Vec<(String, String)> = url
            .query_pairs()
            .filter(|(name, _)| name != "connected" && name != "error")
            .map(|(name, value)| (name.into_owned(), value.into_owned()))
            .collect();
        url.set_query(None);
        if !other_params.is_empty() {
            url.query_pairs_mut().extend_pairs(other_params);
        }
        match outcome {
            Ok(()) => url
                .query_pairs_mut()
                .append_pair("connected", provider.as_str()),
            Err(error) => url.query_pairs_mut().append_pair("error", error),
        };
        return Completion::Redirect(url.into());
    }
    match outcome {
        Ok(()) => Completion::Page {
            title: "Account connected".to_owned(),
            message: format!("Your {provider} account is connected. You can close this tab."),
        },
        Err(error) => Completion::Page {
            title: "Account not connected".to_owned(),
            message: format!(
                "The {provider} account was not connected ({error}). You can close this tab."
            ),
        },
    }
}

/// Encrypts the granted tokens and stores or replaces the connection.
async fn store_connection(
    state: &AppState,
    pending: &OAuthStateRecord,
    provider: Provider,
    grant: Grant,
) -> Result<(), ApiError> {
    let id = new_id("conn");
    let seal = |token: &SecretString, kind: TokenKind, refresh: bool| {
        state
            .cipher
            .encrypt(token.expose_secret(), &token_context(&id, kind, refresh))
    };
    let user = grant.user_tokens.as_ref();
    let tokens = StoredTokens {
        access_token: seal(&grant.tokens.access_token, TokenKind::Main, false),
        refresh_token: grant
            .tokens
            .refresh_token
            .as_ref()
            .map(|t| seal(t, TokenKind::Main, true)),
        expires_at: grant.tokens.expires_at,
        user_access_token: user.map(|u| seal(&u.access_token, TokenKind::User, false)),
        user_refresh_token: user
            .and_then(|u| u.refresh_token.as_ref())
            .map(|t| seal(t, TokenKind::User, true)),
        user_expires_at: user.and_then(|u| u.expires_at),
    };
    let now = Utc::now();
    let record = ConnectionRecord {
        id,
        tenant_id: pending.tenant_id.clone(),
        provider,
        user_id: pending.user_id.clone(),
        account_name: grant.account_name,
        account_avatar: grant.account_avatar,
        scopes: grant.scopes,
        user_scopes: grant.user_scopes,
        status: ConnectionStatus::Active,
        tokens,
        connected_at: now,
        updated_at: now,
    };
    state.store.upsert_connection(&record).await?;
    tracing::info!(
        tenant_id = %record.tenant_id,
        provider = %provider,
        connection_id = %record.id,
        "connection stored"
    );
    Ok(())
}

fn accepts_json(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|value| value.to_ascii_lowercase().contains("application/json"))
}

fn success_page(title: &str, message: &str) -> Response {
    (StatusCode::OK, Html(page(title, message))).into_response()
}

fn failure_page(error: ApiError, wants_json: bool) -> Response {
    if wants_json {
        return error.into_response();
    }
    let (status, _, _) = error.parts();
    let message = error.to_string();
    (status, Html(page("Connection failed", &message))).into_response()
}

fn page(title: &str, message: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>\
         </head><body><h1>{title}</h1><p>{message}</p></body></html>",
        title = escape_html(title),
        message = escape_html(message)
    )
}

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

async fn delete(
    State(state): State<AppState>,
    tenant: Tenant,
    ProviderPath(provider): ProviderPath,
    HeaderUserId(user_id): HeaderUserId,
) -> Result<StatusCode, ApiError> {
    let removed = state
        .store
        .delete_connection(&tenant.tenant_id, provider, user_id.as_deref())
        .await?
        .ok_or(ApiError::ConnectionNotFound {
            provider,
            owner: if user_id.is_some() {
                "user"
            } else {
                "tenant (org-wide)"
            },
            on_delete: true,
        })?;
    revoke_unless_shared(&state, removed).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Maximum wait for the provider's revocation endpoint on DELETE.
const REVOKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Revokes the removed connection's grant unless another connection (of any tenant
/// or user) is to the same provider account: Google revokes the whole grant of an
/// account for this OAuth client, so revoking would break the other connection too.
/// The account is matched by name (Google's email address, Slack's team name);
/// a false match only leaves unrevoked a grant that the gateway no longer stores.
async fn revoke_unless_shared(state: &AppState, removed: ConnectionRecord) {
    if let Some(account) = &removed.account_name {
        match state
            .store
            .count_account_connections(removed.provider, account)
            .await
        {
            Ok(0) => {}
            Ok(_) => {
                tracing::info!(
                    connection_id = %removed.id,
                    "grant not revoked: another connection uses the same account"
                );
                return;
            }
            Err(error) => {
                tracing::warn!(connection_id = %removed.id, error = %error, "grant not revoked");
                return;
            }
        }
    }
    let connection_id = removed.id.clone();
    let revocation = revoke_best_effort(state, removed);
    if tokio::time::timeout(REVOKE_TIMEOUT, revocation)
        .await
        .is_err()
    {
        tracing::warn!(connection_id = %connection_id, "revocation at the provider timed out");
    }
}

/// Revokes the grant at the provider; a failure is logged and changes nothing.
/// Google revokes the whole grant through its refresh token; Slack revokes each
/// token by itself, so both the bot and the user token are revoked.
async fn revoke_best_effort(state: &AppState, record: ConnectionRecord) {
    let tokens = &record.tokens;
    // Slack's bot token is the workspace's installation of the app, shared by every
    // connection to that workspace, so only the user's own token is revoked.
    let targets: Vec<(&str, TokenKind, bool)> = match (record.provider, &tokens.refresh_token) {
        (Provider::Google, Some(refresh)) => vec![(refresh, TokenKind::Main, true)],
        (Provider::Google, None) => vec![(tokens.access_token.as_str(), TokenKind::Main, false)],
        (Provider::Slack, _) => tokens
            .user_access_token
            .as_deref()
            .map(|t| (t, TokenKind::User, false))
            .into_iter()
            .collect(),
    };
    let settings = state.config.provider(record.provider);
    for (sealed, kind, refresh) in targets {
        let context = token_context(&record.id, kind, refresh);
        let token = match state.cipher.decrypt(sealed, &context) {
            Ok(token) => token,
            Err(error) => {
                tracing::warn!(connection_id = %record.id, error = %error, "cannot revoke: token unreadable");
                continue;
            }
        };
        if let Err(error) = oauth::revoke(&state.http, record.provider, settings, &token).await {
            tracing::warn!(
                connection_id = %record.id,
                provider = %record.provider,
                error = %error,
                "revocation at the provider failed"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed() -> Vec<String> {
        vec![
            "https://app.example.com".to_owned(),
            "http://localhost:3000".to_owned(),
        ]
    }

    #[test]
    fn redirect_after_matches_exact_origin() {
        assert!(check_redirect_after("https://app.example.com/done?x=1", &allowed()).is_ok());
        assert!(check_redirect_after("http://localhost:3000/cb", &allowed()).is_ok());
        assert!(check_redirect_after("https://APP.example.com:443/x", &allowed()).is_ok());
    }

    #[test]
    fn redirect_after_rejects_lookalikes() {
        for bad in [
            "https://app.example.com.evil.test/",
            "https://app.example.com@evil.test/",
            "https://user@app.example.com/",
            "http://app.example.com/",
            "https://app.example.com:8443/",
            "http://localhost:3001/",
            "javascript:alert(1)",
            "//app.example.com/",
            "/relative",
        ] {
            assert!(
                check_redirect_after(bad, &allowed()).is_err(),
                "{bad} was accepted"
            );
        }
    }

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            escape_html("<b>\"x\" & 'y'</b>"),
            "&lt;b&gt;&quot;x&quot; &amp; &#39;y&#39;&lt;/b&gt;"
        );
    }
}
