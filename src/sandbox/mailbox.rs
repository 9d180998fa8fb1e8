//! One Google account's mailbox: stored messages, labels, threads and the history log.

use std::collections::HashMap;

use rand::Rng;

use super::mime::{Mailbox as Address, ParsedEmail, parse_email};
use super::query::{Query, SearchDocument};

/// History ids of a new mailbox start in this range, so that they look like Gmail's.
const FIRST_HISTORY_ID: std::ops::Range<u64> = 1_000..9_000;

/// A message as the sandbox keeps it.
#[derive(Debug, Clone)]
pub struct StoredMessage {
    pub id: String,
    pub thread_id: String,
    pub labels: Vec<String>,
    pub raw: Vec<u8>,
    pub parsed: ParsedEmail,
    pub internal_date_ms: i64,
    /// History id of the last change to this message.
    pub history_id: u64,
}

/// The kind of change one history record stores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    MessageAdded,
    MessageDeleted,
    LabelsAdded(Vec<String>),
    LabelsRemoved(Vec<String>),
}

impl Change {
    /// Returns the `historyTypes` value that selects this change.
    pub fn history_type(&self) -> &'static str {
        match self {
            Change::MessageAdded => "messageAdded",
            Change::MessageDeleted => "messageDeleted",
            Change::LabelsAdded(_) => "labelAdded",
            Change::LabelsRemoved(_) => "labelRemoved",
        }
    }
}

/// One entry of the history log.
#[derive(Debug, Clone)]
pub struct HistoryRecord {
    pub id: u64,
    pub message_id: String,
    pub thread_id: String,
    /// The message's labels right after the change.
    pub labels_after: Vec<String>,
    pub change: Change,
}

/// A `startHistoryId` older than the oldest kept record.
#[derive(Debug, PartialEq, Eq)]
pub struct HistoryExpired;

/// Messages and history of one account.
#[derive(Debug)]
pub struct Mailbox {
    messages: HashMap<String, StoredMessage>,
    history: Vec<HistoryRecord>,
    history_id: u64,
    /// The smallest `startHistoryId` for which the log is complete.
    history_floor: u64,
}

impl Default for Mailbox {
    fn default() -> Mailbox {
        Mailbox::new()
    }
}

impl Mailbox {
    pub fn new() -> Mailbox {
        let start = rand::thread_rng().gen_range(FIRST_HISTORY_ID);
        Mailbox {
            messages: HashMap::new(),
            history: Vec::new(),
            history_id: start,
            history_floor: start,
        }
    }

    pub fn history_id(&self) -> u64 {
        self.history_id
    }

    pub fn get(&self, id: &str) -> Option<&StoredMessage> {
        self.messages.get(id)
    }

    pub fn messages(&self) -> impl Iterator<Item = &StoredMessage> {
        self.messages.values()
    }

    pub fn thread_count(&self) -> usize {
        let mut threads: Vec<&str> = self
            .messages
            .values()
            .map(|m| m.thread_id.as_str())
            .collect();
        threads.sort_unstable();
        threads.dedup();
        threads.len()
    }

    /// Finds the thread that a new message continues: the thread of a message it
    /// references, if a message of that thread has the same subject without prefixes.
    fn thread_of_reply(&self, parsed: &ParsedEmail) -> Option<String> {
        let referenced_threads: Vec<&str> = self
            .messages
            .values()
            .filter(|message| {
                message
                    .parsed
                    .message_id
                    .as_ref()
                    .is_some_and(|id| parsed.thread_refs.contains(id))
            })
            .map(|message| message.thread_id.as_str())
            .collect();
        let subject = base_subject(&parsed.subject);
        self.messages
            .values()
            .find(|message| {
                referenced_threads.contains(&message.thread_id.as_str())
                    && base_subject(&message.parsed.subject) == subject
            })
            .map(|message| message.thread_id.clone())
    }

    /// Stores a message and logs `messageAdded`. Without `thread_id`, the message joins the
    /// thread of a message it references by In-Reply-To or References when the subjects
    /// match without `Re:`/`Fwd:` prefixes, as Gmail threads, else starts its own thread.
    pub fn insert(
        &mut self,
        raw: Vec<u8>,
        parsed: ParsedEmail,
        labels: Vec<String>,
        internal_date_ms: i64,
        thread_id: Option<String>,
    ) -> &StoredMessage {
        let id = self.new_message_id();
        let thread_id = thread_id
            .or_else(|| self.thread_of_reply(&parsed))
            .unwrap_or_else(|| id.clone());
        let history_id = self.record(&id, &thread_id, &labels, Change::MessageAdded);
        let message = StoredMessage {
            id: id.clone(),
            thread_id,
            labels,
            raw,
            parsed,
            internal_date_ms,
            history_id,
        };
        self.messages.entry(id).or_insert(message)
    }

    /// Parses and stores a message file. An `X-Sandbox-Labels: A,B` header sets the labels
    /// instead of `default_labels` and is removed from the stored copy. Without a readable
    /// Date header, `fallback_date_ms` becomes the internal date. Returns `None` when the bytes
    /// do not parse as a message.
    pub fn import_eml(
        &mut self,
        raw: &[u8],
        default_labels: &[String],
        fallback_date_ms: i64,
    ) -> Option<&StoredMessage> {
        let (raw, header_labels) = take_sandbox_labels(raw);
        let parsed = parse_email(&raw)?;
        let labels = header_labels.unwrap_or_else(|| default_labels.to_vec());
        let internal_date_ms = parsed.date_ms.unwrap_or(fallback_date_ms);
        Some(self.insert(raw, parsed, labels, internal_date_ms, None))
    }

    /// Removes a message and logs `messageDeleted`. Returns whether it existed.
    pub fn delete(&mut self, id: &str) -> bool {
        let Some(message) = self.messages.remove(id) else {
            return false;
        };
        self.record(
            &message.id,
            &message.thread_id,
            &message.labels,
            Change::MessageDeleted,
        );
        true
    }

    /// Adds and removes labels and logs one record per kind of change that happened.
    pub fn modify(
        &mut self,
        id: &str,
        add: &[String],
        remove: &[String],
    ) -> Option<&StoredMessage> {
        let message = self.messages.get_mut(id)?;
        let added: Vec<String> = add
            .iter()
            .filter(|label| !message.labels.contains(label) && !remove.contains(label))
            .cloned()
            .collect();
        let removed: Vec<String> = remove
            .iter()
            .filter(|label| message.labels.contains(label))
            .cloned()
            .collect();
        message.labels.extend(added.iter().cloned());
        message.labels.retain(|label| !removed.contains(label));
        let (message_id, thread_id, labels) = (
            message.id.clone(),
            message.thread_id.clone(),
            message.labels.clone(),
        );

        let mut last = None;
        if !added.is_empty() {
            last = Some(self.record(&message_id, &thread_id, &labels, Change::LabelsAdded(added)));
        }
        if !removed.is_empty() {
            let change = Change::LabelsRemoved(removed);
            last = Some(self.record(&message_id, &thread_id, &labels, change));
        }
        let message = self.messages.get_mut(id)?;
        if let Some(history_id) = last {
            message.history_id = history_id;
        }
        Some(message)
    }

    /// Lists messages matching the filters, newest first (by internal date, then id).
    pub fn search(
        &self,
        query: &Query,
        label_ids: &[String],
        include_spam_trash: bool,
    ) -> Vec<&StoredMessage> {
        let reach_hidden = include_spam_trash || query.reaches_spam_or_trash();
        let mut found: Vec<&StoredMessage> = self
            .messages
            .values()
            .filter(|message| {
                reach_hidden
                    || !message
                        .labels
                        .iter()
                        .any(|label| label == "SPAM" || label == "TRASH")
            })
            .filter(|message| label_ids.iter().all(|label| message.labels.contains(label)))
            .filter(|message| query.matches(&search_document(message)))
            .collect();
        found.sort_by(|a, b| newest_first_key(b).cmp(&newest_first_key(a)));
        found
    }

    /// Returns the records after `start`, oldest first.
    pub fn history_since(&self, start: u64) -> Result<Vec<&HistoryRecord>, HistoryExpired> {
        if start < self.history_floor {
            return Err(HistoryExpired);
        }
        Ok(self
            .history
            .iter()
            .filter(|record| record.id > start)
            .collect())
    }

    /// Forgets every history record, so that any older `startHistoryId` gets 404.
    pub fn expire_history(&mut self) {
        self.history.clear();
        self.history_floor = self.history_id;
    }

    fn record(
        &mut self,
        message_id: &str,
        thread_id: &str,
        labels: &[String],
        change: Change,
    ) -> u64 {
        self.history_id += 1;
        self.history.push(HistoryRecord {
            id: self.history_id,
            message_id: message_id.to_string(),
            thread_id: thread_id.to_string(),
            labels_after: labels.to_vec(),
            change,
        });
        self.history_id
    }

    /// Creates a unique 16-hex-digit id that, like Gmail's, grows with time.
    fn new_message_id(&self) -> String {
        let now_ms = u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or_default();
        loop {
            let random: u64 = rand::thread_rng().gen_range(0..1 << 20);
            let id = format!("{:016x}", (now_ms << 20) | random);
            if !self.messages.contains_key(&id) {
                return id;
            }
        }
    }
}

/// Strips `Re:`, `Fwd:` and similar prefixes and compares case-insensitively, as Gmail does
/// when it decides whether a message belongs to a thread.
pub fn base_subject(subject: &str) -> String {
    let mut rest = subject.trim();
    loop {
        let lower = rest.to_ascii_lowercase();
        let prefix = ["re:", "fwd:", "fw:", "aw:", "wg:"]
            .into_iter()
            .find(|prefix| lower.starts_with(prefix));
        match prefix {
            Some(prefix) => rest = rest.get(prefix.len()..).unwrap_or_default().trim_start(),
            None => return rest.to_lowercase(),
        }
    }
}

/// Header that sets the labels of a message file; the sandbox removes it before storing.
const LABELS_HEADER: &str = "x-sandbox-labels";

/// Removes the `X-Sandbox-Labels` field (with its folded lines) from the header block and
/// returns the labels it lists.
fn take_sandbox_labels(raw: &[u8]) -> (Vec<u8>, Option<Vec<String>>) {
    let header_end = find_header_end(raw);
    let (head, body) = raw.split_at(header_end);

    // Group the header block into fields: a line plus its folded continuation lines.
    let mut fields: Vec<Vec<u8>> = Vec::new();
    for line in head.split_inclusive(|b| *b == b'\n') {
        let is_continuation = line.first().is_some_and(|b| *b == b' ' || *b == b'\t');
        match fields.last_mut() {
            Some(field) if is_continuation => field.extend_from_slice(line),
            _ => fields.push(line.to_vec()),
        }
    }

    let mut kept = Vec::with_capacity(raw.len());
    let mut labels = None;
    for field in fields {
        let text = String::from_utf8_lossy(&field);
        let value = text
            .split_once(':')
            .filter(|(name, _)| name.trim().eq_ignore_ascii_case(LABELS_HEADER))
            .map(|(_, value)| value);
        match value {
            Some(value) => {
                let list = value
                    .split(',')
                    .map(|label| label.trim().to_string())
                    .filter(|label| !label.is_empty())
                    .collect();
                labels = Some(list);
            }
            None => kept.extend_from_slice(&field),
        }
    }
    kept.extend_from_slice(body);
    (kept, labels)
}

/// Returns the offset of the blank line that ends the header block (or the input length).
fn find_header_end(raw: &[u8]) -> usize {
    let crlf = raw.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 2);
    let lf = raw.windows(2).position(|w| w == b"\n\n").map(|p| p + 1);
    match (crlf, lf) {
        (Some(a), Some(b)) => a.min(b),
        (Some(a), None) => a,
        (None, Some(b)) => b,
        (None, None) => raw.len(),
    }
}

fn newest_first_key(message: &StoredMessage) -> (i64, &str) {
    (message.internal_date_ms, message.id.as_str())
}

fn address_text(addresses: &[Address]) -> String {
    addresses
        .iter()
        .map(|address| match &address.name {
            Some(name) => format!("{name} <{}>", address.email),
            None => address.email.clone(),
        })
        .collect::<Vec<_>>()
        .join(", ")
        .to_lowercase()
}

/// Builds what a query looks at from a stored message.
pub fn search_document(message: &StoredMessage) -> SearchDocument {
    let parsed = &message.parsed;
    SearchDocument {
        labels: message.labels.clone(),
        from: address_text(&parsed.from),
        to: address_text(&parsed.to),
        cc: address_text(&parsed.cc),
        bcc: address_text(&parsed.bcc),
        subject: parsed.subject.clone(),
        text: parsed.text.clone(),
        internal_date_ms: message.internal_date_ms,
        has_attachment: parsed.has_attachment(),
        filenames: parsed.filenames(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::mime::parse_email;

    fn parsed(subject: &str, message_id: &str, in_reply_to: Option<&str>) -> ParsedEmail {
        let mut eml = format!(
            "From: a@example.com\r\nTo: b@example.com\r\nSubject: {subject}\r\nMessage-ID: <{message_id}>\r\n"
        );
        if let Some(parent) = in_reply_to {
            eml.push_str(&format!("In-Reply-To: <{parent}>\r\n"));
        }
        eml.push_str("\r\nbody\r\n");
        parse_email(eml.as_bytes()).expect("test message parses")
    }

    #[test]
    fn sandbox_labels_header_is_removed() {
        let raw = b"From: a@example.com\r\nX-Sandbox-Labels: INBOX,\r\n STARRED\r\nSubject: Hi\r\n\r\nX-Sandbox-Labels: kept in body\r\n";
        let (stored, labels) = take_sandbox_labels(raw);
        assert_eq!(
            labels,
            Some(vec!["INBOX".to_string(), "STARRED".to_string()])
        );
        let text = String::from_utf8(stored).expect("ascii");
        assert_eq!(
            text,
            "From: a@example.com\r\nSubject: Hi\r\n\r\nX-Sandbox-Labels: kept in body\r\n"
        );
    }

    #[test]
    fn import_uses_date_header_and_default_labels() {
        let mut mailbox = Mailbox::new();
        let raw = b"From: a@example.com\r\nDate: Tue, 14 Nov 2023 22:13:20 +0000\r\n\r\nhi\r\n";
        let labels = vec!["INBOX".to_string(), "UNREAD".to_string()];
        let stored = mailbox.import_eml(raw, &labels, 5).expect("parses");
        assert_eq!(stored.internal_date_ms, 1_700_000_000_000);
        assert_eq!(stored.labels, labels);
        let undated = mailbox
            .import_eml(b"From: a@example.com\r\n\r\nhi\r\n", &labels, 5)
            .expect("parses");
        assert_eq!(undated.internal_date_ms, 5);
    }

    #[test]
    fn reply_joins_parent_thread() {
        let mut mailbox = Mailbox::new();
        let labels = vec!["INBOX".to_string()];
        let parent = mailbox
            .insert(
                Vec::new(),
                parsed("Hi", "p@x", None),
                labels.clone(),
                1,
                None,
            )
            .clone();
        let reply = mailbox
            .insert(
                Vec::new(),
                parsed("Re: Hi", "r@x", Some("p@x")),
                labels.clone(),
                2,
                None,
            )
            .clone();
        let other = mailbox
            .insert(Vec::new(), parsed("Other", "o@x", None), labels, 3, None)
            .clone();
        assert_eq!(parent.thread_id, parent.id);
        assert_eq!(reply.thread_id, parent.id);
        assert_eq!(other.thread_id, other.id);
        assert_eq!(mailbox.thread_count(), 2);
    }

    #[test]
    fn reply_with_new_subject_starts_thread() {
        let mut mailbox = Mailbox::new();
        let labels = vec!["INBOX".to_string()];
        let parent = mailbox
            .insert(
                Vec::new(),
                parsed("Plans", "p@x", None),
                labels.clone(),
                1,
                None,
            )
            .clone();
        let unrelated = mailbox
            .insert(
                Vec::new(),
                parsed("Re: Invoice 42", "u@x", Some("p@x")),
                labels.clone(),
                2,
                None,
            )
            .clone();
        let forwarded = mailbox
            .insert(
                Vec::new(),
                parsed("Fwd: RE: plans", "f@x", Some("p@x")),
                labels,
                3,
                None,
            )
            .clone();
        assert_eq!(unrelated.thread_id, unrelated.id);
        assert_eq!(forwarded.thread_id, parent.id);
        assert_eq!(mailbox.thread_count(), 2);
    }

    #[test]
    fn every_change_bumps_history() {
        let mut mailbox = Mailbox::new();
        let start = mailbox.history_id();
        let labels = vec!["INBOX".to_string(), "UNREAD".to_string()];
        let id = mailbox
            .insert(Vec::new(), parsed("Hi", "p@x", None), labels, 1, None)
            .id
            .clone();
        assert_eq!(mailbox.history_id(), start + 1);

        mailbox.modify(&id, &[], &["UNREAD".to_string()]);
        assert_eq!(mailbox.history_id(), start + 2);
        assert_eq!(mailbox.get(&id).map(|m| m.history_id), Some(start + 2));

        // Removing a label the message does not have changes nothing.
        mailbox.modify(&id, &[], &["UNREAD".to_string()]);
        assert_eq!(mailbox.history_id(), start + 2);

        assert!(mailbox.delete(&id));
        assert!(!mailbox.delete(&id));
        let records = mailbox.history_since(start).expect("history is complete");
        let kinds: Vec<&str> = records.iter().map(|r| r.change.history_type()).collect();
        assert_eq!(
            kinds,
            vec!["messageAdded", "labelRemoved", "messageDeleted"]
        );
    }

    #[test]
    fn expired_history_rejects_old_start() {
        let mut mailbox = Mailbox::new();
        let start = mailbox.history_id();
        mailbox.insert(Vec::new(), parsed("Hi", "p@x", None), Vec::new(), 1, None);
        mailbox.expire_history();
        assert!(matches!(mailbox.history_since(start), Err(HistoryExpired)));
        let current = mailbox.history_id();
        assert_eq!(
            mailbox.history_since(current).map(|r| r.len()).ok(),
            Some(0)
        );
    }

    #[test]
    fn search_orders_newest_first_and_hides_trash() {
        let mut mailbox = Mailbox::new();
        let inbox = vec!["INBOX".to_string()];
        let old = mailbox
            .insert(
                Vec::new(),
                parsed("Old", "1@x", None),
                inbox.clone(),
                10,
                None,
            )
            .id
            .clone();
        let new = mailbox
            .insert(Vec::new(), parsed("New", "2@x", None), inbox, 20, None)
            .id
            .clone();
        mailbox.insert(
            Vec::new(),
            parsed("Bin", "3@x", None),
            vec!["TRASH".to_string()],
            30,
            None,
        );

        let found: Vec<&str> = mailbox
            .search(&Query::default(), &[], false)
            .iter()
            .map(|m| m.id.as_str())
            .collect();
        assert_eq!(found, vec![new.as_str(), old.as_str()]);
        assert_eq!(mailbox.search(&Query::default(), &[], true).len(), 3);
    }
}
