//! The sandbox's in-memory state, shared by all handlers behind one mutex.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use rand::Rng;
use rand::distributions::Alphanumeric;
use serde::Serialize;
use serde_json::Value;

use super::SandboxConfig;
use super::mailbox::Mailbox;
use super::slack::SlackState;

/// State shared by every handler.
pub type SharedState = Arc<AppState>;

pub struct AppState {
    pub config: SandboxConfig,
    /// `http://127.0.0.1:PORT`, used in permalinks and the `iss` of id tokens.
    pub base_url: String,
    inner: Mutex<Inner>,
}

impl AppState {
    pub fn new(config: SandboxConfig, base_url: String) -> AppState {
        let slack = SlackState::new(&config.slack_team);
        let mut google = GoogleState::default();
        google.account_mut(&config.google_account);
        AppState {
            config,
            base_url,
            inner: Mutex::new(Inner {
                google,
                slack,
                requests: Vec::new(),
                last_sequence: 0,
                faults: Vec::new(),
                quota: HashMap::new(),
            }),
        }
    }

    /// Locks the state. A handler that panicked while holding the lock leaves the data as it
    /// was, which is still usable for a test server, so poisoning is ignored.
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Everything behind the mutex.
pub struct Inner {
    pub google: GoogleState,
    pub slack: SlackState,
    pub requests: Vec<RecordedRequest>,
    /// Sequence number of the last recorded request.
    pub last_sequence: u64,
    pub faults: Vec<Fault>,
    /// Gmail quota usage per account email.
    pub quota: HashMap<String, QuotaUsage>,
}

/// One request as the control API lists it. Bodies are never kept.
#[derive(Debug, Clone, Serialize)]
pub struct RecordedRequest {
    /// Arrival order, from 1, never reused within one sandbox run.
    #[serde(skip)]
    pub sequence: u64,
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// RFC 3339 time of arrival, with milliseconds.
    pub at: String,
    /// HTTP status of the response, or `None` while the request is still being served.
    pub status: Option<u16>,
}

/// An injected failure for requests whose path starts with `path`.
#[derive(Debug, Clone)]
pub struct Fault {
    pub path: String,
    pub status: Option<u16>,
    /// How many more requests this fault applies to.
    pub remaining: u32,
    pub delay_ms: u64,
    pub retry_after: Option<u64>,
    pub body: Option<Value>,
}

/// Gmail quota units left in the current second and requests in flight, per account.
#[derive(Debug, Clone)]
pub struct QuotaUsage {
    pub units_left: f64,
    pub refilled_at: Instant,
    pub in_flight: usize,
}

/// Google accounts, OAuth codes, grants and tokens.
#[derive(Debug, Default)]
pub struct GoogleState {
    /// Keyed by lowercased email address.
    pub accounts: HashMap<String, GoogleAccount>,
    pub codes: HashMap<String, GoogleCode>,
    /// Keyed by grant id.
    pub grants: HashMap<String, GoogleGrant>,
    /// Refresh token to grant id.
    pub refresh_tokens: HashMap<String, String>,
    pub access_tokens: HashMap<String, GoogleAccessToken>,
}

impl GoogleState {
    /// Returns the account for this email, creating it with an empty mailbox if needed.
    pub fn account_mut(&mut self, email: &str) -> &mut GoogleAccount {
        self.accounts
            .entry(email.to_lowercase())
            .or_insert_with(|| GoogleAccount {
                email: email.to_string(),
                sub: random_digits(21),
                mailbox: Mailbox::new(),
            })
    }

    pub fn account(&self, email: &str) -> Option<&GoogleAccount> {
        self.accounts.get(&email.to_lowercase())
    }

    /// Returns the emails of the accounts `email` names, or all accounts when it is `None`.
    pub fn select_accounts(&self, email: Option<&str>) -> Vec<String> {
        match email {
            Some(email) => vec![email.to_lowercase()],
            None => self.accounts.keys().cloned().collect(),
        }
    }
}

#[derive(Debug)]
pub struct GoogleAccount {
    pub email: String,
    /// Stable numeric subject id, as in Google's id tokens.
    pub sub: String,
    pub mailbox: Mailbox,
}

/// An authorization code waiting for the token endpoint.
#[derive(Debug, Clone)]
pub struct GoogleCode {
    pub client_id: String,
    pub redirect_uri: String,
    pub scopes: Vec<String>,
    pub email: String,
    pub code_challenge: Option<String>,
    /// Whether `access_type=offline` was requested, so that a refresh token is issued.
    pub offline: bool,
    pub nonce: Option<String>,
    pub created: Instant,
    pub used: bool,
}

/// One user consent: the refresh token and every access token issued under it.
#[derive(Debug, Clone)]
pub struct GoogleGrant {
    pub email: String,
    pub client_id: String,
    pub scopes: Vec<String>,
    pub revoked: bool,
}

#[derive(Debug, Clone)]
pub struct GoogleAccessToken {
    pub grant_id: String,
    pub email: String,
    pub scopes: Vec<String>,
    pub expires_at: Instant,
    /// Set by the control API to expire the token before its time.
    pub expired: bool,
}

/// Returns `length` random ASCII letters and digits.
pub fn random_token(length: usize) -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(length)
        .map(char::from)
        .collect()
}

/// Returns `length` random decimal digits, the first one non-zero.
pub fn random_digits(length: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..length)
        .map(|position| {
            let low = if position == 0 { 1 } else { 0 };
            char::from(b'0' + rng.gen_range(low..10u8))
        })
        .collect()
}
