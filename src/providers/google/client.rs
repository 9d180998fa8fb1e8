//! Gmail API v1 client for the calls the gateway makes.

use reqwest::{Method, RequestBuilder, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::wire::{GmailMessage, ListHistoryResponse, ListMessagesResponse, Profile};
use crate::providers::{ProviderError, retry_after_seconds};

/// Message format of `messages.get`.
#[derive(Debug, Clone, Copy)]
pub enum Format {
    Full,
    Metadata,
}

pub struct GmailClient<'a> {
    pub http: &'a reqwest::Client,
    /// API base such as `https://gmail.googleapis.com`.
    pub api_url: &'a str,
    pub token: &'a SecretString,
}

impl GmailClient<'_> {
    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}/gmail/v1/users/me/{path}", self.api_url))
            .bearer_auth(self.token.expose_secret())
    }

    pub async fn profile(&self) -> Result<Profile, ProviderError> {
        send(self.request(Method::GET, "profile")).await
    }

    pub async fn list_messages(
        &self,
        query: &str,
        max_results: u32,
        page_token: Option<&str>,
    ) -> Result<ListMessagesResponse, ProviderError> {
        let mut request = self
            .request(Method::GET, "messages")
            .query(&[("q", query), ("maxResults", &max_results.to_string())]);
        if let Some(token) = page_token {
            request = request.query(&[("pageToken", token)]);
        }
        send(request).await
    }

    /// Fetches one message; `message_id` must already be checked by [`is_valid_id`].
    pub async fn get_message(
        &self,
        message_id: &str,
        format: Format,
    ) -> Result<GmailMessage, ProviderError> {
        // Ids come from the caller (checked already) or from Gmail's own responses,
        // either way only a well-formed id may become part of the path.
        if !is_valid_id(message_id) {
            return Err(ProviderError::Unavailable(
                "Gmail returned a malformed message id".to_owned(),
            ));
        }
        let mut request = self.request(Method::GET, &format!("messages/{message_id}"));
        request = match format {
            Format::Full => request.query(&[("format", "full")]),
            Format::Metadata => request.query(&[
                ("format", "metadata"),
                ("metadataHeaders", "Message-ID"),
                ("metadataHeaders", "References"),
                ("metadataHeaders", "In-Reply-To"),
                ("metadataHeaders", "Subject"),
            ]),
        };
        send(request).await
    }

    pub async fn list_history(
        &self,
        start_history_id: &str,
        max_results: u32,
        page_token: Option<&str>,
    ) -> Result<ListHistoryResponse, ProviderError> {
        let mut request = self.request(Method::GET, "history").query(&[
            ("startHistoryId", start_history_id),
            ("maxResults", &max_results.to_string()),
        ]);
        if let Some(token) = page_token {
            request = request.query(&[("pageToken", token)]);
        }
        send(request).await
    }

    /// Sends a raw RFC 5322 message as JSON `{raw, threadId}`.
    pub async fn send_raw(
        &self,
        raw_base64url: String,
        thread_id: Option<&str>,
    ) -> Result<GmailMessage, ProviderError> {
        let mut body = serde_json::json!({ "raw": raw_base64url });
        if let Some(thread_id) = thread_id {
            body["threadId"] = Value::from(thread_id);
        }
        send(self.request(Method::POST, "messages/send").json(&body)).await
    }

    /// Sends a large message through the media upload endpoint as a
    /// `multipart/related` body: JSON metadata, then the `message/rfc822` bytes.
    pub async fn send_upload(
        &self,
        message: Vec<u8>,
        thread_id: Option<&str>,
    ) -> Result<GmailMessage, ProviderError> {
        let boundary = format!("patchbay_{}", uuid::Uuid::new_v4().simple());
        let metadata = match thread_id {
            Some(thread_id) => serde_json::json!({ "threadId": thread_id }),
            None => serde_json::json!({}),
        };
        let mut body = Vec::with_capacity(message.len() + 512);
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{metadata}\r\n\
                 --{boundary}\r\nContent-Type: message/rfc822\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(&message);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let request = self
            .http
            .post(format!(
                "{}/upload/gmail/v1/users/me/messages/send",
                self.api_url
            ))
            .query(&[("uploadType", "multipart")])
            .bearer_auth(self.token.expose_secret())
            .header(
                reqwest::header::CONTENT_TYPE,
                format!("multipart/related; boundary={boundary}"),
            )
            .body(body);
        send(request).await
    }
}

/// Whether a Gmail message or thread id is safe to put in a path: Gmail ids are
/// short hexadecimal strings; this accepts URL-safe letters, digits, `-` and `_`.
pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

async fn send<T: DeserializeOwned>(request: RequestBuilder) -> Result<T, ProviderError> {
    let response = request
        .send()
        .await
        .map_err(ProviderError::from_transport)?;
    let status = response.status();
    if status.is_success() {
        return response
            .json()
            .await
            .map_err(|e| ProviderError::Unavailable(format!("unreadable Gmail answer: {e}")));
    }
    let retry_after = retry_after_seconds(response.headers());
    let body: Value = response.json().await.unwrap_or(Value::Null);
    Err(gmail_failure(status, &body, retry_after))
}

/// Maps a Gmail error response (`{"error": {"code", "message", "errors": [{"reason"}]}}`).
fn gmail_failure(status: StatusCode, body: &Value, retry_after: Option<u64>) -> ProviderError {
    let error = body.get("error");
    let reason = error
        .and_then(|e| e.get("errors"))
        .and_then(|errors| errors.get(0))
        .and_then(|first| first.get("reason"))
        .and_then(Value::as_str)
        .or_else(|| error.and_then(|e| e.get("status")).and_then(Value::as_str))
        .unwrap_or("unknown")
        .to_owned();
    let message = error
        .and_then(|e| e.get("message"))
        .and_then(Value::as_str)
        .unwrap_or("Gmail rejected the request")
        .to_owned();
    match status {
        StatusCode::UNAUTHORIZED => ProviderError::Unauthorized,
        StatusCode::TOO_MANY_REQUESTS => ProviderError::RateLimited {
            retry_after: retry_after.unwrap_or(1),
        },
        StatusCode::FORBIDDEN
            if reason.contains("RateLimitExceeded") || reason == "rateLimitExceeded" =>
        {
            ProviderError::RateLimited {
                retry_after: retry_after.unwrap_or(1),
            }
        }
        StatusCode::FORBIDDEN if reason == "insufficientPermissions" => {
            ProviderError::MissingScope(message)
        }
        status if status.is_server_error() || status.is_redirection() => {
            ProviderError::Unavailable(format!("Gmail returned {status}: {reason}"))
        }
        _ => ProviderError::Rejected {
            code: reason,
            message: format!("Gmail: {message}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ids_are_checked() {
        assert!(is_valid_id("18c2a9f00b1d2e3f"));
        for bad in ["", "../profile", "a/b", "a?b", "id with space", "%2e%2e"] {
            assert!(!is_valid_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn not_found_is_a_rejection() {
        let body = json!({"error": {"code": 404, "message": "Requested entity was not found.",
            "errors": [{"reason": "notFound"}], "status": "NOT_FOUND"}});
        match gmail_failure(StatusCode::NOT_FOUND, &body, None) {
            ProviderError::Rejected { code, .. } => assert_eq!(code, "notFound"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn insufficient_permissions_is_missing_scope() {
        let body = json!({"error": {"code": 403, "message": "Insufficient Permission",
            "errors": [{"reason": "insufficientPermissions"}]}});
        let error = gmail_failure(StatusCode::FORBIDDEN, &body, None);
        assert!(matches!(error, ProviderError::MissingScope(_)));
    }
}
