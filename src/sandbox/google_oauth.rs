//! Fake Google OAuth 2.0: the consent page (which consents at once), the token endpoint for
//! the `authorization_code` and `refresh_token` grants, and token revocation.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::params;
use super::state::{
    GoogleAccessToken, GoogleCode, GoogleGrant, GoogleState, SharedState, random_token,
};

/// An authorization code works for this long, as Google's do.
const CODE_LIFETIME: Duration = Duration::from_secs(600);

const USERINFO_EMAIL: &str = "https://www.googleapis.com/auth/userinfo.email";
const USERINFO_PROFILE: &str = "https://www.googleapis.com/auth/userinfo.profile";

/// Scopes the fake consent screen accepts, besides `openid`, `email` and `profile`.
const KNOWN_SCOPES: &[&str] = &[
    "https://mail.google.com/",
    "https://www.googleapis.com/auth/gmail.modify",
    "https://www.googleapis.com/auth/gmail.readonly",
    "https://www.googleapis.com/auth/gmail.send",
    "https://www.googleapis.com/auth/gmail.compose",
    "https://www.googleapis.com/auth/gmail.insert",
    "https://www.googleapis.com/auth/gmail.labels",
    "https://www.googleapis.com/auth/gmail.metadata",
    "https://www.googleapis.com/auth/gmail.settings.basic",
    USERINFO_EMAIL,
    USERINFO_PROFILE,
];

/// Expands `email` and `profile` to the URLs that Google's token responses list, and rejects
/// unknown scopes.
fn normalize_scopes(requested: &str) -> Result<Vec<String>, String> {
    let mut scopes: Vec<String> = Vec::new();
    for scope in requested.split_whitespace() {
        let normalized = match scope {
            "email" => USERINFO_EMAIL.to_string(),
            "profile" => USERINFO_PROFILE.to_string(),
            "openid" => "openid".to_string(),
            other if KNOWN_SCOPES.contains(&other) => other.to_string(),
            other => return Err(other.to_string()),
        };
        if !scopes.contains(&normalized) {
            scopes.push(normalized);
        }
    }
    Ok(scopes)
}

/// `GET /google/o/oauth2/v2/auth`: validates the request and redirects back with a code.
///
/// Testing parameters: `login_hint` picks the account, `sandbox_deny=access_denied` returns
/// that error, `sandbox_scopes` grants only the listed scopes.
pub async fn authorize(State(state): State<SharedState>, RawQuery(query): RawQuery) -> Response {
    let query = params::map(query.unwrap_or_default().as_bytes());
    match authorize_inner(&state, &query) {
        Ok(location) => params::found(&location),
        Err(error) => error.into_response(),
    }
}

fn authorize_inner(
    state: &SharedState,
    query: &HashMap<String, String>,
) -> Result<String, ConsentError> {
    let param = |name: &str| {
        query
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    };
    let client_id = param("client_id")
        .ok_or_else(|| error_page("invalid_request", "Missing required parameter: client_id"))?;
    if client_id != state.config.google_client_id {
        return Err(error_page(
            "invalid_client",
            "The OAuth client was not found.",
        ));
    }
    let redirect_uri = param("redirect_uri").ok_or_else(|| {
        error_page(
            "invalid_request",
            "Missing required parameter: redirect_uri",
        )
    })?;
    let redirect = url::Url::parse(redirect_uri)
        .ok()
        .filter(|url| matches!(url.scheme(), "http" | "https"))
        .ok_or_else(|| {
            error_page(
                "redirect_uri_mismatch",
                "Invalid parameter value for redirect_uri",
            )
        })?;
    match param("response_type") {
        Some("code") => {}
        Some(_) => {
            return Err(error_page(
                "unsupported_response_type",
                "Invalid response_type",
            ));
        }
        None => {
            return Err(error_page(
                "invalid_request",
                "Required parameter is missing: response_type",
            ));
        }
    }
    let scope = param("scope")
        .ok_or_else(|| error_page("invalid_request", "Missing required parameter: scope"))?;
    let mut scopes = normalize_scopes(scope).map_err(|bad| {
        error_page(
            "invalid_scope",
            &format!("Some requested scopes were invalid: {bad}"),
        )
    })?;
    // NOTE: Google lets `state` out; the sandbox requires it because a client without it has no
    // CSRF protection.
    let state_param = param("state")
        .ok_or_else(|| error_page("invalid_request", "Missing required parameter: state"))?;
    let code_challenge = match (param("code_challenge"), param("code_challenge_method")) {
        (Some(challenge), Some("S256")) => Some(challenge.to_string()),
        (Some(_), _) => {
            return Err(error_page(
                "invalid_request",
                "Invalid code_challenge_method: S256 is required",
            ));
        }
        (None, Some(_)) => {
            return Err(error_page(
                "invalid_request",
                "Missing code_challenge for code_challenge_method",
            ));
        }
        (None, None) => None,
    };

    if let Some(error) = param("sandbox_deny") {
        return Ok(params::with_query(
            &redirect,
            &[("error", error), ("state", state_param)],
        ));
    }
    if let Some(granted) = param("sandbox_scopes") {
        scopes = normalize_scopes(granted)
            .map_err(|bad| error_page("invalid_scope", &format!("Unknown sandbox scope: {bad}")))?;
    }

    let email = param("login_hint")
        .unwrap_or(&state.config.google_account)
        .to_string();
    let mut inner = state.lock();
    let google = &mut inner.google;
    let email = google.account_mut(&email).email.clone();
    if param("include_granted_scopes") == Some("true") {
        add_previous_scopes(google, &email, client_id, &mut scopes);
    }
    let code = format!("4/0{}", random_token(70));
    google.codes.insert(
        code.clone(),
        GoogleCode {
            client_id: client_id.to_string(),
            redirect_uri: redirect_uri.to_string(),
            scopes: scopes.clone(),
            email,
            code_challenge,
            offline: param("access_type") == Some("offline"),
            nonce: param("nonce").map(str::to_string),
            created: Instant::now(),
            used: false,
        },
    );
    let scope_text = scopes.join(" ");
    Ok(params::with_query(
        &redirect,
        &[
            ("state", state_param),
            ("code", &code),
            ("scope", &scope_text),
            ("authuser", "0"),
            ("prompt", "consent"),
        ],
    ))
}

/// Adds the scopes of the account's live grants for this client, when
/// `include_granted_scopes=true` is set.
fn add_previous_scopes(
    google: &GoogleState,
    email: &str,
    client_id: &str,
    scopes: &mut Vec<String>,
) {
    let previous = google
        .grants
        .values()
        .filter(|grant| !grant.revoked && grant.email == email && grant.client_id == client_id);
    for grant in previous {
        for scope in &grant.scopes {
            if !scopes.contains(scope) {
                scopes.push(scope.clone());
            }
        }
    }
}

/// A request that Google's consent screen rejects with its "Error 400" page.
struct ConsentError {
    error: &'static str,
    detail: String,
}

fn error_page(error: &'static str, detail: &str) -> ConsentError {
    ConsentError {
        error,
        detail: detail.to_string(),
    }
}

impl IntoResponse for ConsentError {
    fn into_response(self) -> Response {
        consent_error_page(self.error, &self.detail)
    }
}

fn consent_error_page(error: &str, detail: &str) -> Response {
    let error = params::html_escape(error);
    let detail = params::html_escape(detail);
    let page = format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Error 400 ({error})</title></head><body>\
         <h1>Access blocked: authorization error</h1>\
         <p><b>Error 400: {error}</b></p><p>{detail}</p></body></html>"
    );
    (StatusCode::BAD_REQUEST, Html(page)).into_response()
}

/// Error response of the token or revoke endpoint.
struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: String,
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = json!({"error": self.error, "error_description": self.description});
        let headers = [(header::CACHE_CONTROL, "no-store")];
        (self.status, headers, axum::Json(body)).into_response()
    }
}

fn oauth_error_value(status: StatusCode, error: &'static str, description: &str) -> OAuthError {
    OAuthError {
        status,
        error,
        description: description.to_string(),
    }
}

fn oauth_error(status: StatusCode, error: &'static str, description: &str) -> Response {
    oauth_error_value(status, error, description).into_response()
}

fn invalid_grant_bad_request() -> Response {
    oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "Bad Request")
}

/// `POST /google/token`.
pub async fn token(State(state): State<SharedState>, headers: HeaderMap, body: Bytes) -> Response {
    let form = params::map(&body);
    let Some(grant_type) = form.get("grant_type").filter(|v| !v.is_empty()) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Required parameter is missing: grant_type",
        );
    };
    let client_id = match authenticate_client(&state, &headers, &form) {
        Ok(client_id) => client_id,
        Err(error) => return error.into_response(),
    };
    match grant_type.as_str() {
        "authorization_code" => exchange_code(&state, &client_id, &form),
        "refresh_token" => refresh(&state, &client_id, &form),
        other => oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            &format!("Invalid grant_type: {other}"),
        ),
    }
}

/// Checks the client credentials from HTTP Basic or the form and returns the client id.
fn authenticate_client(
    state: &SharedState,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<String, OAuthError> {
    let (client_id, secret) = match params::basic_credentials(headers) {
        Some((id, secret)) => (Some(id), Some(secret)),
        None => (
            form.get("client_id").cloned(),
            form.get("client_secret").cloned(),
        ),
    };
    let Some(client_id) = client_id.filter(|id| !id.is_empty()) else {
        return Err(oauth_error_value(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Could not determine client ID from request.",
        ));
    };
    if client_id != state.config.google_client_id {
        return Err(oauth_error_value(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "The OAuth client was not found.",
        ));
    }
    if secret.as_deref() != Some(state.config.google_client_secret.as_str()) {
        return Err(oauth_error_value(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Unauthorized",
        ));
    }
    Ok(client_id)
}

fn exchange_code(state: &SharedState, client_id: &str, form: &HashMap<String, String>) -> Response {
    let Some(code_value) = form.get("code").filter(|v| !v.is_empty()) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Missing required parameter: code",
        );
    };
    let Some(redirect_uri) = form.get("redirect_uri") else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Missing parameter: redirect_uri",
        );
    };

    let mut inner = state.lock();
    let google = &mut inner.google;
    let Some(code) = google.codes.get_mut(code_value) else {
        return invalid_grant_bad_request();
    };
    // A code is spent by its first presentation, even a failed one.
    let expired = code.created.elapsed() > CODE_LIFETIME;
    let already_used = std::mem::replace(&mut code.used, true);
    let code = code.clone();
    if already_used || expired || code.client_id != client_id {
        return invalid_grant_bad_request();
    }
    if &code.redirect_uri != redirect_uri {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "redirect_uri_mismatch",
            "Bad Request",
        );
    }
    if let Some(challenge) = &code.code_challenge {
        let Some(verifier) = form.get("code_verifier") else {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                "Missing code verifier.",
            );
        };
        let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        if &computed != challenge {
            return invalid_grant_bad_request();
        }
    }

    let grant_id = random_token(24);
    google.grants.insert(
        grant_id.clone(),
        GoogleGrant {
            email: code.email.clone(),
            client_id: client_id.to_string(),
            scopes: code.scopes.clone(),
            revoked: false,
        },
    );
    let refresh_token = code.offline.then(|| format!("1//0{}", random_token(100)));
    if let Some(refresh_token) = &refresh_token {
        google
            .refresh_tokens
            .insert(refresh_token.clone(), grant_id.clone());
    }
    let mut body = issue_access_token(state, google, &grant_id, code.nonce.as_deref());
    if let Some(refresh_token) = refresh_token {
        body["refresh_token"] = Value::String(refresh_token);
    }
    token_response(body)
}

fn refresh(state: &SharedState, client_id: &str, form: &HashMap<String, String>) -> Response {
    let Some(refresh_token) = form.get("refresh_token").filter(|v| !v.is_empty()) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Missing required parameter: refresh_token",
        );
    };
    let mut inner = state.lock();
    let google = &mut inner.google;
    let grant = google
        .refresh_tokens
        .get(refresh_token)
        .and_then(|grant_id| {
            google
                .grants
                .get(grant_id)
                .map(|grant| (grant_id.clone(), grant))
        });
    let Some((grant_id, grant)) = grant.filter(|(_, grant)| !grant.revoked) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "Token has been expired or revoked.",
        );
    };
    if grant.client_id != client_id {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            "Unauthorized",
        );
    }
    // Google leaves `refresh_token` out of a refresh response.
    let body = issue_access_token(state, google, &grant_id, None);
    token_response(body)
}

fn token_response(body: Value) -> Response {
    (
        StatusCode::OK,
        [(
            header::CACHE_CONTROL,
            "no-cache, no-store, max-age=0, must-revalidate",
        )],
        axum::Json(body),
    )
        .into_response()
}

/// Creates an access token for a grant and returns the token answer without `refresh_token`.
fn issue_access_token(
    state: &SharedState,
    google: &mut GoogleState,
    grant_id: &str,
    nonce: Option<&str>,
) -> Value {
    let Some(grant) = google.grants.get(grant_id).cloned() else {
        return json!({});
    };
    let ttl = state.config.access_token_ttl;
    let access_token = format!("ya29.a0{}", random_token(150));
    google.access_tokens.insert(
        access_token.clone(),
        GoogleAccessToken {
            grant_id: grant_id.to_string(),
            email: grant.email.clone(),
            scopes: grant.scopes.clone(),
            expires_at: Instant::now() + Duration::from_secs(ttl),
            expired: false,
        },
    );
    let mut body = json!({
        "access_token": access_token,
        "expires_in": ttl,
        "scope": grant.scopes.join(" "),
        "token_type": "Bearer",
    });
    if grant.scopes.iter().any(|scope| scope == "openid") {
        let sub = google
            .account(&grant.email)
            .map(|account| account.sub.clone())
            .unwrap_or_default();
        body["id_token"] = Value::String(id_token(state, &grant, &sub, nonce));
    }
    body
}

/// Builds an id token with Google's claims.
///
/// NOTE: the signature is a SHA-256 digest, not an RS256 signature, so a client that verifies
/// id tokens against Google's keys rejects it.
fn id_token(state: &SharedState, grant: &GoogleGrant, sub: &str, nonce: Option<&str>) -> String {
    let now = chrono::Utc::now().timestamp();
    let header = json!({"alg": "RS256", "kid": "sandbox", "typ": "JWT"});
    let mut claims = json!({
        "iss": "https://accounts.google.com",
        "azp": grant.client_id,
        "aud": grant.client_id,
        "sub": sub,
        "iat": now,
        "exp": now + i64::try_from(state.config.access_token_ttl).unwrap_or(3599),
    });
    if grant.scopes.iter().any(|scope| scope == USERINFO_EMAIL) {
        claims["email"] = Value::String(grant.email.clone());
        claims["email_verified"] = Value::Bool(true);
    }
    if let Some(nonce) = nonce {
        claims["nonce"] = Value::String(nonce.to_string());
    }
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = URL_SAFE_NO_PAD.encode(Sha256::digest(signing_input.as_bytes()));
    format!("{signing_input}.{signature}")
}

/// `POST /google/revoke`: revokes the grant of a refresh or access token.
pub async fn revoke(
    State(state): State<SharedState>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let mut form = params::map(&body);
    if let Some(query) = query {
        for (key, value) in params::map(query.as_bytes()) {
            form.entry(key).or_insert(value);
        }
    }
    let token = form.get("token").cloned().unwrap_or_default();
    let mut inner = state.lock();
    let google = &mut inner.google;
    let grant_id = google
        .refresh_tokens
        .get(&token)
        .cloned()
        .or_else(|| google.access_tokens.get(&token).map(|t| t.grant_id.clone()));
    let grant = grant_id.and_then(|id| google.grants.get_mut(&id));
    match grant {
        Some(grant) if !grant.revoked => {
            grant.revoked = true;
            (StatusCode::OK, axum::Json(json!({}))).into_response()
        }
        _ => oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_token",
            "Token expired or revoked",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_scopes_expand_to_urls() {
        let scopes = normalize_scopes(
            "openid email profile https://www.googleapis.com/auth/gmail.send email",
        )
        .expect("known scopes");
        assert_eq!(
            scopes,
            vec![
                "openid",
                USERINFO_EMAIL,
                USERINFO_PROFILE,
                "https://www.googleapis.com/auth/gmail.send"
            ]
        );
    }

    #[test]
    fn unknown_scope_is_rejected() {
        assert_eq!(
            normalize_scopes("email https://www.googleapis.com/auth/drive"),
            Err("https://www.googleapis.com/auth/drive".to_string())
        );
    }
}
