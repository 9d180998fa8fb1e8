//! Fake Gmail API v1 (`/gmail/v1/users/{userId}/…`): access token and scope checks, the
//! optional quota, and the profile, messages, attachments, modify and history methods.
//! Sending lives in `gmail_send`.

use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::google_error::GoogleApiError;
use super::mailbox::{Change, HistoryRecord, StoredMessage};
use super::params;
use super::query;
use super::state::{Inner, QuotaUsage, SharedState};

pub type GmailResult = Result<Response, GoogleApiError>;

const MAIL: &str = "https://mail.google.com/";
const MODIFY: &str = "https://www.googleapis.com/auth/gmail.modify";
const READONLY: &str = "https://www.googleapis.com/auth/gmail.readonly";
const METADATA: &str = "https://www.googleapis.com/auth/gmail.metadata";
const COMPOSE: &str = "https://www.googleapis.com/auth/gmail.compose";
const SEND: &str = "https://www.googleapis.com/auth/gmail.send";

/// A Gmail method with the scopes that the discovery document (revision 20230424) lists for
/// it and its cost in quota units.
///
/// NOTE: the unit costs follow Gmail's published quota table as remembered, not a copy kept
/// in this repository; check them before relying on exact quota behaviour.
#[derive(Debug, Clone, Copy)]
pub struct Method {
    scopes: &'static [&'static str],
    quota_units: u32,
}

pub const GET_PROFILE: Method = Method {
    scopes: &[MAIL, COMPOSE, METADATA, MODIFY, READONLY],
    quota_units: 1,
};
pub const LIST_MESSAGES: Method = Method {
    scopes: &[MAIL, METADATA, MODIFY, READONLY],
    quota_units: 5,
};
pub const GET_MESSAGE: Method = Method {
    scopes: &[MAIL, METADATA, MODIFY, READONLY],
    quota_units: 5,
};
pub const GET_ATTACHMENT: Method = Method {
    scopes: &[MAIL, MODIFY, READONLY],
    quota_units: 5,
};
pub const SEND_MESSAGE: Method = Method {
    scopes: &[MAIL, COMPOSE, MODIFY, SEND],
    quota_units: 100,
};
pub const MODIFY_MESSAGE: Method = Method {
    scopes: &[MAIL, MODIFY],
    quota_units: 5,
};
pub const DELETE_MESSAGE: Method = Method {
    scopes: &[MAIL],
    quota_units: 10,
};
pub const LIST_HISTORY: Method = Method {
    scopes: &[MAIL, METADATA, MODIFY, READONLY],
    quota_units: 2,
};

/// Quota units per second per user, and the concurrent request limit per user.
const QUOTA_UNITS_PER_SECOND: f64 = 250.0;
const MAX_CONCURRENT_REQUESTS: usize = 10;

/// The caller of an authenticated Gmail request.
pub struct Caller {
    /// Lowercased account email.
    pub account: String,
    pub scopes: Vec<String>,
}

impl Caller {
    fn has_only_metadata_scope(&self) -> bool {
        self.scopes.iter().any(|s| s == METADATA)
            && !self
                .scopes
                .iter()
                .any(|s| s == MAIL || s == MODIFY || s == READONLY)
    }
}

/// A concurrent-request slot of one account, released when dropped.
pub struct RequestSlot {
    state: SharedState,
    account: String,
}

impl Drop for RequestSlot {
    fn drop(&mut self) {
        let mut inner = self.state.lock();
        if let Some(usage) = inner.quota.get_mut(&self.account) {
            usage.in_flight = usage.in_flight.saturating_sub(1);
        }
    }
}

/// Checks the access token, the `userId` path segment, the method's scopes and the quota.
pub fn authenticate(
    state: &SharedState,
    headers: &HeaderMap,
    user_id: &str,
    method: Method,
) -> Result<Caller, GoogleApiError> {
    let token = params::bearer_token(headers).ok_or_else(GoogleApiError::missing_credentials)?;
    let mut inner = state.lock();
    let grant_live = |grant_id: &str| {
        inner
            .google
            .grants
            .get(grant_id)
            .is_some_and(|grant| !grant.revoked)
    };
    let access = inner
        .google
        .access_tokens
        .get(&token)
        .filter(|access| !access.expired && access.expires_at > Instant::now())
        .filter(|access| grant_live(&access.grant_id))
        .cloned()
        .ok_or_else(GoogleApiError::invalid_credentials)?;
    let account = access.email.to_lowercase();
    if user_id != "me" && !user_id.eq_ignore_ascii_case(&account) {
        return Err(GoogleApiError::forbidden(&format!(
            "Delegation denied for {user_id}"
        )));
    }
    if !access
        .scopes
        .iter()
        .any(|scope| method.scopes.contains(&scope.as_str()))
    {
        return Err(GoogleApiError::insufficient_permissions());
    }
    if state.config.gmail_quota {
        take_quota_units(&mut inner, &account, method.quota_units)?;
    }
    Ok(Caller {
        account,
        scopes: access.scopes,
    })
}

/// Takes one of the account's concurrent-request slots for the whole request, latency
/// included. Returns `None` when the token is unknown, because the handler then returns 401.
pub fn enter_request_slot(
    state: &SharedState,
    headers: &HeaderMap,
) -> Result<Option<RequestSlot>, GoogleApiError> {
    let Some(token) = params::bearer_token(headers) else {
        return Ok(None);
    };
    let mut inner = state.lock();
    let Some(account) = inner
        .google
        .access_tokens
        .get(&token)
        .map(|access| access.email.to_lowercase())
    else {
        return Ok(None);
    };
    let usage = quota_usage(&mut inner, &account);
    if usage.in_flight >= MAX_CONCURRENT_REQUESTS {
        return Err(GoogleApiError::rate_limited(
            "Too many concurrent requests for user.",
        ));
    }
    usage.in_flight += 1;
    Ok(Some(RequestSlot {
        state: state.clone(),
        account,
    }))
}

/// Returns the account's quota usage with the units refilled for the time since last use.
fn quota_usage<'a>(inner: &'a mut Inner, account: &str) -> &'a mut QuotaUsage {
    let now = Instant::now();
    let usage = inner
        .quota
        .entry(account.to_string())
        .or_insert_with(|| QuotaUsage {
            units_left: QUOTA_UNITS_PER_SECOND,
            refilled_at: now,
            in_flight: 0,
        });
    let elapsed = now.duration_since(usage.refilled_at).as_secs_f64();
    usage.units_left =
        (usage.units_left + elapsed * QUOTA_UNITS_PER_SECOND).min(QUOTA_UNITS_PER_SECOND);
    usage.refilled_at = now;
    usage
}

/// Spends the method's quota units, or fails with 429 when fewer are left.
fn take_quota_units(inner: &mut Inner, account: &str, units: u32) -> Result<(), GoogleApiError> {
    let usage = quota_usage(inner, account);
    let cost = f64::from(units);
    if usage.units_left < cost {
        let retry_at = chrono::Utc::now() + Duration::from_secs(1);
        let message = format!(
            "User-rate limit exceeded.  Retry after {}",
            retry_at.to_rfc3339()
        );
        return Err(GoogleApiError::rate_limited(&message));
    }
    usage.units_left -= cost;
    Ok(())
}

/// Returns the id that `attachments.get` accepts for a part of a message.
pub fn attachment_id(message_id: &str, part_id: &str) -> String {
    let digest = Sha256::digest(format!("{message_id}/{part_id}").as_bytes());
    format!("ANGjdJ{}", URL_SAFE_NO_PAD.encode(digest))
}

/// The `format` of `messages.get`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Full,
    Metadata,
    Minimal,
    Raw,
}

impl Format {
    fn parse(value: Option<&str>) -> Result<Format, GoogleApiError> {
        match value.map(str::to_ascii_lowercase).as_deref() {
            None | Some("full") => Ok(Format::Full),
            Some("metadata") => Ok(Format::Metadata),
            Some("minimal") => Ok(Format::Minimal),
            Some("raw") => Ok(Format::Raw),
            Some(other) => Err(GoogleApiError::invalid_argument(&format!(
                "Invalid value at 'format' (type.googleapis.com/gmail.v1.GetMessageRequest.Format), \"{other}\""
            ))),
        }
    }
}

/// Renders a stored message as Gmail's `Message` resource.
pub fn message_json(message: &StoredMessage, format: Format, metadata_headers: &[String]) -> Value {
    let mut out = json!({
        "id": message.id,
        "threadId": message.thread_id,
        "snippet": message.parsed.snippet,
        "sizeEstimate": message.raw.len(),
        "historyId": message.history_id.to_string(),
        "internalDate": message.internal_date_ms.to_string(),
    });
    if !message.labels.is_empty() {
        out["labelIds"] = json!(message.labels);
    }
    match format {
        Format::Full => {
            let message_id = message.id.clone();
            let id_for = move |part_id: &str| attachment_id(&message_id, part_id);
            out["payload"] = message.parsed.payload.to_json(&id_for);
        }
        Format::Metadata => {
            let headers: Vec<Value> = message
                .parsed
                .payload
                .headers
                .iter()
                .filter(|(name, _)| {
                    metadata_headers.is_empty()
                        || metadata_headers
                            .iter()
                            .any(|wanted| wanted.eq_ignore_ascii_case(name))
                })
                .map(|(name, value)| json!({"name": name, "value": value}))
                .collect();
            out["payload"] = json!({
                "mimeType": message.parsed.payload.mime_type,
                "headers": headers,
            });
        }
        Format::Raw => {
            out["raw"] = json!(URL_SAFE.encode(&message.raw));
        }
        Format::Minimal => {}
    }
    out
}

/// Rejects an id that is not hexadecimal before the lookup, as Gmail does.
fn check_message_id(id: &str) -> Result<(), GoogleApiError> {
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(GoogleApiError::invalid_argument("Invalid id value"));
    }
    Ok(())
}

fn ok_json(value: Value) -> GmailResult {
    Ok((StatusCode::OK, Json(value)).into_response())
}

/// `GET profile`.
pub async fn get_profile(
    State(state): State<SharedState>,
    Path(user_id): Path<String>,
    headers: HeaderMap,
) -> GmailResult {
    let caller = authenticate(&state, &headers, &user_id, GET_PROFILE)?;
    let inner = state.lock();
    let account = inner
        .google
        .account(&caller.account)
        .ok_or_else(GoogleApiError::not_found)?;
    let mailbox = &account.mailbox;
    ok_json(json!({
        "emailAddress": account.email,
        "messagesTotal": mailbox.messages().count(),
        "threadsTotal": mailbox.thread_count(),
        "historyId": mailbox.history_id().to_string(),
    }))
}

/// Reads `maxResults`: default 100, at most 500.
fn max_results(pairs: &[(String, String)]) -> Result<usize, GoogleApiError> {
    let Some(raw) = params::first_value(pairs, "maxResults") else {
        return Ok(100);
    };
    let value: usize = raw.parse().map_err(|_| {
        GoogleApiError::invalid_argument(&format!(
            "Invalid value '{raw}'. Values must match the following regular expression: '[0-9]+'"
        ))
    })?;
    Ok(match value {
        0 => 100,
        n => n.min(500),
    })
}

/// `GET messages`.
pub async fn list_messages(
    State(state): State<SharedState>,
    Path(user_id): Path<String>,
    headers: HeaderMap,
    RawQuery(raw_query): RawQuery,
) -> GmailResult {
    let caller = authenticate(&state, &headers, &user_id, LIST_MESSAGES)?;
    let pairs = params::pairs(raw_query.unwrap_or_default().as_bytes());
    let page_size = max_results(&pairs)?;
    let q = params::first_value(&pairs, "q").unwrap_or_default();
    if !q.is_empty() && caller.has_only_metadata_scope() {
        return Err(GoogleApiError::forbidden(
            "Metadata scope does not support 'q' parameter",
        ));
    }
    let cursor = match params::first_value(&pairs, "pageToken").filter(|t| !t.is_empty()) {
        Some(token) => Some(decode_list_cursor(token)?),
        None => None,
    };
    let label_ids = params::all_values(&pairs, "labelIds");
    let include_spam_trash = params::first_value(&pairs, "includeSpamTrash") == Some("true");
    let query = query::parse(q, chrono::Utc::now().timestamp_millis());

    let inner = state.lock();
    let account = inner
        .google
        .account(&caller.account)
        .ok_or_else(GoogleApiError::not_found)?;
    let found = account
        .mailbox
        .search(&query, &label_ids, include_spam_trash);
    let total = found.len();
    let remaining: Vec<&StoredMessage> = found
        .into_iter()
        .filter(|message| match &cursor {
            Some((date, id)) => {
                (message.internal_date_ms, message.id.as_str()) < (*date, id.as_str())
            }
            None => true,
        })
        .collect();
    let page: Vec<&StoredMessage> = remaining.iter().take(page_size).copied().collect();

    let mut out = json!({"resultSizeEstimate": total});
    if !page.is_empty() {
        let refs: Vec<Value> = page
            .iter()
            .map(|m| json!({"id": m.id, "threadId": m.thread_id}))
            .collect();
        out["messages"] = Value::Array(refs);
    }
    if remaining.len() > page_size {
        if let Some(last) = page.last() {
            out["nextPageToken"] = json!(encode_list_cursor(last));
        }
    }
    ok_json(out)
}

/// Encodes the position of the last message returned as a `messages.list` page token. A
/// position, not an offset, keeps messages that arrive between pages from shifting the next
/// page.
fn encode_list_cursor(message: &StoredMessage) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}:{}", message.internal_date_ms, message.id))
}

fn decode_list_cursor(token: &str) -> Result<(i64, String), GoogleApiError> {
    let invalid = || GoogleApiError::invalid_argument("Invalid pageToken");
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let (date, id) = text.split_once(':').ok_or_else(invalid)?;
    let date = date.parse().map_err(|_| invalid())?;
    Ok((date, id.to_string()))
}

/// `GET messages/{id}`.
pub async fn get_message(
    State(state): State<SharedState>,
    Path((user_id, id)): Path<(String, String)>,
    headers: HeaderMap,
    RawQuery(raw_query): RawQuery,
) -> GmailResult {
    let caller = authenticate(&state, &headers, &user_id, GET_MESSAGE)?;
    let pairs = params::pairs(raw_query.unwrap_or_default().as_bytes());
    let format = Format::parse(params::first_value(&pairs, "format"))?;
    if caller.has_only_metadata_scope() && matches!(format, Format::Full | Format::Raw) {
        let name = if format == Format::Full {
            "FULL"
        } else {
            "RAW"
        };
        return Err(GoogleApiError::forbidden(&format!(
            "Metadata scope doesn't allow format {name}"
        )));
    }
    check_message_id(&id)?;
    let metadata_headers = params::all_values(&pairs, "metadataHeaders");

    let inner = state.lock();
    let message = inner
        .google
        .account(&caller.account)
        .and_then(|account| account.mailbox.get(&id))
        .ok_or_else(GoogleApiError::not_found)?;
    ok_json(message_json(message, format, &metadata_headers))
}

/// `GET messages/{messageId}/attachments/{id}`.
pub async fn get_attachment(
    State(state): State<SharedState>,
    Path((user_id, message_id, attachment)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> GmailResult {
    let caller = authenticate(&state, &headers, &user_id, GET_ATTACHMENT)?;
    check_message_id(&message_id)?;
    let inner = state.lock();
    let message = inner
        .google
        .account(&caller.account)
        .and_then(|account| account.mailbox.get(&message_id))
        .ok_or_else(GoogleApiError::not_found)?;
    let part = message
        .parsed
        .payload
        .walk()
        .into_iter()
        .find(|part| {
            part.is_attachment() && attachment_id(&message.id, &part.part_id) == attachment
        })
        .ok_or_else(|| GoogleApiError::invalid_argument("Invalid attachment token"))?;
    ok_json(json!({
        "attachmentId": attachment,
        "size": part.body.len(),
        "data": URL_SAFE.encode(&part.body),
    }))
}

/// Body of `messages.modify`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ModifyRequest {
    add_label_ids: Vec<String>,
    remove_label_ids: Vec<String>,
}

/// Labels that exist in every Gmail mailbox.
const SYSTEM_LABELS: &[&str] = &[
    "INBOX",
    "SPAM",
    "TRASH",
    "UNREAD",
    "STARRED",
    "IMPORTANT",
    "SENT",
    "DRAFT",
    "CATEGORY_PERSONAL",
    "CATEGORY_SOCIAL",
    "CATEGORY_PROMOTIONS",
    "CATEGORY_UPDATES",
    "CATEGORY_FORUMS",
];

/// `POST messages/{id}/modify`.
pub async fn modify_message(
    State(state): State<SharedState>,
    Path((user_id, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> GmailResult {
    let caller = authenticate(&state, &headers, &user_id, MODIFY_MESSAGE)?;
    check_message_id(&id)?;
    let request: ModifyRequest = if body.is_empty() {
        ModifyRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|error| {
            GoogleApiError::invalid_argument(&format!("Invalid JSON payload received. {error}"))
        })?
    };

    let mut inner = state.lock();
    let account = inner
        .google
        .accounts
        .get_mut(&caller.account)
        .ok_or_else(GoogleApiError::not_found)?;
    let known_user_labels: Vec<String> = account
        .mailbox
        .messages()
        .flat_map(|message| message.labels.iter().cloned())
        .collect();
    for label in request
        .add_label_ids
        .iter()
        .chain(&request.remove_label_ids)
    {
        if !SYSTEM_LABELS.contains(&label.as_str()) && !known_user_labels.contains(label) {
            return Err(GoogleApiError::invalid_argument(&format!(
                "Invalid label: {label}"
            )));
        }
    }
    let message = account
        .mailbox
        .modify(&id, &request.add_label_ids, &request.remove_label_ids)
        .ok_or_else(GoogleApiError::not_found)?;
    ok_json(json!({"id": message.id, "threadId": message.thread_id, "labelIds": message.labels}))
}

/// `DELETE messages/{id}`: deletes at once, skipping the trash.
pub async fn delete_message(
    State(state): State<SharedState>,
    Path((user_id, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> GmailResult {
    let caller = authenticate(&state, &headers, &user_id, DELETE_MESSAGE)?;
    check_message_id(&id)?;
    let mut inner = state.lock();
    let deleted = inner
        .google
        .accounts
        .get_mut(&caller.account)
        .is_some_and(|account| account.mailbox.delete(&id));
    if !deleted {
        return Err(GoogleApiError::not_found());
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET history`.
pub async fn list_history(
    State(state): State<SharedState>,
    Path(user_id): Path<String>,
    headers: HeaderMap,
    RawQuery(raw_query): RawQuery,
) -> GmailResult {
    let caller = authenticate(&state, &headers, &user_id, LIST_HISTORY)?;
    let pairs = params::pairs(raw_query.unwrap_or_default().as_bytes());
    let start_text = params::first_value(&pairs, "startHistoryId")
        .filter(|value| !value.is_empty())
        .ok_or_else(|| GoogleApiError::required("startHistoryId"))?;
    let start: u64 = start_text.parse().map_err(|_| {
        GoogleApiError::invalid_argument(&format!("Invalid startHistoryId: {start_text}"))
    })?;
    let page_size = max_results(&pairs)?;
    let after_record: u64 = match params::first_value(&pairs, "pageToken").filter(|t| !t.is_empty())
    {
        Some(token) => token
            .parse()
            .map_err(|_| GoogleApiError::invalid_argument("Invalid pageToken"))?,
        None => 0,
    };
    let label = params::first_value(&pairs, "labelId").map(str::to_string);
    let types = params::all_values(&pairs, "historyTypes");

    let inner = state.lock();
    let mailbox = &inner
        .google
        .account(&caller.account)
        .ok_or_else(GoogleApiError::not_found)?
        .mailbox;
    let records = mailbox
        .history_since(start)
        .map_err(|_| GoogleApiError::not_found())?;
    let selected: Vec<&HistoryRecord> = records
        .into_iter()
        .filter(|record| record.id > after_record)
        .filter(|record| {
            types.is_empty() || types.iter().any(|t| t == record.change.history_type())
        })
        .filter(|record| {
            label
                .as_ref()
                .is_none_or(|label| record_has_label(record, label))
        })
        .collect();
    let page: Vec<&HistoryRecord> = selected.iter().take(page_size).copied().collect();

    let mut out = json!({"historyId": mailbox.history_id().to_string()});
    if !page.is_empty() {
        out["history"] = Value::Array(page.iter().map(|record| history_json(record)).collect());
    }
    if selected.len() > page_size {
        if let Some(last) = page.last() {
            out["nextPageToken"] = json!(last.id.to_string());
        }
    }
    ok_json(out)
}

fn record_has_label(record: &HistoryRecord, label: &str) -> bool {
    let changed = match &record.change {
        Change::LabelsAdded(labels) | Change::LabelsRemoved(labels) => labels.as_slice(),
        _ => &[],
    };
    record
        .labels_after
        .iter()
        .chain(changed)
        .any(|own| own == label)
}

/// Renders one record as Gmail's `History` resource.
pub fn history_json(record: &HistoryRecord) -> Value {
    let reference = json!({"id": record.message_id, "threadId": record.thread_id});
    let mut with_labels = reference.clone();
    if !record.labels_after.is_empty() {
        with_labels["labelIds"] = json!(record.labels_after);
    }
    let mut out = json!({"id": record.id.to_string(), "messages": [reference]});
    match &record.change {
        Change::MessageAdded => out["messagesAdded"] = json!([{"message": with_labels}]),
        Change::MessageDeleted => out["messagesDeleted"] = json!([{"message": with_labels}]),
        Change::LabelsAdded(labels) => {
            out["labelsAdded"] = json!([{"message": with_labels, "labelIds": labels}]);
        }
        Change::LabelsRemoved(labels) => {
            out["labelsRemoved"] = json!([{"message": with_labels, "labelIds": labels}]);
        }
    }
    out
}

/// Any other path under `/gmail/v1`.
pub async fn unknown_method() -> GoogleApiError {
    GoogleApiError::not_found()
}
