//! Gmail quota pacing: syncs against a sandbox that enforces Gmail's per-user quota,
//! and the retry rules for rate-limited reads and sends.

use std::time::{Duration, Instant};

use patchbay::sandbox::SandboxConfig;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, error_code, simple_eml};

/// Messages in the quota test's mailbox: 1,500 units of fetches plus the lists, about
/// six seconds at the default 240 units per second.
const MAILBOX_SIZE: usize = 300;

#[tokio::test]
async fn sync_under_quota_gets_no_429() {
    let app = TestApp::spawn_with(SandboxConfig {
        gmail_quota: true,
        latency_ms: 30,
        ..SandboxConfig::default()
    })
    .await;
    app.connect("google", Some("alice")).await;
    for index in 0..MAILBOX_SIZE {
        app.add_message(&simple_eml(&format!("Message {index}"), "Body"))
            .await;
    }

    let started = Instant::now();
    let mut synced = 0;
    let mut page_token: Option<String> = None;
    loop {
        let mut body = json!({"mode": "initial", "maxResults": 100, "userId": "alice"});
        if let Some(token) = &page_token {
            body["pageToken"] = json!(token);
        }
        let response = app.execute("gmail/sync", body, None).await;
        assert_eq!(response.status(), StatusCode::OK, "sync page failed");
        let page: Value = response.json().await.unwrap();
        synced += page["messages"].as_array().map_or(0, Vec::len);
        page_token = page["nextPageToken"].as_str().map(str::to_owned);
        if page_token.is_none() {
            break;
        }
    }
    let elapsed = started.elapsed();

    assert_eq!(synced, MAILBOX_SIZE);
    let gmail_requests = app.sandbox_requests("/gmail/").await;
    let rejected = gmail_requests
        .iter()
        .filter(|request| request["status"] == 429)
        .count();
    assert_eq!(rejected, 0, "the sandbox answered 429 {rejected} times");
    // 300 fetches of 5 units, less the initial quarter-second burst, at 240 units/s.
    assert!(
        elapsed >= Duration::from_secs(5),
        "sync took {elapsed:?}, faster than the quota allows"
    );
}

#[tokio::test]
async fn rate_limited_read_is_retried() {
    let app = TestApp::spawn().await;
    app.connect("google", Some("alice")).await;
    let id = app.add_message(&simple_eml("Retry me", "Body")).await;
    let path = format!("/gmail/v1/users/me/messages/{id}");
    let fault = json!({"path": path, "status": 429, "times": 2, "retryAfter": 1});
    app.sandbox_control("faults", fault).await;

    let started = Instant::now();
    let response = app
        .execute(
            "gmail/read",
            json!({"messageId": id, "userId": "alice"}),
            None,
        )
        .await;

    assert_eq!(response.status(), StatusCode::OK);
    let statuses: Vec<Value> = app
        .sandbox_requests(&path)
        .await
        .iter()
        .map(|request| request["status"].clone())
        .collect();
    assert_eq!(statuses, [json!(429), json!(429), json!(200)]);
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "Retry-After of 1 s was not waited out twice"
    );
}

#[tokio::test]
async fn forbidden_rate_limit_is_retried() {
    let app = TestApp::spawn().await;
    app.connect("google", Some("alice")).await;
    let id = app.add_message(&simple_eml("Retry me", "Body")).await;
    let path = format!("/gmail/v1/users/me/messages/{id}");
    let body = json!({"error": {"code": 403, "message": "User Rate Limit Exceeded",
        "errors": [{"reason": "userRateLimitExceeded", "domain": "usageLimits"}]}});
    let fault = json!({"path": path, "status": 403, "times": 1, "retryAfter": 0, "body": body});
    app.sandbox_control("faults", fault).await;

    let response = app
        .execute(
            "gmail/read",
            json!({"messageId": id, "userId": "alice"}),
            None,
        )
        .await;

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(app.sandbox_requests(&path).await.len(), 2);
}

#[tokio::test]
async fn persistent_rate_limit_gives_up() {
    let app = TestApp::spawn().await;
    app.connect("google", Some("alice")).await;
    let id = app.add_message(&simple_eml("Never", "Body")).await;
    let path = format!("/gmail/v1/users/me/messages/{id}");
    let fault = json!({"path": path, "status": 429, "times": 100, "retryAfter": 0});
    app.sandbox_control("faults", fault).await;

    let response = app
        .execute(
            "gmail/read",
            json!({"messageId": id, "userId": "alice"}),
            None,
        )
        .await;

    let (status, error) = error_code(response).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(error["code"], "provider_rate_limited");
    assert_eq!(
        app.sandbox_requests(&path).await.len(),
        4,
        "one try and three retries"
    );
}

#[tokio::test]
async fn rate_limited_send_is_not_retried() {
    let app = TestApp::spawn().await;
    app.connect("google", Some("alice")).await;
    let path = "/gmail/v1/users/me/messages/send";
    let fault = json!({"path": path, "status": 429, "times": 5, "retryAfter": 0});
    app.sandbox_control("faults", fault).await;

    let body = json!({"to": "bob@example.com", "subject": "Once", "body": "Hi", "userId": "alice"});
    let response = app.execute("gmail/send", body, None).await;

    let (status, error) = error_code(response).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(error["code"], "provider_rate_limited");
    assert_eq!(app.sandbox_requests(path).await.len(), 1);
}
