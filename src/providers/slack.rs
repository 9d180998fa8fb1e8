//! Slack Web API client: every method returns HTTP 200 with `ok: false` on failure,
//! so the `ok` flag, not the status, decides success.

use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde_json::Value;

use super::{ProviderError, retry_after_seconds};

/// Error codes that mean the grant itself is gone.
const REVOKED_CODES: [&str; 4] = [
    "token_revoked",
    "invalid_auth",
    "account_inactive",
    "not_authed",
];

pub struct SlackClient<'a> {
    pub http: &'a reqwest::Client,
    /// Web API base, such as `https://slack.com/api`.
    pub api_url: &'a str,
}

/// Arguments of `chat.postMessage`.
#[derive(Debug, Serialize)]
pub struct PostMessage<'a> {
    pub channel: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blocks: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thread_ts: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unfurl_links: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unfurl_media: Option<bool>,
}

impl SlackClient<'_> {
    /// Calls a Web API method with a JSON body and returns the whole `ok: true` response.
    pub async fn call(
        &self,
        method: &str,
        token: &SecretString,
        body: &impl Serialize,
    ) -> Result<Value, ProviderError> {
        let response = self
            .http
            .post(format!("{}/{method}", self.api_url))
            .bearer_auth(token.expose_secret())
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/json; charset=utf-8",
            )
            .body(serde_json::to_vec(body).map_err(|e| ProviderError::Unavailable(e.to_string()))?)
            .send()
            .await
            .map_err(ProviderError::from_transport)?;
        let status = response.status();
        if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            let retry_after = retry_after_seconds(response.headers()).unwrap_or(30);
            return Err(ProviderError::RateLimited { retry_after });
        }
        if status.is_server_error() {
            return Err(ProviderError::Unavailable(format!(
                "{method} returned {status}"
            )));
        }
        let answer: Value = response.json().await.map_err(|_| {
            ProviderError::Unavailable(format!("{method} returned {status} without JSON"))
        })?;
        match (
            answer.get("ok").and_then(Value::as_bool),
            answer.get("error"),
        ) {
            (Some(true), _) => Ok(answer),
            (Some(false), Some(Value::String(_))) => Err(slack_failure(method, &answer)),
            // Every Slack answer has a boolean `ok`, and `ok: false` names its error.
            _ => Err(ProviderError::Unavailable(format!(
                "{method} returned a response without ok or error"
            ))),
        }
    }

    pub async fn post_message(
        &self,
        token: &SecretString,
        message: &PostMessage<'_>,
    ) -> Result<Value, ProviderError> {
        self.call("chat.postMessage", token, message).await
    }

    pub async fn search_messages(
        &self,
        token: &SecretString,
        query: &str,
        count: u32,
    ) -> Result<Value, ProviderError> {
        let body = serde_json::json!({"query": query, "count": count, "sort": "timestamp"});
        self.call("search.messages", token, &body).await
    }
}

/// Maps an `ok: false` response to the gateway's provider errors.
fn slack_failure(method: &str, answer: &Value) -> ProviderError {
    let code = answer
        .get("error")
        .and_then(Value::as_str)
        .unwrap_or("unknown_error")
        .to_owned();
    match code.as_str() {
        c if REVOKED_CODES.contains(&c) => ProviderError::Revoked(code),
        "token_expired" => ProviderError::Unauthorized,
        "missing_scope" | "not_allowed_token_type" => {
            let needed = answer
                .get("needed")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty());
            ProviderError::MissingScope(match needed {
                Some(needed) => format!("Slack {method} needs scope {needed} ({code})"),
                None => format!("Slack {method} needs a scope this token lacks ({code})"),
            })
        }
        "ratelimited" | "rate_limited" => ProviderError::RateLimited { retry_after: 30 },
        "internal_error" | "fatal_error" | "service_unavailable" | "request_timeout" => {
            ProviderError::Unavailable(format!("{method} failed with {code}"))
        }
        _ => ProviderError::Rejected {
            message: format!("Slack {method} failed: {code}"),
            code,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn revoked_codes_mark_revocation() {
        for code in ["token_revoked", "invalid_auth", "account_inactive"] {
            let error = slack_failure("chat.postMessage", &json!({"ok": false, "error": code}));
            assert!(matches!(error, ProviderError::Revoked(_)), "{code}");
        }
    }

    #[test]
    fn content_errors_are_rejections() {
        let error = slack_failure(
            "chat.postMessage",
            &json!({"ok": false, "error": "not_in_channel"}),
        );
        match error {
            ProviderError::Rejected { code, .. } => assert_eq!(code, "not_in_channel"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn ratelimited_is_not_revocation() {
        let error = slack_failure(
            "chat.postMessage",
            &json!({"ok": false, "error": "ratelimited"}),
        );
        assert!(matches!(error, ProviderError::RateLimited { .. }));
    }
}
