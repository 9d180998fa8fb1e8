//! Randomized checks: the decoders never panic on hostile input, and the composer's output
//! keeps its line limits and parses back to the same text for arbitrary Unicode.

use base64::Engine;
use mail_parser::MessageParser;

use super::compose::{Mailbox, OutgoingAttachment, OutgoingMessage, build_message};
use super::decode::{decode_message, decode_text, parse_addresses};
use super::encoded_word::{decode_encoded_words, quote_encoded_words};
use super::mime_params;
use super::wire::{GmailMessage, MessagePart, MessagePartBody, MessagePartHeader};

/// Fragments that header and MIME parsers treat specially.
const FRAGMENTS: &[&str] = &[
    "=?",
    "?=",
    "utf-8",
    "shift_jis",
    "?B?",
    "?Q?",
    "?b?",
    "\"",
    "\\",
    "(",
    ")",
    "<",
    ">",
    "@",
    ",",
    ";",
    ":",
    "\r\n",
    "\n",
    " ",
    "\t",
    "é",
    "日本",
    "🎉",
    "%",
    "%E6",
    "*0*",
    "*1",
    "''",
    "=",
    "_",
    "a",
    "example.com",
    "filename",
    "charset",
    "5pel",
    "=C3",
    "\u{feff}",
    "\0",
];

/// Small xorshift generator so failures reproduce from the printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }

    fn fragment_text(&mut self, max_fragments: usize) -> String {
        let count = self.below(max_fragments + 1);
        (0..count)
            .map(|_| FRAGMENTS[self.below(FRAGMENTS.len())])
            .collect()
    }

    fn unicode_text(&mut self, max_chars: usize) -> String {
        const POOL: &[char] = &[
            'a', 'Z', '0', ' ', ' ', '.', ',', '"', '\\', '(', '=', '?', '_', '@', 'é', 'ß', '—',
            '€', '東', '京', 'ア', '🎉', '😀', '\u{200d}', 'Ж',
        ];
        let count = self.below(max_chars + 1);
        (0..count).map(|_| POOL[self.below(POOL.len())]).collect()
    }
}

#[test]
fn header_decoders_never_panic() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..5000 {
        let input = rng.fragment_text(12);
        let _ = decode_encoded_words(&input);
        let _ = quote_encoded_words(&input);
        let _ = parse_addresses(&input);
        let _ = mime_params::parameter(&input, "filename");
        let _ = mime_params::parameter(&format!("attachment; {input}"), "filename");
        let _ = decode_text(input.as_bytes(), Some(&input));
    }
}

#[test]
fn message_decoder_never_panics() {
    let mut rng = Rng(0x0123_4567_89ab_cdef);
    for _ in 0..1000 {
        let message = GmailMessage {
            id: rng.fragment_text(2),
            snippet: Some(rng.fragment_text(6)),
            internal_date: Some(rng.fragment_text(2)),
            label_ids: vec![rng.fragment_text(1)],
            payload: Some(random_part(&mut rng, 0)),
            ..GmailMessage::default()
        };
        let _ = decode_message(&message);
    }
}

fn random_part(rng: &mut Rng, depth: usize) -> MessagePart {
    const TYPES: &[&str] = &[
        "text/plain",
        "text/html",
        "multipart/mixed",
        "multipart/alternative",
        "message/rfc822",
        "image/png",
        "",
        "garbage",
    ];
    const NAMES: &[&str] = &[
        "Subject",
        "From",
        "To",
        "Cc",
        "Date",
        "Content-Type",
        "Content-Disposition",
        "Reply-To",
    ];
    let headers = (0..rng.below(6))
        .map(|_| MessagePartHeader {
            name: NAMES[rng.below(NAMES.len())].to_string(),
            value: rng.fragment_text(10),
        })
        .collect();
    let random_bytes: Vec<u8> = (0..rng.below(40)).map(|_| rng.next() as u8).collect();
    let data = match rng.below(3) {
        0 => Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&random_bytes)),
        1 => Some(rng.fragment_text(5)),
        _ => None,
    };
    let parts = if depth < 4 {
        (0..rng.below(3))
            .map(|_| random_part(rng, depth + 1))
            .collect()
    } else {
        Vec::new()
    };
    MessagePart {
        part_id: Some(rng.fragment_text(1)),
        mime_type: Some(TYPES[rng.below(TYPES.len())].to_string()),
        filename: Some(rng.fragment_text(3)),
        headers,
        body: Some(MessagePartBody {
            attachment_id: Some(rng.fragment_text(1)),
            size: rng.next() as i64,
            data,
        }),
        parts,
    }
}

#[test]
fn composer_round_trips_random_text() {
    let mut rng = Rng(0xdead_beef_cafe_f00d);
    for round in 0..300 {
        let subject = rng.unicode_text(120);
        let name = rng.unicode_text(60);
        let filename = format!("{}.bin", rng.unicode_text(80));
        let content: Vec<u8> = (0..rng.below(300)).map(|_| rng.next() as u8).collect();
        let message = OutgoingMessage {
            to: vec![Mailbox {
                name: Some(name.clone()),
                email: "to@example.com".into(),
            }],
            subject: subject.clone(),
            text: rng.unicode_text(200),
            attachments: vec![OutgoingAttachment {
                filename: filename.clone(),
                mime_type: "application/octet-stream".into(),
                content: content.clone(),
            }],
            ..OutgoingMessage::default()
        };
        let raw = build_message(&message).unwrap_or_else(|e| panic!("round {round}: {e}"));
        let text = String::from_utf8(raw.clone()).expect("message is not UTF-8");
        for line in text.split("\r\n") {
            assert!(line.len() <= 78, "round {round}: line over 78: {line}");
        }
        for token in text.split(|ch: char| ch.is_whitespace() || ch == '"') {
            if token.starts_with("=?") {
                assert!(token.len() <= 75, "round {round}: long word {token}");
            }
        }

        let parsed = MessageParser::default().parse(&raw).expect("parse failed");
        let expected_subject = subject.trim();
        if !expected_subject.is_empty() {
            assert_eq!(parsed.subject(), Some(expected_subject), "round {round}");
        }
        let parsed_name = parsed
            .to()
            .and_then(|to| to.first())
            .and_then(|to| to.name());
        let expected_name = Some(name.trim()).filter(|name| !name.is_empty());
        assert_eq!(parsed_name, expected_name, "round {round}");
        let attachment = parsed.attachments().next().expect("missing attachment");
        assert_eq!(
            mail_parser::MimeHeaders::attachment_name(attachment),
            Some(filename.trim()),
            "round {round}"
        );
        assert_eq!(attachment.contents(), content.as_slice(), "round {round}");
    }
}
