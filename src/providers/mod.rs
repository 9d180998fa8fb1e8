//! Provider API clients and the errors they report.

pub mod error;
pub mod google;
pub mod slack;

pub use error::ProviderError;

/// The `Retry-After` header in seconds, when it is a number.
pub fn retry_after_seconds(headers: &reqwest::header::HeaderMap) -> Option<u64> {
    headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}
