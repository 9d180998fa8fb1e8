//! Patchbay: a self-hosted connection gateway for Gmail and Slack.
//!
//! A tenant authenticates with its API key, connects provider accounts through
//! OAuth for each of its end users (or once for the whole organization), and
//! executes actions through the gateway. Tokens never leave it.

pub mod app;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod execute;
pub mod http;
pub mod oauth;
pub mod providers;
pub mod quickstart;
pub mod sandbox;
pub mod store;
pub mod telemetry;

use std::fmt;
use std::str::FromStr;

/// A provider that accounts can be connected to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    Google,
    Slack,
}

impl Provider {
    pub const ALL: [Provider; 2] = [Provider::Google, Provider::Slack];

    /// The provider id used in routes and storage.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Google => "google",
            Provider::Slack => "slack",
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for a provider id that is not exactly `google` or `slack`.
#[derive(Debug, thiserror::Error)]
#[error("unknown provider")]
pub struct UnknownProvider;

impl FromStr for Provider {
    type Err = UnknownProvider;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Provider::ALL
            .into_iter()
            .find(|p| p.as_str() == text)
            .ok_or(UnknownProvider)
    }
}

impl serde::Serialize for Provider {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}
