//! Fake Slack OAuth v2: the install page (which approves at once) and `oauth.v2.access` for
//! codes and, with token rotation, refresh tokens.

use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use serde_json::{Value, json};

use super::params;
use super::slack::{
    APP_ID, Arguments, Code, RefreshGrant, SlackError, SlackState, Team, Token, TokenKind,
};
use super::state::{SharedState, random_digits, random_token};

/// An authorization code works for this long.
const CODE_LIFETIME: Duration = Duration::from_secs(600);

fn split_scopes(list: Option<&str>) -> Vec<String> {
    list.unwrap_or_default()
        .split([',', ' '])
        .map(str::trim)
        .filter(|scope| !scope.is_empty())
        .map(str::to_string)
        .collect()
}

fn error_page(error: &str) -> Response {
    let error = params::html_escape(error);
    let page = format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Slack</title></head>\
         <body><h1>Oops, something went wrong.</h1><p>Error: <code>{error}</code></p></body></html>"
    );
    (StatusCode::BAD_REQUEST, Html(page)).into_response()
}

/// `GET /slack/oauth/v2/authorize`: validates the request and redirects back with a code.
///
/// Testing parameters: `team` picks (or creates) the workspace, `sandbox_deny=access_denied`
/// returns that error.
pub async fn authorize(State(state): State<SharedState>, RawQuery(query): RawQuery) -> Response {
    let query = params::map(query.unwrap_or_default().as_bytes());
    let param = |name: &str| {
        query
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    };
    if param("client_id") != Some(state.config.slack_client_id.as_str()) {
        return error_page("invalid_client_id");
    }
    let Some(redirect_uri) = param("redirect_uri") else {
        return error_page("bad_redirect_uri");
    };
    let Some(redirect) = url::Url::parse(redirect_uri)
        .ok()
        .filter(|url| matches!(url.scheme(), "http" | "https"))
    else {
        return error_page("bad_redirect_uri");
    };
    let bot_scopes = split_scopes(param("scope"));
    let user_scopes = split_scopes(param("user_scope"));
    if bot_scopes.is_empty() && user_scopes.is_empty() {
        return error_page("invalid_scope");
    }
    let state_param = param("state").unwrap_or_default();
    if let Some(error) = param("sandbox_deny") {
        return params::found(&params::with_query(
            &redirect,
            &[("error", error), ("state", state_param)],
        ))
        .into_response();
    }

    let team_name = param("team")
        .unwrap_or(&state.config.slack_team)
        .to_string();
    let code = format!(
        "{}.{}.{}",
        random_digits(13),
        random_digits(13),
        random_token(64).to_lowercase()
    );
    let mut inner = state.lock();
    let team = inner.slack.team_by_name(&team_name);
    inner.slack.codes.insert(
        code.clone(),
        Code {
            client_id: state.config.slack_client_id.clone(),
            redirect_uri: Some(redirect_uri.to_string()),
            team_id: team.id,
            bot_scopes,
            user_scopes,
            created: Instant::now(),
            used: false,
        },
    );
    params::found(&params::with_query(
        &redirect,
        &[("code", &code), ("state", state_param)],
    ))
    .into_response()
}

/// `oauth.v2.access`: client credentials from HTTP Basic or the arguments.
pub fn access(state: &SharedState, headers: &HeaderMap, args: &Arguments) -> Response {
    match access_inner(state, headers, args) {
        Ok(body) => (StatusCode::OK, Json(body)).into_response(),
        Err(error) => error.into_response(),
    }
}

fn access_inner(
    state: &SharedState,
    headers: &HeaderMap,
    args: &Arguments,
) -> Result<Value, SlackError> {
    let (client_id, secret) = params::basic_credentials(headers).unwrap_or_else(|| {
        (
            args.text("client_id").unwrap_or_default(),
            args.text("client_secret").unwrap_or_default(),
        )
    });
    if client_id != state.config.slack_client_id {
        return Err(SlackError::new("invalid_client_id"));
    }
    if secret != state.config.slack_client_secret {
        return Err(SlackError::new("bad_client_secret"));
    }
    match args.text("grant_type").as_deref() {
        Some("refresh_token") => refresh(state, args),
        None | Some("authorization_code") => exchange_code(state, args),
        Some(_) => Err(SlackError::new("invalid_grant_type")),
    }
}

fn exchange_code(state: &SharedState, args: &Arguments) -> Result<Value, SlackError> {
    let code_value = args.text("code").unwrap_or_default();
    let mut inner = state.lock();
    let slack = &mut inner.slack;
    let code = slack
        .codes
        .get_mut(&code_value)
        .ok_or_else(|| SlackError::new("invalid_code"))?;
    let already_used = std::mem::replace(&mut code.used, true);
    let code = code.clone();
    let foreign_client = code.client_id != state.config.slack_client_id;
    if already_used || foreign_client || code.created.elapsed() > CODE_LIFETIME {
        return Err(SlackError::new("invalid_code"));
    }
    if code.redirect_uri.is_some() && args.text("redirect_uri") != code.redirect_uri {
        return Err(SlackError::new("bad_redirect_uri"));
    }
    let team = slack
        .team(&code.team_id)
        .cloned()
        .ok_or_else(|| SlackError::new("invalid_code"))?;
    let rotation = state.config.slack_token_rotation;
    let ttl = state.config.access_token_ttl;

    let mut body = json!({
        "ok": true,
        "app_id": APP_ID,
        "authed_user": {"id": team.user_id},
        "team": {"id": team.id, "name": team.name},
        "enterprise": null,
        "is_enterprise_install": false,
    });
    if !code.bot_scopes.is_empty() {
        let issued = issue(
            slack,
            &team,
            TokenKind::Bot,
            &code.bot_scopes,
            rotation,
            ttl,
        );
        body["scope"] = json!(code.bot_scopes.join(","));
        body["token_type"] = json!("bot");
        body["access_token"] = json!(issued.access_token);
        body["bot_user_id"] = json!(team.bot_user_id);
        add_rotation_fields(&mut body, &issued, ttl);
    }
    if !code.user_scopes.is_empty() {
        let issued = issue(
            slack,
            &team,
            TokenKind::User,
            &code.user_scopes,
            rotation,
            ttl,
        );
        let mut user = json!({
            "id": team.user_id,
            "scope": code.user_scopes.join(","),
            "access_token": issued.access_token,
            "token_type": "user",
        });
        add_rotation_fields(&mut user, &issued, ttl);
        body["authed_user"] = user;
    }
    Ok(body)
}

fn refresh(state: &SharedState, args: &Arguments) -> Result<Value, SlackError> {
    let refresh_token = args.text("refresh_token").unwrap_or_default();
    let mut inner = state.lock();
    let slack = &mut inner.slack;
    let grant = slack
        .refresh_tokens
        .get_mut(&refresh_token)
        .filter(|grant| !grant.used)
        .ok_or_else(|| SlackError::new("invalid_refresh_token"))?;
    // Each refresh returns a new refresh token, and the old one stops working.
    grant.used = true;
    let grant = grant.clone();

    let team = slack
        .team(&grant.team_id)
        .cloned()
        .ok_or_else(|| SlackError::new("invalid_refresh_token"))?;
    let ttl = state.config.access_token_ttl;
    let issued = issue(slack, &team, grant.kind, &grant.scopes, true, ttl);

    let mut body = json!({
        "ok": true,
        "app_id": APP_ID,
        "scope": grant.scopes.join(","),
        "token_type": grant.kind.name(),
        "access_token": issued.access_token,
        "team": {"id": team.id, "name": team.name},
        "enterprise": null,
        "is_enterprise_install": false,
    });
    match grant.kind {
        TokenKind::Bot => body["bot_user_id"] = json!(team.bot_user_id),
        TokenKind::User => body["user_id"] = json!(team.user_id),
    }
    add_rotation_fields(&mut body, &issued, ttl);
    Ok(body)
}

struct Issued {
    access_token: String,
    refresh_token: Option<String>,
}

fn add_rotation_fields(target: &mut Value, issued: &Issued, ttl: u64) {
    if let Some(refresh_token) = &issued.refresh_token {
        target["refresh_token"] = json!(refresh_token);
        target["expires_in"] = json!(ttl);
    }
}

/// Creates an access token, and with rotation a refresh token that expires in `ttl` seconds.
fn issue(
    slack: &mut SlackState,
    team: &Team,
    kind: TokenKind,
    scopes: &[String],
    rotation: bool,
    ttl: u64,
) -> Issued {
    let prefix = match kind {
        TokenKind::Bot => "xoxb",
        TokenKind::User => "xoxp",
    };
    let team_number = team.id.trim_start_matches('T');
    let access_token = if rotation {
        format!("xoxe.{prefix}-1-{}", random_token(140))
    } else {
        format!(
            "{prefix}-{team_number}-{}-{}",
            random_digits(13),
            random_token(24)
        )
    };
    slack.tokens.insert(
        access_token.clone(),
        Token {
            team_id: team.id.clone(),
            kind,
            scopes: scopes.to_vec(),
            expires_at: rotation.then(|| Instant::now() + Duration::from_secs(ttl)),
            revoked: false,
            expired: false,
        },
    );
    let refresh_token = rotation.then(|| format!("xoxe-1-{}", random_token(140)));
    if let Some(refresh_token) = &refresh_token {
        slack.refresh_tokens.insert(
            refresh_token.clone(),
            RefreshGrant {
                team_id: team.id.clone(),
                kind,
                scopes: scopes.to_vec(),
                used: false,
            },
        );
    }
    Issued {
        access_token,
        refresh_token,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_split_on_commas_and_spaces() {
        assert_eq!(
            split_scopes(Some("chat:write, channels:read channels:join")),
            vec!["chat:write", "channels:read", "channels:join"]
        );
        assert!(split_scopes(None).is_empty());
    }
}
