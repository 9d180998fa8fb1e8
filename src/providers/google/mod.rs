//! Gmail: the API v1 resource types, the decoder from a Gmail `Message` resource to
//! Patchbay's message shape, and the composer of outgoing RFC 5322 messages.
//!
//! Everything here is pure and makes no network calls.

pub mod client;
pub mod compose;
pub mod decode;
pub mod wire;

pub(crate) mod encoded_word;
mod mime_params;

#[cfg(test)]
mod fixture_tests;

#[cfg(test)]
mod robustness_tests;
