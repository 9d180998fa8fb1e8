//! Charset sniffing for HTML bodies and `format=flowed` unwrapping for plain-text bodies.

use super::encoding_for_label;

/// Number of leading bytes in which an HTML document's `<meta>` charset is looked for, as
/// in the WHATWG encoding prescan.
const HTML_SNIFF_BYTES: usize = 1024;

/// Finds the charset that a `<meta charset=…>` or `<meta http-equiv="Content-Type"
/// content="…; charset=…">` tag in the first 1024 bytes declares. A UTF-16 label is read as
/// UTF-8, as HTML requires, because a document readable as ASCII is not UTF-16.
pub(crate) fn sniff_html_charset(bytes: &[u8]) -> Option<String> {
    let head = bytes.get(..HTML_SNIFF_BYTES).unwrap_or(bytes);
    let lower = head.to_ascii_lowercase();
    let mut offset = 0;
    while let Some(found) = find_bytes(lower.get(offset..)?, b"<meta") {
        let tag_start = offset + found + b"<meta".len();
        let rest = lower.get(tag_start..)?;
        let tag_len = rest.iter().position(|&b| b == b'>').unwrap_or(rest.len());
        let tag = rest.get(..tag_len)?;
        // `<metadata>` and other names that merely start with "meta" are not meta tags.
        let is_meta_tag = tag
            .first()
            .is_some_and(|&b| b.is_ascii_whitespace() || b == b'/');
        if let Some(label) = charset_in_tag(tag).filter(|_| is_meta_tag) {
            let label = String::from_utf8_lossy(label).into_owned();
            return match encoding_for_label(&label) {
                Some(encoding) if encoding == encoding_rs::UTF_16LE => Some("utf-8".into()),
                Some(encoding) if encoding == encoding_rs::UTF_16BE => Some("utf-8".into()),
                _ => Some(label),
            };
        }
        offset = tag_start + tag_len;
    }
    None
}

/// Returns the value after `charset=` inside a lowercased `<meta …>` tag.
fn charset_in_tag(tag: &[u8]) -> Option<&[u8]> {
    let start = find_bytes(tag, b"charset")? + b"charset".len();
    let rest = tag.get(start..)?;
    let rest = rest.get(rest.iter().take_while(|b| b.is_ascii_whitespace()).count()..)?;
    let rest = rest.strip_prefix(b"=")?;
    let rest = rest.get(rest.iter().take_while(|b| b.is_ascii_whitespace()).count()..)?;
    let rest = rest
        .strip_prefix(b"\"")
        .or_else(|| rest.strip_prefix(b"'"))
        .unwrap_or(rest);
    let len = rest
        .iter()
        .position(|b| b"\"'; />".contains(b) || b.is_ascii_whitespace())
        .unwrap_or(rest.len());
    rest.get(..len).filter(|label| !label.is_empty())
}

fn find_bytes(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// Unwraps `format=flowed` text (RFC 3676): a line that ends in a space continues on the
/// next line of the same quote depth, except the signature separator `-- `. A leading
/// space added by space-stuffing is removed, and with `delsp=yes` the space before each
/// soft line break is removed too. Quoted lines are written back with one `>` per level and
/// a space.
pub(super) fn unwrap_flowed(text: &str, delete_space: bool) -> String {
    let mut lines: Vec<String> = Vec::new();
    // The paragraph being joined: its quote depth and text, while its last line was flowed.
    let mut open: Option<(usize, String)> = None;
    for line in text.split('\n') {
        let depth = line.chars().take_while(|&ch| ch == '>').count();
        let content = line.get(depth..).unwrap_or_default();
        let content = content.strip_prefix(' ').unwrap_or(content);
        let is_flowed = content.ends_with(' ') && content != "-- ";
        let content = match content.strip_suffix(' ') {
            Some(stripped) if is_flowed && delete_space => stripped,
            _ => content,
        };

        let mut paragraph = match open.take() {
            Some((open_depth, joined)) if open_depth == depth => joined,
            Some((open_depth, joined)) => {
                lines.push(quote_line(open_depth, &joined));
                String::new()
            }
            None => String::new(),
        };
        paragraph.push_str(content);
        if is_flowed {
            open = Some((depth, paragraph));
        } else {
            lines.push(quote_line(depth, &paragraph));
        }
    }
    if let Some((depth, joined)) = open {
        lines.push(quote_line(depth, &joined));
    }
    lines.join("\n")
}

fn quote_line(depth: usize, content: &str) -> String {
    if depth == 0 {
        return content.to_string();
    }
    format!("{} {content}", ">".repeat(depth))
}
