//! Unit tests of the eml to Gmail payload conversion.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE;
use serde_json::Value;

use super::*;

fn parse(raw: &[u8]) -> ParsedEmail {
    parse_email(raw).expect("test message parses")
}

fn payload_json(parsed: &ParsedEmail) -> Value {
    parsed
        .payload
        .to_json(&|part_id: &str| format!("att-{part_id}"))
}

fn data_of(part: &Value) -> Vec<u8> {
    let data = part["body"]["data"].as_str().expect("body has data");
    URL_SAFE.decode(data).expect("data is padded base64url")
}

const MIXED: &[u8] = b"From: Ada Lovelace <ada@example.com>\r\n\
To: bob@example.com\r\n\
Subject: Quarterly report\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"outer\"\r\n\
\r\n\
--outer\r\n\
Content-Type: multipart/alternative; boundary=\"inner\"\r\n\
\r\n\
--inner\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
\r\n\
Numbers are up.\r\n\
--inner\r\n\
Content-Type: text/html; charset=utf-8\r\n\
\r\n\
<p>Numbers are <b>up</b>.</p>\r\n\
--inner--\r\n\
\r\n\
--outer\r\n\
Content-Type: application/pdf; name=\"report.pdf\"\r\n\
Content-Disposition: attachment; filename=\"report.pdf\"\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
JVBERi0xLjQK\r\n\
--outer--\r\n";

#[test]
fn mixed_with_alternative_and_pdf() {
    let parsed = parse(MIXED);
    let payload = payload_json(&parsed);

    assert_eq!(payload["partId"], "");
    assert_eq!(payload["mimeType"], "multipart/mixed");
    assert_eq!(payload["body"]["size"], 0);
    assert_eq!(payload["parts"][0]["partId"], "0");
    assert_eq!(payload["parts"][0]["mimeType"], "multipart/alternative");
    assert_eq!(payload["parts"][0]["body"]["size"], 0);

    let text = &payload["parts"][0]["parts"][0];
    assert_eq!(text["partId"], "0.0");
    assert_eq!(text["mimeType"], "text/plain");
    assert_eq!(text["filename"], "");
    assert_eq!(data_of(text), b"Numbers are up.".to_vec());
    assert_eq!(text["body"]["size"], 15);

    let html = &payload["parts"][0]["parts"][1];
    assert_eq!(html["partId"], "0.1");
    assert_eq!(html["mimeType"], "text/html");
    assert_eq!(data_of(html), b"<p>Numbers are <b>up</b>.</p>".to_vec());

    let pdf = &payload["parts"][1];
    assert_eq!(pdf["partId"], "1");
    assert_eq!(pdf["mimeType"], "application/pdf");
    assert_eq!(pdf["filename"], "report.pdf");
    assert_eq!(pdf["body"]["attachmentId"], "att-1");
    assert_eq!(pdf["body"]["size"], 9);
    assert!(pdf["body"].get("data").is_none());
    assert!(parsed.has_attachment());
    assert_eq!(parsed.filenames(), vec!["report.pdf"]);
}

#[test]
fn headers_keep_order_and_names() {
    let parsed = parse(b"X-First: 1\r\nsubject: lower case name\r\nX-Last: 2\r\n\r\nbody");
    let names: Vec<&str> = parsed
        .payload
        .headers
        .iter()
        .map(|(n, _)| n.as_str())
        .collect();
    assert_eq!(names, vec!["X-First", "subject", "X-Last"]);
    assert_eq!(parsed.payload.header("SUBJECT"), Some("lower case name"));
}

#[test]
fn single_part_body_is_in_payload() {
    let parsed = parse(b"From: a@example.com\r\nSubject: hi\r\n\r\nJust text.\r\n");
    let payload = payload_json(&parsed);
    assert_eq!(payload["mimeType"], "text/plain");
    assert_eq!(payload["partId"], "");
    assert!(payload.get("parts").is_none());
    assert_eq!(data_of(&payload), b"Just text.\r\n".to_vec());
    assert_eq!(parsed.snippet, "Just text.");
}

#[test]
fn quoted_printable_soft_breaks() {
    let crlf = b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nA long line that is=\r\n wrapped, caf=C3=A9 =3D ok=0D\r\nnext line\r\n";
    let parsed = parse(crlf);
    assert_eq!(
        parsed.payload.body,
        "A long line that is wrapped, café = ok\r\r\nnext line\r\n"
            .as_bytes()
            .to_vec()
    );

    let lf = b"Content-Type: text/plain\nContent-Transfer-Encoding: quoted-printable\n\nsoft=\nbreak=20\nend\n";
    assert_eq!(parse(lf).payload.body, b"softbreak \nend\n".to_vec());
}

#[test]
fn quoted_printable_decoder_edge_cases() {
    assert_eq!(decode_quoted_printable(b"a=\r\nb"), b"ab".to_vec());
    assert_eq!(decode_quoted_printable(b"a=  \nb"), b"ab".to_vec());
    assert_eq!(decode_quoted_printable(b"x=0D=0Ay"), b"x\r\ny".to_vec());
    assert_eq!(
        decode_quoted_printable(b"50% =ZZ off"),
        b"50% =ZZ off".to_vec()
    );
    assert_eq!(decode_quoted_printable(b"end="), b"end".to_vec());
}

#[test]
fn base64_body_is_decoded() {
    let raw = b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\nSGVsbG8s\r\nIHdvcmxk\r\nIQ==\r\n";
    assert_eq!(parse(raw).payload.body, b"Hello, world!".to_vec());
    assert_eq!(decode_base64_lenient(b"SGk"), b"Hi".to_vec());
    assert_eq!(decode_base64_lenient(b"S G k =\r\n"), b"Hi".to_vec());
}

/// Builds a single-part message whose body is `body` in `charset`, sent as 8bit.
fn in_charset(charset: &str, body: &[u8]) -> Vec<u8> {
    let mut raw = format!(
        "Subject: charset test\r\nContent-Type: text/plain; charset={charset}\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
    )
    .into_bytes();
    raw.extend_from_slice(body);
    raw
}

#[test]
fn bodies_stay_in_their_charset() {
    let cases: [(&str, &[u8], &str); 4] = [
        ("ISO-8859-1", b"caf\xe9 cr\xe8me", "café crème"),
        ("windows-1252", b"\x80 5 \x93quoted\x94", "€ 5 “quoted”"),
        ("KOI8-R", b"\xf0\xd2\xc9\xd7\xc5\xd4", "Привет"),
        (
            "Shift_JIS",
            b"\x82\xb1\x82\xf1\x82\xc9\x82\xbf\x82\xcd",
            "こんにちは",
        ),
    ];
    for (charset, bytes, text) in cases {
        let parsed = parse(&in_charset(charset, bytes));
        let payload = payload_json(&parsed);
        assert_eq!(data_of(&payload), bytes.to_vec(), "{charset} body bytes");
        let content_type = parsed.payload.header("Content-Type").unwrap_or_default();
        assert!(
            content_type.contains(charset),
            "{charset} kept in Content-Type"
        );
        assert!(
            parsed.snippet.contains(text),
            "{charset} snippet is decoded text"
        );
    }
}

#[test]
fn base64_body_in_latin1_stays_latin1() {
    // "café" in ISO-8859-1 is 63 61 66 e9, base64 "Y2Fm6Q==".
    let raw = b"Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: base64\r\n\r\nY2Fm6Q==\r\n";
    assert_eq!(parse(raw).payload.body, b"caf\xe9".to_vec());
}

#[test]
fn encoded_words_in_headers_are_decoded() {
    let raw = b"Subject: =?utf-8?B?UXVhcnRhbHNiZXJpY2h0IOKAlCDmnIjmrKE=?=\r\n\
From: =?iso-8859-1?Q?J=F6rg_M=FCller?= <joerg@example.de>\r\n\
X-Folded: first\r\n second\r\n\r\nbody";
    let parsed = parse(raw);
    assert_eq!(
        parsed.payload.header("Subject"),
        Some("Quartalsbericht — 月次")
    );
    assert_eq!(
        parsed.payload.header("From"),
        Some("Jörg Müller <joerg@example.de>")
    );
    assert_eq!(parsed.payload.header("X-Folded"), Some("first second"));
    assert_eq!(parsed.subject, "Quartalsbericht — 月次");
    assert_eq!(
        parsed.from.first().map(|m| m.email.as_str()),
        Some("joerg@example.de")
    );
}

fn attachment_named(disposition: &str) -> Vec<u8> {
    format!(
        "Subject: names\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\
Content-Type: text/plain\r\n\r\nsee attached\r\n--b\r\n\
Content-Type: application/octet-stream\r\n\
Content-Disposition: attachment;\r\n {disposition}\r\n\
Content-Transfer-Encoding: base64\r\n\r\nAAEC\r\n--b--\r\n"
    )
    .into_bytes()
}

#[test]
fn rfc2231_filename_continuations() {
    let raw = attachment_named("filename*0*=utf-8''Pr%C3%BCf;\r\n filename*1*=bericht%202024.pdf");
    let parsed = parse(&raw);
    let part = parsed.payload.find("1").expect("attachment part");
    assert_eq!(part.filename, "Prüfbericht 2024.pdf");
    assert_eq!(part.body, vec![0, 1, 2]);
}

#[test]
fn rfc2047_filename_in_quotes() {
    let raw = attachment_named("filename=\"=?utf-8?Q?test=5F=C3=A4.txt?=\"");
    let parsed = parse(&raw);
    let part = parsed.payload.find("1").expect("attachment part");
    assert_eq!(part.filename, "test_ä.txt");
}

#[test]
fn snippet_strips_html_and_escapes() {
    let raw = b"Content-Type: text/html\r\n\r\n<html><body><p>Tom &amp; Jerry's   <b>\"big\"</b>\r\n day</p></body></html>";
    let parsed = parse(raw);
    assert_eq!(parsed.snippet, "Tom &amp; Jerry&#39;s &quot;big&quot; day");
}

#[test]
fn snippet_is_cut_to_200_characters() {
    let body = "ä".repeat(300);
    let raw = format!("Content-Type: text/plain; charset=utf-8\r\n\r\n{body}");
    assert_eq!(parse(raw.as_bytes()).snippet.chars().count(), 200);
}

#[test]
fn nested_message_has_its_own_tree() {
    let raw = b"Subject: fwd\r\nContent-Type: multipart/mixed; boundary=o\r\n\r\n--o\r\n\
Content-Type: text/plain\r\n\r\nforwarding\r\n--o\r\n\
Content-Type: message/rfc822\r\n\r\n\
Subject: inner\r\nContent-Type: text/plain\r\n\r\ninner body\r\n--o--\r\n";
    let parsed = parse(raw);
    let payload = payload_json(&parsed);
    let attached = &payload["parts"][1];
    assert_eq!(attached["mimeType"], "message/rfc822");
    assert_eq!(attached["body"]["attachmentId"], "att-1");
    assert_eq!(attached["parts"][0]["partId"], "1.0");
    assert_eq!(attached["parts"][0]["headers"][0]["value"], "inner");
    assert_eq!(data_of(&attached["parts"][0]), b"inner body".to_vec());
}

#[test]
fn thread_headers_are_read() {
    let raw = b"Message-ID: <child@x>\r\nIn-Reply-To: <parent@x>\r\nReferences: <root@x> <parent@x>\r\n\r\nhi";
    let parsed = parse(raw);
    assert_eq!(parsed.message_id.as_deref(), Some("child@x"));
    assert_eq!(parsed.thread_refs, vec!["parent@x", "root@x", "parent@x"]);
}

#[test]
fn date_header_gives_milliseconds() {
    let parsed = parse(b"Date: Tue, 14 Nov 2023 23:13:20 +0100\r\n\r\nhi");
    assert_eq!(parsed.date_ms, Some(1_700_000_000_000));
}

#[test]
fn input_without_headers_is_rejected() {
    assert!(parse_email(b"").is_none());
}

#[test]
fn raw_latin1_header_is_read_as_windows_1252() {
    assert_eq!(
        decode_header_value(b"Fran\xe7ois Martin <f@example.net>"),
        "Fran\u{e7}ois Martin <f@example.net>"
    );
    assert_eq!(
        decode_header_value("Zo\u{eb} <z@example.net>".as_bytes()),
        "Zo\u{eb} <z@example.net>"
    );
}

#[test]
fn header_keeps_character_split_over_words() {
    // "— 東" split after the first byte of 東 (E6 9D B1).
    let raw = b"=?utf-8?B?4oCUIOY=?=\r\n =?utf-8?B?nbE=?=";
    assert_eq!(decode_header_value(raw), "— 東");
}

#[test]
fn header_unfolding_keeps_whitespace() {
    let raw = b"folded\r\n\tacross\r\n lines";
    assert_eq!(decode_header_value(raw), "folded\tacross lines");
}

#[test]
fn header_decodes_shift_jis_word() {
    // "日本" in Shift_JIS is 93 FA 96 7B.
    let raw = b"=?shift_jis?B?k/qWew==?=";
    assert_eq!(decode_header_value(raw), "日本");
}

#[test]
fn snippet_reads_unpadded_base64() {
    let raw = b"From: a@example.com\r\n\
Subject: accents\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
w6nDqA\r\n";
    let parsed = parse(raw);
    assert_eq!(parsed.snippet, "éè");
    assert_eq!(parsed.text.trim_end(), "éè");
    assert_eq!(data_of(&payload_json(&parsed)), "éè".as_bytes());
}

#[test]
fn snippet_uses_html_meta_charset() {
    let raw = b"From: a@example.com\r\n\
Content-Type: text/html\r\n\
\r\n\
<html><head><meta charset=\"windows-1252\"></head><body><p>caf\xe9 \x93quoted\x94</p></body></html>\r\n";
    let parsed = parse(raw);
    assert_eq!(parsed.snippet, "café “quoted”");
}

#[test]
fn parts_beyond_depth_limit_become_opaque() {
    let levels = MAX_DEPTH + 8;
    let mut raw = String::from("From: a@example.com\r\nSubject: deep\r\nMIME-Version: 1.0\r\n");
    for level in 0..levels {
        raw.push_str(&format!(
            "Content-Type: multipart/mixed; boundary=\"b{level}\"\r\n\r\n--b{level}\r\n"
        ));
    }
    raw.push_str("Content-Type: text/plain\r\n\r\ndeepest text\r\n");
    for level in (0..levels).rev() {
        raw.push_str(&format!("--b{level}--\r\n"));
    }
    let parsed = parse(raw.as_bytes());

    let parts = parsed.payload.walk();
    let leaves: Vec<&&MimePart> = parts.iter().filter(|part| part.parts.is_empty()).collect();
    assert_eq!(leaves.len(), 1, "one leaf at the depth limit");
    let opaque = leaves[0];
    assert_eq!(opaque.mime_type, "multipart/mixed");
    assert!(opaque.is_attachment());
    let body = String::from_utf8_lossy(&opaque.body);
    assert!(body.contains("deepest text"), "body {body:?}");
    assert_eq!(opaque.part_id.split('.').count(), MAX_DEPTH + 1);

    let mut json = payload_json(&parsed);
    while json["parts"].is_array() {
        json = json["parts"][0].take();
    }
    assert!(json["body"]["attachmentId"].is_string(), "{json}");
}

#[test]
fn unnamed_calendar_part_is_invite_ics() {
    let raw = b"From: a@example.com\r\n\
Content-Type: text/calendar; charset=utf-8; method=REQUEST\r\n\
\r\n\
BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n";
    let parsed = parse(raw);
    assert_eq!(parsed.payload.filename, "invite.ics");
    assert!(parsed.payload.is_attachment());
}
