//! Gmail actions: read messages and send a message.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};

use super::{Connection, TokenKind};
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::providers::ProviderError;
use crate::providers::google::client::{Format, GmailClient, is_valid_id};
use crate::providers::google::compose::{
    Mailbox, OutgoingAttachment, OutgoingMessage, build_message, parse_address_list,
    reply_references, reply_subject,
};
use crate::providers::google::decode::{
    Message, body_attachments, decode_message_with_bodies, header,
};

const MAIL_GOOGLE: &str = "https://mail.google.com/";
/// Scopes under which Gmail allows full message reads and search queries.
pub const READ_SCOPES: [&str; 3] = [
    "https://www.googleapis.com/auth/gmail.modify",
    "https://www.googleapis.com/auth/gmail.readonly",
    MAIL_GOOGLE,
];
/// Scopes under which Gmail allows sending.
pub const SEND_SCOPES: [&str; 4] = [
    "https://www.googleapis.com/auth/gmail.send",
    "https://www.googleapis.com/auth/gmail.compose",
    "https://www.googleapis.com/auth/gmail.modify",
    MAIL_GOOGLE,
];
/// Gmail's limit on the size of a sent message, attachments included.
pub const MAX_MESSAGE_BYTES: usize = 35 * 1024 * 1024;
/// Messages larger than this go through the upload endpoint instead of a JSON body.
pub const UPLOAD_THRESHOLD_BYTES: usize = 4 * 1024 * 1024;
/// Longest accepted search query, in characters. Gmail documents no limit; this
/// keeps the request URL well within what servers accept.
pub const MAX_QUERY_CHARS: usize = 2048;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ReadInput {
    pub query: Option<String>,
    pub max_results: Option<i64>,
    pub message_id: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct MessagesOutput {
    pub messages: Vec<Message>,
}

/// Reads one message by id, or the messages matching a Gmail query in list order.
pub async fn read(
    state: &AppState,
    connection: &Connection,
    input: &ReadInput,
) -> Result<MessagesOutput, ApiError> {
    let max_results = input.check_limits()?;
    let query = input
        .query
        .clone()
        .unwrap_or_else(|| "is:unread".to_owned());
    connection.require_any_scope(TokenKind::Main, &READ_SCOPES)?;
    let api_url = &state.config.google.api_url;
    let quota = state.gmail_quota.connection(&connection.record.id);
    let quota = quota.as_ref();
    let messages = connection
        .call(state, TokenKind::Main, |token| {
            let query = &query;
            async move {
                let gmail = GmailClient {
                    http: &state.http,
                    api_url,
                    token: &token,
                    quota,
                };
                match &input.message_id {
                    Some(id) => Ok(vec![fetch_decoded(&gmail, id, &BodyBudget::new()).await?]),
                    None => {
                        let list = gmail.list_messages(query, max_results, None).await?;
                        let ids: Vec<String> = list.messages.into_iter().map(|m| m.id).collect();
                        let (messages, _) =
                            fetch_full(&gmail, &ids, state.config.gmail_fetch_concurrency).await?;
                        Ok(messages)
                    }
                }
            }
        })
        .await?;
    Ok(MessagesOutput { messages })
}

impl ReadInput {
    /// Checks the fields before any connection is looked up; returns the page size.
    pub fn check_limits(&self) -> Result<u32, ApiError> {
        let max_results = bounded(self.max_results, 5, 500, "maxResults")?;
        if self.message_id.is_some() && (self.query.is_some() || self.max_results.is_some()) {
            return Err(ApiError::invalid(
                "messageId",
                "messageId reads one message; send it without query and maxResults",
            ));
        }
        if let Some(query) = &self.query
            && query.chars().count() > MAX_QUERY_CHARS
        {
            return Err(ApiError::invalid(
                "query",
                format!("query must be at most {MAX_QUERY_CHARS} characters"),
            ));
        }
        if let Some(id) = &self.message_id
            && !is_valid_id(id)
        {
            return Err(ApiError::invalid(
                "messageId",
                "messageId is not a valid Gmail message id",
            ));
        }
        Ok(max_results)
    }
}

/// Checks an optional integer against `min..=max`, with a default.
pub fn bounded(value: Option<i64>, default: u32, max: u32, param: &str) -> Result<u32, ApiError> {
    match value {
        None => Ok(default),
        Some(n) if n >= 1 && n <= i64::from(max) => Ok(n as u32),
        Some(_) => Err(ApiError::invalid(
            param,
            format!("{param} must be between 1 and {max}"),
        )),
    }
}

/// Maximum number of text parts fetched by attachment id for one message. Gmail
/// serves a named or very large text part only that way. A part over a limit stays
/// listed under `attachments` instead of being inlined, so any sender's message
/// costs at most a few Gmail calls and a bounded amount of memory.
pub const MAX_FETCHED_BODY_PARTS: usize = 4;
/// Maximum body bytes fetched for one message.
pub const MAX_FETCHED_BODY_BYTES: i64 = 1024 * 1024;
/// Maximum body bytes fetched for all the messages of one request.
pub const MAX_FETCHED_REQUEST_BYTES: i64 = 16 * 1024 * 1024;

/// The body bytes a request may still fetch, shared by its concurrent fetches.
pub struct BodyBudget(std::sync::atomic::AtomicI64);

impl BodyBudget {
    pub fn new() -> Self {
        BodyBudget(std::sync::atomic::AtomicI64::new(MAX_FETCHED_REQUEST_BYTES))
    }

    /// Takes `size` bytes from the budget; false when not enough remain.
    fn take(&self, size: i64) -> bool {
        use std::sync::atomic::Ordering;
        self.0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| {
                (left >= size).then_some(left - size)
            })
            .is_ok()
    }
}

impl Default for BodyBudget {
    fn default() -> Self {
        Self::new()
    }
}

/// Fetches one message in `full` format, with the text parts that Gmail serves only
/// by attachment id (within the limits above), and decodes it off the async
/// workers. A body part that cannot be fetched stays listed as an attachment: only
/// `messages.get` decides whether the message exists.
pub async fn fetch_decoded(
    gmail: &GmailClient<'_>,
    id: &str,
    budget: &BodyBudget,
) -> Result<Message, ProviderError> {
    let message = gmail.get_message(id, Format::Full).await?;
    let mut bodies = HashMap::new();
    let mut message_budget = MAX_FETCHED_BODY_BYTES;
    for part in body_attachments(&message)
        .into_iter()
        .take(MAX_FETCHED_BODY_PARTS)
    {
        if part.size > message_budget || !budget.take(part.size) {
            continue;
        }
        message_budget -= part.size;
        match gmail.get_attachment(&message.id, &part.attachment_id).await {
            Ok(bytes) => {
                bodies.insert(part.attachment_id, bytes);
            }
            Err(error) => {
                tracing::warn!(message_id = %message.id, error = %error, "body part not fetched");
            }
        }
    }
    let decoded =
        tokio::task::spawn_blocking(move || decode_message_with_bodies(&message, &bodies))
            .await
            .map_err(|error| ProviderError::Unavailable(format!("decoding failed: {error}")))?;
    Ok(decoded)
}

/// Fetches full messages in the given order, `concurrency` at a time. Ids that Gmail
/// no longer finds (deleted since they were listed) are skipped and returned apart.
pub async fn fetch_full(
    gmail: &GmailClient<'_>,
    ids: &[String],
    concurrency: usize,
) -> Result<(Vec<Message>, Vec<String>), ProviderError> {
    let budget = BodyBudget::new();
    let budget = &budget;
    let results: Vec<(String, Option<Message>)> = futures::stream::iter(ids.iter().cloned())
        .map(|id| async move {
            match fetch_decoded(gmail, &id, budget).await {
                Ok(message) => Ok((id, Some(message))),
                Err(ProviderError::Rejected { code, .. }) if code == "notFound" => Ok((id, None)),
                Err(error) => Err(error),
            }
        })
        .buffered(concurrency.max(1))
        .try_collect()
        .await?;
    let mut messages = Vec::with_capacity(results.len());
    let mut deleted_ids = Vec::new();
    for (id, message) in results {
        match message {
            Some(message) => messages.push(message),
            None => deleted_ids.push(id),
        }
    }
    Ok((messages, deleted_ids))
}

/// `to`, `cc`, `bcc` and `replyTo`: one comma-separated string or an array of them.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum AddressInput {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AttachmentInput {
    pub filename: String,
    pub mime_type: String,
    pub content_base64: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SendInput {
    pub to: AddressInput,
    pub subject: Option<String>,
    pub body: Option<String>,
    pub html: Option<String>,
    pub cc: Option<AddressInput>,
    pub bcc: Option<AddressInput>,
    pub reply_to: Option<AddressInput>,
    pub thread_id: Option<String>,
    pub in_reply_to: Option<String>,
    pub attachments: Option<Vec<AttachmentInput>>,
}

/// The parsed address fields of a send request.
pub struct Recipients {
    pub to: Vec<Mailbox>,
    pub cc: Vec<Mailbox>,
    pub bcc: Vec<Mailbox>,
    pub reply_to: Vec<Mailbox>,
}

impl SendInput {
    /// Checks every field but the attachment contents, before any connection is
    /// looked up; returns the parsed addresses.
    pub fn check_fields(&self) -> Result<Recipients, ApiError> {
        let to = addresses(Some(&self.to), "to")?;
        if to.is_empty() {
            return Err(ApiError::invalid(
                "to",
                "to must name at least one recipient",
            ));
        }
        let cc = addresses(self.cc.as_ref(), "cc")?;
        let bcc = addresses(self.bcc.as_ref(), "bcc")?;
        let reply_to = addresses(self.reply_to.as_ref(), "replyTo")?;
        if self.body.is_none() && self.html.is_none() {
            return Err(ApiError::invalid("body", "body is required"));
        }
        if self.subject.is_none() && self.in_reply_to.is_none() {
            return Err(ApiError::invalid("subject", "subject is required"));
        }
        for (param, id) in [
            ("threadId", &self.thread_id),
            ("inReplyTo", &self.in_reply_to),
        ] {
            if let Some(id) = id
                && !is_valid_id(id)
            {
                return Err(ApiError::invalid(
                    param,
                    format!("{param} is not a valid Gmail id"),
                ));
            }
        }
        Ok(Recipients {
            to,
            cc,
            bcc,
            reply_to,
        })
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SendOutput {
    pub id: String,
    pub thread_id: Option<String>,
    pub label_ids: Vec<String>,
}

fn addresses(value: Option<&AddressInput>, param: &str) -> Result<Vec<Mailbox>, ApiError> {
    let texts: Vec<&str> = match value {
        None => return Ok(Vec::new()),
        Some(AddressInput::One(text)) => vec![text.as_str()],
        Some(AddressInput::Many(items)) => items.iter().map(String::as_str).collect(),
    };
    let mut mailboxes = Vec::new();
    for text in texts {
        let parsed = parse_address_list(text).map_err(|error| {
            ApiError::invalid(param, format!("{param}: {}", shorten(&error.to_string())))
        })?;
        mailboxes.extend(parsed);
    }
    Ok(mailboxes)
}

/// Cuts an error message that quotes client input to at most 200 characters.
fn shorten(message: &str) -> String {
    const MAX_CHARS: usize = 200;
    if message.chars().count() <= MAX_CHARS {
        return message.to_owned();
    }
    let prefix: String = message.chars().take(MAX_CHARS).collect();
    format!("{prefix}…")
}

fn attachments(inputs: &[AttachmentInput]) -> Result<Vec<OutgoingAttachment>, ApiError> {
    inputs
        .iter()
        .enumerate()
        .map(|(index, input)| {
            let param = |field: &str| format!("attachments[{index}].{field}");
            let name = input.filename.trim();
            if name.is_empty() || name.chars().count() > 255 || name.chars().any(char::is_control) {
                return Err(ApiError::invalid(
                    param("filename"),
                    "filename must be 1 to 255 characters without control characters",
                ));
            }
            if !is_mime_type(&input.mime_type) {
                return Err(ApiError::invalid(
                    param("mimeType"),
                    format!(
                        "{:?} is not a MIME type such as application/pdf",
                        input.mime_type
                    ),
                ));
            }
            let content = decode_base64(&input.content_base64).ok_or_else(|| {
                ApiError::invalid(param("contentBase64"), "contentBase64 is not valid base64")
            })?;
            Ok(OutgoingAttachment {
                filename: name.to_owned(),
                mime_type: input.mime_type.to_ascii_lowercase(),
                content,
            })
        })
        .collect()
}

fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    STANDARD
        .decode(&compact)
        .or_else(|_| URL_SAFE.decode(&compact))
        .or_else(|_| URL_SAFE_NO_PAD.decode(compact.trim_end_matches('=')))
        .ok()
}

fn is_mime_type(text: &str) -> bool {
    let token = |part: &str| {
        !part.is_empty()
            && part.len() <= 127
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    matches!(text.split_once('/'), Some((kind, sub)) if token(kind) && token(sub))
}

/// Builds the message and sends it; a reply is threaded from the parent's headers.
pub async fn send(
    state: &AppState,
    connection: &Connection,
    input: &SendInput,
) -> Result<SendOutput, ApiError> {
    let Recipients {
        to,
        cc,
        bcc,
        reply_to,
    } = input.check_fields()?;
    let attachments = attachments(input.attachments.as_deref().unwrap_or_default())?;
    let attachment_bytes: usize = attachments.iter().map(|a| a.content.len()).sum();
    if attachment_bytes > MAX_MESSAGE_BYTES {
        return Err(ApiError::invalid(
            "attachments",
            too_large_message(attachment_bytes),
        ));
    }
    connection.require_any_scope(TokenKind::Main, &SEND_SCOPES)?;

    let from = connection
        .record
        .account_name
        .as_deref()
        .filter(|name| name.contains('@'))
        .map(|email| Mailbox {
            name: None,
            email: email.to_owned(),
        });
    let message = OutgoingMessage {
        from,
        to,
        cc,
        bcc,
        reply_to,
        subject: input.subject.clone().unwrap_or_default(),
        text: input.body.clone().unwrap_or_default(),
        html: input.html.clone(),
        attachments,
        in_reply_to: None,
        references: None,
    };
    // Building once up front turns bad addresses or attachments into a 400 naming
    // the field, and rejects an oversized message before any call to Gmail.
    let draft = build_message(&message).map_err(|error| ApiError::InvalidRequest {
        param: error.param().map(str::to_owned),
        message: error.to_string(),
    })?;
    if draft.len() > MAX_MESSAGE_BYTES {
        return Err(ApiError::invalid(
            "attachments",
            too_large_message(draft.len()),
        ));
    }
    drop(draft);
    let api_url = &state.config.google.api_url;
    let quota = state.gmail_quota.connection(&connection.record.id);
    let quota = quota.as_ref();
    connection
        .call(state, TokenKind::Main, |token| {
            let mut message = message.clone();
            async move {
                let gmail = GmailClient {
                    http: &state.http,
                    api_url,
                    token: &token,
                    quota,
                };
                let mut thread_id = input.thread_id.clone();
                if let Some(parent_id) = &input.in_reply_to {
                    let parent = gmail.get_message(parent_id, Format::Metadata).await?;
                    if let (Some(given), Some(parent_thread)) = (&thread_id, &parent.thread_id)
                        && given != parent_thread
                    {
                        return Err(ProviderError::InvalidInput {
                            param: "threadId",
                            message: format!(
                                "threadId {given} is not the thread of inReplyTo {parent_id}; \
                                 omit threadId when replying"
                            ),
                        });
                    }
                    apply_reply(&mut message, &parent, input.subject.as_deref());
                    thread_id = parent.thread_id.clone().or(thread_id);
                }
                let raw = build_message(&message).map_err(|error| ProviderError::Rejected {
                    code: "invalid_message".to_owned(),
                    message: error.to_string(),
                })?;
                if raw.len() > MAX_MESSAGE_BYTES {
                    return Err(ProviderError::Rejected {
                        code: "message_too_large".to_owned(),
                        message: too_large_message(raw.len()),
                    });
                }
                let sent = if raw.len() > UPLOAD_THRESHOLD_BYTES {
                    gmail.send_upload(raw, thread_id.as_deref()).await?
                } else {
                    gmail
                        .send_raw(URL_SAFE_NO_PAD.encode(&raw), thread_id.as_deref())
                        .await?
                };
                Ok(SendOutput {
                    id: sent.id,
                    thread_id: sent.thread_id,
                    label_ids: sent.label_ids,
                })
            }
        })
        .await
        .map_err(|error| match error {
            ApiError::ProviderRejected {
                provider_code,
                message,
            } if provider_code == "message_too_large" || provider_code == "invalid_message" => {
                ApiError::invalid("attachments", message)
            }
            other => other,
        })
}

fn too_large_message(size: usize) -> String {
    format!(
        "the message is {size} bytes with its attachments; Gmail accepts at most {MAX_MESSAGE_BYTES} bytes"
    )
}

/// Sets the reply headers and subject from the parent message's own headers.
fn apply_reply(
    message: &mut OutgoingMessage,
    parent: &crate::providers::google::wire::GmailMessage,
    subject: Option<&str>,
) {
    // Gmail keeps a reply in the parent's thread only when the subjects match, so
    // the parent's subject wins. The request's subject is used only when the
    // parent has none.
    let parent_subject = header(parent, "Subject")
        .map(str::trim)
        .filter(|s| !s.is_empty());
    message.subject = reply_subject(parent_subject.or(subject).unwrap_or_default());
    let message_id = header(parent, "Message-ID").and_then(|value| message_ids(value).next());
    if let Some(message_id) = message_id {
        let clean = |name: &str| {
            let ids: Vec<&str> = header(parent, name)
                .map(message_ids)
                .into_iter()
                .flatten()
                .collect();
            (!ids.is_empty()).then(|| ids.join(" "))
        };
        let references = clean("References");
        let in_reply_to = clean("In-Reply-To");
        message.in_reply_to = Some(message_id.to_owned());
        message.references = Some(reply_references(
            references.as_deref(),
            in_reply_to.as_deref(),
            message_id,
        ));
    }
}

/// Returns the well-formed message ids (`<left@right>`) in a header value. Ids without
/// angle brackets or `@`, and comments around them, are left out, so that a
/// parent with sloppy headers can still be replied to.
fn message_ids(value: &str) -> impl Iterator<Item = &str> {
    let mut rest = value;
    std::iter::from_fn(move || {
        loop {
            let start = rest.find('<')?;
            let end = start + rest[start..].find('>')?;
            let candidate = &rest[start..=end];
            rest = &rest[end + 1..];
            let inner = &candidate[1..candidate.len() - 1];
            let valid = inner.contains('@')
                && !inner.starts_with('@')
                && !inner.ends_with('@')
                && inner
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && !b"<>\\\"()[],;:".contains(&b));
            if valid {
                return Some(candidate);
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sloppy_message_ids_are_left_out() {
        let ids: Vec<&str> = message_ids("<abc> <def@example.com> 12345 <x@y> (c)").collect();
        assert_eq!(ids, vec!["<def@example.com>", "<x@y>"]);
        assert_eq!(
            message_ids("<p3@example.com> (sent by foo)").next(),
            Some("<p3@example.com>")
        );
        assert_eq!(message_ids("12345").next(), None);
        assert_eq!(message_ids("<a b@c>").next(), None);
    }

    #[test]
    fn mime_types_are_checked() {
        assert!(is_mime_type("application/pdf"));
        assert!(is_mime_type(
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        ));
        for bad in [
            "",
            "pdf",
            "application/",
            "/pdf",
            "text/plain\r\nX-Evil: 1",
            "a/b c",
        ] {
            assert!(!is_mime_type(bad), "{bad:?}");
        }
    }

    #[test]
    fn base64_variants_decode() {
        assert_eq!(decode_base64("aGk=").unwrap(), b"hi");
        assert_eq!(decode_base64("aGk").unwrap(), b"hi");
        assert_eq!(decode_base64("aG\nk=").unwrap(), b"hi");
        assert_eq!(decode_base64("-_8=").unwrap(), vec![0xfb, 0xff]);
        assert!(decode_base64("!!!").is_none());
    }

    #[test]
    fn bounds_are_checked() {
        assert_eq!(bounded(None, 5, 500, "maxResults").unwrap(), 5);
        assert_eq!(bounded(Some(500), 5, 500, "maxResults").unwrap(), 500);
        assert!(bounded(Some(0), 5, 500, "maxResults").is_err());
        assert!(bounded(Some(501), 5, 500, "maxResults").is_err());
    }
}
