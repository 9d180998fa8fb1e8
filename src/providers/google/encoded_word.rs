//! RFC 2047 encoded words (`=?charset?B|Q?text?=`) in header values.
//!
//! mail-parser 0.11 decodes encoded words itself, but this crate builds it without its
//! `full_encoding` feature. It then turns Shift_JIS, ISO-2022-JP, GB2312 and Big5 words into
//! replacement characters, and it drops a UTF-8 character that a sender split over two
//! adjacent words. This decoder handles both: it takes charsets from encoding_rs and joins
//! the bytes of adjacent words of one charset before decoding them.
//!
//! The encoder exists because mail-builder 0.4 writes a display name as one encoded word
//! of any length inside a quoted string, and can write subject words of 76 characters.

use base64::Engine;

use super::decode::decode_text;

/// Maximum length of one encoded word, from RFC 2047 section 2.
pub(crate) const MAX_ENCODED_WORD_LEN: usize = 75;

/// Length of `=?utf-8?B?` plus `?=`.
const WORD_OVERHEAD: usize = 12;

/// Encodes text as UTF-8 encoded words of at most `first_max_len` characters for the first
/// word and [`MAX_ENCODED_WORD_LEN`] for the others, split between characters, never inside
/// one. It uses Q encoding when that is shorter than B, and restricts Q to the characters
/// that RFC 2047 allows in a phrase, so the words suit display names too.
pub(crate) fn encode_words(text: &str, first_max_len: usize) -> Vec<String> {
    let use_q = q_encoded_len(text) <= text.len().div_ceil(3) * 4;
    let mut words = Vec::new();
    let mut chunk = String::new();
    let mut max_len = first_max_len.clamp(WORD_OVERHEAD + 12, MAX_ENCODED_WORD_LEN);

    for ch in text.chars() {
        let mut buffer = [0u8; 4];
        let encoded = ch.encode_utf8(&mut buffer);
        let payload_len = if use_q {
            q_encoded_len(&chunk) + q_encoded_len(encoded)
        } else {
            (chunk.len() + encoded.len()).div_ceil(3) * 4
        };
        if WORD_OVERHEAD + payload_len > max_len && !chunk.is_empty() {
            words.push(encode_word(&chunk, use_q));
            max_len = MAX_ENCODED_WORD_LEN;
            chunk.clear();
        }
        chunk.push(ch);
    }
    if !chunk.is_empty() {
        words.push(encode_word(&chunk, use_q));
    }
    words
}

fn encode_word(text: &str, use_q: bool) -> String {
    if !use_q {
        let payload = base64::engine::general_purpose::STANDARD.encode(text.as_bytes());
        return format!("=?utf-8?B?{payload}?=");
    }
    let mut word = String::from("=?utf-8?Q?");
    for &byte in text.as_bytes() {
        if byte == b' ' {
            word.push('_');
        } else if is_q_safe(byte) {
            word.push(char::from(byte));
        } else {
            word.push_str(&format!("={byte:02X}"));
        }
    }
    word.push_str("?=");
    word
}

/// Characters that Q encoding may leave as they are in a phrase (RFC 2047 section 5 (3)).
fn is_q_safe(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'!' | b'*' | b'+' | b'-' | b'/')
}

fn q_encoded_len(text: &str) -> usize {
    text.bytes()
        .map(|byte| {
            if byte == b' ' || is_q_safe(byte) {
                1
            } else {
                3
            }
        })
        .sum()
}

/// One encoded word: its charset label and its decoded bytes.
struct EncodedWord<'a> {
    charset: &'a str,
    bytes: Vec<u8>,
}

/// A run of adjacent encoded words, decoded to text.
struct DecodedRun {
    text: String,
    /// Bytes of the input that the run covers.
    len: usize,
}

/// Decodes every encoded word in an unstructured header value. Whitespace between two
/// adjacent encoded words is dropped (RFC 2047 section 6.2), and other text is kept.
pub(crate) fn decode_encoded_words(value: &str) -> String {
    if !value.contains("=?") {
        return value.to_string();
    }
    let mut output = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find("=?") {
        let (before, candidate) = rest.split_at(start);
        output.push_str(before);
        match decode_run(candidate) {
            Some(run) => {
                output.push_str(&run.text);
                rest = candidate.get(run.len..).unwrap_or("");
            }
            None => {
                output.push_str("=?");
                rest = candidate.get(2..).unwrap_or("");
            }
        }
    }
    output.push_str(rest);
    output
}

/// Replaces the encoded words of a structured header value, such as an address list, with
/// quoted strings of their decoded text. A parser that would decode them wrongly then reads
/// the right text. Inside a quoted string or a comment the decoded text is escaped in place.
pub(crate) fn quote_encoded_words(value: &str) -> String {
    if !value.contains("=?") {
        return value.to_string();
    }
    let mut output = String::with_capacity(value.len() + 8);
    let mut in_quotes = false;
    let mut comment_depth = 0usize;
    let mut index = 0;
    while let Some(ch) = value.get(index..).and_then(|rest| rest.chars().next()) {
        if ch == '=' {
            if let Some(run) = value.get(index..).and_then(decode_run) {
                let text = run.text.replace(['\r', '\n'], " ");
                if in_quotes || comment_depth > 0 {
                    output.push_str(&escape_quoted(&text, comment_depth > 0));
                } else {
                    output.push('"');
                    output.push_str(&escape_quoted(&text, false));
                    output.push('"');
                }
                index += run.len;
                continue;
            }
        }
        output.push(ch);
        index += ch.len_utf8();
        match ch {
            '\\' if in_quotes || comment_depth > 0 => {
                if let Some(escaped) = value.get(index..).and_then(|rest| rest.chars().next()) {
                    output.push(escaped);
                    index += escaped.len_utf8();
                }
            }
            '"' if comment_depth == 0 => in_quotes = !in_quotes,
            '(' if !in_quotes => comment_depth += 1,
            ')' if !in_quotes => comment_depth = comment_depth.saturating_sub(1),
            _ => {}
        }
    }
    output
}

fn escape_quoted(text: &str, in_comment: bool) -> String {
    let mut escaped = String::with_capacity(text.len());
    for ch in text.chars() {
        let special = matches!(ch, '\\' | '"') || (in_comment && matches!(ch, '(' | ')'));
        if special {
            escaped.push('\\');
        }
        escaped.push(ch);
    }
    escaped
}

/// Decodes the run of encoded words at the start of `input`, if it starts with one.
fn decode_run(input: &str) -> Option<DecodedRun> {
    let (first, first_len) = parse_encoded_word(input)?;
    let mut text = String::new();
    let mut charset = first.charset;
    let mut pending = first.bytes;
    let mut len = first_len;

    loop {
        let rest = input.get(len..).unwrap_or("");
        let gap = rest.len() - rest.trim_start().len();
        let Some((word, word_len)) = rest.get(gap..).and_then(parse_encoded_word) else {
            break;
        };
        if word.charset.eq_ignore_ascii_case(charset) {
            pending.extend_from_slice(&word.bytes);
        } else {
            text.push_str(&decode_text(&pending, Some(charset)));
            charset = word.charset;
            pending = word.bytes;
        }
        len += gap + word_len;
    }
    text.push_str(&decode_text(&pending, Some(charset)));
    Some(DecodedRun { text, len })
}

/// Parses `=?charset[*language]?encoding?text?=` at the start of `input`, returning the word
/// and its length in bytes.
fn parse_encoded_word(input: &str) -> Option<(EncodedWord<'_>, usize)> {
    let body = input.strip_prefix("=?")?;
    let charset_end = body.find('?')?;
    let charset_field = body.get(..charset_end)?;
    let charset = charset_field.split('*').next().unwrap_or(charset_field);
    let valid_charset = !charset.is_empty()
        && charset
            .bytes()
            .all(|byte| byte.is_ascii_graphic() && !b"()<>@,;:\"/[]?.=".contains(&byte));
    if !valid_charset {
        return None;
    }

    let after_charset = body.get(charset_end + 1..)?;
    let mut chars = after_charset.chars();
    let encoding = chars.next()?.to_ascii_uppercase();
    if chars.next()? != '?' {
        return None;
    }
    let text_and_rest = after_charset.get(2..)?;
    let text_end = text_and_rest.find("?=")?;
    let text = text_and_rest.get(..text_end)?;
    if text.contains(|ch: char| ch == '?' || ch.is_whitespace()) {
        return None;
    }

    let bytes = match encoding {
        'B' => decode_b(text)?,
        'Q' => decode_q(text),
        _ => return None,
    };
    let len = 2 + charset_end + 1 + 2 + text_end + 2;
    Some((EncodedWord { charset, bytes }, len))
}

fn decode_b(text: &str) -> Option<Vec<u8>> {
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(true),
    );
    engine.decode(text.trim_end_matches('=')).ok()
}

fn decode_q(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while let Some(&byte) = bytes.get(index) {
        match byte {
            b'_' => decoded.push(b' '),
            b'=' => {
                let hex = bytes
                    .get(index + 1..index + 3)
                    .and_then(|pair| std::str::from_utf8(pair).ok())
                    .and_then(|pair| u8::from_str_radix(pair, 16).ok());
                if let Some(value) = hex {
                    decoded.push(value);
                    index += 3;
                    continue;
                }
                decoded.push(b'=');
            }
            other => decoded.push(other),
        }
        index += 1;
    }
    decoded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_q_and_b_words() {
        assert_eq!(
            decode_encoded_words("=?utf-8?Q?Caf=C3=A9_au_lait?="),
            "Café au lait"
        );
        assert_eq!(decode_encoded_words("=?UTF-8?B?5pel5pys6Kqe?="), "日本語");
        assert_eq!(decode_encoded_words("=?utf-8?b?5pel5pys6Kqe?="), "日本語");
    }

    #[test]
    fn decode_adjacent_words_drops_whitespace() {
        let value = "=?utf-8?Q?Hello_?=\r\n =?utf-8?Q?World?=";
        assert_eq!(decode_encoded_words(value), "Hello World");
    }

    #[test]
    fn decode_mixed_with_plain_words() {
        let value = "Re: =?iso-8859-1?Q?caf=E9?= tomorrow";
        assert_eq!(decode_encoded_words(value), "Re: café tomorrow");
    }

    #[test]
    fn decode_character_split_across_words() {
        // "日本" with the three bytes of 日 split 2 + 1 across two words.
        let value = "=?utf-8?B?5pc=?= =?utf-8?B?peacrA==?=";
        assert_eq!(decode_encoded_words(value), "日本");
    }

    #[test]
    fn decode_multibyte_charsets() {
        let cases = [
            ("=?shift_jis?B?k/qWe4zq?=", "日本語"),
            ("=?iso-2022-jp?B?GyRCRnxLXDhsGyhC?=", "日本語"),
            ("=?gb2312?B?1tDOxA==?=", "中文"),
            ("=?big5?B?pKSk5Q==?=", "中文"),
            ("=?koi8-r?B?8NLJ18XU?=", "Привет"),
            ("=?utf-8*en?Q?hi?=", "hi"),
        ];
        for (input, expected) in cases {
            assert_eq!(decode_encoded_words(input), expected, "input {input}");
        }
    }

    #[test]
    fn decode_keeps_malformed_words() {
        for input in [
            "=?utf-8?X?abc?=",
            "=?utf-8?Q?no end",
            "a =? b",
            "=?",
            "=?utf-8?B?***?=",
        ] {
            assert_eq!(decode_encoded_words(input), input);
        }
    }

    #[test]
    fn encode_words_round_trip() {
        let cases = [
            "Status — 東京オフィスの四半期報告書について",
            "Party 🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉 done",
            "Grüße aus Köln, 50% = \"half\"? _under_score_",
            "x",
        ];
        for text in cases {
            let words = encode_words(text, 60);
            assert!(words[0].len() <= 60, "first word {}", words[0]);
            for word in &words {
                assert!(word.len() <= MAX_ENCODED_WORD_LEN, "word {word}");
                assert!(word.is_ascii(), "word {word}");
            }
            assert_eq!(decode_encoded_words(&words.join(" ")), text);
        }
    }

    #[test]
    fn encode_words_picks_shorter_encoding() {
        assert!(encode_words("Meeting about the Café", 75)[0].starts_with("=?utf-8?Q?"));
        assert!(encode_words("東京", 75)[0].starts_with("=?utf-8?B?"));
    }

    #[test]
    fn encode_words_splits_between_characters() {
        let text = "€".repeat(60);
        for word in encode_words(&text, 75) {
            let decoded = decode_encoded_words(&word);
            assert!(
                decoded.chars().all(|ch| ch == '€'),
                "word {word} decoded {decoded:?}"
            );
        }
    }

    #[test]
    fn quote_words_outside_quotes() {
        let value = "=?utf-8?Q?Doe=2C_Jane?= <jane@example.com>";
        assert_eq!(
            quote_encoded_words(value),
            "\"Doe, Jane\" <jane@example.com>"
        );
    }

    #[test]
    fn quote_words_inside_quotes_and_comments() {
        let value = "\"=?utf-8?Q?A=22B?=\" <a@example.com> (=?utf-8?Q?x=29?=)";
        assert_eq!(
            quote_encoded_words(value),
            "\"A\\\"B\" <a@example.com> (x\\))"
        );
    }
}
