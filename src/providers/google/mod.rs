//! Gmail: the API v1 client and its per-connection quota pacing, the resource types,
//! the decoder from a Gmail `Message` resource to Patchbay's message shape, and the
//! composer of outgoing RFC 5322 messages.
//!
//! Only `client` makes network calls.

pub mod client;
pub mod compose;
pub mod decode;
pub mod quota;
pub mod wire;

pub(crate) mod encoded_word;
mod mime_params;

#[cfg(test)]
mod fixture_tests;

#[cfg(test)]
mod robustness_tests;
