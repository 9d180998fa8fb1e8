//! Parser and matcher for the subset of Gmail's search syntax (`q`) that the sandbox supports.
//!
//! Supported: `after:`/`before:` (YYYY/MM/DD, YYYY-MM-DD or epoch seconds),
//! `newer_than:`/`older_than:` (`Nd`, `Nm`, `Ny`), `is:unread|read|starred|important`,
//! `from:`, `to:`, `cc:`, `bcc:`, `subject:`, `in:`, `label:`, `has:attachment`, `filename:`,
//! free words, quoted phrases, `-term` negation and `a OR b`. Terms are ANDed. An operator
//! the sandbox does not know is searched as a free word.
//!
//! NOTE: dates are read as midnight UTC, whereas Gmail reads them in Pacific time. Free words
//! match as case-insensitive substrings, whereas Gmail matches whole words.

use chrono::{NaiveDate, TimeZone, Utc};

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// One search condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Term {
    /// Free word or quoted phrase, lowercased.
    Text(String),
    From(String),
    To(String),
    Cc(String),
    Bcc(String),
    Subject(String),
    /// `internalDate >= ms`.
    After(i64),
    /// `internalDate < ms`.
    Before(i64),
    /// A label that must be present (from `in:`, `label:` and `is:`), uppercased.
    Label(String),
    /// `is:read`: the UNREAD label is absent.
    Read,
    HasAttachment,
    Filename(String),
    /// `in:anywhere`: matches every message and lets spam and trash through.
    Anywhere,
}

/// A term, possibly negated, or a group of alternatives joined by `OR`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Clause {
    Term { negated: bool, term: Term },
    Any(Vec<Clause>),
}

/// A parsed `q` value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    pub clauses: Vec<Clause>,
}

/// The fields of a message that a query can look at.
#[derive(Debug, Clone, Default)]
pub struct SearchDocument {
    pub labels: Vec<String>,
    /// Lowercased `name <address>` of each sender.
    pub from: String,
    pub to: String,
    pub cc: String,
    pub bcc: String,
    pub subject: String,
    pub text: String,
    pub internal_date_ms: i64,
    pub has_attachment: bool,
    pub filenames: Vec<String>,
}

impl Query {
    /// Returns whether the query names spam or trash explicitly, so that they are searched.
    pub fn reaches_spam_or_trash(&self) -> bool {
        self.terms().iter().any(|term| match term {
            Term::Anywhere => true,
            Term::Label(label) => label == "SPAM" || label == "TRASH",
            _ => false,
        })
    }

    fn terms(&self) -> Vec<&Term> {
        fn collect<'a>(clause: &'a Clause, out: &mut Vec<&'a Term>) {
            match clause {
                Clause::Term { term, .. } => out.push(term),
                Clause::Any(alternatives) => {
                    for alternative in alternatives {
                        collect(alternative, out);
                    }
                }
            }
        }
        let mut out = Vec::new();
        for clause in &self.clauses {
            collect(clause, &mut out);
        }
        out
    }

    /// Returns whether every clause holds for the document.
    pub fn matches(&self, document: &SearchDocument) -> bool {
        self.clauses
            .iter()
            .all(|clause| clause_matches(clause, document))
    }
}

fn clause_matches(clause: &Clause, document: &SearchDocument) -> bool {
    match clause {
        Clause::Term { negated, term } => term_matches(term, document) != *negated,
        Clause::Any(alternatives) => alternatives
            .iter()
            .any(|alternative| clause_matches(alternative, document)),
    }
}

fn term_matches(term: &Term, document: &SearchDocument) -> bool {
    let has_label = |label: &str| {
        document
            .labels
            .iter()
            .any(|own| own.eq_ignore_ascii_case(label))
    };
    match term {
        Term::Text(text) => {
            document.subject.to_lowercase().contains(text)
                || document.text.to_lowercase().contains(text)
                || document.from.contains(text)
                || document.to.contains(text)
        }
        Term::From(value) => document.from.contains(value),
        Term::To(value) => document.to.contains(value),
        Term::Cc(value) => document.cc.contains(value),
        Term::Bcc(value) => document.bcc.contains(value),
        Term::Subject(value) => document.subject.to_lowercase().contains(value),
        Term::After(ms) => document.internal_date_ms >= *ms,
        Term::Before(ms) => document.internal_date_ms < *ms,
        Term::Label(label) => has_label(label),
        Term::Read => !has_label("UNREAD"),
        Term::HasAttachment => document.has_attachment,
        Term::Filename(name) => document
            .filenames
            .iter()
            .any(|own| own.to_lowercase().contains(name)),
        Term::Anywhere => true,
    }
}

/// Parses a `q` value. `now_ms` anchors `newer_than:` and `older_than:`.
pub fn parse(q: &str, now_ms: i64) -> Query {
    let mut clauses: Vec<Clause> = Vec::new();
    let mut pending_or = false;
    for token in tokenize(q) {
        if token == "OR" || token == "|" {
            pending_or = !clauses.is_empty();
            continue;
        }
        let Some(clause) = parse_token(&token, now_ms) else {
            continue;
        };
        if pending_or {
            if let Some(previous) = clauses.pop() {
                let merged = match previous {
                    Clause::Any(mut alternatives) => {
                        alternatives.push(clause);
                        Clause::Any(alternatives)
                    }
                    single => Clause::Any(vec![single, clause]),
                };
                clauses.push(merged);
            }
            pending_or = false;
        } else {
            clauses.push(clause);
        }
    }
    Query { clauses }
}

/// Splits on whitespace outside double quotes. Quotes are kept so that the parser can tell a
/// phrase from a word.
fn tokenize(q: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut current = String::new();
    let mut in_quotes = false;
    for c in q.chars() {
        match c {
            '"' => {
                in_quotes = !in_quotes;
                current.push(c);
            }
            c if c.is_whitespace() && !in_quotes => {
                if !current.is_empty() {
                    tokens.push(std::mem::take(&mut current));
                }
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        tokens.push(current);
    }
    tokens
}

fn parse_token(token: &str, now_ms: i64) -> Option<Clause> {
    let (negated, body) = match token.strip_prefix('-') {
        Some(rest) if !rest.is_empty() => (true, rest),
        _ => (false, token),
    };
    let term = parse_term(body, now_ms)?;
    Some(Clause::Term { negated, term })
}

fn parse_term(body: &str, now_ms: i64) -> Option<Term> {
    if body.starts_with('"') {
        let phrase = unquote(body).to_lowercase();
        return (!phrase.is_empty()).then_some(Term::Text(phrase));
    }
    let operator_term = body
        .split_once(':')
        .and_then(|(operator, value)| parse_operator(operator, value, now_ms));
    Some(operator_term.unwrap_or_else(|| Term::Text(body.to_lowercase())))
}

/// Reads `operator:value`. Returns `None` for an unknown operator or an unreadable value.
fn parse_operator(operator: &str, raw_value: &str, now_ms: i64) -> Option<Term> {
    let value = unquote(raw_value).to_lowercase();
    let term = match operator.to_ascii_lowercase().as_str() {
        "from" => Term::From(value),
        "to" => Term::To(value),
        "cc" => Term::Cc(value),
        "bcc" => Term::Bcc(value),
        "subject" => Term::Subject(value),
        "after" => Term::After(parse_date_ms(&value)?),
        "before" => Term::Before(parse_date_ms(&value)?),
        "newer_than" => Term::After(now_ms - parse_age_ms(&value)?),
        "older_than" => Term::Before(now_ms - parse_age_ms(&value)?),
        "in" if value == "anywhere" => Term::Anywhere,
        "in" | "label" => Term::Label(label_id(&value)),
        "is" => match value.as_str() {
            "unread" => Term::Label("UNREAD".to_string()),
            "read" => Term::Read,
            "starred" => Term::Label("STARRED".to_string()),
            "important" => Term::Label("IMPORTANT".to_string()),
            _ => return None,
        },
        "has" if value == "attachment" => Term::HasAttachment,
        "filename" => Term::Filename(value),
        _ => return None,
    };
    Some(term)
}

fn unquote(value: &str) -> &str {
    value.trim_matches('"')
}

/// Maps `in:`/`label:` names to label ids: system labels are uppercase ids, user labels keep
/// their name (matched case-insensitively).
fn label_id(name: &str) -> String {
    match name {
        "inbox" | "sent" | "spam" | "trash" | "draft" | "unread" | "starred" | "important" => {
            name.to_ascii_uppercase()
        }
        "drafts" => "DRAFT".to_string(),
        other => other.to_string(),
    }
}

/// Reads `YYYY/MM/DD`, `YYYY-MM-DD` or epoch seconds as milliseconds since the epoch.
fn parse_date_ms(value: &str) -> Option<i64> {
    if let Ok(seconds) = value.parse::<i64>() {
        return seconds.checked_mul(1000);
    }
    let mut fields = value.split(['/', '-']);
    let year = fields.next()?.parse().ok()?;
    let month = fields.next()?.parse().ok()?;
    let day = fields.next()?.parse().ok()?;
    if fields.next().is_some() {
        return None;
    }
    let date = NaiveDate::from_ymd_opt(year, month, day)?;
    let midnight = date.and_hms_opt(0, 0, 0)?;
    Some(Utc.from_utc_datetime(&midnight).timestamp_millis())
}

/// Reads `Nd`, `Nm` (30 days) or `Ny` (365 days) as a duration in milliseconds.
fn parse_age_ms(value: &str) -> Option<i64> {
    let unit = value.chars().last()?;
    let count: i64 = value.get(..value.len() - 1)?.parse().ok()?;
    let days = match unit {
        'd' => count,
        'm' => count.checked_mul(30)?,
        'y' => count.checked_mul(365)?,
        _ => return None,
    };
    days.checked_mul(DAY_MS)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000_000;

    fn document() -> SearchDocument {
        SearchDocument {
            labels: vec!["INBOX".into(), "UNREAD".into()],
            from: "ada lovelace <ada@example.com>".into(),
            to: "bob <bob@example.com>".into(),
            cc: String::new(),
            bcc: String::new(),
            subject: "Quarterly Report".into(),
            text: "Numbers are up. See the attached PDF.".into(),
            internal_date_ms: NOW - 3 * DAY_MS,
            has_attachment: true,
            filenames: vec!["report.pdf".into()],
        }
    }

    fn matches(q: &str) -> bool {
        parse(q, NOW).matches(&document())
    }

    #[test]
    fn free_words_are_anded_and_case_insensitive() {
        assert!(matches("quarterly numbers"));
        assert!(!matches("quarterly budget"));
        assert!(matches("ADA"));
    }

    #[test]
    fn quoted_phrase_matches_as_one_string() {
        assert!(matches("\"numbers are up\""));
        assert!(!matches("\"numbers are down\""));
    }

    #[test]
    fn negation_inverts_a_term() {
        assert!(matches("-budget"));
        assert!(!matches("-quarterly"));
        assert!(!matches("-is:unread"));
    }

    #[test]
    fn header_operators() {
        assert!(matches("from:ada@example.com"));
        assert!(matches("from:lovelace"));
        assert!(!matches("from:bob"));
        assert!(matches("to:bob"));
        assert!(matches("subject:report"));
        assert!(matches("subject:\"quarterly report\""));
        assert!(!matches("subject:minutes"));
    }

    #[test]
    fn state_and_label_operators() {
        assert!(matches("is:unread"));
        assert!(!matches("is:read"));
        assert!(matches("in:inbox"));
        assert!(!matches("in:sent"));
        assert!(matches("label:inbox"));
        assert!(matches("has:attachment"));
        assert!(matches("filename:pdf"));
    }

    #[test]
    fn date_operators() {
        assert!(matches("newer_than:7d"));
        assert!(!matches("newer_than:2d"));
        assert!(matches("older_than:2d"));
        assert!(matches("after:2023/01/01 before:2024/01/01"));
        assert!(!matches("after:2023/11/20"));
        assert!(matches("after:2023-11-01"));
        let seconds = (NOW - 4 * DAY_MS) / 1000;
        assert!(matches(&format!("after:{seconds}")));
        assert!(!matches(&format!("before:{seconds}")));
    }

    #[test]
    fn date_parsing() {
        assert_eq!(parse_date_ms("2024/01/02"), Some(1_704_153_600_000));
        assert_eq!(parse_date_ms("2024/1/2"), Some(1_704_153_600_000));
        assert_eq!(parse_date_ms("1704153600"), Some(1_704_153_600_000));
        assert_eq!(parse_date_ms("2024/13/02"), None);
        assert_eq!(parse_age_ms("2m"), Some(60 * DAY_MS));
        assert_eq!(parse_age_ms("1y"), Some(365 * DAY_MS));
        assert_eq!(parse_age_ms("d"), None);
    }

    #[test]
    fn or_joins_alternatives() {
        assert!(matches("from:bob OR from:ada"));
        assert!(!matches("from:bob OR from:carol"));
        assert!(matches("from:carol OR subject:report OR is:starred"));
    }

    #[test]
    fn unknown_operator_is_a_free_word() {
        let query = parse("category:updates", NOW);
        assert_eq!(
            query.clauses,
            vec![Clause::Term {
                negated: false,
                term: Term::Text("category:updates".into())
            }]
        );
    }

    #[test]
    fn spam_and_trash_need_naming() {
        assert!(!parse("is:unread", NOW).reaches_spam_or_trash());
        assert!(parse("in:trash", NOW).reaches_spam_or_trash());
        assert!(parse("in:anywhere", NOW).reaches_spam_or_trash());
    }
}
