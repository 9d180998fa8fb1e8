//! Gmail sync: an initial run over the last N days, then incremental runs over
//! Gmail's history, both paged by the client with opaque page tokens.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use serde::{Deserialize, Serialize};

use super::gmail::{READ_SCOPES, bounded, fetch_full};
use super::{Connection, TokenKind};
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::providers::ProviderError;
use crate::providers::google::client::GmailClient;
use crate::providers::google::decode::Message;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SyncInput {
    pub mode: String,
    pub sync_period_days: Option<i64>,
    pub max_results: Option<i64>,
    pub page_token: Option<String>,
    pub history_id: Option<String>,
}

#[derive(Debug, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct SyncOutput {
    pub messages: Vec<Message>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub deleted_message_ids: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reset_reason: Option<&'static str>,
}

/// The position where a paged run continues, sent to clients as base64url JSON.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Cursor {
    /// `initial` or `incremental`.
    mode: String,
    /// Gmail's own page token of the next page.
    gmail: Option<String>,
    /// Initial: the mailbox history id when the run began. Incremental: the start id.
    history: String,
    /// Initial: lower bound of the run, seconds since the epoch.
    #[serde(default)]
    after: i64,
    /// Incremental: the newest history id seen on earlier pages.
    #[serde(default)]
    newest: Option<String>,
    /// Set when an expired history id turned the run into an initial sync.
    #[serde(default)]
    reset: bool,
    /// The connection the run belongs to: a token is refused on any other.
    #[serde(default)]
    connection: String,
}

impl Cursor {
    fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    fn decode(token: &str) -> Result<Cursor, ApiError> {
        let invalid = || ApiError::invalid("pageToken", "pageToken is not one this gateway issued");
        let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
        let cursor: Cursor = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
        if !is_history_id(&cursor.history)
            || cursor.newest.as_deref().is_some_and(|n| !is_history_id(n))
        {
            return Err(invalid());
        }
        Ok(cursor)
    }
}

/// Checks whether `text` is a Gmail history id: an unsigned 64-bit number in decimal.
fn is_history_id(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) && text.parse::<u64>().is_ok()
}

/// Maps Gmail's rejection of the page token carried in our cursor to a 400 on
/// `pageToken`: Gmail rejects only tokens that were altered or have expired.
fn page_token_error(error: ProviderError, cursor: &Cursor) -> ProviderError {
    match error {
        ProviderError::Rejected { code, .. }
            if cursor.gmail.is_some()
                && matches!(
                    code.as_str(),
                    "invalidArgument" | "badRequest" | "INVALID_ARGUMENT"
                ) =>
        {
            ProviderError::InvalidInput {
                param: "pageToken",
                message: "Gmail no longer accepts this pageToken; start a new run".to_owned(),
            }
        }
        other => other,
    }
}

/// A checked sync request.
struct SyncPlan {
    days: u32,
    page_size: u32,
    cursor: Option<Cursor>,
    start: Option<String>,
}

impl SyncInput {
    /// Checks every field before any connection is looked up.
    pub fn check(&self) -> Result<(), ApiError> {
        self.plan().map(drop)
    }

    fn plan(&self) -> Result<SyncPlan, ApiError> {
        let input = self;
        let days = bounded(input.sync_period_days, 90, 3650, "syncPeriodDays")?;
        let page_size = bounded(input.max_results, 100, 500, "maxResults")?;
        let cursor = input
            .page_token
            .as_deref()
            .map(Cursor::decode)
            .transpose()?;
        match input.mode.as_str() {
            "initial" | "incremental" => {}
            _ => {
                return Err(ApiError::invalid(
                    "mode",
                    "mode must be initial or incremental",
                ));
            }
        }
        if let Some(cursor) = &cursor
            && cursor.mode != input.mode
            && !cursor.reset
        {
            return Err(ApiError::invalid(
                "pageToken",
                "pageToken belongs to a sync of another mode",
            ));
        }
        let start = match (input.mode.as_str(), &input.history_id) {
            ("incremental", Some(id)) if is_history_id(id) => Some(id.clone()),
            ("incremental", Some(_)) => {
                return Err(ApiError::invalid(
                    "historyId",
                    "historyId must be a Gmail history id",
                ));
            }
            ("incremental", None) if cursor.is_none() => {
                return Err(ApiError::invalid(
                    "historyId",
                    "historyId is required for incremental sync",
                ));
            }
            ("initial", Some(_)) => {
                return Err(ApiError::invalid(
                    "historyId",
                    "historyId applies to incremental sync only; omit it for mode initial",
                ));
            }
            _ => None,
        };
        Ok(SyncPlan {
            days,
            page_size,
            cursor,
            start,
        })
    }
}

/// Runs one page of a sync.
pub async fn sync(
    state: &AppState,
    connection: &Connection,
    input: &SyncInput,
) -> Result<SyncOutput, ApiError> {
    let SyncPlan {
        days,
        page_size,
        cursor,
        start,
    } = input.plan()?;
    let connection_id = connection.record.id.as_str();
    if cursor
        .as_ref()
        .is_some_and(|c| c.connection != connection_id)
    {
        return Err(ApiError::invalid(
            "pageToken",
            "pageToken belongs to another connection's sync; start a new run",
        ));
    }
    connection.require_any_scope(TokenKind::Main, &READ_SCOPES)?;
    let api_url = &state.config.google.api_url;
    let quota = state.gmail_quota.connection(&connection.record.id);
    let quota = quota.as_ref();
    let concurrency = state.config.gmail_fetch_concurrency;
    connection
        .call(state, TokenKind::Main, |token| {
            let cursor = cursor.clone();
            let start = start.clone();
            async move {
                let gmail = GmailClient {
                    http: &state.http,
                    api_url,
                    token: &token,
                    quota,
                };
                match cursor {
                    Some(cursor) if cursor.mode == "initial" => {
                        initial_page(&gmail, cursor, page_size, concurrency).await
                    }
                    Some(cursor) => {
                        incremental_page(&gmail, cursor, page_size, days, concurrency).await
                    }
                    None => match start {
                        Some(start) => {
                            let cursor = Cursor {
                                mode: "incremental".to_owned(),
                                gmail: None,
                                history: start,
                                after: 0,
                                newest: None,
                                reset: false,
                                connection: connection_id.to_owned(),
                            };
                            incremental_page(&gmail, cursor, page_size, days, concurrency).await
                        }
                        None => {
                            begin_initial(
                                &gmail,
                                days,
                                page_size,
                                false,
                                connection_id,
                                concurrency,
                            )
                            .await
                        }
                    },
                }
            }
        })
        .await
}

async fn begin_initial(
    gmail: &GmailClient<'_>,
    days: u32,
    page_size: u32,
    reset: bool,
    connection_id: &str,
    concurrency: usize,
) -> Result<SyncOutput, ProviderError> {
    let profile = gmail.profile().await?;
    let history = profile.history_id.unwrap_or_default();
    let after = Utc::now().timestamp() - i64::from(days) * 86_400;
    let cursor = Cursor {
        mode: "initial".to_owned(),
        gmail: None,
        history,
        after,
        newest: None,
        reset,
        connection: connection_id.to_owned(),
    };
    initial_page(gmail, cursor, page_size, concurrency).await
}

async fn initial_page(
    gmail: &GmailClient<'_>,
    cursor: Cursor,
    page_size: u32,
    concurrency: usize,
) -> Result<SyncOutput, ProviderError> {
    let query = format!("after:{}", cursor.after);
    let list = gmail
        .list_messages(&query, page_size, cursor.gmail.as_deref())
        .await
        .map_err(|error| page_token_error(error, &cursor))?;
    let ids: Vec<String> = list.messages.into_iter().map(|m| m.id).collect();
    let (messages, _) = fetch_full(gmail, &ids, concurrency).await?;
    let next_page_token = list.next_page_token.map(|gmail| {
        Cursor {
            gmail: Some(gmail),
            ..cursor.clone()
        }
        .encode()
    });
    Ok(SyncOutput {
        messages,
        deleted_message_ids: Vec::new(),
        history_id: Some(cursor.history),
        next_page_token,
        reset_reason: cursor.reset.then_some("history_expired"),
    })
}

async fn incremental_page(
    gmail: &GmailClient<'_>,
    cursor: Cursor,
    page_size: u32,
    days: u32,
    concurrency: usize,
) -> Result<SyncOutput, ProviderError> {
    let page = match gmail
        .list_history(&cursor.history, page_size, cursor.gmail.as_deref())
        .await
    {
        Ok(page) => page,
        Err(ProviderError::Rejected { code, .. }) if code == "notFound" => {
            tracing::info!(start = %cursor.history, "history id expired; running an initial sync");
            return begin_initial(
                gmail,
                days,
                page_size,
                true,
                &cursor.connection,
                concurrency,
            )
            .await;
        }
        Err(error) => return Err(page_token_error(error, &cursor)),
    };
    let changes = collect_changes(&page.history);
    let (messages, gone) = fetch_full(gmail, &changes.changed, concurrency).await?;
    let mut deleted = changes.deleted;
    deleted.extend(gone);

    let newest = [cursor.newest.clone(), page.history_id.clone()]
        .into_iter()
        .chain(page.history.iter().map(|h| Some(h.id.clone())))
        .flatten()
        .filter(|id| is_history_id(id))
        .max_by_key(|id| id.parse::<u64>().unwrap_or(0));
    let (history_id, next_page_token) = match page.next_page_token {
        Some(next) => (
            None,
            Some(
                Cursor {
                    gmail: Some(next),
                    newest,
                    ..cursor
                }
                .encode(),
            ),
        ),
        None => (newest.or(Some(cursor.history)), None),
    };
    Ok(SyncOutput {
        messages,
        deleted_message_ids: deleted,
        history_id,
        next_page_token,
        reset_reason: None,
    })
}

/// Message ids of one history page: changed (added or relabelled) and deleted,
/// each once, in order of first appearance.
#[derive(Debug, Default, PartialEq)]
struct Changes {
    changed: Vec<String>,
    deleted: Vec<String>,
}

fn collect_changes(history: &[crate::providers::google::wire::History]) -> Changes {
    let mut changes = Changes::default();
    for record in history {
        let touched = record
            .messages_added
            .iter()
            .map(|m| &m.message.id)
            .chain(record.labels_added.iter().map(|l| &l.message.id))
            .chain(record.labels_removed.iter().map(|l| &l.message.id));
        for id in touched {
            if !changes.changed.contains(id) && !changes.deleted.contains(id) {
                changes.changed.push(id.clone());
            }
        }
        for deleted in &record.messages_deleted {
            let id = &deleted.message.id;
            changes.changed.retain(|changed| changed != id);
            if !changes.deleted.contains(id) {
                changes.deleted.push(id.clone());
            }
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips() {
        let cursor = Cursor {
            mode: "initial".to_owned(),
            gmail: Some("abc".to_owned()),
            history: "1234".to_owned(),
            after: 1_700_000_000,
            newest: None,
            reset: true,
            connection: "conn_1".to_owned(),
        };
        assert_eq!(Cursor::decode(&cursor.encode()).unwrap(), cursor);
    }

    #[test]
    fn foreign_page_tokens_are_rejected() {
        for bad in [
            "",
            "not-base64!",
            "e30",
            &URL_SAFE_NO_PAD.encode(r#"{"mode":"initial","history":"x"}"#),
        ] {
            assert!(Cursor::decode(bad).is_err(), "{bad:?}");
        }
    }
}
