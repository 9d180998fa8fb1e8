//! OAuth 2.0 with Google and Slack: consent URLs, code exchange, refresh and
//! revocation. The HTTP handlers and the token refresher build on these calls.

pub mod refresh;

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::Provider;
use crate::config::{OAuthClient, ProviderConfig};

/// How long a pending authorization stays valid.
pub const STATE_TTL: chrono::Duration = chrono::Duration::minutes(10);

/// Google scopes: Gmail read/modify and send, plus the account identity.
pub const GOOGLE_SCOPES: &str = "https://www.googleapis.com/auth/gmail.modify \
https://www.googleapis.com/auth/gmail.send openid email profile";
/// Slack bot token scopes.
pub const SLACK_BOT_SCOPES: &str = "chat:write,channels:read,channels:join";
/// Slack user token scopes (search needs a user token).
pub const SLACK_USER_SCOPES: &str = "search:read";

/// Time allowed for one token endpoint call.
const TOKEN_CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Builds the `redirect_uri` of a provider from `PATCHBAY_PUBLIC_URL` only, never
/// from request headers, and byte-identical in the authorize and token steps.
pub fn redirect_uri(public_url: &str, provider: Provider) -> String {
    format!("{public_url}/v1/connections/{provider}/callback")
}

/// Builds the consent URL that the user's browser is sent to.
pub fn authorize_url(
    provider: Provider,
    settings: &ProviderConfig,
    client: &OAuthClient,
    redirect_uri: &str,
    state: &str,
    pkce_challenge: Option<&str>,
) -> anyhow::Result<String> {
    let mut url = url::Url::parse(&settings.authorize_url)?;
    {
        let mut query = url.query_pairs_mut();
        query.append_pair("client_id", &client.client_id);
        query.append_pair("redirect_uri", redirect_uri);
        query.append_pair("state", state);
        match provider {
            Provider::Google => {
                query.append_pair("response_type", "code");
                query.append_pair("scope", GOOGLE_SCOPES);
                query.append_pair("access_type", "offline");
                query.append_pair("prompt", "consent");
                query.append_pair("include_granted_scopes", "true");
                if let Some(challenge) = pkce_challenge {
                    query.append_pair("code_challenge", challenge);
                    query.append_pair("code_challenge_method", "S256");
                }
            }
            Provider::Slack => {
                query.append_pair("scope", SLACK_BOT_SCOPES);
                query.append_pair("user_scope", SLACK_USER_SCOPES);
            }
        }
    }
    Ok(url.into())
}

/// One access token with its optional refresh token and absolute expiry.
#[derive(Debug, Clone)]
pub struct TokenSet {
    pub access_token: SecretString,
    pub refresh_token: Option<SecretString>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// The tokens, scopes and account identity of a successful code exchange.
#[derive(Debug, Clone)]
pub struct Grant {
    pub tokens: TokenSet,
    /// Slack's `authed_user` token.
    pub user_tokens: Option<TokenSet>,
    /// Granted scopes of the main token, space separated.
    pub scopes: String,
    /// Granted scopes of Slack's user token, space separated.
    pub user_scopes: String,
    pub account_name: Option<String>,
    pub account_avatar: Option<String>,
}

/// Failure of a call to a provider's OAuth endpoints.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OAuthError {
    /// The grant or code is invalid, expired or revoked (`invalid_grant`,
    /// `invalid_refresh_token`, `token_revoked`, …): the user must consent again.
    #[error("the provider rejected the grant: {code}")]
    InvalidGrant {
        code: String,
        description: Option<String>,
    },
    /// The provider refused the request for another reason, such as a bad client.
    #[error("the provider rejected the request: {code}")]
    Rejected {
        code: String,
        description: Option<String>,
    },
    #[error("the provider rate-limited the token request")]
    RateLimited { retry_after: u64 },
    #[error("the provider's token endpoint failed: {0}")]
    Unavailable(String),
    #[error("the provider's token endpoint timed out")]
    Timeout,
}

impl OAuthError {
    /// Returns whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, OAuthError::Unavailable(_) | OAuthError::Timeout)
    }
}

fn transport_error(error: reqwest::Error) -> OAuthError {
    if error.is_timeout() {
        OAuthError::Timeout
    } else {
        OAuthError::Unavailable(format!("request failed: {}", without_url(&error)))
    }
}

/// Returns the error text without the URL, which may carry a token in its query.
pub(crate) fn without_url(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    if let Some(url) = error.url() {
        text = text.replace(url.as_str(), "<url>");
    }
    text
}

/// Checks the token fields of a provider response and turns `expires_in` (seconds)
/// into an absolute expiry. A response without a usable access token, with an empty
/// refresh token or with a non-positive lifetime is a provider failure, so nothing
/// built from it is ever stored.
fn token_set(
    access_token: Option<String>,
    refresh_token: Option<String>,
    expires_in: Option<i64>,
) -> Result<TokenSet, OAuthError> {
    let malformed = |what: &str| OAuthError::Unavailable(format!("the token response {what}"));
    let usable = |token: &str| {
        !token.is_empty() && !token.chars().any(|c| c.is_whitespace() || c.is_control())
    };
    let access_token = access_token
        .filter(|t| usable(t))
        .ok_or_else(|| malformed("has no usable access_token"))?;
    if refresh_token.as_deref().is_some_and(|t| !usable(t)) {
        return Err(malformed("has an unusable refresh_token"));
    }
    let expires_at = match expires_in {
        None => None,
        Some(seconds) if seconds > 0 => Some(Utc::now() + chrono::Duration::seconds(seconds)),
        Some(_) => return Err(malformed("has a non-positive expires_in")),
    };
    Ok(TokenSet {
        access_token: SecretString::from(access_token),
        refresh_token: refresh_token.map(SecretString::from),
        expires_at,
    })
}

/// Returns the granted scopes. RFC 6749 section 5.1 lets the response omit `scope`
/// when it equals the requested scope.
fn granted_scopes(answer_scope: Option<&str>, requested: &str) -> String {
    normalize_scopes(answer_scope.unwrap_or(requested))
}

#[derive(Deserialize)]
struct GoogleTokenAnswer {
    access_token: String,
    expires_in: Option<i64>,
    refresh_token: Option<String>,
    scope: Option<String>,
    id_token: Option<String>,
}

#[derive(Deserialize)]
struct GoogleErrorAnswer {
    error: String,
    error_description: Option<String>,
}

#[derive(Deserialize)]
struct SlackTokenAnswer {
    ok: bool,
    error: Option<String>,
    access_token: Option<String>,
    refresh_token: Option<String>,
    expires_in: Option<i64>,
    scope: Option<String>,
    team: Option<SlackTeam>,
    authed_user: Option<SlackAuthedUser>,
}

#[derive(Deserialize)]
struct SlackTeam {
    name: Option<String>,
}

#[derive(Deserialize)]
struct SlackAuthedUser {
    access_token: Option<String>,
    refresh_token: Option<String>,
    expires_in: Option<i64>,
    scope: Option<String>,
}

/// Posts a form to a token endpoint and returns the status and JSON body.
async fn post_form(
    http: &reqwest::Client,
    url: &str,
    form: &[(&str, &str)],
) -> Result<(reqwest::StatusCode, serde_json::Value, Option<u64>), OAuthError> {
    let response = http
        .post(url)
        .form(form)
        .timeout(TOKEN_CALL_TIMEOUT)
        .send()
        .await
        .map_err(transport_error)?;
    let status = response.status();
    let retry_after = crate::providers::retry_after_seconds(response.headers());
    let body = response.bytes().await.map_err(transport_error)?;
    let json = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    Ok((status, json, retry_after))
}

/// Maps a Google token endpoint failure.
fn google_failure(
    status: reqwest::StatusCode,
    body: serde_json::Value,
    retry_after: Option<u64>,
) -> OAuthError {
    if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
        return OAuthError::RateLimited {
            retry_after: retry_after.unwrap_or(5),
        };
    }
    if status.is_server_error() {
        return OAuthError::Unavailable(format!("the token endpoint returned {status}"));
    }
    match serde_json::from_value::<GoogleErrorAnswer>(body) {
        Ok(answer) if answer.error == "invalid_grant" => OAuthError::InvalidGrant {
            code: answer.error,
            description: answer.error_description,
        },
        Ok(answer) => OAuthError::Rejected {
            code: answer.error,
            description: answer.error_description,
        },
        Err(_) => OAuthError::Unavailable(format!("the token endpoint returned {status}")),
    }
}

/// Exchanges an authorization code for tokens and reads the account identity.
pub async fn exchange_code(
    http: &reqwest::Client,
    provider: Provider,
    settings: &ProviderConfig,
    client: &OAuthClient,
    code: &str,
    redirect_uri: &str,
    pkce_verifier: Option<&SecretString>,
) -> Result<Grant, OAuthError> {
    let secret = client.client_secret.expose_secret();
    match provider {
        Provider::Google => {
            let mut form = vec![
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", redirect_uri),
                ("client_id", client.client_id.as_str()),
                ("client_secret", secret),
            ];
            if let Some(verifier) = pkce_verifier {
                form.push(("code_verifier", verifier.expose_secret()));
            }
            let (status, body, retry_after) = post_form(http, &settings.token_url, &form).await?;
            if !status.is_success() {
                return Err(google_failure(status, body, retry_after));
            }
            let answer: GoogleTokenAnswer = serde_json::from_value(body).map_err(|_| {
                OAuthError::Unavailable("the token response is not valid JSON".to_owned())
            })?;
            google_grant(http, settings, answer).await
        }
        Provider::Slack => {
            let form = [
                ("code", code),
                ("redirect_uri", redirect_uri),
                ("client_id", client.client_id.as_str()),
                ("client_secret", secret),
            ];
            let (status, body, retry_after) = post_form(http, &settings.token_url, &form).await?;
            let answer = slack_answer(status, body, retry_after)?;
            slack_grant(answer)
        }
    }
}

async fn google_grant(
    http: &reqwest::Client,
    settings: &ProviderConfig,
    answer: GoogleTokenAnswer,
) -> Result<Grant, OAuthError> {
    let tokens = token_set(
        Some(answer.access_token),
        answer.refresh_token,
        answer.expires_in,
    )?;
    let claims = answer.id_token.as_deref().and_then(id_token_claims);
    let claim = |name: &str| {
        claims
            .as_ref()
            .and_then(|c| c.get(name))
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };
    let mut account_name = claim("email");
    let account_avatar = claim("picture");
    if account_name.is_none() {
        account_name = gmail_profile_email(http, settings, &tokens.access_token).await;
    }
    Ok(Grant {
        tokens,
        user_tokens: None,
        scopes: granted_scopes(answer.scope.as_deref(), GOOGLE_SCOPES),
        user_scopes: String::new(),
        account_name,
        account_avatar,
    })
}

/// Decodes the payload claims of an ID token. The token came straight from Google's
/// token endpoint over TLS, so the gateway relies on TLS instead of checking the
/// token's signature.
fn id_token_claims(id_token: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
    let payload = id_token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Fetches the mailbox address from Gmail's profile, for when the ID token has none.
async fn gmail_profile_email(
    http: &reqwest::Client,
    settings: &ProviderConfig,
    token: &SecretString,
) -> Option<String> {
    let url = format!("{}/gmail/v1/users/me/profile", settings.api_url);
    let response = http
        .get(url)
        .bearer_auth(token.expose_secret())
        .send()
        .await
        .ok()?;
    let body: serde_json::Value = response.error_for_status().ok()?.json().await.ok()?;
    body.get("emailAddress")?.as_str().map(str::to_owned)
}

/// Checks Slack's `ok` flag and maps its error codes.
fn slack_answer(
    status: reqwest::StatusCode,
    body: serde_json::Value,
    retry_after: Option<u64>,
) -> Result<SlackTokenAnswer, OAuthError> {
    if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
        return Err(OAuthError::RateLimited {
            retry_after: retry_after.unwrap_or(30),
        });
    }
    if !status.is_success() {
        return Err(OAuthError::Unavailable(format!(
            "oauth.v2.access returned {status}"
        )));
    }
    let answer: SlackTokenAnswer = serde_json::from_value(body).map_err(|_| {
        OAuthError::Unavailable("the oauth.v2.access response is not valid JSON".to_owned())
    })?;
    if answer.ok {
        return Ok(answer);
    }
    let code = answer.error.unwrap_or_else(|| "unknown_error".to_owned());
    Err(match code.as_str() {
        "invalid_code"
        | "code_already_used"
        | "invalid_refresh_token"
        | "invalid_grant_type"
        | "token_revoked"
        | "token_expired"
        | "invalid_auth"
        | "account_inactive" => OAuthError::InvalidGrant {
            code,
            description: None,
        },
        "ratelimited" => OAuthError::RateLimited {
            retry_after: retry_after.unwrap_or(30),
        },
        "internal_error" | "service_unavailable" | "fatal_error" | "request_timeout" => {
            OAuthError::Unavailable(code)
        }
        _ => OAuthError::Rejected {
            code,
            description: None,
        },
    })
}

fn slack_grant(answer: SlackTokenAnswer) -> Result<Grant, OAuthError> {
    let (user_tokens, user_scopes) = match answer.authed_user {
        Some(user) if user.access_token.is_some() => {
            let tokens = token_set(user.access_token, user.refresh_token, user.expires_in)?;
            (
                Some(tokens),
                granted_scopes(user.scope.as_deref(), SLACK_USER_SCOPES),
            )
        }
        _ => (None, String::new()),
    };
    Ok(Grant {
        tokens: token_set(answer.access_token, answer.refresh_token, answer.expires_in)?,
        user_tokens,
        scopes: granted_scopes(answer.scope.as_deref(), SLACK_BOT_SCOPES),
        user_scopes,
        account_name: answer.team.and_then(|team| team.name),
        account_avatar: None,
    })
}

/// Scope lists as one space-separated string, whichever separator the provider used.
pub fn normalize_scopes(scopes: &str) -> String {
    scopes
        .split([' ', ','])
        .filter(|scope| !scope.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Uses a refresh token. Google may omit `refresh_token` in the response, and then
/// the caller keeps the old one. Slack with token rotation always returns a new one.
pub async fn refresh_token(
    http: &reqwest::Client,
    provider: Provider,
    settings: &ProviderConfig,
    client: &OAuthClient,
    refresh_token: &SecretString,
) -> Result<TokenSet, OAuthError> {
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token.expose_secret()),
        ("client_id", client.client_id.as_str()),
        ("client_secret", client.client_secret.expose_secret()),
    ];
    let (status, body, retry_after) = post_form(http, &settings.token_url, &form).await?;
    match provider {
        Provider::Google => {
            if !status.is_success() {
                return Err(google_failure(status, body, retry_after));
            }
            let answer: GoogleTokenAnswer = serde_json::from_value(body).map_err(|_| {
                OAuthError::Unavailable("the token response is not valid JSON".to_owned())
            })?;
            token_set(
                Some(answer.access_token),
                answer.refresh_token,
                answer.expires_in,
            )
        }
        Provider::Slack => {
            let answer = slack_answer(status, body, retry_after)?;
            token_set(answer.access_token, answer.refresh_token, answer.expires_in)
        }
    }
}

/// Revokes a grant at the provider.
pub async fn revoke(
    http: &reqwest::Client,
    provider: Provider,
    settings: &ProviderConfig,
    token: &SecretString,
) -> Result<(), OAuthError> {
    match provider {
        Provider::Google => {
            let form = [("token", token.expose_secret())];
            let (status, body, retry_after) = post_form(http, &settings.revoke_url, &form).await?;
            if status.is_success() {
                Ok(())
            } else {
                Err(google_failure(status, body, retry_after))
            }
        }
        Provider::Slack => {
            let response = http
                .post(&settings.revoke_url)
                .bearer_auth(token.expose_secret())
                .timeout(TOKEN_CALL_TIMEOUT)
                .send()
                .await
                .map_err(transport_error)?;
            let status = response.status();
            let retry_after = crate::providers::retry_after_seconds(response.headers());
            let body = response.json().await.unwrap_or(serde_json::Value::Null);
            slack_answer(status, body, retry_after).map(|_| ())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_token_answers_are_rejected() {
        let token = |t: &str| Some(t.to_owned());
        assert!(token_set(None, None, Some(3599)).is_err());
        assert!(token_set(token(""), None, Some(3599)).is_err());
        assert!(token_set(token("a b"), None, None).is_err());
        assert!(token_set(token("ya29.x"), token(""), None).is_err());
        assert!(token_set(token("ya29.x"), None, Some(-5)).is_err());
        assert!(token_set(token("ya29.x"), None, Some(0)).is_err());
        let good = token_set(token("ya29.x"), token("1//r"), Some(3599)).unwrap();
        let lifetime = good.expires_at.unwrap() - Utc::now();
        assert!(
            lifetime > chrono::Duration::seconds(3500),
            "expires_in is seconds"
        );
    }

    #[test]
    fn missing_scope_means_requested() {
        assert_eq!(granted_scopes(None, "a,b"), "a b");
        assert_eq!(granted_scopes(Some("a"), "a b"), "a");
    }

    #[test]
    fn scopes_are_space_separated() {
        assert_eq!(
            normalize_scopes("chat:write,channels:read"),
            "chat:write channels:read"
        );
        assert_eq!(normalize_scopes(" a  b "), "a b");
    }

    #[test]
    fn id_token_email_is_read() {
        let payload = URL_SAFE_NO_PAD.encode(br#"{"email":"ada@example.com"}"#);
        let claims = id_token_claims(&format!("e30.{payload}.sig")).unwrap();
        assert_eq!(claims["email"], "ada@example.com");
        assert!(id_token_claims("garbage").is_none());
    }

    #[test]
    fn redirect_uri_uses_public_url() {
        assert_eq!(
            redirect_uri("https://gw.example.com", Provider::Slack),
            "https://gw.example.com/v1/connections/slack/callback"
        );
    }
}
