//! Google API error bodies: `{"error":{"code","message","errors":[…],"status"}}`.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

const INVALID_CREDENTIALS_MESSAGE: &str = "Request had invalid authentication credentials. \
    Expected OAuth 2 access token, login cookie or other valid authentication credential. \
    See https://developers.google.com/identity/sign-in/web/devconsole-project.";

const MISSING_CREDENTIALS_MESSAGE: &str = "Request is missing required authentication \
    credential. Expected OAuth 2 access token, login cookie or other valid authentication \
    credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.";

/// Error returned in Google's JSON shape.
#[derive(Debug, Clone)]
pub struct GoogleApiError {
    pub code: u16,
    pub message: String,
    /// The `errors[].message`, which Google often words differently from `message`.
    pub detail: String,
    pub reason: &'static str,
    pub domain: &'static str,
    /// Set for credential errors, which name the `Authorization` header.
    pub in_authorization_header: bool,
}

impl GoogleApiError {
    fn new(code: u16, message: &str, reason: &'static str) -> GoogleApiError {
        GoogleApiError {
            code,
            message: message.to_string(),
            detail: message.to_string(),
            reason,
            domain: "global",
            in_authorization_header: false,
        }
    }

    /// 401 for an unknown, expired or revoked access token.
    pub fn invalid_credentials() -> GoogleApiError {
        GoogleApiError {
            detail: "Invalid Credentials".to_string(),
            in_authorization_header: true,
            ..GoogleApiError::new(401, INVALID_CREDENTIALS_MESSAGE, "authError")
        }
    }

    /// 401 for a request without an `Authorization` header.
    pub fn missing_credentials() -> GoogleApiError {
        GoogleApiError {
            detail: "Login Required.".to_string(),
            in_authorization_header: true,
            ..GoogleApiError::new(401, MISSING_CREDENTIALS_MESSAGE, "required")
        }
    }

    /// 403 when the token's scopes do not cover the method.
    pub fn insufficient_permissions() -> GoogleApiError {
        GoogleApiError {
            detail: "Insufficient Permission".to_string(),
            ..GoogleApiError::new(
                403,
                "Request had insufficient authentication scopes.",
                "insufficientPermissions",
            )
        }
    }

    /// 403 with reason `forbidden`, for example another user's mailbox.
    pub fn forbidden(message: &str) -> GoogleApiError {
        GoogleApiError::new(403, message, "forbidden")
    }

    pub fn not_found() -> GoogleApiError {
        GoogleApiError::new(404, "Requested entity was not found.", "notFound")
    }

    pub fn invalid_argument(message: &str) -> GoogleApiError {
        GoogleApiError::new(400, message, "invalidArgument")
    }

    /// 400 for a missing required query parameter.
    pub fn required(parameter: &str) -> GoogleApiError {
        GoogleApiError::new(400, &format!("Required parameter: {parameter}"), "required")
    }

    /// 429 `rateLimitExceeded`.
    pub fn rate_limited(message: &str) -> GoogleApiError {
        GoogleApiError {
            domain: "usageLimits",
            ..GoogleApiError::new(429, message, "rateLimitExceeded")
        }
    }

    /// 413 for an upload over the size limit.
    pub fn upload_too_large(limit: usize) -> GoogleApiError {
        GoogleApiError::new(
            413,
            &format!("Media larger than: {limit}"),
            "uploadTooLarge",
        )
    }

    /// Returns a generic error for a status code, used by injected faults.
    pub fn for_status(code: u16) -> GoogleApiError {
        match code {
            400 => GoogleApiError::invalid_argument("Bad Request"),
            401 => GoogleApiError::invalid_credentials(),
            403 => GoogleApiError::forbidden("The caller does not have permission"),
            404 => GoogleApiError::not_found(),
            429 => GoogleApiError::rate_limited("Resource has been exhausted (e.g. check quota)."),
            500 => GoogleApiError::new(500, "Internal error encountered.", "backendError"),
            503 => {
                GoogleApiError::new(503, "The service is currently unavailable.", "backendError")
            }
            504 => GoogleApiError::new(504, "The request timed out.", "backendError"),
            other => GoogleApiError::new(other, "Error", "backendError"),
        }
    }

    /// Returns the body as JSON.
    pub fn body(&self) -> Value {
        let mut entry = json!({
            "message": self.detail,
            "domain": self.domain,
            "reason": self.reason,
        });
        if self.in_authorization_header {
            entry["location"] = json!("Authorization");
            entry["locationType"] = json!("header");
        }
        json!({"error": {
            "code": self.code,
            "message": self.message,
            "errors": [entry],
            "status": status_name(self.code),
        }})
    }
}

/// Maps an HTTP status to the `google.rpc.Code` name that Google puts in `status`.
fn status_name(code: u16) -> &'static str {
    match code {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ABORTED",
        413 => "FAILED_PRECONDITION",
        429 => "RESOURCE_EXHAUSTED",
        501 => "UNIMPLEMENTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ => "INTERNAL",
    }
}

impl IntoResponse for GoogleApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, Json(self.body())).into_response();
        if self.code == 401 {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(
                    "Bearer realm=\"https://accounts.google.com/\", error=\"invalid_token\"",
                ),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_credentials_shape() {
        let body = GoogleApiError::invalid_credentials().body();
        assert_eq!(body["error"]["code"], 401);
        assert_eq!(body["error"]["status"], "UNAUTHENTICATED");
        assert_eq!(body["error"]["errors"][0]["reason"], "authError");
        assert_eq!(body["error"]["errors"][0]["message"], "Invalid Credentials");
        assert_eq!(body["error"]["errors"][0]["location"], "Authorization");
        assert_eq!(body["error"]["errors"][0]["locationType"], "header");
    }

    #[test]
    fn rate_limit_shape() {
        let body = GoogleApiError::rate_limited("slow down").body();
        assert_eq!(body["error"]["status"], "RESOURCE_EXHAUSTED");
        assert_eq!(body["error"]["errors"][0]["domain"], "usageLimits");
        assert_eq!(body["error"]["errors"][0]["reason"], "rateLimitExceeded");
    }
}
