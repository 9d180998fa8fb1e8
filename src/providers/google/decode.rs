//! Decoding of a Gmail `Message` resource (format `full`) into Patchbay's message shape.
//!
//! Gmail hands out each part's body as base64url of the bytes after the transfer encoding is
//! undone, still in the charset that the part's `Content-Type` names: Gmail does not
//! transcode. Header values usually arrive with RFC 2047 words already decoded, but not
//! always, so this module decodes leftovers too.

use std::collections::{BTreeMap, HashMap};

use base64::Engine;
use chrono::{DateTime, SecondsFormat, Utc};
use encoding_rs::{Encoding, UTF_8};
use mail_parser::parsers::MessageStream;
use mail_parser::{Address, HeaderValue};
use serde::Serialize;

use super::encoded_word::{decode_encoded_words, quote_encoded_words};
use super::mime_params;
use super::wire::{GmailMessage, MessagePart, MessagePartHeader};
pub(crate) use body_text::sniff_html_charset;
use body_text::unwrap_flowed;
use display_names::quote_display_names;

/// Maximum depth of nested MIME parts that the decoder walks. Deeper parts are ignored.
const MAX_PART_DEPTH: usize = 64;

/// Line width for the plain-text rendering of an HTML body, wide so that paragraphs are
/// rarely wrapped.
const HTML_TEXT_WIDTH: usize = 1000;

/// A message as the gateway returns it (the `Message` object of the HTTP API).
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    pub id: String,
    pub thread_id: Option<String>,
    pub subject: Option<String>,
    pub snippet: String,
    /// Plain text with `\n` line ends: every inline `text/plain` part in order, joined by a
    /// blank line. A body part that has only HTML contributes a rendering of it.
    pub body_text: Option<String>,
    /// Every inline `text/html` part in order, joined by a blank line, with `\n` line ends.
    pub body_html: Option<String>,
    pub from: Option<EmailAddress>,
    pub to: Vec<EmailAddress>,
    pub cc: Vec<EmailAddress>,
    pub bcc: Vec<EmailAddress>,
    pub reply_to: Vec<EmailAddress>,
    /// RFC 3339 in UTC, such as `2026-12-01T09:30:00Z`.
    pub date: Option<String>,
    pub is_read: bool,
    pub labels: Vec<String>,
    pub headers: BTreeMap<String, String>,
    pub attachments: Vec<AttachmentInfo>,
}

/// One mailbox of an address header.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EmailAddress {
    pub email: String,
    pub name: Option<String>,
}

/// An attachment's metadata; its content is fetched by `attachmentId`.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AttachmentInfo {
    pub attachment_id: Option<String>,
    pub filename: String,
    pub mime_type: String,
    /// Size of the decoded content in bytes, as Gmail reports it.
    pub size: i64,
}

/// Errors of [`decode_base64url`].
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DecodeError {
    #[error("invalid base64url data: {0}")]
    InvalidBase64(String),
}

/// Decodes Gmail's base64url, with or without `=` padding. The standard alphabet
/// (`+`, `/`) and whitespace such as line breaks are accepted too.
pub fn decode_base64url(data: &str) -> Result<Vec<u8>, DecodeError> {
    let normalized: String = data
        .chars()
        .filter(|ch| !ch.is_ascii_whitespace())
        .map(|ch| match ch {
            '+' => '-',
            '/' => '_',
            other => other,
        })
        .collect();
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::URL_SAFE,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(true),
    );
    engine
        .decode(normalized.trim_end_matches('='))
        .map_err(|error| DecodeError::InvalidBase64(error.to_string()))
}

/// Decodes bytes in the named charset to a string. A label that encoding_rs does not know
/// (or none) decodes as UTF-8; invalid sequences become U+FFFD. A byte order mark is
/// removed, and one at the start selects its own encoding.
pub fn decode_text(bytes: &[u8], charset: Option<&str>) -> String {
    let encoding = charset.and_then(encoding_for_label).unwrap_or(UTF_8);
    let (text, _, _) = encoding.decode(bytes);
    match text.strip_prefix('\u{feff}') {
        Some(stripped) => stripped.to_string(),
        None => text.into_owned(),
    }
}

/// Looks up a charset label: quotes, surrounding whitespace, an RFC 2231 language suffix
/// and case are ignored. Labels that encode to the WHATWG "replacement" encoding, such as
/// `iso-2022-kr`, are treated as unknown so their text is not lost.
// NOTE: encoding_rs has no UTF-7, so a `charset=utf-7` body decodes as UTF-8 and shows its
// `+…-` escapes literally.
fn encoding_for_label(label: &str) -> Option<&'static Encoding> {
    let label = label
        .trim()
        .trim_matches(|ch| ch == '"' || ch == '\'')
        .trim();
    let label = label.split('*').next().unwrap_or(label);
    let alias = match label.to_ascii_lowercase().as_str() {
        "cp932" | "ms932" | "x-ms-cp932" | "sjis" => "shift_jis",
        "cp936" | "ms936" => "gbk",
        "cp949" | "ms949" | "uhc" => "euc-kr",
        "cp950" | "ms950" => "big5",
        "utf8" | "unicode-1-1-utf-8" => "utf-8",
        _ => label,
    };
    Encoding::for_label_no_replacement(alias.as_bytes())
}

/// Returns the first value of header `name` (matched case-insensitively) of the message's
/// root part, such as its `Message-ID`. A message fetched in format `raw` or `minimal` has
/// no parsed headers, so this returns `None` for it.
pub fn header<'a>(message: &'a GmailMessage, name: &str) -> Option<&'a str> {
    let payload = message.payload.as_ref()?;
    find_header(&payload.headers, name)
}

fn find_header<'a>(headers: &'a [MessagePartHeader], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|header| header.name.eq_ignore_ascii_case(name))
        .map(|header| header.value.as_str())
}

/// Decodes a Gmail message into Patchbay's message shape, best effort: a missing or
/// malformed piece leaves its field empty and never fails the whole message. A body part
/// that Gmail serves only by `attachmentId` is listed in `attachments`. Use
/// [`decode_message_with_bodies`] to read it as a body.
pub fn decode_message(message: &GmailMessage) -> Message {
    decode_message_with_bodies(message, &HashMap::new())
}

/// A text part that is a message body but whose content Gmail returns only by
/// `attachmentId`: a part with a file name, or a large one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyAttachment {
    pub attachment_id: String,
    /// Size of the content in bytes, as Gmail reports it.
    pub size: i64,
}

/// Lists the body parts of a message that must be fetched with `messages.attachments.get`
/// before [`decode_message_with_bodies`] can read them, in document order.
pub fn body_attachments(message: &GmailMessage) -> Vec<BodyAttachment> {
    let mut found = Vec::new();
    if let Some(payload) = &message.payload {
        find_body_attachments(payload, 0, &mut found);
    }
    found
}

fn find_body_attachments(part: &MessagePart, depth: usize, found: &mut Vec<BodyAttachment>) {
    if depth > MAX_PART_DEPTH {
        return;
    }
    let mime_type = part_mime_type(part);
    if mime_type.starts_with("multipart/") {
        for child in &part.parts {
            find_body_attachments(child, depth + 1, found);
        }
    }
    let Some(body) = &part.body else {
        return;
    };
    let is_body_type = mime_type == "text/plain" || mime_type == "text/html";
    if !part.parts.is_empty() || !is_body_type || is_attachment_disposition(part) {
        return;
    }
    if let (Some(id), None) = (&body.attachment_id, &body.data) {
        found.push(BodyAttachment {
            attachment_id: id.clone(),
            size: body.size,
        });
    }
}

/// Decodes a Gmail message like [`decode_message`], reading the content of parts that
/// Gmail serves by `attachmentId` from `fetched_bodies` (attachment id to the decoded
/// bytes that `messages.attachments.get` returns). A body part found there is not listed
/// in `attachments` unless it was sent `Content-Disposition: inline` with a file name.
pub fn decode_message_with_bodies(
    message: &GmailMessage,
    fetched_bodies: &HashMap<String, Vec<u8>>,
) -> Message {
    let root_headers: &[MessagePartHeader] = message
        .payload
        .as_ref()
        .map(|payload| payload.headers.as_slice())
        .unwrap_or_default();

    let bodies = Bodies::collect(message.payload.as_ref(), fetched_bodies);

    Message {
        id: message.id.clone(),
        thread_id: message.thread_id.clone(),
        subject: find_header(root_headers, "Subject").map(decode_header_value),
        snippet: message
            .snippet
            .as_deref()
            .map(unescape_html_entities)
            .unwrap_or_default(),
        body_text: bodies.text,
        body_html: bodies.html,
        from: address_header(root_headers, "From").into_iter().next(),
        to: address_header(root_headers, "To"),
        cc: address_header(root_headers, "Cc"),
        bcc: address_header(root_headers, "Bcc"),
        reply_to: address_header(root_headers, "Reply-To"),
        date: message_date(root_headers, message.internal_date.as_deref()),
        is_read: !message.label_ids.iter().any(|label| label == "UNREAD"),
        labels: message.label_ids.clone(),
        headers: header_map(root_headers),
        attachments: bodies.attachments,
    }
}

/// Unfolds a header value and decodes its RFC 2047 words.
fn decode_header_value(value: &str) -> String {
    decode_encoded_words(&unfold(value))
}

/// Removes line folding: a line break followed by whitespace becomes that whitespace.
fn unfold(value: &str) -> String {
    if !value.contains(['\r', '\n']) {
        return value.trim().to_string();
    }
    let unfolded: String = value.replace("\r\n", "\n").replace(['\r', '\n'], "");
    unfolded.trim().to_string()
}

fn header_map(headers: &[MessagePartHeader]) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    let mut seen: Vec<String> = Vec::new();
    for header in headers {
        let lowercase = header.name.to_ascii_lowercase();
        if header.name.is_empty() || seen.contains(&lowercase) {
            continue;
        }
        seen.push(lowercase);
        map.insert(header.name.clone(), decode_header_value(&header.value));
    }
    map
}

/// Parses every occurrence of an address header into mailboxes. Group names are dropped
/// and their members kept; entries without a usable address are skipped.
fn address_header(headers: &[MessagePartHeader], name: &str) -> Vec<EmailAddress> {
    headers
        .iter()
        .filter(|header| header.name.eq_ignore_ascii_case(name))
        .flat_map(|header| parse_addresses(&header.value))
        .collect()
}

pub(crate) fn parse_addresses(value: &str) -> Vec<EmailAddress> {
    let quoted = quote_display_names(&quote_encoded_words(&unfold(value)));
    let prepared = format!("{quoted}\n");
    let parsed = MessageStream::new(prepared.as_bytes()).parse_address();
    let HeaderValue::Address(address) = parsed else {
        return Vec::new();
    };
    let mailboxes: Vec<_> = match &address {
        Address::List(list) => list.iter().collect(),
        Address::Group(groups) => groups.iter().flat_map(|group| &group.addresses).collect(),
    };
    // A display name with a comma that lost its quotes when a header was decoded, as in
    // `Doe, Jane <jane@example.com>`, parses as a name-only entry and a mailbox. The
    // name-only entries are joined back onto the next mailbox that has a name.
    let mut addresses = Vec::new();
    let mut orphan_names: Vec<&str> = Vec::new();
    for mailbox in mailboxes {
        let name = mailbox
            .name()
            .map(str::trim)
            .filter(|name| !name.is_empty());
        let email = mailbox
            .address()
            .map(str::trim)
            .filter(|email| looks_like_email(email));
        let Some(email) = email else {
            match name {
                Some(name) if mailbox.address().is_none() => orphan_names.push(name),
                _ => orphan_names.clear(),
            }
            continue;
        };
        let name = name.map(|name| {
            orphan_names.push(name);
            orphan_names.join(", ")
        });
        orphan_names.clear();
        addresses.push(EmailAddress {
            email: email.to_string(),
            name,
        });
    }
    addresses
}

/// Accepts `local@domain` with both sides non-empty and no whitespace or angle brackets.
fn looks_like_email(email: &str) -> bool {
    let Some((local, domain)) = email.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.is_empty()
        && !email.contains(|ch: char| ch.is_whitespace() || ch.is_control() || "<>".contains(ch))
}

/// Returns the `Date` header in UTC, else Gmail's `internalDate` (milliseconds since the
/// epoch), formatted as RFC 3339 with `Z`.
fn message_date(headers: &[MessagePartHeader], internal_date: Option<&str>) -> Option<String> {
    let from_header = find_header(headers, "Date").and_then(parse_date);
    let from_internal = || {
        internal_date
            .and_then(|millis| millis.trim().parse::<i64>().ok())
            .and_then(DateTime::from_timestamp_millis)
    };
    from_header
        .or_else(from_internal)
        .map(|date| date.to_rfc3339_opts(SecondsFormat::Secs, true))
}

/// Parses an RFC 5322 date, including obsolete zone names, two-digit years and trailing
/// comments, or an RFC 3339 date as some automated senders write. chrono reads most dates,
/// and mail-parser reads two-digit years and comments.
fn parse_date(value: &str) -> Option<DateTime<Utc>> {
    let value = unfold(value);
    let chrono_date =
        DateTime::parse_from_rfc2822(&value).or_else(|_| DateTime::parse_from_rfc3339(&value));
    if let Ok(date) = chrono_date {
        return Some(date.with_timezone(&Utc));
    }
    let prepared = format!("{value}\n");
    let HeaderValue::DateTime(date) = MessageStream::new(prepared.as_bytes()).parse_date() else {
        return None;
    };
    if !date.is_valid() {
        return None;
    }
    DateTime::from_timestamp(date.to_timestamp(), 0)
}

/// Separator between the texts of several inline body parts, as in Apple Mail's
/// `multipart/mixed` of text, inline image and more text.
const BODY_PART_SEPARATOR: &str = "\n\n";

/// The body found in one part of the tree: an inline text part, or the chosen alternatives
/// of a `multipart/alternative`.
#[derive(Debug, Default)]
struct BodyPiece {
    text: Option<String>,
    html: Option<String>,
}

/// Bodies and attachments found while walking the part tree.
struct Bodies {
    text: Option<String>,
    html: Option<String>,
    attachments: Vec<AttachmentInfo>,
}

impl Bodies {
    /// Walks the tree from `payload`. Every body piece contributes to `text` (its plain
    /// text, else a rendering of its HTML) and its HTML to `html`, in document order.
    fn collect(payload: Option<&MessagePart>, fetched: &HashMap<String, Vec<u8>>) -> Bodies {
        let mut walker = PartWalker {
            fetched,
            attachments: Vec::new(),
        };
        let pieces = match payload {
            Some(part) => walker.collect_pieces(part, 0),
            None => Vec::new(),
        };
        let attachments = walker.attachments;
        let texts: Vec<String> = pieces
            .iter()
            .filter_map(|piece| match (&piece.text, &piece.html) {
                (Some(text), _) => Some(text.clone()),
                (None, Some(html)) => html_to_text(html),
                (None, None) => None,
            })
            .collect();
        let htmls: Vec<&str> = pieces.iter().filter_map(|p| p.html.as_deref()).collect();
        Bodies {
            text: join_nonempty(&texts),
            html: join_nonempty(&htmls),
            attachments,
        }
    }
}

fn join_nonempty<S: AsRef<str>>(parts: &[S]) -> Option<String> {
    (!parts.is_empty()).then(|| {
        let parts: Vec<&str> = parts.iter().map(AsRef::as_ref).collect();
        parts.join(BODY_PART_SEPARATOR)
    })
}

/// State of one walk over the part tree.
struct PartWalker<'a> {
    /// Content of parts that Gmail serves by `attachmentId`, by that id.
    fetched: &'a HashMap<String, Vec<u8>>,
    /// Every leaf that is neither a body nor empty, in document order.
    attachments: Vec<AttachmentInfo>,
}

impl PartWalker<'_> {
    /// Returns the body pieces of `part` in document order.
    fn collect_pieces(&mut self, part: &MessagePart, depth: usize) -> Vec<BodyPiece> {
        if depth > MAX_PART_DEPTH {
            return Vec::new();
        }
        let mime_type = part_mime_type(part);
        // A multipart without children is a leaf: the sandbox, for one, returns a tree cut off
        // at its depth limit as one opaque part.
        if !mime_type.starts_with("multipart/") || part.parts.is_empty() {
            return self.collect_leaf(part, mime_type).into_iter().collect();
        }
        if mime_type != "multipart/alternative" {
            return part
                .parts
                .iter()
                .flat_map(|child| self.collect_pieces(child, depth + 1))
                .collect();
        }

        // RFC 2046 section 5.1.4 orders alternatives from plainest to richest, so the last
        // alternative that has plain text gives the text and the last one with HTML gives the
        // HTML. Other text alternatives are renderings of the same content and are dropped;
        // leaves that are no body, such as a `text/calendar` invite, stay attachments.
        let mut chosen = BodyPiece::default();
        for child in &part.parts {
            let pieces = self.collect_pieces(child, depth + 1);
            let texts: Vec<&str> = pieces.iter().filter_map(|p| p.text.as_deref()).collect();
            let htmls: Vec<&str> = pieces.iter().filter_map(|p| p.html.as_deref()).collect();
            if let Some(text) = join_nonempty(&texts) {
                chosen.text = Some(text);
            }
            if let Some(html) = join_nonempty(&htmls) {
                chosen.html = Some(html);
            }
        }
        if chosen.text.is_none() && chosen.html.is_none() {
            return Vec::new();
        }
        vec![chosen]
    }

    /// Reads a leaf part. A `text/plain` or `text/html` part that is not
    /// `Content-Disposition: attachment` is a body, even when it has a file name, as long as it
    /// has text. Any other leaf with content becomes an attachment.
    fn collect_leaf(&mut self, part: &MessagePart, mime_type: String) -> Option<BodyPiece> {
        let is_body_type = mime_type == "text/plain" || mime_type == "text/html";
        if is_body_type && !is_attachment_disposition(part) {
            if let Some(text) = part_text(part, &mime_type, self.fetched) {
                let piece = if mime_type == "text/html" {
                    BodyPiece {
                        text: None,
                        html: Some(text),
                    }
                } else {
                    BodyPiece {
                        text: Some(text),
                        html: None,
                    }
                };
                // A text file sent `Content-Disposition: inline; filename=…` is shown in
                // the body and stays downloadable as the file it was sent as.
                if has_inline_filename(part) {
                    self.attachments.push(AttachmentInfo {
                        attachment_id: part.body.as_ref().and_then(|b| b.attachment_id.clone()),
                        filename: attachment_filename(part, &mime_type),
                        mime_type,
                        size: part.body.as_ref().map(|body| body.size).unwrap_or(0),
                    });
                }
                return Some(piece);
            }
        }
        if is_empty_part(part, &mime_type) {
            return None;
        }
        // NOTE: a part whose content Gmail returns inline (no attachmentId), such as a small
        // unnamed text/calendar part, is listed with attachmentId null, so a client cannot
        // fetch its content through the attachments endpoint.
        self.attachments.push(AttachmentInfo {
            attachment_id: part.body.as_ref().and_then(|b| b.attachment_id.clone()),
            filename: attachment_filename(part, &mime_type),
            mime_type,
            size: part.body.as_ref().map(|body| body.size).unwrap_or(0),
        });
        None
    }
}

/// Returns whether the part has `Content-Disposition: inline` with a file name.
fn has_inline_filename(part: &MessagePart) -> bool {
    find_header(&part.headers, "Content-Disposition").is_some_and(|value| {
        let value = unfold(value);
        mime_params::essence(&value) == "inline"
            && mime_params::parameter(&value, "filename").is_some_and(|n| !n.trim().is_empty())
    })
}

/// Returns whether the part has `Content-Disposition: attachment`.
fn is_attachment_disposition(part: &MessagePart) -> bool {
    find_header(&part.headers, "Content-Disposition")
        .is_some_and(|value| mime_params::essence(&unfold(value)) == "attachment")
}

/// Returns whether a leaf has no content: no `attachmentId` and no (or empty) inline data.
/// An attached message (`message/rfc822`) never counts as empty.
fn is_empty_part(part: &MessagePart, mime_type: &str) -> bool {
    if mime_type == "message/rfc822" {
        return false;
    }
    let Some(body) = &part.body else {
        return true;
    };
    if body.attachment_id.is_some() {
        return false;
    }
    match body.data.as_deref() {
        None => true,
        Some(data) => decode_base64url(data).is_ok_and(|bytes| bytes.is_empty()),
    }
}

/// Returns the part's MIME type in lowercase: Gmail's `mimeType`, else the `Content-Type`
/// header, else `text/plain`, the RFC 2045 default.
fn part_mime_type(part: &MessagePart) -> String {
    let from_field = part
        .mime_type
        .as_deref()
        .map(|mime| mime.trim().to_ascii_lowercase())
        .filter(|mime| mime.contains('/'));
    from_field
        .or_else(|| {
            find_header(&part.headers, "Content-Type")
                .map(mime_params::essence)
                .filter(|mime| mime.contains('/'))
        })
        .unwrap_or_else(|| "text/plain".to_string())
}

/// Returns an attachment's file name: Gmail's `filename`, else the `filename` of
/// `Content-Disposition` or the `name` of `Content-Type`, else a name made from its type.
fn attachment_filename(part: &MessagePart, mime_type: &str) -> String {
    let header_filename = || {
        let from_disposition = find_header(&part.headers, "Content-Disposition")
            .and_then(|value| mime_params::parameter(&unfold(value), "filename"));
        from_disposition
            .or_else(|| {
                find_header(&part.headers, "Content-Type")
                    .and_then(|value| mime_params::parameter(&unfold(value), "name"))
            })
            .filter(|name| !name.trim().is_empty())
    };
    part.filename
        .as_deref()
        .filter(|name| !name.trim().is_empty())
        .map(decode_filename)
        .or_else(header_filename)
        .unwrap_or_else(|| default_filename(mime_type))
}

/// Names an unnamed attachment after its MIME type: `message.eml` for an attached message,
/// `invite.ics` for a calendar invite, else `attachment.` and a usual extension (`bin` for
/// types without one).
fn default_filename(mime_type: &str) -> String {
    let extension = match mime_type {
        "message/rfc822" => return "message.eml".to_string(),
        "text/calendar" | "application/ics" => return "invite.ics".to_string(),
        "text/html" => "html",
        "text/csv" => "csv",
        "text/xml" | "application/xml" => "xml",
        "image/jpeg" => "jpg",
        "image/svg+xml" => "svg",
        "application/pdf" => "pdf",
        "application/zip" => "zip",
        "application/json" => "json",
        "audio/mpeg" => "mp3",
        "video/mp4" => "mp4",
        "image/png" | "image/gif" | "image/webp" | "image/bmp" | "image/tiff" => {
            mime_type.trim_start_matches("image/")
        }
        _ if mime_type.starts_with("text/") => "txt",
        _ => "bin",
    };
    format!("attachment.{extension}")
}

/// Decodes what Gmail left encoded in a file name: RFC 2047 words, or a whole RFC 2231
/// extended value (`utf-8''%E2%82%AC.txt`).
fn decode_filename(name: &str) -> String {
    let name = name.trim();
    let looks_extended = name.split_once("''").is_some_and(|(charset, rest)| {
        !charset.is_empty()
            && !charset.contains(char::is_whitespace)
            && encoding_for_label(charset).is_some()
            && rest.contains('%')
    });
    if looks_extended {
        let header = format!("attachment; filename*={name}");
        if let Some(decoded) = mime_params::parameter(&header, "filename") {
            return decoded;
        }
    }
    decode_encoded_words(name)
}

/// Decodes a text part's body with its charset. A body that Gmail left out of the resource
/// (only an `attachmentId`) gives `None` unless `fetched` has its content, and an empty body
/// gives `None`. HTML without a charset
/// parameter uses the charset its `<meta>` tag declares, and `format=flowed` text is
/// unwrapped (RFC 3676).
fn part_text(
    part: &MessagePart,
    mime_type: &str,
    fetched: &HashMap<String, Vec<u8>>,
) -> Option<String> {
    let body = part.body.as_ref()?;
    let fetched_bytes = body
        .attachment_id
        .as_ref()
        .and_then(|id| fetched.get(id))
        .cloned();
    let bytes = match (&body.data, fetched_bytes) {
        (Some(data), _) => decode_base64url(data).ok()?,
        (None, Some(bytes)) => bytes,
        (None, None) => return None,
    };
    if bytes.is_empty() {
        return None;
    }
    let content_type = find_header(&part.headers, "Content-Type").map(unfold);
    let param = |name: &str| {
        content_type
            .as_deref()
            .and_then(|value| mime_params::parameter(value, name))
    };
    let charset = match param("charset") {
        Some(charset) => Some(charset),
        None if mime_type == "text/html" => sniff_html_charset(&bytes),
        None => None,
    };
    let text = normalize_line_ends(&decode_text(&bytes, charset.as_deref()));
    let flowed = param("format").is_some_and(|format| format.eq_ignore_ascii_case("flowed"));
    if mime_type == "text/plain" && flowed {
        let delete_space = param("delsp").is_some_and(|delsp| delsp.eq_ignore_ascii_case("yes"));
        return Some(unwrap_flowed(&text, delete_space));
    }
    Some(text)
}

/// Turns CRLF, lone CR and the CR CR LF that a quoted-printable `=0D` before a line break
/// leaves into `\n`.
fn normalize_line_ends(text: &str) -> String {
    let mut normalized = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(ch) = chars.next() {
        if ch != '\r' {
            normalized.push(ch);
            continue;
        }
        while chars.next_if_eq(&'\r').is_some() {}
        chars.next_if_eq(&'\n');
        normalized.push('\n');
    }
    normalized
}

/// Renders HTML as plain text with html2text. A panic inside html2text, which is
/// third-party code fed with untrusted HTML, yields `None` rather than taking the request
/// down.
fn html_to_text(html: &str) -> Option<String> {
    // html2text's time grows with the square of the nesting depth, so a deeply
    // nested or very large document (any sender can mail one) is rendered by
    // stripping its tags instead.
    if html.len() > MAX_RENDERED_HTML_BYTES || html_nesting_depth(html) > MAX_RENDERED_HTML_DEPTH {
        return Some(strip_tags(html));
    }
    let rendered =
        std::panic::catch_unwind(|| html2text::from_read(html.as_bytes(), HTML_TEXT_WIDTH).ok())
            .ok()
            .flatten()?;
    let trimmed: Vec<&str> = rendered.lines().map(str::trim_end).collect();
    Some(trimmed.join("\n").trim().to_string())
}

/// Largest HTML document rendered with html2text; larger ones are stripped of tags.
const MAX_RENDERED_HTML_BYTES: usize = 512 * 1024;
/// Deepest element nesting rendered with html2text.
const MAX_RENDERED_HTML_DEPTH: usize = 256;

/// Estimates the deepest element nesting: opening tags minus closing tags, with
/// void and self-closed elements not counted.
fn html_nesting_depth(html: &str) -> usize {
    const VOID: [&str; 14] = [
        "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param",
        "source", "track", "wbr",
    ];
    let mut depth: usize = 0;
    let mut deepest = 0;
    for tag in html.split('<').skip(1) {
        let Some(inner) = tag.split('>').next() else {
            continue;
        };
        if let Some(closing) = inner.strip_prefix('/') {
            if closing.starts_with(|c: char| c.is_ascii_alphabetic()) {
                depth = depth.saturating_sub(1);
            }
            continue;
        }
        let name: String = inner
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .map(|c| c.to_ascii_lowercase())
            .collect();
        if name.is_empty() || inner.ends_with('/') || VOID.contains(&name.as_str()) {
            continue;
        }
        depth += 1;
        deepest = deepest.max(depth);
    }
    deepest
}

/// Renders HTML as text by dropping tags, `<script>` and `<style>` contents, and
/// blank lines, then unescaping character references.
fn strip_tags(html: &str) -> String {
    let mut text = String::with_capacity(html.len() / 2);
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        text.push_str(&rest[..start]);
        let after = &rest[start..];
        let lower_head: String = after
            .chars()
            .take(8)
            .collect::<String>()
            .to_ascii_lowercase();
        let skip_to = if lower_head.starts_with("<script") {
            find_ignore_case(after, "</script>").map(|i| i + "</script>".len())
        } else if lower_head.starts_with("<style") {
            find_ignore_case(after, "</style>").map(|i| i + "</style>".len())
        } else {
            after.find('>').map(|i| i + 1)
        };
        let Some(skip) = skip_to else { break };
        if lower_head.starts_with("<br")
            || lower_head.starts_with("<p")
            || lower_head.starts_with("</p")
            || lower_head.starts_with("<div")
            || lower_head.starts_with("</div")
        {
            text.push('\n');
        }
        rest = &after[skip..];
    }
    if !rest.contains('<') {
        text.push_str(rest);
    }
    let text = unescape_html_entities(&text);
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    lines.join("\n")
}

/// Byte offset of the first ASCII-case-insensitive match of `needle`.
fn find_ignore_case(haystack: &str, needle: &str) -> Option<usize> {
    haystack
        .as_bytes()
        .windows(needle.len())
        .position(|window| window.eq_ignore_ascii_case(needle.as_bytes()))
}

/// Unescapes the HTML character references that Gmail puts in snippets (`&#39;`, `&amp;`,
/// `&quot;`, numeric references and a few common named ones).
fn unescape_html_entities(text: &str) -> String {
    let mut output = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('&') {
        let (before, candidate) = rest.split_at(start);
        output.push_str(before);
        let reference = candidate.get(1..).and_then(|tail| {
            tail.find(';')
                .filter(|&end| end <= 10)
                .map(|end| (tail, end))
        });
        let decoded = reference.and_then(|(tail, end)| {
            let name = tail.get(..end)?;
            Some((character_reference(name)?, end + 2))
        });
        match decoded {
            Some((ch, consumed)) => {
                output.push(ch);
                rest = candidate.get(consumed..).unwrap_or("");
            }
            None => {
                output.push('&');
                rest = candidate.get(1..).unwrap_or("");
            }
        }
    }
    output.push_str(rest);
    output
}

fn character_reference(name: &str) -> Option<char> {
    if let Some(number) = name.strip_prefix('#') {
        let code = match number.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => number.parse::<u32>().ok()?,
        };
        return char::from_u32(code);
    }
    let ch = match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        "nbsp" => '\u{a0}',
        _ => return None,
    };
    Some(ch)
}

#[path = "body_text.rs"]
mod body_text;

#[path = "display_names.rs"]
mod display_names;

#[cfg(test)]
#[path = "decode_tests.rs"]
mod tests;
