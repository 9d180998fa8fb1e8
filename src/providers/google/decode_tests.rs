//! Unit tests of the Gmail message decoder on hand-built `Message` resources.

use super::*;
use crate::providers::google::wire::MessagePartBody;

fn encode(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn headers(pairs: &[(&str, &str)]) -> Vec<MessagePartHeader> {
    pairs
        .iter()
        .map(|(name, value)| MessagePartHeader {
            name: name.to_string(),
            value: value.to_string(),
        })
        .collect()
}

fn leaf(mime_type: &str, content_type: &str, bytes: &[u8]) -> MessagePart {
    MessagePart {
        mime_type: Some(mime_type.into()),
        filename: Some(String::new()),
        headers: headers(&[("Content-Type", content_type)]),
        body: Some(MessagePartBody {
            attachment_id: None,
            size: bytes.len() as i64,
            data: Some(encode(bytes)),
        }),
        ..MessagePart::default()
    }
}

fn attachment(mime_type: &str, filename: &str, id: &str, size: i64) -> MessagePart {
    MessagePart {
        mime_type: Some(mime_type.into()),
        filename: Some(filename.into()),
        headers: headers(&[
            ("Content-Type", mime_type),
            ("Content-Disposition", "attachment"),
        ]),
        body: Some(MessagePartBody {
            attachment_id: Some(id.into()),
            size,
            data: None,
        }),
        ..MessagePart::default()
    }
}

fn multipart(mime_type: &str, parts: Vec<MessagePart>) -> MessagePart {
    MessagePart {
        mime_type: Some(mime_type.into()),
        headers: headers(&[("Content-Type", &format!("{mime_type}; boundary=b"))]),
        body: Some(MessagePartBody::default()),
        parts,
        ..MessagePart::default()
    }
}

fn message_with(payload: MessagePart) -> GmailMessage {
    GmailMessage {
        id: "m1".into(),
        thread_id: Some("t1".into()),
        label_ids: vec!["INBOX".into(), "UNREAD".into()],
        snippet: Some("Hi".into()),
        payload: Some(payload),
        ..GmailMessage::default()
    }
}

#[test]
fn base64url_with_and_without_padding() {
    assert_eq!(decode_base64url("SGk=").unwrap(), b"Hi");
    assert_eq!(decode_base64url("SGk").unwrap(), b"Hi");
    assert_eq!(decode_base64url("SGVsbG8_").unwrap(), b"Hello?");
    assert_eq!(decode_base64url("SGVsbG8/").unwrap(), b"Hello?");
    assert_eq!(decode_base64url("SGVs\r\nbG8-\n").unwrap(), b"Hello>");
    assert_eq!(decode_base64url("").unwrap(), b"");
}

#[test]
fn base64url_rejects_garbage() {
    assert!(decode_base64url("S").is_err());
    assert!(decode_base64url("SG*k").is_err());
}

#[test]
fn text_charsets_decode() {
    let cases: [(&[u8], Option<&str>, &str); 10] = [
        (b"caf\xe9", Some("iso-8859-1"), "café"),
        (b"caf\xe9", Some("\"Latin1\""), "café"),
        (
            b"\x93quoted\x94 \x80",
            Some("windows-1252"),
            "\u{201c}quoted\u{201d} €",
        ),
        (b"\xf0\xd2\xc9\xd7\xc5\xd4", Some("KOI8-R"), "Привет"),
        (b"\x93\xfa\x96\x7b", Some("shift_jis"), "日本"),
        (b"\x1b$BF|K\\\x1b(B", Some("ISO-2022-JP"), "日本"),
        (b"\xd6\xd0\xce\xc4", Some("gb2312"), "中文"),
        (b"\xa4\xa4\xa4\xe5", Some("big5"), "中文"),
        (b"\xef\xbb\xbfhello", Some("utf-8"), "hello"),
        (b"ok \xff", Some("x-unknown"), "ok \u{fffd}"),
    ];
    for (bytes, charset, expected) in cases {
        assert_eq!(decode_text(bytes, charset), expected, "charset {charset:?}");
    }
    assert_eq!(decode_text(b"plain", None), "plain");
}

#[test]
fn mixed_alternative_and_pdf() {
    let payload = MessagePart {
        headers: headers(&[
            ("Subject", "Quarterly report"),
            ("From", "Ada Lovelace <ada@example.com>"),
            ("To", "bob@example.org, \"Doe, Jane\" <jane@example.net>"),
            ("Date", "Tue, 1 Dec 2026 10:30:00 +0100"),
            ("Message-ID", "<r1@example.com>"),
        ]),
        ..multipart(
            "multipart/mixed",
            vec![
                multipart(
                    "multipart/alternative",
                    vec![
                        leaf("text/plain", "text/plain; charset=utf-8", b"Plain body\r\n"),
                        leaf("text/html", "text/html; charset=utf-8", b"<p>HTML body</p>"),
                    ],
                ),
                attachment("application/pdf", "report.pdf", "att-1", 48213),
            ],
        )
    };
    let decoded = decode_message(&message_with(payload));

    assert_eq!(decoded.subject.as_deref(), Some("Quarterly report"));
    assert_eq!(decoded.body_text.as_deref(), Some("Plain body\n"));
    assert_eq!(decoded.body_html.as_deref(), Some("<p>HTML body</p>"));
    assert_eq!(decoded.attachments.len(), 1);
    assert_eq!(decoded.attachments[0].filename, "report.pdf");
    assert_eq!(
        decoded.attachments[0].attachment_id.as_deref(),
        Some("att-1")
    );
    assert_eq!(decoded.attachments[0].mime_type, "application/pdf");
    assert_eq!(decoded.attachments[0].size, 48213);
    let from = decoded.from.unwrap();
    assert_eq!(from.email, "ada@example.com");
    assert_eq!(from.name.as_deref(), Some("Ada Lovelace"));
    assert_eq!(decoded.to.len(), 2);
    assert_eq!(decoded.to[1].name.as_deref(), Some("Doe, Jane"));
    assert_eq!(decoded.date.as_deref(), Some("2026-12-01T09:30:00Z"));
    assert!(!decoded.is_read);
    assert_eq!(decoded.labels, vec!["INBOX", "UNREAD"]);
    assert_eq!(
        decoded.headers.get("Message-ID").map(String::as_str),
        Some("<r1@example.com>")
    );
}

#[test]
fn single_part_body_in_payload() {
    let mut payload = leaf(
        "text/plain",
        "text/plain; charset=\"ISO-8859-1\"",
        b"Gr\xfc\xdfe",
    );
    payload.headers.push(MessagePartHeader {
        name: "Subject".into(),
        value: "Hallo".into(),
    });
    let decoded = decode_message(&message_with(payload));
    assert_eq!(decoded.body_text.as_deref(), Some("Grüße"));
    assert_eq!(decoded.body_html, None);
    assert!(decoded.attachments.is_empty());
}

#[test]
fn attachment_only_and_empty_bodies() {
    let mut large_text = leaf("text/plain", "text/plain", b"");
    large_text.body = Some(MessagePartBody {
        attachment_id: Some("big".into()),
        size: 9_000_000,
        data: None,
    });
    let mut empty_html = leaf("text/html", "text/html", b"");
    empty_html.body = Some(MessagePartBody {
        attachment_id: None,
        size: 0,
        data: None,
    });
    let no_body = MessagePart {
        mime_type: Some("image/png".into()),
        ..MessagePart::default()
    };
    let payload = multipart("multipart/mixed", vec![large_text, empty_html, no_body]);
    let decoded = decode_message(&message_with(payload));
    assert_eq!(decoded.body_text, None);
    assert_eq!(decoded.body_html, None);
    // The text behind an attachmentId is listed so that a client can still fetch it.
    assert_eq!(filenames(&decoded), vec!["attachment.txt"]);
    assert_eq!(decoded.attachments[0].attachment_id.as_deref(), Some("big"));
    assert_eq!(decoded.attachments[0].size, 9_000_000);
}

#[test]
fn empty_text_part_is_skipped() {
    let mut empty = leaf("text/plain", "text/plain", b"");
    if let Some(body) = empty.body.as_mut() {
        body.data = Some(String::new());
    }
    let payload = multipart(
        "multipart/mixed",
        vec![empty, leaf("text/plain", "text/plain", b"second")],
    );
    let decoded = decode_message(&message_with(payload));
    assert_eq!(decoded.body_text.as_deref(), Some("second"));
}

#[test]
fn empty_message_decodes() {
    let decoded = decode_message(&GmailMessage::default());
    assert_eq!(decoded.id, "");
    assert_eq!(decoded.subject, None);
    assert_eq!(decoded.snippet, "");
    assert_eq!(decoded.from, None);
    assert_eq!(decoded.date, None);
    assert!(decoded.is_read);
    assert!(decoded.headers.is_empty());
}

#[test]
fn html_only_falls_back_to_text() {
    let html = b"<html><body><h1>Sale</h1><p>50% off <b>today</b></p></body></html>";
    let decoded = decode_message(&message_with(leaf("text/html", "text/html", html)));
    let text = decoded.body_text.unwrap();
    assert!(text.contains("Sale"), "text {text:?}");
    assert!(text.contains("50% off"), "text {text:?}");
    assert!(!text.contains("<p>"), "text {text:?}");
    assert!(decoded.body_html.unwrap().contains("<h1>Sale</h1>"));
}

#[test]
fn quoted_printable_cr_before_break_normalizes() {
    // What a quoted-printable `line one=0D` followed by CRLF decodes to.
    let bytes = b"line one\r\r\nline two\r\nline three\rend";
    let decoded = decode_message(&message_with(leaf("text/plain", "text/plain", bytes)));
    assert_eq!(
        decoded.body_text.as_deref(),
        Some("line one\nline two\nline three\nend")
    );
}

#[test]
fn leftover_encoded_filenames_decode() {
    let q_word = attachment("text/plain", "=?utf-8?Q?test=5F=C3=A4.txt?=", "a1", 5);
    let mut continued = attachment("text/plain", "", "a2", 5);
    continued.headers = headers(&[
        ("Content-Type", "text/plain; charset=utf-8"),
        (
            "Content-Disposition",
            "attachment; filename*0*=utf-8''%E6%97%A5%E6%9C%AC; filename*1*=%E8%AA%9E.txt",
        ),
    ]);
    let extended_left = attachment("application/pdf", "utf-8''Pr%C3%BCfbericht.pdf", "a3", 9);
    let payload = multipart(
        "multipart/mixed",
        vec![
            leaf("text/plain", "text/plain", b"see files"),
            q_word,
            continued,
            extended_left,
        ],
    );
    let decoded = decode_message(&message_with(payload));
    let names: Vec<&str> = decoded
        .attachments
        .iter()
        .map(|a| a.filename.as_str())
        .collect();
    assert_eq!(names, vec!["test_ä.txt", "日本語.txt", "Prüfbericht.pdf"]);
    assert_eq!(decoded.body_text.as_deref(), Some("see files"));
}

#[test]
fn named_text_without_disposition_is_body() {
    let mut notes = leaf(
        "text/plain",
        "text/plain; name=notes.txt",
        b"attached notes",
    );
    notes.filename = Some("notes.txt".into());
    let payload = multipart(
        "multipart/mixed",
        vec![notes, leaf("text/plain", "text/plain", b"real body")],
    );
    let decoded = decode_message(&message_with(payload));
    assert_eq!(
        decoded.body_text.as_deref(),
        Some("attached notes\n\nreal body")
    );
    assert!(decoded.attachments.is_empty(), "{:?}", decoded.attachments);
}

#[test]
fn disposition_attachment_without_name() {
    let mut part = attachment("application/octet-stream", "", "a1", 3);
    part.headers = headers(&[("Content-Disposition", "attachment")]);
    let mut forwarded = attachment("message/rfc822", "", "a2", 300);
    forwarded.headers.clear();
    let payload = multipart(
        "multipart/mixed",
        vec![leaf("text/plain", "text/plain", b"body"), part, forwarded],
    );
    let decoded = decode_message(&message_with(payload));
    let names: Vec<&str> = decoded
        .attachments
        .iter()
        .map(|a| a.filename.as_str())
        .collect();
    assert_eq!(names, vec!["attachment.bin", "message.eml"]);
}

#[test]
fn inline_image_with_name_is_attachment() {
    let mut image = attachment("image/png", "logo.png", "img", 1200);
    image.headers = headers(&[
        ("Content-Type", "image/png; name=\"logo.png\""),
        ("Content-Disposition", "inline; filename=\"logo.png\""),
        ("Content-ID", "<logo@example.com>"),
    ]);
    let related = multipart(
        "multipart/related",
        vec![
            leaf(
                "text/html",
                "text/html",
                b"<img src=\"cid:logo@example.com\">",
            ),
            image,
        ],
    );
    let decoded = decode_message(&message_with(related));
    assert_eq!(decoded.attachments.len(), 1);
    assert_eq!(decoded.attachments[0].mime_type, "image/png");
}

#[test]
fn encoded_headers_decode() {
    let payload = MessagePart {
        headers: headers(&[
            (
                "Subject",
                "=?utf-8?B?5pel5pys6Kqe?= =?utf-8?Q?_and_caf=C3=A9?=",
            ),
            (
                "From",
                "=?iso-8859-1?Q?Andr=E9_M=FCller?= <andre@example.com>",
            ),
            ("Cc", "=?utf-8?Q?Doe=2C_Jane?= <jane@example.com>"),
            ("X-Note", "=?shift_jis?B?k/qWe4zq?="),
        ]),
        ..leaf("text/plain", "text/plain", b"x")
    };
    let decoded = decode_message(&message_with(payload));
    assert_eq!(decoded.subject.as_deref(), Some("日本語 and café"));
    assert_eq!(decoded.from.unwrap().name.as_deref(), Some("André Müller"));
    assert_eq!(decoded.cc[0].name.as_deref(), Some("Doe, Jane"));
    assert_eq!(
        decoded.headers.get("X-Note").map(String::as_str),
        Some("日本語")
    );
}

/// Mailboxes as (email, display name) pairs.
type Mailboxes<'a> = Vec<(&'a str, Option<&'a str>)>;

#[test]
fn address_lists_tolerate_groups_and_garbage() {
    let cases: [(&str, Mailboxes); 9] = [
        ("undisclosed-recipients:;", vec![]),
        (
            "Team: a@example.com, \"B\" <b@example.com>;, c@example.org",
            vec![
                ("a@example.com", None),
                ("b@example.com", Some("B")),
                ("c@example.org", None),
            ],
        ),
        ("not an address at all", vec![]),
        ("bob@, ok@example.com", vec![("ok@example.com", None)]),
        ("<>", vec![]),
        (
            "x@example.com (Comment Name)",
            vec![("x@example.com", Some("Comment Name"))],
        ),
        (
            "Doe, Jane <jane@example.com>",
            vec![("jane@example.com", Some("Doe, Jane"))],
        ),
        (
            "Doe, Jane <j@example.com>, Roe, R. <r@example.com>",
            vec![
                ("j@example.com", Some("Doe, Jane")),
                ("r@example.com", Some("Roe, R.")),
            ],
        ),
        ("Doe, jane@example.com", vec![("jane@example.com", None)]),
    ];
    for (input, expected) in cases {
        let parsed = parse_addresses(input);
        let actual: Mailboxes = parsed
            .iter()
            .map(|address| (address.email.as_str(), address.name.as_deref()))
            .collect();
        assert_eq!(actual, expected, "input {input:?}");
    }
}

#[test]
fn headers_keep_first_occurrence() {
    let payload = MessagePart {
        headers: headers(&[
            ("Received", "first"),
            ("received", "second"),
            (
                "List-Unsubscribe",
                "<mailto:u@example.com>,\r\n <https://example.com/u>",
            ),
        ]),
        ..leaf("text/plain", "text/plain", b"x")
    };
    let decoded = decode_message(&message_with(payload));
    assert_eq!(
        decoded.headers.get("Received").map(String::as_str),
        Some("first")
    );
    assert!(!decoded.headers.contains_key("received"));
    assert_eq!(
        decoded.headers.get("List-Unsubscribe").map(String::as_str),
        Some("<mailto:u@example.com>, <https://example.com/u>")
    );
}

#[test]
fn dates_convert_to_utc() {
    let cases = [
        (
            "Tue, 1 Dec 2026 09:30:00 +0000",
            Some("2026-12-01T09:30:00Z"),
        ),
        ("Tue, 1 Dec 2026 04:30:00 EST", Some("2026-12-01T09:30:00Z")),
        ("1 Dec 2026 09:30 GMT", Some("2026-12-01T09:30:00Z")),
        (
            "Mon, 30 Nov 2026 23:30:00 -1000",
            Some("2026-12-01T09:30:00Z"),
        ),
        ("Tue, 01 Dec 26 02:30:00 PDT", Some("2026-12-01T09:30:00Z")),
        (
            "Tue, 1 Dec 2026 09:30:00 +0000 (UTC)",
            Some("2026-12-01T09:30:00Z"),
        ),
        ("not a date", None),
    ];
    for (input, expected) in cases {
        let headers = headers(&[("Date", input)]);
        assert_eq!(
            message_date(&headers, None).as_deref(),
            expected,
            "date {input:?}"
        );
    }
}

#[test]
fn date_falls_back_to_internal_date() {
    assert_eq!(
        message_date(&[], Some("1764581400000")).as_deref(),
        Some("2025-12-01T09:30:00Z")
    );
    let bad_header = headers(&[("Date", "garbage")]);
    assert_eq!(
        message_date(&bad_header, Some("1764581400000")).as_deref(),
        Some("2025-12-01T09:30:00Z")
    );
    assert_eq!(message_date(&[], Some("soon")), None);
}

#[test]
fn snippet_entities_unescape() {
    let cases = [
        (
            "It&#39;s &quot;fine&quot; &amp; done",
            "It's \"fine\" & done",
        ),
        ("&lt;b&gt; &#x263A; &nbsp;x", "<b> \u{263a} \u{a0}x"),
        ("AT&T & co; &unknown; &#xZZ;", "AT&T & co; &unknown; &#xZZ;"),
        ("trailing &", "trailing &"),
    ];
    for (input, expected) in cases {
        assert_eq!(unescape_html_entities(input), expected);
    }
}

#[test]
fn header_finds_message_id() {
    let payload = MessagePart {
        headers: headers(&[("Message-Id", "<abc@example.com>")]),
        ..MessagePart::default()
    };
    let message = message_with(payload);
    assert_eq!(header(&message, "Message-ID"), Some("<abc@example.com>"));
    assert_eq!(header(&message, "References"), None);
    assert_eq!(header(&GmailMessage::default(), "Message-ID"), None);
}

#[test]
fn deep_nesting_does_not_overflow() {
    let mut part = leaf("text/plain", "text/plain", b"deep");
    for _ in 0..200 {
        part = multipart("multipart/mixed", vec![part]);
    }
    let decoded = decode_message(&message_with(part));
    assert_eq!(decoded.body_text, None);
}

fn with_headers(mut part: MessagePart, pairs: &[(&str, &str)]) -> MessagePart {
    part.headers = headers(pairs);
    part
}

fn filenames(message: &Message) -> Vec<&str> {
    message
        .attachments
        .iter()
        .map(|attachment| attachment.filename.as_str())
        .collect()
}

#[test]
fn named_inline_text_is_body() {
    let mut single = with_headers(
        leaf("text/plain", "text/plain", b"quarterly numbers"),
        &[
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Disposition", "inline; filename=report.txt"),
        ],
    );
    single.filename = Some("report.txt".into());
    let decoded = decode_message(&message_with(single));
    assert_eq!(decoded.body_text.as_deref(), Some("quarterly numbers"));
    // Sent inline with a file name: shown as the body and still listed as the file.
    assert_eq!(filenames(&decoded), vec!["report.txt"]);
}

#[test]
fn named_alternatives_are_bodies() {
    let mut plain = leaf("text/plain", "text/plain; name=body.txt", b"plain body");
    plain.filename = Some("body.txt".into());
    let mut html = leaf(
        "text/html",
        "text/html; name=body.html",
        b"<p>html body</p>",
    );
    html.filename = Some("body.html".into());
    let decoded = decode_message(&message_with(multipart(
        "multipart/alternative",
        vec![plain, html],
    )));
    assert_eq!(decoded.body_text.as_deref(), Some("plain body"));
    assert_eq!(decoded.body_html.as_deref(), Some("<p>html body</p>"));
    assert!(decoded.attachments.is_empty(), "{:?}", decoded.attachments);
}

#[test]
fn attachment_disposition_text_is_attachment() {
    let notes = with_headers(
        leaf("text/plain", "text/plain", b"attached notes"),
        &[
            ("Content-Type", "text/plain"),
            ("Content-Disposition", "attachment"),
        ],
    );
    let payload = multipart(
        "multipart/mixed",
        vec![leaf("text/plain", "text/plain", b"real body"), notes],
    );
    let decoded = decode_message(&message_with(payload));
    assert_eq!(decoded.body_text.as_deref(), Some("real body"));
    assert_eq!(filenames(&decoded), vec!["attachment.txt"]);
}

#[test]
fn text_around_inline_image_joins() {
    let mut image = attachment("image/png", "photo.png", "img", 2048);
    image.headers = headers(&[
        ("Content-Type", "image/png; name=photo.png"),
        ("Content-Disposition", "inline; filename=photo.png"),
    ]);
    let payload = multipart(
        "multipart/mixed",
        vec![
            leaf("text/plain", "text/plain", b"first"),
            image,
            leaf("text/plain", "text/plain", b"second after image"),
        ],
    );
    let decoded = decode_message(&message_with(payload));
    assert_eq!(
        decoded.body_text.as_deref(),
        Some("first\n\nsecond after image")
    );
    assert_eq!(filenames(&decoded), vec!["photo.png"]);
}

#[test]
fn several_html_parts_join() {
    let first = multipart(
        "multipart/alternative",
        vec![
            leaf("text/plain", "text/plain", b"first"),
            leaf("text/html", "text/html", b"<p>first</p>"),
        ],
    );
    let payload = multipart(
        "multipart/mixed",
        vec![
            first,
            attachment("image/png", "photo.png", "img", 2048),
            leaf("text/html", "text/html", b"<p>second</p>"),
        ],
    );
    let decoded = decode_message(&message_with(payload));
    assert_eq!(
        decoded.body_html.as_deref(),
        Some("<p>first</p>\n\n<p>second</p>")
    );
    // The second piece has only HTML, so bodyText gets a plain-text rendering of it.
    assert_eq!(decoded.body_text.as_deref(), Some("first\n\nsecond"));
}

#[test]
fn alternative_takes_last_of_each_type() {
    let payload = multipart(
        "multipart/alternative",
        vec![
            leaf("text/plain", "text/plain", b"short"),
            leaf("text/plain", "text/plain", b"richer"),
            leaf("text/html", "text/html", b"<p>html</p>"),
        ],
    );
    let decoded = decode_message(&message_with(payload));
    assert_eq!(decoded.body_text.as_deref(), Some("richer"));
    assert_eq!(decoded.body_html.as_deref(), Some("<p>html</p>"));
    assert!(decoded.attachments.is_empty(), "{:?}", decoded.attachments);
}

#[test]
fn calendar_parts_are_attachments() {
    let ics = b"BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nEND:VCALENDAR\r\n";
    let single = leaf("text/calendar", "text/calendar; method=REQUEST", ics);
    let decoded = decode_message(&message_with(single));
    assert_eq!(decoded.body_text, None);
    assert_eq!(filenames(&decoded), vec!["invite.ics"]);
    assert_eq!(decoded.attachments[0].mime_type, "text/calendar");
    assert_eq!(decoded.attachments[0].size, ics.len() as i64);

    let alternative = multipart(
        "multipart/alternative",
        vec![
            leaf("text/plain", "text/plain", b"You are invited"),
            leaf("text/html", "text/html", b"<p>You are invited</p>"),
            leaf("text/calendar", "text/calendar; method=REQUEST", ics),
        ],
    );
    let decoded = decode_message(&message_with(alternative));
    assert_eq!(decoded.body_text.as_deref(), Some("You are invited"));
    assert_eq!(filenames(&decoded), vec!["invite.ics"]);
}

#[test]
fn unnamed_leaves_get_type_names() {
    let cases = [
        ("application/octet-stream", "attachment.bin"),
        ("application/x-unknown", "attachment.bin"),
        ("image/png", "attachment.png"),
        ("image/jpeg", "attachment.jpg"),
        ("application/pdf", "attachment.pdf"),
        ("text/csv", "attachment.csv"),
        ("application/ics", "invite.ics"),
    ];
    for (mime_type, expected) in cases {
        let part = leaf(mime_type, mime_type, b"data");
        let decoded = decode_message(&message_with(part));
        assert_eq!(filenames(&decoded), vec![expected], "type {mime_type}");
    }
}

#[test]
fn encoded_word_before_quoted_name() {
    let cases = [
        (
            "=?utf-8?Q?Andr=C3=A9?= \"Q. Public\" <aq@example.com>",
            "André Q. Public",
        ),
        (
            "=?utf-8?Q?Andr=C3=A9?= Public <aq@example.com>",
            "André Public",
        ),
        ("\"Q.\" =?utf-8?Q?Andr=C3=A9?= <aq@example.com>", "Q. André"),
        (
            "=?utf-8?Q?Andr=C3=A9?= =?utf-8?Q?_M=C3=BCller?= <aq@example.com>",
            "André Müller",
        ),
        (
            "=?utf-8?Q?Andr=C3=A9?=  \t Public <aq@example.com>",
            "André Public",
        ),
    ];
    for (input, expected) in cases {
        let parsed = parse_addresses(input);
        let name = parsed.first().and_then(|address| address.name.as_deref());
        assert_eq!(name, Some(expected), "input {input:?}");
        assert_eq!(
            parsed.first().map(|a| a.email.as_str()),
            Some("aq@example.com")
        );
    }
}

#[test]
fn html_meta_charset_is_used() {
    let meta_charset =
        b"<html><head><meta charset=\"windows-1252\"></head><body>caf\xe9 \x80</body></html>";
    let decoded = decode_message(&message_with(leaf("text/html", "text/html", meta_charset)));
    let html = decoded.body_html.unwrap_or_default();
    assert!(html.contains("café €"), "html {html:?}");

    let http_equiv = b"<html><head><META HTTP-EQUIV=\"Content-Type\" CONTENT=\"text/html; charset=iso-8859-1\"></head><body>Gr\xfc\xdfe</body></html>";
    let decoded = decode_message(&message_with(leaf("text/html", "text/html", http_equiv)));
    let html = decoded.body_html.unwrap_or_default();
    assert!(html.contains("Grüße"), "html {html:?}");

    // A charset parameter wins over the meta tag.
    let both = b"<meta charset=\"koi8-r\"><p>caf\xc3\xa9</p>";
    let decoded = decode_message(&message_with(leaf(
        "text/html",
        "text/html; charset=utf-8",
        both,
    )));
    assert_eq!(
        decoded.body_html.as_deref(),
        Some("<meta charset=\"koi8-r\"><p>café</p>")
    );
}

#[test]
fn html_metadata_tag_is_not_meta() {
    let html = b"<metadata charset=\"koi8-r\"></metadata><p>caf\xc3\xa9</p>";
    let decoded = decode_message(&message_with(leaf("text/html", "text/html", html)));
    assert!(
        decoded
            .body_html
            .unwrap_or_default()
            .ends_with("<p>café</p>")
    );
}

#[test]
fn html_meta_beyond_sniff_window_ignored() {
    let mut html = format!("<!--{}-->", "x".repeat(1100)).into_bytes();
    html.extend_from_slice(b"<meta charset=\"windows-1252\"><p>caf\xc3\xa9</p>");
    let decoded = decode_message(&message_with(leaf("text/html", "text/html", &html)));
    assert!(
        decoded
            .body_html
            .unwrap_or_default()
            .ends_with("<p>café</p>")
    );
}

#[test]
fn flowed_text_unwraps() {
    let flowed = b"This paragraph was \r\nwrapped by the \r\nsender.\r\n\r\n> quoted and \r\n> wrapped\r\n>> deeper\r\n stuffed line\r\n-- \r\nSignature";
    let part = leaf(
        "text/plain",
        "text/plain; charset=utf-8; format=flowed",
        flowed,
    );
    let decoded = decode_message(&message_with(part));
    assert_eq!(
        decoded.body_text.as_deref(),
        Some(
            "This paragraph was wrapped by the sender.\n\n> quoted and wrapped\n>> deeper\nstuffed line\n-- \nSignature"
        )
    );

    let delsp = b"Long\xe6\x97\xa5 \r\n\xe6\x9c\xac\xe8\xaa\x9e words \r\njoined";
    let part = leaf(
        "text/plain",
        "text/plain; charset=utf-8; format=flowed; delsp=yes",
        delsp,
    );
    let decoded = decode_message(&message_with(part));
    assert_eq!(decoded.body_text.as_deref(), Some("Long日本語 wordsjoined"));

    let fixed = leaf("text/plain", "text/plain", b"kept \r\nbreak");
    let decoded = decode_message(&message_with(fixed));
    assert_eq!(decoded.body_text.as_deref(), Some("kept \nbreak"));
}

#[test]
fn opaque_multipart_is_attachment() {
    let mut opaque = attachment("multipart/mixed", "", "deep", 512);
    opaque.headers = headers(&[("Content-Type", "multipart/mixed; boundary=x")]);
    let payload = multipart(
        "multipart/mixed",
        vec![leaf("text/plain", "text/plain", b"top"), opaque],
    );
    let decoded = decode_message(&message_with(payload));
    assert_eq!(decoded.body_text.as_deref(), Some("top"));
    assert_eq!(filenames(&decoded), vec!["attachment.bin"]);
}

#[test]
fn fetched_named_body_is_read() {
    // Gmail serves a part with a file name by attachmentId, without inline data.
    let mut report = attachment("text/plain", "report.txt", "att-report", 17);
    report.headers = headers(&[
        ("Content-Type", "text/plain; charset=iso-8859-1"),
        ("Content-Disposition", "inline; filename=report.txt"),
    ]);
    let message = message_with(report);
    assert_eq!(
        body_attachments(&message),
        vec![BodyAttachment {
            attachment_id: "att-report".into(),
            size: 17,
        }]
    );

    let unfetched = decode_message(&message);
    assert_eq!(unfetched.body_text, None);
    assert_eq!(filenames(&unfetched), vec!["report.txt"]);

    let fetched = HashMap::from([("att-report".to_string(), b"Gr\xfc\xdfe im Bericht".to_vec())]);
    let decoded = decode_message_with_bodies(&message, &fetched);
    assert_eq!(decoded.body_text.as_deref(), Some("Grüße im Bericht"));
    assert_eq!(filenames(&decoded), vec!["report.txt"]);
    assert_eq!(
        decoded.attachments[0].attachment_id.as_deref(),
        Some("att-report")
    );
}

#[test]
fn body_attachments_skip_real_attachments() {
    let payload = multipart(
        "multipart/mixed",
        vec![
            leaf("text/plain", "text/plain", b"inline body"),
            attachment("text/plain", "notes.txt", "att-notes", 5),
            attachment("application/pdf", "a.pdf", "att-pdf", 900),
            {
                let mut html = attachment("text/html", "page.html", "att-html", 40);
                html.headers = headers(&[("Content-Type", "text/html; name=page.html")]);
                html
            },
        ],
    );
    let mut forwarded = attachment("message/rfc822", "fwd.eml", "att-fwd", 300);
    forwarded.parts = vec![attachment("text/plain", "inner.txt", "att-inner", 5)];
    forwarded.parts[0].headers = headers(&[("Content-Type", "text/plain")]);
    let payload = multipart("multipart/mixed", vec![payload, forwarded]);
    let ids: Vec<String> = body_attachments(&message_with(payload))
        .into_iter()
        .map(|found| found.attachment_id)
        .collect();
    assert_eq!(ids, vec!["att-html"]);
}

#[test]
fn deeply_nested_html_is_stripped_not_rendered() {
    let depth = 20_000;
    let html = format!(
        "{}deep text{}",
        "<div>".repeat(depth),
        "</div>".repeat(depth)
    );
    // html2text needs minutes for this depth, so the document must take the
    // tag-stripping path.
    assert!(super::html_nesting_depth(&html) > super::MAX_RENDERED_HTML_DEPTH);
    let text = super::html_to_text(&html).unwrap_or_default();
    assert_eq!(text, "deep text");
}

#[test]
fn stripped_html_drops_scripts_and_keeps_lines() {
    let html = "<p>Hello &amp; welcome</p><SCRIPT>alert(1)</script><div>second<br>third</div>";
    let text = super::strip_tags(html);
    assert_eq!(text, "Hello & welcome\nsecond\nthird");
}

#[test]
fn nesting_depth_ignores_void_elements() {
    assert_eq!(
        super::html_nesting_depth("<p>a<br>b<img src=x><br/></p>"),
        1
    );
    assert_eq!(
        super::html_nesting_depth("<div><div><span>x</span></div></div>"),
        3
    );
}

#[test]
fn long_address_header_is_parsed() {
    // 100,000 words: a quadratic scan would run for minutes instead of milliseconds.
    let words = vec!["word"; 100_000].join(" ");
    let addresses = super::parse_addresses(&words);
    assert!(addresses.is_empty(), "no word is an address");
}
