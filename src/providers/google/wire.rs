//! Gmail API v1 resources as the JSON API sends and receives them.
//!
//! Field names follow Google's discovery document (camelCase). Every field has a default,
//! so a response that leaves a field out still deserializes.

use serde::{Deserialize, Serialize};

/// A `Message` resource (`users.messages.get`), in any of the formats `full`, `metadata`,
/// `minimal` or `raw`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", default)]
pub struct GmailMessage {
    pub id: String,
    pub thread_id: Option<String>,
    pub label_ids: Vec<String>,
    pub snippet: Option<String>,
    pub history_id: Option<String>,
    /// Milliseconds since the Unix epoch, as a decimal string.
    pub internal_date: Option<String>,
    pub size_estimate: Option<i64>,
    pub payload: Option<MessagePart>,
    /// The whole RFC 5322 message in base64url, present only in format `raw`.
    pub raw: Option<String>,
}

/// One MIME part of a message. The root part contains the message headers.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", default)]
pub struct MessagePart {
    pub part_id: Option<String>,
    pub mime_type: Option<String>,
    /// Attachment file name, empty for parts that are not attachments.
    pub filename: Option<String>,
    pub headers: Vec<MessagePartHeader>,
    pub body: Option<MessagePartBody>,
    pub parts: Vec<MessagePart>,
}

/// One header line of a part, unfolded.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", default)]
pub struct MessagePartHeader {
    pub name: String,
    pub value: String,
}

/// A part's body: inline `data`, or an `attachmentId` to fetch it separately.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", default)]
pub struct MessagePartBody {
    pub attachment_id: Option<String>,
    /// Size of the decoded body in bytes.
    pub size: i64,
    /// Base64url of the part's bytes after the transfer encoding is undone, in the part's
    /// own charset.
    pub data: Option<String>,
}

/// A message as `messages.list` and `history.list` name it: ids only.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", default)]
pub struct MessageRef {
    pub id: String,
    pub thread_id: Option<String>,
}

/// Response of `users.messages.list`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ListMessagesResponse {
    pub messages: Vec<MessageRef>,
    pub next_page_token: Option<String>,
    pub result_size_estimate: Option<i64>,
}

/// Response of `users.history.list`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ListHistoryResponse {
    pub history: Vec<History>,
    pub next_page_token: Option<String>,
    /// The mailbox's current history id.
    pub history_id: Option<String>,
}

/// One history record: the changes made to the mailbox at one history id.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", default)]
pub struct History {
    pub id: String,
    pub messages: Vec<MessageRef>,
    pub messages_added: Vec<HistoryMessage>,
    pub messages_deleted: Vec<HistoryMessage>,
    pub labels_added: Vec<HistoryLabels>,
    pub labels_removed: Vec<HistoryLabels>,
}

/// A message added to or deleted from the mailbox.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HistoryMessage {
    pub message: MessageRef,
}

/// Labels added to or removed from one message.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HistoryLabels {
    pub message: MessageRef,
    pub label_ids: Vec<String>,
}

/// Response of `users.getProfile`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Profile {
    pub email_address: String,
    pub messages_total: Option<i64>,
    pub threads_total: Option<i64>,
    pub history_id: Option<String>,
}

/// Body of `users.messages.send` as JSON: the RFC 5322 message in base64url.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SendMessageRequest {
    pub raw: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thread_id: Option<String>,
}

/// Google's error body. The APIs answer
/// `{"error": {"code", "message", "errors": [{"reason", …}], "status"}}`, and the OAuth
/// token endpoint answers `{"error": "invalid_grant", "error_description": "…"}`: both
/// deserialize into this type.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GoogleErrorBody {
    pub error: GoogleError,
    #[serde(
        default,
        rename = "error_description",
        skip_serializing_if = "Option::is_none"
    )]
    pub error_description: Option<String>,
}

/// The `error` member of [`GoogleErrorBody`].
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum GoogleError {
    /// The API form with an HTTP code, a status name and detail entries.
    Status(GoogleErrorStatus),
    /// The OAuth form: an error code such as `invalid_grant`.
    Code(String),
}

/// The API form of a Google error.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", default)]
pub struct GoogleErrorStatus {
    pub code: Option<i64>,
    pub message: Option<String>,
    pub errors: Vec<GoogleErrorDetail>,
    /// Canonical status name such as `NOT_FOUND` or `PERMISSION_DENIED`.
    pub status: Option<String>,
}

/// One entry of `error.errors`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", default)]
pub struct GoogleErrorDetail {
    pub domain: Option<String>,
    /// Machine-readable reason such as `notFound`, `rateLimitExceeded` or
    /// `insufficientPermissions`.
    pub reason: Option<String>,
    pub message: Option<String>,
}

impl GoogleErrorBody {
    /// Returns the machine-readable reason: the first `errors[].reason`, else `status`, for
    /// the API form, and the error code for the OAuth form.
    pub fn reason(&self) -> Option<&str> {
        match &self.error {
            GoogleError::Status(status) => status
                .errors
                .iter()
                .find_map(|detail| detail.reason.as_deref())
                .or(status.status.as_deref()),
            GoogleError::Code(code) => Some(code.as_str()),
        }
    }

    /// Returns the human-readable message: `error.message` or `error_description`.
    pub fn message(&self) -> Option<&str> {
        match &self.error {
            GoogleError::Status(status) => status.message.as_deref(),
            GoogleError::Code(_) => self.error_description.as_deref(),
        }
    }

    /// Returns the HTTP status code that the API form carries.
    pub fn code(&self) -> Option<i64> {
        match &self.error {
            GoogleError::Status(status) => status.code,
            GoogleError::Code(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_missing_fields_deserializes() {
        let message: GmailMessage = serde_json::from_str(r#"{"id": "18c1"}"#).unwrap();
        assert_eq!(message.id, "18c1");
        assert!(message.label_ids.is_empty());
        assert!(message.payload.is_none());

        let empty: GmailMessage = serde_json::from_str("{}").unwrap();
        assert_eq!(empty.id, "");
    }

    #[test]
    fn message_full_format_deserializes() {
        let json = r#"{
          "id": "18c1", "threadId": "18c0", "labelIds": ["INBOX", "UNREAD"],
          "snippet": "Hi", "historyId": "4711", "internalDate": "1764581400000",
          "sizeEstimate": 2048,
          "payload": {"partId": "", "mimeType": "multipart/mixed", "filename": "",
            "headers": [{"name": "Subject", "value": "Report"}],
            "body": {"size": 0},
            "parts": [{"partId": "0", "mimeType": "text/plain", "filename": "",
                       "headers": [], "body": {"size": 2, "data": "SGk"}},
                      {"partId": "1", "mimeType": "application/pdf", "filename": "a.pdf",
                       "body": {"attachmentId": "ANGj", "size": 48213}}]}
        }"#;
        let message: GmailMessage = serde_json::from_str(json).unwrap();
        assert_eq!(message.thread_id.as_deref(), Some("18c0"));
        assert_eq!(message.internal_date.as_deref(), Some("1764581400000"));
        assert_eq!(message.size_estimate, Some(2048));
        let payload = message.payload.unwrap();
        assert_eq!(payload.headers[0].name, "Subject");
        assert_eq!(payload.parts.len(), 2);
        let pdf_body = payload.parts[1].body.clone().unwrap();
        assert_eq!(pdf_body.attachment_id.as_deref(), Some("ANGj"));
        assert_eq!(pdf_body.size, 48213);
        assert!(pdf_body.data.is_none());
    }

    #[test]
    fn history_response_deserializes() {
        let json = r#"{
          "history": [{"id": "101", "messages": [{"id": "m1", "threadId": "t1"}],
            "messagesAdded": [{"message": {"id": "m1", "threadId": "t1",
                                           "labelIds": ["INBOX"]}}],
            "labelsRemoved": [{"message": {"id": "m2"}, "labelIds": ["UNREAD"]}]}],
          "nextPageToken": "p2", "historyId": "105"
        }"#;
        let response: ListHistoryResponse = serde_json::from_str(json).unwrap();
        assert_eq!(response.history_id.as_deref(), Some("105"));
        assert_eq!(response.next_page_token.as_deref(), Some("p2"));
        let record = &response.history[0];
        assert_eq!(record.messages_added[0].message.id, "m1");
        assert_eq!(record.labels_removed[0].label_ids, vec!["UNREAD"]);
        assert!(record.messages_deleted.is_empty());
    }

    #[test]
    fn list_and_profile_deserialize() {
        let list: ListMessagesResponse =
            serde_json::from_str(r#"{"resultSizeEstimate": 0}"#).unwrap();
        assert!(list.messages.is_empty());
        assert_eq!(list.result_size_estimate, Some(0));

        let profile: Profile = serde_json::from_str(
            r#"{"emailAddress": "ada@example.com", "messagesTotal": 3, "historyId": "9"}"#,
        )
        .unwrap();
        assert_eq!(profile.email_address, "ada@example.com");
        assert_eq!(profile.threads_total, None);
    }

    #[test]
    fn send_request_omits_missing_thread() {
        let request = SendMessageRequest {
            raw: "abc".into(),
            thread_id: None,
        };
        assert_eq!(serde_json::to_string(&request).unwrap(), r#"{"raw":"abc"}"#);

        let threaded = SendMessageRequest {
            raw: "abc".into(),
            thread_id: Some("t1".into()),
        };
        assert_eq!(
            serde_json::to_string(&threaded).unwrap(),
            r#"{"raw":"abc","threadId":"t1"}"#
        );
    }

    #[test]
    fn api_error_reason_is_first_detail() {
        let body: GoogleErrorBody = serde_json::from_str(
            r#"{"error": {"code": 429, "message": "Too many requests",
                "errors": [{"domain": "usageLimits", "reason": "rateLimitExceeded",
                            "message": "Too many requests"}],
                "status": "RESOURCE_EXHAUSTED"}}"#,
        )
        .unwrap();
        assert_eq!(body.reason(), Some("rateLimitExceeded"));
        assert_eq!(body.code(), Some(429));
        assert_eq!(body.message(), Some("Too many requests"));
    }

    #[test]
    fn api_error_without_details_uses_status() {
        let body: GoogleErrorBody = serde_json::from_str(
            r#"{"error": {"code": 404, "message": "Requested entity was not found.",
                "status": "NOT_FOUND"}}"#,
        )
        .unwrap();
        assert_eq!(body.reason(), Some("NOT_FOUND"));
    }

    #[test]
    fn oauth_error_reason_is_code() {
        let body: GoogleErrorBody = serde_json::from_str(
            r#"{"error": "invalid_grant", "error_description": "Token has been expired or revoked."}"#,
        )
        .unwrap();
        assert_eq!(body.reason(), Some("invalid_grant"));
        assert_eq!(body.message(), Some("Token has been expired or revoked."));
        assert_eq!(body.code(), None);
    }
}
