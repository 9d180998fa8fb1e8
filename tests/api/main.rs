//! End-to-end tests: a real gateway on a real socket and SQLite file, talking
//! HTTP to the sandbox providers.

mod helpers;

mod auth;
mod connections;
mod corpus;
mod errors;
mod execute_gmail;
mod execute_slack;
mod gmail_quota;
mod gmail_send;
mod gmail_sync;
mod hardening;
mod hardening_more;
mod instances;
mod lifecycle;
mod mail_fidelity;
mod oauth_flow;
mod provider_errors;
mod refresh;
mod routing;
mod tokens;
