//! Patchbay: a self-hosted connection gateway for Gmail and Slack.

pub mod providers;
