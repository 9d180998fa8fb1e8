//! Control API for tests under `/_sandbox/`, and the middleware that records requests,
//! injects faults and adds latency.
//!
//! Requests to `/_sandbox/` itself are not recorded, so that a test's own control calls do
//! not change the counts it checks.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use chrono::SecondsFormat;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::gmail;
use super::google_error::GoogleApiError;
use super::params;
use super::slack;
use super::state::{Fault, RecordedRequest, SharedState};

/// Path prefix of the control API.
pub const CONTROL_PREFIX: &str = "/_sandbox";

/// Routes under `/_sandbox`.
pub fn router() -> Router<SharedState> {
    Router::new()
        .route("/requests", get(list_requests).delete(clear_requests))
        .route("/google/expire-tokens", post(expire_google_tokens))
        .route("/google/revoke-grants", post(revoke_google_grants))
        .route("/slack/revoke", post(revoke_slack_tokens))
        .route("/slack/expire-tokens", post(expire_slack_tokens))
        .route("/slack/messages", get(list_slack_messages))
        .route("/faults", post(add_fault).delete(clear_faults))
        .route("/gmail/messages", post(add_gmail_message))
        .route("/gmail/messages/{id}", delete(delete_gmail_message))
        .route("/gmail/messages/{id}/read", post(mark_gmail_read))
        .route("/gmail/history/expire", post(expire_gmail_history))
}

/// An error of the control API: `{"error": "…"}`.
struct ControlError(StatusCode, String);

impl IntoResponse for ControlError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({"error": self.1}))).into_response()
    }
}

type ControlResult = Result<Json<Value>, ControlError>;

/// Parses an optional JSON body; an empty body means all defaults.
fn body_or_default<T: DeserializeOwned + Default>(body: &[u8]) -> Result<T, ControlError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|error| {
        ControlError(
            StatusCode::BAD_REQUEST,
            format!("invalid JSON body: {error}"),
        )
    })
}

/// Records the request, then applies the first matching fault and the configured latency,
/// and stores the response status in the record.
pub async fn intercept(State(state): State<SharedState>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_string();
    if path.starts_with(CONTROL_PREFIX) {
        return next.run(request).await;
    }
    let (sequence, fault) = {
        let mut inner = state.lock();
        inner.last_sequence += 1;
        let sequence = inner.last_sequence;
        inner.requests.push(RecordedRequest {
            sequence,
            method: request.method().to_string(),
            path: path.clone(),
            query: request.uri().query().map(str::to_string),
            at: chrono::Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
            status: None,
        });
        (sequence, take_fault(&mut inner.faults, &path))
    };
    let response = serve(&state, request, next, &path, fault).await;
    record_status(&state, sequence, response.status().as_u16());
    tracing::debug!(%path, status = response.status().as_u16(), "sandbox request served");
    response
}

async fn serve(
    state: &SharedState,
    request: Request,
    next: Next,
    path: &str,
    fault: Option<Fault>,
) -> Response {
    if let Some(fault) = &fault {
        tokio::time::sleep(Duration::from_millis(fault.delay_ms)).await;
        if let Some(status) = fault.status {
            return fault_response(fault, status, path);
        }
    }
    let is_gmail = path.starts_with("/gmail/") || path.starts_with("/upload/");
    let _slot = if is_gmail && state.config.gmail_quota {
        match gmail::enter_request_slot(state, request.headers()) {
            Ok(slot) => slot,
            Err(error) => return error.into_response(),
        }
    } else {
        None
    };
    let is_api = is_gmail || path.starts_with("/slack/api/");
    if is_api && state.config.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(state.config.latency_ms)).await;
    }
    next.run(request).await
}

/// Stores the answer's status in the record of request `sequence`, unless the log was
/// cleared in the meantime.
fn record_status(state: &SharedState, sequence: u64, status: u16) {
    let mut inner = state.lock();
    // Records are in arrival order, so the request is found by binary search.
    if let Ok(index) = inner
        .requests
        .binary_search_by_key(&sequence, |record| record.sequence)
        && let Some(record) = inner.requests.get_mut(index)
    {
        record.status = Some(status);
    }
}

/// Takes one use of the first fault whose path prefixes `path`.
fn take_fault(faults: &mut Vec<Fault>, path: &str) -> Option<Fault> {
    let position = faults
        .iter()
        .position(|fault| path.starts_with(&fault.path))?;
    let fault = faults.get_mut(position)?;
    fault.remaining = fault.remaining.saturating_sub(1);
    let taken = fault.clone();
    if fault.remaining == 0 {
        faults.remove(position);
    }
    Some(taken)
}

/// Builds the answer of an injected fault in the shape of the provider that owns `path`.
fn fault_response(fault: &Fault, status: u16, path: &str) -> Response {
    let status_code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let is_slack_api = path.starts_with("/slack/api/");
    let body = fault
        .body
        .clone()
        .unwrap_or_else(|| default_fault_body(status, path));
    let mut response = (status_code, Json(body)).into_response();
    let retry_after = fault
        .retry_after
        .or((is_slack_api && status == 429).then_some(1));
    if let Some(seconds) = retry_after {
        if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
    }
    response
}

fn default_fault_body(status: u16, path: &str) -> Value {
    if path.starts_with("/gmail/") || path.starts_with("/upload/") {
        return GoogleApiError::for_status(status).body();
    }
    if path.starts_with("/slack/api/") {
        let error = match status {
            429 => "ratelimited",
            503 => "service_unavailable",
            500.. => "internal_error",
            _ => "invalid_arguments",
        };
        return json!({"ok": false, "error": error});
    }
    if path.starts_with("/google/") {
        let error = match status {
            400 => "invalid_request",
            401 => "invalid_client",
            429 => "rate_limit_exceeded",
            _ => "internal_failure",
        };
        let reason = StatusCode::from_u16(status)
            .ok()
            .and_then(|code| code.canonical_reason())
            .unwrap_or("Error");
        return json!({"error": error, "error_description": reason});
    }
    json!({"error": format!("injected fault with status {status}")})
}

async fn list_requests(State(state): State<SharedState>) -> Json<Value> {
    let inner = state.lock();
    Json(json!(inner.requests))
}

async fn clear_requests(State(state): State<SharedState>) -> StatusCode {
    state.lock().requests.clear();
    StatusCode::NO_CONTENT
}

/// Body naming one Google account, or all when `email` is absent.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct AccountSelector {
    email: Option<String>,
}

async fn expire_google_tokens(State(state): State<SharedState>, body: Bytes) -> ControlResult {
    let selector: AccountSelector = body_or_default(&body)?;
    let mut inner = state.lock();
    let mut count = 0;
    for token in inner.google.access_tokens.values_mut() {
        if selector
            .email
            .as_ref()
            .is_none_or(|email| email.eq_ignore_ascii_case(&token.email))
        {
            token.expired = true;
            count += 1;
        }
    }
    Ok(Json(json!({"expired": count})))
}

async fn revoke_google_grants(State(state): State<SharedState>, body: Bytes) -> ControlResult {
    let selector: AccountSelector = body_or_default(&body)?;
    let mut inner = state.lock();
    let mut count = 0;
    for grant in inner.google.grants.values_mut() {
        let selected = selector
            .email
            .as_ref()
            .is_none_or(|email| email.eq_ignore_ascii_case(&grant.email));
        if selected && !grant.revoked {
            grant.revoked = true;
            count += 1;
        }
    }
    Ok(Json(json!({"revoked": count})))
}

/// Body naming one Slack workspace by name or id, or all when `team` is absent.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct TeamSelector {
    team: Option<String>,
}

impl TeamSelector {
    fn team_ids(&self, slack: &slack::SlackState) -> Vec<String> {
        slack
            .teams
            .iter()
            .filter(|team| {
                self.team
                    .as_ref()
                    .is_none_or(|wanted| &team.name == wanted || &team.id == wanted)
            })
            .map(|team| team.id.clone())
            .collect()
    }
}

async fn revoke_slack_tokens(State(state): State<SharedState>, body: Bytes) -> ControlResult {
    let selector: TeamSelector = body_or_default(&body)?;
    let mut inner = state.lock();
    let team_ids = selector.team_ids(&inner.slack);
    let mut count = 0;
    for token in inner.slack.tokens.values_mut() {
        if team_ids.contains(&token.team_id) && !token.revoked {
            token.revoked = true;
            count += 1;
        }
    }
    for grant in inner.slack.refresh_tokens.values_mut() {
        if team_ids.contains(&grant.team_id) {
            grant.used = true;
        }
    }
    Ok(Json(json!({"revoked": count})))
}

async fn expire_slack_tokens(State(state): State<SharedState>, body: Bytes) -> ControlResult {
    let selector: TeamSelector = body_or_default(&body)?;
    let mut inner = state.lock();
    let team_ids = selector.team_ids(&inner.slack);
    let mut count = 0;
    for token in inner.slack.tokens.values_mut() {
        if team_ids.contains(&token.team_id) && token.expires_at.is_some() {
            token.expired = true;
            count += 1;
        }
    }
    Ok(Json(json!({"expired": count})))
}

async fn list_slack_messages(
    State(state): State<SharedState>,
    RawQuery(query): RawQuery,
) -> Json<Value> {
    let query = params::map(query.unwrap_or_default().as_bytes());
    let channel = query.get("channel");
    let inner = state.lock();
    let messages: Vec<Value> = inner
        .slack
        .messages
        .iter()
        .filter(|message| channel.is_none_or(|wanted| &message.channel_id == wanted))
        .map(|message| {
            let mut rendered = slack::message_json(message);
            rendered["channel"] = json!(message.channel_id);
            rendered
        })
        .collect();
    Json(json!(messages))
}

/// Body of `POST /_sandbox/faults`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FaultRequest {
    path: String,
    status: Option<u16>,
    #[serde(default = "one")]
    times: u32,
    #[serde(default)]
    delay_ms: u64,
    retry_after: Option<u64>,
    body: Option<Value>,
}

fn one() -> u32 {
    1
}

async fn add_fault(State(state): State<SharedState>, body: Bytes) -> ControlResult {
    let request: FaultRequest = serde_json::from_slice(&body).map_err(|error| {
        ControlError(StatusCode::BAD_REQUEST, format!("invalid fault: {error}"))
    })?;
    if !request.path.starts_with('/') {
        return Err(ControlError(
            StatusCode::BAD_REQUEST,
            "path must start with /".to_string(),
        ));
    }
    if let Some(status) = request.status {
        if StatusCode::from_u16(status).is_err() || status < 200 {
            return Err(ControlError(
                StatusCode::BAD_REQUEST,
                format!("invalid status {status}"),
            ));
        }
    }
    let mut inner = state.lock();
    if request.times > 0 {
        inner.faults.push(Fault {
            path: request.path,
            status: request.status,
            remaining: request.times,
            delay_ms: request.delay_ms,
            retry_after: request.retry_after,
            body: request.body,
        });
    }
    Ok(Json(json!({"faults": inner.faults.len()})))
}

async fn clear_faults(State(state): State<SharedState>) -> StatusCode {
    state.lock().faults.clear();
    StatusCode::NO_CONTENT
}

/// Body of `POST /_sandbox/gmail/messages`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewMessage {
    email: Option<String>,
    eml: String,
    label_ids: Option<Vec<String>>,
}

async fn add_gmail_message(State(state): State<SharedState>, body: Bytes) -> ControlResult {
    let request: NewMessage = serde_json::from_slice(&body).map_err(|error| {
        ControlError(StatusCode::BAD_REQUEST, format!("invalid message: {error}"))
    })?;
    let email = request
        .email
        .unwrap_or_else(|| state.config.google_account.clone());
    let labels = request
        .label_ids
        .unwrap_or_else(|| vec!["INBOX".to_string(), "UNREAD".to_string()]);
    let now_ms = chrono::Utc::now().timestamp_millis();
    let mut inner = state.lock();
    let mailbox = &mut inner.google.account_mut(&email).mailbox;
    let stored = mailbox
        .import_eml(request.eml.as_bytes(), &labels, now_ms)
        .ok_or_else(|| {
            ControlError(
                StatusCode::BAD_REQUEST,
                "eml does not parse as a message".to_string(),
            )
        })?;
    let answer = json!({
        "id": stored.id,
        "threadId": stored.thread_id,
        "historyId": stored.history_id.to_string(),
    });
    Ok(Json(answer))
}

/// Finds which account holds a message: the one named by `?email=`, else any.
fn account_of_message(state: &SharedState, query: Option<&str>, id: &str) -> Option<String> {
    let query = params::map(query.unwrap_or_default().as_bytes());
    let inner = state.lock();
    if let Some(email) = query.get("email") {
        return Some(email.to_lowercase());
    }
    inner
        .google
        .accounts
        .iter()
        .find(|(_, account)| account.mailbox.get(id).is_some())
        .map(|(key, _)| key.clone())
}

fn message_not_found(id: &str) -> ControlError {
    ControlError(StatusCode::NOT_FOUND, format!("message {id} not found"))
}

async fn delete_gmail_message(
    State(state): State<SharedState>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> ControlResult {
    let account =
        account_of_message(&state, query.as_deref(), &id).ok_or_else(|| message_not_found(&id))?;
    let mut inner = state.lock();
    let mailbox = &mut inner
        .google
        .accounts
        .get_mut(&account)
        .ok_or_else(|| message_not_found(&id))?
        .mailbox;
    if !mailbox.delete(&id) {
        return Err(message_not_found(&id));
    }
    Ok(Json(
        json!({"deleted": id, "historyId": mailbox.history_id().to_string()}),
    ))
}

async fn mark_gmail_read(
    State(state): State<SharedState>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> ControlResult {
    let account =
        account_of_message(&state, query.as_deref(), &id).ok_or_else(|| message_not_found(&id))?;
    let mut inner = state.lock();
    let mailbox = &mut inner
        .google
        .accounts
        .get_mut(&account)
        .ok_or_else(|| message_not_found(&id))?
        .mailbox;
    let message = mailbox
        .modify(&id, &[], &["UNREAD".to_string()])
        .ok_or_else(|| message_not_found(&id))?;
    Ok(Json(json!({
        "id": message.id,
        "labelIds": message.labels,
        "historyId": message.history_id.to_string(),
    })))
}

async fn expire_gmail_history(State(state): State<SharedState>, body: Bytes) -> ControlResult {
    let selector: AccountSelector = body_or_default(&body)?;
    let mut inner = state.lock();
    let emails = inner.google.select_accounts(selector.email.as_deref());
    let mut count = 0;
    for email in emails {
        if let Some(account) = inner.google.accounts.get_mut(&email) {
            account.mailbox.expire_history();
            count += 1;
        }
    }
    Ok(Json(json!({"expired": count})))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault(path: &str, times: u32) -> Fault {
        Fault {
            path: path.to_string(),
            status: Some(503),
            remaining: times,
            delay_ms: 0,
            retry_after: None,
            body: None,
        }
    }

    #[test]
    fn fault_applies_given_number_of_times() {
        let mut faults = vec![fault("/google/token", 2)];
        assert!(take_fault(&mut faults, "/gmail/v1/users/me/profile").is_none());
        assert!(take_fault(&mut faults, "/google/token").is_some());
        assert!(take_fault(&mut faults, "/google/token").is_some());
        assert!(take_fault(&mut faults, "/google/token").is_none());
        assert!(faults.is_empty());
    }

    #[test]
    fn default_bodies_follow_the_provider() {
        let gmail = default_fault_body(503, "/gmail/v1/users/me/messages");
        assert_eq!(gmail["error"]["status"], "UNAVAILABLE");
        let slack = default_fault_body(429, "/slack/api/chat.postMessage");
        assert_eq!(slack, json!({"ok": false, "error": "ratelimited"}));
        let token = default_fault_body(503, "/google/token");
        assert_eq!(token["error"], "internal_failure");
        assert_eq!(token["error_description"], "Service Unavailable");
    }
}
