//! Composing outgoing RFC 5322 messages for `users.messages.send`.
//!
//! mail-builder 0.4 writes the MIME body tree here: the text and HTML parts with their
//! transfer encoding, and the multipart boundaries. This module writes the header fields and
//! the attachment part headers itself, because mail-builder 0.4.4 falls short there:
//! - it passes a CR or LF of a plain ASCII subject through (a header injection),
//! - it writes a display name as one encoded word of any length inside a quoted string,
//! - it can write subject words of 76 characters,
//! - it names attachments with RFC 2047 words instead of RFC 2231.

use base64::Engine;
use chrono::Utc;
use mail_builder::mime::{BodyPart, MimePart};
use mail_parser::parsers::MessageStream;
use mail_parser::{Address, HeaderValue};

use super::encoded_word::{MAX_ENCODED_WORD_LEN, encode_words, quote_encoded_words};

/// Line length that header folding keeps to, excluding CRLF (RFC 5322 section 2.1.1).
const MAX_LINE_LEN: usize = 78;

/// Length of base64 lines in attachment bodies (RFC 2045 section 6.8).
const BASE64_LINE_LEN: usize = 76;

/// Maximum length of an email address (RFC 5321 path limit less the angle brackets).
const MAX_EMAIL_LEN: usize = 254;

/// Domain of generated `Message-ID`s when the message has no `From`.
const FALLBACK_ID_DOMAIN: &str = "patchbay.invalid";

/// One mailbox: an email address with an optional display name.
#[derive(Debug, Clone, PartialEq)]
pub struct Mailbox {
    pub name: Option<String>,
    pub email: String,
}

/// A file to attach.
#[derive(Debug, Clone, PartialEq)]
pub struct OutgoingAttachment {
    pub filename: String,
    /// MIME type such as `application/pdf`; empty means `application/octet-stream`.
    pub mime_type: String,
    pub content: Vec<u8>,
}

/// A message to send. `text` is the plain-text body; `html`, when given, makes the body
/// `multipart/alternative`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OutgoingMessage {
    pub from: Option<Mailbox>,
    pub to: Vec<Mailbox>,
    pub cc: Vec<Mailbox>,
    pub bcc: Vec<Mailbox>,
    pub reply_to: Vec<Mailbox>,
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
    pub attachments: Vec<OutgoingAttachment>,
    /// `Message-ID` of the message this one replies to, such as `<abc@example.com>`.
    pub in_reply_to: Option<String>,
    /// Space-separated message ids of the thread, oldest first.
    pub references: Option<String>,
}

/// Errors of [`parse_address_list`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AddressError {
    #[error("invalid email address \"{0}\": expected name@domain.tld or Name <name@domain.tld>")]
    InvalidAddress(String),
    #[error("invalid address list: it contains a line break or another control character")]
    ControlCharacter,
}

/// Errors of [`build_message`]. [`ComposeError::param`] names the request field at fault.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ComposeError {
    #[error("invalid email address \"{address}\" in {field}")]
    InvalidAddress {
        field: &'static str,
        address: String,
    },
    #[error("missing recipient: to, cc or bcc must contain at least one address")]
    MissingRecipient,
    #[error("missing filename for attachment {index}")]
    MissingFilename { index: usize },
    #[error(
        "invalid MIME type \"{mime_type}\" for attachment \"{filename}\": expected type/subtype"
    )]
    InvalidMimeType { filename: String, mime_type: String },
    #[error("invalid message id \"{value}\" in {field}: expected <id@domain>")]
    InvalidMessageId { field: &'static str, value: String },
}

impl ComposeError {
    /// Returns the name of the request field that the error is about, as the HTTP API
    /// spells it.
    pub fn param(&self) -> Option<&'static str> {
        match self {
            ComposeError::InvalidAddress { field, .. } => Some(field),
            ComposeError::MissingRecipient => Some("to"),
            ComposeError::MissingFilename { .. } | ComposeError::InvalidMimeType { .. } => {
                Some("attachments")
            }
            ComposeError::InvalidMessageId { field, .. } => Some(field),
        }
    }
}

/// Parses a comma-separated address list such as
/// `Ada <ada@example.com>, "Doe, Jane" <jane@example.org>, bob@example.net`.
/// Group syntax is accepted and flattened to its members. Blank input gives an empty list.
pub fn parse_address_list(input: &str) -> Result<Vec<Mailbox>, AddressError> {
    if input.chars().any(char::is_control) {
        return Err(AddressError::ControlCharacter);
    }
    if input.trim().is_empty() {
        return Ok(Vec::new());
    }
    let prepared = format!("{}\n", quote_encoded_words(input));
    let parsed = MessageStream::new(prepared.as_bytes()).parse_address();
    let HeaderValue::Address(address) = parsed else {
        return Err(AddressError::InvalidAddress(input.trim().to_string()));
    };
    let entries: Vec<_> = match &address {
        Address::List(list) => list.iter().collect(),
        Address::Group(groups) => groups.iter().flat_map(|group| &group.addresses).collect(),
    };

    let mut mailboxes = Vec::with_capacity(entries.len());
    for entry in entries {
        let Some(email) = entry.address().map(str::trim).filter(|e| !e.is_empty()) else {
            let raw_entry = entry.name().unwrap_or(input).trim().to_string();
            return Err(AddressError::InvalidAddress(raw_entry));
        };
        if !is_valid_email(email) {
            return Err(AddressError::InvalidAddress(email.to_string()));
        }
        let name = entry
            .name()
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .map(str::to_string);
        mailboxes.push(Mailbox {
            name,
            email: email.to_string(),
        });
    }
    Ok(mailboxes)
}

/// Checks an ASCII `local@domain` address: a dot-atom local part and a domain of at least
/// two letter-digit-hyphen labels. Quoted local parts, domain literals and non-ASCII
/// (SMTPUTF8) addresses are rejected.
fn is_valid_email(email: &str) -> bool {
    let Some((local, domain)) = email.rsplit_once('@') else {
        return false;
    };
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && local
            .split('.')
            .all(|atom| !atom.is_empty() && atom.bytes().all(is_atext));
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    email.len() <= MAX_EMAIL_LEN && local_ok && domain_ok
}

/// RFC 5322 `atext`: the characters of an atom.
fn is_atext(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&byte)
}

/// Returns the subject of a reply: `Re: ` is added unless the subject already starts with
/// `Re:` in any case (`RE: x` and `re:x` stay as they are).
pub fn reply_subject(parent_subject: &str) -> String {
    let trimmed = parent_subject.trim();
    let has_prefix = trimmed
        .get(..3)
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case("re:"));
    if has_prefix {
        trimmed.to_string()
    } else {
        format!("Re: {trimmed}")
    }
}

/// Returns the `References` of a reply: the parent's `References` (or, without them, its
/// `In-Reply-To`) followed by the parent's `Message-ID`, separated by single spaces
/// (RFC 5322 section 3.6.4).
pub fn reply_references(
    parent_references: Option<&str>,
    parent_in_reply_to: Option<&str>,
    parent_message_id: &str,
) -> String {
    let base = parent_references
        .filter(|value| !value.trim().is_empty())
        .or(parent_in_reply_to)
        .unwrap_or("");
    let mut ids: Vec<&str> = base.split_whitespace().collect();
    let parent_id = parent_message_id.trim();
    if !parent_id.is_empty() && ids.last() != Some(&parent_id) {
        ids.push(parent_id);
    }
    ids.join(" ")
}

/// Builds the RFC 5322 message, with CRLF line ends, ready for Gmail's `raw` field or the
/// upload endpoint. `Bcc` is written too: Gmail reads it and removes it before delivery.
pub fn build_message(message: &OutgoingMessage) -> Result<Vec<u8>, ComposeError> {
    validate(message)?;
    let mut output = String::new();

    if let Some(from) = &message.from {
        output.push_str(&address_field("From", std::slice::from_ref(from)));
    }
    for (name, list) in [
        ("To", &message.to),
        ("Cc", &message.cc),
        ("Bcc", &message.bcc),
        ("Reply-To", &message.reply_to),
    ] {
        if !list.is_empty() {
            output.push_str(&address_field(name, list));
        }
    }
    if !message.subject.trim().is_empty() {
        output.push_str(&unstructured_field("Subject", &message.subject));
    }
    output.push_str(&format!("Date: {}\r\n", Utc::now().to_rfc2822()));
    output.push_str(&format!("Message-ID: {}\r\n", new_message_id(message)));
    if let Some(ids) = message_ids(message.in_reply_to.as_deref(), "inReplyTo")? {
        output.push_str(&id_field("In-Reply-To", &ids));
    }
    if let Some(ids) = message_ids(message.references.as_deref(), "references")? {
        output.push_str(&id_field("References", &ids));
    }
    output.push_str("MIME-Version: 1.0\r\n");

    let mut bytes = output.into_bytes();
    // Writing into a Vec cannot fail, so the io::Result carries no error here.
    let _ = body_part(message).write_part(&mut bytes);
    Ok(bytes)
}

fn validate(message: &OutgoingMessage) -> Result<(), ComposeError> {
    let fields = [
        ("from", message.from.as_slice()),
        ("to", message.to.as_slice()),
        ("cc", message.cc.as_slice()),
        ("bcc", message.bcc.as_slice()),
        ("replyTo", message.reply_to.as_slice()),
    ];
    for (field, list) in fields {
        if let Some(bad) = list.iter().find(|mailbox| !is_valid_email(&mailbox.email)) {
            return Err(ComposeError::InvalidAddress {
                field,
                address: bad.email.clone(),
            });
        }
    }
    if message.to.is_empty() && message.cc.is_empty() && message.bcc.is_empty() {
        return Err(ComposeError::MissingRecipient);
    }
    for (index, attachment) in message.attachments.iter().enumerate() {
        if attachment.filename.trim().is_empty() {
            return Err(ComposeError::MissingFilename { index });
        }
        if !attachment.mime_type.trim().is_empty() && !is_valid_mime_type(&attachment.mime_type) {
            return Err(ComposeError::InvalidMimeType {
                filename: attachment.filename.clone(),
                mime_type: attachment.mime_type.clone(),
            });
        }
    }
    Ok(())
}

/// Checks `type/subtype` made of RFC 2045 token characters, each name at most 127
/// characters long (RFC 6838 section 4.2).
fn is_valid_mime_type(mime_type: &str) -> bool {
    let is_token = |part: &str| {
        !part.is_empty()
            && part.len() <= 127
            && part
                .bytes()
                .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?=".contains(&b))
    };
    mime_type
        .trim()
        .split_once('/')
        .is_some_and(|(kind, subtype)| is_token(kind) && is_token(subtype))
}

fn new_message_id(message: &OutgoingMessage) -> String {
    let domain = message
        .from
        .as_ref()
        .and_then(|from| from.email.rsplit_once('@'))
        .map(|(_, domain)| domain)
        .unwrap_or(FALLBACK_ID_DOMAIN);
    format!("<{}@{}>", uuid::Uuid::new_v4().simple(), domain)
}

/// Splits a message id list on whitespace (line breaks included) and commas, and checks that
/// each id has the `left@right` form. Ids without angle brackets get them. Returns `None`
/// for a missing or blank value.
fn message_ids(
    value: Option<&str>,
    field: &'static str,
) -> Result<Option<Vec<String>>, ComposeError> {
    let Some(value) = value.filter(|value| !value.trim().is_empty()) else {
        return Ok(None);
    };
    let invalid = || ComposeError::InvalidMessageId {
        field,
        value: value.to_string(),
    };
    let mut ids = Vec::new();
    for token in value.split(|ch: char| ch.is_whitespace() || ch == ',') {
        if token.is_empty() {
            continue;
        }
        let inner = token
            .strip_prefix('<')
            .and_then(|rest| rest.strip_suffix('>'))
            .unwrap_or(token);
        let valid = inner.contains('@')
            && inner.len() <= MAX_LINE_LEN * 4
            && inner
                .bytes()
                .all(|b| b.is_ascii_graphic() && !matches!(b, b'<' | b'>' | b'"' | b'\\'));
        if !valid {
            return Err(invalid());
        }
        ids.push(format!("<{inner}>"));
    }
    Ok(Some(ids))
}

/// A header field under construction that folds before a token rather than letting a line
/// pass [`MAX_LINE_LEN`]. A single token longer than a line, such as an email address of
/// more than 76 characters, still makes a longer line. That line stays under the hard limit
/// of 998 because no token is longer than 320 characters (addresses have at most 254).
struct FoldedField {
    output: String,
    line_len: usize,
}

impl FoldedField {
    fn new(name: &str) -> Self {
        FoldedField {
            output: format!("{name}:"),
            line_len: name.len() + 1,
        }
    }

    /// Returns how many characters a token can have and still fit after a space on the
    /// current line.
    fn remaining(&self) -> usize {
        MAX_LINE_LEN.saturating_sub(self.line_len + 1)
    }

    /// Appends a space and the token, folding first when the token does not fit.
    fn push_token(&mut self, token: &str) {
        if token.len() > self.remaining() && self.line_len > 1 {
            self.output.push_str("\r\n");
            self.line_len = 0;
        }
        self.output.push(' ');
        self.output.push_str(token);
        self.line_len += 1 + token.len();
    }

    fn finish(mut self) -> String {
        self.output.push_str("\r\n");
        self.output
    }
}

/// Replaces control characters, CR and LF included, by spaces: a header value can never
/// break its line.
fn sanitize_header_text(text: &str) -> String {
    text.chars()
        .map(|ch| if ch.is_control() { ' ' } else { ch })
        .collect()
}

/// Writes an unstructured field such as `Subject`: plain folded words when the text is
/// printable ASCII that fits, else RFC 2047 encoded words. Leading and trailing whitespace
/// is dropped because parsers strip it from plain header values anyway.
fn unstructured_field(name: &str, value: &str) -> String {
    let sanitized = sanitize_header_text(value);
    let text = sanitized.trim();
    let mut field = FoldedField::new(name);
    let plain_fits = text.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
        && !text.contains("=?")
        && text.split(' ').all(|word| word.len() < MAX_LINE_LEN - 1);
    if plain_fits {
        // Splitting on single spaces keeps runs of spaces: an empty word adds one space.
        for word in text.split(' ') {
            field.push_token(word);
        }
    } else {
        push_encoded_words(&mut field, text);
    }
    field.finish()
}

fn push_encoded_words(field: &mut FoldedField, text: &str) {
    let first_max_len = field.remaining().min(MAX_ENCODED_WORD_LEN);
    for word in encode_words(text, first_max_len) {
        field.push_token(&word);
    }
}

/// Writes an address field: display names as atoms, quoted strings or encoded words, each
/// mailbox as `name <email>` or a bare `email`.
fn address_field(name: &str, mailboxes: &[Mailbox]) -> String {
    let mut field = FoldedField::new(name);
    for (index, mailbox) in mailboxes.iter().enumerate() {
        let separator = if index + 1 < mailboxes.len() { "," } else { "" };
        let display_name = mailbox
            .name
            .as_deref()
            .map(sanitize_header_text)
            .map(|name| name.trim().to_string())
            .filter(|name| !name.is_empty());
        let Some(display_name) = display_name else {
            field.push_token(&format!("{}{separator}", mailbox.email));
            continue;
        };
        push_phrase(&mut field, &display_name);
        field.push_token(&format!("<{}>{separator}", mailbox.email));
    }
    field.finish()
}

/// Appends a display name. Atoms stay as they are, and a name with specials such as `,` or
/// `.` becomes a quoted string. A name that is not printable ASCII, or is too long for one
/// line, becomes encoded words.
fn push_phrase(field: &mut FoldedField, name: &str) {
    let printable = name.bytes().all(|b| b.is_ascii_graphic() || b == b' ');
    if printable && !name.contains("=?") {
        let is_atoms = name
            .split(' ')
            .all(|atom| !atom.is_empty() && atom.bytes().all(is_atext));
        let token = if is_atoms {
            name.to_string()
        } else {
            format!("\"{}\"", name.replace('\\', "\\\\").replace('"', "\\\""))
        };
        if token.len() <= MAX_ENCODED_WORD_LEN {
            field.push_token(&token);
            return;
        }
    }
    push_encoded_words(field, name);
}

fn id_field(name: &str, ids: &[String]) -> String {
    let mut field = FoldedField::new(name);
    for id in ids {
        field.push_token(id);
    }
    field.finish()
}

/// Builds the MIME body: the text (and HTML) part, wrapped in `multipart/mixed` with the
/// attachments when there are any.
/// Text in the canonical form of RFC 2046 section 4.1.1: every line break CRLF,
/// whatever the client sent (LF, CR or CRLF). Base64 keeps bare LFs otherwise.
fn canonical_line_breaks(text: &str) -> String {
    text.replace("\r\n", "\n")
        .replace('\r', "\n")
        .replace('\n', "\r\n")
}

fn body_part(message: &OutgoingMessage) -> MimePart<'static> {
    let text = MimePart::new("text/plain", canonical_line_breaks(&message.text));
    let html = message.html.as_deref().map(canonical_line_breaks);
    let content = match html {
        Some(html) if message.text.is_empty() => MimePart::new("text/html", html),
        Some(html) => MimePart::new(
            "multipart/alternative",
            vec![text, MimePart::new("text/html", html)],
        ),
        None => text,
    };
    if message.attachments.is_empty() {
        return content;
    }
    let mut parts = vec![content];
    parts.extend(message.attachments.iter().map(attachment_part));
    MimePart::new("multipart/mixed", parts)
}

/// Writes an attachment part whole (headers and base64 body) and hands it to mail-builder
/// as a raw part, so the file name can use RFC 2231 and the bytes stay exact.
fn attachment_part(attachment: &OutgoingAttachment) -> MimePart<'static> {
    let mime_type = match attachment.mime_type.trim() {
        "" => "application/octet-stream".to_string(),
        given => given.to_ascii_lowercase(),
    };
    let filename = sanitize_header_text(attachment.filename.trim());

    let mut content_type = FoldedField::new("Content-Type");
    content_type.push_token(&format!("{mime_type};"));
    push_filename_parameter(&mut content_type, "name", &filename);
    let mut disposition = FoldedField::new("Content-Disposition");
    disposition.push_token("attachment;");
    push_filename_parameter(&mut disposition, "filename", &filename);

    let mut part = String::new();
    part.push_str(&content_type.finish());
    part.push_str(&disposition.finish());
    part.push_str("Content-Transfer-Encoding: base64\r\n\r\n");
    let encoded = base64::engine::general_purpose::STANDARD.encode(&attachment.content);
    for line in encoded.as_bytes().chunks(BASE64_LINE_LEN) {
        part.push_str(&String::from_utf8_lossy(line));
        part.push_str("\r\n");
    }
    MimePart::raw(BodyPart::Binary(part.into_bytes().into()))
}

/// Appends a file name parameter: a quoted string when it is printable ASCII and fits on a
/// line, else RFC 2231 UTF-8 sections (`name*0*=utf-8''%E2%82%AC; name*1*=…`) that are
/// split between characters.
fn push_filename_parameter(field: &mut FoldedField, parameter: &str, filename: &str) {
    let printable = filename.bytes().all(|b| b.is_ascii_graphic() || b == b' ');
    let quoted = format!(
        "{parameter}=\"{}\"",
        filename.replace('\\', "\\\\").replace('"', "\\\"")
    );
    if printable && quoted.len() < MAX_LINE_LEN - 1 {
        field.push_token(&quoted);
        return;
    }

    let sections = rfc2231_sections(filename);
    let last = sections.len().saturating_sub(1);
    for (index, section) in sections.iter().enumerate() {
        let charset = if index == 0 { "utf-8''" } else { "" };
        let separator = if index < last { ";" } else { "" };
        field.push_token(&format!(
            "{parameter}*{index}*={charset}{section}{separator}"
        ));
    }
}

/// Maximum length of the percent-encoded text of one RFC 2231 section, so that a section
/// with its parameter name fits on one folded line.
const RFC2231_SECTION_LEN: usize = 54;

fn rfc2231_sections(text: &str) -> Vec<String> {
    let mut sections = Vec::new();
    let mut current = String::new();
    for ch in text.chars() {
        let mut buffer = [0u8; 4];
        let mut encoded = String::new();
        for &byte in ch.encode_utf8(&mut buffer).as_bytes() {
            if byte.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&byte) {
                encoded.push(char::from(byte));
            } else {
                encoded.push_str(&format!("%{byte:02X}"));
            }
        }
        if current.len() + encoded.len() > RFC2231_SECTION_LEN && !current.is_empty() {
            sections.push(std::mem::take(&mut current));
        }
        current.push_str(&encoded);
    }
    if !current.is_empty() {
        sections.push(current);
    }
    sections
}

#[cfg(test)]
#[path = "compose_tests.rs"]
mod tests;
