//! Slack actions: post a message, search messages.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Connection, TokenKind};
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::providers::slack::{PostMessage, SlackClient};

/// Slack's limit on `text` in `chat.postMessage`, in characters.
pub const MAX_TEXT_CHARS: usize = 40_000;
/// Longest accepted search query, in characters.
pub const MAX_QUERY_CHARS: usize = 2048;
/// Slack's limit on the number of blocks in one message.
pub const MAX_BLOCKS: usize = 50;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MessageInput {
    pub channel: String,
    pub text: Option<String>,
    pub blocks: Option<Vec<Value>>,
    pub thread_ts: Option<String>,
    pub unfurl_links: Option<bool>,
    pub unfurl_media: Option<bool>,
}

impl MessageInput {
    /// Checks the input against Slack's limits before any call.
    pub fn validate(&self) -> Result<(), ApiError> {
        validate_channel(&self.channel)?;
        if self.text.as_deref().is_none_or(str::is_empty) && self.blocks.is_none() {
            return Err(ApiError::invalid("text", "text or blocks is required"));
        }
        if let Some(text) = &self.text
            && text.chars().count() > MAX_TEXT_CHARS
        {
            return Err(ApiError::invalid(
                "text",
                format!("text must be at most {MAX_TEXT_CHARS} characters"),
            ));
        }
        if let Some(blocks) = &self.blocks {
            if blocks.is_empty() || blocks.len() > MAX_BLOCKS {
                return Err(ApiError::invalid(
                    "blocks",
                    format!("blocks must hold 1 to {MAX_BLOCKS} blocks"),
                ));
            }
            if !blocks.iter().all(Value::is_object) {
                return Err(ApiError::invalid(
                    "blocks",
                    "every block must be a JSON object",
                ));
            }
        }
        if let Some(ts) = &self.thread_ts
            && !is_message_ts(ts)
        {
            return Err(ApiError::invalid(
                "threadTs",
                "threadTs must be a message timestamp such as 1700000000.000100",
            ));
        }
        Ok(())
    }
}

fn validate_channel(channel: &str) -> Result<(), ApiError> {
    let valid = !channel.is_empty()
        && channel.chars().count() <= 256
        && !channel.chars().any(|c| c.is_control() || c.is_whitespace());
    if valid {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "channel",
            "channel must be a channel id such as C0123 or #name",
        ))
    }
}

/// Checks whether `ts` looks like a Slack message timestamp (`seconds.micros`).
fn is_message_ts(ts: &str) -> bool {
    match ts.split_once('.') {
        Some((seconds, fraction)) => {
            !seconds.is_empty()
                && !fraction.is_empty()
                && seconds.len() <= 12
                && fraction.len() <= 9
                && seconds.bytes().all(|b| b.is_ascii_digit())
                && fraction.bytes().all(|b| b.is_ascii_digit())
        }
        None => false,
    }
}

#[derive(Debug, Serialize)]
pub struct MessageOutput {
    pub ok: bool,
    pub channel: String,
    pub ts: String,
}

/// Posts a message with the bot token. Never retried, so it is never posted twice.
pub async fn post_message(
    state: &AppState,
    connection: &Connection,
    input: &MessageInput,
) -> Result<MessageOutput, ApiError> {
    connection.require_any_scope(TokenKind::Main, &["chat:write"])?;
    let blocks = input
        .blocks
        .as_ref()
        .map(|blocks| Value::Array(blocks.clone()));
    let message = PostMessage {
        channel: &input.channel,
        text: input.text.as_deref(),
        blocks: blocks.as_ref(),
        thread_ts: input.thread_ts.as_deref(),
        unfurl_links: input.unfurl_links,
        unfurl_media: input.unfurl_media,
    };
    let client = SlackClient {
        http: &state.http,
        api_url: &state.config.slack.api_url,
    };
    let answer = connection
        .call(state, TokenKind::Main, |token| {
            let client = &client;
            let message = &message;
            async move { client.post_message(&token, message).await }
        })
        .await?;
    let field = |key: &str| {
        answer
            .get(key)
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
    };
    match (field("channel"), field("ts")) {
        (Some(channel), Some(ts)) => Ok(MessageOutput {
            ok: true,
            channel: channel.to_owned(),
            ts: ts.to_owned(),
        }),
        _ => {
            tracing::warn!(
                connection_id = %connection.record.id,
                "chat.postMessage returned ok without channel or ts"
            );
            Err(ApiError::ProviderUnavailable(
                "Slack's chat.postMessage response has no channel or ts".to_owned(),
            ))
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SearchInput {
    pub query: String,
    pub max_results: Option<i64>,
    pub channel: Option<String>,
}

impl SearchInput {
    pub fn validate(&self) -> Result<u32, ApiError> {
        if self.query.trim().is_empty() {
            return Err(ApiError::invalid("query", "query must not be empty"));
        }
        if self.query.chars().count() > MAX_QUERY_CHARS {
            return Err(ApiError::invalid(
                "query",
                format!("query must be at most {MAX_QUERY_CHARS} characters"),
            ));
        }
        if let Some(channel) = &self.channel {
            validate_channel(channel)?;
        }
        match self.max_results {
            None => Ok(10),
            Some(n @ 1..=100) => Ok(n as u32),
            Some(_) => Err(ApiError::invalid(
                "maxResults",
                "maxResults must be between 1 and 100",
            )),
        }
    }

    /// Builds the Slack query, narrowed to the channel when one is given.
    fn slack_query(&self) -> String {
        match self.channel.as_deref() {
            Some(name) if name.starts_with('#') => format!("{} in:{name}", self.query),
            Some(id) if is_channel_id(id) => format!("{} in:<#{id}>", self.query),
            Some(name) => format!("{} in:#{name}", self.query),
            None => self.query.clone(),
        }
    }
}

/// Checks whether `channel` looks like a Slack conversation id (`C…`, `G…` or `D…` and
/// upper-case letters and digits) rather than a channel name, which Slack keeps
/// lower-case.
fn is_channel_id(channel: &str) -> bool {
    channel.len() >= 9
        && channel.starts_with(['C', 'G', 'D'])
        && channel
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

#[derive(Debug, Serialize)]
pub struct SearchMatch {
    pub user: Option<String>,
    pub username: Option<String>,
    pub channel: Option<String>,
    pub text: Option<String>,
    pub ts: Option<String>,
    pub permalink: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct SearchOutput {
    pub messages: Vec<SearchMatch>,
}

/// Searches messages with the user token (Slack allows search only for users).
pub async fn search(
    state: &AppState,
    connection: &Connection,
    input: &SearchInput,
) -> Result<SearchOutput, ApiError> {
    let count = input.validate()?;
    connection.require_any_scope(TokenKind::User, &["search:read"])?;
    let query = input.slack_query();
    let client = SlackClient {
        http: &state.http,
        api_url: &state.config.slack.api_url,
    };
    let answer = connection
        .call(state, TokenKind::User, |token| {
            let client = &client;
            let query = &query;
            async move { client.search_messages(&token, query, count).await }
        })
        .await?;
    let matches = answer
        .pointer("/messages/matches")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let text = |value: &Value, key: &str| value.get(key).and_then(Value::as_str).map(str::to_owned);
    let messages = matches
        .iter()
        .take(count as usize)
        .map(|m| SearchMatch {
            user: text(m, "user"),
            username: text(m, "username"),
            channel: m
                .pointer("/channel/id")
                .and_then(Value::as_str)
                .map(str::to_owned),
            text: text(m, "text"),
            ts: text(m, "ts"),
            permalink: text(m, "permalink"),
        })
        .collect();
    Ok(SearchOutput { messages })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(text: Option<&str>, blocks: Option<usize>) -> MessageInput {
        MessageInput {
            channel: "C0GENERAL".to_owned(),
            text: text.map(str::to_owned),
            blocks: blocks.map(|n| vec![serde_json::json!({"type": "divider"}); n]),
            thread_ts: None,
            unfurl_links: None,
            unfurl_media: None,
        }
    }

    #[test]
    fn text_limit_is_enforced() {
        assert!(
            input(Some(&"a".repeat(MAX_TEXT_CHARS)), None)
                .validate()
                .is_ok()
        );
        assert!(
            input(Some(&"a".repeat(MAX_TEXT_CHARS + 1)), None)
                .validate()
                .is_err()
        );
    }

    #[test]
    fn block_limit_is_enforced() {
        assert!(input(None, Some(MAX_BLOCKS)).validate().is_ok());
        assert!(input(None, Some(MAX_BLOCKS + 1)).validate().is_err());
    }

    #[test]
    fn text_or_blocks_required() {
        assert!(input(None, None).validate().is_err());
        assert!(input(Some(""), None).validate().is_err());
    }

    #[test]
    fn search_channel_by_id_or_name() {
        let search = |channel: &str| SearchInput {
            query: "report".to_owned(),
            max_results: None,
            channel: Some(channel.to_owned()),
        };
        assert_eq!(search("C0GENERAL").slack_query(), "report in:<#C0GENERAL>");
        assert_eq!(search("#general").slack_query(), "report in:#general");
        assert_eq!(search("general").slack_query(), "report in:#general");
        assert_eq!(search("Cafe").slack_query(), "report in:#Cafe");
    }

    #[test]
    fn thread_ts_shape_is_checked() {
        assert!(is_message_ts("1700000000.000100"));
        for bad in ["", "1700000000", ".1", "1.", "abc.def", "1.2.3"] {
            assert!(!is_message_ts(bad), "{bad:?}");
        }
    }
}
