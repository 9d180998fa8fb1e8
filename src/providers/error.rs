//! Failures of provider API calls, independent of the provider.

/// A provider API call that did not succeed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProviderError {
    /// The access token was not accepted (HTTP 401, Slack `token_expired`): refreshing
    /// it may help.
    #[error("the provider did not accept the access token")]
    Unauthorized,
    /// The grant is gone (Slack `token_revoked`, `invalid_auth`, `account_inactive`).
    #[error("the provider revoked the grant: {0}")]
    Revoked(String),
    #[error("the connection lacks a scope the provider requires: {0}")]
    MissingScope(String),
    /// The provider refused the request's content; `code` is the provider's own.
    #[error("{message}")]
    Rejected { code: String, message: String },
    #[error("the provider rate-limited the request")]
    RateLimited { retry_after: u64 },
    #[error("the provider failed: {0}")]
    Unavailable(String),
    #[error("the provider timed out")]
    Timeout,
    /// A request field turned out invalid only once the provider was consulted,
    /// such as a page token that Gmail no longer accepts.
    #[error("{message}")]
    InvalidInput {
        param: &'static str,
        message: String,
    },
}

impl ProviderError {
    /// Maps a transport failure; the URL is left out because it may carry a token.
    pub fn from_transport(error: reqwest::Error) -> Self {
        if error.is_timeout() {
            ProviderError::Timeout
        } else {
            ProviderError::Unavailable(crate::oauth::without_url(&error))
        }
    }
}
