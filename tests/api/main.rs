//! End-to-end tests: a real gateway on a real socket and SQLite file, talking
//! HTTP to the sandbox providers.

mod helpers;

mod auth;
mod connections;
mod errors;
mod execute_gmail;
mod execute_slack;
mod gmail_quota;
mod instances;
mod lifecycle;
mod routing;
mod tokens;
