//! Gmail failures injected at the sandbox and the errors callers get for them.

use std::time::Duration;

use patchbay::sandbox::SandboxConfig;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{TestApp, error_code};

#[tokio::test]
async fn gmail_429_is_rate_limited_with_retry_after() {
    let app = TestApp::spawn().await;
    app.connect("google", None).await;
    app.sandbox_control(
        "faults",
        json!({"path": "/gmail/v1/users/me/messages", "status": 429, "retryAfter": 7,
               "times": 10}),
    )
    .await;

    let response = app.execute("gmail/read", json!({}), None).await;

    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()["retry-after"], "7");
    let (_, error) = error_code(response).await;
    assert_eq!(error["code"], "provider_rate_limited");
    assert_eq!(error["type"], "rate_limit_error");
    assert_eq!(app.connection_status("google", None).await, "active");
}

#[tokio::test]
async fn gmail_503_is_unavailable() {
    let app = TestApp::spawn().await;
    app.connect("google", None).await;
    app.sandbox_control(
        "faults",
        json!({"path": "/gmail/v1/users/me/", "status": 503, "times": 10}),
    )
    .await;

    let response = app
        .execute("gmail/sync", json!({"mode": "initial"}), None)
        .await;

    let (status, error) = error_code(response).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(error["code"], "provider_unavailable");
    assert_eq!(error["type"], "provider_error");
    let message = error["message"].as_str().unwrap();
    assert!(
        !message.contains("UNAVAILABLE"),
        "no provider detail: {message}"
    );
}

#[tokio::test]
async fn token_endpoint_503_is_unavailable_not_revoked() {
    let app = TestApp::spawn().await;
    app.connect("google", None).await;
    app.sql("UPDATE connections SET expires_at = '2000-01-01T00:00:00.000000Z'")
        .await;
    app.sandbox_control(
        "faults",
        json!({"path": "/google/token", "status": 503, "times": 10}),
    )
    .await;
    app.clear_sandbox_requests().await;

    let response = app.execute("gmail/read", json!({}), None).await;

    let (status, error) = error_code(response).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(error["code"], "provider_unavailable");
    assert_eq!(app.connection_status("google", None).await, "active");
    assert!(
        app.sandbox_requests("/google/token").await.len() >= 2,
        "retried"
    );
}

#[tokio::test]
async fn unknown_message_id_is_rejected() {
    let app = TestApp::spawn().await;
    app.connect("google", None).await;
    let response = app
        .execute("gmail/read", json!({"messageId": "18cdeadbeef00000"}), None)
        .await;
    let (status, error) = error_code(response).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error["code"], "provider_rejected");
}

#[tokio::test]
async fn slow_gmail_is_provider_timeout() {
    let app = TestApp::spawn_configured(SandboxConfig::default(), |config| {
        config.provider_timeout = Duration::from_secs(1);
    })
    .await;
    app.connect("google", None).await;
    app.sandbox_control(
        "faults",
        json!({"path": "/gmail/v1/users/me/messages", "delayMs": 3000}),
    )
    .await;

    let response = app.execute("gmail/read", json!({}), None).await;

    let (status, error) = error_code(response).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(error["code"], "provider_timeout");
    assert_eq!(error["type"], "provider_error");
    assert_eq!(app.connection_status("google", None).await, "active");
}
