//! Request extractors: the tenant behind an API key, the user id, the provider in
//! the path, and JSON bodies whose every rejection uses the API's error shape.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::AppState;
use super::error::ApiError;
use crate::Provider;
use crate::crypto::{hash_api_key, is_well_formed_api_key};

/// Header that carries the end user's id.
pub const USER_ID_HEADER: &str = "x-user-id";
/// Maximum length of a user id, in characters.
pub const USER_ID_MAX_CHARS: usize = 256;

/// The tenant that the request's API key belongs to.
#[derive(Debug, Clone)]
pub struct Tenant {
    pub tenant_id: String,
    pub key_id: String,
}

impl FromRequestParts<AppState> for Tenant {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let mut values = parts.headers.get_all(AUTHORIZATION).iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            return Err(ApiError::InvalidApiKey);
        };
        let text = value.to_str().map_err(|_| ApiError::InvalidApiKey)?;
        let (scheme, key) = text.trim().split_once(' ').ok_or(ApiError::InvalidApiKey)?;
        let key = key.trim_start();
        if !scheme.eq_ignore_ascii_case("bearer") || !is_well_formed_api_key(key) {
            return Err(ApiError::InvalidApiKey);
        }
        let record = state
            .store
            .authenticate_api_key(&hash_api_key(key), chrono::Utc::now())
            .await?
            .ok_or(ApiError::InvalidApiKey)?;
        tracing::Span::current().record("tenant_id", record.tenant_id.as_str());
        Ok(Tenant {
            tenant_id: record.tenant_id,
            key_id: record.id,
        })
    }
}

/// The `X-User-Id` header: `None` when absent, a 400 when present but invalid.
#[derive(Debug, Clone)]
pub struct HeaderUserId(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for HeaderUserId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let mut values = parts.headers.get_all(USER_ID_HEADER).iter();
        let Some(value) = values.next() else {
            return Ok(HeaderUserId(None));
        };
        if values.next().is_some() {
            return Err(ApiError::invalid(
                "X-User-Id",
                "X-User-Id must be sent once",
            ));
        }
        let text = std::str::from_utf8(value.as_bytes())
            .map_err(|_| ApiError::invalid("X-User-Id", "X-User-Id must be valid UTF-8"))?;
        validate_user_id(text, "X-User-Id")?;
        Ok(HeaderUserId(Some(text.to_owned())))
    }
}

/// Checks a user id: 1 to 256 characters, none of them a control character.
pub fn validate_user_id(user_id: &str, param: &str) -> Result<(), ApiError> {
    if user_id.is_empty() {
        return Err(ApiError::invalid(
            param,
            format!("{param} must not be empty"),
        ));
    }
    if user_id.chars().count() > USER_ID_MAX_CHARS {
        return Err(ApiError::invalid(
            param,
            format!("{param} must be at most {USER_ID_MAX_CHARS} characters"),
        ));
    }
    if user_id.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            param,
            format!("{param} must not contain control characters"),
        ));
    }
    Ok(())
}

/// The `:provider` path segment, matched exactly against the known provider ids.
#[derive(Debug, Clone, Copy)]
pub struct ProviderPath(pub Provider);

impl<S: Send + Sync> FromRequestParts<S> for ProviderPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(id) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::UnknownProvider("(undecodable)".to_owned()))?;
        id.parse()
            .map(ProviderPath)
            .map_err(|_| ApiError::UnknownProvider(truncate(&id, 64)))
    }
}

fn truncate(text: &str, max_chars: usize) -> String {
    text.chars().take(max_chars).collect()
}

/// Body limit of every JSON route but `gmail/send`: 1 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

/// A JSON object body of at most `LIMIT` bytes. Rejections: 415 without a JSON
/// content type, 413 over the limit, 400 for malformed JSON or a non-object document.
#[derive(Debug)]
pub struct JsonObject<const LIMIT: usize = DEFAULT_BODY_LIMIT>(pub Map<String, Value>);

impl<S: Send + Sync, const LIMIT: usize> FromRequest<S> for JsonObject<LIMIT> {
    type Rejection = ApiError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, ApiError> {
        if !has_json_content_type(&request) {
            return Err(ApiError::UnsupportedMediaType(
                "send the body as JSON with Content-Type: application/json".to_owned(),
            ));
        }
        let bytes: Bytes = axum::body::to_bytes(request.into_body(), LIMIT)
            .await
            .map_err(|error| {
                if is_length_limit_error(&error) {
                    ApiError::PayloadTooLarge(LIMIT)
                } else {
                    ApiError::invalid("body", "the request body could not be read")
                }
            })?;
        match serde_json::from_slice::<UniqueKeyObject>(&bytes) {
            Ok(UniqueKeyObject(map)) => Ok(JsonObject(map)),
            Err(error) if error.is_data() => Err(ApiError::InvalidRequest {
                message: format!(
                    "the body must be a JSON object: {}",
                    strip_serde_position(&error.to_string())
                ),
                param: None,
            }),
            Err(error) => Err(ApiError::InvalidRequest {
                message: format!("the body is not valid JSON: {error}"),
                param: None,
            }),
        }
    }
}

/// A JSON object whose top-level field names are unique. serde_json alone keeps the
/// last of two equal names, so `{"userId":"a","userId":"b"}` could mean different
/// users to a proxy in front and to the gateway; such a body is rejected instead.
struct UniqueKeyObject(Map<String, Value>);

impl<'de> serde::Deserialize<'de> for UniqueKeyObject {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;

        impl<'de> serde::de::Visitor<'de> for ObjectVisitor {
            type Value = UniqueKeyObject;

            fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
                formatter.write_str("a JSON object")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut access: A,
            ) -> Result<UniqueKeyObject, A::Error> {
                let mut map = Map::new();
                while let Some(key) = access.next_key::<String>()? {
                    if map.contains_key(&key) {
                        return Err(serde::de::Error::custom(format!("duplicate field {key}")));
                    }
                    let value: Value = access.next_value()?;
                    map.insert(key, value);
                }
                Ok(UniqueKeyObject(map))
            }
        }

        deserializer.deserialize_any(ObjectVisitor)
    }
}

fn is_length_limit_error(error: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = source {
        if current.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = current.source();
    }
    false
}

fn has_json_content_type(request: &Request) -> bool {
    let Some(value) = request.headers().get(CONTENT_TYPE) else {
        return false;
    };
    let Ok(text) = value.to_str() else {
        return false;
    };
    let essence = text
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Removes `userId` from an execute body and applies the routing rule: the body's
/// `userId` wins over the header; neither means the org-wide connection. A present
/// but invalid `userId` (null, not a string, empty, too long) is a 400.
pub fn take_execute_user_id(
    body: &mut Map<String, Value>,
    header: HeaderUserId,
) -> Result<Option<String>, ApiError> {
    match body.remove("userId") {
        None => Ok(header.0),
        Some(Value::String(user_id)) => {
            validate_user_id(&user_id, "userId")?;
            Ok(Some(user_id))
        }
        Some(_) => Err(ApiError::invalid("userId", "userId must be a string")),
    }
}

/// Deserializes a body into `T`, reporting the first offending field as `param`.
pub fn parse_body<T: DeserializeOwned>(body: Map<String, Value>) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(Value::Object(body)).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner().to_string();
        if let Some(field) = unknown_field(&inner) {
            return ApiError::invalid(field.clone(), format!("unknown field {field}"));
        }
        if let Some(field) = missing_field(&inner) {
            return ApiError::invalid(field.clone(), format!("{field} is required"));
        }
        let message = strip_serde_position(&inner);
        if path == "." {
            ApiError::InvalidRequest {
                message,
                param: None,
            }
        } else {
            ApiError::invalid(path.clone(), format!("{path}: {message}"))
        }
    })
}

fn unknown_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    Some(rest.split('`').next()?.to_owned())
}

fn missing_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("missing field `")?;
    Some(rest.split('`').next()?.to_owned())
}

/// Drops serde's " at line N column M" suffix and names Rust types in JSON terms.
fn strip_serde_position(message: &str) -> String {
    let message = match message.find(" at line ") {
        Some(index) => &message[..index],
        None => message,
    };
    let mut text = message.to_owned();
    for (rust, json) in [
        ("expected i64", "expected an integer"),
        ("expected u64", "expected a non-negative integer"),
        ("expected u32", "expected a non-negative integer"),
        ("expected a string", "expected a string"),
        ("expected a boolean", "expected true or false"),
        ("expected a sequence", "expected an array"),
        ("invalid type: map", "invalid type: object"),
        ("invalid type: sequence", "invalid type: array"),
    ] {
        text = text.replace(rust, json);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct Sample {
        #[allow(dead_code)]
        max_results: Option<u32>,
        #[allow(dead_code)]
        query: String,
    }

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => unreachable!("test bodies are objects"),
        }
    }

    fn param(error: ApiError) -> Option<String> {
        match error {
            ApiError::InvalidRequest { param, .. } => param,
            _ => None,
        }
    }

    #[test]
    fn wrong_type_names_param() {
        let error = parse_body::<Sample>(object(json!({"query": "x", "maxResults": "5"})));
        assert_eq!(param(error.unwrap_err()).as_deref(), Some("maxResults"));
    }

    #[test]
    fn missing_field_names_param() {
        let error = parse_body::<Sample>(object(json!({})));
        assert_eq!(param(error.unwrap_err()).as_deref(), Some("query"));
    }

    #[test]
    fn unknown_field_names_param() {
        let error = parse_body::<Sample>(object(json!({"query": "x", "max_results": 3})));
        assert_eq!(param(error.unwrap_err()).as_deref(), Some("max_results"));
    }

    #[test]
    fn wrong_type_reads_as_json_terms() {
        let error = parse_body::<Sample>(object(json!({"query": "x", "maxResults": [1]})));
        let message = error.unwrap_err().to_string();
        assert!(message.contains("array"), "{message}");
        assert!(
            !message.contains("u32") && !message.contains("sequence"),
            "{message}"
        );
    }

    #[test]
    fn duplicate_keys_are_rejected() {
        let parsed = serde_json::from_str::<UniqueKeyObject>(r#"{"userId":"a","userId":"b"}"#);
        let message = parsed.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains("duplicate field userId"), "{message}");
        assert!(serde_json::from_str::<UniqueKeyObject>(r#"{"a":{"b":1,"c":1}}"#).is_ok());
        assert!(serde_json::from_str::<UniqueKeyObject>("[1]").is_err());
    }

    #[test]
    fn body_user_id_wins() {
        let mut body = object(json!({"userId": "body"}));
        let user = take_execute_user_id(&mut body, HeaderUserId(Some("header".into()))).unwrap();
        assert_eq!(user.as_deref(), Some("body"));
        assert!(body.is_empty());
    }

    #[test]
    fn header_user_id_used_without_body() {
        let user =
            take_execute_user_id(&mut Map::new(), HeaderUserId(Some("header".into()))).unwrap();
        assert_eq!(user.as_deref(), Some("header"));
    }

    #[test]
    fn invalid_body_user_ids_rejected() {
        let long = "u".repeat(257);
        for bad in [
            json!(null),
            json!(42),
            json!(""),
            json!(long),
            json!("a\u{7}b"),
            json!(["a"]),
        ] {
            let mut body = object(json!({ "userId": bad }));
            let error = take_execute_user_id(&mut body, HeaderUserId(None)).unwrap_err();
            assert_eq!(param(error).as_deref(), Some("userId"), "accepted {bad}");
        }
    }

    #[test]
    fn user_id_limit_counts_characters() {
        assert!(validate_user_id(&"é".repeat(256), "userId").is_ok());
        assert!(validate_user_id(&"é".repeat(257), "userId").is_err());
    }
}
