//! Conversion of an RFC 5322 message into the `payload` tree of Gmail's `Message` resource.
//!
//! mail-parser finds the MIME structure, the headers and the byte offsets of every body.
//! The bodies are then taken from the raw bytes and only their Content-Transfer-Encoding
//! is undone, because Gmail returns `body.data` in the part's original charset and leaves
//! charset decoding to the client.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE;
use mail_parser::{Encoding, HeaderValue, Message, MessageParser, MimeHeaders, PartType};
use serde_json::{Value, json};

use crate::providers::google::decode::{decode_text, sniff_html_charset};
use crate::providers::google::encoded_word::decode_encoded_words;

/// Maximum length of a snippet, in characters.
const SNIPPET_CHARS: usize = 200;

/// Leaf bodies larger than this are returned as an `attachmentId` even without a filename.
///
/// NOTE: Gmail does not document its threshold; this value is a guess.
const INLINE_BODY_LIMIT: usize = 1024 * 1024;

/// One node of the payload tree.
#[derive(Debug, Clone)]
pub struct MimePart {
    /// Gmail part id: "" for the root, "0", "1" for its children, "0.1" below them.
    pub part_id: String,
    /// Lowercased `type/subtype`.
    pub mime_type: String,
    /// Decoded filename, or "" when the part has none.
    pub filename: String,
    /// Header name/value pairs in their original order, values unfolded and decoded.
    pub headers: Vec<(String, String)>,
    /// Body bytes after the transfer encoding is undone, still in the part's charset.
    /// Empty for multipart containers.
    pub body: Vec<u8>,
    /// Children of a multipart container or of an embedded `message/rfc822`.
    pub parts: Vec<MimePart>,
    is_container: bool,
}

/// A mailbox from an address header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    pub name: Option<String>,
    /// The address as written in the header (not lowercased).
    pub email: String,
}

/// Everything the mailbox needs from one parsed message.
#[derive(Debug, Clone)]
pub struct ParsedEmail {
    pub payload: MimePart,
    /// Plain text preview: HTML stripped, whitespace collapsed, at most 200 characters.
    pub snippet: String,
    /// Date header as milliseconds since the Unix epoch.
    pub date_ms: Option<i64>,
    /// Message-ID with its angle brackets removed.
    pub message_id: Option<String>,
    /// Message-IDs from In-Reply-To and References, brackets removed.
    pub thread_refs: Vec<String>,
    pub subject: String,
    pub from: Vec<Mailbox>,
    pub to: Vec<Mailbox>,
    pub cc: Vec<Mailbox>,
    pub bcc: Vec<Mailbox>,
    /// The text of every text and HTML body, decoded to UTF-8, for search.
    pub text: String,
    /// Header names present at the top level, lowercased.
    pub header_names: Vec<String>,
}

impl ParsedEmail {
    /// Returns whether any part carries a filename.
    pub fn has_attachment(&self) -> bool {
        self.payload
            .walk()
            .iter()
            .any(|part| !part.filename.is_empty())
    }

    /// Returns the filenames of all parts that have one.
    pub fn filenames(&self) -> Vec<String> {
        let parts = self.payload.walk();
        parts
            .iter()
            .filter(|part| !part.filename.is_empty())
            .map(|part| part.filename.clone())
            .collect()
    }
}

impl MimePart {
    /// Returns whether Gmail would return this part's body as an `attachmentId`.
    pub fn is_attachment(&self) -> bool {
        if self.is_container && self.mime_type != "message/rfc822" {
            return false;
        }
        let leaf_without_text = !self.mime_type.starts_with("text/") && !self.body.is_empty();
        !self.filename.is_empty() || leaf_without_text || self.body.len() > INLINE_BODY_LIMIT
    }

    /// Lists this part and all parts below it, depth first.
    pub fn walk(&self) -> Vec<&MimePart> {
        let mut out = vec![self];
        for child in &self.parts {
            out.extend(child.walk());
        }
        out
    }

    /// Finds a part by its Gmail part id.
    #[cfg(test)]
    pub fn find(&self, part_id: &str) -> Option<&MimePart> {
        self.walk().into_iter().find(|part| part.part_id == part_id)
    }

    /// Returns the first header value with this name, compared case-insensitively.
    #[cfg(test)]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// Renders the part as Gmail's `MessagePart` JSON.
    ///
    /// `attachment_id` maps a part id to the attachment id that `attachments.get` accepts.
    pub fn to_json(&self, attachment_id: &dyn Fn(&str) -> String) -> Value {
        let headers: Vec<Value> = self
            .headers
            .iter()
            .map(|(name, value)| json!({"name": name, "value": value}))
            .collect();
        let body = if self.is_container && self.mime_type != "message/rfc822" {
            json!({"size": 0})
        } else if self.is_attachment() {
            json!({"attachmentId": attachment_id(&self.part_id), "size": self.body.len()})
        } else if self.body.is_empty() {
            json!({"size": 0})
        } else {
            json!({"size": self.body.len(), "data": URL_SAFE.encode(&self.body)})
        };
        let mut part = json!({
            "partId": self.part_id,
            "mimeType": self.mime_type,
            "filename": self.filename,
            "headers": headers,
            "body": body,
        });
        if !self.parts.is_empty() {
            let parts: Vec<Value> = self
                .parts
                .iter()
                .map(|child| child.to_json(attachment_id))
                .collect();
            part["parts"] = Value::Array(parts);
        }
        part
    }
}

/// Parses a raw message. Returns `None` when the input has no header at all.
pub fn parse_email(raw: &[u8]) -> Option<ParsedEmail> {
    let message = MessageParser::default().parse(raw)?;
    if message.root_part().headers.is_empty() {
        return None;
    }
    let payload = convert_part(&message, 0, String::new(), 0);

    let text = all_text(&message);
    let snippet_source = message
        .text_body
        .first()
        .and_then(|&index| body_part_text(&message, index))
        .unwrap_or_default();
    let mut thread_refs = id_list(message.in_reply_to());
    thread_refs.extend(id_list(message.references()));

    Some(ParsedEmail {
        payload,
        snippet: make_snippet(&snippet_source),
        date_ms: message.date().map(|date| date.to_timestamp() * 1000),
        message_id: message.message_id().map(strip_angle_brackets),
        thread_refs,
        subject: message.subject().unwrap_or_default().to_string(),
        from: mailboxes(message.from()),
        to: mailboxes(message.to()),
        cc: mailboxes(message.cc()),
        bcc: mailboxes(message.bcc()),
        text,
        header_names: message
            .root_part()
            .headers
            .iter()
            .map(|header| header.name.as_str().to_ascii_lowercase())
            .collect(),
    })
}

/// Recursion limit for nested multiparts and embedded messages. A part below the limit
/// becomes one opaque leaf whose body is its raw content, children included.
// NOTE: Gmail documents no nesting limit; this depth and the opaque leaf are the sandbox's
// own choice.
const MAX_DEPTH: usize = 32;

fn convert_part(message: &Message<'_>, index: usize, part_id: String, depth: usize) -> MimePart {
    let raw: &[u8] = message.raw_message.as_ref();
    let Some(part) = message.parts.get(index) else {
        return empty_part(part_id);
    };

    let headers = part
        .headers
        .iter()
        .map(|header| {
            let name = slice(raw, header.offset_field, header.offset_start);
            let value = slice(raw, header.offset_start, header.offset_end);
            (header_name(name), decode_header_value(value))
        })
        .collect();
    let mime_type = part
        .content_type()
        .map(|ct| {
            let subtype = ct.subtype().unwrap_or("plain");
            format!("{}/{}", ct.ctype(), subtype).to_ascii_lowercase()
        })
        .unwrap_or_else(|| "text/plain".to_string());
    let filename = match part.attachment_name() {
        Some(name) => name.to_string(),
        // NOTE: Gmail shows an unnamed calendar part as `invite.ics` and serves it by
        // attachmentId. This is observed behaviour, not documented.
        None if mime_type == "text/calendar" => "invite.ics".to_string(),
        None => String::new(),
    };

    let mut node = MimePart {
        part_id: part_id.clone(),
        mime_type,
        filename,
        headers,
        body: Vec::new(),
        parts: Vec::new(),
        is_container: false,
    };
    if depth > MAX_DEPTH {
        node.body = decode_transfer(body_bytes(raw, part), part.encoding);
        return node;
    }

    match &part.body {
        PartType::Multipart(children) => {
            node.is_container = true;
            node.parts = children
                .iter()
                .enumerate()
                .map(|(position, child)| {
                    let child_id = child_part_id(&part_id, position);
                    convert_part(message, *child as usize, child_id, depth + 1)
                })
                .collect();
        }
        PartType::Message(inner) => {
            // An embedded message keeps its bytes as an attachment and also shows its own
            // tree below it, with the inner root as child "0".
            // NOTE: modelled on Gmail responses seen in practice; Gmail does not document it.
            node.is_container = true;
            node.body = decode_transfer(body_bytes(raw, part), part.encoding);
            let inner_root = convert_part(inner, 0, child_part_id(&part_id, 0), depth + 1);
            node.parts = vec![inner_root];
        }
        _ => {
            node.body = decode_transfer(body_bytes(raw, part), part.encoding);
        }
    }
    node
}

fn empty_part(part_id: String) -> MimePart {
    MimePart {
        part_id,
        mime_type: "text/plain".to_string(),
        filename: String::new(),
        headers: Vec::new(),
        body: Vec::new(),
        parts: Vec::new(),
        is_container: false,
    }
}

fn child_part_id(parent: &str, position: usize) -> String {
    if parent.is_empty() {
        position.to_string()
    } else {
        format!("{parent}.{position}")
    }
}

fn slice(raw: &[u8], start: u32, end: u32) -> &[u8] {
    raw.get(start as usize..end as usize).unwrap_or_default()
}

fn body_bytes<'a>(raw: &'a [u8], part: &mail_parser::MessagePart<'_>) -> &'a [u8] {
    slice(raw, part.offset_body, part.offset_end)
}

/// Takes the raw `Name:` slice of a header field and returns the name as written.
fn header_name(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    text.trim_end_matches(|c: char| c == ':' || c.is_whitespace())
        .trim()
        .to_string()
}

/// Unfolds a raw header value and decodes its RFC 2047 encoded words, as Gmail does for the
/// headers it returns.
///
/// Unfolding removes each line break and keeps the whitespace after it (RFC 5322 section
/// 2.2.3), so a tab that starts a continuation line stays a tab. Adjacent encoded words of
/// one charset are joined before decoding, so a UTF-8 character that a sender split over two
/// words comes out whole; mail-parser's own header decoder drops such a character.
///
/// Raw 8-bit bytes that are not UTF-8 (old mailers wrote Latin-1 straight into
/// headers) are read as windows-1252, a superset of ISO-8859-1's printable range.
// NOTE: real Gmail's handling of such headers is not documented; a guess from the
// message's own charset could do better for KOI8-R or Shift_JIS headers.
pub fn decode_header_value(raw: &[u8]) -> String {
    let text = match std::str::from_utf8(raw) {
        Ok(text) => std::borrow::Cow::Borrowed(text),
        Err(_) => encoding_rs::WINDOWS_1252.decode(raw).0,
    };
    let unfolded = text.replace(['\r', '\n'], "");
    decode_encoded_words(&unfolded).trim().to_string()
}

/// Undoes a Content-Transfer-Encoding.
pub fn decode_transfer(bytes: &[u8], encoding: Encoding) -> Vec<u8> {
    match encoding {
        Encoding::Base64 => decode_base64_lenient(bytes),
        Encoding::QuotedPrintable => decode_quoted_printable(bytes),
        Encoding::None => bytes.to_vec(),
    }
}

/// Decodes MIME base64, skipping line breaks and any byte outside the alphabet as RFC 2045
/// requires, and ignoring a trailing partial group.
pub fn decode_base64_lenient(bytes: &[u8]) -> Vec<u8> {
    let mut clean: Vec<u8> = bytes
        .iter()
        .copied()
        .take_while(|&b| b != b'=')
        .filter(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/')
        .collect();
    if clean.len() % 4 == 1 {
        clean.pop();
    }
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::RequireNone)
            .with_decode_allow_trailing_bits(true),
    );
    engine.decode(&clean).unwrap_or_default()
}

/// Decodes quoted-printable: `=XX` escapes, soft line breaks (`=` before CRLF or LF, with
/// optional whitespace between), and a stray `=` kept as it is.
pub fn decode_quoted_printable(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while let Some(&byte) = bytes.get(index) {
        if byte != b'=' {
            out.push(byte);
            index += 1;
            continue;
        }
        let rest = bytes.get(index + 1..).unwrap_or_default();
        let padding = rest
            .iter()
            .take_while(|b| **b == b' ' || **b == b'\t')
            .count();
        let after_padding = rest.get(padding..).unwrap_or_default();
        if after_padding.starts_with(b"\r\n") {
            index += 1 + padding + 2;
        } else if after_padding.starts_with(b"\n") {
            index += 1 + padding + 1;
        } else if after_padding.is_empty() {
            index += 1 + padding;
        } else if let Some(decoded) = hex_pair(rest) {
            out.push(decoded);
            index += 3;
        } else {
            out.push(b'=');
            index += 1;
        }
    }
    out
}

fn hex_pair(rest: &[u8]) -> Option<u8> {
    let high = (*rest.first()? as char).to_digit(16)?;
    let low = (*rest.get(1)? as char).to_digit(16)?;
    u8::try_from(high * 16 + low).ok()
}

/// Collapses whitespace, cuts to 200 characters and HTML-escapes, as Gmail's snippets are.
pub fn make_snippet(text: &str) -> String {
    let collapsed: Vec<&str> = text.split_whitespace().collect();
    let joined = collapsed.join(" ");
    let cut: String = joined.chars().take(SNIPPET_CHARS).collect();
    html_escape(&cut)
}

fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
    out
}

fn all_text(message: &Message<'_>) -> String {
    let mut text = String::new();
    for &index in &message.text_body {
        if let Some(body) = body_part_text(message, index) {
            text.push_str(&body);
            text.push('\n');
        }
    }
    text
}

/// Decodes a text or HTML body part from the raw bytes the way `body.data` is made, then
/// with its charset (for HTML without one, the charset of its `<meta>` tag), and renders
/// HTML as text. mail-parser's own text decoder turns a base64 body without `=` padding,
/// such as `w6nDqA`, into U+FFFD where Gmail reads it.
fn body_part_text(message: &Message<'_>, index: u32) -> Option<String> {
    let part = message.parts.get(usize::try_from(index).ok()?)?;
    let is_html = matches!(part.body, PartType::Html(_));
    if !is_html && !matches!(part.body, PartType::Text(_)) {
        return None;
    }
    let bytes = decode_transfer(
        body_bytes(message.raw_message.as_ref(), part),
        part.encoding,
    );
    let charset = part
        .content_type()
        .and_then(|content_type| content_type.attribute("charset"))
        .map(str::to_string);
    let charset = match charset {
        Some(charset) => Some(charset),
        None if is_html => sniff_html_charset(&bytes),
        None => None,
    };
    let text = decode_text(&bytes, charset.as_deref());
    if is_html {
        return Some(mail_parser::decoders::html::html_to_text(&text));
    }
    Some(text)
}

fn id_list(value: &HeaderValue<'_>) -> Vec<String> {
    match value {
        HeaderValue::Text(id) => vec![strip_angle_brackets(id)],
        HeaderValue::TextList(ids) => ids.iter().map(|id| strip_angle_brackets(id)).collect(),
        _ => Vec::new(),
    }
}

/// Removes surrounding whitespace and angle brackets from a Message-ID.
pub fn strip_angle_brackets(id: &str) -> String {
    id.trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_string()
}

fn mailboxes(address: Option<&mail_parser::Address<'_>>) -> Vec<Mailbox> {
    let Some(address) = address else {
        return Vec::new();
    };
    address
        .iter()
        .filter_map(|addr| {
            let email = addr.address.as_ref()?.trim().to_string();
            Some(Mailbox {
                name: addr.name.as_ref().map(|name| name.to_string()),
                email,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests;
