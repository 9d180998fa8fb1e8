//! Gmail API v1 client for the calls the gateway makes.

use std::time::Duration;

use rand::Rng;
use reqwest::{Method, RequestBuilder, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::decode::decode_base64url;
use super::quota::{ConnectionQuota, GmailMethod};
use super::wire::{
    GmailMessage, ListHistoryResponse, ListMessagesResponse, MessagePartBody, Profile,
};
use crate::providers::{ProviderError, retry_after_seconds};

/// Retries of a rate-limited read before the rate limit is returned to the caller.
const MAX_RATE_LIMIT_RETRIES: u32 = 3;
/// First backoff after a rate-limited read; it doubles with each retry.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// Longest `Retry-After` that a read waits out; a longer one goes back to the caller.
const MAX_RETRY_AFTER_SECONDS: u64 = 20;

/// Message format of `messages.get`.
#[derive(Debug, Clone, Copy)]
pub enum Format {
    Full,
    Metadata,
}

/// A Gmail client for one connection. Every call waits for the connection's quota
/// (see [`ConnectionQuota`]); reads that Gmail rate-limits anyway are retried.
pub struct GmailClient<'a> {
    pub http: &'a reqwest::Client,
    /// API base such as `https://gmail.googleapis.com`.
    pub api_url: &'a str,
    pub token: &'a SecretString,
    /// The connection's pacing state.
    pub quota: &'a ConnectionQuota,
}

impl GmailClient<'_> {
    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}/gmail/v1/users/me/{path}", self.api_url))
            .bearer_auth(self.token.expose_secret())
    }

    /// Sends a read request within the quota. A rate-limited response (429, or 403
    /// `rateLimitExceeded` / `userRateLimitExceeded`) is retried up to
    /// [`MAX_RATE_LIMIT_RETRIES`] times, with the delays of [`retry_delay`].
    async fn read<T: DeserializeOwned>(
        &self,
        method: GmailMethod,
        request: RequestBuilder,
    ) -> Result<T, ProviderError> {
        let mut attempt = 0;
        loop {
            let Some(this_try) = request.try_clone() else {
                return Err(ProviderError::Unavailable(
                    "a Gmail read request could not be repeated".to_owned(),
                ));
            };
            let outcome = {
                let _permit = self.quota.acquire(method).await;
                send(this_try).await
            };
            let Err(ProviderError::RateLimited { retry_after }) = outcome else {
                return outcome;
            };
            self.quota.drain();
            let Some(delay) = retry_delay(attempt, retry_after) else {
                return outcome;
            };
            tracing::warn!(
                ?method,
                attempt,
                delay_ms = delay.as_millis() as u64,
                "Gmail rate-limited a read; retrying"
            );
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    /// Sends a request that changes the mailbox, within the quota and without retries,
    /// so that a message is never sent twice.
    async fn write<T: DeserializeOwned>(
        &self,
        method: GmailMethod,
        request: RequestBuilder,
    ) -> Result<T, ProviderError> {
        let _permit = self.quota.acquire(method).await;
        let outcome = send(request).await;
        if matches!(outcome, Err(ProviderError::RateLimited { .. })) {
            self.quota.drain();
        }
        outcome
    }

    pub async fn profile(&self) -> Result<Profile, ProviderError> {
        let request = self.request(Method::GET, "profile");
        self.read(GmailMethod::GetProfile, request).await
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
        self.read(GmailMethod::ListMessages, request).await
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
        self.read(GmailMethod::GetMessage, request).await
    }

    /// Fetches the bytes of a part that Gmail serves only by attachment id.
    pub async fn get_attachment(
        &self,
        message_id: &str,
        attachment_id: &str,
    ) -> Result<Vec<u8>, ProviderError> {
        if !is_valid_id(message_id) || !is_valid_attachment_id(attachment_id) {
            return Err(ProviderError::Unavailable(
                "Gmail returned a malformed message or attachment id".to_owned(),
            ));
        }
        let path = format!("messages/{message_id}/attachments/{attachment_id}");
        let request = self.request(Method::GET, &path);
        let body: MessagePartBody = self.read(GmailMethod::GetAttachment, request).await?;
        decode_base64url(body.data.as_deref().unwrap_or_default()).map_err(|_| {
            ProviderError::Unavailable("Gmail returned invalid attachment data".to_owned())
        })
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
        self.read(GmailMethod::ListHistory, request).await
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
        let request = self.request(Method::POST, "messages/send").json(&body);
        self.write(GmailMethod::SendMessage, request).await
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
        self.write(GmailMethod::SendMessage, request).await
    }
}

/// The wait before retry number `attempt + 1` of a rate-limited read, or `None` when
/// the read should give up: after [`MAX_RATE_LIMIT_RETRIES`] retries, or when Gmail
/// requests a wait longer than [`MAX_RETRY_AFTER_SECONDS`]. The wait is the longer of
/// `Retry-After` and the exponential backoff, plus up to a quarter of random jitter.
fn retry_delay(attempt: u32, retry_after_seconds: u64) -> Option<Duration> {
    if attempt >= MAX_RATE_LIMIT_RETRIES || retry_after_seconds > MAX_RETRY_AFTER_SECONDS {
        return None;
    }
    let backoff = FIRST_BACKOFF * 2u32.pow(attempt);
    let base = backoff.max(Duration::from_secs(retry_after_seconds));
    let jitter = base.mul_f64(rand::thread_rng().gen_range(0.0..0.25));
    Some(base + jitter)
}

/// Checks that an attachment id is safe to put in a path. Gmail's are long base64url
/// strings, so this accepts up to 1,024 URL-safe letters, digits, `-` and `_`.
pub fn is_valid_attachment_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 1024
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Checks that a Gmail message or thread id is safe to put in a path. Gmail ids are
/// short hexadecimal strings, and this accepts URL-safe letters, digits, `-` and `_`.
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
            .map_err(|e| ProviderError::Unavailable(format!("Gmail returned invalid JSON: {e}")));
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
    fn retry_delay_honours_retry_after() {
        let delay = retry_delay(0, 3).unwrap();
        assert!(delay >= Duration::from_secs(3), "{delay:?}");
        assert!(delay <= Duration::from_millis(3750), "{delay:?}");
    }

    #[test]
    fn retry_delay_backs_off_exponentially() {
        let first = retry_delay(0, 0).unwrap();
        let third = retry_delay(2, 0).unwrap();
        assert!(first >= Duration::from_millis(500), "{first:?}");
        assert!(first < Duration::from_millis(625), "{first:?}");
        assert!(third >= Duration::from_secs(2), "{third:?}");
        assert!(third < Duration::from_millis(2500), "{third:?}");
    }

    #[test]
    fn retry_delay_gives_up() {
        assert_eq!(retry_delay(MAX_RATE_LIMIT_RETRIES, 1), None);
        assert_eq!(retry_delay(0, MAX_RETRY_AFTER_SECONDS + 1), None);
    }

    #[test]
    fn user_rate_limit_403_is_rate_limited() {
        for reason in ["rateLimitExceeded", "userRateLimitExceeded"] {
            let body = json!({"error": {"code": 403, "message": "Rate Limit Exceeded",
                "errors": [{"reason": reason}]}});
            let error = gmail_failure(StatusCode::FORBIDDEN, &body, Some(2));
            assert!(
                matches!(error, ProviderError::RateLimited { retry_after: 2 }),
                "{reason}: {error:?}"
            );
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
