//! Checks the decoder against the `.eml` corpus in `tests/fixtures/eml`.
//!
//! Each file is parsed with mail-parser and turned into a Gmail-like `Message` resource:
//! root headers as raw unfolded text (encoded words left in), part bodies as base64url of
//! the transfer-decoded bytes in their own charset, attachments as an `attachmentId`. Gmail
//! itself decodes header values and file names first. This conversion leaves them encoded,
//! so the corpus exercises the decoder's harder path.

use std::path::PathBuf;

use base64::Engine;
use mail_parser::{Encoding, MessageParser, MimeHeaders, PartType};
use serde_json::Value;

use super::decode::{EmailAddress, Message, decode_message};
use super::wire::{GmailMessage, MessagePart, MessagePartBody, MessagePartHeader};

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/eml")
}

/// Converts a raw message into the resource Gmail's `messages.get` would return.
fn to_gmail_message(id: &str, raw: &[u8]) -> GmailMessage {
    let parsed = MessageParser::default()
        .parse(raw)
        .unwrap_or_else(|| panic!("mail-parser could not parse {id}"));
    let payload = convert_part(&parsed, 0, &mut 0);
    GmailMessage {
        id: id.to_string(),
        thread_id: Some(format!("thread-{id}")),
        label_ids: vec!["INBOX".into()],
        snippet: Some(String::new()),
        payload: Some(payload),
        ..GmailMessage::default()
    }
}

fn convert_part(
    message: &mail_parser::Message<'_>,
    index: usize,
    next_attachment: &mut usize,
) -> MessagePart {
    let raw = message.raw_message();
    let part = &message.parts[index];
    let headers = part
        .headers
        .iter()
        .map(|header| {
            let bytes = &raw[header.offset_start as usize..header.offset_end as usize];
            MessagePartHeader {
                name: header.name.as_str().to_string(),
                value: String::from_utf8_lossy(bytes).trim().to_string(),
            }
        })
        .collect();
    let mime_type = part
        .content_type()
        .map(|ct| {
            let subtype = ct.subtype().unwrap_or("plain");
            format!("{}/{}", ct.ctype(), subtype).to_ascii_lowercase()
        })
        .unwrap_or_else(|| "text/plain".to_string());

    let is_calendar = mime_type == "text/calendar";
    let mut converted = MessagePart {
        part_id: Some(index.to_string()),
        mime_type: Some(mime_type),
        filename: Some(String::new()),
        headers,
        ..MessagePart::default()
    };

    match &part.body {
        PartType::Multipart(children) => {
            converted.body = Some(MessagePartBody::default());
            converted.parts = children
                .iter()
                .map(|&child| convert_part(message, child as usize, next_attachment))
                .collect();
        }
        // Gmail serves a calendar invite by attachmentId although it is text.
        PartType::Text(_) | PartType::Html(_)
            if part.attachment_name().is_none() && !is_calendar =>
        {
            let encoded = &raw[part.offset_body as usize..part.offset_end as usize];
            let bytes = match part.encoding {
                Encoding::QuotedPrintable => {
                    mail_parser::decoders::quoted_printable::quoted_printable_decode(encoded)
                        .expect("invalid quoted-printable")
                }
                Encoding::Base64 => {
                    mail_parser::decoders::base64::base64_decode(encoded).expect("invalid base64")
                }
                Encoding::None => encoded.to_vec(),
            };
            converted.body = Some(MessagePartBody {
                attachment_id: None,
                size: bytes.len() as i64,
                data: (!bytes.is_empty())
                    .then(|| base64::engine::general_purpose::URL_SAFE.encode(&bytes)),
            });
        }
        _ => {
            *next_attachment += 1;
            converted.body = Some(MessagePartBody {
                attachment_id: Some(format!("attachment-{next_attachment}")),
                size: part.len() as i64,
                data: None,
            });
        }
    }
    converted
}

fn expected_addresses(value: &Value) -> Vec<EmailAddress> {
    value
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|entry| EmailAddress {
            email: entry["email"].as_str().unwrap_or_default().to_string(),
            name: entry["name"].as_str().map(str::to_string),
        })
        .collect()
}

fn check_fixture(name: &str, expected: &Value, decoded: &Message) -> Vec<String> {
    let mut failures = Vec::new();
    let mut check = |field: &str, ok: bool, actual: String| {
        if !ok {
            failures.push(format!("{name}: {field} mismatch, decoded {actual}"));
        }
    };

    let subject = expected["subject"].as_str();
    check(
        "subject",
        decoded.subject.as_deref() == subject,
        format!("{:?}", decoded.subject),
    );

    let from = expected_addresses(&Value::Array(vec![expected["from"].clone()]));
    check(
        "from",
        decoded.from.as_ref() == from.first(),
        format!("{:?}", decoded.from),
    );

    let to = expected_addresses(&expected["to"]);
    check("to", decoded.to == to, format!("{:?}", decoded.to));

    if let Some(cc) = expected.get("cc") {
        let cc = expected_addresses(cc);
        check("cc", decoded.cc == cc, format!("{:?}", decoded.cc));
    }

    match expected["bodyTextContains"].as_str() {
        Some(needle) => {
            let ok = decoded
                .body_text
                .as_deref()
                .is_some_and(|text| text.contains(needle));
            check("bodyText", ok, format!("{:?}", decoded.body_text));
        }
        None => check(
            "bodyText",
            decoded.body_text.is_none(),
            format!("{:?}", decoded.body_text),
        ),
    }
    match expected["bodyHtmlContains"].as_str() {
        Some(needle) => {
            let ok = decoded
                .body_html
                .as_deref()
                .is_some_and(|html| html.contains(needle));
            check("bodyHtml", ok, format!("{:?}", decoded.body_html));
        }
        None => check(
            "bodyHtml",
            decoded.body_html.is_none(),
            format!("{:?}", decoded.body_html),
        ),
    }

    let attachments: Vec<(String, String)> = decoded
        .attachments
        .iter()
        .map(|a| (a.filename.clone(), a.mime_type.clone()))
        .collect();
    let expected_attachments: Vec<(String, String)> = expected["attachments"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|a| {
            let filename = a["filename"].as_str().unwrap_or_default().to_string();
            (
                filename,
                a["mimeType"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    check(
        "attachments",
        attachments == expected_attachments,
        format!("{attachments:?}"),
    );
    let ids_present = decoded
        .attachments
        .iter()
        .all(|a| a.attachment_id.is_some());
    check(
        "attachmentId",
        ids_present,
        format!("{:?}", decoded.attachments),
    );

    if let Some(date) = expected.get("date") {
        check(
            "date",
            decoded.date.as_deref() == date.as_str(),
            format!("{:?}", decoded.date),
        );
    }
    if let Some(headers) = expected.get("headers").and_then(Value::as_object) {
        for (header, value) in headers {
            let actual = decoded.headers.get(header);
            check(
                header,
                actual.map(String::as_str) == value.as_str(),
                format!("{actual:?}"),
            );
        }
    }
    failures
}

#[test]
fn eml_corpus_decodes_as_expected() {
    let dir = fixture_dir();
    let expected_text =
        std::fs::read_to_string(dir.join("expected.json")).expect("read expected.json");
    let expected: serde_json::Map<String, Value> =
        serde_json::from_str(&expected_text).expect("parse expected.json");
    assert!(
        expected.len() >= 30,
        "corpus has only {} files",
        expected.len()
    );

    let mut failures = Vec::new();
    for (name, expectation) in &expected {
        let raw = std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("read {name}: {e}"));
        let decoded = decode_message(&to_gmail_message(name, &raw));
        failures.extend(check_fixture(name, expectation, &decoded));
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn eml_corpus_lists_every_file() {
    let dir = fixture_dir();
    let expected_text =
        std::fs::read_to_string(dir.join("expected.json")).expect("read expected.json");
    let expected: serde_json::Map<String, Value> =
        serde_json::from_str(&expected_text).expect("parse expected.json");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .expect("read fixture dir")
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".eml"))
        .collect();
    files.sort();
    let listed: Vec<String> = expected.keys().cloned().collect();
    assert_eq!(files, listed);
}

#[test]
fn composed_message_decodes_back() {
    use super::compose::{Mailbox, OutgoingAttachment, OutgoingMessage, build_message};

    let subject = "Status — 東京オフィスの四半期報告書 🎉";
    let message = OutgoingMessage {
        from: Some(Mailbox {
            name: Some("Doe, Jane".into()),
            email: "jane@example.com".into(),
        }),
        to: vec![Mailbox {
            name: Some("Jürgen Groß".into()),
            email: "juergen@example.de".into(),
        }],
        subject: subject.into(),
        text: "Grüße — see the report.\n".into(),
        html: Some("<p>Grüße — see the <b>report</b>.</p>".into()),
        attachments: vec![OutgoingAttachment {
            filename: "Prüfbericht März 2026.pdf".into(),
            mime_type: "application/pdf".into(),
            content: b"%PDF-1.4".to_vec(),
        }],
        ..OutgoingMessage::default()
    };
    let raw = build_message(&message).expect("build failed");
    let decoded = decode_message(&to_gmail_message("composed", &raw));

    assert_eq!(decoded.subject.as_deref(), Some(subject));
    let from = decoded.from.expect("missing from");
    assert_eq!(from.name.as_deref(), Some("Doe, Jane"));
    assert_eq!(decoded.to[0].name.as_deref(), Some("Jürgen Groß"));
    assert_eq!(
        decoded.body_text.as_deref(),
        Some("Grüße — see the report.\n")
    );
    assert_eq!(
        decoded.body_html.as_deref(),
        Some("<p>Grüße — see the <b>report</b>.</p>")
    );
    assert_eq!(decoded.attachments.len(), 1);
    assert_eq!(decoded.attachments[0].filename, "Prüfbericht März 2026.pdf");
    assert!(decoded.date.is_some());
}
