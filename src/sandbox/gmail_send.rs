//! `messages.send`, both as JSON `{"raw"}` and through the media upload endpoint
//! (`uploadType=media` and `uploadType=multipart`), and delivery into the sandbox's mailboxes.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, header};
use axum::response::IntoResponse;
use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use serde_json::{Value, json};

use super::gmail::{GmailResult, SEND_MESSAGE, authenticate};
use super::google_error::GoogleApiError;
use super::mailbox::base_subject;
use super::mime::{Mailbox as Address, ParsedEmail, parse_email};
use super::params;
use super::state::{SharedState, random_token};

/// Gmail's size limit for a sent message: 35 MB, as `maxSize` in the discovery document.
pub const MAX_MESSAGE_BYTES: usize = 36_700_160;

/// `POST /gmail/v1/users/{userId}/messages/send` with a JSON body.
pub async fn send_json(
    State(state): State<SharedState>,
    Path(user_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> GmailResult {
    let caller = authenticate(&state, &headers, &user_id, SEND_MESSAGE)?;
    let request: Value = serde_json::from_slice(&body).map_err(|error| {
        GoogleApiError::invalid_argument(&format!("Invalid JSON payload received. {error}"))
    })?;
    let Some(raw_text) = request
        .get("raw")
        .and_then(Value::as_str)
        .filter(|r| !r.is_empty())
    else {
        return Err(GoogleApiError::invalid_argument(
            "'raw' RFC822 payload message string or uploading message via /upload/* URL required",
        ));
    };
    let raw = decode_bytes_field(raw_text).ok_or_else(|| {
        GoogleApiError::invalid_argument(
            "Invalid value at 'message.raw' (TYPE_BYTES), Base64 decoding failed",
        )
    })?;
    if raw.len() > MAX_MESSAGE_BYTES {
        return Err(GoogleApiError::invalid_argument(&format!(
            "Request payload size exceeds the limit: {MAX_MESSAGE_BYTES} bytes."
        )));
    }
    let thread_id = request
        .get("threadId")
        .and_then(Value::as_str)
        .map(str::to_string);
    let sent = deliver(&state, &caller.account, raw, thread_id)?;
    Ok(Json(sent).into_response())
}

/// `POST /upload/gmail/v1/users/{userId}/messages/send?uploadType=media|multipart`.
pub async fn send_upload(
    State(state): State<SharedState>,
    Path(user_id): Path<String>,
    headers: HeaderMap,
    RawQuery(raw_query): RawQuery,
    body: Bytes,
) -> GmailResult {
    let caller = authenticate(&state, &headers, &user_id, SEND_MESSAGE)?;
    let query = params::map(raw_query.unwrap_or_default().as_bytes());
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let (raw, thread_id) = match query.get("uploadType").map(String::as_str) {
        Some("media") => {
            check_media_type(&content_type)?;
            (body.to_vec(), None)
        }
        Some("multipart") => split_multipart_upload(&content_type, &body)?,
        Some(other) => {
            return Err(GoogleApiError::invalid_argument(&format!(
                "Invalid upload type: {other}. The sandbox supports media and multipart."
            )));
        }
        None => {
            return Err(GoogleApiError::invalid_argument(
                "Missing uploadType parameter",
            ));
        }
    };
    if raw.len() > MAX_MESSAGE_BYTES {
        return Err(GoogleApiError::upload_too_large(MAX_MESSAGE_BYTES));
    }
    let sent = deliver(&state, &caller.account, raw, thread_id)?;
    Ok(Json(sent).into_response())
}

/// Checks that the media type is `message/*`, the only type the upload endpoint accepts.
fn check_media_type(content_type: &str) -> Result<(), GoogleApiError> {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if essence.starts_with("message/") {
        Ok(())
    } else {
        Err(GoogleApiError::invalid_argument(&format!(
            "Media type '{essence}' is not supported. Valid media types: [message/*]"
        )))
    }
}

/// Splits a `multipart/related` upload into the message bytes and the `threadId` from the
/// JSON metadata part.
fn split_multipart_upload(
    content_type: &str,
    body: &[u8],
) -> Result<(Vec<u8>, Option<String>), GoogleApiError> {
    let invalid =
        |why: &str| GoogleApiError::invalid_argument(&format!("Invalid multipart request: {why}"));
    let boundary = content_type
        .split(';')
        .skip(1)
        .filter_map(|param| param.split_once('='))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("boundary"))
        .map(|(_, value)| value.trim().trim_matches('"').to_string())
        .ok_or_else(|| invalid("missing boundary"))?;
    let parts = multipart_parts(body, &boundary);
    let [metadata, message, ..] = parts.as_slice() else {
        return Err(invalid("expected a metadata part and a media part"));
    };
    let metadata: Value = if metadata.1.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice(&metadata.1).map_err(|_| invalid("metadata part is not JSON"))?
    };
    check_media_type(&message.0)?;
    let thread_id = metadata
        .get("threadId")
        .and_then(Value::as_str)
        .map(str::to_string);
    Ok((message.1.clone(), thread_id))
}

/// Splits a multipart body into (Content-Type, body) pairs.
fn multipart_parts(body: &[u8], boundary: &str) -> Vec<(String, Vec<u8>)> {
    let delimiter = format!("--{boundary}");
    let delimiter = delimiter.as_bytes();
    let mut positions = Vec::new();
    let mut start = 0;
    while let Some(offset) = find(body.get(start..).unwrap_or_default(), delimiter) {
        positions.push(start + offset);
        start += offset + delimiter.len();
    }
    positions
        .windows(2)
        .filter_map(|pair| {
            let (from, to) = (pair.first()? + delimiter.len(), *pair.get(1)?);
            let section = body.get(from..to)?;
            let section = section
                .strip_prefix(b"\r\n")
                .or_else(|| section.strip_prefix(b"\n"))
                .unwrap_or(section);
            let section = section
                .strip_suffix(b"\r\n")
                .or_else(|| section.strip_suffix(b"\n"))
                .unwrap_or(section);
            let (head, content) = split_head(section);
            let content_type = String::from_utf8_lossy(head)
                .lines()
                .filter_map(|line| line.split_once(':'))
                .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-type"))
                .map(|(_, value)| value.trim().to_string())
                .unwrap_or_default();
            Some((content_type, content.to_vec()))
        })
        .collect()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

fn split_head(section: &[u8]) -> (&[u8], &[u8]) {
    if let Some(position) = find(section, b"\r\n\r\n") {
        return (
            section.get(..position).unwrap_or_default(),
            section.get(position + 4..).unwrap_or_default(),
        );
    }
    if let Some(position) = find(section, b"\n\n") {
        return (
            section.get(..position).unwrap_or_default(),
            section.get(position + 2..).unwrap_or_default(),
        );
    }
    (section, &[])
}

/// Decodes a protobuf JSON `bytes` field, which may be base64 or base64url, padded or not.
fn decode_bytes_field(text: &str) -> Option<Vec<u8>> {
    let normalized: String = text
        .trim_end_matches('=')
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            other => other,
        })
        .collect();
    STANDARD_NO_PAD.decode(normalized).ok()
}

/// Returns whether an address has a local part and a domain.
fn is_valid_address(address: &str) -> bool {
    match address.rsplit_once('@') {
        Some((local, domain)) => {
            !local.is_empty() && domain.contains('.') && !address.contains(char::is_whitespace)
        }
        None => false,
    }
}

/// Checks the recipients as Gmail does: a present To, Cc or Bcc header must hold a valid
/// address, and at least one recipient is required.
fn check_recipients(parsed: &ParsedEmail) -> Result<Vec<String>, GoogleApiError> {
    let fields: [(&str, &str, &[Address]); 3] = [
        ("to", "To", &parsed.to),
        ("cc", "Cc", &parsed.cc),
        ("bcc", "Bcc", &parsed.bcc),
    ];
    let mut recipients = Vec::new();
    for (key, name, addresses) in fields {
        let present = parsed.header_names.iter().any(|header| header == key);
        if !present {
            continue;
        }
        if addresses.is_empty() || addresses.iter().any(|a| !is_valid_address(&a.email)) {
            return Err(GoogleApiError::invalid_argument(&format!(
                "Invalid {name} header"
            )));
        }
        recipients.extend(addresses.iter().map(|a| a.email.to_lowercase()));
    }
    if recipients.is_empty() {
        return Err(GoogleApiError::invalid_argument(
            "Recipient address required",
        ));
    }
    Ok(recipients)
}

/// Adds the From, Date and Message-ID headers that Gmail fills in when a message lacks them.
fn complete_headers(raw: Vec<u8>, parsed: &ParsedEmail, account: &str) -> Vec<u8> {
    let mut added = String::new();
    if !parsed.header_names.iter().any(|h| h == "from") {
        added.push_str(&format!("From: {account}\r\n"));
    }
    if !parsed.header_names.iter().any(|h| h == "date") {
        added.push_str(&format!("Date: {}\r\n", chrono::Utc::now().to_rfc2822()));
    }
    if !parsed.header_names.iter().any(|h| h == "message-id") {
        added.push_str(&format!(
            "Message-ID: <{}@mail.gmail.com>\r\n",
            random_token(32)
        ));
    }
    if added.is_empty() {
        return raw;
    }
    let mut out = added.into_bytes();
    out.extend_from_slice(&raw);
    out
}

/// Stores a sent message in the sender's mailbox (labels SENT, plus INBOX and UNREAD when
/// it is addressed to the sender) and in the mailbox of every other sandbox account it is
/// addressed to. Returns Gmail's `{"id","threadId","labelIds"}`.
fn deliver(
    state: &SharedState,
    account: &str,
    raw: Vec<u8>,
    thread_id: Option<String>,
) -> Result<Value, GoogleApiError> {
    let parsed = parse_email(&raw)
        .ok_or_else(|| GoogleApiError::invalid_argument("Recipient address required"))?;
    let recipients = check_recipients(&parsed)?;
    let raw = complete_headers(raw, &parsed, account);
    let parsed = parse_email(&raw)
        .ok_or_else(|| GoogleApiError::invalid_argument("Recipient address required"))?;
    let now_ms = chrono::Utc::now().timestamp_millis();

    let mut inner = state.lock();
    let google = &mut inner.google;
    let sender = google
        .accounts
        .get_mut(account)
        .ok_or_else(GoogleApiError::not_found)?;
    let thread = match thread_id {
        Some(requested) => Some(resolve_thread(&sender.mailbox, &requested, &parsed)?),
        None => None,
    }
    .flatten();
    let mut labels = vec!["SENT".to_string()];
    let to_self = recipients.iter().any(|r| r == account);
    if to_self {
        labels.extend(["INBOX".to_string(), "UNREAD".to_string()]);
    }
    let stored = sender
        .mailbox
        .insert(raw.clone(), parsed.clone(), labels, now_ms, thread);
    let answer = json!({"id": stored.id, "threadId": stored.thread_id, "labelIds": stored.labels});

    let mut others: Vec<&String> = recipients.iter().filter(|r| *r != account).collect();
    others.sort();
    others.dedup();
    for recipient in others {
        if let Some(other) = google.accounts.get_mut(recipient.as_str()) {
            let inbox = vec!["INBOX".to_string(), "UNREAD".to_string()];
            other
                .mailbox
                .insert(raw.clone(), parsed.clone(), inbox, now_ms, None);
        }
    }
    Ok(answer)
}

/// Decides the thread of a message sent with `threadId`. Gmail keeps the message in that
/// thread only when its References or In-Reply-To name a message of the thread and the
/// subjects match. Otherwise it starts a new thread (`Ok(None)`). An unknown thread is 404.
fn resolve_thread(
    mailbox: &super::mailbox::Mailbox,
    thread_id: &str,
    parsed: &ParsedEmail,
) -> Result<Option<String>, GoogleApiError> {
    let members: Vec<_> = mailbox
        .messages()
        .filter(|m| m.thread_id == thread_id)
        .collect();
    if members.is_empty() {
        return Err(GoogleApiError::not_found());
    }
    let referenced = members.iter().any(|member| {
        member
            .parsed
            .message_id
            .as_ref()
            .is_some_and(|id| parsed.thread_refs.contains(id))
    });
    let subject = base_subject(&parsed.subject);
    let same_subject = members
        .iter()
        .any(|member| base_subject(&member.parsed.subject) == subject);
    Ok((referenced && same_subject).then(|| thread_id.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_field_accepts_both_alphabets() {
        let expected = b"\xfb\xff\xbfhi".to_vec();
        assert_eq!(decode_bytes_field("-_-_aGk="), Some(expected.clone()));
        assert_eq!(decode_bytes_field("+/+/aGk"), Some(expected));
        assert_eq!(decode_bytes_field("not base64!"), None);
    }

    #[test]
    fn subject_prefixes_are_ignored() {
        assert_eq!(base_subject("Re: RE: Fwd: Plans"), "plans");
        assert_eq!(base_subject("plans"), "plans");
        assert_ne!(base_subject("Re: Plans"), base_subject("Other"));
    }

    #[test]
    fn recipients_are_required() {
        let no_recipient =
            parse_email(b"From: a@example.com\r\nSubject: x\r\n\r\nhi").expect("parses");
        let error = check_recipients(&no_recipient).expect_err("no recipient");
        assert_eq!(error.message, "Recipient address required");

        let bad_to =
            parse_email(b"From: a@example.com\r\nTo: not an address\r\n\r\nhi").expect("parses");
        let error = check_recipients(&bad_to).expect_err("invalid To");
        assert_eq!(error.message, "Invalid To header");

        let good = parse_email(b"To: Bob <Bob@Example.com>\r\nBcc: c@example.org\r\n\r\nhi")
            .expect("parses");
        let recipients = check_recipients(&good).expect("valid");
        assert_eq!(recipients, vec!["bob@example.com", "c@example.org"]);
    }

    #[test]
    fn multipart_upload_is_split() {
        let body = b"--xyz\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{\"threadId\":\"abc\"}\r\n--xyz\r\nContent-Type: message/rfc822\r\n\r\nTo: b@example.com\r\n\r\nhello\r\n--xyz--\r\n";
        let (raw, thread) = split_multipart_upload("multipart/related; boundary=\"xyz\"", body)
            .expect("valid upload");
        assert_eq!(raw, b"To: b@example.com\r\n\r\nhello".to_vec());
        assert_eq!(thread.as_deref(), Some("abc"));
    }

    #[test]
    fn media_type_must_be_message() {
        assert!(check_media_type("message/rfc822").is_ok());
        assert!(check_media_type("text/plain; charset=utf-8").is_err());
    }
}
