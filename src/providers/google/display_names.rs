//! Rewriting of address-list display names that mail-parser 0.11 would read wrongly.

/// A lexical token of an address list, with its source text.
enum AddressToken {
    /// An atom or a quoted string. `text` is its content without quotes and escapes.
    Word {
        text: String,
        source: String,
    },
    Space(String),
    /// A special character, a comment or an `<…>` address.
    Other(String),
}

impl AddressToken {
    fn source(&self) -> &str {
        match self {
            AddressToken::Word { source, .. } => source,
            AddressToken::Space(source) | AddressToken::Other(source) => source,
        }
    }
}

/// Rewrites each display name of several words, such as `André "Q. Public"`, as one quoted
/// string with single spaces between the words (RFC 5322 section 3.2.2). mail-parser 0.11
/// drops the whitespace before a quoted word of a phrase and would read `AndréQ. Public`.
/// Single words, and names with a comment between their words, are left as written.
pub(super) fn quote_display_names(value: &str) -> String {
    let tokens = tokenize_address_list(value);
    let mut output = String::with_capacity(value.len() + 2);
    let mut index = 0;
    while let Some(token) = tokens.get(index) {
        let mut words: Vec<&str> = Vec::new();
        let mut end = index;
        while let Some(AddressToken::Word { text, .. }) = tokens.get(end) {
            words.push(text);
            end += 1;
            match (tokens.get(end), tokens.get(end + 1)) {
                (Some(AddressToken::Space(_)), Some(AddressToken::Word { .. })) => end += 1,
                _ => break,
            }
        }
        let next = tokens
            .get(end..)
            .unwrap_or_default()
            .iter()
            .find(|token| !matches!(token, AddressToken::Space(_)));
        let before_address =
            matches!(next, Some(AddressToken::Other(text)) if text.starts_with('<'));
        if words.len() > 1 && before_address {
            let joined = words.join(" ");
            output.push('"');
            output.push_str(&joined.replace('\\', "\\\\").replace('"', "\\\""));
            output.push('"');
            index = end;
        } else if end > index {
            // Not a display name: copy the whole run, so that no word is scanned
            // twice and long headers take linear time.
            for token in tokens.get(index..end).unwrap_or_default() {
                output.push_str(token.source());
            }
            index = end;
        } else {
            output.push_str(token.source());
            index += 1;
        }
    }
    output
}

/// Splits an address list into words, whitespace runs and other tokens. An unterminated
/// quoted string, comment or `<…>` address runs to the end of the value.
fn tokenize_address_list(value: &str) -> Vec<AddressToken> {
    let mut tokens = Vec::new();
    let mut chars = value.char_indices().peekable();
    while let Some((start, ch)) = chars.next() {
        let mut end = start + ch.len_utf8();
        let token = match ch {
            '"' => {
                let mut text = String::new();
                while let Some((position, next)) = chars.next() {
                    end = position + next.len_utf8();
                    match next {
                        '"' => break,
                        '\\' => {
                            if let Some((escaped_at, escaped)) = chars.next() {
                                end = escaped_at + escaped.len_utf8();
                                text.push(escaped);
                            }
                        }
                        other => text.push(other),
                    }
                }
                let source = value.get(start..end).unwrap_or_default().to_string();
                AddressToken::Word { text, source }
            }
            '(' => {
                let mut depth = 1usize;
                while let Some((position, next)) = chars.next() {
                    end = position + next.len_utf8();
                    match next {
                        '\\' => {
                            if let Some((escaped_at, escaped)) = chars.next() {
                                end = escaped_at + escaped.len_utf8();
                            }
                        }
                        '(' => depth += 1,
                        ')' => depth -= 1,
                        _ => {}
                    }
                    if depth == 0 {
                        break;
                    }
                }
                AddressToken::Other(value.get(start..end).unwrap_or_default().to_string())
            }
            '<' => {
                for (position, next) in chars.by_ref() {
                    end = position + next.len_utf8();
                    if next == '>' {
                        break;
                    }
                }
                AddressToken::Other(value.get(start..end).unwrap_or_default().to_string())
            }
            _ if ch.is_whitespace() => {
                while let Some((position, next)) = chars.next_if(|(_, next)| next.is_whitespace()) {
                    end = position + next.len_utf8();
                }
                AddressToken::Space(value.get(start..end).unwrap_or_default().to_string())
            }
            _ if is_address_special(ch) => AddressToken::Other(ch.to_string()),
            _ => {
                while let Some((position, next)) = chars.next_if(|(_, next)| {
                    !next.is_whitespace() && !is_address_special(*next) && !"\"(<".contains(*next)
                }) {
                    end = position + next.len_utf8();
                }
                let source = value.get(start..end).unwrap_or_default().to_string();
                AddressToken::Word {
                    text: source.clone(),
                    source,
                }
            }
        };
        tokens.push(token);
    }
    tokens
}

/// Characters that end an atom in an address list. A period is kept in atoms, as the
/// obsolete phrase syntax of RFC 5322 allows (`Q. Public`).
fn is_address_special(ch: char) -> bool {
    ",:;@[]>)\\".contains(ch)
}
