//! Unit tests of the message composer, checked by parsing the output back with mail-parser.

use super::*;
use mail_parser::{MessageParser, MimeHeaders};

fn mailbox(name: Option<&str>, email: &str) -> Mailbox {
    Mailbox {
        name: name.map(str::to_string),
        email: email.to_string(),
    }
}

fn simple_message(subject: &str) -> OutgoingMessage {
    OutgoingMessage {
        from: Some(mailbox(Some("Ada Lovelace"), "ada@example.com")),
        to: vec![mailbox(None, "bob@example.org")],
        subject: subject.to_string(),
        text: "Hello Bob".to_string(),
        ..OutgoingMessage::default()
    }
}

fn build(message: &OutgoingMessage) -> Vec<u8> {
    match build_message(message) {
        Ok(bytes) => bytes,
        Err(error) => panic!("build_message failed: {error}"),
    }
}

fn header_block(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    text.split("\r\n\r\n")
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Asserts the line and encoded-word limits on a whole built message.
fn assert_line_limits(raw: &[u8]) {
    let text = String::from_utf8(raw.to_vec()).expect("message is not UTF-8");
    assert!(text.is_ascii(), "message has non-ASCII bytes");
    assert!(
        !text.replace("\r\n", "").contains(['\r', '\n']),
        "bare CR or LF"
    );
    for line in text.split("\r\n") {
        assert!(line.len() <= 998, "line over 998 bytes: {line}");
        assert!(line.len() <= 78, "line over 78 characters: {line}");
    }
    for token in text.split(|ch: char| ch.is_whitespace() || ch == '"') {
        if token.starts_with("=?") {
            assert!(
                token.len() <= 75,
                "encoded word over 75 characters: {token}"
            );
        }
    }
}

#[test]
fn subject_round_trips_with_limits() {
    let subjects = [
        "Quarterly report — 東京オフィスの四半期報告書について、ご確認ください".to_string(),
        format!("Long subject {}", "abcdefghij ".repeat(19))
            .trim()
            .to_string(),
        "x".repeat(200),
        "Launch party 🎉🎉🎉 tonight 🎈🍾🎊🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉 bring friends"
            .to_string(),
        "Ünïcödé ".repeat(25).trim().to_string(),
        "Price: 5 =?utf-8?Q?not_a_word?= really".to_string(),
        "Double  spaced   words".to_string(),
    ];
    for subject in subjects {
        let raw = build(&simple_message(&subject));
        assert_line_limits(&raw);
        let parsed = MessageParser::default().parse(&raw).expect("parse failed");
        assert_eq!(
            parsed.subject(),
            Some(subject.as_str()),
            "raw:\n{}",
            header_block(&raw)
        );
    }
}

#[test]
fn subject_line_break_cannot_inject_header() {
    let raw = build(&simple_message("Hello\r\nBcc: evil@example.com\nX-Evil: 1"));
    let parsed = MessageParser::default().parse(&raw).expect("parse failed");
    assert!(parsed.bcc().is_none());
    assert!(parsed.header("X-Evil").is_none());
    let subject = parsed.subject().unwrap_or_default();
    assert!(subject.starts_with("Hello"), "subject {subject:?}");
    assert!(
        subject.contains("Bcc: evil@example.com"),
        "subject {subject:?}"
    );
    assert_line_limits(&raw);
}

#[test]
fn display_names_round_trip() {
    let names = [
        "Ada Lovelace",
        "Doe, Jane",
        "O'Brien \"Bob\" \\ Jr.",
        "Jürgen Groß — Geschäftsführer",
        "山田 太郎",
        "A very long display name that certainly does not fit on one folded header line at all",
        "José Ñúñez, Director de Operaciones Internacionales para América Latina y el Caribe",
        "Injected\r\nBcc: evil@example.com",
    ];
    let to: Vec<Mailbox> = names
        .iter()
        .enumerate()
        .map(|(index, name)| mailbox(Some(name), &format!("user{index}@example.com")))
        .collect();
    let message = OutgoingMessage {
        to: to.clone(),
        ..simple_message("Names")
    };
    let raw = build(&message);
    assert_line_limits(&raw);

    let parsed = MessageParser::default().parse(&raw).expect("parse failed");
    assert!(parsed.bcc().is_none());
    let parsed_to: Vec<_> = parsed.to().expect("missing To").iter().collect();
    assert_eq!(parsed_to.len(), to.len());
    for (expected, actual) in to.iter().zip(parsed_to) {
        let expected_name = sanitize_header_text(expected.name.as_deref().unwrap_or_default());
        assert_eq!(actual.address(), Some(expected.email.as_str()));
        assert_eq!(
            actual.name(),
            Some(expected_name.trim()),
            "raw:\n{}",
            header_block(&raw)
        );
    }
}

#[test]
fn all_address_fields_written() {
    let message = OutgoingMessage {
        cc: vec![mailbox(Some("Carol"), "carol@example.net")],
        bcc: vec![mailbox(None, "dave@example.net")],
        reply_to: vec![mailbox(Some("Help Desk"), "help@example.com")],
        ..simple_message("Fields")
    };
    let raw = build(&message);
    let parsed = MessageParser::default().parse(&raw).expect("parse failed");
    let first = |address: Option<&mail_parser::Address>| {
        address
            .and_then(|a| a.first())
            .and_then(|a| a.address())
            .map(str::to_string)
    };
    assert_eq!(first(parsed.from()).as_deref(), Some("ada@example.com"));
    assert_eq!(first(parsed.to()).as_deref(), Some("bob@example.org"));
    assert_eq!(first(parsed.cc()).as_deref(), Some("carol@example.net"));
    assert_eq!(first(parsed.bcc()).as_deref(), Some("dave@example.net"));
    assert_eq!(
        first(parsed.reply_to()).as_deref(),
        Some("help@example.com")
    );
    assert!(parsed.date().is_some());
    let message_id = parsed.message_id().unwrap_or_default();
    assert!(
        message_id.ends_with("@example.com"),
        "message id {message_id}"
    );
    let head = header_block(&raw);
    assert!(head.contains("MIME-Version: 1.0\r\n"), "head:\n{head}");
}

#[test]
fn plain_text_only_body() {
    let message = OutgoingMessage {
        text: "Line one\nLine two with ümlaut\n".repeat(3),
        ..simple_message("Text")
    };
    let raw = build(&message);
    assert_line_limits(&raw);
    let parsed = MessageParser::default().parse(&raw).expect("parse failed");
    let content_type = parsed.content_type().expect("missing Content-Type");
    assert_eq!(content_type.ctype(), "text");
    assert_eq!(content_type.subtype(), Some("plain"));
    assert_eq!(content_type.attribute("charset"), Some("utf-8"));
    let body = parsed.body_text(0).unwrap_or_default();
    assert_eq!(body.replace("\r\n", "\n"), message.text);
}

#[test]
fn html_makes_alternative() {
    let message = OutgoingMessage {
        html: Some("<p>Hello <b>Bob</b> — café</p>".into()),
        ..simple_message("Alternative")
    };
    let raw = build(&message);
    assert_line_limits(&raw);
    let parsed = MessageParser::default().parse(&raw).expect("parse failed");
    let content_type = parsed.content_type().expect("missing Content-Type");
    assert_eq!(content_type.subtype(), Some("alternative"));
    assert_eq!(parsed.text_body.len(), 1);
    assert_eq!(parsed.html_body.len(), 1);
    assert_eq!(parsed.body_text(0).as_deref(), Some("Hello Bob"));
    assert_eq!(
        parsed.body_html(0).as_deref(),
        Some("<p>Hello <b>Bob</b> — café</p>")
    );
    let text = String::from_utf8_lossy(&raw);
    let plain_at = text.find("text/plain").unwrap_or(usize::MAX);
    let html_at = text.find("text/html").unwrap_or(0);
    assert!(
        plain_at < html_at,
        "text part must come before the HTML part"
    );
}

#[test]
fn html_without_text_is_single_part() {
    let message = OutgoingMessage {
        text: String::new(),
        html: Some("<p>Only HTML</p>".into()),
        ..simple_message("HTML")
    };
    let parsed_raw = build(&message);
    let parsed = MessageParser::default()
        .parse(&parsed_raw)
        .expect("parse failed");
    let content_type = parsed.content_type().expect("missing Content-Type");
    assert_eq!(content_type.subtype(), Some("html"));
}

#[test]
fn attachments_round_trip() {
    let pdf: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
    let attachments = vec![
        OutgoingAttachment {
            filename: "report.pdf".into(),
            mime_type: "application/pdf".into(),
            content: pdf,
        },
        OutgoingAttachment {
            filename: "Prüfbericht — sehr langer Dateiname für den Test, Version 2 (final).pdf"
                .into(),
            mime_type: "application/pdf".into(),
            content: b"%PDF-1.4 small".to_vec(),
        },
        OutgoingAttachment {
            filename: "日本語のファイル名.txt".into(),
            mime_type: "text/plain".into(),
            content: b"line one\nline two without CR\n".to_vec(),
        },
        OutgoingAttachment {
            filename: "quote\"and\\slash.bin".into(),
            mime_type: String::new(),
            content: Vec::new(),
        },
        OutgoingAttachment {
            filename: format!("{}.csv", "a".repeat(120)),
            mime_type: "text/csv".into(),
            content: b"a,b\r\n1,2\r\n".to_vec(),
        },
    ];
    let message = OutgoingMessage {
        html: Some("<p>See attached</p>".into()),
        attachments: attachments.clone(),
        ..simple_message("Files")
    };
    let raw = build(&message);
    assert_line_limits(&raw);

    let parsed = MessageParser::default().parse(&raw).expect("parse failed");
    let content_type = parsed.content_type().expect("missing Content-Type");
    assert_eq!(content_type.subtype(), Some("mixed"));
    assert_eq!(parsed.body_text(0).as_deref(), Some("Hello Bob"));
    assert_eq!(parsed.body_html(0).as_deref(), Some("<p>See attached</p>"));

    let parsed_attachments: Vec<_> = parsed.attachments().collect();
    assert_eq!(parsed_attachments.len(), attachments.len());
    for (expected, actual) in attachments.iter().zip(parsed_attachments) {
        assert_eq!(actual.attachment_name(), Some(expected.filename.as_str()));
        assert_eq!(
            actual.contents(),
            expected.content.as_slice(),
            "{}",
            expected.filename
        );
        let expected_type = if expected.mime_type.is_empty() {
            "application/octet-stream"
        } else {
            expected.mime_type.as_str()
        };
        let content_type = actual.content_type().expect("missing part Content-Type");
        let actual_type = format!(
            "{}/{}",
            content_type.ctype(),
            content_type.subtype().unwrap_or_default()
        );
        assert_eq!(actual_type, expected_type);
        assert_eq!(
            actual.content_disposition().map(|d| d.ctype()),
            Some("attachment")
        );
    }
    let text = String::from_utf8_lossy(&raw);
    assert!(
        text.contains("filename*0*=utf-8''Pr%C3%BCfbericht"),
        "raw:\n{text}"
    );
}

#[test]
fn reply_headers_written() {
    let message = OutgoingMessage {
        in_reply_to: Some("<parent@example.com>".into()),
        references: Some("<root@example.com>  <parent@example.com>".into()),
        ..simple_message(&reply_subject("Plans"))
    };
    let raw = build(&message);
    let head = header_block(&raw);
    assert!(
        head.contains("\r\nIn-Reply-To: <parent@example.com>\r\n"),
        "head:\n{head}"
    );
    assert!(
        head.contains("\r\nReferences: <root@example.com> <parent@example.com>\r\n"),
        "head:\n{head}"
    );
    let parsed = MessageParser::default().parse(&raw).expect("parse failed");
    assert_eq!(parsed.subject(), Some("Re: Plans"));
}

#[test]
fn long_references_fold() {
    let ids: Vec<String> = (0..30)
        .map(|i| format!("<message-{i}@example.com>"))
        .collect();
    let message = OutgoingMessage {
        references: Some(ids.join(" ")),
        ..simple_message("Thread")
    };
    let raw = build(&message);
    assert_line_limits(&raw);
    let parsed = MessageParser::default().parse(&raw).expect("parse failed");
    let references = parsed.references().as_text_list().map(|list| list.len());
    assert_eq!(references, Some(30));
}

#[test]
fn message_id_without_brackets_gets_them() {
    let message = OutgoingMessage {
        in_reply_to: Some("parent@example.com".into()),
        ..simple_message("x")
    };
    let head = header_block(&build(&message));
    assert!(
        head.contains("In-Reply-To: <parent@example.com>\r\n"),
        "head:\n{head}"
    );
}

#[test]
fn invalid_input_rejected() {
    let bad_cc = OutgoingMessage {
        cc: vec![mailbox(None, "bob@")],
        ..simple_message("x")
    };
    let error = build_message(&bad_cc).unwrap_err();
    assert_eq!(error.to_string(), "invalid email address \"bob@\" in cc");
    assert_eq!(error.param(), Some("cc"));

    let injected = OutgoingMessage {
        to: vec![mailbox(None, "a@example.com\r\nBcc: evil@example.com")],
        ..simple_message("x")
    };
    assert!(matches!(
        build_message(&injected),
        Err(ComposeError::InvalidAddress { field: "to", .. })
    ));

    let nobody = OutgoingMessage {
        to: Vec::new(),
        ..simple_message("x")
    };
    assert_eq!(build_message(&nobody), Err(ComposeError::MissingRecipient));

    let bad_type = OutgoingMessage {
        attachments: vec![OutgoingAttachment {
            filename: "a.bin".into(),
            mime_type: "application/pdf\r\nX-Evil: 1".into(),
            content: Vec::new(),
        }],
        ..simple_message("x")
    };
    let error = build_message(&bad_type).unwrap_err();
    assert_eq!(error.param(), Some("attachments"));

    let long_type = OutgoingMessage {
        attachments: vec![OutgoingAttachment {
            filename: "a.bin".into(),
            mime_type: format!("application/{}", "x".repeat(200)),
            content: Vec::new(),
        }],
        ..simple_message("x")
    };
    assert!(matches!(
        build_message(&long_type),
        Err(ComposeError::InvalidMimeType { .. })
    ));

    let unnamed = OutgoingMessage {
        attachments: vec![OutgoingAttachment {
            filename: " ".into(),
            mime_type: "text/plain".into(),
            content: Vec::new(),
        }],
        ..simple_message("x")
    };
    assert_eq!(
        build_message(&unnamed),
        Err(ComposeError::MissingFilename { index: 0 })
    );

    let bad_id = OutgoingMessage {
        in_reply_to: Some("<a@example.com>\r\nBcc: evil@example.com".into()),
        ..simple_message("x")
    };
    let error = build_message(&bad_id).unwrap_err();
    assert_eq!(error.param(), Some("inReplyTo"));
}

#[test]
fn address_list_parses() {
    let parsed = parse_address_list(
        "Ada Lovelace <ada@example.com>, \"Doe, Jane\" <jane@example.org>,bob@example.net",
    )
    .unwrap();
    assert_eq!(
        parsed,
        vec![
            mailbox(Some("Ada Lovelace"), "ada@example.com"),
            mailbox(Some("Doe, Jane"), "jane@example.org"),
            mailbox(None, "bob@example.net"),
        ]
    );
    assert_eq!(parse_address_list("  ").unwrap(), Vec::new());
    let group = parse_address_list("Team: a@example.com, b@example.com;").unwrap();
    assert_eq!(group.len(), 2);
    let encoded = parse_address_list("=?utf-8?Q?J=C3=BCrgen?= <j@example.de>").unwrap();
    assert_eq!(encoded[0].name.as_deref(), Some("Jürgen"));
}

#[test]
fn address_list_rejects_invalid() {
    let cases = [
        ("bob@", "invalid email address \"bob@\""),
        ("not an address", "invalid email address \"not an address\""),
        (
            "a@example.com, @example.com",
            "invalid email address \"@example.com\"",
        ),
        (
            "Bob <bob@localhost>",
            "invalid email address \"bob@localhost\"",
        ),
        ("x@exa mple.com", "invalid email address"),
    ];
    for (input, expected_start) in cases {
        let error = parse_address_list(input).unwrap_err().to_string();
        assert!(
            error.starts_with(expected_start),
            "input {input:?}: {error}"
        );
    }
    assert_eq!(
        parse_address_list("a@example.com\r\nBcc: evil@example.com"),
        Err(AddressError::ControlCharacter)
    );
}

#[test]
fn email_validation() {
    for valid in [
        "a@example.com",
        "first.last+tag@mail.example.co.uk",
        "x_y@sub-domain.example",
    ] {
        assert!(is_valid_email(valid), "{valid}");
    }
    for invalid in [
        "",
        "a",
        "a@b",
        "a@@example.com",
        ".a@example.com",
        "a..b@example.com",
        "a@-example.com",
        "a@example..com",
        "ä@example.com",
        "a b@example.com",
    ] {
        assert!(!is_valid_email(invalid), "{invalid}");
    }
}

#[test]
fn reply_subject_adds_prefix_once() {
    let cases = [
        ("Plans", "Re: Plans"),
        ("Re: Plans", "Re: Plans"),
        ("RE: Plans", "RE: Plans"),
        ("re:Plans", "re:Plans"),
        ("Fwd: Plans", "Re: Fwd: Plans"),
        ("", "Re: "),
        ("Ré: x", "Re: Ré: x"),
    ];
    for (input, expected) in cases {
        assert_eq!(reply_subject(input), expected, "input {input:?}");
    }
}

#[test]
fn reply_references_chain() {
    assert_eq!(
        reply_references(Some("<a@x.com> <b@x.com>"), Some("<b@x.com>"), "<c@x.com>"),
        "<a@x.com> <b@x.com> <c@x.com>"
    );
    assert_eq!(
        reply_references(None, Some("<b@x.com>"), "<c@x.com>"),
        "<b@x.com> <c@x.com>"
    );
    assert_eq!(reply_references(Some("  "), None, "<c@x.com>"), "<c@x.com>");
    assert_eq!(
        reply_references(Some("<a@x.com>\r\n <c@x.com>"), None, "<c@x.com>"),
        "<a@x.com> <c@x.com>"
    );
}

#[test]
fn ascii_subject_that_looks_encoded_stays_literal() {
    let subject = "=?utf-8?B?SGFja2Vk?=";
    let raw = build(&simple_message(subject));
    let parsed = MessageParser::default().parse(&raw).expect("parses");
    assert_eq!(parsed.subject(), Some(subject));
}

#[test]
fn body_line_breaks_become_crlf() {
    for text in ["one\ntwo\rthree\r\nfour", "é\nü"] {
        let mut message = simple_message("Lines");
        message.text = text.to_string();
        message.html = Some(format!("<p>{text}</p>"));
        let raw = build(&message);
        let parsed = MessageParser::default().parse(&raw).expect("parses");
        let body = parsed.body_text(0).expect("text part").into_owned();
        assert!(
            !body.replace("\r\n", "").contains(['\r', '\n']),
            "bare line break in {body:?}"
        );
        assert_eq!(
            body.matches("\r\n").count(),
            text.matches(['\r', '\n']).count() - text.matches("\r\n").count()
        );
    }
}
