//! The one error type of the HTTP API and its table of status, type and code.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::store::StoreError;

/// Every failure a request can end in. Each variant maps to one status, type and code.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    InvalidRequest {
        message: String,
        param: Option<String>,
    },
    #[error("{0}")]
    InvalidRedirect(String),
    #[error("{0}")]
    InvalidState(String),
    #[error("the {0} provider is not configured on this gateway")]
    ProviderNotConfigured(crate::Provider),
    #[error("the API key is missing, malformed, unknown or revoked")]
    InvalidApiKey,
    /// `on_delete` selects 404 (DELETE) over 403 (execute).
    #[error("no {provider} connection exists for this {owner}")]
    ConnectionNotFound {
        provider: crate::Provider,
        owner: &'static str,
        on_delete: bool,
    },
    #[error("the {0} grant was revoked or expired; the user must connect the account again")]
    ReauthorizationRequired(crate::Provider),
    #[error("{0}")]
    MissingScope(String),
    #[error("no route for {0}")]
    NotFound(String),
    #[error("unknown provider {0:?}: use google or slack")]
    UnknownProvider(String),
    #[error("method {0} is not allowed on this route")]
    MethodNotAllowed(String),
    #[error("the request body exceeds the limit of {0} bytes")]
    PayloadTooLarge(usize),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{message}")]
    ProviderRejected {
        provider_code: String,
        message: String,
    },
    #[error("the provider rate-limited the request; retry after {retry_after} seconds")]
    ProviderRateLimited { retry_after: u64 },
    #[error("{0}")]
    ProviderUnavailable(String),
    #[error("the provider timed out")]
    ProviderTimeout,
    #[error("the database is unavailable; retry shortly")]
    DatabaseUnavailable,
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    /// Builds a 400 `invalid_request` naming the parameter at fault.
    pub fn invalid(param: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::InvalidRequest {
            message: message.into(),
            param: Some(param.into()),
        }
    }

    pub fn internal(error: impl Into<anyhow::Error>) -> Self {
        ApiError::Internal(error.into())
    }

    /// Status, error type and code of this error.
    pub fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        use ApiError::*;
        const INVALID: &str = "invalid_request_error";
        match self {
            InvalidRequest { .. } => (StatusCode::BAD_REQUEST, INVALID, "invalid_request"),
            InvalidRedirect(_) => (StatusCode::BAD_REQUEST, INVALID, "invalid_redirect"),
            InvalidState(_) => (StatusCode::BAD_REQUEST, INVALID, "invalid_state"),
            ProviderNotConfigured(_) => {
                (StatusCode::BAD_REQUEST, INVALID, "provider_not_configured")
            }
            InvalidApiKey => (
                StatusCode::UNAUTHORIZED,
                "authentication_error",
                "invalid_api_key",
            ),
            ConnectionNotFound {
                on_delete: true, ..
            } => (StatusCode::NOT_FOUND, INVALID, "connection_not_found"),
            ConnectionNotFound {
                on_delete: false, ..
            } => (
                StatusCode::FORBIDDEN,
                "connection_error",
                "connection_not_found",
            ),
            ReauthorizationRequired(_) => (
                StatusCode::FORBIDDEN,
                "connection_error",
                "reauthorization_required",
            ),
            MissingScope(_) => (StatusCode::FORBIDDEN, "connection_error", "missing_scope"),
            NotFound(_) => (StatusCode::NOT_FOUND, INVALID, "not_found"),
            UnknownProvider(_) => (StatusCode::NOT_FOUND, INVALID, "unknown_provider"),
            MethodNotAllowed(_) => (
                StatusCode::METHOD_NOT_ALLOWED,
                INVALID,
                "method_not_allowed",
            ),
            PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, INVALID, "payload_too_large"),
            UnsupportedMediaType(_) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                INVALID,
                "unsupported_media_type",
            ),
            ProviderRejected { .. } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "provider_error",
                "provider_rejected",
            ),
            ProviderRateLimited { .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_error",
                "provider_rate_limited",
            ),
            ProviderUnavailable(_) => (
                StatusCode::BAD_GATEWAY,
                "provider_error",
                "provider_unavailable",
            ),
            ProviderTimeout => (
                StatusCode::GATEWAY_TIMEOUT,
                "provider_error",
                "provider_timeout",
            ),
            DatabaseUnavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "api_error",
                "database_unavailable",
            ),
            Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "api_error",
                "internal_error",
            ),
        }
    }

    /// Builds the JSON body of the error response.
    pub fn body(&self) -> serde_json::Value {
        let (_, error_type, code) = self.parts();
        let mut error = json!({"type": error_type, "code": code, "message": self.to_string()});
        match self {
            ApiError::InvalidRequest {
                param: Some(param), ..
            } => {
                error["param"] = json!(param);
            }
            ApiError::ProviderRejected { provider_code, .. } => {
                error["providerCode"] = json!(provider_code);
            }
            _ => {}
        }
        json!({ "error": error })
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable(_) => {
                tracing::error!(error = %error, "database unavailable");
                ApiError::DatabaseUnavailable
            }
            other => ApiError::Internal(other.into()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, _, code) = self.parts();
        if let ApiError::Internal(cause) = &self {
            // The span of the request carries its id, so the log line can be matched
            // with the response the client got.
            tracing::error!(
                error = format!("{cause:#}"),
                "request failed with an internal error"
            );
        } else if status.is_server_error() {
            tracing::warn!(code, message = %self, "request failed");
        }
        let mut response = (status, axum::Json(self.body())).into_response();
        if let ApiError::ProviderRateLimited { retry_after } = self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_request_names_param() {
        let body = ApiError::invalid("maxResults", "maxResults must be between 1 and 500").body();
        assert_eq!(body["error"]["type"], "invalid_request_error");
        assert_eq!(body["error"]["code"], "invalid_request");
        assert_eq!(body["error"]["param"], "maxResults");
        assert_eq!(
            body["error"]["message"],
            "maxResults must be between 1 and 500"
        );
    }

    #[test]
    fn internal_error_hides_cause() {
        let error = ApiError::internal(anyhow::anyhow!("secret detail: password=hunter2"));
        let body = error.body().to_string();
        assert!(!body.contains("hunter2"));
        assert_eq!(error.parts().0, StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn rate_limit_sets_retry_after() {
        let response = ApiError::ProviderRateLimited { retry_after: 30 }.into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "30");
    }

    #[test]
    fn connection_not_found_status_depends_on_route() {
        let provider = crate::Provider::Google;
        let execute = ApiError::ConnectionNotFound {
            provider,
            owner: "user",
            on_delete: false,
        };
        let delete = ApiError::ConnectionNotFound {
            provider,
            owner: "user",
            on_delete: true,
        };
        assert_eq!(execute.parts().0, StatusCode::FORBIDDEN);
        assert_eq!(execute.parts().1, "connection_error");
        assert_eq!(delete.parts().0, StatusCode::NOT_FOUND);
        assert_eq!(delete.parts().1, "invalid_request_error");
    }
}
