//! Request parameter and credential parsing shared by the fake providers.

use std::collections::HashMap;

use axum::http::header::{AUTHORIZATION, LOCATION};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// Decodes `application/x-www-form-urlencoded` pairs in order, repeated keys included.
pub fn pairs(encoded: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(encoded)
        .map(|(key, value)| (key.into_owned(), value.into_owned()))
        .collect()
}

/// Decodes form or query pairs into a map; the first value of a repeated key wins.
pub fn map(encoded: &[u8]) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for (key, value) in pairs(encoded) {
        out.entry(key).or_insert(value);
    }
    out
}

/// Returns every value of a repeated key, in order.
pub fn all_values(pairs: &[(String, String)], key: &str) -> Vec<String> {
    pairs
        .iter()
        .filter(|(name, _)| name == key)
        .map(|(_, value)| value.clone())
        .collect()
}

/// Returns the first value of a key.
pub fn first_value<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(name, _)| name == key)
        .map(|(_, value)| value.as_str())
}

/// Returns the token of an `Authorization: Bearer` header. The scheme is case-insensitive.
pub fn bearer_token(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_string())
}

/// Returns the client id and secret of an `Authorization: Basic` header.
pub fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    let id = url::form_urlencoded::parse(format!("x={id}").as_bytes())
        .next()
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default();
    let secret = url::form_urlencoded::parse(format!("x={secret}").as_bytes())
        .next()
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default();
    Some((id, secret))
}

/// A `302 Found` redirect, which both Google and Slack use to return from consent.
pub fn found(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(value) => (StatusCode::FOUND, [(LOCATION, value)]).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// Escapes text for an HTML page.
pub fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Appends query parameters to a URL, keeping the ones it has.
pub fn with_query(base: &url::Url, params: &[(&str, &str)]) -> String {
    let mut url = base.clone();
    {
        let mut query = url.query_pairs_mut();
        for (key, value) in params {
            query.append_pair(key, value);
        }
    }
    url.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, HeaderValue::from_static("bEaReR abc"));
        assert_eq!(bearer_token(&headers).as_deref(), Some("abc"));
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Bearer "));
        assert_eq!(bearer_token(&headers), None);
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer_token(&headers), None);
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        let mut headers = HeaderMap::new();
        let encoded = STANDARD.encode("client%3Aid:se%2Bcret");
        let value = HeaderValue::from_str(&format!("Basic {encoded}")).expect("ascii header");
        headers.insert(AUTHORIZATION, value);
        assert_eq!(
            basic_credentials(&headers),
            Some(("client:id".to_string(), "se+cret".to_string()))
        );
    }

    #[test]
    fn repeated_keys_are_kept() {
        let decoded = pairs(b"labelIds=INBOX&labelIds=UNREAD&q=a+b");
        assert_eq!(all_values(&decoded, "labelIds"), vec!["INBOX", "UNREAD"]);
        assert_eq!(first_value(&decoded, "q"), Some("a b"));
    }
}
