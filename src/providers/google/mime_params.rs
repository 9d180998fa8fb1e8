//! Parameters of MIME `Content-Type` and `Content-Disposition` header values, with RFC 2231
//! extended values (`name*=charset''%XX`) and continuations (`name*0*=…; name*1*=…`).
//!
//! mail-parser 0.11 joins continuations too, but as this crate builds it, it cannot decode
//! an extended value in Shift_JIS, ISO-2022-JP, GB2312 or Big5. This parser decodes the
//! charset with encoding_rs and decodes leftover RFC 2047 words in the value as well.

use super::decode::decode_text;
use super::encoded_word::decode_encoded_words;

/// One `name=value` pair as it appears in the header, before RFC 2231 reassembly.
struct RawParameter {
    name: String,
    value: String,
}

/// A section of a parameter value split into RFC 2231 continuations.
struct Section {
    index: u32,
    extended: bool,
    value: String,
}

/// Returns the lowercase `type/subtype` (or disposition type) that starts a header value.
pub(crate) fn essence(header_value: &str) -> String {
    let end = header_value.find(';').unwrap_or(header_value.len());
    let essence = header_value.get(..end).unwrap_or(header_value);
    essence.trim().to_ascii_lowercase()
}

/// Returns the decoded value of parameter `name` (matched case-insensitively), if present.
/// An RFC 2231 form of the parameter wins over a plain one.
pub(crate) fn parameter(header_value: &str, name: &str) -> Option<String> {
    let raw = split_parameters(header_value);
    let mut plain = None;
    let mut sections = Vec::new();

    for parameter in raw {
        let Some(rest) = strip_prefix_ignore_case(&parameter.name, name) else {
            continue;
        };
        if rest.is_empty() {
            plain.get_or_insert(parameter.value);
        } else if rest == "*" {
            sections.push(Section {
                index: 0,
                extended: true,
                value: parameter.value,
            });
        } else if let Some(section) = rest.strip_prefix('*') {
            let (digits, extended) = match section.strip_suffix('*') {
                Some(digits) => (digits, true),
                None => (section, false),
            };
            if let Ok(index) = digits.parse::<u32>() {
                sections.push(Section {
                    index,
                    extended,
                    value: parameter.value,
                });
            }
        }
    }

    if sections.is_empty() {
        return plain.map(|value| decode_encoded_words(&value));
    }
    Some(join_sections(sections))
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix) {
        text.get(prefix.len()..)
    } else {
        None
    }
}

/// Joins RFC 2231 sections in index order and decodes them with the charset of the first.
fn join_sections(mut sections: Vec<Section>) -> String {
    sections.sort_by_key(|section| section.index);
    let mut charset = None;
    let mut bytes = Vec::new();

    for (position, section) in sections.iter().enumerate() {
        if !section.extended {
            bytes.extend_from_slice(section.value.as_bytes());
            continue;
        }
        let mut encoded = section.value.as_str();
        if position == 0 {
            // The first extended section is `charset'language'text`.
            let mut fields = encoded.splitn(3, '\'');
            if let (Some(set), Some(_language), Some(text)) =
                (fields.next(), fields.next(), fields.next())
            {
                if !set.is_empty() {
                    charset = Some(set.to_string());
                }
                encoded = text;
            }
        }
        bytes.extend(percent_decode(encoded));
    }

    let text = decode_text(&bytes, charset.as_deref());
    decode_encoded_words(&text)
}

fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while let Some(&byte) = bytes.get(index) {
        if byte == b'%' {
            let hex = bytes
                .get(index + 1..index + 3)
                .and_then(|pair| std::str::from_utf8(pair).ok())
                .and_then(|pair| u8::from_str_radix(pair, 16).ok());
            if let Some(value) = hex {
                decoded.push(value);
                index += 3;
                continue;
            }
        }
        decoded.push(byte);
        index += 1;
    }
    decoded
}

/// Splits `type/subtype; a=b; c="d; e"` into its parameters, skipping comments and the
/// leading type.
fn split_parameters(header_value: &str) -> Vec<RawParameter> {
    let mut parameters = Vec::new();
    let mut chars = header_value.chars().peekable();

    // Skip the type itself.
    for ch in chars.by_ref() {
        if ch == ';' {
            break;
        }
    }

    loop {
        while chars
            .next_if(|ch| ch.is_whitespace() || *ch == ';')
            .is_some()
        {}
        skip_comment(&mut chars);
        let mut name = String::new();
        while let Some(ch) = chars.next_if(|ch| !matches!(ch, '=' | ';') && !ch.is_whitespace()) {
            name.push(ch);
        }
        while chars.next_if(|ch| ch.is_whitespace()).is_some() {}
        if name.is_empty() && chars.peek().is_none() {
            break;
        }
        if chars.next_if_eq(&'=').is_none() {
            // A name without a value: skip to the next parameter.
            while chars.next_if(|ch| *ch != ';').is_some() {}
            continue;
        }
        while chars.next_if(|ch| ch.is_whitespace()).is_some() {}

        let mut value = String::new();
        if chars.next_if_eq(&'"').is_some() {
            while let Some(ch) = chars.next() {
                match ch {
                    '"' => break,
                    '\\' => value.extend(chars.next()),
                    other => value.push(other),
                }
            }
        } else {
            while let Some(ch) = chars.next_if(|ch| *ch != ';' && !ch.is_whitespace()) {
                value.push(ch);
            }
        }
        // Anything after the value up to the next `;` (a comment, stray text) is ignored.
        while chars.next_if(|ch| *ch != ';').is_some() {}

        if !name.is_empty() {
            parameters.push(RawParameter { name, value });
        }
    }
    parameters
}

fn skip_comment(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    if chars.next_if_eq(&'(').is_none() {
        return;
    }
    let mut depth = 1usize;
    while let Some(ch) = chars.next() {
        match ch {
            '\\' => {
                chars.next();
            }
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            _ => {}
        }
    }
    while chars.next_if(|ch| ch.is_whitespace()).is_some() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn essence_is_lowercase_type() {
        assert_eq!(essence("Text/HTML; charset=utf-8"), "text/html");
        assert_eq!(essence(" attachment "), "attachment");
        assert_eq!(essence(""), "");
    }

    #[test]
    fn plain_and_quoted_parameters() {
        let value = "text/plain; charset=\"ISO-8859-1\"; format=flowed";
        assert_eq!(parameter(value, "charset").as_deref(), Some("ISO-8859-1"));
        assert_eq!(parameter(value, "FORMAT").as_deref(), Some("flowed"));
        assert_eq!(parameter(value, "delsp"), None);
    }

    #[test]
    fn quoted_value_with_semicolon_and_escape() {
        let value = r#"attachment; filename="a; \"b\".txt"; size=10"#;
        assert_eq!(
            parameter(value, "filename").as_deref(),
            Some("a; \"b\".txt")
        );
        assert_eq!(parameter(value, "size").as_deref(), Some("10"));
    }

    #[test]
    fn rfc2231_continuations_join() {
        let value =
            "attachment;\r\n filename*0*=utf-8''%E6%97%A5%E6%9C%AC;\r\n filename*1*=%E8%AA%9E.txt";
        assert_eq!(parameter(value, "filename").as_deref(), Some("日本語.txt"));
    }

    #[test]
    fn rfc2231_mixed_sections_in_any_order() {
        let value = "attachment; filename*1=\" report.pdf\"; filename*0*=iso-8859-1'de'Pr%FCf";
        assert_eq!(
            parameter(value, "filename").as_deref(),
            Some("Prüf report.pdf")
        );
    }

    #[test]
    fn rfc2231_multibyte_charset() {
        let value = "attachment; filename*=shift_jis''%93%FA%96%7B.txt";
        assert_eq!(parameter(value, "filename").as_deref(), Some("日本.txt"));
    }

    #[test]
    fn extended_value_wins_over_plain() {
        let value = "attachment; filename=\"fallback.txt\"; filename*=utf-8''caf%C3%A9.txt";
        assert_eq!(parameter(value, "filename").as_deref(), Some("café.txt"));
    }

    #[test]
    fn encoded_word_in_quoted_value() {
        let value = "attachment; filename=\"=?utf-8?Q?test=5F=C3=A4.txt?=\"";
        assert_eq!(parameter(value, "filename").as_deref(), Some("test_ä.txt"));
    }

    #[test]
    fn comments_and_garbage_do_not_panic() {
        let value = "text/plain; (comment) charset=utf-8 (more); broken; =x; \"";
        assert_eq!(parameter(value, "charset").as_deref(), Some("utf-8"));
        for input in [
            "",
            ";",
            "a/b; c=\"unterminated",
            "a/b; d*x*=1; d*=%",
            "(((",
            "; =",
        ] {
            let _ = parameter(input, "c");
            let _ = parameter(input, "d");
        }
        assert_eq!(parameter("a/b; d*=%", "d").as_deref(), Some("%"));
    }
}
